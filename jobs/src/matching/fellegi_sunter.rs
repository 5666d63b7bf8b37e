//! Fellegi-Sunter scoring as Splink does it: each field's agreement is a *level*, each level has an
//! m (P(level | match)) and a u (P(level | non-match)); a pair's match weight is
//! log2(λ/(1-λ)) + Σ log2(m/u) and its probability 2^w / (1 + 2^w). No labels are used:
//! - u comes from random (item, recording) pairs, which are almost all non-matches;
//! - m and λ come from expectation maximisation over the blocked pairs, with u held fixed.
//!
//! The per-pair work (string comparisons, levels, weights) runs on the cluster; EM sees only the
//! count of pairs per *pattern* of levels (at most 7 x 5 x 5 x 2 = 350 rows), so it is exact and
//! takes microseconds whatever the number of pairs. λ here is the match rate among *blocked*
//! pairs, the prior a blocked pair's probability needs (Splink's λ is over all pairs and its
//! blocking is accounted for in the EM's weights; the posterior of a blocked pair is the same idea).

use std::fmt::Write as _;

use anyhow::{Context, Result};
use arrow::array::AsArray;
use arrow::datatypes::Int64Type;
use backbeat_cluster::session::BackbeatSession;
use serde::{Deserialize, Serialize};

use crate::recs::run_sql;

/// The compared fields, in pattern order, with their number of levels (level -1 is "null": a
/// missing value, which neither supports nor opposes a match).
pub const FIELDS: [(&str, usize); 4] = [("title", super::compare::TITLE_LEVELS), ("artist", super::compare::ARTIST_LEVELS), ("duration", 4), ("version", 2)];

/// The levels of a pair, from the columns of [`pair_columns_sql`]. Higher is closer; title and
/// artist levels are computed by [`super::compare`] (see its table). Tried and dropped
/// (2026-12-05): a null duration level when the video carries a length-changing tag (sped up,
/// live) the recording does not. Half of the wrong best candidates at scale 10 were such
/// variant uploads, but without the length they went to review with their right recording too:
/// recall 0.8990 to 0.8976 and precision 0.9946 to 0.9940 at 0.9.
pub fn levels_sql() -> String {
    "title_level(r_title_n, c_title_n) AS title_level, \
     artist_level(r_artist_n, c_artist_n, r_artists_n, c_artists_n) AS artist_level, \
     CASE WHEN r_duration_s IS NULL OR c_duration_s IS NULL THEN -1 WHEN abs(r_duration_s - c_duration_s) <= 2 THEN 3 \
          WHEN abs(r_duration_s - c_duration_s) <= 10 THEN 2 WHEN abs(r_duration_s - c_duration_s) <= 30 THEN 1 ELSE 0 END AS duration_level, \
     CASE WHEN r_version_key = c_version_key THEN 1 ELSE 0 END AS version_level"
        .to_string()
}

/// The columns [`levels_sql`] reads, from the aliases `r` (reading) and `c` (catalogue) of a join.
pub fn pair_columns_sql() -> &'static str {
    "r.title_n AS r_title_n, c.title_n AS c_title_n, r.artist_n AS r_artist_n, c.artist_n AS c_artist_n, \
     r.artists_n AS r_artists_n, c.artists_n AS c_artists_n, r.duration_s AS r_duration_s, c.duration_s AS c_duration_s, \
     r.version_key AS r_version_key, c.version_key AS c_version_key"
}

/// Fitted parameters: `m[f][l]` and `u[f][l]` for field `f` at level `l`, and λ.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Model {
    /// P(level | match) per field and level.
    pub m: Vec<Vec<f64>>,
    /// P(level | non-match) per field and level.
    pub u: Vec<Vec<f64>>,
    /// P(match) of a blocked pair.
    pub lambda: f64,
    /// EM iterations run.
    pub iterations: usize,
}

/// A pattern of levels (one per field, -1 = null) and how many pairs have it.
pub type Pattern = ([i32; 4], f64);

