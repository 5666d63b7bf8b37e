//! `clv_fit`: BG/NBD and Gamma-Gamma by maximum likelihood on the cluster.
//!
//! The summary is reduced by cluster SQL to what the likelihoods need: BG/NBD to the distinct
//! (x, t_x, T) triples with their counts (CDNOW's 2,357 customers are 1,351 triples; in days, 1M
//! customers are a few hundred thousand), Gamma-Gamma to the repeat customers' (x, m). Both go to a
//! working table, and the optimiser, argmin's BFGS with a More-Thuente line search, asks the cluster
//! for the log-likelihood and its gradient at each point it tries: one `clv_loglik` job whose tasks
//! each sum a partition (see [`super::kernels`]), the client adding the partial sums in partition
//! order. Nothing but 8 numbers per task comes back to the client.
//!
//! The objective is lifetimes' own: the mean negative log-likelihood over customers, with time
//! rescaled so the longest T is 1, plus `penalizer` x the sum of squared parameters (alpha on the
//! rescaled time), over log-parameters started at 0.1. Without a penalty the optimum is the MLE,
//! BFGS stops at a gradient norm of 1e-9 or where the objective's rounding noise hides progress,
//! then up to 5 gradient-only quasi-Newton steps with BFGS's inverse Hessian polish the optimum:
//! on CDNOW the BG/NBD parameters then equal the Newton-refined MLE to 15-16 digits, in 32
//! evaluations (lifetimes stops at gradient 1e-7, up to 4.5e-7 relative from the MLE;
//! `bench/peers/clv_reference.md`). The model rows go to `clv_model`, tied to the
//! summary table's Delta version.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use argmin::core::{CostFunction, Executor, Gradient, State, TerminationReason, TerminationStatus};
use argmin::solver::linesearch::MoreThuenteLineSearch;
use argmin::solver::quasinewton::BFGS;
use backbeat_cluster::map_partitions::map_partitions;
use backbeat_cluster::session::{BackbeatSession, WriteMode};
use datafusion::prelude::SessionContext;

use super::bgnbd::BgNbd;
use super::gamma_gamma::GammaGamma;
use super::kernels::{CLV_LOGLIK, LoglikArgs, LoglikSums};
use crate::job_runner::{ReportSection, RustJobOutput};
use crate::recs::{drop_table, first_row_i64, pinned, require_columns, run_sql};

/// Gradient norm (of the mean objective, in log-parameters) at which the fit stops. On CDNOW the
/// BG/NBD fit reaches 5e-11 in 27 evaluations, its parameters within 3e-9 of the Newton-refined
/// MLE.
pub const GRADIENT_TOLERANCE: f64 = 1e-9;

/// Change of the objective between iterations below which the fit stops: its rounding noise. The
/// Gamma-Gamma sums on CDNOW vary by ~1e-13 between points 1e-9 apart, and without this the line
/// search spent 240 evaluations there.
pub const COST_TOLERANCE: f64 = 1e-13;

/// Gradient-only quasi-Newton steps after BFGS stops, at most.
const POLISH_STEPS: usize = 5;

