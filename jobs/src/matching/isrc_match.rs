//! `isrc_match`: which catalogue recording (ISRC) each playlist video is, by probabilistic record
//! linkage on the cluster: parse → block → compare → weigh (Fellegi-Sunter, m and u without
//! labels) → best recording per item → matches, a review band and the unmatched.
//!
//! Re-runs are incremental and idempotent: an item is matched again only when its inputs changed
//! (an md5 of title, channel, duration and fallback title, kept in `<out>_item_state`) or the
//! catalogue did (its Delta version is stored with the model); each output is then rewritten as
//! the old rows of untouched items plus the new rows, one Delta commit per table. A run with
//! nothing new commits nothing.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use backbeat_cluster::session::BackbeatSession;

use super::blocking::{BlockingReport, Caps, block, capped_catalogue};
use super::features::{Sources, catalogue, parse_items, readings};
use super::fellegi_sunter::{FIELDS, Model, Pattern, Training, estimate_m, estimate_u, levels_sql, pair_columns_sql, pattern_sets};
use crate::job_runner::{ReportSection, RustJobOutput};
use crate::recs::{drop_table, first_row_i64, pinned, require_columns, run_sql};

/// The job's settings.
#[derive(Debug, Clone)]
pub struct MatchConfig {
    sources: Sources,
    prefix: String,
    match_threshold: f64,
    review_threshold: f64,
    caps: Caps,
    u_items: i64,
    u_recordings: i64,
    train_items: i64,
    seed: String,
    full: bool,
}

impl MatchConfig {
    fn from_params(p: &BTreeMap<String, String>) -> Result<Self> {
        let f = |k: &str| p[k].parse::<f64>().with_context(|| format!("parameter {k}"));
        let i = |k: &str| p[k].parse::<i64>().with_context(|| format!("parameter {k}"));
        let prefix = p["out"].clone();
        let c = Self {
            sources: Sources { items: p["items"].clone(), metadata_log: p["metadata_log"].clone(), catalogue: p["catalogue"].clone(), out: format!("{prefix}_work") },
            prefix,
            match_threshold: f("match_threshold")?,
            review_threshold: f("review_threshold")?,
            caps: Caps { max_block: i("max_block")?, max_title_block: i("max_title_block")?, max_token_block: i("max_token_block")? },
            u_items: i("u_sample_items")?,
            u_recordings: i("u_sample_recordings")?,
            train_items: i("train_items")?,
            seed: p["seed"].clone(),
            full: matches!(p["full"].as_str(), "true" | "1" | "yes"),
        };
        anyhow::ensure!(
            (0.0..=1.0).contains(&c.review_threshold) && c.review_threshold <= c.match_threshold && c.match_threshold <= 1.0,
            "thresholds must satisfy 0 <= review_threshold <= match_threshold <= 1 (got {} and {})",
            c.review_threshold,
            c.match_threshold
        );
        anyhow::ensure!(
            c.caps.max_block.min(c.caps.max_title_block).min(c.caps.max_token_block) >= 1 && c.u_items >= 1 && c.u_recordings >= 1 && c.train_items >= 1,
            "max_block, max_title_block, max_token_block, train_items and the u sample sizes must be at least 1"
        );
        Ok(c)
    }
}

