//! ISRC matching (seed 004): which catalogue recording each YouTube playlist video is. Titles are
//! parsed into artist, title and version tags by a UDF on the executors; candidate pairs come
//! from blocking joins; pairs are weighed by Fellegi-Sunter with m and u estimated without labels,
//! as Splink does; the best recording per item is a match, a case for review, or no match.
//! Covers, karaoke, instrumentals and tutorials never match the original.

use anyhow::{Context, Result};
use backbeat_cluster::session::BackbeatSession;
use backbeat_connectors::export::{ExportOptions, export_table, target_for};

use crate::job_catalogue::Job;
use crate::job_params::{ParamSpec, ParamType as T};

/// Candidate pairs from blocking rules.
pub mod blocking;
/// Per-pair comparison levels of titles and artists, as SQL functions.
pub mod compare;
/// Precision, recall and the false-match rate against labels (`isrc_eval`).
pub mod eval;
/// The comparison fields of items and catalogue.
pub mod features;
/// Comparison levels, u from random pairs, m by EM, match weights.
pub mod fellegi_sunter;
/// The matching job (`isrc_match`).
pub mod isrc_match;
/// Artist, title and version tags from a video title.
pub mod title_parser;
/// Blocking keys that survive one typo or a truncation.
pub mod typo_keys;
/// The parser as SQL functions.
pub mod udf;
/// Version tags and packaging words.
pub mod version_tags;

/// Registers the matching UDFs in this process.
pub fn register() {
    udf::register();
    compare::register();
    typo_keys::register();
}

/// The matching jobs of the catalogue.
pub fn catalogue_jobs() -> Vec<Job> {
    let p = ParamSpec::with_default;
    let matching = vec![
        p("items", T::Table, "media_items", "videos: media_item_id, title, channel_name, duration_s (ingested with jobs/ingest/youtube_playlists.yaml)"),
        p("metadata_log", T::Text, "media_item_metadata_log", "observations with primary_title and secondary_title, the fallback when a title is noise (empty: none)"),
        p("catalogue", T::Table, "isrc_catalogue", "recordings: isrc, title, artists, duration_ms (ingested with jobs/ingest/isrc_catalogue.yaml)"),
        p("match_threshold", T::Float, "0.9", "least match probability of a match"),
        p("review_threshold", T::Float, "0.5", "least match probability for the review table; below it an item is unmatched"),
        p("max_block", T::Int, "50", "blocking rule 1: a typo key (an exact title or artist with the other nearly equal) of more recordings is skipped"),
        p("max_title_block", T::Int, "30", "blocking rule 2: a title shared by more recordings is skipped (it cannot pick one without the artist)"),
        p("max_token_block", T::Int, "100", "blocking rule 3: a rarest title word in more catalogue titles is skipped"),
        p("u_sample_items", T::Int, "2000", "items in the random pairs u is estimated from"),
        p("u_sample_recordings", T::Int, "500", "recordings in the random pairs u is estimated from"),
        p("train_items", T::Int, "20000", "readings sampled to learn m from: each meets every recording of its artist, and of its title"),
        p("seed", T::Text, "42", "seed of the random pairs"),
        p("full", T::Text, "false", "true: match every item again, not only new or changed ones"),
        p("out", T::Table, "isrc", "prefix: <out>_matches, <out>_review, <out>_unmatched, <out>_model, <out>_item_state"),
        p("export_to", T::Text, "", "postgres://... to write the matches to (empty: lake only)"),
    ];
    let eval = vec![
        p("truth", T::Table, "isrc_ground_truth", "labels: media_item_id, isrc (empty: must not match), kind (ingested with jobs/ingest/isrc_ground_truth.yaml)"),
        p("matches", T::Text, "isrc", "prefix of isrc_match's outputs"),
        p("catalogue", T::Table, "isrc_catalogue", "recordings (isrc, title, artists, duration_ms): where two of them cannot be told apart, recall_ceiling says so"),
        p("out", T::Table, "isrc_eval", "output: <out>(metric, value), <out>_curve(threshold, precision, recall, f1), <out>_by_kind"),
    ];
    let job = Job::rust;
    vec![
        job("isrc_match", "Match playlist videos to catalogue recordings by ISRC: title parsing, blocking, Fellegi-Sunter weights (m, u by EM, no labels); incremental", matching, |s, p| Box::pin(isrc_match::run(s, p))),
        job("isrc_eval", "Precision, recall, F1 and the false-match rate of isrc_match against labels, and the precision/recall curve over thresholds", eval, |s, p| Box::pin(eval::run(s, p))),
    ]
}

/// `<out>_matches` to PostgreSQL (seed 004's store), keyed by item id, through the export library.
pub(crate) async fn export_matches(session: &BackbeatSession, out: &str, url: &str) -> Result<()> {
    anyhow::ensure!(url.starts_with("postgres"), "export_to must be a postgres:// URL (seed 004's store), not '{url}'");
    let table = format!("{out}_matches");
    let options = ExportOptions { name: Some(table.clone()), key: vec!["item_id".into()], ..Default::default() };
    let target = target_for(url, &table, &options)?;
    let report = export_table(session, &table, None, &target, false).await.with_context(|| format!("exporting {table}"))?;
    tracing::info!(rows = report.rows, target = %report.target, "matches exported");
    Ok(())
}
