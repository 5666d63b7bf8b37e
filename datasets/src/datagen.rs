//! `backbeat datagen`: which datasets to generate at which scale, progress, and the manifest.
//!
//! Layout of the output directory (usable directly as a lake: each Parquet table is a directory):
//!
//! ```text
//! tracks/part-0.parquet               users/ listening_events/ user_playlists/ user_playlist_tracks/
//! sources/isrc/catalogue.csv          sources/isrc/youtube_playlists.ndjson   sources/isrc/ground_truth.csv
//! sources/orders/{customers,products,orders,order_details,duplicates}.csv
//! manifest.json                       what was generated, counts, and every corrupted row
//! ```

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::sinks::{DirtyRow, dataset_dir};
use crate::{isrc, listening, orders, tracks};

/// One generated dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Dataset {
    /// Spotify-style tracks with audio features.
    Tracks,
    /// Users, listening events, user playlists.
    Listening,
    /// ISRC catalogue, YouTube playlist exports, ground truth.
    Isrc,
    /// Customers, products, orders, order lines.
    Orders,
}

impl Dataset {
    /// All datasets, in generation order.
    pub const ALL: [Dataset; 4] = [Dataset::Tracks, Dataset::Listening, Dataset::Isrc, Dataset::Orders];

    /// Parses a dataset name.
    pub fn parse(name: &str) -> Result<Self> {
        Ok(match name.trim() {
            "tracks" => Dataset::Tracks,
            "listening" => Dataset::Listening,
            "isrc" => Dataset::Isrc,
            "orders" => Dataset::Orders,
            other => bail!("unknown dataset '{other}' (choose from tracks, listening, isrc, orders)"),
        })
    }
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct DatagenConfig {
    /// Scale: 1 is small (seconds), 100 is about 1M tracks and 10M listening events.
    pub scale: f64,
    /// Random seed: the same seed and scale give byte-identical files.
    pub seed: u64,
    /// Output directory.
    pub out: PathBuf,
    /// Datasets to generate.
    pub datasets: Vec<Dataset>,
    /// Share of CSV rows and JSON lines to corrupt, for ingest tests.
    pub dirty_rate: f64,
}

/// Row counts by dataset and table.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Counts {
    /// Tracks.
    pub tracks: Option<u64>,
    /// Listening tables.
    pub listening: Option<listening::ListeningCounts>,
    /// ISRC files.
    pub isrc: Option<isrc::IsrcCounts>,
    /// Order tables.
    pub orders: Option<orders::OrderCounts>,
}

/// `manifest.json`: the parameters, the counts and every row corrupted on purpose.
#[derive(Debug, Clone, Serialize)]
pub struct Manifest {
    /// Seed used.
    pub seed: u64,
    /// Scale used.
    pub scale: f64,
    /// Dirty rate requested.
    pub dirty_rate: f64,
    /// Rows written.
    pub counts: Counts,
    /// Corrupted rows, by file and line.
    pub dirty_rows: Vec<DirtyRow>,
}

impl Manifest {
    /// Total rows written across all tables and files.
    pub fn total_rows(&self) -> u64 {
        let c = &self.counts;
        c.tracks.unwrap_or(0)
            + c.listening.as_ref().map_or(0, |l| l.users + l.events + l.playlists + l.playlist_tracks)
            + c.isrc.as_ref().map_or(0, |i| i.catalogue + i.items)
            + c.orders.as_ref().map_or(0, |o| o.customers + o.products + o.orders + o.order_details)
    }
}

fn bar(multi: &MultiProgress, name: &str, total: u64) -> ProgressBar {
    let bar = multi.add(ProgressBar::new(total));
    bar.set_style(
        ProgressStyle::with_template("{prefix:>10} {bar:30} {human_pos}/{human_len} rows {per_sec} [{elapsed}]").expect("static template"),
    );
    bar.set_prefix(name.to_string());
    bar
}


