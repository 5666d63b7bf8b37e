//! `tracks`: a Spotify-tracks-shaped catalogue with audio features.
//!
//! The 114 genres of the public Spotify tracks dataset fall into 12 families whose audio profiles
//! differ (metal is loud and energetic, classical acoustic and instrumental); each genre shifts its
//! family's profile by a seeded offset, and each track draws around its genre with realistic
//! correlations (loudness follows energy, acousticness opposes it, valence rises with
//! danceability). Nearest neighbours by audio features therefore share a genre well above chance
//! (1 in 114) but far from always, since sibling genres overlap.
//!
//! Tracks come from artists, each with a home genre and language, releasing albums of one to
//! fourteen tracks; some tracks feature a second artist (`artists` = `"Main;Featured"`).

use std::path::Path;
use std::sync::Arc;

use anyhow::Result;
use arrow::array::{BooleanArray, Float64Array, Int32Array, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use rand::Rng as _;
use rand::seq::IndexedRandom;
use rand_distr::{Distribution, LogNormal, Normal};

use crate::names::{Language, album_title, artist_name, song_title};
use crate::seeded_rng::{Rng, base62_id, stream};
use crate::sinks::{BATCH_ROWS, ParquetSink, col};

/// Tracks at scale 1.
pub const TRACKS_PER_SCALE: f64 = 10_000.0;

/// (genre, family, language) for the 114 genres of the Spotify tracks dataset.
pub const GENRES: [(&str, usize, Language); 114] = {
    use Language::*;
    [
        ("acoustic", 0, English), ("afrobeat", 9, English), ("alt-rock", 3, English), ("alternative", 3, English),
        ("ambient", 1, English), ("anime", 4, Japanese), ("black-metal", 2, English), ("bluegrass", 10, English),
        ("blues", 8, English), ("brazil", 7, Portuguese), ("breakbeat", 5, English), ("british", 3, English),
        ("cantopop", 4, Chinese), ("chicago-house", 5, English), ("children", 4, English), ("chill", 11, English),
        ("classical", 1, German), ("club", 5, English), ("comedy", 11, English), ("country", 10, English),
        ("dance", 5, English), ("dancehall", 9, English), ("death-metal", 2, English), ("deep-house", 5, English),
        ("detroit-techno", 5, English), ("disco", 8, English), ("disney", 4, English), ("drum-and-bass", 5, English),
        ("dub", 9, English), ("dubstep", 5, English), ("edm", 5, English), ("electro", 5, English),
        ("electronic", 5, English), ("emo", 3, English), ("folk", 0, English), ("forro", 7, Portuguese),
        ("french", 10, French), ("funk", 8, English), ("garage", 3, English), ("german", 10, German),
        ("gospel", 8, English), ("goth", 2, English), ("grindcore", 2, English), ("groove", 8, English),
        ("grunge", 3, English), ("guitar", 0, English), ("happy", 4, English), ("hard-rock", 3, English),
        ("hardcore", 2, English), ("hardstyle", 5, English), ("heavy-metal", 2, English), ("hip-hop", 6, English),
        ("honky-tonk", 10, English), ("house", 5, English), ("idm", 5, English), ("indian", 10, Hindi),
        ("indie-pop", 4, English), ("indie", 3, English), ("industrial", 2, German), ("iranian", 10, Persian),
        ("j-dance", 5, Japanese), ("j-idol", 4, Japanese), ("j-pop", 4, Japanese), ("j-rock", 3, Japanese),
        ("jazz", 8, English), ("k-pop", 4, Korean), ("kids", 4, English), ("latin", 7, Spanish),
        ("latino", 7, Spanish), ("malay", 10, Malay), ("mandopop", 4, Chinese), ("metal", 2, English),
        ("metalcore", 2, English), ("minimal-techno", 5, German), ("mpb", 7, Portuguese), ("new-age", 1, English),
        ("opera", 1, French), ("pagode", 7, Portuguese), ("party", 4, English), ("piano", 1, English),
        ("pop-film", 4, Hindi), ("pop", 4, English), ("power-pop", 3, English), ("progressive-house", 5, English),
        ("psych-rock", 3, English), ("punk-rock", 3, English), ("punk", 3, English), ("r-n-b", 6, English),
        ("reggae", 9, English), ("reggaeton", 7, Spanish), ("rock-n-roll", 3, English), ("rock", 3, English),
        ("rockabilly", 3, English), ("romance", 11, Spanish), ("sad", 11, English), ("salsa", 7, Spanish),
        ("samba", 7, Portuguese), ("sertanejo", 7, Portuguese), ("show-tunes", 4, English), ("singer-songwriter", 0, English),
        ("ska", 9, English), ("sleep", 1, English), ("songwriter", 0, English), ("soul", 8, English),
        ("spanish", 10, Spanish), ("study", 1, English), ("swedish", 10, Swedish), ("synth-pop", 4, English),
        ("tango", 7, Spanish), ("techno", 5, German), ("trance", 5, English), ("trip-hop", 11, English),
        ("turkish", 10, Turkish), ("world-music", 9, English),
    ]
};

/// An audio profile: means around which a genre's tracks are drawn.
#[derive(Debug, Clone, Copy)]
pub struct Profile {
    dance: f64,
    energy: f64,
    speech: f64,
    acoustic: f64,
    instrumental_share: f64,
    live: f64,
    valence: f64,
    tempo: f64,
    duration_s: f64,
    explicit: f64,
}

const fn p(dance: f64, energy: f64, speech: f64, acoustic: f64, instrumental_share: f64, live: f64, valence: f64, tempo: f64, duration_s: f64, explicit: f64) -> Profile {
    Profile { dance, energy, speech, acoustic, instrumental_share, live, valence, tempo, duration_s, explicit }
}

/// The 12 families: folk/acoustic, classical/ambient, metal, rock, pop, electronic dance,
/// hip-hop/r&b, latin, jazz/blues/soul, reggae/world, regional, mood/misc.
const FAMILIES: [Profile; 12] = [
    p(0.55, 0.38, 0.040, 0.75, 0.10, 0.15, 0.45, 112.0, 220.0, 0.02),
    p(0.30, 0.18, 0.045, 0.90, 0.75, 0.12, 0.22, 98.0, 300.0, 0.00),
    p(0.38, 0.92, 0.090, 0.02, 0.25, 0.20, 0.25, 130.0, 260.0, 0.12),
    p(0.48, 0.75, 0.050, 0.12, 0.08, 0.20, 0.50, 125.0, 230.0, 0.08),
    p(0.65, 0.66, 0.060, 0.20, 0.02, 0.16, 0.55, 118.0, 205.0, 0.05),
    p(0.68, 0.80, 0.070, 0.04, 0.55, 0.15, 0.42, 128.0, 280.0, 0.04),
    p(0.74, 0.62, 0.220, 0.15, 0.01, 0.18, 0.50, 100.0, 210.0, 0.55),
    p(0.70, 0.70, 0.080, 0.25, 0.02, 0.20, 0.70, 115.0, 215.0, 0.12),
    p(0.60, 0.50, 0.050, 0.45, 0.15, 0.20, 0.62, 112.0, 240.0, 0.03),
    p(0.72, 0.60, 0.090, 0.20, 0.08, 0.20, 0.72, 105.0, 230.0, 0.08),
    p(0.55, 0.55, 0.050, 0.45, 0.06, 0.20, 0.55, 115.0, 240.0, 0.03),
    p(0.55, 0.40, 0.100, 0.50, 0.15, 0.20, 0.35, 105.0, 215.0, 0.06),
];

/// Each genre's profile: its family's, shifted by a seeded offset (comedy is mostly speech).
pub fn genre_profiles(seed: u64) -> Vec<Profile> {
    GENRES
        .iter()
        .enumerate()
        .map(|(g, (name, family, _))| {
            let mut rng = stream(seed, "genre", g as u64);
            let mut shift = |v: f64, sd: f64| v + Normal::new(0.0, sd).expect("sd > 0").sample(&mut rng);
            let f = FAMILIES[*family];
            let mut profile = Profile {
                dance: shift(f.dance, 0.06),
                energy: shift(f.energy, 0.06),
                speech: shift(f.speech, 0.01).max(0.03),
                acoustic: shift(f.acoustic, 0.06),
                instrumental_share: shift(f.instrumental_share, 0.05).clamp(0.0, 0.95),
                live: shift(f.live, 0.03).max(0.05),
                valence: shift(f.valence, 0.06),
                tempo: shift(f.tempo, 6.0),
                duration_s: shift(f.duration_s, 15.0).max(90.0),
                explicit: f.explicit,
            };
            if *name == "comedy" {
                profile.speech = 0.85;
                profile.live = 0.7;
            }
            profile
        })
        .collect()
}

/// What listening and ISRC generation need to know about each track, indexed by track number:
/// a few bytes per track, not the table.
#[derive(Debug, Default, Clone)]
pub struct TrackIndex {
    /// Genre index (into [`GENRES`]) of each track.
    pub genre: Vec<u8>,
    /// Popularity 0..=100 of each track.
    pub popularity: Vec<u8>,
}

/// The id of track `i`: 22 base62 characters, like Spotify's.
pub fn track_id(seed: u64, i: u64) -> String {
    base62_id(&mut stream(seed, "track-id", i), 22)
}

/// The schema of `tracks.parquet`, the Spotify dataset's columns.
pub fn schema() -> SchemaRef {
    let f = |name: &str, t: DataType| Field::new(name, t, false);
    Arc::new(Schema::new(vec![
        f("track_id", DataType::Utf8),
        f("artists", DataType::Utf8),
        f("album_name", DataType::Utf8),
        f("track_name", DataType::Utf8),
        f("popularity", DataType::Int32),
        f("duration_ms", DataType::Int64),
        f("explicit", DataType::Boolean),
        f("danceability", DataType::Float64),
        f("energy", DataType::Float64),
        f("key", DataType::Int32),
        f("loudness", DataType::Float64),
        f("mode", DataType::Int32),
        f("speechiness", DataType::Float64),
        f("acousticness", DataType::Float64),
        f("instrumentalness", DataType::Float64),
        f("liveness", DataType::Float64),
        f("valence", DataType::Float64),
        f("tempo", DataType::Float64),
        f("time_signature", DataType::Int32),
        f("track_genre", DataType::Utf8),
    ]))
}

#[derive(Default)]
struct Columns {
    track_id: Vec<String>,
    artists: Vec<String>,
    album: Vec<String>,
    name: Vec<String>,
    popularity: Vec<i32>,
    duration: Vec<i64>,
    explicit: Vec<bool>,
    dance: Vec<f64>,
    energy: Vec<f64>,
    key: Vec<i32>,
    loudness: Vec<f64>,
    mode: Vec<i32>,
    speech: Vec<f64>,
    acoustic: Vec<f64>,
    instrumental: Vec<f64>,
    live: Vec<f64>,
    valence: Vec<f64>,
    tempo: Vec<f64>,
    time_signature: Vec<i32>,
    genre: Vec<&'static str>,
}

impl Columns {
    fn flush(&mut self, sink: &mut ParquetSink) -> Result<()> {
        let c = std::mem::take(self);
        sink.write(vec![
            col(StringArray::from(c.track_id)),
            col(StringArray::from(c.artists)),
            col(StringArray::from(c.album)),
            col(StringArray::from(c.name)),
            col(Int32Array::from(c.popularity)),
            col(Int64Array::from(c.duration)),
            col(BooleanArray::from(c.explicit)),
            col(Float64Array::from(c.dance)),
            col(Float64Array::from(c.energy)),
            col(Int32Array::from(c.key)),
            col(Float64Array::from(c.loudness)),
            col(Int32Array::from(c.mode)),
            col(Float64Array::from(c.speech)),
            col(Float64Array::from(c.acoustic)),
            col(Float64Array::from(c.instrumental)),
            col(Float64Array::from(c.live)),
            col(Float64Array::from(c.valence)),
            col(Float64Array::from(c.tempo)),
            col(Int32Array::from(c.time_signature)),
            col(StringArray::from(c.genre)),
        ])
    }
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

fn unit(v: f64) -> f64 {
    round3(v.clamp(0.0, 1.0))
}

/// Generates `count` tracks into `out/part-0.parquet` (or only the index, when `out` is `None`),
/// calling `progress` with the rows done.
pub fn generate(seed: u64, count: u64, out: Option<&Path>, mut progress: impl FnMut(u64)) -> Result<TrackIndex> {
    let profiles = genre_profiles(seed);
    let mut sink = out.map(|dir| ParquetSink::create(&dir.join("part-0.parquet"), schema())).transpose()?;
    let mut cols = Columns::default();
    let mut index = TrackIndex { genre: Vec::with_capacity(count as usize), popularity: Vec::with_capacity(count as usize) };
    let noise = |rng: &mut Rng, sd: f64| Normal::new(0.0, sd).expect("sd > 0").sample(rng);

    let mut i = 0u64;
    let mut artist = 0u64;
    while i < count {
        let mut rng = stream(seed, "artist", artist);
        artist += 1;
        // Artists cycle through the genres, so every genre has about as many tracks (the real
        // dataset has 1,000 per genre).
        let genre = (artist as usize - 1) % GENRES.len();
        let (genre_name, _, language) = GENRES[genre];
        let profile = profiles[genre];
        let name = artist_name(&mut rng, language);
        // Artist popularity: most artists are obscure, a few are stars.
        let fame: f64 = (rng.random::<f64>().powf(2.2) * 85.0 + noise(&mut rng, 6.0)).clamp(0.0, 95.0);
        let albums = rng.random_range(1..=4);
        for _ in 0..albums {
            let album = album_title(&mut rng, language);
            let size = match rng.random_range(0..10) {
                0..=2 => 1,
                3..=4 => rng.random_range(4..=6),
                _ => rng.random_range(8..=14),
            };
            for _ in 0..size {
                if i >= count {
                    break;
                }
                let track_rng = &mut stream(seed, "track", i);
                let energy = unit(profile.energy + noise(track_rng, 0.15));
                let dance = unit(profile.dance + noise(track_rng, 0.12));
                let popularity = if track_rng.random_bool(0.12) { 0 } else { (fame + noise(track_rng, 10.0)).clamp(0.0, 100.0).round() as i32 };
                index.genre.push(genre as u8);
                index.popularity.push(popularity as u8);
                if sink.is_some() {
                    let featured = track_rng.random_bool(0.18).then(|| artist_name(track_rng, language));
                    cols.track_id.push(track_id(seed, i));
                    cols.artists.push(match featured {
                        Some(f) if f != name => format!("{name};{f}"),
                        _ => name.clone(),
                    });
                    cols.album.push(if size == 1 { song_title(track_rng, language) } else { album.clone() });
                    cols.name.push(if size == 1 { cols.album.last().cloned().unwrap_or_default() } else { song_title(track_rng, language) });
                    cols.popularity.push(popularity);
                    let duration = LogNormal::new((profile.duration_s * 1000.0).ln(), 0.3).expect("sd > 0").sample(track_rng);
                    cols.duration.push(duration.clamp(30_000.0, 1_200_000.0).round() as i64);
                    cols.explicit.push(track_rng.random_bool(profile.explicit));
                    cols.dance.push(dance);
                    cols.energy.push(energy);
                    cols.key.push(track_rng.random_range(0..12));
                    cols.loudness.push(round3((-2.0 - 20.0 * (1.0 - energy).powf(1.4) + noise(track_rng, 2.0)).clamp(-45.0, 1.5)));
                    cols.mode.push(i32::from(track_rng.random_bool(0.62)));
                    cols.speech.push(unit(profile.speech * noise(track_rng, 0.5).exp()));
                    cols.acoustic.push(unit(profile.acoustic * 0.6 + (1.0 - energy) * 0.4 + noise(track_rng, 0.12)));
                    cols.instrumental.push(if track_rng.random_bool(profile.instrumental_share) {
                        unit(0.8 + noise(track_rng, 0.15))
                    } else {
                        unit(noise(track_rng, 0.02).abs())
                    });
                    cols.live.push(unit(profile.live * noise(track_rng, 0.5).exp()));
                    cols.valence.push(unit(profile.valence + 0.35 * (dance - 0.5) + noise(track_rng, 0.15)));
                    cols.tempo.push(round3((profile.tempo + noise(track_rng, 18.0)).clamp(40.0, 220.0)));
                    cols.time_signature.push(*[4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 3, 3, 5, 1].choose(track_rng).expect("non-empty"));
                    cols.genre.push(genre_name);
                    if cols.track_id.len() == BATCH_ROWS {
                        cols.flush(sink.as_mut().expect("checked"))?;
                    }
                }
                i += 1;
                if i.is_multiple_of(BATCH_ROWS as u64) {
                    progress(i);
                }
            }
        }
    }
    if let Some(mut sink) = sink {
        if !cols.track_id.is_empty() {
            cols.flush(&mut sink)?;
        }
        sink.close()?;
    }
    progress(count);
    Ok(index)
}
