//! The lake: a root directory (or an `s3://bucket/prefix`, see [`crate::object_storage`]) whose
//! Delta tables and Parquet directories are tables by name.
//!
//! `SELECT * FROM orders` resolves `<lake>/orders/`: a Delta table if it has a `_delta_log`, else a
//! Parquet table if it holds `.parquet` files. Nothing is registered up front: tables are looked up
//! when a query names them, so a table written by another process is visible to the next query.
//!
//! Time travel uses Databricks' `@v` syntax on the table name, quoted because `@` is not an
//! identifier character: `SELECT * FROM "orders@v3"` reads version 3 of `orders`.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Arc, RwLock};

use datafusion::catalog::{SchemaProvider, TableProvider};
use datafusion::common::{DataFusionError, Result};
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};
use datafusion::execution::SessionStateBuilder;
use datafusion::prelude::SessionContext;
use url::Url;

use crate::delta::DeltaTableProvider;
pub use crate::object_storage::LakeRoot;

/// Where a lake table lives and in which format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableFormat {
    /// A directory with a `_delta_log`.
    Delta,
    /// A directory of Parquet files (Hive-style partition directories are not inferred).
    Parquet,
}

/// A lake root: a local or shared directory, or a prefix in an S3 bucket.
pub struct LakeCatalog {
    root: LakeRoot,
    /// Tables registered in this session only (`CREATE EXTERNAL TABLE`, `register_*`).
    session_tables: RwLock<HashMap<String, Arc<dyn TableProvider>>>,
    /// Tables of an object-store lake seen by the last listing or lookup: DataFusion asks
    /// `table_names` and `table_exist` synchronously, and listing a bucket is a network call.
    seen_remote: RwLock<BTreeSet<String>>,
    /// Used only to infer Parquet directory schemas, which needs a session.
    inference: SessionContext,
}

impl LakeCatalog {
    /// Opens the lake in directory `root`, which must exist.
    pub fn open(root: impl AsRef<Path>) -> Result<Self> {
        Self::open_root(LakeRoot::local(root.as_ref())?)
    }

    /// Opens the lake at `root` (local or object storage).
    pub fn open_root(root: LakeRoot) -> Result<Self> {
        // Schemas must be inferred with the same string types the sessions read with.
        let config = datafusion::prelude::SessionConfig::new().set_bool(crate::session::FORCE_VIEW_TYPES, false);
        let state = SessionStateBuilder::new()
            .with_config(config)
            .with_default_features()
            .with_runtime_env(crate::session::lake_runtime_env()?)
            .build();
        Ok(Self {
            root,
            session_tables: RwLock::default(),
            seen_remote: RwLock::default(),
            inference: SessionContext::new_with_state(state),
        })
    }

    /// Where the lake is.
    pub fn lake_root(&self) -> &LakeRoot {
        &self.root
    }

    /// The lake's directory, or an error naming `what` for features that need a file-system lake.
    pub fn local_root(&self, what: &str) -> Result<&Path> {
        self.root.require_local(what)
    }

    /// The URL of table `name` (whether or not it exists yet), ending in `/`.
    pub fn table_url(&self, name: &str) -> Result<Url> {
        validate_table_name(name)?;
        self.root.child_url(name)
    }

    /// The format of table `name`, or `None` if the lake has no such table.
    pub async fn table_format(&self, name: &str) -> Result<Option<TableFormat>> {
        if validate_table_name(name).is_err() {
            return Ok(None);
        }
        if let Some(root) = self.root.local_dir() {
            return Ok(local_table_format(&root.join(name)));
        }
        let listing = self.root.list(name).await?;
        let format = if listing.common_prefixes.iter().any(|d| d.filename() == Some("_delta_log")) {
            Some(TableFormat::Delta)
        } else if listing.objects.iter().any(|f| f.location.extension() == Some("parquet")) {
            Some(TableFormat::Parquet)
        } else {
            None
        };
        let mut seen = self.seen_remote.write().expect("lock");
        match format {
            Some(_) => seen.insert(name.to_string()),
            None => seen.remove(name),
        };
        Ok(format)
    }