fn norm(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

/// Gradient norm below which a fit whose line search gave up still counts as converged:
/// lifetimes' own tolerance (scipy BFGS gtol 1e-7).
pub const ACCEPTED_GRADIENT: f64 = 1e-7;

/// What a fit found.
#[derive(Debug, Clone)]
pub struct FitOutcome<P> {
    /// The parameters.
    pub params: P,
    /// Total log-likelihood over customers, in the summary's own time unit, without the penalty.
    pub log_likelihood: f64,
    /// Customers (BG/NBD) or repeat customers (Gamma-Gamma) fitted on.
    pub customers: i64,
    /// BFGS iterations.
    pub iterations: u64,
    /// Likelihood evaluations (cluster jobs).
    pub evaluations: u64,
    /// Whether the gradient tolerance was reached.
    pub converged: bool,
    /// Why the optimiser stopped.
    pub stop_reason: String,
    /// Norm of the final gradient.
    pub gradient_norm: f64,
    /// Wall time.
    pub seconds: f64,
}

/// The log-likelihood sums of `table` at `args`, from one `clv_loglik` job.
pub async fn loglik_sums(ctx: &SessionContext, table: &str, args: &LoglikArgs) -> Result<LoglikSums> {
    let df = ctx.table(table).await.with_context(|| format!("reading {table}"))?;
    let df = map_partitions(df, CLV_LOGLIK, &serde_json::to_value(args)?, &[])?;
    let batches = df.collect().await.context("clv_loglik job")?;
    Ok(LoglikSums::from_batches(&batches)?)
}

type Evaluate = Box<dyn Fn(&[f64]) -> Result<(f64, Vec<f64>)> + Send>;

/// The lowest point an optimisation has evaluated: (u, objective, gradient).
type Best = Arc<Mutex<Option<(Vec<f64>, f64, Vec<f64>)>>>;

/// argmin's view of the objective: cost and gradient come from one cluster evaluation, memoised
/// because the solver asks for them separately at the same point. It also keeps the lowest point
/// seen, so a line search that gives up near the optimum (the objective flat to rounding) still
/// yields it.
struct Objective {
    evaluate: Evaluate,
    memo: Mutex<Option<(Vec<f64>, f64, Vec<f64>)>>,
    evaluations: Arc<AtomicU64>,
    best: Best,
}

impl Objective {
    fn at(&self, u: &[f64]) -> Result<(f64, Vec<f64>), argmin::core::Error> {
        let key: Vec<f64> = u.to_vec();
        let mut memo = self.memo.lock().expect("memo poisoned");
        if let Some((k, f, g)) = memo.as_ref() {
            if *k == key {
                return Ok((*f, g.clone()));
            }
        }
        self.evaluations.fetch_add(1, Ordering::Relaxed);
        let (f, g) = (self.evaluate)(&key)?;
        // A trial point where the likelihood is not finite (a parameter overflowing exp) is no
        // better than any other: the line search backs off from it.
        let (f, g) = if f.is_finite() && g.iter().all(|v| v.is_finite()) { (f, g) } else { (f64::MAX, vec![0.0; key.len()]) };
        tracing::debug!(?key, objective = f, ?g, "likelihood evaluated");
        let mut best = self.best.lock().expect("best poisoned");
        if f < f64::MAX && best.as_ref().is_none_or(|(_, bf, _)| f < *bf) {
            *best = Some((key.clone(), f, g.clone()));
        }
        *memo = Some((key, f, g.clone()));
        Ok((f, g))
    }
}

impl CostFunction for Objective {
    type Param = Vec<f64>;
    type Output = f64;
    fn cost(&self, u: &Vec<f64>) -> Result<f64, argmin::core::Error> {
        Ok(self.at(u)?.0)
    }
}

impl Gradient for Objective {
    type Param = Vec<f64>;
    type Gradient = Vec<f64>;
    fn gradient(&self, u: &Vec<f64>) -> Result<Vec<f64>, argmin::core::Error> {
        Ok(self.at(u)?.1)
    }
}

/// Where an optimisation stopped.
#[derive(Debug, Clone)]
pub struct Minimum {
    /// Log-parameters.
    pub u: Vec<f64>,
    /// BFGS iterations (0 when the line search gave up).
    pub iterations: u64,
    /// Likelihood evaluations.
    pub evaluations: u64,
    /// Whether the gradient norm is below [`ACCEPTED_GRADIENT`].
    pub converged: bool,
    /// Why it stopped.
    pub stop_reason: String,
    /// Final gradient norm.
    pub gradient_norm: f64,
}

impl Minimum {
    /// The fit's record: `params` (the minimum, in natural units), with the likelihood sums `at` them.
    fn outcome<P>(self, params: P, at: &LoglikSums, clock: Instant) -> FitOutcome<P> {
        FitOutcome {
            params,
            log_likelihood: at.ll,
            customers: at.weight.round() as i64,
            iterations: self.iterations,
            evaluations: self.evaluations,
            converged: self.converged,
            stop_reason: self.stop_reason,
            gradient_norm: self.gradient_norm,
            seconds: clock.elapsed().as_secs_f64(),
        }
    }
}

/// Minimises `evaluate` over `dim` log-parameters from 0.1 with BFGS, on a blocking thread (each
/// evaluation waits for a cluster job).
async fn minimise(dim: usize, max_iterations: u64, evaluate: Evaluate) -> Result<Minimum> {
    tokio::task::spawn_blocking(move || -> Result<Minimum> {
        let (best, evaluations): (Best, _) = (Arc::new(Mutex::new(None)), Arc::new(AtomicU64::new(0)));
        let objective = Objective { evaluate, memo: Mutex::new(None), evaluations: evaluations.clone(), best: best.clone() };
        let solver = BFGS::new(MoreThuenteLineSearch::new()).with_tolerance_grad(GRADIENT_TOLERANCE)?.with_tolerance_cost(COST_TOLERANCE)?;
        let outcome = Executor::new(objective, solver)
            .configure(|state| {
                let identity: Vec<Vec<f64>> = (0..dim).map(|i| (0..dim).map(|j| if i == j { 1.0 } else { 0.0 }).collect()).collect();
                state.param(vec![0.1; dim]).inv_hessian(identity).max_iters(max_iterations)
            })
            .run();
        // Polish: BFGS stops where the objective's rounding noise hides further decrease (lnΓ of
        // arguments ~50 carries ~1e-13 of it). Quasi-Newton steps with BFGS's own inverse Hessian
        // need only the gradient, which stays smooth there; a step is kept while it shrinks the
        // gradient. On CDNOW this takes Gamma-Gamma from |g| ~7e-8 to ~1e-11.
        let mut polished = 0;
        if let Ok(result) = &outcome {
            if let (Some(h), Some(objective)) = (result.state().get_inv_hessian(), result.problem().problem.as_ref()) {
                let (mut u, _, mut g) = best.lock().expect("best poisoned").clone().context("the optimiser evaluated no finite point")?;
                for _ in 0..POLISH_STEPS {
                    let step: Vec<f64> = h.iter().map(|row| row.iter().zip(&g).map(|(a, b)| a * b).sum::<f64>()).collect();
                    let next: Vec<f64> = u.iter().zip(&step).map(|(a, b)| a - b).collect();
                    let (f, g_next) = objective.at(&next).map_err(|e| anyhow::anyhow!("{e}"))?;
                    if !(f < f64::MAX && norm(&g_next) < norm(&g)) {
                        break;
                    }
                    (u, g) = (next, g_next);
                    polished += 1;
                    *best.lock().expect("best poisoned") = Some((u.clone(), f, g.clone()));
                }
            }
        }
        let (u, _, gradient) = best.lock().expect("best poisoned").clone().context("the optimiser evaluated no finite point")?;
        let gradient_norm = norm(&gradient);
        let (iterations, solver_converged, stop_reason) = match &outcome {
            Ok(result) => {
                let state = result.state();
                match state.get_termination_status() {
                    TerminationStatus::Terminated(TerminationReason::SolverConverged) => (state.get_iter(), true, "gradient or objective change below tolerance".to_string()),
                    TerminationStatus::Terminated(reason) => (state.get_iter(), false, reason.text().to_string()),
                    TerminationStatus::NotTerminated => (state.get_iter(), false, "not terminated".to_string()),
                }
            }
            // The line search finds no lower point: near the optimum, rounding noise in the sums.
            Err(e) => (0, false, format!("line search stopped: {e}")),
        };
        let converged = gradient_norm <= ACCEPTED_GRADIENT;
        tracing::debug!(solver_converged, gradient_norm, polished, "optimiser stopped");
        if !converged {
            tracing::warn!(gradient_norm, stop_reason, "the fit did not converge");
        }
        Ok(Minimum { u, iterations, evaluations: evaluations.load(Ordering::Relaxed), converged, stop_reason, gradient_norm })
    })
    .await
    .context("optimiser thread")?
}

/// Which model a fit is of, with what its likelihood needs beside the data.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub enum FitModel {
    /// BG/NBD over triples, times multiplied by `scale` (1 / max T) while fitting.
    Bgnbd {
        /// Time scale.
        scale: f64,
    },
    /// Gamma-Gamma over the repeat customers' (x, m).
    GammaGamma,
}

