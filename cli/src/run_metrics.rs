//! Job runs in the scheduler's Prometheus metrics (`/api/metrics`), beside Ballista's own: a
//! scheduler started with a lake reads the run history (`backbeat_runs`) every 15 s and exports,
//! per job, how many runs ended in each status, the rows they wrote, and the duration, rows and
//! end time of the latest run. Runs are recorded by whichever client ran them (`backbeat run`,
//! pipelines), so the history table, not the scheduler's memory, is the source: the numbers
//! survive scheduler restarts and cover every client.
//!
//! The history is read by a local DataFusion session in the scheduler process (one small Delta
//! table), not submitted as a job, so scrapes never show up among the cluster's jobs.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Float64Type};
use backbeat_cluster::lake_catalog::{LakeCatalog, LakeRoot};
use backbeat_jobs::run_history::RUNS_TABLE;
use datafusion::prelude::SessionContext;
use prometheus::{GaugeVec, Opts};

/// How often the history is read.
const REFRESH: Duration = Duration::from_secs(15);

struct Gauges {
    runs: GaugeVec,
    rows: GaugeVec,
    last_duration: GaugeVec,
    last_rows: GaugeVec,
    last_end: GaugeVec,
}

impl Gauges {
    fn register() -> Result<Self> {
        let gauge = |name: &str, help: &str, labels: &[&str]| -> Result<GaugeVec> {
            let g = GaugeVec::new(Opts::new(name, help), labels)?;
            prometheus::register(Box::new(g.clone()))?;
            Ok(g)
        };
        Ok(Self {
            runs: gauge("backbeat_job_runs", "Runs of each job in the lake's run history, by status", &["job", "status"])?,
            rows: gauge("backbeat_job_rows_written", "Rows written by all recorded runs of each job", &["job"])?,
            last_duration: gauge("backbeat_job_last_run_duration_seconds", "Duration of each job's latest run", &["job", "status"])?,
            last_rows: gauge("backbeat_job_last_run_rows_written", "Rows written by each job's latest run", &["job"])?,
            last_end: gauge("backbeat_job_last_run_end_timestamp_seconds", "When each job's latest run ended (Unix time)", &["job"])?,
        })
    }
}

/// Starts exporting the run history of the lake at `lake` (a lake that does not exist yet, or has
/// no history, exports nothing until it does).
pub fn spawn(lake: &str) -> Result<tokio::task::JoinHandle<()>> {
    let gauges = Gauges::register()?;
    let lake = lake.to_string();
    Ok(tokio::spawn(async move {
        loop {
            if let Err(e) = refresh(&lake, &gauges).await {
                tracing::debug!(%lake, error = %format!("{e:#}"), "run-history metrics not refreshed");
            }
            tokio::time::sleep(REFRESH).await;
        }
    }))
}

async fn refresh(lake: &str, gauges: &Gauges) -> Result<()> {
    let catalog = Arc::new(LakeCatalog::open_root(LakeRoot::parse(lake)?)?);
    if catalog.table_format(RUNS_TABLE).await?.is_none() {
        return Ok(());
    }
    let state = datafusion::execution::SessionStateBuilder::new()
        .with_default_features()
        .with_runtime_env(backbeat_cluster::session::lake_runtime_env()?)
        .build();
    let ctx = SessionContext::new_with_state(state);
    ctx.catalog("datafusion").expect("default catalog").register_schema("public", catalog)?;
    let by_status = ctx
        .sql(&format!("SELECT job, status, CAST(count(*) AS DOUBLE) AS runs FROM {RUNS_TABLE} GROUP BY job, status"))
        .await?
        .collect()
        .await?;
    let by_job = ctx
        .sql(&format!(
            "SELECT job, CAST(sum(rows_written) AS DOUBLE) AS rows_written, \
             CAST(last_value(rows_written ORDER BY ended_at) AS DOUBLE) AS last_rows, \
             last_value(status ORDER BY ended_at) AS last_status, \
             CAST(extract(epoch FROM max(ended_at)) AS DOUBLE) AS last_end, \
             CAST(last_value(extract(epoch FROM ended_at) - extract(epoch FROM started_at) ORDER BY ended_at) AS DOUBLE) AS last_secs \
             FROM {RUNS_TABLE} GROUP BY job"
        ))
        .await?
        .collect()
        .await?;
    for g in [&gauges.runs, &gauges.rows, &gauges.last_duration, &gauges.last_rows, &gauges.last_end] {
        g.reset();
    }
    for b in &by_status {
        let (job, status) = (strings(b.column(0))?, strings(b.column(1))?);
        let runs = b.column(2).as_primitive::<Float64Type>();
        for i in 0..b.num_rows() {
            gauges.runs.with_label_values(&[job.value(i), status.value(i)]).set(runs.value(i));
        }
    }
    for b in &by_job {
        let (job, status) = (strings(b.column(0))?, strings(b.column(3))?);
        let number = |c: usize, i: usize| {
            let a = b.column(c).as_primitive::<Float64Type>();
            if a.is_null(i) { f64::NAN } else { a.value(i) }
        };
        for i in 0..b.num_rows() {
            let job = job.value(i);
            gauges.rows.with_label_values(&[job]).set(number(1, i));
            gauges.last_rows.with_label_values(&[job]).set(number(2, i));
            gauges.last_end.with_label_values(&[job]).set(number(4, i));
            gauges.last_duration.with_label_values(&[job, status.value(i)]).set(number(5, i));
        }
    }
    Ok(())
}

/// A string column (`Utf8` or `Utf8View`) as plain `Utf8`.
fn strings(column: &arrow::array::ArrayRef) -> Result<arrow::array::StringArray> {
    Ok(arrow::compute::cast(column, &DataType::Utf8)?.as_string::<i32>().clone())
}
