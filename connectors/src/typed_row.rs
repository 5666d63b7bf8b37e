//! Text fields → typed Arrow columns, one row at a time, so that one bad value rejects one row (with
//! the column and the reason) instead of failing a whole batch as Arrow's CSV reader would.

use std::sync::Arc;

use arrow::array::{
    ArrayBuilder, ArrayRef, BooleanBuilder, Date32Builder, Decimal128Builder, Float64Builder, Int32Builder,
    Int64Builder, RecordBatch, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::compute::kernels::cast_utils::parse_decimal;
use arrow::datatypes::{Decimal128Type, DecimalType, SchemaRef};
use chrono::{DateTime, NaiveDate, NaiveDateTime};

use crate::table_spec::{ColumnType, TableSpec};

/// Why a row was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectKind {
    /// The line has the wrong number of fields, or is not a parsable record.
    MalformedLine,
    /// A value does not parse as the column's type.
    WrongType,
    /// A required column has no value.
    MissingRequired,
    /// A JSON document does not parse.
    BrokenJson,
}

impl RejectKind {
    /// The name stored in the dead-letter table (the same names the data generator uses).
    pub fn name(self) -> &'static str {
        match self {
            Self::MalformedLine => "malformed_line",
            Self::WrongType => "wrong_type",
            Self::MissingRequired => "missing_required",
            Self::BrokenJson => "broken_json",
        }
    }
}

/// One value that could not be stored.
#[derive(Debug, Clone)]
pub struct FieldError {
    /// What went wrong.
    pub kind: RejectKind,
    /// The column concerned, if any.
    pub column: Option<String>,
    /// A human-readable reason.
    pub message: String,
}

enum Value<'a> {
    Null,
    Str(&'a str),
    I32(i32),
    I64(i64),
    F64(f64),
    Bool(bool),
    Date(i32),
    Micros(i64),
    Decimal(i128),
}

enum ColumnBuilder {
    Str(StringBuilder),
    I32(Int32Builder),
    I64(Int64Builder),
    F64(Float64Builder),
    Bool(BooleanBuilder),
    Date(Date32Builder),
    Micros(TimestampMicrosecondBuilder, Option<Arc<str>>),
    Decimal(Decimal128Builder, u8, i8),
}

impl ColumnBuilder {
    fn new(t: ColumnType) -> Self {
        match t {
            ColumnType::String => Self::Str(StringBuilder::new()),
            ColumnType::Int32 => Self::I32(Int32Builder::new()),
            ColumnType::Int64 => Self::I64(Int64Builder::new()),
            ColumnType::Float64 => Self::F64(Float64Builder::new()),
            ColumnType::Bool => Self::Bool(BooleanBuilder::new()),
            ColumnType::Date => Self::Date(Date32Builder::new()),
            ColumnType::Timestamp => Self::Micros(TimestampMicrosecondBuilder::new(), None),
            ColumnType::TimestampTz => Self::Micros(TimestampMicrosecondBuilder::new(), Some("UTC".into())),
            ColumnType::Decimal(p, s) => Self::Decimal(Decimal128Builder::new(), p, s),
        }
    }

    fn append(&mut self, v: &Value) {
        match (self, v) {
            (Self::Str(b), Value::Str(s)) => b.append_value(s),
            (Self::I32(b), Value::I32(x)) => b.append_value(*x),
            (Self::I64(b), Value::I64(x)) => b.append_value(*x),
            (Self::F64(b), Value::F64(x)) => b.append_value(*x),
            (Self::Bool(b), Value::Bool(x)) => b.append_value(*x),
            (Self::Date(b), Value::Date(x)) => b.append_value(*x),
            (Self::Micros(b, _), Value::Micros(x)) => b.append_value(*x),
            (Self::Decimal(b, _, _), Value::Decimal(x)) => b.append_value(*x),
            (b, _) => b.append_null(),
        }
    }

