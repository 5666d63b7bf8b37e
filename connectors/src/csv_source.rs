//! CSV files (a file, a directory or a glob; plain, gzip or zstd) as an ingest source: one partition
//! per file, parsed row by row so a bad row is rejected with its line and column.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use csv::ByteRecord;

use crate::dead_letter::Reject;
use crate::ingest::{ChunkSender, PartitionReader, PendingChunk, SourcePlan, TargetTable};
use crate::table_spec::{ColumnSpec, ColumnType, TableSpec};
use crate::typed_row::{FieldError, RejectKind, parse_timestamp_micros};

/// How CSV files are laid out.
#[derive(Debug, Clone)]
pub struct CsvOptions {
    /// The first line names the columns (matched to the spec by name).
    pub header: bool,
    /// Field delimiter.
    pub delimiter: u8,
    /// Quote character.
    pub quote: u8,
}

impl Default for CsvOptions {
    fn default() -> Self {
        Self { header: true, delimiter: b',', quote: b'"' }
    }
}

/// The files `path` names: itself, the files of a directory (sorted, hidden ones skipped) or the
/// matches of a glob (sorted). No file at all is an error.
pub fn list_files(path: &str) -> Result<Vec<PathBuf>> {
    let p = Path::new(path);
    let files: Vec<PathBuf> = if p.is_file() {
        vec![p.to_path_buf()]
    } else if p.is_dir() {
        std::fs::read_dir(p)
            .with_context(|| format!("cannot list {path}"))?
            .flatten()
            .map(|e| e.path())
            .filter(|f| f.is_file() && !f.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(['.', '_'])))
            .collect()
    } else if path.contains(['*', '?', '[']) {
        glob::glob(path)
            .with_context(|| format!("bad glob {path}"))?
            .filter_map(|e| e.ok())
            .filter(|f| f.is_file())
            .collect()
    } else {
        bail!("{path}: no such file or directory");
    };
    // Absolute paths: the dead-letter table names the same file the same way from any directory.
    let mut files: Vec<PathBuf> = files.into_iter().map(|f| std::fs::canonicalize(&f).unwrap_or(f)).collect();
    files.sort();
    if files.is_empty() {
        bail!("{path}: no files to ingest");
    }
    Ok(files)
}

/// Opens a file, decompressing by extension (`.gz`, `.zst`/`.zstd`).
pub fn open_decoded(path: &Path) -> Result<Box<dyn Read + Send>> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let reader = BufReader::with_capacity(1 << 20, file);
    Ok(match path.extension().and_then(|e| e.to_str()) {
        Some("gz") => Box::new(flate2::read::MultiGzDecoder::new(reader)),
        Some("zst" | "zstd") => Box::new(zstd::Decoder::with_buffer(reader).with_context(|| format!("{}: not a zstd file", path.display()))?),
        _ => Box::new(reader),
    })
}

fn csv_reader(path: &Path, options: &CsvOptions) -> Result<csv::Reader<Box<dyn Read + Send>>> {
    Ok(csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(options.delimiter)
        .quote(options.quote)
        .from_reader(open_decoded(path)?))
}

fn read_error(path: &Path, line: u64, e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("{}: cannot read after line {line} (truncated or corrupt file?): {e}", path.display())
}

fn utf8<'a>(path: &Path, line: u64, column: usize, bytes: &'a [u8]) -> Result<&'a str> {
    std::str::from_utf8(bytes).map_err(|e| {
        anyhow::anyhow!(
            "{}: line {line}, field {}: not valid UTF-8 ({e}); convert the file to UTF-8 (e.g. iconv -f latin1 -t utf-8)",
            path.display(),
            column + 1
        )
    })
}

/// Infers a spec from the header and the first 1,000 rows of `file`: the narrowest of int64,
/// float64, bool, date, timestamp that every value parses as, else string.
pub fn infer_spec(file: &Path, options: &CsvOptions, key: Vec<String>) -> Result<TableSpec> {
    let mut reader = csv_reader(file, options)?;
    let mut records = reader.byte_records();
    let first = match records.next() {
        Some(r) => r.map_err(|e| read_error(file, 0, e))?,
        None => bail!("{}: empty file, nothing to infer a schema from", file.display()),
    };
    let names: Vec<String> = if options.header {
        (0..first.len()).map(|i| utf8(file, 1, i, &first[i]).map(|s| s.trim().to_string())).collect::<Result<_>>()?
    } else {
        (1..=first.len()).map(|i| format!("c{i}")).collect()
    };
    let mut samples: Vec<Vec<String>> = vec![vec![]; names.len()];
    let mut push = |record: &ByteRecord| {
        for (i, field) in record.iter().enumerate().take(names.len()) {
            samples[i].push(String::from_utf8_lossy(field).into_owned());
        }
    };
    if !options.header {
        push(&first);
    }
    for record in records.take(1000) {
        push(&record.map_err(|e| read_error(file, 0, e))?);
    }
    let columns = names
        .into_iter()
        .zip(samples)
        .map(|(name, values)| ColumnSpec { name, column_type: infer_type(&values), required: false, format: None, source: None })
        .collect();
    TableSpec::new(None, columns, key)
}

