//! `isrc`: a recording catalogue with ISRCs, and YouTube playlist exports whose video titles are
//! noisy renderings of catalogue recordings, with the ground truth of which is which.
//!
//! Catalogue row `k` is a pure function of (seed, k), and so is each video, so playlists can refer
//! to any recording without the catalogue in memory, and the same official video keeps one id and
//! title across every playlist it appears in (as on YouTube). About a third of the items must NOT
//! match: covers, karaoke and instrumental versions, tutorials and unrelated videos.

use std::path::Path;

use anyhow::Result;
use rand::Rng as _;
use rand::seq::IndexedRandom;
use rand_distr::{Distribution, Zipf};
use serde_json::{Value, json};

use crate::names::{Language, artist_name, song_title};
use crate::seeded_rng::{Rng, base62_id, stream};
use crate::sinks::{ColumnKind, CsvSink, DirtyRow, NdjsonSink};
use crate::tracks::GENRES;

/// Catalogue recordings at scale 1.
pub const CATALOGUE_PER_SCALE: f64 = 10_000.0;
/// Playlist items at scale 1.
pub const ITEMS_PER_SCALE: f64 = 10_000.0;
const ITEMS_PER_PLAYLIST: u64 = 50;

/// One catalogue recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recording {
    /// `CC-XXX-YY-NNNNN`.
    pub isrc: String,
    /// Song title.
    pub title: String,
    /// Main artist.
    pub artist: String,
    /// Featured artist, if any.
    pub featured: Option<String>,
    /// Length in milliseconds.
    pub duration_ms: i64,
    /// Year of release.
    pub release_year: i32,
}

impl Recording {
    /// The catalogue's `artists` field: `"Main"` or `"Main, Featured"`.
    pub fn artists(&self) -> String {
        match &self.featured {
            Some(f) => format!("{}, {f}", self.artist),
            None => self.artist.clone(),
        }
    }
}

fn base36(mut n: u64, width: usize) -> String {
    const DIGITS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut out = vec![b'0'; width];
    for slot in out.iter_mut().rev() {
        *slot = DIGITS[(n % 36) as usize];
        n /= 36;
    }
    String::from_utf8(out).expect("ASCII")
}

/// Catalogue row `k`. ISRCs are unique: the registrant code is `k mod 36^3` and the designation
/// code `k div 36^3`, so no two rows below 4.6 billion share both.
pub fn recording(seed: u64, k: u64) -> Recording {
    let rng = &mut stream(seed, "recording", k);
    let language = GENRES[rng.random_range(0..GENRES.len())].2;
    let release_year = rng.random_range(1965..=2025);
    const REGISTRANTS: u64 = 36 * 36 * 36;
    Recording {
        isrc: format!(
            "{}-{}-{:02}-{:05}",
            language.country(),
            base36(k % REGISTRANTS, 3),
            release_year % 100,
            (k / REGISTRANTS) % 100_000
        ),
        title: song_title(rng, language),
        artist: artist_name(rng, language),
        featured: rng.random_bool(0.15).then(|| artist_name(rng, language)),
        duration_ms: rng.random_range(120_000..330_000),
        release_year,
    }
}

/// How a playlist item relates to the catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Official,
    Lyric,
    Topic,
    Variant,
    Cover,
    Karaoke,
    Tutorial,
    Unrelated,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Official => "official",
            Kind::Lyric => "lyric",
            Kind::Topic => "topic",
            Kind::Variant => "variant",
            Kind::Cover => "cover",
            Kind::Karaoke => "karaoke",
            Kind::Tutorial => "tutorial",
            Kind::Unrelated => "unrelated",
        }
    }

    /// Whether an item of this kind is the catalogue recording (and so has its ISRC).
    fn matches(self) -> bool {
        matches!(self, Kind::Official | Kind::Lyric | Kind::Topic | Kind::Variant)
    }
}

fn pick_kind(rng: &mut Rng) -> Kind {
    match rng.random_range(0..100) {
        0..=34 => Kind::Official,
        35..=46 => Kind::Lyric,
        47..=56 => Kind::Topic,
        57..=64 => Kind::Variant,
        65..=71 => Kind::Cover,
        72..=75 => Kind::Karaoke,
        76..=79 => Kind::Tutorial,
        _ => Kind::Unrelated,
    }
}

/// Typos a human uploader makes: a swapped or dropped character.
fn typo(rng: &mut Rng, s: &str) -> String {
    let mut chars: Vec<char> = s.chars().collect();
    if chars.len() > 3 {
        let i = rng.random_range(1..chars.len() - 1);
        if rng.random_bool(0.5) {
            chars.swap(i, i + 1);
        } else {
            chars.remove(i);
        }
    }
    chars.into_iter().collect()
}

/// A video: id, title, channel, description and length; a pure function of its identity.
struct Video {
    id: String,
    title: String,
    channel: String,
    description: String,
    duration_s: i64,
    secondary_title: Option<String>,
    artists: Vec<String>,
}