/// Generates the configured datasets and writes `manifest.json`.
pub fn generate(config: &DatagenConfig) -> Result<Manifest> {
    if !(config.scale > 0.0) {
        bail!("--scale must be positive");
    }
    if !(0.0..0.5).contains(&config.dirty_rate) {
        bail!("--dirty-rate must be in [0, 0.5)");
    }
    std::fs::create_dir_all(&config.out).with_context(|| format!("cannot create {}", config.out.display()))?;
    let started = Instant::now();
    let multi = MultiProgress::new();
    let s = config.scale;
    let seed = config.seed;
    let want = |d: Dataset| config.datasets.contains(&d);
    let mut counts = Counts::default();
    let mut dirty = Vec::new();

    // Listening picks tracks by genre and popularity, so it needs the track index even when the
    // tracks file itself is not asked for.
    let track_count = (tracks::TRACKS_PER_SCALE * s).round().max(200.0) as u64;
    let track_index = if want(Dataset::Tracks) || want(Dataset::Listening) {
        let b = bar(&multi, "tracks", track_count);
        let dir = want(Dataset::Tracks).then(|| dataset_dir(&config.out, "tracks")).transpose()?;
        let index = tracks::generate(seed, track_count, dir.as_deref(), |n| b.set_position(n))?;
        b.finish();
        if want(Dataset::Tracks) {
            counts.tracks = Some(track_count);
        }
        Some(index)
    } else {
        None
    };

    if want(Dataset::Listening) {
        let users = (listening::USERS_PER_SCALE * s).round().max(20.0) as u64;
        let events = (listening::EVENTS_PER_SCALE * s).round().max(1000.0) as u64;
        let b = bar(&multi, "listening", events);
        let c = listening::generate(seed, users, events, track_index.as_ref().expect("built above"), &config.out, |n| b.set_position(n))?;
        b.finish();
        counts.listening = Some(c);
    }

    if want(Dataset::Isrc) {
        let catalogue = (isrc::CATALOGUE_PER_SCALE * s).round().max(100.0) as u64;
        let items = (isrc::ITEMS_PER_SCALE * s).round().max(100.0) as u64;
        let b = bar(&multi, "isrc", catalogue + items);
        let dir = dataset_dir(&config.out, "sources/isrc")?;
        let mut c = isrc::generate(seed, catalogue, items, config.dirty_rate, &dir, |n| b.set_position(n))?;
        b.finish();
        prefix_files(&mut c.dirty, "sources/isrc");
        dirty.append(&mut c.dirty);
        counts.isrc = Some(c);
    }

    if want(Dataset::Orders) {
        let customers = (orders::CUSTOMERS_PER_SCALE * s).round().max(50.0) as u64;
        let b = bar(&multi, "orders", customers * 4);
        let dir = dataset_dir(&config.out, "sources/orders")?;
        let mut c = orders::generate(seed, customers, config.dirty_rate, &dir, |n| b.set_position(n))?;
        b.finish();
        prefix_files(&mut c.dirty, "sources/orders");
        dirty.append(&mut c.dirty);
        counts.orders = Some(c);
    }

    let manifest = Manifest { seed, scale: s, dirty_rate: config.dirty_rate, counts, dirty_rows: dirty };
    let path = config.out.join("manifest.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&manifest)?).with_context(|| format!("cannot write {}", path.display()))?;
    print_summary(&manifest, started.elapsed().as_secs_f64());
    Ok(manifest)
}

fn prefix_files(rows: &mut [DirtyRow], prefix: &str) {
    for row in rows {
        row.file = format!("{prefix}/{}", row.file);
    }
}

fn print_summary(manifest: &Manifest, seconds: f64) {
    let rows = manifest.total_rows();
    eprintln!(
        "generated {rows} rows in {seconds:.1} s ({:.0} rows/s), {} corrupted rows recorded in manifest.json",
        rows as f64 / seconds.max(1e-9),
        manifest.dirty_rows.len()
    );
}
