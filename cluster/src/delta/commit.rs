//! The one place a Delta transaction is made: [`DeltaCommitExec`] at the end of a write plan
//! (after every write task, so nothing is visible to readers until all files exist), and
//! [`commit_files`] for files written on the client (ingest's rejected rows, the TPC-H copies).
//!
//! The physical plan of a write through the cluster is
//!
//! ```text
//! DeltaCommitExec            one task: one atomic Delta commit of every Add (and Remove) action
//!   CoalescePartitionsExec   (Ballista's stage boundary: only small Add-action rows cross it)
//!     DeltaWriteExec         one task per input partition: streams rows into Parquet files
//!       <the query>
//! ```
//!
//! A failing task fails the job before `DeltaCommitExec` runs, and a process killed mid-write leaves
//! only unreferenced files (removed by a later `VACUUM`): the table is at its old version or its new
//! one, never in between. Conflicts with concurrent commits are checked by delta-rs against the
//! version the statement read; a rewrite (UPDATE, DELETE, MERGE, OPTIMIZE) that lost fails here.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch, StringArray, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, Result, internal_err};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, Distribution, ExecutionPlan, ExecutionPlanProperties, Partitioning, PlanProperties,
};
use deltalake::kernel::transaction::CommitBuilder;
use deltalake::kernel::{Action, Add, Remove, StructType};
use deltalake::protocol::{DeltaOperation, SaveMode};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use super::schema::delta_schema_json;
use super::tally::{Counts, Settled, Tally, add_counts};
use super::{DeltaTableSpec, WriteMode, delta_err, load_table};

/// A commit that replaces some of the table's files rather than all or none: what `UPDATE`,
/// `DELETE`, `MERGE` and `OPTIMIZE` plan.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Rewrite {
    /// The files the statement read and replaces.
    pub removes: Vec<Remove>,
    /// What the log records as the operation (delta-rs checks conflicts by it).
    pub operation: DeltaOperation,
    /// Rows the new files must hold, known from the statement's first pass. Any other count means
    /// several source rows matched one target row (MERGE) and nothing is committed.
    pub expected_rows: Option<u64>,
    /// `false` for `OPTIMIZE`: the same rows in fewer files, which readers of changes skip.
    pub data_change: bool,
    /// Operation metrics recorded in the commit, as Databricks records them (`numTargetRowsUpdated`...).
    pub metrics: HashMap<String, u64>,
    /// A one-pass rewrite's row codes, counted by the writers: the commit checks them and adds
    /// their metrics, and commits nothing when no row changed.
    #[serde(default)]
    pub tally: Option<Tally>,
}

/// The wire form of a [`DeltaCommitExec`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeltaCommitSpec {
    /// The target table: its read version, what the write does to it, and any files it replaces.
    pub table: DeltaTableSpec,
    /// The table's schema as Delta schema JSON (needed to create or replace the table).
    pub schema_json: String,
}

/// Collects the `Add` actions of every write task and commits them as one Delta transaction.
/// Produces DataFusion's DML result: one row, `count`, the number of rows written. A rewrite with a
/// [`Tally`] produces more rows of `count`, read by [`RewriteReport::from_rows`]: the rows written,
/// the version committed plus one (0 when nothing changed and nothing was committed), then each
/// of [`Tally::metric_names`] in order.
#[derive(Debug)]
pub struct DeltaCommitExec {
    input: Arc<dyn ExecutionPlan>,
    spec: DeltaCommitSpec,
    properties: Arc<PlanProperties>,
}

impl DeltaCommitExec {
    /// Commits what `input` (a single partition of Add-action rows) reports.
    pub fn new(input: Arc<dyn ExecutionPlan>, spec: DeltaCommitSpec) -> Self {
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(count_schema()),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Final,
            Boundedness::Bounded,
        ));
        Self { input, spec, properties }
    }

    /// The wire form of this node.
    pub fn spec(&self) -> &DeltaCommitSpec {
        &self.spec
    }
}

fn count_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new("count", DataType::UInt64, false)]))
}

impl DisplayAs for DeltaCommitExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "DeltaCommitExec: uri={} mode={} read_version={:?} rewrites={}",
            self.spec.table.uri,
            self.spec.table.mode,
            self.spec.table.version,
            self.spec.table.rewrite.as_ref().map_or(0, |r| r.removes.len())
        )
    }
}