impl FitModel {
    fn dim(&self) -> usize {
        match self {
            Self::Bgnbd { .. } => 4,
            Self::GammaGamma => 3,
        }
    }

    /// The likelihood at θ as optimised (BG/NBD's alpha in scaled time).
    fn args(&self, th: &[f64]) -> LoglikArgs {
        match *self {
            Self::Bgnbd { scale } => LoglikArgs::Bgnbd { params: BgNbd { r: th[0], alpha: th[1], a: th[2], b: th[3] }, scale },
            Self::GammaGamma => LoglikArgs::GammaGamma { params: GammaGamma { p: th[0], q: th[1], v: th[2] } },
        }
    }

    /// The likelihood at θ in the data's own units (what is reported).
    pub fn natural_args(&self, th: &[f64]) -> LoglikArgs {
        match *self {
            Self::Bgnbd { scale } => LoglikArgs::Bgnbd { params: BgNbd { r: th[0], alpha: th[1] / scale, a: th[2], b: th[3] }, scale: 1.0 },
            Self::GammaGamma => self.args(th),
        }
    }
}

/// Where an evaluation's sums come from: the cluster, or the batches of one task.
pub type SumsAt = Arc<dyn Fn(&LoglikArgs) -> Result<LoglikSums> + Send + Sync>;

