//! The run history: every `backbeat run` appends one row to the Delta table `backbeat_runs` in the
//! lake (job, parameters, start, end, status, rows written, error), through the cluster like any
//! other write; `backbeat runs` reads it back.

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
}

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
    let df = session.context().sql(&sql).await?;
    session.write_table(df, RUNS_TABLE, WriteMode::Append, &[]).await?.collect().await?;
    Ok(())
}
