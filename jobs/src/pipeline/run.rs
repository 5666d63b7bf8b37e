//! Running a pipeline: steps whose dependencies are done run concurrently (at most
//! `max_parallel`), each attempt is recorded in `backbeat_runs` with the pipeline run's id, a
//! failed attempt is retried after a doubling delay, an attempt past its timeout is dropped (its
//! Delta writes commit atomically at the end, so a dropped write leaves the old version), and a
//! failed step blocks only its dependents. A re-run with the same run key (the date, or a
//! schedule's slot) skips the steps that already succeeded under it, unless forced.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use backbeat_cluster::session::BackbeatSession;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio::sync::watch;

use super::dag::{downstream, parents};
use super::spec::Pipeline;
use super::steps::{check_params, run_attempt, skip_reason};
use super::template::Context;
use crate::job_params::literal;
use crate::job_runner::run_record;
use crate::run_history::{RUNS_TABLE, StepRun, record};

/// How a run is asked to stop (by `backbeat schedule` on SIGTERM).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stop {
    /// Keep going.
    No,
    /// Start no new step; let running ones finish.
    Drain,
    /// Drop running steps now (their writes commit nothing).
    Cancel,
}

/// Options of one pipeline run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The run date, `{{ ds }}`.
    pub ds: chrono::NaiveDate,
    /// What resume matches on [default: the date].
    pub run_key: Option<String>,
    /// Run only this step and its dependents, even if they succeeded before.
    pub from: Option<String>,
    /// Run every step, even those that succeeded before under this run key.
    pub force: bool,
    /// Values of the pipeline's variables.
    pub vars: Vec<(String, String)>,
}

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepStatus {
    /// It ran and succeeded.
    Succeeded,
    /// It succeeded in an earlier run with the same key.
    Resumed,
    /// Its `when:` conditions did not hold.
    Skipped,
    /// Outside `--from`'s selection.
    NotSelected,
    /// It failed after its retries.
    Failed,
    /// A dependency failed.
    Blocked,
    /// The run was stopped before it started or while it ran.
    Cancelled,
}

impl StepStatus {
    fn label(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Resumed => "done before",
            Self::Skipped => "skipped",
            Self::NotSelected => "not selected",
            Self::Failed => "FAILED",
            Self::Blocked => "blocked",
            Self::Cancelled => "cancelled",
        }
    }

    /// Whether dependents may run after it.
    fn lets_dependents_run(self) -> bool {
        matches!(self, Self::Succeeded | Self::Resumed | Self::Skipped | Self::NotSelected)
    }
}

/// One step's line of the summary.
#[derive(Debug, Clone)]
pub struct StepReport {
    /// Step name.
    pub step: String,
    /// How it ended.
    pub status: StepStatus,
    /// Attempts made in this run.
    pub attempts: u32,
    /// Rows written by the successful attempt.
    pub rows: u64,
    /// Wall time of all attempts, seconds.
    pub seconds: f64,
    /// The error, or why it was skipped.
    pub detail: String,
}

/// What a pipeline run did.
#[derive(Debug, Clone)]
pub struct PipelineReport {
    /// Pipeline name.
    pub pipeline: String,
    /// Id of this run (`pipeline_run` in `backbeat_runs`).
    pub pipeline_run: String,
    /// The run key resume matched on.
    pub run_key: String,
    /// Steps in file order.
    pub steps: Vec<StepReport>,
}

impl PipelineReport {
    /// Whether no step failed, was blocked or was cancelled.
    pub fn succeeded(&self) -> bool {
        self.steps.iter().all(|s| s.status.lets_dependents_run())
    }