/// lifetimes' objective over log-parameters u: the mean negative log-likelihood at θ = exp(u)
/// plus `penalizer`·Σθ², and its gradient in u.
fn penalised_mean_nll(sums_at: SumsAt, penalizer: f64, model: FitModel) -> Evaluate {
    Box::new(move |u: &[f64]| {
        let th: Vec<f64> = u.iter().map(|v| v.exp()).collect();
        if th.iter().any(|t| !t.is_normal()) {
            // A trial step so long that a parameter over- or underflows: no better than any point.
            return Ok((f64::INFINITY, vec![0.0; th.len()]));
        }
        let s = sums_at(&model.args(&th))?;
        let f = -s.ll / s.weight + penalizer * th.iter().map(|t| t * t).sum::<f64>();
        let g = (0..th.len()).map(|i| -th[i] * s.grad[i] / s.weight + 2.0 * penalizer * th[i] * th[i]).collect();
        Ok((f, g))
    })
}

/// Fits `model` over sums from `sums_at`: where the optimiser stopped, and the likelihood sums at
/// the optimum in natural units.
pub async fn fit_with(sums_at: SumsAt, model: FitModel, penalizer: f64, max_iterations: u64) -> Result<(Minimum, LoglikSums)> {
    let min = minimise(model.dim(), max_iterations, penalised_mean_nll(sums_at.clone(), penalizer, model)).await?;
    let natural = model.natural_args(&theta(&min));
    let at = tokio::task::spawn_blocking(move || sums_at(&natural)).await.context("likelihood thread")??;
    Ok((min, at))
}

/// Where the optimiser runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// The whole optimisation inside one executor task, over the sufficient statistics it holds:
    /// one job instead of one per evaluation (~50 ms of scheduling each).
    Task,
    /// The optimiser on the client, each evaluation one job summing over all partitions: for
    /// sufficient statistics too large for one task.
    Distributed,
}

/// Rows of sufficient statistics up to which `auto` fits inside one task (~80 MB of columns; one
/// evaluation over 5M rows takes ~0.3 s on one core).
pub const TASK_MAX_ROWS: i64 = 5_000_000;

