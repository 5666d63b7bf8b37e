//! [`DeltaTableProvider`]: a Delta table pinned to one snapshot version, scanned as plain Parquet.
//!
//! Why not delta-rs's own provider: its `DeltaScanExec` has no protobuf form, so Ballista cannot ship
//! it to executors (delta-rs #4171). Instead the provider is sent as (URI, version) through
//! [`crate::codec`], and on the scheduler [`TableProvider::scan`] replays the log of exactly that
//! version, prunes files by partition values and min/max statistics, and plans the surviving files
//! as a DataFusion Parquet scan (`DataSourceExec`), which Ballista serializes natively and splits into
//! one task per file group. Executors therefore only ever read Parquet files, and every task of a
//! query reads the same snapshot.
//!
//! Writes (`INSERT INTO`, `INSERT OVERWRITE`, `CREATE TABLE AS`) go through
//! [`TableProvider::insert_into`] into [`crate::delta_write`].

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::{Field, FieldRef, Schema, SchemaRef};
use datafusion::catalog::Session;
use datafusion::common::stats::Precision;
use datafusion::common::{DFSchema, DataFusionError, Result, ScalarValue, Statistics};
use datafusion::datasource::TableType;
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder};
use datafusion::datasource::table_schema::TableSchema;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_optimizer::pruning::PruningPredicateBuilder;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use deltalake::DeltaTable;
use deltalake::kernel::LogicalFileView;
use object_store::ObjectMeta;
use object_store::path::Path;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::delta_write;

/// What a statement that targets this provider may do to the table's existence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CreateMode {
    /// The table exists and is written to as it is (`INSERT INTO`, `INSERT OVERWRITE`).
    Existing,
    /// `CREATE TABLE ... AS`: the commit creates version 0 and fails if the table appeared meanwhile.
    CreateNew,
    /// `CREATE OR REPLACE TABLE ... AS`: a new schema and new data in one commit, old files removed.
    CreateOrReplace,
}

/// Everything the scheduler and executors need to re-create the provider: the wire form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeltaTableSpec {
    /// Table root as a URL ending in `/`, e.g. `file:///data/lake/orders/`.
    pub uri: String,
    /// Snapshot version every task reads; `None` when the table is still to be created.
    pub version: Option<u64>,
    /// Hive-style partition columns, in Delta's order.
    pub partition_columns: Vec<String>,
    /// What a write through this provider does to the table's existence.
    pub create_mode: CreateMode,
}

/// A Delta table at one version, readable and writable through a Ballista cluster.
#[derive(Debug, Clone)]
pub struct DeltaTableProvider {
    spec: DeltaTableSpec,
    schema: SchemaRef,
}

impl DeltaTableProvider {
    /// Opens the table at `uri`, at `version` or the latest one, and pins that version.
    pub async fn open(uri: &Url, version: Option<u64>) -> Result<Self> {
        let table = load_table(uri.as_str(), version).await?;
        let snapshot = table.snapshot().map_err(|e| delta_err(uri.as_str(), e))?;
        Ok(Self {
            spec: DeltaTableSpec {
                uri: uri.to_string(),
                version: Some(snapshot.version()),
                partition_columns: snapshot.metadata().partition_columns().to_vec(),
                create_mode: CreateMode::Existing,
            },
            schema: snapshot.snapshot().arrow_schema(),
        })
    }

