//! JSON as an ingest source: NDJSON (one document per line) or a file holding one document or an
//! array of documents, flattened into one or more tables by a declared mapping, e.g. for the
//! seed-004 YouTube playlist export:
//!
//! ```yaml
//! tables:
//!   - name: playlists
//!     rows: "$"                      # one row per document (the first table must be this)
//!     key: [playlist_id]
//!     required_paths: [items]        # a document without these is rejected whole
//!     columns:
//!       - {name: playlist_id, path: playlist_id, required: true}
//!   - name: media_item_metadata_log
//!     rows: "items[*].media_item.metadata_log[*]"   # one row per element of a nested array
//!     key: [media_item_id, observed_at]
//!     columns:
//!       - {name: media_item_id, path: "^.media_item.id"}   # ^ = the enclosing array element
//!       - {name: playlist_id, path: "$.playlist_id"}       # $ = the document
//!       - {name: observed_at, path: observed_at, type: timestamptz}
//! ```
//!
//! A document that does not parse, or whose first-table row is rejected, goes whole to the first
//! table's dead-letter table; a nested row that is rejected goes to its own table's.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail, ensure};
use serde::Deserialize;
use serde_json::Value;

use crate::csv_source::open_decoded;
use crate::dead_letter::Reject;
use crate::ingest::{ChunkSender, PartitionReader, PendingChunk, SourcePlan, TargetTable};
use crate::table_spec::{ColumnSpec, ColumnType, TableSpec};
use crate::typed_row::{FieldError, RejectKind};

/// One step of a row path: a field, or every element of an array field.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Field(String),
    Each(String),
}

/// Which scope a column path starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Anchor {
    /// The current row's element.
    Row,
    /// The document root (`$.`).
    Root,
    /// `n` array levels up (`^.`, `^^.`).
    Up(usize),
}

#[derive(Debug, Clone)]
struct ColumnPath {
    anchor: Anchor,
    fields: Vec<String>,
}

impl ColumnPath {
    fn parse(text: &str) -> Self {
        let (anchor, rest) = if let Some(r) = text.strip_prefix("$.") {
            (Anchor::Root, r)
        } else if text.starts_with('^') {
            let ups = text.chars().take_while(|&c| c == '^').count();
            (Anchor::Up(ups), text[ups..].trim_start_matches('.'))
        } else {
            (Anchor::Row, text)
        };
        Self { anchor, fields: rest.split('.').filter(|s| !s.is_empty()).map(str::to_string).collect() }
    }

    fn resolve<'a>(&self, scopes: &[&'a Value]) -> Option<&'a Value> {
        let start = match self.anchor {
            Anchor::Row => scopes.last().copied(),
            Anchor::Root => scopes.first().copied(),
            Anchor::Up(n) => scopes.len().checked_sub(n + 1).and_then(|i| scopes.get(i).copied()),
        }?;
        self.fields.iter().try_fold(start, |v, f| v.get(f))
    }
}

/// One table of a mapping.
#[derive(Debug, Clone)]
pub struct JsonTable {
    /// The table and its schema.
    pub target: TargetTable,
    steps: Vec<Step>,
    paths: Vec<ColumnPath>,
    required_paths: Vec<ColumnPath>,
}

/// How documents become tables.
#[derive(Debug, Clone)]
pub struct JsonMapping {
    /// Tables in order; the first has one row per document.
    pub tables: Vec<JsonTable>,
}

#[derive(Deserialize)]
struct MappingYaml {
    tables: Vec<TableYaml>,
}

#[derive(Deserialize)]
struct TableYaml {
    name: String,
    #[serde(default = "root_path")]
    rows: String,
    #[serde(default)]
    key: Vec<String>,
    #[serde(default)]
    required_paths: Vec<String>,
    columns: Vec<ColumnYaml>,
}

#[derive(Deserialize)]
struct ColumnYaml {
    name: String,
    #[serde(rename = "type", default = "string_type")]
    column_type: String,
    #[serde(default)]
    required: bool,
    #[serde(default)]
    format: Option<String>,
    #[serde(default)]
    path: Option<String>,
}

