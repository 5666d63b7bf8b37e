//! Candidate pairs: the union of several blocking rules, each an equi-join on the cluster, so a
//! pair has to agree on *something* exactly to be compared at all.
//!
//! | rule | joins on | capped |
//! |---|---|---|
//! | 0 | folded title and folded main artist | never: no true pair with both exact is lost |
//! | 1 | folded title | catalogue titles shared by more than `max_block` recordings are skipped |
//! | 2 | folded main artist | artists with more than `max_block` recordings are skipped |
//! | 3 | rarest title token (by catalogue frequency) | tokens in more than `max_block` titles are skipped |
//!
//! Rule 1 survives a typo in the artist, rule 2 one in the title or a truncated title, rule 3 both
//! when the rare word is intact. The caps bound the work on catalogues with "Intro" thousands of
//! times; rule 0 keeps what they would lose when title and artist are both exact.

use anyhow::Result;
use backbeat_cluster::session::BackbeatSession;

use crate::recs::{first_row_i64, run_sql};

/// How many pairs blocking produced, per rule and in all.
#[derive(Debug, Clone, Default)]
pub struct BlockingReport {
    /// Readings (items, plus swapped readings) blocked.
    pub readings: i64,
    /// Catalogue recordings.
    pub recordings: i64,
    /// Distinct (reading, recording) pairs.
    pub pairs: i64,
    /// Pairs first found by each rule (a pair found by several counts under the lowest).
    pub by_rule: [i64; 4],
}

impl BlockingReport {
    /// 1 - pairs / (readings x recordings): the share of the cross product never compared.
    pub fn reduction_ratio(&self) -> f64 {
        let all = self.readings as f64 * self.recordings as f64;
        if all == 0.0 { 1.0 } else { 1.0 - self.pairs as f64 / all }
    }
}

/// Writes `<out>_pairs(item_id, reading, isrc, rule)` from `<out>_readings` and `<out>_catalogue`.
pub async fn block(session: &BackbeatSession, out: &str, max_block: i64) -> Result<BlockingReport> {
    let capped = |key: &str| {
        format!(
            "(SELECT c.isrc, c.{key} FROM {out}_catalogue c JOIN (SELECT {key} FROM {out}_catalogue WHERE {key} <> '' GROUP BY {key} HAVING count(*) <= {max_block}) k \
             ON c.{key} = k.{key})"
        )
    };
    run_sql(session, &format!(
        "CREATE OR REPLACE TABLE {out}_pairs AS SELECT item_id, reading, isrc, CAST(min(rule) AS INT) AS rule FROM ( \
           SELECT r.item_id, r.reading, c.isrc, 0 AS rule FROM {out}_readings r JOIN {out}_catalogue c \
             ON r.title_n = c.title_n AND r.artist_n = c.artist_n WHERE r.title_n <> '' \
           UNION ALL SELECT r.item_id, r.reading, c.isrc, 1 AS rule FROM {out}_readings r JOIN {title} c ON r.title_n = c.title_n \
           UNION ALL SELECT r.item_id, r.reading, c.isrc, 2 AS rule FROM {out}_readings r JOIN {artist} c ON r.artist_n = c.artist_n \
           UNION ALL SELECT r.item_id, r.reading, c.isrc, 3 AS rule FROM {out}_readings r JOIN {token} c ON r.rare_token = c.rare_token \
         ) GROUP BY 1, 2, 3",
        title = capped("title_n"),
        artist = capped("artist_n"),
        token = capped("rare_token"),
    ))
    .await?;
    let counts = first_row_i64(session, &format!(
        "SELECT (SELECT count(*) FROM {out}_readings) AS readings, (SELECT count(*) FROM {out}_catalogue) AS recordings, \
                count(*) AS pairs, sum(CASE WHEN rule = 0 THEN 1 ELSE 0 END) AS r0, sum(CASE WHEN rule = 1 THEN 1 ELSE 0 END) AS r1, \
                sum(CASE WHEN rule = 2 THEN 1 ELSE 0 END) AS r2, sum(CASE WHEN rule = 3 THEN 1 ELSE 0 END) AS r3 FROM {out}_pairs"
    ))
    .await?;
    Ok(BlockingReport { readings: counts[0], recordings: counts[1], pairs: counts[2], by_rule: [counts[3], counts[4], counts[5], counts[6]] })
}
