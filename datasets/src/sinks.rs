//! Streaming writers for generated rows: Parquet, CSV and NDJSON, each flushed in small batches so a
//! scale-100 table never sits in memory. CSV and NDJSON sinks can corrupt a given fraction of rows
//! (`--dirty-rate`) and record each corruption, so ingest tests know exactly what to reject.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::SchemaRef;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use rand::Rng as _;
use serde::Serialize;

use crate::seeded_rng::{Rng, stream};

/// Rows per Parquet batch and row group slice.
pub const BATCH_ROWS: usize = 8192;

/// One deliberately corrupted row, as recorded in the manifest.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct DirtyRow {
    /// File name relative to the output directory.
    pub file: String,
    /// 1-based line number in the file (the CSV header is line 1).
    pub line: u64,
    /// `malformed_line`, `wrong_type`, `missing_required` or `broken_json`.
    pub kind: String,
    /// The column concerned, where there is one.
    pub column: Option<String>,
}

/// Writes RecordBatches to one Parquet file.
pub struct ParquetSink {
    writer: ArrowWriter<BufWriter<File>>,
    schema: SchemaRef,
    /// Rows written so far.
    pub rows: u64,
}

impl ParquetSink {
    /// Creates `path` for rows of `schema`.
    pub fn create(path: &Path, schema: SchemaRef) -> Result<Self> {
        let file = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .set_max_row_group_row_count(Some(128 * 1024))
            .build();
        let writer = ArrowWriter::try_new(BufWriter::new(file), schema.clone(), Some(props))?;
        Ok(Self { writer, schema, rows: 0 })
    }

    /// Writes one batch of columns (in schema order).
    pub fn write(&mut self, columns: Vec<ArrayRef>) -> Result<()> {
        let batch = RecordBatch::try_new(self.schema.clone(), columns)?;
        self.rows += batch.num_rows() as u64;
        self.writer.write(&batch)?;
        Ok(())
    }

    /// Finishes the file.
    pub fn close(self) -> Result<()> {
        self.writer.close()?;
        Ok(())
    }
}

/// How a column of a CSV file may be corrupted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    /// Free text: can only be emptied, and only if required.
    Text,
    /// A number: can get letters appended.
    Number,
    /// A timestamp or date: can get garbage in place.
    Timestamp,
}