    fn append_null(&mut self) {
        match self {
            Self::Str(b) => b.append_null(),
            Self::I32(b) => b.append_null(),
            Self::I64(b) => b.append_null(),
            Self::F64(b) => b.append_null(),
            Self::Bool(b) => b.append_null(),
            Self::Date(b) => b.append_null(),
            Self::Micros(b, _) => b.append_null(),
            Self::Decimal(b, _, _) => b.append_null(),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Self::Str(b) => Arc::new(b.finish()),
            Self::I32(b) => Arc::new(b.finish()),
            Self::I64(b) => Arc::new(b.finish()),
            Self::F64(b) => Arc::new(b.finish()),
            Self::Bool(b) => Arc::new(b.finish()),
            Self::Date(b) => Arc::new(b.finish()),
            Self::Micros(b, tz) => Arc::new(b.finish().with_timezone_opt(tz.clone())),
            Self::Decimal(b, p, s) => Arc::new(b.finish().with_precision_and_scale(*p, *s).expect("validated in the spec")),
        }
    }

    fn len(&self) -> usize {
        match self {
            Self::Str(b) => b.len(),
            Self::I32(b) => b.len(),
            Self::I64(b) => b.len(),
            Self::F64(b) => b.len(),
            Self::Bool(b) => b.len(),
            Self::Date(b) => b.len(),
            Self::Micros(b, _) => b.len(),
            Self::Decimal(b, _, _) => b.len(),
        }
    }
}

/// Builds RecordBatches of a [`TableSpec`] from rows of text fields.
pub struct RowAssembler {
    spec: Arc<TableSpec>,
    schema: SchemaRef,
    builders: Vec<ColumnBuilder>,
}

impl RowAssembler {
    /// An empty assembler for `spec`.
    pub fn new(spec: Arc<TableSpec>) -> Self {
        let builders = spec.columns.iter().map(|c| ColumnBuilder::new(c.column_type)).collect();
        Self { schema: spec.arrow_schema(), spec, builders }
    }

    /// The schema of the batches built.
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// Rows buffered since the last [`RowAssembler::finish`].
    pub fn len(&self) -> usize {
        self.builders.first().map(ColumnBuilder::len).unwrap_or(0)
    }

    /// True when no row is buffered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Checks one row (fields in column order, `None` = no value) and appends it, or returns why it
    /// cannot be stored and appends nothing.
    pub fn push(&mut self, fields: &[Option<&str>]) -> Result<(), FieldError> {
        if fields.len() != self.builders.len() {
            return Err(FieldError {
                kind: RejectKind::MalformedLine,
                column: None,
                message: format!("expected {} fields, found {}", self.builders.len(), fields.len()),
            });
        }
        let mut values = Vec::with_capacity(fields.len());
        for (column, field) in self.spec.columns.iter().zip(fields) {
            let value = match field {
                None => Value::Null,
                Some(text) => parse_value(text, column.column_type, column.format.as_deref()).map_err(|message| FieldError {
                    kind: RejectKind::WrongType,
                    column: Some(column.name.clone()),
                    message: format!("'{}' is not a valid {}: {message}", truncate(text, 80), column.column_type),
                })?,
            };
            if column.required && matches!(value, Value::Null) {
                return Err(FieldError {
                    kind: RejectKind::MissingRequired,
                    column: Some(column.name.clone()),
                    message: format!("required column '{}' has no value", column.name),
                });
            }
            values.push(value);
        }
        for (builder, value) in self.builders.iter_mut().zip(&values) {
            builder.append(value);
        }
        Ok(())
    }

    /// The rows buffered so far as one batch; the assembler starts empty again.
    pub fn finish(&mut self) -> RecordBatch {
        let columns: Vec<ArrayRef> = self.builders.iter_mut().map(ColumnBuilder::finish).collect();
        RecordBatch::try_new(self.schema.clone(), columns).expect("builders follow the schema")
    }
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

fn parse_value<'a>(text: &'a str, t: ColumnType, format: Option<&str>) -> Result<Value<'a>, String> {
    if t == ColumnType::String {
        return Ok(Value::Str(text));
    }
    let s = text.trim();
    if s.is_empty() {
        return Ok(Value::Null);
    }
    Ok(match t {
        ColumnType::String => unreachable!("handled above"),
        ColumnType::Int32 => Value::I32(s.parse().map_err(|e: std::num::ParseIntError| e.to_string())?),
        ColumnType::Int64 => Value::I64(s.parse().map_err(|e: std::num::ParseIntError| e.to_string())?),
        ColumnType::Float64 => Value::F64(s.parse().map_err(|e: std::num::ParseFloatError| e.to_string())?),
        ColumnType::Bool => Value::Bool(match s.to_ascii_lowercase().as_str() {
            "true" | "t" | "1" | "yes" | "y" => true,
            "false" | "f" | "0" | "no" | "n" => false,
            _ => return Err("expected true/false".into()),
        }),
        ColumnType::Date => Value::Date(parse_date(s, format)?),
        ColumnType::Timestamp | ColumnType::TimestampTz => Value::Micros(parse_timestamp_micros(s, format)?),
        ColumnType::Decimal(p, scale) => {
            let v = parse_decimal::<Decimal128Type>(s, p, scale).map_err(|e| e.to_string())?;
            Decimal128Type::validate_decimal_precision(v, p, scale).map_err(|e| e.to_string())?;
            Value::Decimal(v)
        }
    })
}

