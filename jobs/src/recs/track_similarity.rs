//! `track_similarity`: content-based neighbours (seed 001: "suggest similar tracks"), the top K
//! tracks per track by cosine similarity of standardised audio features.
//!
//! Features (12 dimensions): danceability, energy, loudness, speechiness, acousticness,
//! instrumentalness, liveness, valence and tempo, each z-scored over the catalogue (a constant
//! column becomes 0); `key`, a pitch class 0-11, as a point on the circle of fifths, (sin, cos) of
//! 2π·(7·key mod 12)/12, so keys a fifth apart are close and -1 ("no key detected") is (0, 0);
//! `mode` as +0.5 major / -0.5 minor, half the weight of a z-scored feature because it is binary.
//!
//! The features go to `<out>_features(idx, track_id, features)`; the search runs on the executors:
//! tasks take slices of the query tracks (hash of the track index) and score each against the
//! broadcast feature table ([`super::top_k`]). Up to [`EXACT_UP_TO`] tracks it is exact; above, by
//! default (`method=auto`), it goes through an IVF index ([`super::ivf`]) and the job measures the
//! index's recall@K against exact search on [`RECALL_SAMPLE`] tracks and reports it.

use std::collections::BTreeMap;

use anyhow::{Result, bail, ensure};
use backbeat_cluster::map_partitions::map_partitions;
use backbeat_cluster::session::{BackbeatSession, WriteMode};

use super::ivf::IvfParams;
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
    // One row per track (a catalogue may list a track once per genre, as Spotify's does), and only
    // tracks with at least one audio feature: a track without any would be a zero vector.
    let per_track: Vec<String> = AUDIO_FEATURES.iter().map(|f| format!("avg(CAST({f} AS DOUBLE)) AS {f}")).collect();
    let any_feature: Vec<String> = AUDIO_FEATURES.iter().map(|f| format!("count({f})")).collect();
    run_sql(session, &format!(
        "CREATE OR REPLACE TABLE {out}_features AS \
         WITH t AS (SELECT track_id, {}, min(key) AS key, min(mode) AS mode FROM {tracks} WHERE track_id IS NOT NULL \
                    GROUP BY track_id HAVING {} > 0), \
              s AS (SELECT {} FROM t) \
         SELECT CAST(row_number() OVER (ORDER BY track_id) - 1 AS BIGINT) AS idx, track_id, make_array({}) AS features \
         FROM t CROSS JOIN s",
        per_track.join(", "),
        any_feature.join(" + "),
        stats.join(", "),
        vector.join(", ")
    ))
    .await?;
    Ok(first_row_i64(session, &format!("SELECT count(*) FROM {out}_features")).await?[0] as usize)
}

/// How the neighbours are searched.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Method {
    /// Every track against every track.
    Exact,
    /// An IVF index ([`super::ivf`]), recall measured against exact on a sample.
    Ivf(IvfParams),
}

/// Below this many tracks `auto` searches exactly: 50k² dot products take about 10 s on 2 cores.
pub const EXACT_UP_TO: usize = 50_000;

/// Queries in the exact sample that measures an approximate search's recall.
pub const RECALL_SAMPLE: usize = 1_000;

impl Method {
    /// From the `method` and `probes` parameters, for `n` tracks.
    pub fn from_params(method: &str, probes: usize, n: usize) -> Result<Self> {
        let ivf = Method::Ivf(IvfParams { lists: 0, probes, seed: 42 });
        match method {
            "exact" => Ok(Method::Exact),
            "ivf" => Ok(ivf),
            "auto" if n <= EXACT_UP_TO => Ok(Method::Exact),
            "auto" => Ok(ivf),
            other => bail!("method must be auto, exact or ivf, not '{other}'"),
        }
    }
}

