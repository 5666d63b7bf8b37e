//! `isrc_eval`: isrc_match's outputs against labels. The labels are read here and nowhere else:
//! the matcher never sees them.
//!
//! Over the labelled items: precision (correct matches / matches), recall (correct matches /
//! matchable items), F1, the false-match rate (items that must not match but did / such items),
//! the same per kind of video, and the precision/recall curve of the best candidate's probability
//! over thresholds, to choose `match_threshold` from.
//!
//! It also counts the matchable items no matcher can place, and `recall_ceiling`, the recall a
//! matcher that keeps its precision cannot exceed: 1 - such items / matchable items. They are
//! items never in the matcher's input (`unseen_items`: lost before it, such as rows dead-lettered at
//! ingest), items whose recording is not in the catalogue (`missing_recordings`: dead-lettered
//! too), and items whose recording has a *twin* (`twin_items`): another recording with the same
//! folded title and main artist and a length within 2 s ("Stranger" by Billie, and by Billie with
//! Electric Orchestra, from a "Billie - Topic" upload titled "Stranger"), which only a guess can
//! tell apart.
//!

use std::collections::BTreeMap;

use anyhow::Result;
use backbeat_cluster::session::BackbeatSession;

use crate::job_runner::{ReportSection, RustJobOutput};
use crate::recs::{require_columns, run_sql};

