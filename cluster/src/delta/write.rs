//! `INSERT INTO`, `INSERT OVERWRITE`, `CREATE [OR REPLACE] TABLE AS` and DataFrame writes: the plan
//! that writes a query's rows on the executors and commits them once (see [`super::commit`]).
//! `UPDATE`, `DELETE`, `MERGE` and `OPTIMIZE` end in the same plan, with the files they replace
//! carried in the table spec's [`super::commit::Rewrite`].

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use datafusion::common::{Result, plan_err};
use datafusion::logical_expr::dml::InsertOp;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::union::UnionExec;

use super::commit::{DeltaCommitExec, DeltaCommitSpec};
use super::schema::{cast_to_schema, delta_schema_json};
use super::writer::{DeltaWriteExec, DeltaWriteSpec};
use super::{DeltaTableSpec, WriteMode};

/// Builds the write plan for `input` into the table described by `spec`.
pub fn plan_write(
    spec: &DeltaTableSpec,
    table_schema: SchemaRef,
    input: Arc<dyn ExecutionPlan>,
    insert_op: InsertOp,
) -> Result<Arc<dyn ExecutionPlan>> {
    let mode = match (spec.mode, insert_op) {
        (_, InsertOp::Replace) => {
            return plan_err!("REPLACE INTO is not supported for Delta tables; use MERGE INTO or INSERT OVERWRITE");
        }
        (WriteMode::Append | WriteMode::Overwrite | WriteMode::Merge, _) if spec.version.is_none() => {
            return plan_err!("Delta table {} does not exist", spec.uri);
        }
        (WriteMode::Merge, _) => return plan_err!("a merge into {} must be planned as MERGE INTO", spec.uri),
        (WriteMode::Append, InsertOp::Overwrite) if spec.rewrite.is_none() => WriteMode::Overwrite,
        (mode, _) => mode,
    };
    // A one-pass rewrite's row codes ride along as a last column, which the writer strips.
    let tally = spec.rewrite.as_ref().and_then(|r| r.tally.clone());
    let code_column = tally.as_ref().and_then(|t| t.column.clone());
    // A one-pass MERGE writes `<target rows> UNION ALL <inserted rows>`: each branch is written
    // where it is computed, so that only Add actions, not rows, cross the stage boundary Ballista
    // puts under a union (the union of rows cost a shuffle of every row rewritten).
    let branches = match input.downcast_ref::<UnionExec>() {
        Some(union) if tally.is_some() => union.inputs().clone(),
        _ => vec![input],
    };
    let writers = branches
        .into_iter()
        .map(|branch| {
            let branch = cast_to_schema(branch, &table_schema, code_column.as_deref())?;
            Ok(Arc::new(DeltaWriteExec::from_spec(
                branch,
                DeltaWriteSpec {
                    uri: spec.uri.clone(),
                    partition_columns: spec.partition_columns.clone(),
                    keep_partitions: spec.rewrite.as_ref().is_some_and(|r| !r.data_change),
                    tally: tally.clone(),
                },
            )) as Arc<dyn ExecutionPlan>)
        })
        .collect::<Result<Vec<_>>>()?;
    tracing::debug!(table = %spec.uri, writers = writers.len(), "write plan");
    let write = UnionExec::try_new(writers)?;
    let coalesced = Arc::new(CoalescePartitionsExec::new(write));
    let table = DeltaTableSpec { mode, ..spec.clone() };
    Ok(Arc::new(DeltaCommitExec::new(
        coalesced,
        DeltaCommitSpec { table, schema_json: delta_schema_json(&table_schema)? },
    )))
}
