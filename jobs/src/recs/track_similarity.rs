//! `track_similarity`: content-based neighbours (seed 001: "suggest similar tracks"), the top K
//! tracks per track by cosine similarity of standardised audio features.
//!
//! Features (12 dimensions): danceability, energy, loudness, speechiness, acousticness,
//! instrumentalness, liveness, valence and tempo, each z-scored over the catalogue (a constant
//! column becomes 0); `key`, a pitch class 0-11, as a point on the circle of fifths, (sin, cos) of
//! 2π·(7·key mod 12)/12, so keys a fifth apart are close and -1 ("no key detected") is (0, 0);
//! `mode` as +0.5 major / -0.5 minor, half the weight of a z-scored feature because it is binary.
//!
//! The features go to `<out>_features(idx, track_id, features)`; the search is exact, on the
//! executors: tasks take slices of the query tracks (hash of the track index) and score each against
//! every track of the broadcast feature table ([`super::top_k`]).

use std::collections::BTreeMap;

use anyhow::Result;
use backbeat_cluster::map_partitions::map_partitions;
use backbeat_cluster::session::{BackbeatSession, WriteMode};

use super::top_k::{TOP_K_DOT, TopKArgs, VectorTable};
use super::{first_row_i64, pinned, require_columns, run_sql};
use crate::job_runner::{ReportSection, RustJobOutput};

/// The z-scored audio features, in vector order.
pub const AUDIO_FEATURES: [&str; 9] =
    ["danceability", "energy", "loudness", "speechiness", "acousticness", "instrumentalness", "liveness", "valence", "tempo"];

/// Feature-vector dimension: the z-scored features, key as two, mode.
pub const FEATURE_DIM: usize = AUDIO_FEATURES.len() + 3;

/// Writes `<out>_features` from `tracks`; returns the number of tracks.
pub async fn write_features(session: &BackbeatSession, tracks: &str, out: &str) -> Result<usize> {
    let mut needed: Vec<&str> = AUDIO_FEATURES.to_vec();
    needed.extend(["track_id", "key", "mode"]);
    require_columns(session, tracks, &needed).await?;
    let stats: Vec<String> = AUDIO_FEATURES
        .iter()
        .map(|f| format!("avg(CAST({f} AS DOUBLE)) AS m_{f}, stddev_pop(CAST({f} AS DOUBLE)) AS s_{f}"))
        .collect();
    let mut vector: Vec<String> = AUDIO_FEATURES
        .iter()
        .map(|f| format!("CAST(coalesce((CAST({f} AS DOUBLE) - m_{f}) / nullif(s_{f}, 0), 0) AS FLOAT)"))
        .collect();
    let fifths = "radians(30.0 * ((7 * key) % 12))";
    vector.push(format!("CAST(CASE WHEN key BETWEEN 0 AND 11 THEN sin({fifths}) ELSE 0 END AS FLOAT)"));
    vector.push(format!("CAST(CASE WHEN key BETWEEN 0 AND 11 THEN cos({fifths}) ELSE 0 END AS FLOAT)"));
    vector.push("CAST(CASE WHEN mode = 1 THEN 0.5 WHEN mode = 0 THEN -0.5 ELSE 0 END AS FLOAT)".into());
    run_sql(session, &format!(
        "CREATE OR REPLACE TABLE {out}_features AS \
         SELECT CAST(row_number() OVER (ORDER BY track_id) - 1 AS BIGINT) AS idx, track_id, make_array({}) AS features \
         FROM (SELECT DISTINCT * FROM {tracks} WHERE track_id IS NOT NULL) t CROSS JOIN (SELECT {} FROM {tracks}) s",
        vector.join(", "),
        stats.join(", ")
    ))
    .await?;
    Ok(first_row_i64(session, &format!("SELECT count(*) FROM {out}_features")).await?[0] as usize)
}

/// The catalogue entry point.
pub async fn run(session: &BackbeatSession, params: &BTreeMap<String, String>) -> Result<RustJobOutput> {
    let (tracks, out) = (params["tracks"].as_str(), params["out"].as_str());
    let k: usize = params["top"].parse()?;
    let n = write_features(session, tracks, out).await?;
    let (uri, version) = pinned(session, &format!("{out}_features")).await?;
    let table = VectorTable { uri, version, idx_col: "idx".into(), vec_col: "features".into(), n };
    let args = TopKArgs { queries: table.clone(), candidates: table, dim: FEATURE_DIM, k, cosine: true, only: None };
    let queries = session.sql(&format!("SELECT idx AS query_idx, idx AS exclude_idx FROM {out}_features")).await?;
    let neighbours = map_partitions(queries, TOP_K_DOT, &serde_json::to_value(&args)?, &["query_idx"])?;
    session.context().register_table("track_neighbours_by_idx", neighbours.into_view())?;
    let result = session
        .sql(&format!(
            "SELECT q.track_id, n.rank, c.track_id AS similar_track_id, n.score FROM track_neighbours_by_idx n \
             JOIN {out}_features q ON n.query_idx = q.idx JOIN {out}_features c ON n.item_idx = c.idx"
        ))
        .await?;
    session.context().deregister_table("track_neighbours_by_idx")?;
    let written = session.write_table(result, out, WriteMode::CreateOrReplace, &[]).await?.collect().await?;
    let rows = backbeat_cluster::session::rows_written(&written);
    let summary = run_sql(session, &format!(
        "SELECT count(DISTINCT track_id) AS tracks, count(*) AS pairs, round(avg(score), 4) AS mean_score, \
         round(avg(CASE WHEN rank = 1 THEN score END), 4) AS mean_top1_score FROM {out}"
    ))
    .await?;
    let schema = summary.first().map(|b| b.schema().as_ref().clone()).unwrap_or_else(arrow::datatypes::Schema::empty);
    Ok(RustJobOutput {
        report: vec![ReportSection { title: format!("content neighbours (top {k}, cosine of {FEATURE_DIM} features)"), schema, batches: summary }],
        rows_written: rows,
    })
}
