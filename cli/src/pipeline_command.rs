//! `backbeat pipeline list|show|run|backfill`, `backbeat schedule` and `backbeat runs --pipeline`.

use anyhow::{Context, Result, bail};
use backbeat_jobs::pipeline::schedule::{ScheduleOptions, run_schedule};
use backbeat_jobs::pipeline::spec::parse_duration;
use backbeat_jobs::pipeline::{Pipeline, PipelineReport, RunOptions, Stop, builtin, find_pipeline, run_pipeline};
use backbeat_jobs::run_history::RUNS_TABLE;
use clap::{Args, Subcommand};
use tokio::sync::watch;

use crate::SessionArgs;
use crate::jobs_command::parse_params;
use crate::result_output::{OutputFormat, ResultWriter};

/// `backbeat pipeline ...`.
#[derive(Subcommand)]
pub enum PipelineCommand {
    /// The built-in pipelines (jobs/pipelines/) with their steps and schedules.
    List,
    /// A pipeline's DAG as text: run order, dependencies, retries, timeouts, conditions.
    Show {
        /// Built-in name or path to a .yaml file.
        name: String,
    },
    /// Run a pipeline for a date; re-running the same date resumes (skips steps that succeeded).
    #[command(after_help = "Examples:
  backbeat pipeline run daily                          # today, embedded cluster, ./lake
  backbeat pipeline run daily --date 2026-12-01 --from recommend --var scale=10
  backbeat pipeline run jobs/pipelines/daily.yaml --cluster df://127.0.0.1:50050 --force")]
    Run {
        /// Built-in name or path to a .yaml file.
        name: String,
        /// The run date, {{ ds }} (YYYY-MM-DD) [default: today, UTC].
        #[arg(long)]
        date: Option<String>,
        /// Run only this step and the steps after it, even if they succeeded before.
        #[arg(long)]
        from: Option<String>,
        /// Run every step, even those that already succeeded for this date.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        common: PipelineArgs,
    },
    /// Run a pipeline for every date from --from to --to, oldest first (each date resumes).
    Backfill {
        /// Built-in name or path to a .yaml file.
        name: String,
        /// First date, YYYY-MM-DD.
        #[arg(long)]
        from: String,
        /// Last date, YYYY-MM-DD (inclusive).
        #[arg(long)]
        to: String,
        /// Re-run steps that already succeeded for a date.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        common: PipelineArgs,
    },
}

/// Arguments every pipeline run takes.
#[derive(Args)]
pub struct PipelineArgs {
    /// A pipeline variable, name=value (repeat for several).
    #[arg(long = "var")]
    vars: Vec<String>,
    #[command(flatten)]
    session: SessionArgs,
}

/// Arguments of `backbeat schedule`.
#[derive(Args)]
#[command(after_help = "Example: backbeat schedule daily --lease-timeout 60s
Two schedule processes on one lake run each slot once; SIGTERM lets the running steps finish,
a second SIGTERM cancels them (nothing half-written).")]
pub struct ScheduleArgs {
    /// Pipelines to schedule (built-in names or .yaml paths) [default: every built-in pipeline with a schedule].
    names: Vec<String>,
    /// A lease not renewed for this long has lapsed and another process may take over.
    #[arg(long, default_value = "60s")]
    lease_timeout: String,
    /// How often due slots are looked for.
    #[arg(long, default_value = "1s")]
    tick: String,
    #[command(flatten)]
    common: PipelineArgs,
}

fn parse_date(text: &str) -> Result<chrono::NaiveDate> {
    chrono::NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").with_context(|| format!("'{text}' is not a date (YYYY-MM-DD)"))
}

/// Prints the report and the tables the run wrote; fails when a step did not succeed.
/// Prints the report and, for a local lake, the tables the run wrote.
fn finish(report: &PipelineReport, lake: Option<&std::path::Path>, since: std::time::SystemTime) -> Result<()> {
    print!("{}", report.table());
    let dir = lake.unwrap_or(std::path::Path::new(""));
    let mut written: Vec<String> = lake.into_iter().flat_map(std::fs::read_dir).next()
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    !name.starts_with('_') && !name.starts_with('.') && std::fs::metadata(e.path().join("_delta_log")).and_then(|m| m.modified()).is_ok_and(|t| t >= since)
                })
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    written.sort();
    if !written.is_empty() {
        println!("tables written in {}: {}", dir.display(), written.join(", "));
        println!("query them with `backbeat sql \"SELECT * FROM <table> LIMIT 10\"`; the history with `backbeat runs --pipeline {}`", report.pipeline);
    }
    let bad: Vec<String> = report.steps.iter().filter(|s| matches!(s.status, backbeat_jobs::pipeline::run::StepStatus::Failed | backbeat_jobs::pipeline::run::StepStatus::Blocked | backbeat_jobs::pipeline::run::StepStatus::Cancelled)).map(|s| s.step.clone()).collect();
    if !bad.is_empty() {
        bail!("pipeline {} did not finish: {} (re-run the same date to resume)", report.pipeline, bad.join(", "));
    }
    Ok(())
}

