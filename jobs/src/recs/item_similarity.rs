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

use super::{ident, require_columns, run_sql};
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

/// Builds `<out>`; returns the number of rows written.
pub async fn build(session: &BackbeatSession, c: &ItemSimConfig) -> Result<u64> {
    require_columns(session, &c.events, &[&c.user, &c.item, &c.time]).await?;
    let (events, out) = (&c.events, &c.out);
    let (user, item, time) = (ident(&c.user)?, ident(&c.item)?, ident(&c.time)?);
    run_sql(session, &format!(
        "CREATE OR REPLACE TABLE {out}_history AS \
         SELECT user_id, track_id FROM ( \
           SELECT user_id, track_id, row_number() OVER (PARTITION BY user_id ORDER BY last_played DESC, track_id) AS recency \
           FROM (SELECT {user} AS user_id, {item} AS track_id, max({time}) AS last_played FROM {events} \
                 WHERE {user} IS NOT NULL AND {item} IS NOT NULL GROUP BY 1, 2)) \
         WHERE recency <= {}",
        c.max_history
    ))
    .await?;
    let written = run_sql(session, &format!(
        "CREATE OR REPLACE TABLE {out} AS \
         WITH support AS (SELECT track_id, count(*) AS n FROM {out}_history GROUP BY track_id), \
         pairs AS (SELECT a.track_id AS i, b.track_id AS j, count(*) AS co FROM {out}_history a \
                   JOIN {out}_history b ON a.user_id = b.user_id AND a.track_id < b.track_id \
                   GROUP BY a.track_id, b.track_id HAVING count(*) >= {min_co}), \
         scored AS (SELECT p.i, p.j, CAST(p.co AS DOUBLE) / sqrt(CAST(si.n AS DOUBLE) * CAST(sj.n AS DOUBLE)) \
                           * CAST(p.co AS DOUBLE) / (CAST(p.co AS DOUBLE) + CAST({shrink} AS DOUBLE)) AS score \
                    FROM pairs p JOIN support si ON p.i = si.track_id JOIN support sj ON p.j = sj.track_id), \
         both_ways AS (SELECT i AS track_id, j AS similar_track_id, score FROM scored \
                       UNION ALL SELECT j AS track_id, i AS similar_track_id, score FROM scored) \
         SELECT track_id, CAST(rank AS INT) AS rank, similar_track_id, score FROM ( \
           SELECT track_id, similar_track_id, score, \
                  row_number() OVER (PARTITION BY track_id ORDER BY score DESC, similar_track_id) AS rank FROM both_ways) \
         WHERE rank <= {top}",
        min_co = c.min_co.max(1),
        shrink = c.shrinkage,
        top = c.top
    ))
    .await?;
    super::drop_table(session, &format!("{out}_history"))?;
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
    let schema = summary.first().map(|b| b.schema().as_ref().clone()).unwrap_or_else(arrow::datatypes::Schema::empty);
    Ok(RustJobOutput {
        report: vec![ReportSection { title: format!("item-item neighbours (top {}, history cap {})", c.top, c.max_history), schema, batches: summary }],
        rows_written: rows,
    })
}
