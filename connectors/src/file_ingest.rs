//! A file ingest described by values rather than command-line flags: what `backbeat ingest csv|json`
//! and a pipeline's `ingest:` step both turn into a [`SourcePlan`], so the two cannot drift apart.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};

use crate::csv_source::{self, CsvOptions};
use crate::ingest::{SourcePlan, TargetTable};
use crate::json_source::{self, JsonMapping};
use crate::table_spec::TableSpec;

/// The layout of the files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    /// CSV (optionally .gz or .zst).
    Csv,
    /// NDJSON or JSON documents.
    Json,
}

impl std::str::FromStr for FileFormat {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "csv" => Ok(Self::Csv),
            "json" => Ok(Self::Json),
            other => bail!("unknown ingest format '{other}' (csv or json)"),
        }
    }
}

/// One file ingest.
#[derive(Debug, Clone)]
pub struct FileIngest {
    /// CSV or JSON.
    pub format: FileFormat,
    /// File, directory or glob.
    pub path: String,
    /// Declared schema (YAML); CSV without one is inferred.
    pub schema: Option<PathBuf>,
    /// JSON mapping of nested arrays to tables.
    pub mapping: Option<PathBuf>,
    /// Target table [default: the spec's `table:`].
    pub table: Option<String>,
    /// Prefix of a mapping's table names.
    pub table_prefix: String,
    /// Key columns for merge (override the spec's key).
    pub key: Vec<String>,
    /// CSV layout.
    pub csv: CsvOptions,
}

impl FileIngest {
    /// A CSV or JSON ingest of `path` with defaults for everything else.
    pub fn new(format: FileFormat, path: impl Into<String>) -> Self {
        Self { format, path: path.into(), schema: None, mapping: None, table: None, table_prefix: String::new(), key: vec![], csv: CsvOptions::default() }
    }

    fn spec(&self) -> Result<Option<TableSpec>> {
        let Some(path) = &self.schema else { return Ok(None) };
        let spec = TableSpec::load(path)?;
        Ok(Some(if self.key.is_empty() { spec } else { TableSpec::new(spec.table, spec.columns, self.key.clone())? }))
    }

    fn table_name(&self, spec: Option<&TableSpec>) -> Result<String> {
        self.table.clone().or_else(|| spec.and_then(|s| s.table.clone())).context("name the target table (--table, `table:`, or `table:` in the spec)")
    }

    /// Lists the files and builds the plan; a missing file or a bad spec fails here, before any read.
    pub fn plan(&self) -> Result<SourcePlan> {
        let files = csv_source::list_files(&self.path)?;
        Ok(match self.format {
            FileFormat::Csv => {
                if self.mapping.is_some() {
                    bail!("a JSON mapping cannot be used with CSV ({})", self.path);
                }
                let spec = match self.spec()? {
                    Some(s) => s,
                    None => csv_source::infer_spec(&files[0], &self.csv, self.key.clone())?,
                };
                let table = self.table_name(Some(&spec))?;
                csv_source::plan(TargetTable { name: table, spec: Arc::new(spec) }, files, self.csv.clone())
            }
            FileFormat::Json => {
                let mapping = match &self.mapping {
                    Some(m) if self.schema.is_some() => bail!("give a JSON ingest a mapping or a schema, not both ({})", m.display()),
                    Some(m) => JsonMapping::load(m)?.with_prefix(&self.table_prefix),
                    None => {
                        let spec = self.spec()?.context("JSON needs a mapping or a schema (no inference for JSON)")?;
                        JsonMapping::single(self.table_name(Some(&spec))?, Arc::new(spec))
                    }
                };
                json_source::plan(mapping, files)
            }
        })
    }
}
