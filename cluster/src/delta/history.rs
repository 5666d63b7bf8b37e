//! `DESCRIBE HISTORY t [LIMIT n]` and `RESTORE TABLE t TO VERSION AS OF n`.
//!
//! Both read only the log. A restore is a new commit that removes the files added since version n
//! and re-adds those it removed, so it is itself in the history and can be undone the same way.

use datafusion::common::Result;
use futures::TryStreamExt;

use super::{delta_err, load_table};

/// One commit of the table, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryEntry {
    /// The version the commit created.
    pub version: u64,
    /// Commit time, milliseconds since the epoch.
    pub timestamp: Option<i64>,
    /// `WRITE`, `MERGE`, `DELETE`, `UPDATE`, `OPTIMIZE`, `RESTORE`, `CREATE TABLE`...
    pub operation: String,
    /// The operation's parameters, as JSON.
    pub parameters: String,
    /// The operation's metrics (rows updated, files removed...), as JSON.
    pub metrics: String,
    /// The version the writer read.
    pub read_version: Option<i64>,
}

/// The table's commits, newest first, at most `limit`.
pub async fn history(uri: &str, limit: Option<usize>) -> Result<Vec<HistoryEntry>> {
    let table = load_table(uri, None).await?;
    let latest = table.version().unwrap_or_default() as u64;
    let infos: Vec<_> = table.history(limit).try_collect().await.map_err(|e| delta_err(uri, e))?;
    Ok(infos
        .into_iter()
        .enumerate()
        .map(|(i, info)| HistoryEntry {
            version: latest.saturating_sub(i as u64),
            timestamp: info.timestamp,
            operation: info.operation.unwrap_or_default(),
            parameters: serde_json::to_string(&info.operation_parameters.unwrap_or_default()).unwrap_or_default(),
            metrics: info
                .info
                .get("operationMetrics")
                .map(|m| m.to_string())
                .unwrap_or_else(|| "{}".to_string()),
            read_version: info.read_version.map(|v| v as i64),
        })
        .collect())
}

/// What a restore did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestoreOutcome {
    /// The new version, whose data is that of the version restored.
    pub version: u64,
    /// Files removed (added after the version restored).
    pub files_removed: u64,
    /// Files added back.
    pub files_restored: u64,
}

/// Restores the table at `uri` to `version`, as a new commit.
pub async fn restore(uri: &str, version: u64) -> Result<RestoreOutcome> {
    let table = load_table(uri, None).await?;
    let (table, metrics) = table.restore().with_version_to_restore(version.try_into().unwrap_or_default()).await.map_err(|e| delta_err(uri, e))?;
    Ok(RestoreOutcome {
        version: table.version().unwrap_or_default() as u64,
        files_removed: metrics.num_removed_file as u64,
        files_restored: metrics.num_restored_file as u64,
    })
}