/// The catalogue entry point.
pub async fn run(session: &BackbeatSession, params: &BTreeMap<String, String>) -> Result<RustJobOutput> {
    let (tracks, out) = (params["tracks"].as_str(), params["out"].as_str());
    let k: usize = params["top"].parse()?;
    ensure!(k >= 1, "top must be at least 1");
    let probes: usize = params.get("probes").map_or(Ok(16), |p| p.parse())?;
    let n = write_features(session, tracks, out).await?;
    ensure!(n > 0, "'{tracks}' has no track with a track_id: there is nothing to compare");
    let method = Method::from_params(params.get("method").map_or("auto", String::as_str), probes, n)?;
    let (uri, version) = pinned(session, &format!("{out}_features")).await?;
    let table = VectorTable { uri, version, idx_col: "idx".into(), vec_col: "features".into(), n };
    let ivf = match method {
        Method::Exact => None,
        Method::Ivf(p) => Some(p),
    };
    let args = TopKArgs { queries: table.clone(), candidates: table, dim: FEATURE_DIM, k, cosine: true, only: None, ivf };
    let rows = neighbours(session, out, &args, None, out).await?;
    let mut report = vec![];
    if let Some(ivf) = ivf {
        let stride = n.div_ceil(RECALL_SAMPLE).max(1);
        let exact = format!("{out}_exact_sample");
        neighbours(session, out, &TopKArgs { ivf: None, ..args.clone() }, Some(stride), &exact).await?;
        let recall = run_sql(session, &format!(
            "SELECT count(DISTINCT e.track_id) AS sampled_tracks, CAST({k} AS INT) AS k, CAST({probes} AS INT) AS probes,              round(CAST(count(a.similar_track_id) AS DOUBLE) / count(*), 4) AS recall_at_k              FROM {exact} e LEFT JOIN {out} a ON e.track_id = a.track_id AND e.similar_track_id = a.similar_track_id",
            probes = ivf.probes
        ))
        .await?;
        super::drop_table(session, &exact).await?;
        report.push(ReportSection::from_batches(format!("IVF recall@{k} against exact search on every {stride}th track"), recall));
    }
    let summary = run_sql(session, &format!(
        "SELECT count(DISTINCT track_id) AS tracks, count(*) AS pairs, round(avg(score), 4) AS mean_score, \
         round(avg(CASE WHEN rank = 1 THEN score END), 4) AS mean_top1_score FROM {out}"
    ))
    .await?;
    let how = if ivf.is_some() { "IVF" } else { "exact" };
    report.insert(0, ReportSection::from_batches(format!("content neighbours (top {k}, cosine of {FEATURE_DIM} features, {how})"), summary));
    Ok(RustJobOutput { report, rows_written: rows })
}

/// Writes `dest(track_id, rank, similar_track_id, score)` for every track, or with `stride` for
/// the tracks whose index is a multiple of it; returns the rows written.
async fn neighbours(session: &BackbeatSession, out: &str, args: &TopKArgs, stride: Option<usize>, dest: &str) -> Result<u64> {
    let filter = stride.map(|s| format!(" WHERE idx % {s} = 0")).unwrap_or_default();
    let queries = session.sql(&format!("SELECT idx AS query_idx, idx AS exclude_idx FROM {out}_features{filter}")).await?;
    let found = map_partitions(queries, TOP_K_DOT, &serde_json::to_value(args)?, &["query_idx"])?;
    let view = format!("{dest}_by_idx");
    session.context().register_table(view.as_str(), found.into_view())?;
    let result = session
        .sql(&format!(
            "SELECT q.track_id, n.rank, c.track_id AS similar_track_id, n.score FROM {view} n \
             JOIN {out}_features q ON n.query_idx = q.idx JOIN {out}_features c ON n.item_idx = c.idx"
        ))
        .await;
    session.context().deregister_table(view.as_str())?;
    let written = session.write_table(result?, dest, WriteMode::CreateOrReplace, &[]).await?.collect().await?;
    Ok(backbeat_cluster::session::rows_written(&written))
}
