//! `listening`: users, timestamped listening events grouped in sessions, and user playlists.
//!
//! Each user has one to three favourite genres and a taste for the mainstream; a session sticks to
//! one of the user's genres, and within a genre tracks are chosen by a power law over popularity
//! rank. Play counts are therefore heavy-tailed, and users who share genres share tracks: item-item
//! collaborative filtering has signal beyond the global popularity ranking.

use std::path::Path;
use std::sync::Arc;

use anyhow::Result;
use arrow::array::{BooleanArray, Date32Array, Int32Array, Int64Array, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use rand::Rng as _;
use rand::seq::IndexedRandom;
use rand_distr::{Distribution, Geometric, LogNormal, Zipf};

use crate::seeded_rng::{Rng, stream};
use crate::sinks::{BATCH_ROWS, ParquetSink, col};
use crate::tracks::{GENRES, TrackIndex, track_id};

/// Users at scale 1.
pub const USERS_PER_SCALE: f64 = 1_000.0;
/// Listening events at scale 1.
pub const EVENTS_PER_SCALE: f64 = 100_000.0;

/// 2025-01-01T00:00:00Z in microseconds: the start of the 90-day listening window.
const WINDOW_START_US: i64 = 1_735_689_600_000_000;
const DAY_US: i64 = 86_400_000_000;

fn utc_micros() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

fn users_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("user_id", DataType::Int64, false),
        Field::new("country", DataType::Utf8, false),
        Field::new("signup_date", DataType::Date32, false),
        Field::new("plan", DataType::Utf8, false),
    ]))
}

fn events_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("user_id", DataType::Int64, false),
        Field::new("track_id", DataType::Utf8, false),
        Field::new("played_at", utc_micros(), false),
        Field::new("session_id", DataType::Int64, false),
        Field::new("ms_played", DataType::Int64, false),
        Field::new("skipped", DataType::Boolean, false),
    ]))
}

fn playlists_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("playlist_id", DataType::Int64, false),
        Field::new("user_id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, false),
        Field::new("created_at", utc_micros(), false),
    ]))
}

fn playlist_tracks_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("playlist_id", DataType::Int64, false),
        Field::new("position", DataType::Int32, false),
        Field::new("track_id", DataType::Utf8, false),
    ]))
}

/// Tracks by popularity, per genre and overall, for power-law choice.
struct Charts {
    by_genre: Vec<Vec<u32>>,
    overall: Vec<u32>,
}

impl Charts {
    fn new(tracks: &TrackIndex) -> Self {
        let mut by_genre: Vec<Vec<u32>> = vec![vec![]; GENRES.len()];
        for (i, g) in tracks.genre.iter().enumerate() {
            by_genre[*g as usize].push(i as u32);
        }
        let by_popularity = |list: &mut Vec<u32>| list.sort_by_key(|&i| (std::cmp::Reverse(tracks.popularity[i as usize]), i));
        by_genre.iter_mut().for_each(by_popularity);
        let mut overall: Vec<u32> = (0..tracks.genre.len() as u32).collect();
        by_popularity(&mut overall);
        Self { by_genre, overall }
    }

    fn pick(list: &[u32], rng: &mut Rng) -> Option<u32> {
        if list.is_empty() {
            return None;
        }
        let rank = Zipf::new(list.len() as f64, 1.1).expect("valid zipf").sample(rng) as usize;
        Some(list[rank.clamp(1, list.len()) - 1])
    }
}

/// A user's taste: favourite genres and how mainstream they are.
struct Taste {
    genres: Vec<usize>,
    mainstream: f64,
}

fn taste(rng: &mut Rng, charts: &Charts) -> Taste {
    let n = rng.random_range(1..=3);
    let available: Vec<usize> = (0..GENRES.len()).filter(|g| !charts.by_genre[*g].is_empty()).collect();
    let genres = (0..n).filter_map(|_| available.choose(rng).copied()).collect();
    Taste { genres, mainstream: rng.random_range(0.05..0.3) }
}

fn pick_track(rng: &mut Rng, taste: &Taste, session_genre: Option<usize>, charts: &Charts) -> u32 {
    let genre = match session_genre {
        Some(g) if !rng.random_bool(taste.mainstream) => Some(g),
        _ => None,
    };
    genre
        .and_then(|g| Charts::pick(&charts.by_genre[g], rng))
        .or_else(|| Charts::pick(&charts.overall, rng))
        .expect("at least one track")
}

