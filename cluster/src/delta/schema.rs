//! Mapping query schemas onto what Delta can store: a write names the column it cannot store
//! rather than failing inside the Parquet writer, and an `INSERT` casts by position as SQL does.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::common::{DataFusionError, Result, plan_err};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::expressions::{CastExpr, Column};
use datafusion::physical_plan::projection::ProjectionExec;
use deltalake::kernel::StructType;
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel;

/// Projects `input` onto the table's columns and types, by position, as SQL INSERT does; `extra`
/// names a last column passed through after them (a one-pass rewrite's row codes).
pub fn cast_to_schema(input: Arc<dyn ExecutionPlan>, target: &SchemaRef, extra: Option<&str>) -> Result<Arc<dyn ExecutionPlan>> {
    let source = input.schema();
    let passed = usize::from(extra.is_some());
    if source.fields().len() != target.fields().len() + passed {
        return plan_err!(
            "the query returns {} columns but the table has {} ({})",
            source.fields().len() - passed.min(source.fields().len()),
            target.fields().len(),
            target.fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>().join(", ")
        );
    }
    let same = source
        .fields()
        .iter()
        .zip(target.fields())
        .all(|(s, t)| s.name() == t.name() && s.data_type() == t.data_type())
        && extra.is_none_or(|e| source.fields().last().is_some_and(|f| f.name() == e));
    if same {
        return Ok(input);
    }
    let mut exprs: Vec<(Arc<dyn PhysicalExpr>, String)> = source
        .fields()
        .iter()
        .zip(target.fields())
        .enumerate()
        .map(|(i, (s, t))| {
            let column: Arc<dyn PhysicalExpr> = Arc::new(Column::new(s.name(), i));
            let expr: Arc<dyn PhysicalExpr> = if s.data_type() == t.data_type() {
                column
            } else {
                Arc::new(CastExpr::new(column, t.data_type().clone(), None))
            };
            (expr, t.name().clone())
        })
        .collect();
    if let Some(extra) = extra {
        let last = source.fields().len() - 1;
        exprs.push((Arc::new(Column::new(source.field(last).name(), last)), extra.to_string()));
    }
    Ok(Arc::new(ProjectionExec::try_new(exprs, input)?))
}

/// Maps an Arrow schema (what a query returns) onto types Delta can store, naming the column that
/// cannot be stored. Delta has no unsigned, view, large or nanosecond types: those widen or convert.
pub fn delta_compatible_schema(schema: &Schema) -> Result<SchemaRef> {
    let fields = schema
        .fields()
        .iter()
        .map(|f| {
            let data_type = delta_type(f.data_type()).ok_or_else(|| {
                DataFusionError::Plan(format!(
                    "column '{}' has type {} which a Delta table cannot store",
                    f.name(),
                    f.data_type()
                ))
            })?;
            // Query results carry nullability from expressions; a new table accepts NULLs.
            Ok(Field::new(f.name(), data_type, true))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Arc::new(Schema::new(fields)))
}

fn delta_type(t: &DataType) -> Option<DataType> {
    use DataType::*;
    Some(match t {
        Boolean | Int8 | Int16 | Int32 | Int64 | Float32 | Float64 | Utf8 | Binary | Date32
        | Decimal128(_, _) => t.clone(),
        UInt8 => Int16,
        UInt16 => Int32,
        UInt32 | UInt64 => Int64,
        Float16 => Float32,
        Utf8View | LargeUtf8 => Utf8,
        BinaryView | LargeBinary | FixedSizeBinary(_) => Binary,
        Date64 => Date32,
        Null => Utf8,
        Timestamp(_, None) => Timestamp(TimeUnit::Microsecond, None),
        Timestamp(_, Some(_)) => Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        Dictionary(_, value) => delta_type(value)?,
        List(f) | LargeList(f) | ListView(f) | LargeListView(f) | FixedSizeList(f, _) => {
            List(Arc::new(Field::new(f.name(), delta_type(f.data_type())?, true)))
        }
        Struct(fields) => Struct(
            fields
                .iter()
                .map(|f| Some(Field::new(f.name(), delta_type(f.data_type())?, true)))
                .collect::<Option<Vec<_>>>()?
                .into(),
        ),
        Map(entries, sorted) => {
            let DataType::Struct(kv) = entries.data_type() else { return None };
            let key = Field::new(kv[0].name(), delta_type(kv[0].data_type())?, false);
            let value = Field::new(kv[1].name(), delta_type(kv[1].data_type())?, true);
            Map(
                Arc::new(Field::new(entries.name(), Struct(vec![key, value].into()), false)),
                *sorted,
            )
        }
        _ => return None,
    })
}

/// The table schema as Delta schema JSON, as a commit that creates or replaces a table needs it.
pub fn delta_schema_json(schema: &SchemaRef) -> Result<String> {
    let kernel: StructType = schema
        .as_ref()
        .try_into_kernel()
        .map_err(|e| DataFusionError::Plan(format!("schema cannot be stored in Delta: {e}")))?;
    serde_json::to_string(&kernel).map_err(|e| DataFusionError::Internal(e.to_string()))
}

