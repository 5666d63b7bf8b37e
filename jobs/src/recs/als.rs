//! `als_train`: implicit-feedback ALS (Hu, Koren and Volinsky 2008; Spark's `implicitPrefs=true`,
//! Python `implicit`) trained on the cluster.
//!
//! Steps:
//! 1. cluster SQL: dense indices for users and items (`<prefix>_users`, `<prefix>_items`) and the
//!    aggregated interactions `<prefix>_interactions(user_idx, item_idx, plays)`. A pair whose
//!    weights sum to 0 or are all NULL is no interaction (preference 0, as in Spark), and a
//!    negative sum is an error;
//! 2. per iteration, a user half-sweep then an item half-sweep, each one `als_sweep` job
//!    ([`super::als_sweep`]): executors keep the interactions resident, solve the blocks of one
//!    side against the other side's blocks, and hand the solved blocks to the next half-sweep
//!    through a scratch directory in the lake (`_scratch/als-<uuid>/`, removed at the end);
//! 3. the loss after each iteration, summed from the blocks' terms;
//! 4. `<prefix>_user_factors(user_idx, user_id, factors)` and
//!    `<prefix>_item_factors(item_idx, track_id, factors)`, and `<prefix>_loss(iteration, loss,
//!    seconds)`.
//!
//! Deterministic for a seed: initial factors depend on (seed, index) only, rows are cut into
//! blocks by their count alone and every sum runs in index or block order, so neither the number
//! of executors nor of partitions changes a bit.

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use arrow::array::AsArray;
use arrow::datatypes::{Float64Type, Int64Type};
use backbeat_cluster::map_partitions::map_partitions;
use backbeat_cluster::session::{BackbeatSession, WriteMode};
use indicatif::{ProgressBar, ProgressStyle};

use super::als_solve::AlsParams;
use super::als_sweep::{ALS_SWEEP, AlsTask, Factors, InteractionsRef, Side, block_count};
use super::{drop_table, first_row_i64, ident, pinned, require_columns, run_sql};
use crate::job_runner::{ReportSection, RustJobOutput};

/// What to train on and how.
#[derive(Debug, Clone)]
pub struct AlsConfig {
    /// Events table (one row per play, or rows with a weight column).
    pub events: String,
    /// User column.
    pub user: String,
    /// Item column.
    pub item: String,
    /// Weight column; empty counts rows.
    pub weight: String,
    /// Output table prefix.
    pub prefix: String,
    /// Solver hyper-parameters.
    pub params: AlsParams,
    /// Sweeps over users and items.
    pub iterations: usize,
    /// Seed of the initial factors.
    pub seed: u64,
}

impl AlsConfig {
    /// From bound job parameters.
    pub fn from_params(params: &BTreeMap<String, String>) -> Result<Self> {
        let num = |name: &str| -> Result<f64> { params[name].parse().with_context(|| format!("parameter {name}")) };
        let config = Self {
            events: params["events"].clone(),
            user: params["user_col"].clone(),
            item: params["item_col"].clone(),
            weight: params["weight_col"].clone(),
            prefix: params["prefix"].clone(),
            params: AlsParams::from_params(params)?,
            iterations: num("iterations")? as usize,
            seed: num("seed")? as u64,
        };
        ensure!((1..=1024).contains(&config.params.rank), "rank must be between 1 and 1024, got {}", config.params.rank);
        ensure!(config.params.lambda >= 0.0 && config.params.alpha >= 0.0, "lambda and alpha must be >= 0");
        ensure!(config.iterations >= 1, "iterations must be at least 1");
        Ok(config)
    }
}

/// One iteration's record.
#[derive(Debug, Clone, Copy)]
pub struct IterationLoss {
    /// 1-based.
    pub iteration: usize,
    /// Hu et al.'s loss over all user-item pairs, plus the L2 terms.
    pub loss: f64,
    /// Wall time of the iteration's two half-sweeps.
    pub seconds: f64,
}

/// What training produced.
#[derive(Debug, Clone)]
pub struct AlsOutcome {
    /// Users, items and interactions.
    pub shape: (usize, usize, usize),
    /// The loss after each iteration.
    pub losses: Vec<IterationLoss>,
}