/// Hour of day for a listening session: quiet at night, peaks at commute and evening.
fn session_hour(rng: &mut Rng) -> i64 {
    const WEIGHTS: [u32; 24] = [3, 2, 1, 1, 1, 2, 4, 7, 9, 7, 6, 6, 7, 7, 6, 6, 7, 9, 10, 10, 9, 8, 6, 4];
    let total: u32 = WEIGHTS.iter().sum();
    let mut x = rng.random_range(0..total);
    for (h, w) in WEIGHTS.iter().enumerate() {
        if x < *w {
            return h as i64;
        }
        x -= w;
    }
    23
}

/// Counts of what was written.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct ListeningCounts {
    /// Users.
    pub users: u64,
    /// Listening events.
    pub events: u64,
    /// User playlists.
    pub playlists: u64,
    /// Playlist-track rows.
    pub playlist_tracks: u64,
}

/// Generates the listening tables for `users` users and about `events` events, each as
/// `out/<table>/part-0.parquet` so that `out` reads as a lake.
pub fn generate(seed: u64, users: u64, events: u64, tracks: &TrackIndex, out: &Path, mut progress: impl FnMut(u64)) -> Result<ListeningCounts> {
    let charts = Charts::new(tracks);
    // Activity is heavy-tailed: a few users listen far more than most.
    let mut activity_rng = stream(seed, "activity", 0);
    let activity: Vec<f64> = (0..users).map(|_| LogNormal::new(0.0, 1.0).expect("valid").sample(&mut activity_rng)).collect();
    let total_activity: f64 = activity.iter().sum();

    let table = |name: &str| -> Result<std::path::PathBuf> { Ok(crate::sinks::dataset_dir(out, name)?.join("part-0.parquet")) };
    let mut user_sink = ParquetSink::create(&table("users")?, users_schema())?;
    let mut event_sink = ParquetSink::create(&table("listening_events")?, events_schema())?;
    let mut playlist_sink = ParquetSink::create(&table("user_playlists")?, playlists_schema())?;
    let mut entry_sink = ParquetSink::create(&table("user_playlist_tracks")?, playlist_tracks_schema())?;

    let mut u_cols: (Vec<i64>, Vec<&str>, Vec<i32>, Vec<&str>) = Default::default();
    let mut e_cols = EventColumns::default();
    let mut p_cols: (Vec<i64>, Vec<i64>, Vec<String>, Vec<i64>) = Default::default();
    let mut t_cols: (Vec<i64>, Vec<i32>, Vec<String>) = Default::default();
    let mut counts = ListeningCounts::default();
    let mut next_playlist = 0i64;

    for user in 0..users {
        let rng = &mut stream(seed, "user", user);
        let taste = taste(rng, &charts);
        let user_id = user as i64 + 1;
        u_cols.0.push(user_id);
        u_cols.1.push(*["US", "GB", "DE", "BR", "MX", "SE", "JP", "KR", "IN", "FR", "TR", "ES"].choose(rng).expect("non-empty"));
        u_cols.2.push(19_700 + rng.random_range(0..1_400)); // days since epoch: 2023-12 .. 2027-10
        u_cols.3.push(if rng.random_bool(0.35) { "premium" } else { "free" });
        counts.users += 1;

        // Sessions until the user's share of events is reached, in time order.
        let mut remaining = ((events as f64) * activity[user as usize] / total_activity).round().max(1.0) as u64;
        let mut sessions: Vec<(i64, u64)> = vec![];
        while remaining > 0 {
            let len = (Geometric::new(0.12).expect("valid").sample(rng) + 1).min(remaining);
            let start = WINDOW_START_US + rng.random_range(0..90) * DAY_US + session_hour(rng) * 3_600_000_000 + rng.random_range(0..3_600_000_000);
            sessions.push((start, len));
            remaining -= len;
        }
        sessions.sort();
        for (s, (start, len)) in sessions.into_iter().enumerate() {
            let session_genre = taste.genres.choose(rng).copied();
            let mut at = start;
            for _ in 0..len {
                let track = pick_track(rng, &taste, session_genre, &charts);
                let skipped = rng.random_bool(0.2);
                let ms = if skipped { rng.random_range(5_000..60_000) } else { rng.random_range(120_000..330_000) };
                e_cols.0.push(user_id);
                e_cols.1.push(track_id(seed, track as u64));
                e_cols.2.push(at);
                e_cols.3.push(user_id * 100_000 + s as i64);
                e_cols.4.push(ms);
                e_cols.5.push(skipped);
                at += ms * 1000 + rng.random_range(0..5_000_000);
                counts.events += 1;
                if e_cols.0.len() == BATCH_ROWS {
                    write_events(&mut event_sink, &mut e_cols)?;
                    progress(counts.events);
                }
            }
        }

        // Some users keep playlists of tracks from their genres.
        if rng.random_bool(0.4) {
            for _ in 0..rng.random_range(1..=3) {
                next_playlist += 1;
                let genre = taste.genres.choose(rng).copied();
                let label = genre.map(|g| GENRES[g].0).unwrap_or("mix");
                p_cols.0.push(next_playlist);
                p_cols.1.push(user_id);
                p_cols.2.push(format!("{} {}", ["My", "Best of", "Daily", "Late night", "Gym"].choose(rng).expect("non-empty"), label));
                p_cols.3.push(WINDOW_START_US + rng.random_range(0..90) * DAY_US);
                counts.playlists += 1;
                let mut seen = std::collections::HashSet::new();
                for position in 0..rng.random_range(10..=40) {
                    let track = pick_track(rng, &taste, genre, &charts);
                    if seen.insert(track) {
                        t_cols.0.push(next_playlist);
                        t_cols.1.push(position);
                        t_cols.2.push(track_id(seed, track as u64));
                        counts.playlist_tracks += 1;
                    }
                }
            }
        }
        if u_cols.0.len() >= BATCH_ROWS || p_cols.0.len() >= BATCH_ROWS || t_cols.0.len() >= BATCH_ROWS {
            flush_users_playlists(&mut user_sink, &mut playlist_sink, &mut entry_sink, &mut u_cols, &mut p_cols, &mut t_cols)?;
        }
    }
    flush_users_playlists(&mut user_sink, &mut playlist_sink, &mut entry_sink, &mut u_cols, &mut p_cols, &mut t_cols)?;
    write_events(&mut event_sink, &mut e_cols)?;
    progress(counts.events);
    user_sink.close()?;
    event_sink.close()?;
    playlist_sink.close()?;
    entry_sink.close()?;
    Ok(counts)
}