    /// The summary table.
    pub fn table(&self) -> String {
        let width = self.steps.iter().map(|s| s.step.len()).max().unwrap_or(4).max(4);
        let mut out = format!("pipeline {} run {} ({})\n", self.pipeline, self.pipeline_run, self.run_key);
        out.push_str(&format!("{:width$}  {:12}  {:>7}  {:>12}  {:>9}  detail\n", "step", "status", "attempt", "rows", "seconds"));
        for s in &self.steps {
            let detail: String = s.detail.split_whitespace().collect::<Vec<_>>().join(" ");
            let detail = if detail.chars().count() > 160 { format!("{}...", detail.chars().take(157).collect::<String>()) } else { detail };
            out.push_str(&format!("{:width$}  {:12}  {:>7}  {:>12}  {:>9.2}  {detail}\n", s.step, s.status.label(), s.attempts, s.rows, s.seconds));
        }
        out
    }
}

/// The variables of a run: built-ins, the pipeline's vars (defaults, then `given`), type-checked.
pub fn context(session: &BackbeatSession, pipeline: &Pipeline, ds: chrono::NaiveDate, run_key: &str, given: &[(String, String)]) -> Result<Context> {
    let mut values = BTreeMap::from([
        ("ds".to_string(), ds.format("%Y-%m-%d").to_string()),
        ("ds_nodash".to_string(), ds.format("%Y%m%d").to_string()),
        ("lake".to_string(), session.lake().lake_root().to_string()),
        ("run_key".to_string(), run_key.to_string()),
    ]);
    for (name, _) in given {
        if !pipeline.vars.iter().any(|v| &v.name == name) {
            let known: Vec<&str> = pipeline.vars.iter().map(|v| v.name.as_str()).collect();
            bail!("pipeline {} has no variable '{name}' (its variables: {})", pipeline.name, if known.is_empty() { "none".into() } else { known.join(", ") });
        }
    }
    for var in &pipeline.vars {
        let value = given.iter().rev().find(|(n, _)| n == &var.name).map(|(_, v)| v.clone()).or_else(|| var.default.clone());
        let value = value.with_context(|| format!("pipeline {} needs variable '{}' (--var {}=...)", pipeline.name, var.name, var.name))?;
        literal(var, &value).with_context(|| format!("pipeline {}", pipeline.name))?;
        values.insert(var.name.clone(), value);
    }
    Ok(Context { values })
}

/// Steps that succeeded under `run_key` in earlier runs of `pipeline`.
async fn succeeded_before(session: &BackbeatSession, pipeline: &str, run_key: &str) -> Result<Vec<String>> {
    if session.lake().table_format(RUNS_TABLE).await?.is_none() {
        return Ok(vec![]);
    }
    let have_steps = session.context().table(RUNS_TABLE).await?.schema().field_with_unqualified_name("step").is_ok();
    if !have_steps {
        return Ok(vec![]);
    }
    let q = |t: &str| format!("'{}'", t.replace('\'', "''"));
    let sql = format!("SELECT DISTINCT step FROM {RUNS_TABLE} WHERE pipeline = {} AND run_key = {} AND status = 'succeeded'", q(pipeline), q(run_key));
    let batches = session.sql(&sql).await?.collect().await.context("reading the run history to resume")?;
    let mut steps = Vec::new();
    for b in &batches {
        let col = arrow::compute::cast(b.column(0), &arrow::datatypes::DataType::Utf8)?;
        let col = arrow::array::AsArray::as_string::<i32>(&col);
        steps.extend(col.iter().flatten().map(str::to_string));
    }
    Ok(steps)
}