/// The catalogue entry point.
pub async fn run(session: &BackbeatSession, params: &BTreeMap<String, String>) -> Result<RustJobOutput> {
    let config = AlsConfig::from_params(params)?;
    let outcome = train(session, &config).await?;
    let p = &config.prefix;
    let rows = outcome.shape.0 + outcome.shape.1;
    let report = run_sql(session, &format!("SELECT iteration, loss, seconds FROM {p}_loss ORDER BY iteration")).await?;
    Ok(RustJobOutput {
        report: vec![ReportSection::from_batches(
            format!(
                "ALS rank {} on {} users x {} items ({} interactions): loss per iteration",
                config.params.rank, outcome.shape.0, outcome.shape.1, outcome.shape.2
            ),
            report,
        )],
        rows_written: rows as u64,
    })
}

/// Trains ALS as `config` says and writes the factor and loss tables.
pub async fn train(session: &BackbeatSession, config: &AlsConfig) -> Result<AlsOutcome> {
    let (events, p) = (&config.events, &config.prefix);
    let mut needed = vec![config.user.as_str(), config.item.as_str()];
    if !config.weight.is_empty() {
        needed.push(&config.weight);
    }
    require_columns(session, events, &needed).await?;
    let (user, item) = (ident(&config.user)?, ident(&config.item)?);
    let weight = if config.weight.is_empty() { "1".to_string() } else { format!("CAST({} AS DOUBLE)", ident(&config.weight)?) };
    let valid = format!("{user} IS NOT NULL AND {item} IS NOT NULL");
    let valid_e = format!("e.{user} IS NOT NULL AND e.{item} IS NOT NULL");

    for (side, column, id) in [("users", &user, "user_id"), ("items", &item, "track_id")] {
        let idx = if side == "users" { "user_idx" } else { "item_idx" };
        run_sql(session, &format!(
            "CREATE OR REPLACE TABLE {p}_{side} AS SELECT {id}, CAST(row_number() OVER (ORDER BY {id}) - 1 AS BIGINT) AS {idx} \
             FROM (SELECT DISTINCT {column} AS {id} FROM {events} WHERE {valid})"
        ))
        .await?;
    }
    run_sql(session, &format!(
        "CREATE OR REPLACE TABLE {p}_interactions AS \
         SELECT u.user_idx, i.item_idx, CAST(sum({weight}) AS DOUBLE) AS plays \
         FROM {events} e JOIN {p}_users u ON e.{user} = u.user_id JOIN {p}_items i ON e.{item} = i.track_id \
         WHERE {valid_e} GROUP BY u.user_idx, i.item_idx HAVING sum({weight}) <> 0"
    ))
    .await?;
    let counts = first_row_i64(session, &format!(
        "SELECT (SELECT count(*) FROM {p}_users) AS users, (SELECT count(*) FROM {p}_items) AS items, \
         (SELECT count(*) FROM {p}_interactions) AS nnz, (SELECT count(*) FROM {p}_interactions WHERE plays < 0) AS negative"
    ))
    .await?;
    let (n_users, n_items, nnz) = (counts[0] as usize, counts[1] as usize, counts[2] as usize);
    if nnz == 0 {
        bail!("'{events}' has no rows with both {} and {}: there is nothing to train on", config.user, config.item);
    }
    if counts[3] > 0 {
        bail!("'{events}' has {} (user, item) pairs with a negative total weight; implicit feedback needs weights >= 0", counts[3]);
    }
    tracing::info!(users = n_users, items = n_items, interactions = nnz, "ALS training");

    let (uri, version) = pinned(session, &format!("{p}_interactions")).await?;
    let scratch = Scratch::new(session)?;
    let interactions = InteractionsRef { uri, version, users: n_users, items: n_items, run: scratch.run.clone() };
    let tasks = session.context().state().config().target_partitions().max(1);
    let mut user_src = Factors::Random { seed: config.seed, stream: 1 };
    let mut item_src = Factors::Random { seed: config.seed, stream: 2 };
    let progress = ProgressBar::new(config.iterations as u64)
        .with_style(ProgressStyle::with_template("ALS {pos}/{len} iterations {wide_bar} {elapsed} {msg}").expect("static template"));
    let mut losses = Vec::new();
    for iteration in 1..=config.iterations {
        let clock = Instant::now();
        let sweep = |side, fixed: &Factors, start: &Factors, out: String, loss| AlsTask::Sweep {
            interactions: interactions.clone(),
            params: config.params,
            side,
            fixed: fixed.clone(),
            start: start.clone(),
            out,
            loss,
            tasks,
        };
        let users_dir = scratch.dir(&format!("users-{iteration}"));
        let users = run_sweep(session, &sweep(Side::Users, &item_src, &user_src, users_dir.clone(), false), n_users, tasks).await?;
        user_src = Factors::Blocks { dir: users_dir };
        let items_dir = scratch.dir(&format!("items-{iteration}"));
        let items = run_sweep(session, &sweep(Side::Items, &user_src, &item_src, items_dir.clone(), true), n_items, tasks).await?;
        item_src = Factors::Blocks { dir: items_dir };
        // After this iteration, the previous one's blocks are read by nobody.
        scratch.remove(&format!("users-{}", iteration - 1)).await?;
        scratch.remove(&format!("items-{}", iteration - 1)).await?;
        let loss = items.fit + items.reg + users.reg;
        let seconds = clock.elapsed().as_secs_f64();
        tracing::info!(iteration, loss, seconds, "ALS iteration");
        progress.set_message(format!("loss {loss:.4e}"));
        progress.inc(1);
        losses.push(IterationLoss { iteration, loss, seconds });
    }
    progress.finish_and_clear();

    let values: Vec<String> = losses.iter().map(|l| format!("({}, {:e}, {})", l.iteration, l.loss, l.seconds)).collect();
    run_sql(session, &format!(
        "CREATE OR REPLACE TABLE {p}_loss AS SELECT CAST(column1 AS INT) AS iteration, CAST(column2 AS DOUBLE) AS loss, \
         CAST(column3 AS DOUBLE) AS seconds FROM (VALUES {})",
        values.join(", ")
    ))
    .await?;
    for (side, src, n, idx, id) in [("users", &user_src, n_users, "user_idx", "user_id"), ("items", &item_src, n_items, "item_idx", "track_id")] {
        let Factors::Blocks { dir } = src else { unreachable!("iterations >= 1 leaves both sides in blocks") };
        let export = AlsTask::Export { dir: dir.clone(), n, rank: config.params.rank, tasks };
        let factors = map_partitions(tasks_frame(session, tasks).await?, ALS_SWEEP, &serde_json::to_value(&export)?, &[])?;
        // Through a working table, not a join planned on the kernel's output: that join wrote 2
        // of 5 item rows on the 2-executor test cluster (Ballista 55's adaptive join selection
        // over a kernel whose input is a UNION; not root-caused), while a join of two Delta
        // tables is what every other job does.
        let work = format!("{p}_{side}_factors_work");
        session.write_table(factors, &work, WriteMode::CreateOrReplace, &[]).await?.collect().await.with_context(|| format!("writing {work}"))?;
        let table = format!("{p}_{}_factors", &side[..side.len() - 1]);
        let written = run_sql(session, &format!(
            "CREATE OR REPLACE TABLE {table} AS SELECT w.idx AS {idx}, i.{id}, w.factors FROM {work} w JOIN {p}_{side} i ON w.idx = i.{idx}"
        ))
        .await?;
        drop_table(session, &work).await?;
        let rows = backbeat_cluster::session::rows_written(&written);
        ensure!(rows == n as u64, "{table}: wrote {rows} rows for {n} {side}");
    }
    scratch.remove_all().await?;
    Ok(AlsOutcome { shape: (n_users, n_items, nnz), losses })
}