/// Listening-event columns: user, track, played_at, session, ms_played, skipped.
type EventColumns = (Vec<i64>, Vec<String>, Vec<i64>, Vec<i64>, Vec<i64>, Vec<bool>);

fn write_events(sink: &mut ParquetSink, cols: &mut EventColumns) -> Result<()> {
    if cols.0.is_empty() {
        return Ok(());
    }
    let c = std::mem::take(cols);
    sink.write(vec![
        col(Int64Array::from(c.0)),
        col(StringArray::from(c.1)),
        col(TimestampMicrosecondArray::from(c.2).with_timezone("UTC")),
        col(Int64Array::from(c.3)),
        col(Int64Array::from(c.4)),
        col(BooleanArray::from(c.5)),
    ])
}

#[allow(clippy::type_complexity)]
fn flush_users_playlists(
    users: &mut ParquetSink,
    playlists: &mut ParquetSink,
    entries: &mut ParquetSink,
    u: &mut (Vec<i64>, Vec<&str>, Vec<i32>, Vec<&str>),
    p: &mut (Vec<i64>, Vec<i64>, Vec<String>, Vec<i64>),
    t: &mut (Vec<i64>, Vec<i32>, Vec<String>),
) -> Result<()> {
    if !u.0.is_empty() {
        let c = std::mem::take(u);
        users.write(vec![col(Int64Array::from(c.0)), col(StringArray::from(c.1)), col(Date32Array::from(c.2)), col(StringArray::from(c.3))])?;
    }
    if !p.0.is_empty() {
        let c = std::mem::take(p);
        playlists.write(vec![
            col(Int64Array::from(c.0)),
            col(Int64Array::from(c.1)),
            col(StringArray::from(c.2)),
            col(TimestampMicrosecondArray::from(c.3).with_timezone("UTC")),
        ])?;
    }
    if !t.0.is_empty() {
        let c = std::mem::take(t);
        entries.write(vec![col(Int64Array::from(c.0)), col(Int32Array::from(c.1)), col(StringArray::from(c.2))])?;
    }
    Ok(())
}