fn infer_type(values: &[String]) -> ColumnType {
    let present: Vec<&str> = values.iter().map(|v| v.trim()).filter(|v| !v.is_empty()).collect();
    if present.is_empty() {
        return ColumnType::String;
    }
    let all = |f: &dyn Fn(&str) -> bool| present.iter().all(|v| f(v));
    if all(&|v| v.parse::<i64>().is_ok()) {
        ColumnType::Int64
    } else if all(&|v| v.parse::<f64>().is_ok()) {
        ColumnType::Float64
    } else if all(&|v| matches!(v.to_ascii_lowercase().as_str(), "true" | "false")) {
        ColumnType::Bool
    } else if all(&|v| chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d").is_ok()) {
        ColumnType::Date
    } else if all(&|v| parse_timestamp_micros(v, None).is_ok()) {
        ColumnType::Timestamp
    } else {
        ColumnType::String
    }
}

/// One partition per file into `table`.
pub fn plan(table: TargetTable, files: Vec<PathBuf>, options: CsvOptions) -> SourcePlan {
    let label = format!("{} ← {} CSV file(s)", table.name, files.len());
    let partitions = files
        .into_iter()
        .map(|file| {
            let spec = table.spec.clone();
            let options = options.clone();
            let reader: PartitionReader = Box::new(move |tx: ChunkSender| {
                Box::pin(async move {
                    tokio::task::spawn_blocking(move || read_file(&file, spec, &options, tx))
                        .await
                        .context("CSV reader panicked")?
                })
            });
            reader
        })
        .collect();
    SourcePlan { tables: vec![table], partitions, label }
}

/// For each spec column, the index of its field in a record.
fn column_positions(path: &Path, spec: &TableSpec, header: Option<&[String]>) -> Result<Vec<usize>> {
    let Some(header) = header else {
        return Ok((0..spec.columns.len()).collect());
    };
    spec.columns
        .iter()
        .map(|c| {
            let wanted = c.source.as_deref().unwrap_or(&c.name);
            header
                .iter()
                .position(|h| h == wanted)
                .or_else(|| header.iter().position(|h| h.eq_ignore_ascii_case(wanted)))
                .with_context(|| format!("{}: column '{wanted}' is not in the header ({})", path.display(), header.join(", ")))
        })
        .collect()
}

fn read_file(path: &Path, spec: Arc<TableSpec>, options: &CsvOptions, tx: ChunkSender) -> Result<()> {
    let source = path.display().to_string();
    let mut reader = csv_reader(path, options)?;
    let mut record = ByteRecord::new();
    let mut header: Option<Vec<String>> = None;
    let mut last_line = 0u64;
    if options.header {
        if !reader.read_byte_record(&mut record).map_err(|e| read_error(path, 0, e))? {
            bail!("{source}: empty file (no header line)");
        }
        header = Some((0..record.len()).map(|i| utf8(path, 1, i, &record[i]).map(|s| s.trim().to_string())).collect::<Result<_>>()?);
        last_line = 1;
    }
    let positions = column_positions(path, &spec, header.as_deref())?;
    let expected_fields = header.as_ref().map(Vec::len).unwrap_or(spec.columns.len());
    let mut chunk = PendingChunk::new(0, spec.clone());
    loop {
        match reader.read_byte_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => return Err(read_error(path, last_line, e)),
        }
        let line = record.position().map(|p| p.line()).unwrap_or(last_line + 1);
        last_line = line;
        let mut texts = Vec::with_capacity(record.len());
        for i in 0..record.len() {
            texts.push(utf8(path, line, i, &record[i])?);
        }
        let raw = || join_raw(&texts, options);
        if texts.len() != expected_fields {
            let error = FieldError {
                kind: RejectKind::MalformedLine,
                column: None,
                message: format!("expected {expected_fields} fields, found {}", texts.len()),
            };
            chunk.reject(Reject::new(&source, line, error, raw()));
        } else {
            // An empty field is NULL (Spark's default `nullValue`).
            let fields: Vec<Option<&str>> = positions.iter().map(|&p| Some(texts[p]).filter(|t| !t.is_empty())).collect();
            chunk.add(&fields, |e| Reject::new(&source, line, e, raw()));
        }
        if chunk.is_full() && tx.blocking_send(chunk.take()).is_err() {
            return Ok(()); // the writer failed and reports why
        }
    }
    let _ = tx.blocking_send(chunk.take());
    Ok(())
}

/// The record as CSV text again (quoted where needed), for the dead-letter table.
fn join_raw(fields: &[&str], options: &CsvOptions) -> String {
    let delimiter = options.delimiter as char;
    let quote = options.quote as char;
    fields
        .iter()
        .map(|f| {
            if f.contains([delimiter, quote, '\n', '\r']) {
                format!("{quote}{}{quote}", f.replace(quote, &format!("{quote}{quote}")))
            } else {
                f.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(&delimiter.to_string())
}