/// A half-sweep's loss terms, summed in block order.
struct SweepTerms {
    fit: f64,
    reg: f64,
}

/// Rows `task` = 0..tasks, one per partition: a UNION ALL of one-row SELECTs has a partition per
/// branch, so the job runs `tasks` tasks without a shuffle. (One VALUES list of a few rows is a
/// single partition, and DataFusion does not hash-partition inputs that small.)
async fn tasks_frame(session: &BackbeatSession, tasks: usize) -> Result<datafusion::dataframe::DataFrame> {
    let selects: Vec<String> = (0..tasks).map(|t| format!("SELECT CAST({t} AS BIGINT) AS task")).collect();
    session.sql(&selects.join(" UNION ALL ")).await
}

/// Runs one half-sweep job and checks that every block of the side's `n` rows was solved once.
async fn run_sweep(session: &BackbeatSession, task: &AlsTask, n: usize, tasks: usize) -> Result<SweepTerms> {
    let side = match task {
        AlsTask::Sweep { side: Side::Users, .. } => "users",
        _ => "items",
    };
    let df = map_partitions(tasks_frame(session, tasks).await?, ALS_SWEEP, &serde_json::to_value(task)?, &[])?;
    let batches = df.collect().await.with_context(|| format!("ALS half-sweep solving {side}"))?;
    let mut blocks: Vec<(i64, i64, f64, f64)> = vec![];
    for b in &batches {
        let ints = |c: usize| b.column(c).as_primitive::<Int64Type>().clone();
        let floats = |c: usize| b.column(c).as_primitive::<Float64Type>().clone();
        let (id, rows, fit, reg) = (ints(0), ints(1), floats(2), floats(3));
        blocks.extend((0..b.num_rows()).map(|r| (id.value(r), rows.value(r), fit.value(r), reg.value(r))));
    }
    blocks.sort_by_key(|b| b.0);
    let ids: Vec<i64> = blocks.iter().map(|b| b.0).collect();
    let solved: i64 = blocks.iter().map(|b| b.1).sum();
    if ids != (0..block_count(n) as i64).collect::<Vec<_>>() || solved != n as i64 {
        bail!("ALS half-sweep over {side} solved blocks {ids:?} ({solved} rows); expected each of {} blocks once ({n} rows)", block_count(n));
    }
    Ok(SweepTerms { fit: blocks.iter().map(|b| b.2).sum(), reg: blocks.iter().map(|b| b.3).sum() })
}

