//! The run history: every `backbeat run` and every attempt of a pipeline step appends one row to
//! the Delta table `backbeat_runs` in the lake (job, parameters, start, end, status, rows written,
//! error, and for a step its pipeline, pipeline run, step, date and attempt), through the cluster
//! like any other write; `backbeat runs` reads it back, and a pipeline re-run reads it to resume.
//!
//! A history written before pipelines existed lacks the pipeline columns: the first write after
//! an upgrade rewrites it once with them (NULL for the old rows), in one commit.

use std::collections::BTreeMap;

use anyhow::Result;
use backbeat_cluster::session::{BackbeatSession, WriteMode};
use chrono::{DateTime, Utc};

/// The history table's name in the lake.
pub const RUNS_TABLE: &str = "backbeat_runs";

/// One run of a job.
#[derive(Debug, Clone)]
pub struct RunRecord {
    /// Unique id of the run.
    pub run_id: String,
    /// Job name.
    pub job: String,
    /// Parameter values, defaults included.
    pub params: BTreeMap<String, String>,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub ended_at: DateTime<Utc>,
    /// `succeeded` or `failed`.
    pub status: String,
    /// Rows written by its statements.
    pub rows_written: u64,
    /// Why it failed.
    pub error: Option<String>,
    /// The pipeline step this run was, if any.
    pub step: Option<StepRun>,
}

/// What makes a run one attempt of a pipeline step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepRun {
    /// Pipeline name.
    pub pipeline: String,
    /// Id of the pipeline run (one `pipeline run`, or one scheduled slot).
    pub pipeline_run: String,
    /// What a re-run resumes by: the date for `pipeline run`, the slot's time for a schedule.
    pub run_key: String,
    /// The run date (`{{ ds }}`), YYYY-MM-DD.
    pub ds: String,
    /// Step name.
    pub step: String,
    /// Attempt number, from 1.
    pub attempt: u32,
}

/// The columns a pipeline step adds to a run's row.
const STEP_COLUMNS: [&str; 6] = ["pipeline", "pipeline_run", "run_key", "ds", "step", "attempt"];

fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Appends `run` to the history table (created on first use).
pub async fn record(session: &BackbeatSession, run: &RunRecord) -> Result<()> {
    let ts = |t: &DateTime<Utc>| format!("arrow_cast({}, 'Timestamp(Microsecond, Some(\"UTC\"))')", quote(&t.to_rfc3339()));
    let sql = format!(
        "SELECT {} AS run_id, {} AS job, {} AS params, {} AS started_at, {} AS ended_at, {} AS status, CAST({} AS BIGINT) AS rows_written, {} AS error",
        quote(&run.run_id),
        quote(&run.job),
        quote(&serde_json::to_string(&run.params)?),
        ts(&run.started_at),
        ts(&run.ended_at),
        quote(&run.status),
        run.rows_written,
        run.error.as_deref().map(quote).unwrap_or_else(|| "CAST(NULL AS VARCHAR)".into()),
    );
    let text = |v: Option<&str>| v.map(quote).unwrap_or_else(|| "CAST(NULL AS VARCHAR)".into());
    let step = run.step.as_ref();
    let sql = format!(
        "{sql}, {} AS pipeline, {} AS pipeline_run, {} AS run_key, {} AS ds, {} AS step, CAST({} AS INT) AS attempt",
        text(step.map(|s| s.pipeline.as_str())),
        text(step.map(|s| s.pipeline_run.as_str())),
        text(step.map(|s| s.run_key.as_str())),
        text(step.map(|s| s.ds.as_str())),
        text(step.map(|s| s.step.as_str())),
        step.map(|s| s.attempt.to_string()).unwrap_or_else(|| "NULL".into()),
    );
    upgrade(session).await?;
    let df = session.context().sql(&sql).await?;
    session.write_table(df, RUNS_TABLE, WriteMode::Append, &[]).await?.collect().await?;
    Ok(())
}

/// Adds the pipeline columns to a history written before them, in one commit (a no-op when the
/// table is missing or already has them).
async fn upgrade(session: &BackbeatSession) -> Result<()> {
    if session.lake().table_format(RUNS_TABLE).await?.is_none() {
        return Ok(());
    }
    let df = session.context().table(RUNS_TABLE).await?;
    let have: Vec<String> = df.schema().fields().iter().map(|f| f.name().clone()).collect();
    if STEP_COLUMNS.iter().all(|c| have.iter().any(|h| h == c)) {
        return Ok(());
    }
    tracing::info!("adding the pipeline columns to {RUNS_TABLE}");
    let sql = format!(
        "SELECT run_id, job, params, started_at, ended_at, status, rows_written, error, CAST(NULL AS VARCHAR) AS pipeline, \
         CAST(NULL AS VARCHAR) AS pipeline_run, CAST(NULL AS VARCHAR) AS run_key, CAST(NULL AS VARCHAR) AS ds, \
         CAST(NULL AS VARCHAR) AS step, CAST(NULL AS INT) AS attempt FROM {RUNS_TABLE}"
    );
    let df = session.context().sql(&sql).await?;
    session.write_table(df, RUNS_TABLE, WriteMode::CreateOrReplace, &[]).await?.collect().await?;
    Ok(())
}