const EPOCH_DAYS_FROM_CE: i32 = 719_163;

fn parse_date(s: &str, format: Option<&str>) -> Result<i32, String> {
    let date = match format {
        Some(f) => NaiveDate::parse_from_str(s, f).map_err(|e| format!("{e} (format {f})"))?,
        None => NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|e| format!("{e} (expected YYYY-MM-DD)"))?,
    };
    Ok(chrono::Datelike::num_days_from_ce(&date) - EPOCH_DAYS_FROM_CE)
}

/// Timestamps as microseconds since the epoch; a value with an offset is converted to UTC, one
/// without is taken as it is (UTC for `timestamptz`).
pub fn parse_timestamp_micros(s: &str, format: Option<&str>) -> Result<i64, String> {
    if let Some(f) = format {
        if let Ok(dt) = DateTime::parse_from_str(s, f) {
            return Ok(dt.timestamp_micros());
        }
        return NaiveDateTime::parse_from_str(s, f)
            .map(|n| n.and_utc().timestamp_micros())
            .map_err(|e| format!("{e} (format {f})"));
    }
    if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
        return Ok(dt.timestamp_micros());
    }
    // PostgreSQL's text form of timestamptz: `2024-01-01 10:00:00.5+00`.
    if let Ok(dt) = DateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f%#z") {
        return Ok(dt.timestamp_micros());
    }
    for f in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
        if let Ok(n) = NaiveDateTime::parse_from_str(s, f) {
            return Ok(n.and_utc().timestamp_micros());
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).expect("midnight").and_utc().timestamp_micros());
    }
    Err("expected an ISO 8601 timestamp such as 2024-01-31 13:45:00".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table_spec::TableSpec;
    use arrow::array::{Array, Decimal128Array, Int64Array, TimestampMicrosecondArray};

    #[test]
    fn a_bad_value_rejects_the_row_and_appends_nothing() {
        let spec = TableSpec::from_yaml_str(
            "key: [id]\ncolumns:\n  - {name: id, type: int64}\n  - {name: price, type: 'decimal(6,2)'}\n  - {name: at, type: timestamptz}\n",
        )
        .unwrap();
        let mut rows = RowAssembler::new(Arc::new(spec));
        rows.push(&[Some("1"), Some("12.5"), Some("2024-01-01 10:00:00+02")]).unwrap();
        let e = rows.push(&[Some("2"), Some("12.x"), None]).unwrap_err();
        assert_eq!((e.kind, e.column.as_deref()), (RejectKind::WrongType, Some("price")));
        let e = rows.push(&[None, Some("1"), None]).unwrap_err();
        assert_eq!((e.kind, e.column.as_deref()), (RejectKind::MissingRequired, Some("id")));
        assert_eq!(rows.push(&[Some("3")]).unwrap_err().kind, RejectKind::MalformedLine);
        assert_eq!(rows.push(&[Some("4"), Some("99999.00"), None]).unwrap_err().kind, RejectKind::WrongType);
        let batch = rows.finish();
        assert_eq!(batch.num_rows(), 1);
        let ids = batch.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
        assert_eq!(ids.value(0), 1);
        let prices = batch.column(1).as_any().downcast_ref::<Decimal128Array>().unwrap();
        assert_eq!(prices.value(0), 1250);
        let at = batch.column(2).as_any().downcast_ref::<TimestampMicrosecondArray>().unwrap();
        assert_eq!(at.value(0), 1_704_096_000_000_000);
        assert!(rows.is_empty());
    }
}
