//! Table functions across the wire: `generate_series(...)` and `range(...)` plan, on the client, to
//! a `GenerateSeriesTable` provider that DataFusion's protobuf form cannot carry, so every query
//! using them failed in cluster and embedded mode alike ("failed to serialize logical plan"). The
//! codec sends their arguments instead; the scheduler re-creates the provider, whose physical plan
//! (`LazyMemoryExec`) DataFusion's protobuf does carry.
//!
//! The re-created table scans every column and projects on top: DataFusion 55's protobuf form of a
//! projected `LazyMemoryExec` loses the projection, so `SELECT count(*) FROM generate_series(1, 10)`
//! (no columns) failed on the executor with "number of columns(1) must match number of fields(0)".

use std::sync::Arc;

use arrow::datatypes::{IntervalMonthDayNano, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::TableType;
use datafusion::logical_expr::Expr;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::expressions::Column;
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::common::{DataFusionError, Result};
use datafusion::functions_table::generate_series::{
    Empty, GenSeriesArgs, GenerateSeriesTable, GenericSeriesState, TimestampValue,
};
use serde::{Deserialize, Serialize};

/// The wire form of a `GenerateSeriesTable`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum SeriesSpec {
    /// An argument was NULL: no rows.
    Empty {
        /// `generate_series` or `range`.
        name: String,
    },
    /// Integers from `start` by `step` to `end`.
    Int64 {
        /// `generate_series` or `range`.
        name: String,
        /// First value.
        start: i64,
        /// Last value (or bound, see `include_end`).
        end: i64,
        /// Increment.
        step: i64,
        /// `generate_series` includes `end`, `range` does not.
        include_end: bool,
    },
    /// Timestamps from `start` by an interval to `end`.
    Timestamp {
        /// `generate_series` or `range`.
        name: String,
        /// First value (nanoseconds since the epoch).
        start: i64,
        /// Last value or bound.
        end: i64,
        /// Increment as (months, days, nanoseconds).
        step: (i32, i32, i64),
        /// Time zone.
        tz: Option<String>,
        /// Whether `end` is included.
        include_end: bool,
    },
}

fn static_name(name: &str) -> &'static str {
    if name == "range" { "range" } else { "generate_series" }
}

/// The wire form of `provider`, if it is a series table.
pub fn encode(provider: &dyn TableProvider) -> Result<Option<SeriesSpec>> {
    let Some(table) = provider.downcast_ref::<GenerateSeriesTable>() else {
        return Ok(None);
    };
    let generator = table.as_generator(1)?;
    let generator = generator.read();
    let any = generator.as_any();
    if let Some(s) = any.downcast_ref::<GenericSeriesState<i64>>() {
        return Ok(Some(SeriesSpec::Int64 {
            name: s.name().to_string(),
            start: *s.start(),
            end: *s.end(),
            step: *s.step(),
            include_end: s.include_end(),
        }));
    }
    if let Some(s) = any.downcast_ref::<GenericSeriesState<TimestampValue>>() {
        let step = s.step();
        return Ok(Some(SeriesSpec::Timestamp {
            name: s.name().to_string(),
            start: s.start().value(),
            end: s.end().value(),
            step: (step.months, step.days, step.nanoseconds),
            tz: s.start().tz_str().map(|t| t.to_string()),
            include_end: s.include_end(),
        }));
    }
    match any.downcast_ref::<Empty>() {
        Some(e) => Ok(Some(SeriesSpec::Empty { name: e.name().to_string() })),
        None => Err(DataFusionError::NotImplemented(format!("a series table of an unknown kind: {generator}"))),
    }
}

/// Re-creates the series table on the receiving side.
pub fn decode(spec: SeriesSpec, schema: SchemaRef) -> Result<Arc<dyn TableProvider>> {
    let args = match spec {
        SeriesSpec::Empty { name } => GenSeriesArgs::ContainsNull { name: static_name(&name) },
        SeriesSpec::Int64 { name, start, end, step, include_end } => {
            GenSeriesArgs::Int64Args { start, end, step, include_end, name: static_name(&name) }
        }
        SeriesSpec::Timestamp { name, start, end, step, tz, include_end } => GenSeriesArgs::TimestampArgs {
            start,
            end,
            step: IntervalMonthDayNano::new(step.0, step.1, step.2),
            tz: tz.map(Arc::from),
            include_end,
            name: static_name(&name),
        },
    };
    if schema.fields().is_empty() {
        return Err(DataFusionError::Internal("a series table needs its one column".into()));
    }
    Ok(Arc::new(SeriesTable(GenerateSeriesTable::new(schema, args))))
}

/// A series table that scans all its columns and projects on top (see the module docs).
#[derive(Debug)]
struct SeriesTable(GenerateSeriesTable);

#[async_trait::async_trait]
impl TableProvider for SeriesTable {
    fn schema(&self) -> SchemaRef {
        self.0.schema()
    }

    fn table_type(&self) -> TableType {
        self.0.table_type()
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let scan = self.0.scan(state, None, filters, limit).await?;
        let Some(projection) = projection else { return Ok(scan) };
        let schema = scan.schema();
        let exprs: Vec<(Arc<dyn PhysicalExpr>, String)> = projection
            .iter()
            .map(|&i| (Arc::new(Column::new(schema.field(i).name(), i)) as Arc<dyn PhysicalExpr>, schema.field(i).name().clone()))
            .collect();
        Ok(Arc::new(ProjectionExec::try_new(exprs, scan)?))
    }
}
