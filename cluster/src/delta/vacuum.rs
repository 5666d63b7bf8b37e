//! `VACUUM t [RETAIN n HOURS] [DRY RUN]`: deletes data files that no version within the retention
//! period references, including files of writes that never committed (a killed job's).
//!
//! A metadata operation: it lists the table directory and deletes, so it runs on the client through
//! delta-rs's vacuum in full mode, which never deletes a file the current version references and
//! refuses a retention shorter than the table's `delta.deletedFileRetentionDuration` (7 days by
//! default) unless forced: time travel and readers of older versions depend on those files.

use datafusion::common::Result;

use super::{delta_err, load_table};

/// What a vacuum deleted (or, in a dry run, would delete).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VacuumOutcome {
    /// Paths relative to the table root.
    pub files: Vec<String>,
    /// Nothing was deleted.
    pub dry_run: bool,
}

/// Vacuums the table at `uri`, keeping files removed less than `retain_hours` ago (the table's
/// retention when `None`). `force` allows a retention shorter than the table's.
pub async fn vacuum(uri: &str, retain_hours: Option<u64>, dry_run: bool, force: bool) -> Result<VacuumOutcome> {
    let table = load_table(uri, None).await?;
    let mut builder = table
        .vacuum()
        .with_mode(deltalake::operations::vacuum::VacuumMode::Full)
        .with_dry_run(dry_run)
        .with_enforce_retention_duration(!force);
    if let Some(hours) = retain_hours {
        builder = builder.with_retention_period(chrono::Duration::hours(hours as i64));
    }
    let (_, metrics) = builder.await.map_err(|e| {
        let message = e.to_string();
        if message.contains("retention") {
            delta_err(uri, format!("{message}; VACUUM ... RETAIN n HOURS needs n at least the table's delta.deletedFileRetentionDuration, or set backbeat.vacuum.force"))
        } else {
            delta_err(uri, message)
        }
    })?;
    let mut files = metrics.files_deleted;
    files.sort();
    tracing::info!(table = uri, files = files.len(), dry_run, "vacuum");
    Ok(VacuumOutcome { files, dry_run: metrics.dry_run })
}
