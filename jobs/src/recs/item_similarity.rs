//! `item_similarity`: item-item collaborative filtering from listening events, all in cluster SQL.
//!
//! Each user's history is capped to their `max_history` most recently played distinct tracks, so a
//! heavy listener adds at most max_history² pairs instead of dominating the counts (and the join).
//! Pairs are counted once (i < j) and mirrored. The score is cosine similarity of the items' user
//! sets, damped for small supports by a shrinkage term (Koren 2008):
//!
//! ```text
//! score(i, j) = co(i, j) / sqrt(n_i · n_j) · co(i, j) / (co(i, j) + shrinkage)
//! ```
//!
//! where co is the number of users with both tracks and n the users with each. Pairs seen by fewer
//! than `min_co` users are dropped. Output: `<out>(track_id, rank, similar_track_id, score)`.

use std::collections::BTreeMap;

use anyhow::{Result, ensure};
use backbeat_cluster::session::BackbeatSession;

use indicatif::{ProgressBar, ProgressStyle};

use super::{first_row_i64, ident, require_columns, run_sql};
use crate::job_runner::{ReportSection, RustJobOutput};

/// Parameters of the item-item model.
#[derive(Debug, Clone)]
pub struct ItemSimConfig {
    /// Events table.
    pub events: String,
    /// User column.
    pub user: String,
    /// Item column.
    pub item: String,
    /// Time column, to keep the most recent tracks.
    pub time: String,
    /// Distinct tracks kept per user.
    pub max_history: i64,
    /// Shrinkage term.
    pub shrinkage: f64,
    /// Minimum co-listeners.
    pub min_co: i64,
    /// Neighbours kept per track.
    pub top: i64,
    /// Output table.
    pub out: String,
}

impl ItemSimConfig {
    /// From bound job parameters.
    pub fn from_params(p: &BTreeMap<String, String>) -> Result<Self> {
        let c = Self {
            events: p["events"].clone(),
            user: p["user_col"].clone(),
            item: p["item_col"].clone(),
            time: p["time_col"].clone(),
            max_history: p["max_history"].parse()?,
            shrinkage: p["shrinkage"].parse()?,
            min_co: p["min_co"].parse()?,
            top: p["top"].parse()?,
            out: p["out"].clone(),
        };
        ensure!(c.max_history >= 2 && c.top >= 1 && c.shrinkage >= 0.0, "max_history >= 2, top >= 1 and shrinkage >= 0 are required");
        Ok(c)
    }
}

/// Distinct pairs one aggregation pass may hold: at ~40 bytes a group in DataFusion's hash table,
/// 20M pairs stay near 1 GiB, under the 4 GiB a process may use.
const PAIRS_PER_PASS: i64 = 20_000_000;