fn root_path() -> String {
    "$".into()
}

fn string_type() -> String {
    "string".into()
}

fn parse_steps(rows: &str) -> Result<Vec<Step>> {
    let rest = rows.strip_prefix('$').unwrap_or(rows).trim_start_matches('.');
    rest.split('.')
        .filter(|s| !s.is_empty())
        .map(|s| match s.strip_suffix("[*]") {
            Some(f) if !f.is_empty() => Ok(Step::Each(f.to_string())),
            Some(_) => bail!("row path '{rows}': '[*]' needs a field name"),
            None => Ok(Step::Field(s.to_string())),
        })
        .collect()
}

impl JsonMapping {
    /// Reads a mapping file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read mapping {}", path.display()))?;
        Self::from_yaml_str(&text).with_context(|| format!("mapping {}", path.display()))
    }

    /// Parses a mapping from YAML text.
    pub fn from_yaml_str(text: &str) -> Result<Self> {
        let yaml: MappingYaml = serde_yaml::from_str(text)?;
        let tables = yaml
            .tables
            .into_iter()
            .map(|t| {
                let columns = t
                    .columns
                    .into_iter()
                    .map(|c| {
                        Ok(ColumnSpec {
                            column_type: ColumnType::parse(&c.column_type).with_context(|| format!("{}.{}", t.name, c.name))?,
                            source: Some(c.path.unwrap_or_else(|| c.name.clone())),
                            name: c.name,
                            required: c.required,
                            format: c.format,
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                let spec = TableSpec::new(Some(t.name.clone()), columns, t.key).with_context(|| format!("table '{}'", t.name))?;
                Ok(JsonTable::new(t.name, Arc::new(spec), parse_steps(&t.rows)?, t.required_paths.iter().map(|p| ColumnPath::parse(p)).collect()))
            })
            .collect::<Result<Vec<_>>>()?;
        ensure!(!tables.is_empty(), "a mapping needs at least one table");
        ensure!(tables[0].steps.is_empty(), "the first table of a mapping must have `rows: \"$\"` (one row per document)");
        Ok(Self { tables })
    }

    /// A single flat table: each document is a row; column paths are the spec's `source` (a dotted
    /// path) or the column name.
    pub fn single(name: String, spec: Arc<TableSpec>) -> Self {
        Self { tables: vec![JsonTable::new(name, spec, vec![], vec![])] }
    }

    /// Prefixes every table name (e.g. `yt_` → `yt_playlists`).
    pub fn with_prefix(mut self, prefix: &str) -> Self {
        for t in &mut self.tables {
            t.target.name = format!("{prefix}{}", t.target.name);
        }
        self
    }
}

impl JsonTable {
    fn new(name: String, spec: Arc<TableSpec>, steps: Vec<Step>, required_paths: Vec<ColumnPath>) -> Self {
        let paths = spec.columns.iter().map(|c| ColumnPath::parse(c.source.as_deref().unwrap_or(&c.name))).collect();
        Self { target: TargetTable { name, spec }, steps, paths, required_paths }
    }
}

/// One partition per file, filling every table of `mapping`.
pub fn plan(mapping: JsonMapping, files: Vec<PathBuf>) -> SourcePlan {
    let mapping = Arc::new(mapping);
    let label = format!("{} ← {} JSON file(s)", mapping.tables[0].target.name, files.len());
    let partitions = files
        .into_iter()
        .map(|file| {
            let mapping = mapping.clone();
            let reader: PartitionReader = Box::new(move |tx: ChunkSender| {
                Box::pin(async move {
                    tokio::task::spawn_blocking(move || read_file(&file, &mapping, tx)).await.context("JSON reader panicked")?
                })
            });
            reader
        })
        .collect();
    SourcePlan { tables: mapping.tables.iter().map(|t| t.target.clone()).collect(), partitions, label }
}

/// Text of a JSON value as a field: strings as they are, other scalars printed, objects and arrays
/// as JSON text; null and missing are no value.
fn field_text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        other => Some(other.to_string()),
    }
}

/// Per-table pending chunks of one partition, sent every [`DOCS_PER_FLUSH`] documents.
struct Buffers {
    chunks: Vec<PendingChunk>,
    pending: usize,
}

/// Documents between sends: one document can hold hundreds of nested rows.
const DOCS_PER_FLUSH: usize = 8_192;

impl Buffers {
    fn new(mapping: &JsonMapping) -> Self {
        Self { chunks: mapping.tables.iter().enumerate().map(|(t, table)| PendingChunk::new(t, table.target.spec.clone())).collect(), pending: 0 }
    }

    /// Counts one document; sends every table's chunk when enough have accumulated (or `force`).
    /// False when the writer is gone.
    fn document_done(&mut self, tx: &ChunkSender, force: bool) -> bool {
        self.pending += 1;
        if !force && self.pending < DOCS_PER_FLUSH {
            return true;
        }
        self.pending = 0;
        self.chunks.iter_mut().all(|c| tx.blocking_send(c.take()).is_ok())
    }
}

fn read_file(path: &Path, mapping: &JsonMapping, tx: ChunkSender) -> Result<()> {
    let source = path.display().to_string();
    let mut buffers = Buffers::new(mapping);
    let ndjson = matches!(
        path.file_name().and_then(|n| n.to_str()).map(|n| n.trim_end_matches(".gz").trim_end_matches(".zst")),
        Some(n) if n.ends_with(".ndjson") || n.ends_with(".jsonl")
    );
    let mut reader = open_decoded(path)?;
    if ndjson {
        let mut lines = BufReader::new(reader);
        let mut line = Vec::new();
        let mut number = 0u64;
        loop {
            line.clear();
            let n = lines.read_until(b'\n', &mut line).map_err(|e| {
                anyhow::anyhow!("{source}: cannot read after line {number} (truncated or corrupt?): {e}")
            })?;
            if n == 0 {
                break;
            }
            number += 1;
            // A line that is not UTF-8 is a dead letter (kept, lossily decoded), not the end of the file.
            let text = match std::str::from_utf8(&line) {
                Ok(text) => text.trim_end_matches(['\n', '\r']),
                Err(e) => {
                    buffers.chunks[0].reject(Reject::new(
                        &source,
                        number,
                        FieldError { kind: RejectKind::BrokenJson, column: None, message: format!("not valid UTF-8 at byte {}", e.valid_up_to()) },
                        String::from_utf8_lossy(&line).trim_end_matches(['\n', '\r']).to_string(),
                    ));
                    if !buffers.document_done(&tx, false) {
                        return Ok(());
                    }
                    continue;
                }
            };
            if text.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<Value>(text) {
                Ok(doc) => add_document(&source, number, &doc, text, mapping, &mut buffers),
                Err(e) => buffers.chunks[0].reject(Reject::new(
                    &source,
                    number,
                    FieldError { kind: RejectKind::BrokenJson, column: None, message: format!("not valid JSON: {e}") },
                    text.to_string(),
                )),
            }
            if !buffers.document_done(&tx, false) {
                return Ok(());
            }
        }
    } else {
        // A whole-file document: a truncated file cannot be parsed at all, so it fails by name.
        let mut text = String::new();
        reader
            .read_to_string(&mut text)
            .map_err(|e| anyhow::anyhow!("{source}: cannot read (corrupt or not UTF-8?): {e}"))?;
        let doc: Value = serde_json::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{source}: not a valid JSON document (truncated?): {e}"))?;
        let docs: Vec<&Value> = match &doc {
            Value::Array(items) => items.iter().collect(),
            other => vec![other],
        };
        for (i, d) in docs.into_iter().enumerate() {
            add_document(&source, i as u64 + 1, d, &d.to_string(), mapping, &mut buffers);
            if !buffers.document_done(&tx, false) {
                return Ok(());
            }
        }
    }
    buffers.document_done(&tx, true);
    Ok(())
}

/// Extracts every table's rows from one document.
fn add_document(source: &str, line: u64, doc: &Value, raw: &str, mapping: &JsonMapping, buffers: &mut Buffers) {
    let root = &mapping.tables[0];
    let scopes = [doc];
    let missing = root.required_paths.iter().find(|p| p.resolve(&scopes).is_none_or(Value::is_null));
    let accepted = match missing {
        Some(p) => {
            let error = FieldError {
                kind: RejectKind::MissingRequired,
                column: Some(p.fields.join(".")),
                message: format!("required field '{}' is missing", p.fields.join(".")),
            };
            buffers.chunks[0].reject(Reject::new(source, line, error, raw.to_string()));
            false
        }
        None => {
            let texts = row_texts(root, &scopes);
            buffers.chunks[0].add(&as_fields(&texts), |e| Reject::new(source, line, e, raw.to_string()))
        }
    };
    if !accepted {
        // The document's children would be orphans: the whole document is kept aside.
        return;
    }
    for (t, table) in mapping.tables.iter().enumerate().skip(1) {
        let chunk = &mut buffers.chunks[t];
        let mut scopes = vec![doc];
        walk(&table.steps, &mut scopes, doc, &mut |scopes| {
            let texts = row_texts(table, scopes);
            chunk.add(&as_fields(&texts), |e| Reject::new(source, line, e, scopes.last().map(|v| v.to_string()).unwrap_or_default()));
        });
    }
}

fn row_texts(table: &JsonTable, scopes: &[&Value]) -> Vec<Option<String>> {
    table.paths.iter().map(|p| field_text(p.resolve(scopes))).collect()
}

fn as_fields(texts: &[Option<String>]) -> Vec<Option<&str>> {
    texts.iter().map(|t| t.as_deref()).collect()
}

/// Calls `emit` with the scope stack of every row the steps reach: the document, each enclosing
/// array element, then the row's own value.
fn walk<'a>(steps: &[Step], scopes: &mut Vec<&'a Value>, current: &'a Value, emit: &mut dyn FnMut(&[&'a Value])) {
    let Some((step, rest)) = steps.split_first() else {
        if scopes.last().is_some_and(|last| std::ptr::eq(*last, current)) {
            emit(scopes);
        } else {
            scopes.push(current);
            emit(scopes);
            scopes.pop();
        }
        return;
    };
    match step {
        Step::Field(f) => {
            if let Some(next) = current.get(f) {
                walk(rest, scopes, next, emit);
            }
        }
        Step::Each(f) => {
            if let Some(Value::Array(items)) = current.get(f) {
                for item in items {
                    scopes.push(item);
                    walk(rest, scopes, item, emit);
                    scopes.pop();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_rows_see_their_parents_and_the_document() {
        let mapping = JsonMapping::from_yaml_str(
            r#"
tables:
  - name: p
    key: [id]
    columns: [{name: id, path: id}]
  - name: logs
    rows: "items[*].media.log[*]"
    columns:
      - {name: pid, path: "$.id"}
      - {name: item, path: "^.media.id"}
      - {name: n, path: n, type: int64, required: true}
"#,
        )
        .unwrap();
        let doc: Value = serde_json::from_str(
            r#"{"id": "P1", "items": [{"media": {"id": "m1", "log": [{"n": 1}, {"n": "x"}]}}, {"media": {"id": "m2", "log": [{"n": 3}]}}]}"#,
        )
        .unwrap();
        let mut buffers = Buffers::new(&mapping);
        add_document("f", 1, &doc, "", &mapping, &mut buffers);
        let chunks: Vec<_> = buffers.chunks.iter_mut().map(PendingChunk::take).collect();
        assert_eq!((chunks[0].rows_read, chunks[1].rows_read), (1, 3));
        assert_eq!(chunks[1].rejects.len(), 1);
        assert_eq!(chunks[1].rejects[0].column.as_deref(), Some("n"));
        let logs = chunks[1].batch.clone().unwrap();
        assert_eq!(logs.num_rows(), 2);
        let items = logs.column(1).as_any().downcast_ref::<arrow::array::StringArray>().unwrap();
        assert_eq!((items.value(0), items.value(1)), ("m1", "m2"));
    }
}