/// The catalogue entry point.
pub async fn run(session: &BackbeatSession, params: &BTreeMap<String, String>) -> Result<RustJobOutput> {
    let (truth, m, out, catalogue) = (&params["truth"], &params["matches"], &params["out"], &params["catalogue"]);
    require_columns(session, truth, &["media_item_id", "isrc", "kind"]).await?;
    require_columns(session, catalogue, &["isrc", "title", "artists", "duration_ms"]).await?;
    for t in ["matches", "review", "unmatched"] {
        require_columns(session, &format!("{m}_{t}"), &["item_id"]).await?;
    }
    // One label per video (a video recurs across playlists with the same label).
    let labels = format!("(SELECT media_item_id AS item_id, max(nullif(trim(isrc), '')) AS isrc, max(kind) AS kind FROM {truth} GROUP BY 1)");
    let best = format!(
        "(SELECT item_id, isrc, match_probability AS p FROM {m}_matches UNION ALL SELECT item_id, isrc, match_probability FROM {m}_review \
          UNION ALL SELECT item_id, best_isrc, best_probability FROM {m}_unmatched)"
    );
    let scored = format!(
        "(SELECT l.item_id, l.isrc AS truth, l.kind, mt.isrc AS matched, b.isrc AS best, b.p, b.item_id IS NOT NULL AS seen FROM {labels} l \
          LEFT JOIN {m}_matches mt ON l.item_id = mt.item_id LEFT JOIN {best} b ON l.item_id = b.item_id)"
    );
    let folded = format!("(SELECT isrc, fold_text(title) AS t, {} AS a, duration_ms FROM {catalogue})", super::features::main_artist_sql("artists"));
    let twins = format!(
        "(SELECT DISTINCT x.isrc FROM {folded} x JOIN {folded} y ON x.t = y.t AND x.a = y.a \
          WHERE x.isrc <> y.isrc AND abs(x.duration_ms - y.duration_ms) <= 2000)"
    );
    let mut written = run_rows(session, &format!(
        "CREATE OR REPLACE TABLE {out} AS WITH tw AS {twins}, \
         s AS (SELECT s0.*, tw.isrc IS NOT NULL AS twin, c.isrc IS NULL AS missing FROM {scored} s0 LEFT JOIN tw ON s0.truth = tw.isrc \
               LEFT JOIN (SELECT DISTINCT isrc FROM {catalogue}) c ON s0.truth = c.isrc), \
         c AS (SELECT sum(CASE WHEN truth IS NOT NULL THEN 1 ELSE 0 END) AS matchable, \
                      sum(CASE WHEN truth IS NULL THEN 1 ELSE 0 END) AS must_not_match, \
                      sum(CASE WHEN matched IS NOT NULL THEN 1 ELSE 0 END) AS matched, \
                      sum(CASE WHEN matched IS NOT NULL AND matched = truth THEN 1 ELSE 0 END) AS correct, \
                      sum(CASE WHEN matched IS NOT NULL AND truth IS NULL THEN 1 ELSE 0 END) AS false_on_non_matchable, \
                      sum(CASE WHEN truth IS NOT NULL AND NOT seen THEN 1 ELSE 0 END) AS unseen, \
                      sum(CASE WHEN truth IS NOT NULL AND seen AND missing THEN 1 ELSE 0 END) AS missing, \
                      sum(CASE WHEN seen AND twin THEN 1 ELSE 0 END) AS twin_items, \
                      count(*) AS labelled FROM s) \
         SELECT metric, value FROM ( \
           SELECT 1 AS o, 'labelled_items' AS metric, CAST(labelled AS DOUBLE) AS value FROM c \
           UNION ALL SELECT 2, 'matchable_items', CAST(matchable AS DOUBLE) FROM c \
           UNION ALL SELECT 3, 'matched', CAST(matched AS DOUBLE) FROM c \
           UNION ALL SELECT 4, 'precision', CAST(correct AS DOUBLE) / nullif(matched, 0) FROM c \
           UNION ALL SELECT 5, 'recall', CAST(correct AS DOUBLE) / nullif(matchable, 0) FROM c \
           UNION ALL SELECT 6, 'f1', 2.0 * correct / nullif(matched + matchable, 0) FROM c \
           UNION ALL SELECT 7, 'false_match_rate', CAST(false_on_non_matchable AS DOUBLE) / nullif(must_not_match, 0) FROM c \
           UNION ALL SELECT 8, 'unseen_items', CAST(unseen AS DOUBLE) FROM c \
           UNION ALL SELECT 9, 'missing_recordings', CAST(missing AS DOUBLE) FROM c \
           UNION ALL SELECT 10, 'twin_items', CAST(twin_items AS DOUBLE) FROM c \
           UNION ALL SELECT 11, 'recall_ceiling', 1.0 - CAST(unseen + missing + twin_items AS DOUBLE) / nullif(matchable, 0) FROM c) ORDER BY o"
    ))
    .await?;
    written += run_rows(session, &format!(
        "CREATE OR REPLACE TABLE {out}_by_kind AS WITH s AS {scored} \
         SELECT kind, count(*) AS items, sum(CASE WHEN matched IS NOT NULL THEN 1 ELSE 0 END) AS matched, \
                sum(CASE WHEN matched IS NOT NULL AND matched = truth THEN 1 ELSE 0 END) AS correct, \
                sum(CASE WHEN matched IS NOT NULL AND (truth IS NULL OR matched <> truth) THEN 1 ELSE 0 END) AS wrong \
         FROM s GROUP BY kind ORDER BY kind"
    ))
    .await?;
    let thresholds: Vec<String> = [0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999].iter().map(|t| format!("({t})")).collect();
    written += run_rows(session, &format!(
        "CREATE OR REPLACE TABLE {out}_curve AS WITH s AS {scored}, \
         t AS (SELECT CAST(column1 AS DOUBLE) AS threshold FROM (VALUES {})), \
         c AS (SELECT t.threshold, sum(CASE WHEN s.p >= t.threshold THEN 1 ELSE 0 END) AS predicted, \
                      sum(CASE WHEN s.p >= t.threshold AND s.best = s.truth THEN 1 ELSE 0 END) AS correct, \
                      sum(CASE WHEN s.truth IS NOT NULL THEN 1 ELSE 0 END) AS matchable FROM s CROSS JOIN t GROUP BY t.threshold) \
         SELECT threshold, CAST(correct AS DOUBLE) / nullif(predicted, 0) AS precision, CAST(correct AS DOUBLE) / nullif(matchable, 0) AS recall, \
                2.0 * correct / nullif(predicted + matchable, 0) AS f1 FROM c ORDER BY threshold",
        thresholds.join(", ")
    ))
    .await?;
    let mut report = Vec::new();
    let order = "array_position(make_array('labelled_items', 'matchable_items', 'matched', 'precision', 'recall', 'f1', 'false_match_rate', 'unseen_items', 'missing_recordings', 'twin_items', 'recall_ceiling'), metric)";
    for (title, sql) in [
        ("isrc_eval", format!("SELECT * FROM {out} ORDER BY {order}")),
        ("by kind of video", format!("SELECT * FROM {out}_by_kind ORDER BY kind")),
        ("precision/recall by threshold", format!("SELECT * FROM {out}_curve ORDER BY threshold")),
    ] {
        report.push(ReportSection::from_batches(title, run_sql(session, &sql).await?));
    }
    Ok(RustJobOutput { report, rows_written: written })
}

async fn run_rows(session: &BackbeatSession, sql: &str) -> Result<u64> {
    Ok(backbeat_cluster::session::rows_written(&run_sql(session, sql).await?))
}