/// A CSV file with a header; optionally corrupts `dirty_rate` of its rows.
pub struct CsvSink {
    file_name: String,
    writer: csv::Writer<BufWriter<File>>,
    columns: Vec<(&'static str, ColumnKind, bool)>,
    dirty_rate: f64,
    dirt: Rng,
    line: u64,
    /// Rows written (clean or dirty), excluding the header.
    pub rows: u64,
    /// The rows corrupted so far.
    pub dirty: Vec<DirtyRow>,
}

impl CsvSink {
    /// Creates `dir/file_name` with `columns` as (name, kind, required).
    pub fn create(dir: &Path, file_name: &str, columns: Vec<(&'static str, ColumnKind, bool)>, dirty_rate: f64, seed: u64) -> Result<Self> {
        let path = dir.join(file_name);
        let file = File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
        // Flexible: a malformed line (a field too many or too few) is one of the corruptions.
        let mut writer = csv::WriterBuilder::new().flexible(true).from_writer(BufWriter::new(file));
        writer.write_record(columns.iter().map(|c| c.0))?;
        Ok(Self {
            file_name: file_name.to_string(),
            writer,
            columns,
            dirty_rate,
            dirt: stream(seed, &format!("dirt/{file_name}"), 0),
            line: 1,
            rows: 0,
            dirty: vec![],
        })
    }

    /// Writes one row (one value per column, already formatted).
    pub fn write(&mut self, mut record: Vec<String>) -> Result<()> {
        self.line += 1;
        self.rows += 1;
        if self.dirty_rate > 0.0 && self.dirt.random_bool(self.dirty_rate) {
            let (kind, column) = self.corrupt(&mut record);
            self.dirty.push(DirtyRow { file: self.file_name.clone(), line: self.line, kind: kind.into(), column });
        }
        self.writer.write_record(&record)?;
        Ok(())
    }

    fn corrupt(&mut self, record: &mut Vec<String>) -> (&'static str, Option<String>) {
        let typed: Vec<usize> = (0..self.columns.len()).filter(|&i| self.columns[i].1 != ColumnKind::Text).collect();
        let required: Vec<usize> = (0..self.columns.len()).filter(|&i| self.columns[i].2).collect();
        match self.dirt.random_range(0..3) {
            0 if !typed.is_empty() => {
                let i = typed[self.dirt.random_range(0..typed.len())];
                record[i] = match self.columns[i].1 {
                    ColumnKind::Number => format!("{}x", record[i]),
                    _ => "not-a-date".to_string(),
                };
                ("wrong_type", Some(self.columns[i].0.to_string()))
            }
            1 if !required.is_empty() => {
                let i = required[self.dirt.random_range(0..required.len())];
                record[i].clear();
                ("missing_required", Some(self.columns[i].0.to_string()))
            }
            _ => {
                // A line with one field too many or too few.
                if self.dirt.random_bool(0.5) || record.len() < 2 {
                    record.push("extra".to_string());
                } else {
                    record.pop();
                }
                ("malformed_line", None)
            }
        }
    }

    /// Finishes the file and returns the corrupted rows.
    pub fn close(mut self) -> Result<Vec<DirtyRow>> {
        self.writer.flush()?;
        Ok(self.dirty)
    }
}

/// Newline-delimited JSON, one document per line; optionally breaks `dirty_rate` of the lines.
pub struct NdjsonSink {
    file_name: String,
    writer: BufWriter<File>,
    dirty_rate: f64,
    dirt: Rng,
    required: Vec<&'static str>,
    /// Lines written.
    pub rows: u64,
    /// The lines corrupted so far.
    pub dirty: Vec<DirtyRow>,
}

impl NdjsonSink {
    /// Creates `dir/file_name`; `required` names top-level fields a corruption may remove.
    pub fn create(dir: &Path, file_name: &str, required: Vec<&'static str>, dirty_rate: f64, seed: u64) -> Result<Self> {
        let path = dir.join(file_name);
        let file = File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
        Ok(Self {
            file_name: file_name.to_string(),
            writer: BufWriter::new(file),
            dirty_rate,
            dirt: stream(seed, &format!("dirt/{file_name}"), 0),
            required,
            rows: 0,
            dirty: vec![],
        })
    }

    /// Writes one document.
    pub fn write(&mut self, mut doc: serde_json::Value) -> Result<()> {
        self.rows += 1;
        let mut text = None;
        if self.dirty_rate > 0.0 && self.dirt.random_bool(self.dirty_rate) {
            let (kind, column) = if self.dirt.random_bool(0.5) || self.required.is_empty() {
                let full = serde_json::to_string(&doc)?;
                let cut = self.dirt.random_range(1..full.len().max(2));
                let cut = (0..=cut).rev().find(|&i| full.is_char_boundary(i)).unwrap_or(0);
                text = Some(full[..cut].to_string());
                ("broken_json", None)
            } else {
                let field = self.required[self.dirt.random_range(0..self.required.len())];
                if let Some(obj) = doc.as_object_mut() {
                    obj.remove(field);
                }
                ("missing_required", Some(field.to_string()))
            };
            self.dirty.push(DirtyRow { file: self.file_name.clone(), line: self.rows, kind: kind.into(), column });
        }
        match text {
            Some(t) => self.writer.write_all(t.as_bytes())?,
            None => serde_json::to_writer(&mut self.writer, &doc)?,
        }
        self.writer.write_all(b"\n")?;
        Ok(())
    }

    /// Finishes the file and returns the corrupted lines.
    pub fn close(mut self) -> Result<Vec<DirtyRow>> {
        self.writer.flush()?;
        Ok(self.dirty)
    }
}

/// A directory for one dataset's files.
pub fn dataset_dir(out: &Path, name: &str) -> Result<PathBuf> {
    let dir = out.join(name);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

/// Shorthand for building an Arrow array column from an iterator.
pub fn col<A: arrow::array::Array + 'static>(array: A) -> ArrayRef {
    Arc::new(array)
}
