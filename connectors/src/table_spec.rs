//! Declared table schemas: one small YAML file per table, e.g.
//!
//! ```yaml
//! table: orders            # optional: the default target table name
//! key: [order_id]          # merge-by-key columns (required, never null)
//! columns:
//!   - {name: order_id, type: int64, required: true}
//!   - {name: order_ts, type: timestamp, format: "%Y-%m-%d %H:%M:%S"}
//!   - {name: price, type: "decimal(10,2)"}
//! ```
//!
//! Types: `string`, `int32`, `int64`, `float64`, `bool`, `date`, `timestamp` (no zone, µs),
//! `timestamptz` (UTC, µs) and `decimal(p,s)`. Without a spec, ingest infers one from the source.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use serde::{Deserialize, Serialize};

/// A column's declared type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// UTF-8 text.
    String,
    /// 32-bit integer.
    Int32,
    /// 64-bit integer.
    Int64,
    /// 64-bit float.
    Float64,
    /// `true`/`false` (also `t`/`f`, `1`/`0`, `yes`/`no`).
    Bool,
    /// A calendar date.
    Date,
    /// A timestamp without zone, microseconds.
    Timestamp,
    /// An instant, stored in UTC, microseconds.
    TimestampTz,
    /// A fixed-point decimal with precision and scale.
    Decimal(u8, i8),
}

impl ColumnType {
    /// Parses `int64`, `decimal(10,2)` and friends (a few common aliases are accepted).
    pub fn parse(text: &str) -> Result<Self> {
        let t = text.trim().to_ascii_lowercase();
        Ok(match t.as_str() {
            "string" | "text" | "utf8" | "varchar" => Self::String,
            "int" | "int32" | "integer" => Self::Int32,
            "long" | "int64" | "bigint" => Self::Int64,
            "double" | "float64" | "float" => Self::Float64,
            "bool" | "boolean" => Self::Bool,
            "date" => Self::Date,
            "timestamp" => Self::Timestamp,
            "timestamptz" | "timestamp_utc" => Self::TimestampTz,
            _ => {
                let Some(args) = t.strip_prefix("decimal(").and_then(|r| r.strip_suffix(')')) else {
                    bail!("unknown column type '{text}' (string, int32, int64, float64, bool, date, timestamp, timestamptz, decimal(p,s))");
                };
                let (p, s) = args.split_once(',').with_context(|| format!("'{text}': decimal needs (precision,scale)"))?;
                let p: u8 = p.trim().parse().with_context(|| format!("'{text}': bad precision"))?;
                let s: i8 = s.trim().parse().with_context(|| format!("'{text}': bad scale"))?;
                if p == 0 || p > 38 || s < 0 || s as u8 > p {
                    bail!("'{text}': decimal precision must be 1..=38 and scale 0..=precision");
                }
                Self::Decimal(p, s)
            }
        })
    }

    /// The Arrow type a column of this type is stored as (all Delta-compatible).
    pub fn arrow_type(self) -> DataType {
        match self {
            Self::String => DataType::Utf8,
            Self::Int32 => DataType::Int32,
            Self::Int64 => DataType::Int64,
            Self::Float64 => DataType::Float64,
            Self::Bool => DataType::Boolean,
            Self::Date => DataType::Date32,
            Self::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
            Self::TimestampTz => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            Self::Decimal(p, s) => DataType::Decimal128(p, s),
        }
    }

    /// The declared type of an Arrow type, where there is one.
    pub fn from_arrow(t: &DataType) -> Option<Self> {
        Some(match t {
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Self::String,
            DataType::Int8 | DataType::Int16 | DataType::Int32 => Self::Int32,
            DataType::Int64 => Self::Int64,
            DataType::Float32 | DataType::Float64 => Self::Float64,
            DataType::Boolean => Self::Bool,
            DataType::Date32 | DataType::Date64 => Self::Date,
            DataType::Timestamp(_, None) => Self::Timestamp,
            DataType::Timestamp(_, Some(_)) => Self::TimestampTz,
            DataType::Decimal128(p, s) => Self::Decimal(*p, *s),
            _ => return None,
        })
    }
}

impl std::fmt::Display for ColumnType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::String => write!(f, "string"),
            Self::Int32 => write!(f, "int32"),
            Self::Int64 => write!(f, "int64"),
            Self::Float64 => write!(f, "float64"),
            Self::Bool => write!(f, "bool"),
            Self::Date => write!(f, "date"),
            Self::Timestamp => write!(f, "timestamp"),
            Self::TimestampTz => write!(f, "timestamptz"),
            Self::Decimal(p, s) => write!(f, "decimal({p},{s})"),
        }
    }
}

/// One declared column.
#[derive(Debug, Clone)]
pub struct ColumnSpec {
    /// Column name in the Delta table.
    pub name: String,
    /// Declared type.
    pub column_type: ColumnType,
    /// A row without a value here is rejected.
    pub required: bool,
    /// chrono format for dates and timestamps, when the source does not use ISO 8601.
    pub format: Option<String>,
    /// Where the value comes from: a CSV header or database column name (default: `name`), or a
    /// JSON path for JSON sources.
    pub source: Option<String>,
}