async fn fit_model(ctx: &SessionContext, table: &str, model: FitModel, penalizer: f64, max_iterations: u64, placement: Placement) -> Result<(Minimum, LoglikSums)> {
    match placement {
        Placement::Task => super::fit_task::fit_in_task(ctx, table, model, penalizer, max_iterations).await,
        Placement::Distributed => {
            let handle = tokio::runtime::Handle::current();
            let (ctx, table) = (ctx.clone(), table.to_string());
            // Evaluations run on a blocking thread, where waiting for a cluster job is allowed.
            let sums_at: SumsAt = Arc::new(move |args| handle.block_on(loglik_sums(&ctx, &table, args)));
            fit_with(sums_at, model, penalizer, max_iterations).await
        }
    }
}

/// Fits BG/NBD to the triples table (`x`, `t_x`, `t`, `weight`).
pub async fn fit_bgnbd(ctx: &SessionContext, triples: &str, penalizer: f64, max_iterations: u64, placement: Placement) -> Result<FitOutcome<BgNbd>> {
    let clock = Instant::now();
    let (rows, max_t) = match aggregates_f64(ctx, triples, "count(*), max(t)").await?[..] {
        [rows, max_t] => (rows, max_t),
        _ => unreachable!("two aggregates"),
    };
    ensure!(rows > 0.0, "no customers to fit");
    ensure!(max_t > 0.0, "every customer's T is 0 (all first purchases in the last period): there is no time to fit on");
    let model = FitModel::Bgnbd { scale: 1.0 / max_t };
    let (min, at) = fit_model(ctx, triples, model, penalizer, max_iterations, placement).await?;
    let th = theta(&min);
    let LoglikArgs::Bgnbd { params, .. } = model.natural_args(&th) else { unreachable!("BG/NBD arguments") };
    Ok(min.outcome(params, &at, clock))
}

/// Fits Gamma-Gamma to the repeat customers' table (`x`, `m`, `weight`).
pub async fn fit_gamma_gamma(ctx: &SessionContext, spend: &str, penalizer: f64, max_iterations: u64, placement: Placement) -> Result<FitOutcome<GammaGamma>> {
    let clock = Instant::now();
    let model = FitModel::GammaGamma;
    let (min, at) = fit_model(ctx, spend, model, penalizer, max_iterations, placement).await?;
    let th = theta(&min);
    Ok(min.outcome(GammaGamma { p: th[0], q: th[1], v: th[2] }, &at, clock))
}

fn theta(min: &Minimum) -> Vec<f64> {
    min.u.iter().map(|v| v.exp()).collect()
}

/// Aggregates of `table` (one statement's select list) as f64s, NULL as 0.
async fn aggregates_f64(ctx: &SessionContext, table: &str, aggregates: &str) -> Result<Vec<f64>> {
    let batches = ctx.sql(&format!("SELECT {aggregates} FROM {table}")).await?.collect().await?;
    let batch = batches.iter().find(|b| b.num_rows() > 0).context("no rows")?;
    (0..batch.num_columns()).map(|c| Ok(super::f64_cells(batch, c)?[0].unwrap_or(0.0))).collect()
}