/// The job's scratch directory in the lake, `_scratch/als-<uuid>/` (hidden from the catalog by
/// its leading underscore), removed when training ends or fails. A killed client leaves its
/// directory behind; the next training removes any untouched for a day.
struct Scratch {
    lake: backbeat_cluster::lake_catalog::LakeRoot,
    run: String,
}

/// Scratch directories older than this belong to no running training.
const STALE_SCRATCH: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

impl Scratch {
    /// Factor blocks live in the lake (`_scratch/als-<run>/`): every executor must read them.
    fn new(session: &BackbeatSession) -> Result<Self> {
        let lake = session.lake().lake_root().clone();
        if let Some(root) = lake.local_dir() {
            let parent = root.join("_scratch");
            for entry in std::fs::read_dir(&parent).into_iter().flatten().flatten() {
                let stale = entry.metadata().and_then(|m| m.modified()).is_ok_and(|t| t.elapsed().is_ok_and(|age| age > STALE_SCRATCH));
                if stale && entry.file_name().to_string_lossy().starts_with("als-") {
                    tracing::info!(dir = %entry.path().display(), "removing a stale ALS scratch directory");
                    remove_dir(&entry.path())?;
                }
            }
        }
        Ok(Self { lake, run: uuid::Uuid::new_v4().to_string() })
    }

    fn relative(&self, name: &str) -> String {
        format!("_scratch/als-{}/{name}", self.run)
    }

    /// The URL of subdirectory `name`, ending in `/`.
    fn dir(&self, name: &str) -> String {
        self.lake.child_url(&self.relative(name)).map(|u| u.to_string()).unwrap_or_default()
    }

    async fn remove(&self, name: &str) -> Result<()> {
        Ok(self.lake.remove_all(&self.relative(name)).await?)
    }

    async fn remove_all(&self) -> Result<()> {
        Ok(self.lake.remove_all(&self.relative("")).await?)
    }
}

impl Drop for Scratch {
    /// A failed training leaves no scratch behind: removed here at once on disk, by a task on S3.
    fn drop(&mut self) {
        let relative = self.relative("");
        match self.lake.local_dir() {
            Some(root) => {
                let _ = remove_dir(&root.join(&relative));
            }
            None => {
                if let Ok(handle) = tokio::runtime::Handle::try_current() {
                    let lake = self.lake.clone();
                    handle.spawn(async move { lake.remove_all(&relative).await });
                }
            }
        }
    }
}

fn remove_dir(dir: &std::path::Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e).with_context(|| format!("cannot remove {}", dir.display())),
        _ => Ok(()),
    }
}