/// A declared (or inferred) table: columns in order, and key columns for merges.
#[derive(Debug, Clone)]
pub struct TableSpec {
    /// Default target table name.
    pub table: Option<String>,
    /// Columns in table order.
    pub columns: Vec<ColumnSpec>,
    /// Merge key; every key column is required.
    pub key: Vec<String>,
}

#[derive(Deserialize, Serialize)]
struct ColumnYaml {
    name: String,
    #[serde(rename = "type", default = "default_type")]
    column_type: String,
    #[serde(default)]
    required: bool,
    #[serde(default)]
    format: Option<String>,
    #[serde(default, alias = "path")]
    source: Option<String>,
}

fn default_type() -> String {
    "string".into()
}

#[derive(Deserialize, Serialize)]
struct TableYaml {
    #[serde(default)]
    table: Option<String>,
    #[serde(default)]
    key: Vec<String>,
    columns: Vec<ColumnYaml>,
}

impl TableSpec {
    /// Reads a spec file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read schema spec {}", path.display()))?;
        let yaml: TableYaml =
            serde_yaml::from_str(&text).with_context(|| format!("schema spec {} is not valid", path.display()))?;
        Self::from_yaml(yaml).with_context(|| format!("schema spec {}", path.display()))
    }

    /// Parses a spec from YAML text (the same format as [`TableSpec::load`]).
    pub fn from_yaml_str(text: &str) -> Result<Self> {
        Self::from_yaml(serde_yaml::from_str(text)?)
    }

    fn from_yaml(yaml: TableYaml) -> Result<Self> {
        let columns = yaml
            .columns
            .into_iter()
            .map(|c| {
                Ok(ColumnSpec {
                    column_type: ColumnType::parse(&c.column_type).with_context(|| format!("column '{}'", c.name))?,
                    name: c.name,
                    required: c.required,
                    format: c.format,
                    source: c.source,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Self::new(yaml.table, columns, yaml.key)
    }

    /// Checks names and keys; key columns become required.
    pub fn new(table: Option<String>, mut columns: Vec<ColumnSpec>, key: Vec<String>) -> Result<Self> {
        if columns.is_empty() {
            bail!("a table needs at least one column");
        }
        let mut seen = std::collections::HashSet::new();
        for c in &columns {
            if c.name.is_empty() || c.name.starts_with("__") {
                bail!("column name '{}' is not allowed (empty, or starts with '__')", c.name);
            }
            if !seen.insert(c.name.to_ascii_lowercase()) {
                bail!("column '{}' is declared twice", c.name);
            }
        }
        for k in &key {
            let Some(c) = columns.iter_mut().find(|c| &c.name == k) else {
                bail!("key column '{k}' is not a declared column");
            };
            c.required = true;
        }
        Ok(Self { table, columns, key })
    }

    /// The Arrow schema of the table. Columns are nullable in Delta; `required` is enforced on ingest.
    pub fn arrow_schema(&self) -> SchemaRef {
        Arc::new(Schema::new(
            self.columns
                .iter()
                .map(|c| Field::new(&c.name, c.column_type.arrow_type(), true))
                .collect::<Vec<_>>(),
        ))
    }

    /// Column names in order.
    pub fn column_names(&self) -> Vec<&str> {
        self.columns.iter().map(|c| c.name.as_str()).collect()
    }

    /// Fails, naming the differences, when an existing table's schema is not this spec's.
    pub fn check_matches(&self, table: &str, existing: &Schema) -> Result<()> {
        let declared = self.arrow_schema();
        let describe = |s: &Schema| {
            s.fields()
                .iter()
                .map(|f| format!("{} {}", f.name(), f.data_type()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let same = declared.fields().len() == existing.fields().len()
            && declared
                .fields()
                .iter()
                .zip(existing.fields())
                .all(|(d, e)| d.name() == e.name() && d.data_type() == e.data_type());
        if !same {
            bail!(
                "schema mismatch for table '{table}': the table has ({}) but the ingest declares ({}); \
                 use --mode overwrite with a new table name, or fix the spec",
                describe(existing),
                describe(&declared)
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_types_and_makes_keys_required() {
        let spec = TableSpec::from_yaml_str(
            "key: [id]\ncolumns:\n  - {name: id, type: bigint}\n  - {name: price, type: 'decimal(10,2)'}\n  - {name: at, type: timestamptz}\n",
        )
        .unwrap();
        assert!(spec.columns[0].required);
        assert_eq!(spec.columns[1].column_type, ColumnType::Decimal(10, 2));
        assert_eq!(spec.arrow_schema().field(2).data_type(), &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())));
        assert!(TableSpec::from_yaml_str("key: [nope]\ncolumns:\n  - {name: id}\n").is_err());
        assert!(ColumnType::parse("decimal(3,5)").is_err());
    }
}
