//! Delta Lake in one place, one file per verb, as delta-rs's `operations/` is laid out.
//!
//! Reads ([`scan`]) replay the log on the scheduler and hand executors plain Parquet scans. Every
//! write, whether SQL (`INSERT`, `CREATE TABLE AS`, `UPDATE`, `DELETE`, `MERGE`, `OPTIMIZE`), the
//! DataFrame API, ingest or the TPC-H copies, goes through one file writer ([`writer`], which owns
//! the target file size) and one commit ([`commit`]), so that a table is only ever at its old
//! version or its new one. Writers that run through the cluster write their files on the
//! executors; the commit is a single task after every write task has finished.
//!
//! Concurrent writers follow the Delta protocol's optimistic concurrency (delta-rs's conflict
//! checker): blind appends retry and all land; a rewrite (`UPDATE`, `DELETE`, `MERGE`, overwrite)
//! whose files were removed by a commit made after its read version fails and writes nothing.

use std::fmt;
use std::str::FromStr;

use datafusion::common::{DataFusionError, Result};
use deltalake::DeltaTable;
use serde::{Deserialize, Serialize};
use url::Url;

/// Commits: the one place a Delta transaction is made, as a plan node or from the client.
pub mod commit;
/// `DESCRIBE HISTORY` and `RESTORE TABLE ... TO VERSION AS OF`.
pub mod history;
/// Key ranges from a DML statement's source, for pruning the target's files by statistics.
pub mod key_bounds;
/// `MERGE INTO`: a join that finds the files to rewrite, then one that rewrites them.
pub mod merge;
/// `OPTIMIZE`: bin-packing small files into target-size ones, data unchanged.
pub mod optimize;
/// Reading: a table at one version as a pruned Parquet scan.
pub mod scan;
/// Mapping query schemas onto what Delta can store.
pub mod schema;
/// SQL text for the statements the verbs run, and their one-row results.
pub mod sql_text;
/// Row counts of one-pass rewrites, kept by the writers and checked by the commit.
pub mod tally;
/// `UPDATE` and `DELETE`: rewriting only the files that hold affected rows.
pub mod update;
/// `VACUUM`: deleting files no version within the retention period references.
pub mod vacuum;
/// `INSERT INTO`, `INSERT OVERWRITE`, `CREATE TABLE AS`: the write plan.
pub mod write;
/// The file writer every write path uses, and the plan node that runs it on executors.
pub mod writer;

pub use scan::{DeltaTableProvider, DeltaTableSpec};

/// How a write relates to the table's existing rows. The one write-mode type of backbeat: SQL, the
/// DataFrame API, ingest and the CLI all speak it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum WriteMode {
    /// Create the table; fail if it exists (`CREATE TABLE AS`).
    Create,
    /// Create the table, replacing schema and data if it exists (`CREATE OR REPLACE TABLE AS`).
    CreateOrReplace,
    /// Add rows; create the table if it does not exist (`INSERT INTO`).
    Append,
    /// Replace all rows, keeping the schema (`INSERT OVERWRITE`).
    Overwrite,
    /// Upsert by key: a key's existing row is replaced, new keys are inserted (ingest's merge, a
    /// `MERGE INTO` with `UPDATE SET *` and `INSERT *`).
    Merge,
}

impl WriteMode {
    /// Every mode's name as the CLI spells it.
    pub const NAMES: [&'static str; 5] = ["append", "overwrite", "merge", "create", "create-or-replace"];
}

impl fmt::Display for WriteMode {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self {
            WriteMode::Create => "create",
            WriteMode::CreateOrReplace => "create-or-replace",
            WriteMode::Append => "append",
            WriteMode::Overwrite => "overwrite",
            WriteMode::Merge => "merge",
        })
    }
}

impl FromStr for WriteMode {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "create" => WriteMode::Create,
            "create-or-replace" | "create_or_replace" => WriteMode::CreateOrReplace,
            "append" => WriteMode::Append,
            "overwrite" => WriteMode::Overwrite,
            "merge" | "upsert" => WriteMode::Merge,
            other => return Err(format!("unknown write mode '{other}' (one of: {})", Self::NAMES.join(", "))),
        })
    }
}

/// Loads a Delta table at `version` (or the latest), with the table named in any error.
pub async fn load_table(uri: &str, version: Option<u64>) -> Result<DeltaTable> {
    let url = Url::parse(uri).map_err(|e| DataFusionError::Plan(format!("bad Delta table URI {uri}: {e}")))?;
    let result = match version {
        Some(v) => deltalake::open_table_with_version(url, v).await,
        None => deltalake::open_table(url).await,
    };
    result.map_err(|e| delta_err(uri, e))
}

/// Wraps a delta-rs error so the message names the table it concerns. delta-kernel appends a
/// backtrace to some messages; only the first line is the message.
pub fn delta_err(uri: &str, e: impl fmt::Display) -> DataFusionError {
    let message = e.to_string();
    let first_line = message.lines().next().unwrap_or_default().trim_end();
    DataFusionError::Execution(format!("Delta table {uri}: {first_line}"))
}