    /// Every table in the lake, sorted by name.
    pub async fn table_names_in_lake(&self) -> Result<Vec<String>> {
        if let Some(root) = self.root.local_dir() {
            return Ok(local_table_names(root));
        }
        let mut names = vec![];
        for name in self.root.child_dirs("").await? {
            if !name.starts_with('.') && !name.starts_with('_') && self.table_format(&name).await?.is_some() {
                names.push(name);
            }
        }
        names.sort();
        *self.seen_remote.write().expect("lock") = names.iter().cloned().collect();
        Ok(names)
    }

    async fn parquet_table(&self, name: &str) -> Result<Arc<dyn TableProvider>> {
        let url = ListingTableUrl::parse(self.table_url(name)?.as_str())?;
        let state = self.inference.state();
        // `ParquetFormat::default()` carries DataFusion's defaults, not the session's options.
        let format = ParquetFormat::default().with_options(state.table_options().parquet.clone());
        let options = ListingOptions::new(Arc::new(format)).with_file_extension(".parquet");
        let inferred = ListingTableConfig::new(url.clone())
            .with_listing_options(options.clone())
            .infer_schema(&state)
            .await?;
        let schema = inferred.file_schema.as_ref().ok_or_else(|| {
            DataFusionError::Plan(format!("no schema could be inferred for Parquet table '{name}'"))
        })?;
        // Files written from Arrow view arrays (DataFusion 55 writes them) carry `Utf8View` in
        // their embedded Arrow schema, which inference keeps whatever the options say; see
        // `session::FORCE_VIEW_TYPES` for why backbeat reads plain strings.
        let config = ListingTableConfig::new(url)
            .with_listing_options(options)
            .with_schema(Arc::new(without_view_types(schema)));
        Ok(Arc::new(ListingTable::try_new(config)?))
    }
}

/// `schema` with string and binary views as their plain types (the Parquet reader casts on read).
fn without_view_types(schema: &arrow::datatypes::Schema) -> arrow::datatypes::Schema {
    use arrow::datatypes::{DataType, Field};
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Utf8View => f.as_ref().clone().with_data_type(DataType::Utf8),
            DataType::BinaryView => f.as_ref().clone().with_data_type(DataType::Binary),
            _ => f.as_ref().clone(),
        })
        .collect();
    arrow::datatypes::Schema::new_with_metadata(fields, schema.metadata().clone())
}

/// One line of `backbeat tables`.
#[derive(Debug, Clone)]
pub struct TableSummary {
    /// Table name.
    pub name: String,
    /// Delta or Parquet.
    pub format: TableFormat,
    /// Current Delta version (Parquet directories have none).
    pub version: Option<u64>,
    /// Rows, from Delta file statistics or Parquet footers (`None` if a file lacks statistics).
    pub rows: Option<u64>,
    /// Live data files.
    pub files: u64,
    /// Bytes of live data files.
    pub bytes: u64,
}

impl LakeCatalog {
    /// Reads table `name`'s version, row, file and byte counts.
    pub async fn summarize(&self, name: &str) -> Result<TableSummary> {
        match self.table_format(name).await? {
            Some(TableFormat::Delta) => {
                let url = self.table_url(name)?;
                let table = crate::delta::load_table(url.as_str(), None).await?;
                let snapshot = table.snapshot().map_err(|e| crate::delta::delta_err(url.as_str(), e))?;
                let mut rows = Some(0u64);
                let (mut files, mut bytes) = (0u64, 0u64);
                for file in snapshot.log_data().iter() {
                    files += 1;
                    bytes += file.size().max(0) as u64;
                    rows = rows.zip(file.num_records()).map(|(a, b)| a + b as u64);
                }
                Ok(TableSummary {
                    name: name.to_string(),
                    format: TableFormat::Delta,
                    version: Some(snapshot.version()),
                    rows,
                    files,
                    bytes,
                })
            }
            Some(TableFormat::Parquet) => {
                let (mut files, mut bytes, mut rows) = (0u64, 0u64, 0u64);
                for object in self.root.files(name).await? {
                    if object.location.extension() != Some("parquet") {
                        continue;
                    }
                    bytes += object.size;
                    // Deprecated in parquet 59 in favour of a hand-written AsyncFileReader; this
                    // reads one footer per file for `backbeat tables` and is not a hot path.
                    #[allow(deprecated)]
                    let reader = parquet::arrow::async_reader::ParquetObjectReader::new(
                        self.root.store().clone(),
                        object.location.clone(),
                    )
                    .with_file_size(object.size);
                    let builder = parquet::arrow::ParquetRecordBatchStreamBuilder::new(reader)
                        .await
                        .map_err(|e| DataFusionError::Execution(format!("{}: {e}", object.location)))?;
                    rows += builder.metadata().file_metadata().num_rows().max(0) as u64;
                    files += 1;
                }
                Ok(TableSummary { name: name.to_string(), format: TableFormat::Parquet, version: None, rows: Some(rows), files, bytes })
            }
            None => Err(DataFusionError::Plan(format!("no table '{name}' in lake {}", self.root))),
        }
    }
}

