//! `als_train`: implicit-feedback ALS (Hu, Koren and Volinsky 2008; Spark's `implicitPrefs=true`,
//! Python `implicit`) trained on the cluster.
//!
//! Steps, each a cluster query:
//! 1. dense indices for users and items (`<prefix>_users`, `<prefix>_items`) and the aggregated
//!    interactions `<prefix>_interactions(user_idx, item_idx, plays)`. A pair whose weights sum to
//!    0 or are all NULL is no interaction (preference 0, as in Spark), and a negative sum is an
//!    error;
//! 2. per iteration, a user half-sweep then an item half-sweep: the interactions, hash-partitioned
//!    by the side being solved, go through the `als_solve` kernel on the executors, which reads the
//!    other side's factors once per process from the table the previous half-sweep wrote (a
//!    Delta table pinned by version: the broadcast), and the solved factors are written back;
//! 3. the loss after each iteration, summed by SQL from what the kernels report;
//! 4. `<prefix>_user_factors(user_idx, user_id, factors)` and
//!    `<prefix>_item_factors(item_idx, track_id, factors)`, and `<prefix>_loss(iteration, loss,
//!    seconds)`.
//!
//! Deterministic for a seed: initial factors depend on (seed, index) only, every row's sums run
//! in index order, so neither the number of executors nor of partitions changes a bit.

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use backbeat_cluster::map_partitions::map_partitions;
use backbeat_cluster::session::{BackbeatSession, WriteMode};
use indicatif::{ProgressBar, ProgressStyle};

use super::als_solve::{ALS_SOLVE, AlsParams, AlsSolveArgs, VectorSource};
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
            params: AlsParams {
                rank: num("rank")? as usize,
                lambda: num("lambda")?,
                alpha: num("alpha")?,
                cg_steps: num("cg_steps")? as usize,
            },
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

    let (users_work, items_work) = (format!("{p}_user_factors_sweep"), format!("{p}_item_factors_sweep"));
    let mut user_src = VectorSource::Random { n: n_users, seed: config.seed, stream: 1 };
    let mut item_src = VectorSource::Random { n: n_items, seed: config.seed, stream: 2 };
    let progress = ProgressBar::new(config.iterations as u64)
        .with_style(ProgressStyle::with_template("ALS {pos}/{len} iterations {wide_bar} {elapsed} {msg}").expect("static template"));
    let mut losses = Vec::new();
    for iteration in 1..=config.iterations {
        let clock = Instant::now();
        user_src = half_sweep(session, config, ("user_idx", "item_idx"), &item_src, &user_src, &users_work, n_users).await?;
        item_src = half_sweep(session, config, ("item_idx", "user_idx"), &user_src, &item_src, &items_work, n_items).await?;
        let loss = first_f64(session, &format!(
            "SELECT (SELECT sum(fit_loss) + sum(reg) FROM {items_work}) + (SELECT sum(reg) FROM {users_work}) AS loss"
        ))
        .await?;
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
    run_sql(session, &format!(
        "CREATE OR REPLACE TABLE {p}_user_factors AS SELECT w.idx AS user_idx, u.user_id, w.factors \
         FROM {users_work} w JOIN {p}_users u ON w.idx = u.user_idx"
    ))
    .await?;
    run_sql(session, &format!(
        "CREATE OR REPLACE TABLE {p}_item_factors AS SELECT w.idx AS item_idx, i.track_id, w.factors \
         FROM {items_work} w JOIN {p}_items i ON w.idx = i.item_idx"
    ))
    .await?;
    drop_table(session, &users_work)?;
    drop_table(session, &items_work)?;
    Ok(AlsOutcome { shape: (n_users, n_items, nnz), losses })
}

/// Solves one side: interactions keyed by `solve`, the `other` side fixed; writes `out` and returns
/// it as the next broadcast source.
async fn half_sweep(
    session: &BackbeatSession,
    config: &AlsConfig,
    (solve, other): (&str, &str),
    fixed: &VectorSource,
    start: &VectorSource,
    out: &str,
    n: usize,
) -> Result<VectorSource> {
    let df = session
        .sql(&format!("SELECT {solve} AS solve_idx, {other} AS other_idx, plays FROM {}_interactions", config.prefix))
        .await?;
    let args = AlsSolveArgs { params: config.params, fixed: fixed.clone(), start: start.clone() };
    let solved = map_partitions(df, ALS_SOLVE, &serde_json::to_value(&args)?, &["solve_idx"])?;
    session
        .write_table(solved, out, WriteMode::CreateOrReplace, &[])
        .await?
        .collect()
        .await
        .with_context(|| format!("ALS half-sweep solving {solve}"))?;
    let (uri, version) = pinned(session, out).await?;
    Ok(VectorSource::Table { uri, version, n })
}

async fn first_f64(session: &BackbeatSession, sql: &str) -> Result<f64> {
    use arrow::array::AsArray;
    let batches = run_sql(session, sql).await?;
    let batch = batches.iter().find(|b| b.num_rows() > 0).context("loss query returned no row")?;
    let column = arrow::compute::cast(batch.column(0), &arrow::datatypes::DataType::Float64)?;
    Ok(column.as_primitive::<arrow::datatypes::Float64Type>().value(0))
}
