//! SQL text for the statements the verbs run through the cluster, and their one-row results.
//!
//! The verbs plan their passes as SQL over temporarily registered providers rather than as
//! DataFrame expressions, so that a user's expressions (`SET plays = s.plays + 1`, `ON t.id =
//! s.id`) keep exactly the meaning, aliases and type coercions they have in any other query.

use std::sync::Arc;

use datafusion::catalog::{MemorySchemaProvider, TableProvider};
use datafusion::common::Result;
use datafusion::dataframe::DataFrame;
use datafusion::prelude::SessionContext;

/// The schema temporary tables of a statement are registered in (created on first use).
pub const SCRATCH_SCHEMA: &str = "_backbeat";

/// The file column the first pass of a rewrite reads (see [`super::scan`]).
pub const FILE_COLUMN: &str = "__bb_file";

/// Quotes an SQL identifier.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Quotes an SQL string literal.
pub fn string(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// A table registered for the duration of one statement; deregistered when dropped.
pub struct ScratchTable {
    ctx: SessionContext,
    name: String,
}

impl ScratchTable {
    /// Registers `provider` under a fresh name in [`SCRATCH_SCHEMA`].
    pub fn register(ctx: &SessionContext, provider: Arc<dyn TableProvider>) -> Result<Self> {
        let catalog = ctx.catalog("datafusion").expect("the default catalog exists");
        if catalog.schema(SCRATCH_SCHEMA).is_none() {
            catalog.register_schema(SCRATCH_SCHEMA, Arc::new(MemorySchemaProvider::new()))?;
        }
        let name = format!("t{}", uuid::Uuid::new_v4().simple());
        ctx.register_table(format!("{SCRATCH_SCHEMA}.{name}"), provider)?;
        Ok(Self { ctx: ctx.clone(), name })
    }

    /// The qualified name to use in SQL.
    pub fn sql_name(&self) -> String {
        format!("{SCRATCH_SCHEMA}.{}", self.name)
    }
}

impl Drop for ScratchTable {
    fn drop(&mut self) {
        let _ = self.ctx.deregister_table(format!("{SCRATCH_SCHEMA}.{}", self.name));
    }
}

/// What a data-changing statement did, as Databricks reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DmlOutcome {
    /// Rows updated, deleted or inserted.
    pub affected: u64,
    /// Rows updated.
    pub updated: u64,
    /// Rows deleted.
    pub deleted: u64,
    /// Rows inserted.
    pub inserted: u64,
    /// Files removed and added by the commit.
    pub files_removed: u64,
    /// The version committed; `None` when nothing changed and nothing was committed.
    pub version: Option<u64>,
}

impl DmlOutcome {
    /// The statement's result: one row, Databricks' column names.
    pub async fn to_dataframe(&self, ctx: &SessionContext) -> Result<DataFrame> {
        ctx.sql(&format!(
            "SELECT arrow_cast({}, 'Int64') AS num_affected_rows, arrow_cast({}, 'Int64') AS num_updated_rows, \
             arrow_cast({}, 'Int64') AS num_deleted_rows, arrow_cast({}, 'Int64') AS num_inserted_rows",
            self.affected, self.updated, self.deleted, self.inserted
        ))
        .await
    }
}

/// A literal table (`VALUES`) with named columns: how metadata results (history, vacuum's file
/// list) are returned as an ordinary DataFrame that runs anywhere. `rows` hold SQL literals.
pub fn values_table(columns: &[&str], rows: &[Vec<String>]) -> String {
    if rows.is_empty() {
        let nulls: Vec<String> = columns.iter().map(|c| format!("NULL AS {}", ident(c))).collect();
        return format!("SELECT {} WHERE false", nulls.join(", "));
    }
    let values: Vec<String> = rows.iter().map(|r| format!("({})", r.join(", "))).collect();
    let names: Vec<String> = columns.iter().map(|c| ident(c)).collect();
    format!("SELECT * FROM (VALUES {}) AS v({})", values.join(", "), names.join(", "))
}

/// The first value of `array` as an SQL literal of its type, if it has a simple one.
pub(crate) fn sql_literal(array: &arrow::array::ArrayRef) -> Result<Option<String>> {
    use arrow::datatypes::DataType::*;
    let value = datafusion::common::ScalarValue::try_from_array(array, 0)?;
    if value.is_null() {
        return Ok(None);
    }
    Ok(match array.data_type() {
        Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32 | UInt64 => Some(value.to_string()),
        Utf8 | LargeUtf8 | Utf8View => Some(string(&value.to_string())),
        // Through Arrow's own cast to text (ISO 8601 for dates and times), which arrow_cast parses
        // back; ScalarValue's Display gives a timestamp as its raw integer.
        Float32 | Float64 | Date32 | Timestamp(_, _) => {
            let text = arrow::compute::cast(&array.slice(0, 1), &Utf8)?;
            let text = text.as_any().downcast_ref::<arrow::array::StringArray>().map(|a| a.value(0).to_string());
            text.map(|t| format!("arrow_cast({}, '{}')", string(&t), array.data_type()))
        }
        _ => None,
    })
}
