//! `UPDATE t SET ... WHERE ...` and `DELETE FROM t WHERE ...` as copy-on-write rewrites of only
//! the files that hold affected rows.
//!
//! Two passes through the cluster, as Delta on Spark does: the first reads the predicate's columns
//! from the files statistics cannot rule out, and counts matching rows per file (each row knows its
//! file through the scan's file column); the second rewrites just those files, and the commit
//! removes them and adds the new ones. A DELETE that matches every row of a file removes the file
//! without rewriting it. Nothing matching means nothing is committed.
//!
//! A DELETE by a dense key list (`id IN (SELECT id FROM dels)` with many keys per candidate file,
//! see [`super::key_bounds::dense`]) skips the first pass: it rewrites every file the keys' range
//! does not rule out, and counts the deleted rows as those the writers did not get
//! ([`super::tally`]).

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::Int64Type;
use datafusion::catalog::TableProvider;
use datafusion::common::{DataFusionError, Result, TableReference};
use datafusion::datasource::provider_as_source;
use datafusion::logical_expr::LogicalPlanBuilder;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::dataframe::DataFrame;
use datafusion::prelude::SessionContext;
use deltalake::kernel::LogicalFileView;
use deltalake::protocol::DeltaOperation;

use super::DeltaTableProvider;
use super::commit::{Rewrite, RewriteReport};
use super::key_bounds::KeyRange;
use super::tally::{CodeRole, Tally};
use super::sql_text::{DmlOutcome, FILE_COLUMN, ScratchTable, ident};

/// `DELETE FROM <table> AS <alias> [WHERE predicate]`; `predicate` is SQL over the table's columns.
pub async fn delete(ctx: &SessionContext, table: &DeltaTableProvider, alias: &str, predicate: Option<&str>) -> Result<DmlOutcome> {
    let range = key_range(ctx, predicate).await?;
    if let (Some(range), Some(predicate)) = (&range, predicate) {
        let candidates = super::key_bounds::candidates(ctx, table, alias, &range.filter).await?;
        if super::key_bounds::dense(range, &candidates) {
            return delete_in_one_pass(ctx, table, alias, predicate, candidates, range.source_rows).await;
        }
    }
    let matched = matching_files(ctx, table, alias, predicate, range).await?;
    let deleted: u64 = matched.values().map(|(_, n)| n).sum();
    if deleted == 0 {
        return Ok(DmlOutcome::default());
    }
    // Files whose every row goes are removed without being read again.
    let rewrite: Vec<String> =
        matched.iter().filter(|(_, (file, n))| file.num_records() != Some(*n as usize)).map(|(p, _)| p.clone()).collect();
    let kept = expected_rows(&matched, &rewrite, |n| n);
    let keep = match predicate {
        Some(p) => format!("WHERE NOT coalesce(({p}), false)"),
        None => "WHERE false".to_string(),
    };
    let columns = select_list(table, alias, |_| None);
    let metrics = HashMap::from([(DELETED.to_string(), deleted)]);
    let operation = DeltaOperation::Delete { predicate: None };
    let version = rewrite_files(ctx, table, alias, &matched, rewrite, &format!("SELECT {columns}"), &keep, kept, operation, metrics).await?;
    Ok(DmlOutcome { affected: deleted, deleted, files_removed: matched.len() as u64, version: Some(version), ..Default::default() })
}

/// `UPDATE <table> AS <alias> SET column = expr, ... [WHERE predicate]`.
pub async fn update(
    ctx: &SessionContext,
    table: &DeltaTableProvider,
    alias: &str,
    assignments: &[(String, String)],
    predicate: Option<&str>,
) -> Result<DmlOutcome> {
    let schema = table.table_schema();
    for (column, _) in assignments {
        if schema.field_with_name(column).is_err() {
            return Err(DataFusionError::Plan(format!(
                "UPDATE sets column '{column}', which {} does not have (columns: {})",
                table.spec().uri,
                schema.fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>().join(", ")
            )));
        }
    }
    let range = key_range(ctx, predicate).await?;
    let matched = matching_files(ctx, table, alias, predicate, range).await?;
    let updated: u64 = matched.values().map(|(_, n)| n).sum();
    if updated == 0 {
        return Ok(DmlOutcome::default());
    }
    let rewrite: Vec<String> = matched.keys().cloned().collect();
    let rows = expected_rows(&matched, &rewrite, |_| 0);
    let when = predicate.map(|p| format!("coalesce(({p}), false)")).unwrap_or_else(|| "true".into());
    let columns = select_list(table, alias, |name| {
        assignments.iter().find(|(c, _)| c == name).map(|(_, e)| format!("CASE WHEN {when} THEN ({e}) ELSE {}.{} END", alias, ident(name)))
    });
    let metrics = HashMap::from([("numUpdatedRows".to_string(), updated)]);
    let operation = DeltaOperation::Update { predicate: None };
    let version = rewrite_files(ctx, table, alias, &matched, rewrite, &format!("SELECT {columns}"), "", rows, operation, metrics).await?;
    Ok(DmlOutcome { affected: updated, updated, files_removed: matched.len() as u64, version: Some(version), ..Default::default() })
}