fn catalogue_video(seed: u64, k: u64, kind: Kind, variant: u64) -> Video {
    let rec = recording(seed, k);
    let rng = &mut stream(seed, "video", k * 16 + variant);
    let id = base62_id(rng, 11);
    let (artist, title) = (rec.artist.clone(), rec.title.clone());
    let feat = rec.featured.clone().unwrap_or_else(|| artist_name(rng, Language::English));
    let duration = rec.duration_ms / 1000;
    let mut secondary = None;
    let (mut text, channel, duration_s) = match kind {
        Kind::Official => (
            match rng.random_range(0..5) {
                0 => format!("{artist} - {title} (Official Music Video)"),
                1 => format!("{artist} - {title} (Official Video)"),
                2 => format!("{artist} - {title} [Official Audio]"),
                3 => format!("{artist} - {title} | Official Visualizer"),
                _ => format!("{} | {artist} ft. {feat}", title.to_uppercase()),
            },
            format!("{}VEVO", artist.replace(' ', "")),
            duration + rng.random_range(0..4),
        ),
        Kind::Lyric => (
            match rng.random_range(0..3) {
                0 => format!("{title} - {artist} (Lyrics)"),
                1 => format!("{artist} - {title} [Lyrics]"),
                _ => format!("{artist} - {title} (Lyric Video)"),
            },
            ["7clouds", "Lyrical Lemonade", "Pillow", "Lyric Vibes"].choose(rng).expect("non-empty").to_string(),
            duration + rng.random_range(0..3),
        ),
        Kind::Topic => {
            secondary = Some(title.clone());
            (title.clone(), format!("{artist} - Topic"), duration)
        }
        Kind::Variant => (
            match rng.random_range(0..3) {
                0 => format!("{artist} - {title} (Remastered {})", rec.release_year + rng.random_range(10..30)),
                1 => format!("{title} (sped up) - {artist}"),
                _ => format!("{artist} - {title} (Live)"),
            },
            format!("{artist} Official"),
            duration + rng.random_range(-20..20),
        ),
        Kind::Cover => (
            match rng.random_range(0..3) {
                0 => format!("{title} - {artist} (Cover by {})", artist_name(rng, Language::English)),
                1 => format!("{title} | Acoustic Cover"),
                _ => format!("{artist} - {title} (Piano Cover)"),
            },
            artist_name(rng, Language::English),
            duration + rng.random_range(-40..40),
        ),
        Kind::Karaoke => (
            match rng.random_range(0..2) {
                0 => format!("{artist} - {title} (Karaoke Version)"),
                _ => format!("{title} Karaoke Instrumental"),
            },
            "Sing King Karaoke".to_string(),
            duration + rng.random_range(-10..10),
        ),
        Kind::Tutorial => (format!("How to play {title} on guitar (easy tutorial)"), "Guitar Lessons 365".to_string(), rng.random_range(300..1200)),
        Kind::Unrelated => unreachable!("unrelated videos are not renderings"),
    };
    // Uploaders' noise on top of the template.
    if matches!(kind, Kind::Official | Kind::Lyric | Kind::Variant) {
        if rng.random_bool(0.15) {
            text = typo(rng, &text);
        }
        if rng.random_bool(0.08) {
            text = text.to_lowercase();
        }
        if rng.random_bool(0.1) && text.chars().count() > 40 {
            text = format!("{}...", text.chars().take(rng.random_range(30..40)).collect::<String>());
        }
    }
    let description = match kind {
        Kind::Topic => format!("Provided to YouTube by {} Records\n\n{title} · {}\n\n℗ {}", artist, rec.artists(), rec.release_year),
        _ => format!("{title} by {artist}. Subscribe for more!"),
    };
    Video {
        id,
        title: text,
        channel,
        description,
        duration_s: duration_s.max(30),
        secondary_title: secondary,
        artists: if kind.matches() { vec![artist] } else { vec![] },
    }
}

fn unrelated_video(seed: u64, item: u64) -> Video {
    let rng = &mut stream(seed, "other-video", item);
    let word = song_title(rng, Language::English);
    let title = match rng.random_range(0..5) {
        0 => format!("Vlog #{}: a week in {}", rng.random_range(1..300), ["Tokyo", "Lisbon", "Seoul", "Mexico City"].choose(rng).expect("non-empty")),
        1 => format!("Top 10 {word} moments"),
        2 => format!("Minecraft Let's Play Part {}", rng.random_range(1..80)),
        3 => format!("{word} - Podcast Episode {}", rng.random_range(1..200)),
        _ => format!("Lo-fi beats to study to ({word} mix)"),
    };
    Video {
        id: base62_id(rng, 11),
        title,
        channel: artist_name(rng, Language::English),
        description: "Thanks for watching!".to_string(),
        duration_s: rng.random_range(60..3600),
        secondary_title: None,
        artists: vec![],
    }
}