/// Runs `backbeat pipeline ...`.
pub async fn run(command: PipelineCommand, stop: watch::Receiver<Stop>) -> Result<()> {
    match command {
        PipelineCommand::List => {
            for p in builtin()? {
                let schedule = p.schedule.as_ref().map(|s| format!(", schedule '{}' {}", s.cron, s.timezone)).unwrap_or_default();
                println!("{}: {} ({} steps{schedule})", p.name, p.description, p.steps.len());
            }
            Ok(())
        }
        PipelineCommand::Show { name } => {
            print!("{}", backbeat_jobs::pipeline::dag::render(&find_pipeline(&name)?));
            Ok(())
        }
        PipelineCommand::Run { name, date, from, force, common } => {
            let pipeline = find_pipeline(&name)?;
            let ds = match date {
                Some(d) => parse_date(&d)?,
                None => chrono::Utc::now().date_naive(),
            };
            let options = RunOptions { ds, run_key: None, from, force, vars: parse_params(&common.vars)? };
            let session = common.session.connect().await?;
            let since = std::time::SystemTime::now();
            let report = run_pipeline(&session, &pipeline, &options, Some(stop)).await?;
            finish(&report, session.lake().lake_root().local_dir(), since)
        }
        PipelineCommand::Backfill { name, from, to, force, common } => {
            let pipeline = find_pipeline(&name)?;
            let (first, last) = (parse_date(&from)?, parse_date(&to)?);
            if last < first {
                bail!("--to {to} is before --from {from}");
            }
            let vars = parse_params(&common.vars)?;
            let session = common.session.connect().await?;
            let mut failed = Vec::new();
            let mut day = first;
            while day <= last && *stop.borrow() == Stop::No {
                let report = run_pipeline(&session, &pipeline, &RunOptions { ds: day, run_key: None, from: None, force, vars: vars.clone() }, Some(stop.clone())).await?;
                print!("{}", report.table());
                if !report.succeeded() {
                    failed.push(day.to_string());
                }
                day = day.succ_opt().context("date overflow")?;
            }
            if !failed.is_empty() {
                bail!("backfill of {}: {} date(s) did not finish: {}", pipeline.name, failed.len(), failed.join(", "));
            }
            Ok(())
        }
    }
}

/// Runs `backbeat schedule`.
pub async fn schedule(args: ScheduleArgs, stop: watch::Receiver<Stop>) -> Result<()> {
    let pipelines: Vec<Pipeline> = if args.names.is_empty() {
        builtin()?.into_iter().filter(|p| p.schedule.is_some()).collect()
    } else {
        args.names.iter().map(|n| find_pipeline(n)).collect::<Result<_>>()?
    };
    if pipelines.is_empty() {
        bail!("no pipeline to schedule (name one, or give a built-in pipeline a schedule: section)");
    }
    let options = ScheduleOptions {
        lease_timeout: parse_duration(&args.lease_timeout).context("--lease-timeout")?,
        tick: parse_duration(&args.tick).context("--tick")?,
        vars: parse_params(&args.common.vars)?,
    };
    let session = args.common.session.connect().await?;
    run_schedule(&session, &pipelines, &options, stop).await
}

/// Runs `backbeat runs --pipeline NAME`: every step attempt of the pipeline's runs, newest run first.
pub async fn history(session: &SessionArgs, pipeline: &str, limit: usize, format: OutputFormat) -> Result<()> {
    let session = session.connect().await?;
    if session.lake().table_format(RUNS_TABLE).await?.is_none() {
        bail!("no runs recorded yet in lake {}", session.lake().lake_root());
    }
    let name = pipeline.replace('\'', "''");
    let sql = format!(
        "WITH runs AS (SELECT pipeline_run, min(started_at) AS run_started FROM {RUNS_TABLE} WHERE pipeline = '{name}' GROUP BY pipeline_run ORDER BY run_started DESC LIMIT {limit}) \
         SELECT h.run_key, h.pipeline_run, h.step, h.attempt, h.status, h.rows_written, \
                round(CAST(date_part('epoch', h.ended_at) - date_part('epoch', h.started_at) AS DOUBLE), 2) AS seconds, h.started_at, h.error \
         FROM {RUNS_TABLE} h JOIN runs r ON h.pipeline_run = r.pipeline_run ORDER BY r.run_started DESC, h.started_at, h.step"
    );
    let df = session.sql(&sql).await?;
    let schema = df.schema().as_arrow().clone();
    let batches = df.collect().await?;
    if batches.iter().map(|b| b.num_rows()).sum::<usize>() == 0 {
        bail!("no runs of pipeline '{pipeline}' in {RUNS_TABLE}");
    }
    let mut out = ResultWriter::new(format, None)?;
    out.write(&schema, &batches)?;
    out.finish()
}
