//! `backbeat tables`: what the lake holds.

use std::sync::Arc;

use anyhow::Result;
use arrow::array::{ArrayRef, RecordBatch, StringArray, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema};
use backbeat_cluster::lake_catalog::{LakeCatalog, LakeRoot};

use crate::result_output::{OutputFormat, ResultWriter};

/// Runs `backbeat tables`.
pub async fn run(lake_root: LakeRoot, format: OutputFormat) -> Result<()> {
    lake_root.check().await?;
    let lake = LakeCatalog::open_root(lake_root)?;
    let mut summaries = Vec::new();
    for name in lake.table_names_in_lake().await? {
        summaries.push(lake.summarize(&name).await?);
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("table", DataType::Utf8, false),
        Field::new("format", DataType::Utf8, false),
        Field::new("version", DataType::UInt64, true),
        Field::new("rows", DataType::UInt64, true),
        Field::new("files", DataType::UInt64, false),
        Field::new("bytes", DataType::UInt64, false),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(summaries.iter().map(|s| s.name.as_str()))),
        Arc::new(StringArray::from_iter_values(summaries.iter().map(|s| format!("{:?}", s.format).to_lowercase()))),
        Arc::new(UInt64Array::from_iter(summaries.iter().map(|s| s.version))),
        Arc::new(UInt64Array::from_iter(summaries.iter().map(|s| s.rows))),
        Arc::new(UInt64Array::from_iter_values(summaries.iter().map(|s| s.files))),
        Arc::new(UInt64Array::from_iter_values(summaries.iter().map(|s| s.bytes))),
    ];
    let batch = RecordBatch::try_new(schema.clone(), columns)?;
    let mut out = ResultWriter::new(format, None)?;
    out.write(&schema, &[batch])?;
    out.finish()
}