/// Reads `(pset, title_level, artist_level, duration_level, version_level, n)` rows into `sets`
/// lists of patterns, `pset` (0-based) saying which: one query, so one Ballista job, for every
/// set of pairs the fit needs, where there were four.
pub async fn pattern_sets(session: &BackbeatSession, sql: &str, sets: usize) -> Result<Vec<Vec<Pattern>>> {
    let mut out = vec![Vec::new(); sets];
    for batch in run_sql(session, sql).await? {
        let cols: Vec<_> = (0..6)
            .map(|i| arrow::compute::cast(batch.column(i), &arrow::datatypes::DataType::Int64).map_err(anyhow::Error::from))
            .collect::<Result<_>>()?;
        for row in 0..batch.num_rows() {
            let v = |i: usize| cols[i].as_primitive::<Int64Type>().value(row);
            let set = out.get_mut(v(0) as usize).with_context(|| format!("pattern set {} of {sets}", v(0)))?;
            set.push(([v(1) as i32, v(2) as i32, v(3) as i32, v(4) as i32], v(5) as f64));
        }
    }
    Ok(out)
}

/// u per field and level from patterns of random pairs, with add-one smoothing so that a level
/// never seen among random pairs (exact title) gets a small u rather than zero.
pub fn estimate_u(random: &[Pattern]) -> Vec<Vec<f64>> {
    FIELDS
        .iter()
        .enumerate()
        .map(|(f, &(_, levels))| {
            let mut counts = vec![1.0; levels];
            for (p, n) in random {
                if p[f] >= 0 {
                    counts[p[f] as usize] += n;
                }
            }
            let total: f64 = counts.iter().sum();
            counts.iter().map(|c| c / total).collect()
        })
        .collect()
}

/// Pairs to learn m from, blocked for training apart from the pairs that are scored (Splink's
/// training blocking rules): a sample of readings joined to the recordings of the same main artist
/// (`by_artist`) and, apart, of the same title (`by_title`).
///
/// Why not the scored pairs: once blocking joined only near matches (one typo or a truncation from
/// an exact artist or title, 2026-12-04), the exact-artist pairs held few of an artist's *other*
/// songs, EM took "a similar title" for the match class (m of an exact title 0.31, of Jaro-Winkler
/// >= 0.8 0.46) and recall fell to 0.12 at scale 10. Training blocks hold every song of the artist
/// (or of the title), as the old blocking did, but for a sample of readings only.
#[derive(Debug, Clone, Default)]
pub struct Training {
    /// Patterns of pairs with the same folded title.
    pub by_title: Vec<Pattern>,
    /// Patterns of pairs with the same folded main artist.
    pub by_artist: Vec<Pattern>,
    /// Readings sampled: at most this many of the training pairs are matches.
    pub readings: f64,
}

/// m and λ with u fixed, by EM over pairs' patterns, in Splink's way: a field is never
/// learnt from pairs that were chosen for agreeing on it. One EM session over the training pairs
/// whose title is exact learns artist, duration and version; one over those whose artist is exact
/// learns title, duration and version (duration and version: the mean of the two). λ is then fitted
/// over the scored (`blocked`) pairs with every m and u fixed. A single EM over all fields at once
/// is not identified here: blocked pairs are mostly same-artist or same-title non-matches, and it
/// converged on "same artist" as the match class (m of an exact title 0.05, precision 0.77 on the
/// 3,000 x 2,000 test data). A final EM over all fields from the sessions' m drifted back to that
/// class, so m stays fixed. A session with no pairs leaves its fields at the starting values.
///
/// Each item is at most one recording, so no more than `max_matches` (the readings blocked) of the
/// pairs can be matches: λ of every session is capped at `max_matches` (for training sessions, the
/// readings sampled) / its pairs. Without the cap,
/// at scale 10 of the generator (100,000 items, ~10% of titles shared by different recordings)
/// the final λ came out at 0.71 of 13.6M pairs, and podcasts named like a song matched it at 0.993.
pub fn estimate_m(training: &Training, blocked: &[Pattern], u: &[Vec<f64>], max_matches: f64, max_iterations: usize, tolerance: f64) -> Model {
    let top = |f: usize| FIELDS[f].1 as i32 - 1;
    let agreeing = |pairs: &[Pattern], f: usize| -> Vec<Pattern> { pairs.iter().filter(|(p, _)| p[f] == top(f)).cloned().collect() };
    let (by_title, by_artist) = (agreeing(&training.by_title, 0), agreeing(&training.by_artist, 1));
    // Within a block the other fields are not distributed as in random pairs: an artist's own
    // songs are closer in length than any two songs. With random-pair u for duration, EM took the
    // excess of close durations among an artist's other songs for matches and learnt m = 0.11 for
    // a title with nothing in common (precision 0.97 at dirty rate 0.02, scale 1). So each session
    // learns u of duration and version too, within its block; the other name field's u stays the
    // random pairs' and keeps the two classes apart.
    let session = |pairs: &[Pattern], learn: [bool; 4], m: Option<Vec<Vec<f64>>>, cap: f64| em(pairs, u, learn, m, cap, max_iterations, tolerance);
    let (m_title, i1) = session(&by_title, [false, true, true, true], None, training.readings);
    let (m_artist, i2) = session(&by_artist, [true, false, true, true], None, training.readings);
    let mut m = vec![m_artist.m[0].clone(), m_title.m[1].clone()];
    for f in 2..FIELDS.len() {
        m.push(m_title.m[f].iter().zip(&m_artist.m[f]).map(|(a, b)| (a + b) / 2.0).collect());
    }
    let (fitted, i3) = session(blocked, [false; 4], Some(m), max_matches);
    Model { m: fitted.m, u: u.to_vec(), lambda: fitted.lambda, iterations: i1 + i2 + i3 }
}

