//! `backbeat run`, `backbeat jobs` and `backbeat runs`: the job catalogue from the command line.

use std::sync::Arc;

use anyhow::{Context, Result, bail};
use arrow::array::{ArrayRef, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use backbeat_jobs::job_catalogue::{catalogue, find};
use backbeat_jobs::job_runner::run_job;
use backbeat_jobs::run_history::RUNS_TABLE;

use crate::SessionArgs;
use crate::result_output::{OutputFormat, ResultWriter};

/// Splits `k=v` parameter arguments.
pub fn parse_params(raw: &[String]) -> Result<Vec<(String, String)>> {
    raw.iter()
        .map(|p| {
            p.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.to_string()))
                .with_context(|| format!("--param '{p}' is not name=value"))
        })
        .collect()
}

/// Runs `backbeat run`.
pub async fn run(job: &str, params: &[String], session: &SessionArgs, format: OutputFormat) -> Result<()> {
    let job = find(job)?;
    let params = parse_params(params)?;
    // Bind before anything else, the lake included: bad parameters must fail fast and run nothing.
    backbeat_jobs::job_params::bind(&job.name, &job.params, job.script(), &params)?;
    let session = session.connect().await?;
    let outcome = run_job(&session, &job, &params).await?;
    let mut out = ResultWriter::new(format, None)?;
    for section in &outcome.report {
        if format == OutputFormat::Table {
            println!("{}", section.title);
        }
        out.write(&section.schema, &section.batches)?;
    }
    out.finish()?;
    let run = &outcome.run;
    eprintln!(
        "job {} {} in {:.2} s: {} rows written (run {})",
        run.job,
        run.status,
        (run.ended_at - run.started_at).num_milliseconds() as f64 / 1000.0,
        run.rows_written,
        run.run_id
    );
    Ok(())
}

/// Runs `backbeat jobs`.
pub fn list(format: OutputFormat) -> Result<()> {
    let jobs = catalogue();
    let schema = Arc::new(Schema::new(vec![
        Field::new("job", DataType::Utf8, false),
        Field::new("description", DataType::Utf8, false),
        Field::new("parameters", DataType::Utf8, false),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(jobs.iter().map(|j| j.name.as_str()))),
        Arc::new(StringArray::from_iter_values(jobs.iter().map(|j| j.description.as_str()))),
        Arc::new(StringArray::from_iter_values(jobs.iter().map(|j| j.params.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("\n")))),
    ];
    let mut out = ResultWriter::new(format, None)?;
    out.write(&schema, &[RecordBatch::try_new(schema.clone(), columns)?])?;
    out.finish()
}

/// Runs `backbeat runs`.
pub async fn history(session: &SessionArgs, limit: usize, format: OutputFormat) -> Result<()> {
    let session = session.connect().await?;
    if session.lake().table_format(RUNS_TABLE).await?.is_none() {
        bail!("no runs recorded yet in lake {} (run a job with `backbeat run`)", session.lake().lake_root());
    }
    let df = session
        .sql(&format!(
            "SELECT job, status, started_at, ended_at, rows_written, params, error FROM {RUNS_TABLE} ORDER BY started_at DESC LIMIT {limit}"
        ))
        .await?;
    let schema = df.schema().as_arrow().clone();
    let batches = df.collect().await?;
    let mut out = ResultWriter::new(format, None)?;
    out.write(&schema, &batches)?;
    out.finish()
}