    /// A table that a `CREATE [OR REPLACE] TABLE ... AS` statement will create at `uri`.
    ///
    /// `schema` must already be Delta-compatible (see [`delta_write::delta_compatible_schema`]).
    pub fn for_create(
        uri: &Url,
        schema: SchemaRef,
        partition_columns: Vec<String>,
        replace: bool,
    ) -> Result<Self> {
        for column in &partition_columns {
            if schema.field_with_name(column).is_err() {
                return Err(DataFusionError::Plan(format!(
                    "partition column '{column}' is not a column of the query's result ({})",
                    schema
                        .fields()
                        .iter()
                        .map(|f| f.name().as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
        Ok(Self {
            spec: DeltaTableSpec {
                uri: uri.to_string(),
                version: None,
                partition_columns,
                create_mode: if replace {
                    CreateMode::CreateOrReplace
                } else {
                    CreateMode::CreateNew
                },
            },
            schema,
        })
    }

    /// Re-creates the provider from its wire form; `schema` comes from the plan that carried it.
    pub fn from_spec(spec: DeltaTableSpec, schema: SchemaRef) -> Self {
        Self { spec, schema }
    }

    /// The wire form of this provider.
    pub fn spec(&self) -> &DeltaTableSpec {
        &self.spec
    }

    /// Lists the files of the pinned snapshot that may hold rows matching `filters`.
    async fn pruned_files(
        &self,
        state: &dyn Session,
        filters: &[Expr],
    ) -> Result<Vec<LogicalFileView>> {
        let Some(version) = self.spec.version else {
            return Ok(vec![]);
        };
        let table = load_table(&self.spec.uri, Some(version)).await?;
        let snapshot = table
            .snapshot()
            .map_err(|e| delta_err(&self.spec.uri, e))?
            .snapshot()
            .clone();
        // Deletion vectors and column mapping change what a Parquet file means: reading the files
        // as plain Parquet would return deleted rows or wrong columns. Refuse loudly instead.
        let deletion_vectors = snapshot
            .protocol()
            .reader_features()
            .is_some_and(|features| format!("{features:?}").contains("DeletionVectors"));
        let column_mapping = snapshot
            .metadata()
            .configuration()
            .get("delta.columnMapping.mode")
            .is_some_and(|mode| mode != "none");
        if deletion_vectors || column_mapping {
            let what = if deletion_vectors { "deletion vectors" } else { "column mapping" };
            return Err(DataFusionError::NotImplemented(format!(
                "Delta table {} uses {what}, which backbeat cannot read yet",
                self.spec.uri
            )));
        }
        let files: Vec<LogicalFileView> = snapshot.log_data().iter().collect();

        let Some(predicate) = conjunction(filters.iter().cloned()) else {
            return Ok(files);
        };
        // Prune with the snapshot's per-file statistics (partition values count as min = max).
        // A predicate we cannot translate simply prunes nothing: correctness never depends on it.
        let df_schema = DFSchema::try_from(self.schema.as_ref().clone())?;
        let pruned = state
            .create_physical_expr(predicate, &df_schema)
            .and_then(|expr| PruningPredicateBuilder::new().with_file_schema(self.schema.clone()).try_build(expr))
            .and_then(|p| p.prune(&snapshot));
        match pruned {
            Ok(keep) => Ok(files
                .into_iter()
                .zip(keep)
                .filter_map(|(f, k)| k.then_some(f))
                .collect()),
            Err(e) => {
                tracing::debug!("file pruning skipped for {}: {e}", self.spec.uri);
                Ok(files)
            }
        }
    }
}

#[async_trait::async_trait]
impl datafusion::catalog::TableProvider for DeltaTableProvider {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        // Inexact: we prune whole files, and DataFusion still filters the rows that remain.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let files = self.pruned_files(state, filters).await?;
        let projected = match projection {
            Some(p) => Arc::new(self.schema.project(p)?),
            None => self.schema.clone(),
        };
        if files.is_empty() {
            return Ok(Arc::new(EmptyExec::new(projected)));
        }

        // DataFusion's file scans put partition columns after the file columns; Delta may declare
        // them anywhere. Map the table's column order onto that layout through the projection.
        let partition_fields: Vec<FieldRef> = self
            .spec
            .partition_columns
            .iter()
            .map(|c| Ok(Arc::new(self.schema.field_with_name(c)?.clone())))
            .collect::<Result<_>>()?;
        let file_fields: Vec<Field> = self
            .schema
            .fields()
            .iter()
            .filter(|f| !self.spec.partition_columns.contains(f.name()))
            .map(|f| f.as_ref().clone())
            .collect();
        let file_schema = Arc::new(Schema::new(file_fields));
        let scan_index: HashMap<&str, usize> = file_schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .chain(partition_fields.iter().map(|f| f.name().as_str()))
            .enumerate()
            .map(|(i, name)| (name, i))
            .collect();
        let table_columns: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..self.schema.fields().len()).collect(),
        };
        let scan_projection: Vec<usize> = table_columns
            .iter()
            .map(|&i| scan_index[self.schema.field(i).name().as_str()])
            .collect();

        let table_url = Url::parse(&self.spec.uri)
            .map_err(|e| DataFusionError::Plan(format!("bad table URI {}: {e}", self.spec.uri)))?;
        let mut partitioned = Vec::with_capacity(files.len());
        let mut total_rows = Some(0usize);
        let mut total_bytes = 0usize;
        for file in &files {
            let pf = self.partitioned_file(&table_url, file, &partition_fields)?;
            total_rows = total_rows.zip(file.num_records()).map(|(a, b)| a + b);
            total_bytes += file.size().max(0) as usize;
            partitioned.push(pf);
        }

        let mut statistics = Statistics::new_unknown(&self.schema_for_scan(&file_schema, &partition_fields));
        statistics.num_rows = match total_rows {
            Some(rows) => Precision::Exact(rows),
            None => Precision::Absent,
        };
        statistics.total_byte_size = Precision::Inexact(total_bytes);

        let target_partitions = state.config().target_partitions().max(1);
        let format = ParquetFormat::default().with_options(state.table_options().parquet.clone());
        let source = format.file_source(TableSchema::builder(file_schema).with_table_partition_cols(partition_fields).build());
        let config = FileScanConfigBuilder::new(object_store_url(&table_url)?, source)
            .with_file_groups(balanced_file_groups(partitioned, target_partitions))
            .with_statistics(statistics)
            .with_projection_indices(Some(scan_projection))?
            .with_limit(limit)
            .build();
        format.create_physical_plan(state, config).await
    }

    async fn insert_into(
        &self,
        _state: &dyn Session,
        input: Arc<dyn ExecutionPlan>,
        insert_op: InsertOp,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        delta_write::plan_write(&self.spec, self.schema.clone(), input, insert_op)
    }
}

impl DeltaTableProvider {
    fn schema_for_scan(&self, file_schema: &SchemaRef, partition_fields: &[FieldRef]) -> Schema {
        let mut fields: Vec<FieldRef> = file_schema.fields().iter().cloned().collect();
        fields.extend(partition_fields.iter().cloned());
        Schema::new(fields)
    }

    fn partitioned_file(
        &self,
        table_url: &Url,
        file: &LogicalFileView,
        partition_fields: &[FieldRef],
    ) -> Result<PartitionedFile> {
        // The log's paths are URL-encoded; `path()` decodes them once, giving the object's name as
        // it is on storage (delta-rs writes partition directories like `genre=Rock%20%26%20Roll`
        // literally), and an object-store `Path` holds exactly that name.
        let relative = file.path();
        let full = if relative.contains("://") {
            relative.into_owned()
        } else {
            format!("{}{relative}", table_url.as_str())
        };
        let file_url = Url::parse(&full)
            .map_err(|e| DataFusionError::Plan(format!("bad file URL {full} in {}: {e}", self.spec.uri)))?;
        let on_storage = full
            .strip_prefix(&format!("{}://{}", file_url.scheme(), file_url.host_str().unwrap_or("")))
            .unwrap_or(&full);
        let location = Path::parse(on_storage.trim_start_matches('/'))
            .map_err(|e| DataFusionError::Plan(format!("bad file path {on_storage}: {e}")))?;
        let mut pf: PartitionedFile = ObjectMeta {
            location,
            size: file.size().max(0) as u64,
            last_modified: chrono::DateTime::from_timestamp_millis(file.modification_time()).unwrap_or_default(),
            e_tag: None,
            version: None,
        }
        .into();
        let values = file.partition_values_map();
        pf.partition_values = partition_fields
            .iter()
            .map(|field| match values.get(field.name()).cloned().flatten() {
                Some(v) => ScalarValue::try_from_string(v, field.data_type()),
                None => ScalarValue::try_new_null(field.data_type()),
            })
            .collect::<Result<_>>()?;
        Ok(pf)
    }
}

/// Spreads files over at most `n` groups, largest first onto the lightest group, so the tasks
/// Ballista makes (one per group) carry similar byte counts.
fn balanced_file_groups(mut files: Vec<PartitionedFile>, n: usize) -> Vec<FileGroup> {
    files.sort_by(|a, b| b.object_meta.size.cmp(&a.object_meta.size));
    let n = n.min(files.len()).max(1);
    let mut groups: Vec<(u64, Vec<PartitionedFile>)> = (0..n).map(|_| (0, Vec::new())).collect();
    for file in files {
        let lightest = groups
            .iter_mut()
            .min_by_key(|(bytes, _)| *bytes)
            .expect("at least one group");
        lightest.0 += file.object_meta.size;
        lightest.1.push(file);
    }
    groups.into_iter().map(|(_, f)| FileGroup::new(f)).collect()
}

fn object_store_url(table_url: &Url) -> Result<ObjectStoreUrl> {
    ObjectStoreUrl::parse(format!(
        "{}://{}",
        table_url.scheme(),
        table_url.host_str().unwrap_or("")
    ))
}

/// Loads a Delta table at `version` (or the latest), with the table named in any error.
pub async fn load_table(uri: &str, version: Option<u64>) -> Result<DeltaTable> {
    let url = Url::parse(uri)
        .map_err(|e| DataFusionError::Plan(format!("bad Delta table URI {uri}: {e}")))?;
    let result = match version {
        Some(v) => deltalake::open_table_with_version(url, v).await,
        None => deltalake::open_table(url).await,
    };
    result.map_err(|e| delta_err(uri, e))
}

/// Wraps a delta-rs error so the message names the table it concerns. delta-kernel appends a
/// backtrace to some messages; only the first line is the message.
pub fn delta_err(uri: &str, e: impl std::fmt::Display) -> DataFusionError {
    let message = e.to_string();
    let first_line = message.lines().next().unwrap_or_default().trim_end();
    DataFusionError::Execution(format!("Delta table {uri}: {first_line}"))
}