/// Starting m: most of the mass on the top level ("matches agree"), as Splink's defaults.
fn starting_m() -> Vec<Vec<f64>> {
    FIELDS.iter().map(|&(_, levels)| (0..levels).map(|l| if l + 1 == levels { 0.7 } else { 0.3 / (levels - 1) as f64 }).collect()).collect()
}

/// One EM session: m of the `learn` fields and λ, the other fields left out of the posterior, and
/// in a session that leaves out one name field, u of duration and version within the session's
/// pairs (or, with `m` given, every field in the posterior and only λ learnt).
fn em(patterns: &[Pattern], u: &[Vec<f64>], learn: [bool; 4], m: Option<Vec<Vec<f64>>>, max_matches: f64, max_iterations: usize, tolerance: f64) -> (Model, usize) {
    let use_field = if m.is_some() { [true; 4] } else { learn };
    // A session leaves out exactly one name field (title or artist); only then are the duration
    // and version u its block's own. The λ-only pass (and a session over both names) keeps u.
    let one_name_left_out = learn[0] != learn[1];
    let learn_u = [false, false, learn[2] && one_name_left_out, learn[3] && one_name_left_out];
    let mut u = u.to_vec();
    let mut m = m.unwrap_or_else(starting_m);
    let pairs: f64 = patterns.iter().map(|(_, n)| n).sum();
    let cap = (max_matches / pairs.max(1.0)).clamp(1e-9, 1.0 - 1e-9);
    let mut lambda = cap.min(0.1);
    let mut iterations = 0;
    if patterns.is_empty() {
        return (Model { m, u, lambda, iterations }, 0);
    }
    for _ in 0..max_iterations {
        iterations += 1;
        let mut m_next: Vec<Vec<f64>> = FIELDS.iter().map(|&(_, l)| vec![1e-6; l]).collect();
        let mut u_next = m_next.clone();
        let (mut matched, mut total) = (0.0, 0.0);
        for (p, n) in patterns {
            let posterior = posterior(p, &m, &u, lambda, use_field);
            matched += n * posterior;
            total += n;
            for (f, &level) in p.iter().enumerate() {
                if level >= 0 {
                    m_next[f][level as usize] += n * posterior;
                    u_next[f][level as usize] += n * (1.0 - posterior);
                }
            }
        }
        for f in (0..FIELDS.len()).filter(|&f| learn_u[f]) {
            let sum: f64 = u_next[f].iter().sum();
            u[f] = u_next[f].iter().map(|x| x / sum).collect();
        }
        for (f, row) in m_next.iter_mut().enumerate() {
            if learn[f] {
                let sum: f64 = row.iter().sum();
                row.iter_mut().for_each(|x| *x /= sum);
            } else {
                row.clone_from(&m[f]);
            }
        }
        let lambda_next = (matched / total.max(1.0)).clamp(1e-9, cap);
        let moved = m.iter().flatten().zip(m_next.iter().flatten()).map(|(a, b)| (a - b).abs()).fold((lambda - lambda_next).abs(), f64::max);
        m = m_next;
        lambda = lambda_next;
        if moved < tolerance {
            break;
        }
    }
    (Model { m, u, lambda, iterations }, iterations)
}

fn posterior(p: &[i32; 4], m: &[Vec<f64>], u: &[Vec<f64>], lambda: f64, use_field: [bool; 4]) -> f64 {
    let mut log_bf = (lambda / (1.0 - lambda)).ln();
    for (f, &level) in p.iter().enumerate() {
        if level >= 0 && use_field[f] {
            log_bf += (m[f][level as usize] / u[f][level as usize]).ln();
        }
    }
    1.0 / (1.0 + (-log_bf).exp())
}