fn iso(us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(us).expect("in range").format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Counts of what was written, and the rows corrupted on purpose.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct IsrcCounts {
    /// Catalogue rows.
    pub catalogue: u64,
    /// Playlists.
    pub playlists: u64,
    /// Playlist items.
    pub items: u64,
    /// Items whose ground truth is an ISRC.
    pub matching_items: u64,
    /// Corrupted rows and lines.
    #[serde(skip)]
    pub dirty: Vec<DirtyRow>,
}

/// Writes `catalogue.csv`, `youtube_playlists.ndjson` and `ground_truth.csv` into `dir`.
pub fn generate(seed: u64, catalogue: u64, items: u64, dirty_rate: f64, dir: &Path, mut progress: impl FnMut(u64)) -> Result<IsrcCounts> {
    let mut counts = IsrcCounts::default();
    let mut catalogue_sink = CsvSink::create(
        dir,
        "catalogue.csv",
        vec![
            ("isrc", ColumnKind::Text, true),
            ("title", ColumnKind::Text, true),
            ("artists", ColumnKind::Text, true),
            ("duration_ms", ColumnKind::Number, false),
            ("release_year", ColumnKind::Number, false),
        ],
        dirty_rate,
        seed,
    )?;
    for k in 0..catalogue {
        let r = recording(seed, k);
        catalogue_sink.write(vec![r.isrc.clone(), r.title.clone(), r.artists(), r.duration_ms.to_string(), r.release_year.to_string()])?;
        counts.catalogue += 1;
        if k.is_multiple_of(8192) {
            progress(k);
        }
    }
    counts.dirty.extend(catalogue_sink.close()?);

    let mut playlists = NdjsonSink::create(dir, "youtube_playlists.ndjson", vec!["playlist_id", "items"], dirty_rate, seed)?;
    let mut truth = CsvSink::create(
        dir,
        "ground_truth.csv",
        vec![("playlist_id", ColumnKind::Text, true), ("position", ColumnKind::Number, true), ("media_item_id", ColumnKind::Text, true), ("isrc", ColumnKind::Text, false), ("kind", ColumnKind::Text, true)],
        0.0,
        seed,
    )?;
    // Popular recordings turn up in many playlists.
    let popularity = Zipf::new(catalogue.max(1) as f64, 0.7).expect("valid zipf");
    let playlist_count = items.div_ceil(ITEMS_PER_PLAYLIST);
    let mut item = 0u64;
    for p in 0..playlist_count {
        let rng = &mut stream(seed, "yt-playlist", p);
        let playlist_id = format!("PL{}", base62_id(rng, 32));
        let created = 1_609_459_200_000_000 + rng.random_range(0..4 * 365) * 86_400_000_000i64;
        let n = ITEMS_PER_PLAYLIST.min(items - item);
        let mut entries = Vec::with_capacity(n as usize);
        for position in 0..n {
            let kind = pick_kind(rng);
            let k = popularity.sample(rng) as u64 - 1;
            let video = match kind {
                Kind::Unrelated => unrelated_video(seed, item),
                // A recording has a handful of distinct videos of each kind.
                _ => catalogue_video(seed, k, kind, (kind as u64) * 2 + rng.random_range(0..2)),
            };
            let isrc = kind.matches().then(|| recording(seed, k).isrc);
            counts.matching_items += u64::from(isrc.is_some());
            let observed: Vec<Value> = (0..rng.random_range(1..=3))
                .map(|o| {
                    json!({
                        "observed_at": iso(created + (o as i64 + 1) * 7 * 86_400_000_000 + position as i64 * 1_000_000),
                        "primary_title": video.title,
                        "secondary_title": video.secondary_title,
                        "view_count": rng.random_range(100u64..50_000_000) * (o + 1),
                    })
                })
                .collect();
            entries.push(json!({
                "position": position,
                "added_at": iso(created + position as i64 * 3_600_000_000),
                "media_item": {
                    "id": video.id,
                    "title": video.title,
                    "channel": {"name": video.channel},
                    "description": video.description,
                    "duration_s": video.duration_s,
                    "artists": video.artists.iter().map(|a| json!({"name": a})).collect::<Vec<_>>(),
                    "metadata_log": observed,
                }
            }));
            truth.write(vec![playlist_id.clone(), position.to_string(), video.id.clone(), isrc.unwrap_or_default(), kind.name().to_string()])?;
            item += 1;
        }
        playlists.write(json!({
            "playlist_id": playlist_id,
            "title": format!("{} {}", ["Best of", "Hits", "Chill", "Workout", "Party"].choose(rng).expect("non-empty"), song_title(rng, Language::English)),
            "channel": {"id": format!("UC{}", base62_id(rng, 22)), "name": artist_name(rng, Language::English)},
            "created_at": iso(created),
            "items": entries,
        }))?;
        counts.playlists += 1;
        progress(counts.catalogue + item);
    }
    counts.items = item;
    counts.dirty.extend(playlists.close()?);
    truth.close()?;
    Ok(counts)
}