/// A DELETE by a dense key list (`id IN (SELECT id FROM dels)`, see [`super::key_bounds::dense`]):
/// every candidate file rewritten without the deleted rows in one pass, the deleted rows counted
/// as the rows the writers did not get.
async fn delete_in_one_pass(
    ctx: &SessionContext,
    table: &DeltaTableProvider,
    alias: &str,
    predicate: &str,
    candidates: Vec<LogicalFileView>,
    source_rows: Option<u64>,
) -> Result<DmlOutcome> {
    let target_rows = candidates.iter().map(|f| f.num_records().unwrap_or(0) as u64).sum();
    let tally = Tally {
        column: None,
        codes: vec![CodeRole { code: 0, written: true, target: true, metric: None }],
        target_rows,
        missing_metric: Some(DELETED.into()),
    };
    let source = ScratchTable::register(ctx, Arc::new(table.clone().restricted_to(candidates.iter().map(|f| f.path().into_owned()).collect())))?;
    let columns = select_list(table, alias, |_| None);
    // The rows kept. `NOT coalesce(k IN (keys), false)` is planned as two sort-merge mark joins
    // (keys read twice, the target shuffled and sorted); the same rows as `NOT EXISTS` are an anti
    // join, which the cluster runs with the keys broadcast to the tasks reading the target.
    let keep = match super::key_bounds::sole_in_subquery(predicate) {
        // The target's column qualified, so that a column named like the subquery's cannot be
        // taken for it (`v = v` would delete every row).
        Some((column, keys)) => {
            let column = if column.contains('.') { column } else { format!("{alias}.{column}") };
            format!("NOT EXISTS (SELECT 1 FROM ({keys}) AS __bb_q(__bb_v) WHERE __bb_q.__bb_v = {column})")
        }
        None => format!("NOT coalesce(({predicate}), false)"),
    };
    let df = ctx.sql(&format!("SELECT {columns} FROM {} AS {alias} WHERE {keep}", source.sql_name())).await?;
    let df = super::key_bounds::broadcasting(df, source_rows);
    let rewrite = Rewrite {
        removes: candidates.iter().map(|f| f.remove_action(true)).collect(),
        operation: DeltaOperation::Delete { predicate: None },
        expected_rows: None,
        data_change: true,
        metrics: HashMap::new(),
        tally: Some(tally),
    };
    let report = commit_tallied(table, df, rewrite).await?;
    let deleted = report.metrics.get(DELETED).copied().unwrap_or(0);
    let files_removed = if report.version.is_some() { candidates.len() as u64 } else { 0 };
    Ok(DmlOutcome { affected: deleted, deleted, files_removed, version: report.version, ..Default::default() })
}

/// The operation metric of a DELETE's deleted rows.
const DELETED: &str = "numDeletedRows";

/// The key range of `predicate`'s `col IN (SELECT ...)` conjuncts, if it has any.
async fn key_range(ctx: &SessionContext, predicate: Option<&str>) -> Result<Option<KeyRange>> {
    match predicate {
        Some(p) => super::key_bounds::in_subquery_bounds(ctx, p).await,
        None => Ok(None),
    }
}

