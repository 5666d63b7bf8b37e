//! Candidate pairs: the union of several blocking rules, each an equi-join on the cluster, so a
//! pair has to agree on *something* exactly to be compared at all.
//!
//! | rule | joins on | capped |
//! |---|---|---|
//! | 0 | folded title and folded main artist | never: no true pair with both exact is lost |
//! | 1 | one of title and main artist exact, the other within one typo or truncated ([`super::typo_keys`]) | keys of more than `max_block` recordings are skipped |
//! | 2 | folded title | titles of more than `max_title_block` recordings are skipped |
//! | 3 | rarest title token (by catalogue frequency) | tokens in more than `max_token_block` titles are skipped |
//!
//! Rule 1 survives a typo in the artist or in the title, and a truncated title; rule 2 an artist
//! that is something else altogether (a lyric channel, a credit in another order); rule 3 both
//! when the rare word is intact. Until 2026-12-04 rule 1 was "same main artist" (capped at 1,000):
//! every reading met up to 1,000 of its artist's recordings, and with rules 2 and 3 capped at
//! 1,000 too, scale 10 of the generator made 13.6M pairs (8.9M from the rare token alone) and
//! comparing them took 31 s. The caps of rules 2 and 3 are tighter because a title or a word shared
//! by hundreds of recordings cannot pick one of them without the artist, which rules 0 and 1 join on.

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

/// The caps of the blocking rules (see the module table).
#[derive(Debug, Clone, Copy)]
pub struct Caps {
    /// Rule 1: most recordings per typo key.
    pub max_block: i64,
    /// Rule 2: most recordings per title.
    pub max_title_block: i64,
    /// Rule 3: most titles per rare token.
    pub max_token_block: i64,
}

/// SQL for the recordings of `<out>_catalogue` whose `key` (a column) is non-empty and shared by at
/// most `cap` recordings: the catalogue side of a capped blocking rule, and of a training block.
pub fn capped_catalogue(out: &str, key: &str, cap: i64) -> String {
    format!(
        "(SELECT c.* FROM {out}_catalogue c JOIN (SELECT {key} FROM {out}_catalogue WHERE {key} <> '' GROUP BY {key} HAVING count(*) <= {cap}) k \
         ON c.{key} = k.{key})"
    )
}

/// Writes `<out>_pairs(item_id, reading, isrc, rule)` from `<out>_readings`, `<out>_catalogue`
/// and `<out>_catalogue_keys`.
pub async fn block(session: &BackbeatSession, out: &str, caps: Caps) -> Result<BlockingReport> {
    let capped = |key: &str, cap: i64| capped_catalogue(out, key, cap);
    let keys = "unnest(array_concat(typo_keys(title_n, artist_n), typo_keys(artist_n, title_n))) AS k";
    run_sql(session, &format!(
        "CREATE OR REPLACE TABLE {out}_pairs AS WITH rk AS (SELECT item_id, reading, {keys} FROM {out}_readings), \
           ck_capped AS (SELECT isrc, k FROM {out}_catalogue_keys WHERE n <= {max_block}) \
         SELECT item_id, reading, isrc, CAST(min(rule) AS INT) AS rule FROM ( \
           SELECT r.item_id, r.reading, c.isrc, 0 AS rule FROM {out}_readings r JOIN {out}_catalogue c \
             ON r.title_n = c.title_n AND r.artist_n = c.artist_n WHERE r.title_n <> '' \
           UNION ALL SELECT r.item_id, r.reading, c.isrc, 1 AS rule FROM rk r JOIN ck_capped c ON r.k = c.k \
           UNION ALL SELECT r.item_id, r.reading, c.isrc, 2 AS rule FROM {out}_readings r JOIN {title} c ON r.title_n = c.title_n \
           UNION ALL SELECT r.item_id, r.reading, c.isrc, 3 AS rule FROM {out}_readings r JOIN {token} c ON r.rare_token = c.rare_token \
         ) GROUP BY 1, 2, 3",
        max_block = caps.max_block,
        title = capped("title_n", caps.max_title_block),
        token = capped("rare_token", caps.max_token_block),
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
