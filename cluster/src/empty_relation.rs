//! Ballista ships each logical plan to the scheduler in DataFusion's protobuf, whose
//! `EmptyRelation` carries no schema. `CREATE TABLE t AS SELECT 0 AS a WHERE false`, the usual way
//! to make an empty table with a shape, is folded by the optimizer into an empty relation with
//! column `a`; it reached the scheduler with no columns and failed ("the query returns 0 columns
//! but the table has 1"). This rule, the last of the client's optimizer, turns such a relation
//! into `LIMIT 0` over one row of typed NULLs, which serializes with its columns; the scheduler's
//! optimizer folds it back into an empty relation, now with the right schema.

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder, cast, lit};
use datafusion::optimizer::{ApplyOrder, OptimizerConfig, OptimizerRule};

/// Rewrites schema-carrying empty relations into a form the plan protobuf keeps.
#[derive(Debug, Default)]
pub struct ShippableEmptyRelation;

impl OptimizerRule for ShippableEmptyRelation {
    fn name(&self) -> &str {
        "backbeat_shippable_empty_relation"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        None
    }

    fn supports_rewrite(&self) -> bool {
        true
    }

    fn rewrite(&self, plan: LogicalPlan, _config: &dyn OptimizerConfig) -> Result<Transformed<LogicalPlan>> {
        plan.transform_up(|node| match &node {
            LogicalPlan::EmptyRelation(e) if !e.produce_one_row && !e.schema.fields().is_empty() => {
                let columns: Vec<Expr> = e
                    .schema
                    .iter()
                    .map(|(qualifier, field)| cast(lit(ScalarValue::Null), field.data_type().clone()).alias_qualified(qualifier.cloned(), field.name()))
                    .collect();
                let plan = LogicalPlanBuilder::empty(true).project(columns)?.limit(0, Some(0))?.build()?;
                Ok(Transformed::yes(plan))
            }
            _ => Ok(Transformed::no(node)),
        })
    }
}