impl Model {
    /// The match weight of a pattern: log2 prior odds plus each field's log2(m/u).
    pub fn weight(&self, p: &[i32; 4]) -> f64 {
        let mut w = (self.lambda / (1.0 - self.lambda)).log2();
        for (f, &level) in p.iter().enumerate() {
            if level >= 0 {
                w += (self.m[f][level as usize] / self.u[f][level as usize]).log2();
            }
        }
        w
    }

    /// SQL for the match weight of a row with the `*_level` columns, the weights as literals.
    pub fn weight_sql(&self) -> String {
        let mut sql = format!("CAST({:e} AS DOUBLE)", (self.lambda / (1.0 - self.lambda)).log2());
        for (f, &(name, levels)) in FIELDS.iter().enumerate() {
            let _ = write!(sql, " + CASE {name}_level");
            for l in 0..levels {
                let _ = write!(sql, " WHEN {l} THEN {:e}", (self.m[f][l] / self.u[f][l]).log2());
            }
            sql.push_str(" ELSE 0 END");
        }
        sql
    }

    /// One row per field and level: `(field, level, m, u, weight)`, for the model table.
    pub fn rows(&self) -> Vec<(String, i32, f64, f64)> {
        FIELDS
            .iter()
            .enumerate()
            .flat_map(|(f, &(name, levels))| (0..levels).map(move |l| (name.to_string(), l as i32, self.m[f][l], self.u[f][l])))
            .collect()
    }

    /// Parses a model stored as JSON.
    pub fn from_json(text: &str) -> Result<Self> {
        serde_json::from_str(text).context("the stored matching model is not valid JSON")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Patterns drawn exactly (in expectation) from known m, u and λ: EM must recover m and λ.
    #[test]
    fn em_recovers_known_parameters() {
        let m_true = vec![vec![0.02, 0.03, 0.05, 0.05, 0.05, 0.8], vec![0.05, 0.05, 0.1, 0.8], vec![0.05, 0.05, 0.1, 0.8], vec![0.2, 0.8]];
        let u = vec![vec![0.55, 0.2, 0.1, 0.08, 0.05, 0.02], vec![0.7, 0.15, 0.1, 0.05], vec![0.6, 0.2, 0.15, 0.05], vec![0.3, 0.7]];
        let lambda = 0.15;
        let mut blocked = Vec::new();
        for t in 0..6 {
            for a in 0..4 {
                for d in 0..4 {
                    for v in 0..2 {
                        let pm = m_true[0][t] * m_true[1][a] * m_true[2][d] * m_true[3][v];
                        let pu = u[0][t] * u[1][a] * u[2][d] * u[3][v];
                        blocked.push(([t as i32, a as i32, d as i32, v as i32], 1e6 * (lambda * pm + (1.0 - lambda) * pu)));
                    }
                }
            }
        }
        let training = Training { by_title: blocked.clone(), by_artist: blocked.clone(), readings: 1e6 };
        let model = estimate_m(&training, &blocked, &u, 1e6, 2000, 1e-10);
        assert!((model.lambda - lambda).abs() < 1e-3, "lambda {}", model.lambda);
        for (f, row) in m_true.iter().enumerate() {
            for (l, &want) in row.iter().enumerate() {
                assert!((model.m[f][l] - want).abs() < 5e-3, "m[{f}][{l}] = {} want {want}", model.m[f][l]);
            }
        }
        // The weight of a pattern is log2 of its likelihood ratio plus the prior odds.
        let p = [5, 3, 3, 1];
        let ratio: f64 = (0.8 * 0.8 * 0.8 * 0.8) / (0.02 * 0.05 * 0.05 * 0.7);
        assert!((model.weight(&p) - (ratio.log2() + (lambda / (1.0 - lambda)).log2())).abs() < 0.05);
    }

    #[test]
    fn u_is_smoothed_and_ignores_nulls() {
        let u = estimate_u(&[([0, 0, -1, 1], 98.0), ([1, 3, 0, 1], 2.0)]);
        assert!(u[0][4] > 0.0 && u[0][4] < 0.01);
        assert!((u[2].iter().sum::<f64>() - 1.0).abs() < 1e-12);
    }
}