/// The catalogue entry point.
pub async fn run(session: &BackbeatSession, params: &BTreeMap<String, String>) -> Result<RustJobOutput> {
    let c = MatchConfig::from_params(params)?;
    let (w, out) = (&c.sources.out, &c.prefix);
    require_columns(session, &c.sources.items, &["media_item_id", "title", "channel_name", "duration_s"]).await?;
    require_columns(session, &c.sources.catalogue, &["isrc", "title", "artists", "duration_ms"]).await?;
    if !c.sources.metadata_log.is_empty() {
        require_columns(session, &c.sources.metadata_log, &["media_item_id", "observed_at", "primary_title", "secondary_title"]).await?;
    }
    let (_, catalogue_version) = pinned(session, &c.sources.catalogue).await?;
    let stored = stored_model(session, out).await?;
    let full = c.full || stored.as_ref().is_none_or(|(v, _)| *v != catalogue_version) || !table_exists(session, &format!("{w}_catalogue")).await?
        || !table_exists(session, &format!("{w}_catalogue_keys")).await?;

    let mut phases = Phases { laps: Vec::new(), last: std::time::Instant::now() };
    parse_items(session, &c.sources).await?;
    phases.lap("parse titles");
    let todo = format!("{w}_todo");
    if full {
        run_sql(session, &format!("CREATE OR REPLACE TABLE {todo} AS SELECT item_id, input_hash FROM {w}_parsed")).await?;
        catalogue(session, &c.sources).await?;
        phases.lap("catalogue fields");
    } else {
        run_sql(session, &format!(
            "CREATE OR REPLACE TABLE {todo} AS SELECT p.item_id, p.input_hash FROM {w}_parsed p \
             LEFT ANTI JOIN {out}_item_state s ON p.item_id = s.item_id AND p.input_hash = s.input_hash"
        ))
        .await?;
    }
    let changed = first_row_i64(session, &format!("SELECT count(*) AS n FROM {todo}")).await?[0];
    if changed == 0 {
        let report = ReportSection::from_batches("isrc_match", run_sql(session, "SELECT 'no new or changed items: nothing written' AS status").await?);
        return Ok(RustJobOutput { report: vec![report], rows_written: 0 });
    }

    readings(session, w, &todo).await?;
    phases.lap("item fields");
    let blocking = block(session, w, c.caps).await?;
    phases.lap("blocking");
    run_sql(session, &format!(
        "CREATE OR REPLACE TABLE {w}_levels AS SELECT item_id, reading, isrc, {levels}, abs(r_duration_s - c_duration_s) AS duration_diff \
         FROM (SELECT p.item_id, p.reading, p.isrc, {columns} \
               FROM {w}_pairs p JOIN {w}_readings r ON p.item_id = r.item_id AND p.reading = r.reading JOIN {w}_catalogue c ON p.isrc = c.isrc)",
        levels = levels_sql(),
        columns = pair_columns_sql()
    ))
    .await?;
    phases.lap("comparison levels");
    let model = match (full, stored) {
        (false, Some((_, model))) => model,
        _ => fit(session, &c, w, blocking.readings).await?,
    };
    if full {
        save_model(session, out, catalogue_version, &model).await?;
    }
    phases.lap("u and EM");
    score(session, &c, &model).await?;
    phases.lap("weights, best per item");
    let written = merge_outputs(session, &c).await?;
    drop_table(session, &format!("{w}_levels")).await?;
    phases.lap("merge outputs");

    let mut report = vec![blocking_section(session, &blocking, changed, full).await?];
    report.push(ReportSection::from_batches("model (m, u and weight per level)", model_batches(session, &model).await?));
    report.push(ReportSection::from_batches(
        "outcomes",
        run_sql(session, &format!(
            "SELECT 'matched' AS outcome, count(*) AS items FROM {out}_matches UNION ALL SELECT 'review', count(*) FROM {out}_review \
             UNION ALL SELECT 'unmatched', count(*) FROM {out}_unmatched"
        ))
        .await?,
    ));
    if let Some(url) = params.get("export_to").filter(|u| !u.is_empty()) {
        super::export_matches(session, out, url).await?;
        phases.lap("export");
    }
    report.push(ReportSection::from_batches("seconds per phase", run_sql(session, &phases.sql()).await?));
    Ok(RustJobOutput { report, rows_written: written })
}

/// Wall time per phase, for the report (the benchmark reads it).
struct Phases {
    laps: Vec<(&'static str, f64)>,
    last: std::time::Instant,
}

impl Phases {
    fn lap(&mut self, name: &'static str) {
        let now = std::time::Instant::now();
        self.laps.push((name, (now - self.last).as_secs_f64()));
        self.last = now;
    }