/// Builds `<out>`; returns the number of rows written.
///
/// Tracks get dense integer indices first (`<out>_items`), so the pair aggregation groups two
/// integers, not two strings. The pairs are counted in passes over buckets of the first track's
/// index, as many as the history's pair count needs to keep each pass under [`PAIRS_PER_PASS`]
/// groups; each pass appends to the working table `<out>_pairs`, and `<out>` is replaced in one
/// commit at the end, so a failed run leaves the previous version.
pub async fn build(session: &BackbeatSession, c: &ItemSimConfig) -> Result<u64> {
    require_columns(session, &c.events, &[&c.user, &c.item, &c.time]).await?;
    let (events, out) = (&c.events, &c.out);
    let (user, item, time) = (ident(&c.user)?, ident(&c.item)?, ident(&c.time)?);
    let valid = format!("{user} IS NOT NULL AND {item} IS NOT NULL");
    run_sql(session, &format!(
        "CREATE OR REPLACE TABLE {out}_items AS SELECT track_id, CAST(row_number() OVER (ORDER BY track_id) - 1 AS BIGINT) AS t \
         FROM (SELECT DISTINCT {item} AS track_id FROM {events} WHERE {valid})"
    ))
    .await?;
    run_sql(session, &format!(
        "CREATE OR REPLACE TABLE {out}_history AS \
         SELECT h.user_id, i.t FROM ( \
           SELECT user_id, track_id, row_number() OVER (PARTITION BY user_id ORDER BY last_played DESC NULLS LAST, track_id) AS recency \
           FROM (SELECT {user} AS user_id, {item} AS track_id, max({time}) AS last_played FROM {events} \
                 WHERE {valid} GROUP BY 1, 2)) h JOIN {out}_items i ON h.track_id = i.track_id \
         WHERE h.recency <= {}",
        c.max_history
    ))
    .await?;
    let pairs = first_row_i64(session, &format!(
        "SELECT CAST(coalesce(sum(n * (n - 1) / 2), 0) AS BIGINT) AS pairs FROM (SELECT user_id, count(*) AS n FROM {out}_history GROUP BY 1)"
    ))
    .await?[0];
    let passes = (pairs + PAIRS_PER_PASS - 1) / PAIRS_PER_PASS;
    let passes = passes.max(1);
    tracing::info!(pairs, passes, "item-item co-listening pairs");
    let progress = ProgressBar::new(passes as u64)
        .with_style(ProgressStyle::with_template("item-item pairs {pos}/{len} passes {wide_bar} {elapsed}").expect("static template"));
    super::drop_table(session, &format!("{out}_pairs")).await?;
    for pass in 0..passes {
        let verb = if pass == 0 { format!("CREATE TABLE {out}_pairs AS") } else { format!("INSERT INTO {out}_pairs") };
        run_sql(session, &format!(
            "{verb} SELECT a.t AS i, b.t AS j, count(*) AS co FROM {out}_history a \
             JOIN {out}_history b ON a.user_id = b.user_id AND a.t < b.t \
             WHERE a.t % {passes} = {pass} GROUP BY a.t, b.t HAVING count(*) >= {min_co}",
            min_co = c.min_co.max(1)
        ))
        .await?;
        progress.inc(1);
    }
    progress.finish_and_clear();
    // Ranking sees every kept pair twice (i's list and j's): in passes over buckets of the track
    // being ranked, appended to `<out>_ranked`, then named and committed to `<out>` at once.
    let kept = first_row_i64(session, &format!("SELECT count(*) AS kept FROM {out}_pairs")).await?[0];
    let rank_passes = ((2 * kept + PAIRS_PER_PASS - 1) / PAIRS_PER_PASS).max(1);
    super::drop_table(session, &format!("{out}_ranked")).await?;
    for pass in 0..rank_passes {
        let verb = if pass == 0 { format!("CREATE TABLE {out}_ranked AS") } else { format!("INSERT INTO {out}_ranked") };
        run_sql(session, &format!(
            "{verb} WITH support AS (SELECT t, count(*) AS n FROM {out}_history GROUP BY t), \
             scored AS (SELECT p.i, p.j, CAST(p.co AS DOUBLE) / sqrt(CAST(si.n AS DOUBLE) * CAST(sj.n AS DOUBLE)) \
                               * CAST(p.co AS DOUBLE) / (CAST(p.co AS DOUBLE) + CAST({shrink} AS DOUBLE)) AS score \
                        FROM {out}_pairs p JOIN support si ON p.i = si.t JOIN support sj ON p.j = sj.t), \
             both_ways AS (SELECT i AS a, j AS b, score FROM scored WHERE i % {rank_passes} = {pass} \
                           UNION ALL SELECT j AS a, i AS b, score FROM scored WHERE j % {rank_passes} = {pass}) \
             SELECT a, b, score, rank FROM (SELECT a, b, score, row_number() OVER (PARTITION BY a ORDER BY score DESC, b) AS rank FROM both_ways) \
             WHERE rank <= {top}",
            shrink = c.shrinkage,
            top = c.top
        ))
        .await?;
    }
    let written = run_sql(session, &format!(
        "CREATE OR REPLACE TABLE {out} AS SELECT ia.track_id, CAST(r.rank AS INT) AS rank, ib.track_id AS similar_track_id, r.score \
         FROM {out}_ranked r JOIN {out}_items ia ON r.a = ia.t JOIN {out}_items ib ON r.b = ib.t"
    ))
    .await?;
    for working in ["history", "pairs", "ranked", "items"] {
        super::drop_table(session, &format!("{out}_{working}")).await?;
    }
    Ok(backbeat_cluster::session::rows_written(&written))
}

/// The catalogue entry point.
pub async fn run(session: &BackbeatSession, params: &BTreeMap<String, String>) -> Result<RustJobOutput> {
    let c = ItemSimConfig::from_params(params)?;
    let rows = build(session, &c).await?;
    let summary = run_sql(session, &format!(
        "SELECT count(DISTINCT track_id) AS tracks, count(*) AS pairs, round(avg(score), 4) AS mean_score FROM {}",
        c.out
    ))
    .await?;
    Ok(RustJobOutput {
        report: vec![ReportSection::from_batches(format!("item-item neighbours (top {}, history cap {})", c.top, c.max_history), summary)],
        rows_written: rows,
    })
}