/// Checks a customer summary has the columns and values the models need; fails naming a customer
/// and the rule it breaks.
pub async fn validate_summary(session: &BackbeatSession, summary: &str) -> Result<i64> {
    require_columns(session, summary, &["customer_id", "frequency", "recency", "T", "monetary_value"]).await?;
    let rules = [
        ("frequency IS NULL OR recency IS NULL OR \"T\" IS NULL", "has a NULL frequency, recency or T"),
        ("frequency < 0 OR frequency <> floor(frequency)", "has a frequency that is not a whole number >= 0"),
        ("recency < 0 OR recency > \"T\"", "has a recency below 0 or above T"),
        ("frequency = 0 AND recency <> 0", "has no repeat purchase but a recency other than 0"),
        ("monetary_value < 0", "has a negative monetary_value"),
    ];
    // One scan counts every rule's breakers; only a broken rule costs a second query, for an example.
    let counts: Vec<String> = rules.iter().map(|(condition, _)| format!("count(*) FILTER (WHERE {condition})")).collect();
    let counts = first_row_i64(session, &format!("SELECT count(*) AS n, {} FROM {summary}", counts.join(", "))).await?;
    for ((condition, what), broken) in rules.iter().zip(&counts[1..]) {
        if *broken > 0 {
            let example = run_sql(session, &format!("SELECT customer_id FROM {summary} WHERE {condition} LIMIT 1")).await?;
            let customer = example.iter().find(|b| b.num_rows() > 0).map(|b| super::text_cell(b, 0, 0)).unwrap_or_default();
            bail!("summary '{summary}': customer {customer} {what} ({broken} customers do); build the summary with the customer_summary job");
        }
    }
    let n = counts[0];
    ensure!(n > 0, "summary '{summary}' has no customers: nothing to fit");
    Ok(n)
}

/// The `clv_fit` job.
pub async fn run(session: &BackbeatSession, params: &BTreeMap<String, String>) -> Result<RustJobOutput> {
    let summary = params["summary"].as_str();
    let model_table = params["model_table"].as_str();
    let penalizer: f64 = params["penalizer"].parse().context("parameter penalizer")?;
    let max_iterations: u64 = params["max_iterations"].parse().context("parameter max_iterations")?;
    ensure!(penalizer >= 0.0, "penalizer must be >= 0, got {penalizer}");
    let placement = match params["placement"].as_str() {
        "auto" => None,
        "task" => Some(Placement::Task),
        "distributed" => Some(Placement::Distributed),
        other => bail!("placement must be auto, task or distributed, not '{other}'"),
    };
    let outcome = fit_summary(session, summary, model_table, penalizer, max_iterations, placement).await?;
    let report = run_sql(session, &format!(
        "SELECT model, customers, r, alpha, a, b, p, q, v, log_likelihood, iterations, converged FROM {model_table} WHERE model_id = '{}' ORDER BY model",
        outcome.model_id
    ))
    .await?;
    Ok(RustJobOutput { report: vec![ReportSection::from_batches(format!("BG/NBD and Gamma-Gamma fitted on {summary}"), report)], rows_written: 2 })
}

/// Both fits of one summary, as recorded.
#[derive(Debug, Clone)]
pub struct SummaryFit {
    /// Shared id of the two model rows.
    pub model_id: String,
    /// The purchase model.
    pub bgnbd: FitOutcome<BgNbd>,
    /// The spend model (None when no customer has a repeat purchase with a positive spend).
    pub spend: Option<FitOutcome<GammaGamma>>,
}