    fn sql(&self) -> String {
        let rows: Vec<String> = self.laps.iter().enumerate().map(|(i, (n, s))| format!("({i}, '{n}', {s:.3})")).collect();
        format!("SELECT column2 AS phase, column3 AS seconds FROM (VALUES {}) ORDER BY column1", rows.join(", "))
    }
}

async fn table_exists(session: &BackbeatSession, name: &str) -> Result<bool> {
    Ok(session.lake().table_format(name).await? == Some(backbeat_cluster::lake_catalog::TableFormat::Delta))
}

/// The latest stored model and the catalogue version it was fitted on.
async fn stored_model(session: &BackbeatSession, out: &str) -> Result<Option<(u64, Model)>> {
    if !table_exists(session, &format!("{out}_model")).await? {
        return Ok(None);
    }
    let batches = run_sql(session, &format!("SELECT catalogue_version, model_json FROM {out}_model ORDER BY fitted_at DESC LIMIT 1")).await?;
    let Some(batch) = batches.iter().find(|b| b.num_rows() > 0) else { return Ok(None) };
    let version = crate::clv::text_cell(batch, 0, 0).parse::<u64>().context("catalogue_version in the model table")?;
    let model = Model::from_json(&crate::clv::text_cell(batch, 1, 0))?;
    // A model stored by a version with other comparison levels is refitted, not misread.
    let same_levels = model.m.len() == FIELDS.len() && model.m.iter().zip(FIELDS).all(|(row, (_, levels))| row.len() == levels);
    Ok(same_levels.then_some((version, model)))
}

async fn save_model(session: &BackbeatSession, out: &str, version: u64, model: &Model) -> Result<()> {
    let json = serde_json::to_string(model)?.replace('\'', "''");
    let verb = if table_exists(session, &format!("{out}_model")).await? { format!("INSERT INTO {out}_model") } else { format!("CREATE TABLE {out}_model AS") };
    run_sql(session, &format!(
        "{verb} SELECT now() AS fitted_at, CAST({version} AS BIGINT) AS catalogue_version, CAST({} AS DOUBLE) AS lambda, \
         CAST({} AS BIGINT) AS em_iterations, '{json}' AS model_json",
        model.lambda, model.iterations
    ))
    .await?;
    Ok(())
}

/// u from random pairs of the items and the catalogue, m by EM over training pairs, λ over the blocked pairs.
async fn fit(session: &BackbeatSession, c: &MatchConfig, w: &str, readings: i64) -> Result<Model> {
    let seed = c.seed.replace('\'', "");
    let count = "title_level, artist_level, duration_level, version_level, count(*) AS n";
    let random = format!(
        "SELECT 0 AS pset, {count} FROM (SELECT {levels} FROM (SELECT {columns} FROM \
           (SELECT * FROM {w}_readings WHERE reading = 0 ORDER BY md5(concat(item_id, '{seed}')) LIMIT {ni}) r CROSS JOIN \
           (SELECT * FROM {w}_catalogue ORDER BY md5(concat(isrc, '{seed}')) LIMIT {nc}) c)) GROUP BY 1, 2, 3, 4, 5",
        levels = levels_sql(),
        columns = pair_columns_sql(),
        ni = c.u_items,
        nc = c.u_recordings
    );
    let blocked = format!("SELECT 1 AS pset, {count} FROM {w}_levels GROUP BY 1, 2, 3, 4, 5");
    // Training pairs (see `Training`): a sample of readings against every recording of the same
    // main artist, and apart of the same title, each key capped at `max_block` recordings.
    let sample = format!("(SELECT * FROM {w}_readings ORDER BY md5(concat(item_id, CAST(reading AS VARCHAR), '{seed}')) LIMIT {})", c.train_items);
    let on = |set: usize, key: &str| {
        format!(
            "SELECT {set} AS pset, {count} FROM (SELECT {levels} FROM (SELECT {columns} FROM {sample} r \
               JOIN {catalogue} c ON r.{key} = c.{key})) GROUP BY 1, 2, 3, 4, 5",
            levels = levels_sql(),
            columns = pair_columns_sql(),
            catalogue = capped_catalogue(w, key, c.caps.max_block)
        )
    };
    let sql = format!("{random} UNION ALL {blocked} UNION ALL {} UNION ALL {}", on(2, "title_n"), on(3, "artist_n"));
    let [random, blocked, by_title, by_artist]: [Vec<Pattern>; 4] =
        pattern_sets(session, &sql, 4).await?.try_into().map_err(|_| anyhow::anyhow!("four pattern sets"))?;
    anyhow::ensure!(!blocked.is_empty(), "blocking found no candidate pairs: nothing to learn the match weights from");
    let training = Training { by_title, by_artist, readings: c.train_items.min(readings) as f64 };
    let u = estimate_u(&random);
    let model = estimate_m(&training, &blocked, &u, readings as f64, 200, 1e-7);
    tracing::info!(lambda = model.lambda, iterations = model.iterations, "match weights estimated");
    Ok(model)
}

/// `<w>_best`: per item the best recording over its readings, with the weight and probability.
///
/// The probability is not Splink's pairwise 2^w / (1 + 2^w) but the posterior that this recording
/// is the item's, given that an item is at most one recording: its odds 2^w over one plus the sum
/// of the odds of all the item's candidates. Two recordings with the same title, artist and length
/// (a re-release; 10% of the generator's titles at scale 10 recur) each get about one half and go to
/// review instead of a coin toss among matches: such ties were 550 of the 1,544 wrong matches at
/// scale 10. A reading's swap meeting the same recording counts twice, at a weight far below.
async fn score(session: &BackbeatSession, c: &MatchConfig, model: &Model) -> Result<()> {
    let w = &c.sources.out;
    // An aggregate per item, then a window over the few pairs at the item's top weight: a window
    // over all pairs sorted 34M rows at scale 100 (41 s).
    run_sql(session, &format!(
        "CREATE OR REPLACE TABLE {w}_best AS WITH l AS (SELECT *, {weight} AS match_weight FROM {w}_levels), \
           items AS (SELECT item_id, max(match_weight) AS top, sum(pow(2.0, match_weight)) AS odds FROM l GROUP BY item_id) \
         SELECT item_id, reading, isrc, title_level, artist_level, duration_level, version_level, \
           match_weight, pow(2.0, match_weight) / (1.0 + odds) AS match_probability FROM ( \
           SELECT l.*, i.odds, row_number() OVER (PARTITION BY l.item_id ORDER BY l.duration_diff NULLS LAST, l.isrc, l.reading) AS k \
           FROM l JOIN items i ON l.item_id = i.item_id AND l.match_weight = i.top) WHERE k = 1",
        weight = model.weight_sql()
    ))
    .await?;
    Ok(())
}

/// Rewrites matches, review, unmatched and item state: old rows of untouched items plus the new.
async fn merge_outputs(session: &BackbeatSession, c: &MatchConfig) -> Result<u64> {
    let (w, out) = (&c.sources.out, &c.prefix);
    let (hi, lo) = (c.match_threshold, c.review_threshold);
    let levels = "b.title_level, b.artist_level, b.duration_level, b.version_level, b.reading";
    let new = [
        ("matches", format!(
            "SELECT b.item_id, b.isrc, b.match_probability, b.match_weight, {levels}, now() AS matched_at FROM {w}_best b WHERE b.match_probability >= {hi}"
        )),
        ("review", format!(
            "SELECT b.item_id, b.isrc, b.match_probability, b.match_weight, {levels}, p.title AS video_title, p.channel, \
                    c.title AS recording_title, c.artists AS recording_artists, now() AS matched_at \
             FROM {w}_best b JOIN {w}_parsed p ON b.item_id = p.item_id JOIN {w}_catalogue c ON b.isrc = c.isrc \
             WHERE b.match_probability >= {lo} AND b.match_probability < {hi}"
        )),
        ("unmatched", format!(
            "SELECT t.item_id, CASE WHEN p.derivative THEN concat('derivative: ', array_to_string(p.tags, ',')) \
                                    WHEN b.item_id IS NULL THEN 'no candidate' ELSE 'below review threshold' END AS reason, \
                    b.isrc AS best_isrc, b.match_probability AS best_probability, p.title AS video_title, now() AS matched_at \
             FROM {w}_todo t JOIN {w}_parsed p ON t.item_id = p.item_id LEFT JOIN {w}_best b ON t.item_id = b.item_id \
             WHERE b.item_id IS NULL OR b.match_probability < {lo}"
        )),
        ("item_state", format!("SELECT item_id, input_hash, now() AS matched_at FROM {w}_todo")),
    ];
    let mut written = 0;
    for (name, select) in new {
        let table = format!("{out}_{name}");
        let sql = if table_exists(session, &table).await? {
            format!("CREATE OR REPLACE TABLE {table} AS SELECT * FROM {table} WHERE item_id NOT IN (SELECT item_id FROM {w}_todo) UNION ALL {select}")
        } else {
            format!("CREATE TABLE {table} AS {select}")
        };
        written += backbeat_cluster::session::rows_written(&run_sql(session, &sql).await?);
    }
    Ok(written)
}

async fn blocking_section(session: &BackbeatSession, b: &BlockingReport, changed: i64, full: bool) -> Result<ReportSection> {
    let sql = format!(
        "SELECT '{}' AS run, {changed} AS items_matched, {} AS readings, {} AS recordings, {} AS pairs, {} AS pairs_title_and_artist, \
         {} AS pairs_one_typo, {} AS pairs_title, {} AS pairs_rare_token, {:.6} AS reduction_ratio",
        if full { "full" } else { "incremental" },
        b.readings,
        b.recordings,
        b.pairs,
        b.by_rule[0],
        b.by_rule[1],
        b.by_rule[2],
        b.by_rule[3],
        b.reduction_ratio()
    );
    Ok(ReportSection::from_batches("blocking", run_sql(session, &sql).await?))
}

async fn model_batches(session: &BackbeatSession, model: &Model) -> Result<Vec<arrow::record_batch::RecordBatch>> {
    let rows: Vec<String> = model
        .rows()
        .iter()
        .map(|(field, level, m, u)| format!("('{field}', {level}, {m:.6}, {u:.6}, {:.3})", (m / u).log2()))
        .collect();
    run_sql(session, &format!(
        "SELECT column1 AS field, column2 AS level, column3 AS m, column4 AS u, column5 AS weight FROM (VALUES {}) ORDER BY field, level DESC",
        rows.join(", ")
    ))
    .await
}