/// Runs `pipeline`; `stop` is watched for a request to stop. Errors are for runs that cannot
/// start (bad variables, an unreadable history); step failures are in the report.
pub async fn run_pipeline(session: &BackbeatSession, pipeline: &Pipeline, options: &RunOptions, stop: Option<watch::Receiver<Stop>>) -> Result<PipelineReport> {
    let run_key = options.run_key.clone().unwrap_or_else(|| options.ds.format("%Y-%m-%d").to_string());
    let ctx = context(session, pipeline, options.ds, &run_key, &options.vars)?;
    let n = pipeline.steps.len();
    let selected = match &options.from {
        Some(from) => downstream(pipeline, pipeline.step_index(from)?),
        None => vec![true; n],
    };
    // Everything that can be checked is checked before the first step runs.
    let mut skipped = vec![None; n];
    for (i, step) in pipeline.steps.iter().enumerate() {
        if selected[i] {
            skipped[i] = skip_reason(step, &ctx)?;
            if skipped[i].is_none() {
                check_params(step, &ctx)?;
            }
        }
    }
    let done_before = if options.force || options.from.is_some() { vec![] } else { succeeded_before(session, &pipeline.name, &run_key).await? };
    let pipeline_run = uuid::Uuid::new_v4().to_string();
    let mut reports: Vec<Option<StepReport>> = vec![None; n];
    let report = |step: &str, status, detail: String| StepReport { step: step.to_string(), status, attempts: 0, rows: 0, seconds: 0.0, detail };
    for (i, step) in pipeline.steps.iter().enumerate() {
        if !selected[i] {
            reports[i] = Some(report(&step.name, StepStatus::NotSelected, format!("before --from {}", options.from.as_deref().unwrap_or(""))));
        } else if done_before.contains(&step.name) {
            reports[i] = Some(report(&step.name, StepStatus::Resumed, format!("succeeded earlier for {run_key} (--force to re-run)")));
        }
    }
    eprintln!("pipeline {} run {pipeline_run} for {run_key}: {} steps", pipeline.name, n);
    let mut running = FuturesUnordered::new();
    let mut started = vec![false; n];
    let mut stop = stop;
    let mut stopping = Stop::No;
    loop {
        // Resolve what can be resolved without running: blocked and skipped steps.
        let mut changed = true;
        while changed {
            changed = false;
            for i in 0..n {
                if reports[i].is_some() || started[i] {
                    continue;
                }
                let ps = parents(pipeline, i);
                if let Some(&bad) = ps.iter().find(|&&d| reports[d].as_ref().is_some_and(|r| !r.status.lets_dependents_run())) {
                    reports[i] = Some(report(&pipeline.steps[i].name, StepStatus::Blocked, format!("{} did not succeed", pipeline.steps[bad].name)));
                    changed = true;
                } else if ps.iter().all(|&d| reports[d].is_some()) {
                    if let Some(why) = &skipped[i] {
                        eprintln!("  {} skipped: {why}", pipeline.steps[i].name);
                        reports[i] = Some(report(&pipeline.steps[i].name, StepStatus::Skipped, why.clone()));
                        changed = true;
                    }
                }
            }
        }
        if stopping == Stop::No {
            for i in 0..n {
                if running.len() >= pipeline.max_parallel {
                    break;
                }
                if reports[i].is_none() && !started[i] && parents(pipeline, i).iter().all(|&d| reports[d].is_some()) {
                    started[i] = true;
                    let step_run = StepRun { pipeline: pipeline.name.clone(), pipeline_run: pipeline_run.clone(), run_key: run_key.clone(), ds: ctx.values["ds"].clone(), step: pipeline.steps[i].name.clone(), attempt: 0 };
                    let ctx = &ctx;
                    running.push(async move { (i, run_step(session, pipeline, i, ctx, step_run).await) });
                }
            }
        }
        if running.is_empty() {
            break;
        }
        let stop_changed = async {
            match stop.as_mut() {
                Some(rx) => {
                    if rx.changed().await.is_err() {
                        std::future::pending::<()>().await;
                    }
                    *rx.borrow()
                }
                None => std::future::pending::<Stop>().await,
            }
        };
        tokio::select! {
            Some((i, r)) = running.next() => reports[i] = Some(r),
            level = stop_changed => {
                stopping = stopping.max(level);
                if stopping == Stop::Cancel {
                    eprintln!("cancelling {} running step(s)", running.len());
                    drop(std::mem::take(&mut running));
                    for i in 0..n {
                        if started[i] && reports[i].is_none() {
                            reports[i] = Some(report(&pipeline.steps[i].name, StepStatus::Cancelled, "cancelled while running (nothing committed)".into()));
                            let step_run = StepRun { pipeline: pipeline.name.clone(), pipeline_run: pipeline_run.clone(), run_key: run_key.clone(), ds: ctx.values["ds"].clone(), step: pipeline.steps[i].name.clone(), attempt: 1 };
                            let failed: Result<u64, (anyhow::Error, u64)> = Err((anyhow::anyhow!("cancelled by a stop request"), 0));
                            let run = run_record(&pipeline.steps[i].kind.label(), BTreeMap::new(), chrono::Utc::now(), Instant::now(), &failed, Some(step_run));
                            if let Err(e) = record(session, &run).await {
                                tracing::warn!("could not record the cancelled step {}: {e:#}", pipeline.steps[i].name);
                            }
                        }
                    }
                } else if stopping == Stop::Drain {
                    eprintln!("stop requested: letting {} running step(s) finish, starting no more", running.len());
                }
            }
        }
    }
    let steps = reports
        .into_iter()
        .enumerate()
        .map(|(i, r)| r.unwrap_or_else(|| report(&pipeline.steps[i].name, StepStatus::Cancelled, "not started: the run was stopped".into())))
        .collect();
    Ok(PipelineReport { pipeline: pipeline.name.clone(), pipeline_run, run_key, steps })
}