impl std::fmt::Debug for LakeCatalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LakeCatalog").field("root", &self.root).finish_non_exhaustive()
    }
}

/// Splits `orders@v3` into (`orders`, Some(3)).
pub fn parse_time_travel(name: &str) -> Result<(&str, Option<u64>)> {
    match name.rsplit_once('@') {
        None => Ok((name, None)),
        Some((table, version)) => {
            let v = version
                .strip_prefix('v')
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or_else(|| {
                    DataFusionError::Plan(format!(
                        "bad time travel '{name}': use \"{table}@v<version>\", e.g. \"{table}@v0\""
                    ))
                })?;
            Ok((table, Some(v)))
        }
    }
}

/// Table names are directory names and object-key prefixes: letters, digits, `_`, `-` and `.`
/// (not first), so that no name can escape the lake root, be read as URL syntax (`#`, `?`, `%2e`)
/// or be spelled differently on disk and in S3 keys.
fn validate_table_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && !name.starts_with('.')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(DataFusionError::Plan(format!("'{name}' is not a valid table name")))
    }
}

fn has_parquet_files(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .any(|e| e.path().extension().is_some_and(|x| x == "parquet"))
        })
        .unwrap_or(false)
}

fn local_table_format(dir: &Path) -> Option<TableFormat> {
    if dir.join("_delta_log").is_dir() {
        Some(TableFormat::Delta)
    } else if dir.is_dir() && has_parquet_files(dir) {
        Some(TableFormat::Parquet)
    } else {
        None
    }
}

fn local_table_names(root: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return vec![];
    };
    let mut names: Vec<String> = entries
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| !n.starts_with('.') && !n.starts_with('_'))
        .filter(|n| local_table_format(&root.join(n)).is_some())
        .collect();
    names.sort();
    names
}

#[async_trait::async_trait]
impl SchemaProvider for LakeCatalog {
    fn table_names(&self) -> Vec<String> {
        let mut names = match self.root.local_dir() {
            Some(root) => local_table_names(root),
            None => self.seen_remote.read().expect("lock").iter().cloned().collect(),
        };
        names.extend(self.session_tables.read().expect("lock").keys().cloned());
        names.sort();
        names.dedup();
        names
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        if let Some(t) = self.session_tables.read().expect("lock").get(name) {
            return Ok(Some(t.clone()));
        }
        let (table, version) = parse_time_travel(name)?;
        if validate_table_name(table).is_err() {
            return Ok(None);
        }
        match (self.table_format(table).await?, version) {
            (Some(TableFormat::Delta), _) => {
                let provider = DeltaTableProvider::open(&self.table_url(table)?, version).await?;
                Ok(Some(Arc::new(provider)))
            }
            (Some(TableFormat::Parquet), None) => Ok(Some(self.parquet_table(table).await?)),
            (Some(TableFormat::Parquet), Some(_)) => Err(DataFusionError::Plan(format!(
                "'{table}' is a Parquet directory, not a Delta table: it has no versions"
            ))),
            (None, _) => Ok(None),
        }
    }

    fn register_table(&self, name: String, table: Arc<dyn TableProvider>) -> Result<Option<Arc<dyn TableProvider>>> {
        Ok(self.session_tables.write().expect("lock").insert(name, table))
    }

    fn deregister_table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        Ok(self.session_tables.write().expect("lock").remove(name))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.session_tables.read().expect("lock").contains_key(name)
            || parse_time_travel(name).is_ok_and(|(t, _)| match self.root.local_dir() {
                Some(root) => validate_table_name(t).is_ok() && local_table_format(&root.join(t)).is_some(),
                None => self.seen_remote.read().expect("lock").contains(t),
            })
    }
}