impl ExecutionPlan for DeltaCommitExec {
    fn name(&self) -> &str {
        "DeltaCommitExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn required_input_distribution(&self) -> Vec<Distribution> {
        vec![Distribution::SinglePartition]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(self: Arc<Self>, children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        match children.as_slice() {
            [child] => Ok(Arc::new(Self::new(child.clone(), self.spec.clone()))),
            _ => internal_err!("DeltaCommitExec takes one child"),
        }
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        if partition != 0 {
            return internal_err!("DeltaCommitExec has one partition, asked for {partition}");
        }
        let partitions = self.input.output_partitioning().partition_count();
        let inputs = (0..partitions)
            .map(|p| self.input.execute(p, context.clone()))
            .collect::<Result<Vec<_>>>()?;
        let spec = self.spec.clone();
        let batch = async move {
            let mut adds = Vec::new();
            let mut counts: Option<Counts> = None;
            for mut stream in inputs {
                while let Some(batch) = stream.next().await {
                    let batch = batch?;
                    let strings = |i: usize| {
                        batch
                            .column(i)
                            .as_any()
                            .downcast_ref::<StringArray>()
                            .ok_or_else(|| DataFusionError::Internal("Add actions must be strings".into()))
                    };
                    for json in strings(0)?.iter().flatten() {
                        let add: Add = serde_json::from_str(json)
                            .map_err(|e| DataFusionError::Internal(format!("bad Add action: {e}")))?;
                        adds.push(add);
                    }
                    if batch.num_columns() > 1 {
                        for json in strings(1)?.iter().flatten() {
                            add_counts(counts.get_or_insert_default(), json)?;
                        }
                    }
                }
            }
            let committed = commit(&spec, adds, counts).await?;
            let mut rows = vec![committed.rows];
            if let (Some(tally), Some(settled)) = (spec.table.rewrite.as_ref().and_then(|r| r.tally.as_ref()), &committed.settled) {
                rows.push(committed.version.map_or(0, |v| v + 1));
                rows.extend(tally.metric_names().iter().map(|m| settled.metrics.get(m).copied().unwrap_or(0)));
            }
            Ok(RecordBatch::try_new(count_schema(), vec![Arc::new(UInt64Array::from(rows)) as ArrayRef])?)
        };
        Ok(Box::pin(RecordBatchStreamAdapter::new(count_schema(), futures::stream::once(batch))))
    }
}

/// What a one-pass rewrite did, as its commit reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RewriteReport {
    /// Rows written.
    pub rows: u64,
    /// The version committed; `None` when no row changed and nothing was committed.
    pub version: Option<u64>,
    /// Rows per metric of [`Tally::metric_names`].
    pub metrics: HashMap<String, u64>,
}

impl RewriteReport {
    /// Reads the `count` rows a [`DeltaCommitExec`] of a rewrite with `tally` produces.
    pub fn from_rows(tally: &Tally, rows: &[u64]) -> Result<Self> {
        let names = tally.metric_names();
        if rows.len() != 2 + names.len() {
            return internal_err!("a rewrite's commit reported {} figures, expected {}", rows.len(), 2 + names.len());
        }
        Ok(Self {
            rows: rows[0],
            version: rows[1].checked_sub(1),
            metrics: names.into_iter().zip(rows[2..].iter().copied()).collect(),
        })
    }
}

/// What a commit did, inside this module.
struct Committed {
    rows: u64,
    version: Option<u64>,
    settled: Option<Settled>,
}

/// What one commit did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitOutcome {
    /// Rows in the added files.
    pub rows: u64,
    /// The table version the commit created.
    pub version: u64,
}

/// Commits Parquet files written outside a query (by a [`super::writer::FileWriter`] on the
/// client) as one Delta transaction: `table` says which version was read and what the write does.
pub async fn commit_files(table: DeltaTableSpec, schema: &SchemaRef, adds: Vec<Add>) -> Result<CommitOutcome> {
    let spec = DeltaCommitSpec { table, schema_json: delta_schema_json(schema)? };
    let committed = commit(&spec, adds, None).await?;
    let version = committed.version.ok_or_else(|| DataFusionError::Internal("a write without a tally always commits".into()))?;
    Ok(CommitOutcome { rows: committed.rows, version })
}