/// Runs step `i` with its retries and timeout, recording every attempt.
async fn run_step(session: &BackbeatSession, pipeline: &Pipeline, i: usize, ctx: &Context, step_run: StepRun) -> StepReport {
    let step = &pipeline.steps[i];
    let clock = Instant::now();
    let mut attempt = 0;
    loop {
        attempt += 1;
        eprintln!("  {} started{}", step.name, if attempt > 1 { format!(" (attempt {attempt} of {})", step.retries + 1) } else { String::new() });
        let started_at = chrono::Utc::now();
        let attempt_clock = Instant::now();
        let (params, result) = match step.timeout {
            Some(limit) => match tokio::time::timeout(limit, run_attempt(session, step, ctx)).await {
                Ok(r) => r,
                Err(_) => (BTreeMap::new(), Err((anyhow::anyhow!("timed out after {}", seconds(limit)), 0))),
            },
            None => run_attempt(session, step, ctx).await,
        };
        let run = run_record(&step.kind.label(), params, started_at, attempt_clock, &result, Some(StepRun { attempt, ..step_run.clone() }));
        if let Err(e) = record(session, &run).await {
            tracing::warn!("could not record step {} attempt {attempt} in {RUNS_TABLE}: {e:#}", step.name);
        }
        match result {
            Ok(rows) => {
                eprintln!("  {} succeeded in {:.2} s: {rows} rows", step.name, attempt_clock.elapsed().as_secs_f64());
                return StepReport { step: step.name.clone(), status: StepStatus::Succeeded, attempts: attempt, rows, seconds: clock.elapsed().as_secs_f64(), detail: String::new() };
            }
            Err((e, _)) if attempt <= step.retries => {
                let delay = step.retry_delay * 2u32.saturating_pow(attempt - 1);
                eprintln!("  {} attempt {attempt} failed ({}); retrying in {}", step.name, one_line(&e), seconds(delay));
                tokio::time::sleep(delay).await;
            }
            Err((e, _)) => {
                eprintln!("  {} FAILED after {attempt} attempt(s): {}", step.name, one_line(&e));
                return StepReport { step: step.name.clone(), status: StepStatus::Failed, attempts: attempt, rows: 0, seconds: clock.elapsed().as_secs_f64(), detail: format!("{e:#}") };
            }
        }
    }
}

/// An error chain on one line, for progress output.
fn one_line(e: &anyhow::Error) -> String {
    format!("{e:#}").split_whitespace().collect::<Vec<_>>().join(" ")
}

fn seconds(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}
