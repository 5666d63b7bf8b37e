//! Running a job: bind its parameters, run its statements in order on the cluster, keep the results
//! of its queries as the report, count the rows its writes wrote, and record the run.

use std::time::Instant;

use anyhow::{Context, Result};
use arrow::array::{Array, UInt64Array};
use arrow::datatypes::Schema;
use arrow::record_batch::RecordBatch;
use backbeat_cluster::session::BackbeatSession;
use backbeat_cluster::sql_script::{returns_rows, split_statements};

use crate::job_catalogue::Job;
use crate::job_params::bind;
use crate::run_history::{RunRecord, record};

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
    let (sql, params) = bind(&job.name, &job.params, &job.sql, given)?;
    let statements = split_statements(&sql);
    let started_at = chrono::Utc::now();
    let clock = Instant::now();
    let mut report = Vec::new();
    let mut rows_written = 0u64;
    let mut failure = None;
    for (i, statement) in statements.iter().enumerate() {
        let result = async {
            let df = session.sql(statement).await?;
            let schema = df.schema().as_arrow().clone();
            anyhow::Ok((schema, df.collect().await?))
        }
        .await
        .with_context(|| format!("job {} statement {} of {}", job.name, i + 1, statements.len()));
        match result {
            Ok((schema, batches)) if returns_rows(statement) => {
                let title = statement.lines().next().unwrap_or_default().to_string();
                report.push(ReportSection { title, schema, batches });
            }
            Ok((_, batches)) => rows_written += written(&batches),
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    let run = RunRecord {
        run_id: uuid::Uuid::new_v4().to_string(),
        job: job.name.clone(),
        params,
        started_at,
        ended_at: started_at + chrono::Duration::from_std(clock.elapsed()).unwrap_or_default(),
        status: if failure.is_some() { "failed" } else { "succeeded" }.to_string(),
        rows_written,
        error: failure.as_ref().map(|e| format!("{e:#}")),
    };
    record(session, &run).await.context("cannot record the run in backbeat_runs")?;
    match failure {
        Some(e) => Err(e),
        None => Ok(JobOutcome { run, report }),
    }
}

fn written(batches: &[RecordBatch]) -> u64 {
    batches
        .iter()
        .filter_map(|b| b.column_by_name("count"))
        .filter_map(|c| c.as_any().downcast_ref::<UInt64Array>().map(|a| a.iter().flatten().sum::<u64>()))
        .sum()
}
