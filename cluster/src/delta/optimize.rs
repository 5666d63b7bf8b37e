//! `OPTIMIZE t [WHERE partition predicate]`: packs the small files of each partition into files of
//! the writer's target size, as Databricks' bin-packing does. The rows are unchanged, so the commit
//! says `dataChange=false` for every file it adds and removes, and readers of changes skip it.
//!
//! The files are rewritten through the cluster like any write (the writer rolls files over at the
//! target size and sends each partition value to one task), and the commit checks that the new
//! files hold exactly the rows of the old ones.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use datafusion::common::{DataFusionError, Result};
use datafusion::dataframe::DataFrame;
use datafusion::prelude::SessionContext;
use deltalake::protocol::DeltaOperation;

use super::DeltaTableProvider;
use super::commit::Rewrite;
use super::sql_text::{FILE_COLUMN, ScratchTable, ident};
use super::update::{commit_through, file_counts};
use super::writer::TARGET_FILE_SIZE;

/// What an optimize did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OptimizeOutcome {
    /// Small files packed (removed).
    pub files_removed: u64,
    /// Partitions whose files were packed.
    pub partitions: u64,
    /// The version committed; `None` when every partition already had at most one small file.
    pub version: Option<u64>,
}

/// Packs the table's files smaller than the target size, in partitions matching `partition_filter`
/// (SQL over partition columns only).
pub async fn optimize(ctx: &SessionContext, table: &DeltaTableProvider, partition_filter: Option<&str>) -> Result<OptimizeOutcome> {
    let mut files = table.files().await?;
    if let Some(filter) = partition_filter {
        let partitions = &table.spec().partition_columns;
        let scan = ScratchTable::register(ctx, Arc::new(table.clone().with_file_column(FILE_COLUMN)))?;
        let df = ctx.sql(&format!("SELECT {f}, count(*) FROM {} WHERE {filter} GROUP BY 1", scan.sql_name(), f = ident(FILE_COLUMN))).await?;
        for column in df.logical_plan().using_columns()?.into_iter().flatten() {
            if column.name != FILE_COLUMN && !partitions.contains(&column.name) {
                return Err(DataFusionError::Plan(format!(
                    "OPTIMIZE ... WHERE may only use partition columns ({}), not '{}'",
                    if partitions.is_empty() { "the table has none".to_string() } else { partitions.join(", ") },
                    column.name
                )));
            }
        }
        let keep: std::collections::HashSet<String> = file_counts(&df.collect().await?)?.into_iter().map(|(f, _)| f).collect();
        files.retain(|f| keep.contains(f.path().as_ref()));
    }
    // Bins: the small files of each partition; a partition with one small file is left alone.
    let mut bins: BTreeMap<String, Vec<_>> = BTreeMap::new();
    for file in files.into_iter().filter(|f| (f.size().max(0) as u64) < TARGET_FILE_SIZE) {
        let key = format!("{:?}", file.partition_values_map().into_iter().collect::<BTreeMap<_, _>>());
        bins.entry(key).or_default().push(file);
    }
    bins.retain(|_, files| files.len() > 1);
    if bins.is_empty() {
        return Ok(OptimizeOutcome::default());
    }
    let packed: Vec<_> = bins.values().flatten().cloned().collect();
    let rows: Option<u64> = packed.iter().map(|f| f.num_records().map(|n| n as u64)).sum();
    let source = ScratchTable::register(
        ctx,
        Arc::new(table.clone().restricted_to(packed.iter().map(|f| f.path().into_owned()).collect())),
    )?;
    // As many write tasks as target-size files the rows fill: twelve 1 KB files become one file,
    // not one per task slot. The scan makes that many file groups, and the writer keeps them.
    // (A partitioned table is still split by partition value.)
    let bytes: u64 = packed.iter().map(|f| f.size().max(0) as u64).sum();
    let tasks = bytes.div_ceil(TARGET_FILE_SIZE).max(1) as usize;
    // A copy of the session's state with its own config (a state rebuilt from the session's
    // would re-create the default catalog, which the session shares, and lose the lake).
    let plan = ctx.sql(&format!("SELECT * FROM {}", source.sql_name())).await?.into_unoptimized_plan();
    let mut state = ctx.state();
    state.config_mut().options_mut().execution.target_partitions = tasks;
    let df = DataFrame::new(state, plan);
    let rewrite = Rewrite {
        removes: packed.iter().map(|f| f.remove_action(false)).collect(),
        operation: DeltaOperation::Optimize {
            predicate: partition_filter.map(str::to_string),
            target_size: TARGET_FILE_SIZE as i64,
        },
        expected_rows: rows,
        data_change: false,
        metrics: HashMap::from([
            ("numRemovedFiles".to_string(), packed.len() as u64),
            ("numPartitionsOptimized".to_string(), bins.len() as u64),
        ]),
        tally: None,
    };
    let version = commit_through(table, df, rewrite).await?;
    tracing::info!(table = %table.spec().uri, files = packed.len(), partitions = bins.len(), version, "optimized");
    Ok(OptimizeOutcome { files_removed: packed.len() as u64, partitions: bins.len() as u64, version: Some(version) })
}