/// Commits `adds` (and the spec's removes) to the table in one transaction; `counts` are a
/// one-pass rewrite's row counts, summed over its writers.
async fn commit(spec: &DeltaCommitSpec, adds: Vec<Add>, counts: Option<Counts>) -> Result<Committed> {
    let uri = &spec.table.uri;
    let rows: u64 = adds
        .iter()
        .map(|a| a.get_stats().ok().flatten().map(|s| s.num_records.max(0) as u64).unwrap_or(0))
        .sum();
    let files = adds.len();
    let partition_by = (!spec.table.partition_columns.is_empty()).then(|| spec.table.partition_columns.clone());
    let rewrite = spec.table.rewrite.as_ref();
    let settled = match rewrite.and_then(|r| r.tally.as_ref()) {
        Some(tally) => match counts.ok_or_else(|| DataFusionError::Internal(format!("the writers of {uri} reported no row counts"))).and_then(|c| tally.settle(uri, &c)) {
            Ok(settled) => Some(settled),
            Err(e) => {
                discard(uri, &adds).await;
                return Err(e);
            }
        },
        None => None,
    };
    if let Some(settled) = settled.as_ref().filter(|s| s.affected == 0) {
        // Nothing changed: the files just written are copies of the ones read.
        discard(uri, &adds).await;
        return Ok(Committed { rows, version: None, settled: Some(settled.clone()) });
    }
    if let Some(expected) = rewrite.and_then(|r| r.expected_rows) {
        if rows != expected {
            return Err(DataFusionError::Execution(format!(
                "Delta table {uri}: nothing committed: the rewrite produced {rows} rows where {expected} were \
                 expected. In a MERGE this means several source rows matched the same target row; make the \
                 source unique on the join keys (or the source changed while the statement ran)"
            )));
        }
    }
    let data_change = rewrite.is_none_or(|r| r.data_change);
    let add_actions: Vec<Action> = adds
        .into_iter()
        .map(|mut a| {
            a.data_change = data_change;
            Action::Add(a)
        })
        .collect();

    let version = match (spec.table.mode, spec.table.version) {
        (WriteMode::Create | WriteMode::CreateOrReplace, _) => {
            let schema: StructType = serde_json::from_str(&spec.schema_json)
                .map_err(|e| DataFusionError::Internal(format!("bad schema JSON: {e}")))?;
            let save_mode =
                if spec.table.mode == WriteMode::Create { SaveMode::ErrorIfExists } else { SaveMode::Overwrite };
            let table = deltalake::operations::create::CreateBuilder::new()
                .with_location(uri.clone())
                .with_columns(schema.fields().cloned())
                .with_partition_columns(spec.table.partition_columns.clone())
                .with_save_mode(save_mode)
                .with_actions(add_actions)
                .await
                .map_err(|e| delta_err(uri, e))?;
            table.version().unwrap_or_default() as u64
        }
        (WriteMode::Merge, _) => {
            return internal_err!("a merge into {uri} is planned as MERGE INTO, not committed as a write");
        }
        (WriteMode::Append | WriteMode::Overwrite, None) => {
            return Err(DataFusionError::Plan(format!("Delta table {uri} does not exist")));
        }
        (WriteMode::Append, Some(read_version)) if rewrite.is_none() => {
            // Blind appends conflict with nothing: delta-rs retries them on newer versions.
            let table = load_table(uri, Some(read_version)).await?;
            let snapshot = table.snapshot().map_err(|e| delta_err(uri, e))?;
            let operation = DeltaOperation::Write { mode: SaveMode::Append, partition_by, predicate: None };
            checkpointing()
                .with_actions(add_actions)
                .build(Some(snapshot), table.log_store(), operation)
                .await
                .map_err(|e| commit_err(uri, read_version, e))?
                .version() as u64
        }
        (_, Some(read_version)) => {
            let (removes, operation) = match rewrite {
                Some(r) => (r.removes.clone(), r.operation.clone()),
                None => {
                    let read = load_table(uri, Some(read_version)).await?;
                    let state = read.snapshot().map_err(|e| delta_err(uri, e))?;
                    let all = state.snapshot().log_data().iter().map(|f| f.remove_action(true)).collect();
                    (all, DeltaOperation::Write { mode: SaveMode::Overwrite, partition_by, predicate: None })
                }
            };
            let metrics: HashMap<String, serde_json::Value> = rewrite
                .map(|r| {
                    let counted = settled.iter().flat_map(|s| s.metrics.iter());
                    let metrics: serde_json::Map<String, serde_json::Value> = r
                        .metrics
                        .iter()
                        .chain(counted)
                        .map(|(k, v)| (k.clone(), serde_json::Value::from(v.to_string())))
                        .collect();
                    HashMap::from([("operationMetrics".to_string(), serde_json::Value::Object(metrics))])
                })
                .unwrap_or_default();
            commit_rewrite(uri, read_version, removes, add_actions, operation, metrics).await?
        }
    };
    tracing::info!(table = %uri, version, files, rows, "committed Delta write");
    Ok(Committed { rows, version: Some(version), settled })
}

/// Deletes files written for a commit that will not happen, leaving the table directory as it was
/// (a file that cannot be deleted stays for VACUUM, unreferenced).
async fn discard(uri: &str, adds: &[Add]) {
    use object_store::ObjectStoreExt;
    let store = match load_table(uri, None).await {
        Ok(table) => table.log_store().object_store(None),
        Err(e) => {
            tracing::warn!(table = %uri, "could not open the table to delete {} unneeded files: {e}", adds.len());
            return;
        }
    };
    for add in adds {
        // The log's paths are URL-encoded (partition directories); storage has them decoded.
        let Ok(path) = object_store::path::Path::from_url_path(&add.path) else { continue };
        if let Err(e) = store.delete(&path).await {
            tracing::warn!(table = %uri, file = %add.path, "could not delete an unneeded file: {e}");
        }
    }
}

