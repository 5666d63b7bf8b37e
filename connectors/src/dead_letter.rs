//! Rejected rows and the `<table>__rejected` Delta table they are kept in (Spark's PERMISSIVE mode
//! with `badRecordsPath`, as a queryable table).

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray, TimestampMicrosecondArray, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

use crate::typed_row::{FieldError, RejectKind};

/// Longest raw text kept for one rejected row; longer text is cut (and says so).
const MAX_RAW_CHARS: usize = 4096;

/// One row that was read but not written.
#[derive(Debug, Clone)]
pub struct Reject {
    /// File path, or database and partition, the row came from.
    pub source: String,
    /// 1-based line (files; the CSV header is line 1) or row ordinal (databases, JSON arrays).
    pub line: u64,
    /// The column concerned, if any.
    pub column: Option<String>,
    /// The kind of failure.
    pub kind: RejectKind,
    /// Why, in words.
    pub reason: String,
    /// The row as it was read.
    pub raw: String,
}

impl Reject {
    /// A reject from a [`FieldError`].
    pub fn new(source: &str, line: u64, error: FieldError, raw: String) -> Self {
        Self { source: source.to_string(), line, column: error.column, kind: error.kind, reason: error.message, raw: cut(raw) }
    }
}

fn cut(mut raw: String) -> String {
    if let Some((i, _)) = raw.char_indices().nth(MAX_RAW_CHARS) {
        raw.truncate(i);
        raw.push_str("…[truncated]");
    }
    raw
}

/// The name of the dead-letter table of `table`.
pub fn rejected_table_name(table: &str) -> String {
    format!("{table}__rejected")
}

/// The dead-letter table's schema.
pub fn rejected_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("run_id", DataType::Utf8, true),
        Field::new("ingested_at", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), true),
        Field::new("source", DataType::Utf8, true),
        Field::new("line", DataType::UInt64, true),
        Field::new("column", DataType::Utf8, true),
        Field::new("kind", DataType::Utf8, true),
        Field::new("reason", DataType::Utf8, true),
        Field::new("raw", DataType::Utf8, true),
    ]))
}

/// The rejects of one run as a batch of [`rejected_schema`].
pub fn rejects_batch(run_id: &str, ingested_at_micros: i64, rejects: &[Reject]) -> RecordBatch {
    let n = rejects.len();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec![run_id; n])),
        Arc::new(TimestampMicrosecondArray::from(vec![ingested_at_micros; n]).with_timezone("UTC")),
        Arc::new(StringArray::from_iter_values(rejects.iter().map(|r| r.source.as_str()))),
        Arc::new(UInt64Array::from_iter_values(rejects.iter().map(|r| r.line))),
        Arc::new(StringArray::from_iter(rejects.iter().map(|r| r.column.as_deref()))),
        Arc::new(StringArray::from_iter_values(rejects.iter().map(|r| r.kind.name()))),
        Arc::new(StringArray::from_iter_values(rejects.iter().map(|r| r.reason.as_str()))),
        Arc::new(StringArray::from_iter_values(rejects.iter().map(|r| r.raw.as_str()))),
    ];
    RecordBatch::try_new(rejected_schema(), columns).expect("columns follow the schema")
}
