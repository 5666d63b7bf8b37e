//! Running a job: bind its parameters, run it on the cluster (a SQL script statement by statement,
//! or a Rust job's function), keep its query results as the report, count the rows it wrote, and
//! record the run in the history, whether it succeeded or not.

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::{Context, Result};
use arrow::datatypes::Schema;
use arrow::record_batch::RecordBatch;
use backbeat_cluster::session::{BackbeatSession, rows_written};
use backbeat_cluster::sql_script::{returns_rows, split_statements};

use crate::job_catalogue::{Job, JobBody};
use crate::job_params::bind;
use crate::run_history::{RunRecord, StepRun, record};

/// One query result of a job's report.
#[derive(Debug, Clone)]
pub struct ReportSection {
    /// The query's first line, as a title.
    pub title: String,
    /// Result schema.
    pub schema: Schema,
    /// Result rows.
    pub batches: Vec<RecordBatch>,
}

impl ReportSection {
    /// A section titled `title` over `batches`, its schema taken from the first batch (empty when
    /// the query returned none).
    pub fn from_batches(title: impl Into<String>, batches: Vec<RecordBatch>) -> Self {
        let schema = batches.first().map(|b| b.schema().as_ref().clone()).unwrap_or_else(Schema::empty);
        Self { title: title.into(), schema, batches }
    }
}

/// What a Rust job returns: its report and the rows it wrote.
#[derive(Debug, Clone, Default)]
pub struct RustJobOutput {
    /// Report sections, in order.
    pub report: Vec<ReportSection>,
    /// Rows written to lake tables.
    pub rows_written: u64,
}

/// What a successful run produced.
#[derive(Debug, Clone)]
pub struct JobOutcome {
    /// The history record of the run.
    pub run: RunRecord,
    /// The job's report: the results of its queries, in order.
    pub report: Vec<ReportSection>,
}

/// Runs `job` with `given` parameters. Bad parameters fail before anything runs; a failing
/// statement stops the job, and the failure is recorded in the history too.
pub async fn run_job(session: &BackbeatSession, job: &Job, given: &[(String, String)]) -> Result<JobOutcome> {
    let started_at = chrono::Utc::now();
    let clock = Instant::now();
    let (params, result) = execute(session, job, given).await?;
    let run = run_record(&job.name, params, started_at, clock, &result, None);
    let recorded = record(session, &run).await;
    match (result, recorded) {
        (Ok(out), Ok(())) => Ok(JobOutcome { run, report: out.report }),
        (Ok(_), Err(e)) => Err(e.context("the job succeeded but its run could not be recorded in backbeat_runs")),
        // The job's own failure is the news; a history that could not be written is secondary.
        (Err((e, _)), recorded) => {
            if let Err(history) = recorded {
                tracing::warn!("could not record the failed run of {} in backbeat_runs: {history:#}", job.name);
            }
            Err(e)
        }
    }
}

/// What running a job gave: its output, or the error and the rows written before it.
pub type Execution = Result<RustJobOutput, (anyhow::Error, u64)>;

/// Runs `job` without recording it: the bound parameter values (an `Err` here means bad
/// parameters, and nothing ran) and the job's result. Pipelines record each attempt themselves.
pub async fn execute(session: &BackbeatSession, job: &Job, given: &[(String, String)]) -> Result<(BTreeMap<String, String>, Execution)> {
    // An embedded cluster runs in this process: its executor needs the kernels too. (Its UDF
    // registry is fixed when it starts: processes register before connecting, as `main` does.)
    crate::register_kernels();
    for udf in backbeat_cluster::udf_registry::backbeat_udfs() {
        if datafusion::execution::FunctionRegistry::udf(session.context(), udf.name()).is_err() {
            session.context().register_udf(udf.as_ref().clone());
        }
    }
    let (sql, params) = bind(&job.name, &job.params, job.script(), given)?;
    let result = match &job.body {
        JobBody::Sql(_) => run_statements(session, &job.name, &sql).await,
        JobBody::Rust(entry) => entry(session, &params).await.map_err(|e| (e.context(format!("job {}", job.name)), 0)),
        JobBody::Python(path) => {
            crate::python_job::run(session, path, &params).await.map_err(|e| (e.context(format!("job {}", job.name)), 0))
        }
    };
    Ok((params, result))
}

/// The history record of a run of `job` that started at `started_at` (`clock` started with it).
pub fn run_record<T>(
    job: &str,
    params: BTreeMap<String, String>,
    started_at: chrono::DateTime<chrono::Utc>,
    clock: Instant,
    result: &Result<T, (anyhow::Error, u64)>,
    step: Option<StepRun>,
) -> RunRecord
where
    T: RowsWritten,
{
    let (failure, rows_written) = match result {
        Ok(out) => (None, out.rows_written()),
        Err((e, rows)) => (Some(format!("{e:#}")), *rows),
    };
    RunRecord {
        run_id: uuid::Uuid::new_v4().to_string(),
        job: job.to_string(),
        params,
        started_at,
        ended_at: started_at + chrono::Duration::from_std(clock.elapsed()).unwrap_or_default(),
        status: if failure.is_some() { "failed" } else { "succeeded" }.to_string(),
        rows_written,
        error: failure,
        step,
    }
}

/// Anything that knows how many lake rows it wrote.
pub trait RowsWritten {
    /// Rows written to lake tables.
    fn rows_written(&self) -> u64;
}

impl RowsWritten for RustJobOutput {
    fn rows_written(&self) -> u64 {
        self.rows_written
    }
}

impl RowsWritten for u64 {
    fn rows_written(&self) -> u64 {
        *self
    }
}

/// Runs a bound script's statements in order; on failure, the error and the rows written so far.
async fn run_statements(session: &BackbeatSession, job: &str, sql: &str) -> Result<RustJobOutput, (anyhow::Error, u64)> {
    let statements = split_statements(sql);
    let mut out = RustJobOutput::default();
    for (i, statement) in statements.iter().enumerate() {
        let result = async {
            let df = session.sql(statement).await?;
            let schema = df.schema().as_arrow().clone();
            anyhow::Ok((schema, df.collect().await?))
        }
        .await
        .with_context(|| format!("job {job} statement {} of {}", i + 1, statements.len()));
        match result {
            Ok((schema, batches)) if returns_rows(statement) => {
                let title = statement.lines().next().unwrap_or_default().to_string();
                out.report.push(ReportSection { title, schema, batches });
            }
            Ok((_, batches)) => out.rows_written += rows_written(&batches),
            Err(e) => return Err((e, out.rows_written)),
        }
    }
    Ok(out)
}