/// Commits a rewrite (UPDATE, DELETE, MERGE, OPTIMIZE, overwrite) under backbeat's own conflict
/// check rather than delta-rs's: delta-rs 1.1 ignores removes with `dataChange=false`, so a DELETE
/// racing an OPTIMIZE that had packed the same file would commit, and the packed file would bring
/// the deleted rows back (and keep every other row of the file twice).
///
/// A commit that writes a checkpoint when its version is due (`delta.checkpointInterval`, 100 by
/// default), as delta-rs's own operations and Spark do. `CommitBuilder::default()` never does:
/// every table kept all its JSON commits and each open replayed the whole log. `bench lake`'s
/// table of 101 commits took 15 ms to open against 2 ms with a checkpoint (delta-rs 1.6.6 from
/// Python, 2026-12-05), and a MERGE opens its table about seven times.
fn checkpointing() -> CommitBuilder {
    CommitBuilder::from(deltalake::kernel::transaction::CommitProperties::default())
}

/// The check, against the latest version: every file this commit removes must still be live; a
/// MERGE that inserts also fails if any file appeared since it read (a concurrent insert of the
/// same key would otherwise be duplicated). The commit then goes in on top of exactly that version
/// with no delta-rs retries; if another commit slipped in meanwhile, the check runs again.
async fn commit_rewrite(
    uri: &str,
    read_version: u64,
    removes: Vec<Remove>,
    adds: Vec<Action>,
    operation: DeltaOperation,
    app_metadata: HashMap<String, serde_json::Value>,
) -> Result<u64> {
    let inserts = matches!(&operation, DeltaOperation::Merge { not_matched_predicates, .. } if !not_matched_predicates.is_empty());
    // Only a MERGE that inserts needs the files it read (to spot files added since).
    let read: std::collections::HashSet<String> = if inserts {
        let read = load_table(uri, Some(read_version)).await?;
        let state = read.snapshot().map_err(|e| delta_err(uri, e))?;
        state.snapshot().log_data().iter().map(|f| f.remove_action(true).path).collect()
    } else {
        Default::default()
    };
    let now = chrono::Utc::now().timestamp_millis();
    let data_change = operation.changes_data();
    for _attempt in 0..10 {
        let latest = load_table(uri, None).await?;
        let state = latest.snapshot().map_err(|e| delta_err(uri, e))?;
        let live: std::collections::HashSet<String> =
            state.snapshot().log_data().iter().map(|f| f.remove_action(true).path).collect();
        if let Some(gone) = removes.iter().find(|r| !live.contains(&r.path)) {
            return Err(conflict(uri, read_version, &format!("file {} was removed by another commit", gone.path)));
        }
        if inserts {
            if let Some(new) = live.iter().find(|p| !read.contains(*p)) {
                return Err(conflict(uri, read_version, &format!("file {new} was added by another commit")));
            }
        }
        let mut actions: Vec<Action> = removes
            .iter()
            .cloned()
            .map(|mut r| {
                r.data_change = data_change;
                r.deletion_timestamp = Some(now);
                Action::Remove(r)
            })
            .collect();
        actions.extend(adds.iter().cloned());
        let result = checkpointing()
            .with_actions(actions)
            .with_app_metadata(app_metadata.clone())
            .with_max_retries(0)
            .build(Some(state), latest.log_store(), operation.clone())
            .await;
        match result {
            Ok(done) => return Ok(done.version() as u64),
            Err(e) if e.to_string().contains("existing table version") || e.to_string().contains("Failed to commit transaction: 0") => {
                tracing::debug!(table = uri, "another commit landed during the check; checking again");
            }
            Err(e) => return Err(commit_err(uri, read_version, e)),
        }
    }
    Err(conflict(uri, read_version, "the table kept changing during 10 attempts"))
}

fn conflict(uri: &str, read_version: u64, what: &str) -> DataFusionError {
    DataFusionError::Execution(format!(
        "Delta table {uri}: write conflict: {what} after version {read_version}, which this statement read. \
         Nothing was written; run the statement again"
    ))
}

/// A lost race reads as what happened and what to do, not as delta-rs's enum name.
fn commit_err(uri: &str, read_version: u64, e: impl fmt::Display) -> DataFusionError {
    let message = e.to_string();
    if message.to_lowercase().contains("concurrent") || message.contains("conflict") {
        let first = message.lines().next().unwrap_or_default();
        return DataFusionError::Execution(format!(
            "Delta table {uri}: write conflict: another writer committed after version {read_version}, \
             which this statement read, and changed files it depends on ({first}). Nothing was written; \
             run the statement again"
        ));
    }
    delta_err(uri, message)
}