/// Fits both models on `summary` and appends their rows to `model_table`.
/// With `placement` None, each model is fitted inside one task when its sufficient statistics have
/// at most [`TASK_MAX_ROWS`] rows, distributed otherwise.
pub async fn fit_summary(session: &BackbeatSession, summary: &str, model_table: &str, penalizer: f64, max_iterations: u64, placement: Option<Placement>) -> Result<SummaryFit> {
    validate_summary(session, summary).await?;
    let (_, version) = pinned(session, summary).await?;
    let triples = format!("{model_table}_work_triples");
    let spend = format!("{model_table}_work_spend");
    run_sql(session, &format!(
        "CREATE OR REPLACE TABLE {triples} AS SELECT frequency AS x, recency AS t_x, \"T\" AS t, CAST(count(*) AS DOUBLE) AS weight FROM {summary} GROUP BY 1, 2, 3"
    ))
    .await?;
    run_sql(session, &format!(
        "CREATE OR REPLACE TABLE {spend} AS SELECT frequency AS x, monetary_value AS m, 1.0 AS weight FROM {summary} WHERE frequency > 0 AND monetary_value > 0"
    ))
    .await?;
    let ctx = session.context();
    let result = async {
        let sizes = first_row_i64(session, &format!("SELECT (SELECT count(*) FROM {triples}) AS triples, (SELECT count(*) FROM {spend}) AS repeaters")).await?;
        let place = |rows: i64| placement.unwrap_or(if rows <= TASK_MAX_ROWS { Placement::Task } else { Placement::Distributed });
        tracing::info!(triples = sizes[0], repeat_customers = sizes[1], "fitting BG/NBD and Gamma-Gamma");
        let bgnbd = fit_bgnbd(ctx, &triples, penalizer, max_iterations, place(sizes[0])).await.context("fitting BG/NBD")?;
        let spend = if sizes[1] > 0 {
            Some(fit_gamma_gamma(ctx, &spend, penalizer, max_iterations, place(sizes[1])).await.context("fitting Gamma-Gamma")?)
        } else {
            None
        };
        anyhow::Ok((bgnbd, spend))
    }
    .await;
    drop_table(session, &triples).await?;
    drop_table(session, &spend).await?;
    let (bgnbd, spend) = result?;
    let model_id = uuid::Uuid::new_v4().to_string();
    let lit = |v: Option<f64>| v.map_or("CAST(NULL AS DOUBLE)".to_string(), |v| format!("CAST({v:e} AS DOUBLE)"));
    let row = |model: &str, n: i64, p: [Option<f64>; 7], ll: f64, it: u64, ev: u64, conv: bool, stop: &str, g: f64, s: f64| {
        format!(
            "('{model_id}', '{model}', '{summary}', CAST({version} AS BIGINT), CAST({n} AS BIGINT), {}, {}, {}, {}, {}, {}, {}, {}, {}, CAST({it} AS BIGINT), CAST({ev} AS BIGINT), {conv}, '{}', {}, {}, now())",
            lit(p[0]), lit(p[1]), lit(p[2]), lit(p[3]), lit(p[4]), lit(p[5]), lit(p[6]), lit(Some(ll)), lit(Some(penalizer)), stop.replace('\'', "''"), lit(Some(g)), lit(Some(s))
        )
    };
    let b = &bgnbd;
    let mut rows = vec![row("bgnbd", b.customers, [Some(b.params.r), Some(b.params.alpha), Some(b.params.a), Some(b.params.b), None, None, None], b.log_likelihood, b.iterations, b.evaluations, b.converged, &b.stop_reason, b.gradient_norm, b.seconds)];
    if let Some(g) = &spend {
        rows.push(row("gamma_gamma", g.customers, [None, None, None, None, Some(g.params.p), Some(g.params.q), Some(g.params.v)], g.log_likelihood, g.iterations, g.evaluations, g.converged, &g.stop_reason, g.gradient_norm, g.seconds));
    }
    let sql = format!(
        "SELECT column1 AS model_id, column2 AS model, column3 AS summary_table, column4 AS summary_version, column5 AS customers, \
         column6 AS r, column7 AS alpha, column8 AS a, column9 AS b, column10 AS p, column11 AS q, column12 AS v, \
         column13 AS log_likelihood, column14 AS penalizer, column15 AS iterations, column16 AS evaluations, column17 AS converged, \
         column18 AS stop_reason, column19 AS gradient_norm, column20 AS seconds, column21 AS fitted_at FROM (VALUES {})",
        rows.join(", ")
    );
    let df = session.context().sql(&sql).await?;
    let mode = if session.lake().table_format(model_table).await?.is_some() { WriteMode::Append } else { WriteMode::Create };
    session.write_table(df, model_table, mode, &[]).await?.collect().await.with_context(|| format!("writing {model_table}"))?;
    tracing::info!(r = b.params.r, alpha = b.params.alpha, a = b.params.a, b = b.params.b, ll = b.log_likelihood, "BG/NBD fitted");
    Ok(SummaryFit { model_id, bgnbd, spend })
}