/// The table's columns as a select list, each either as it is or as `replace` gives it.
pub(crate) fn select_list(table: &DeltaTableProvider, alias: &str, replace: impl Fn(&str) -> Option<String>) -> String {
    table
        .table_schema()
        .fields()
        .iter()
        .map(|f| {
            let name = f.name();
            match replace(name) {
                Some(expr) => format!("{expr} AS {}", ident(name)),
                None => format!("{alias}.{}", ident(name)),
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Files holding rows that match `predicate` (every file when there is none), with their counts.
async fn matching_files(
    ctx: &SessionContext,
    table: &DeltaTableProvider,
    alias: &str,
    predicate: Option<&str>,
    range: Option<KeyRange>,
) -> Result<HashMap<String, (LogicalFileView, u64)>> {
    let files: HashMap<String, LogicalFileView> = table.files().await?.into_iter().map(|f| (f.path().into_owned(), f)).collect();
    let counts: Vec<(String, u64)> = match predicate {
        None if files.values().all(|f| f.num_records().is_some()) => {
            files.iter().map(|(p, f)| (p.clone(), f.num_records().unwrap_or(0) as u64)).collect()
        }
        _ => {
            let scan = ScratchTable::register(ctx, Arc::new(table.clone().with_file_column(FILE_COLUMN)))?;
            // Key ranges of `col IN (SELECT ...)` conjuncts let the scan skip files by statistics.
            let filter = match (predicate, range) {
                (Some(p), Some(range)) => format!("WHERE {} AND ({p})", range.filter),
                (Some(p), None) => format!("WHERE {p}"),
                (None, _) => String::new(),
            };
            let sql = format!(
                "SELECT {alias}.{f}, count(*) FROM {} AS {alias} {filter} GROUP BY 1",
                scan.sql_name(),
                f = ident(FILE_COLUMN)
            );
            file_counts(&ctx.sql(&sql).await?.collect().await?)?
        }
    };
    counts
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(path, n)| {
            let file = files.get(&path).cloned().ok_or_else(|| {
                DataFusionError::Internal(format!("file {path} is not in {} at the version read", table.spec().uri))
            })?;
            Ok((path, (file, n)))
        })
        .collect()
}

/// Reads `(file, count)` rows (Utf8, Int64) of a first pass.
pub(crate) fn file_counts(batches: &[RecordBatch]) -> Result<Vec<(String, u64)>> {
    let mut out = Vec::new();
    for batch in batches {
        let files = arrow::compute::cast(batch.column(0), &arrow::datatypes::DataType::Utf8)?;
        let files = files.as_string::<i32>();
        let counts = batch.column(1).as_primitive::<Int64Type>();
        for i in 0..batch.num_rows() {
            if files.is_valid(i) {
                out.push((files.value(i).to_string(), counts.value(i).max(0) as u64));
            }
        }
    }
    Ok(out)
}

/// Rows the rewritten files will hold: their rows minus `gone(matched count)` each; `None` when a
/// file has no row count in the log.
fn expected_rows(matched: &HashMap<String, (LogicalFileView, u64)>, rewrite: &[String], gone: impl Fn(u64) -> u64) -> Option<u64> {
    rewrite
        .iter()
        .map(|p| {
            let (file, n) = &matched[p];
            file.num_records().map(|rows| rows as u64 - gone(*n))
        })
        .sum()
}

/// Runs `select ... FROM <the rewritten files> AS alias <filter>` into the table, committing the
/// removal of every file in `removed` and the new files in one transaction; returns the version.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn rewrite_files(
    ctx: &SessionContext,
    table: &DeltaTableProvider,
    alias: &str,
    removed: &HashMap<String, (LogicalFileView, u64)>,
    rewrite: Vec<String>,
    select: &str,
    filter: &str,
    expected_rows: Option<u64>,
    operation: DeltaOperation,
    metrics: HashMap<String, u64>,
) -> Result<u64> {
    let source = ScratchTable::register(ctx, Arc::new(table.clone().restricted_to(rewrite)))?;
    let df = ctx.sql(&format!("{select} FROM {} AS {alias} {filter}", source.sql_name())).await?;
    let removes = removed.values().map(|(f, _)| f.remove_action(true)).collect();
    let rewrite = Rewrite { removes, operation, expected_rows, data_change: true, metrics, tally: None };
    commit_through(table, df, rewrite).await
}

/// Writes `df` into `table` as a rewrite and returns the committed version.
pub(crate) async fn commit_through(table: &DeltaTableProvider, df: DataFrame, rewrite: Rewrite) -> Result<u64> {
    run_write(table, df, rewrite).await?;
    // The commit ran on an executor; the new version is the latest one this writer can know of.
    let latest = super::load_table(&table.spec().uri, None).await?;
    Ok(latest.version().unwrap_or_default() as u64)
}

/// Writes `df` into `table` as a one-pass rewrite with a tally, and returns what its commit did.
pub(crate) async fn commit_tallied(table: &DeltaTableProvider, df: DataFrame, rewrite: Rewrite) -> Result<RewriteReport> {
    let Some(tally) = rewrite.tally.clone() else {
        return Err(DataFusionError::Internal("a tallied rewrite needs a tally".into()));
    };
    let batches = run_write(table, df, rewrite).await?;
    let figures: Vec<u64> = batches
        .iter()
        .flat_map(|b| b.column(0).as_primitive::<arrow::datatypes::UInt64Type>().values().iter().copied().collect::<Vec<_>>())
        .collect();
    RewriteReport::from_rows(&tally, &figures)
}

/// Runs the write plan of `df` into `table` and returns its commit's result rows.
async fn run_write(table: &DeltaTableProvider, df: DataFrame, rewrite: Rewrite) -> Result<Vec<RecordBatch>> {
    let target: Arc<dyn TableProvider> = Arc::new(table.clone().with_rewrite(rewrite));
    // The write runs with the DataFrame's own session state (OPTIMIZE sets its parallelism there).
    let (state, plan) = df.into_parts();
    let plan = LogicalPlanBuilder::insert_into(
        plan,
        TableReference::bare("target"),
        provider_as_source(target),
        InsertOp::Append,
    )?
    .build()?;
    DataFrame::new(state, plan).collect().await
}
