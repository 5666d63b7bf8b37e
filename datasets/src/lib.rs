//! Deterministic generators for backbeat's synthetic datasets: what no real, shippable data covers
//! (audio features, listening histories, an ISRC catalogue with YouTube playlist exports, a shop's
//! repeat purchases), realistic enough that the jobs built on them face real difficulty.
#![warn(missing_docs)]

/// Choosing datasets and scale, progress, and the manifest.
pub mod datagen;
/// ISRC catalogue, YouTube playlist exports and matching ground truth.
pub mod isrc;
/// Users, listening events in sessions, user playlists.
pub mod listening;
/// Multilingual artist names and titles.
pub mod names;
/// Customers, products, orders and order lines from a BG/NBD-like process.
pub mod orders;
/// Seeded, per-entity random streams.
pub mod seeded_rng;
/// Streaming Parquet, CSV and NDJSON writers, with deliberate corruption.
pub mod sinks;
/// Spotify-style tracks with genre-dependent audio features.
pub mod tracks;
