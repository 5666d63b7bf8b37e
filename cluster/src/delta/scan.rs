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
//! [`TableProvider::insert_into`] into [`super::write`].
//!
//! For `UPDATE`, `DELETE` and `MERGE` the provider can also expose each row's file as a column (a
//! constant per file, planned like a partition column, as delta-rs's `file_column_name`), and be
//! restricted to a list of files: the first pass finds the files that hold affected rows, the second
//! rewrites only those.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::Array;
use arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef};
use datafusion::common::pruning::PruningStatistics;
use datafusion::catalog::Session;
use datafusion::common::stats::Precision;
use datafusion::common::{ColumnStatistics, DFSchema, DataFusionError, Result, ScalarValue, Statistics};
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
use deltalake::kernel::{EagerSnapshot, LogicalFileView};
use object_store::ObjectMeta;
use object_store::path::Path;
use serde::{Deserialize, Serialize};
use url::Url;

use super::commit::Rewrite;
use super::{WriteMode, delta_err, load_table};

/// Everything the scheduler and executors need to re-create the provider: the wire form.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeltaTableSpec {
    /// Table root as a URL ending in `/`, e.g. `file:///data/lake/orders/`.
    pub uri: String,
    /// Snapshot version every task reads; `None` when the table is still to be created.
    pub version: Option<u64>,
    /// Hive-style partition columns, in Delta's order.
    pub partition_columns: Vec<String>,
    /// What a write through this provider does: `Append` for an existing table (`INSERT
    /// OVERWRITE` makes it `Overwrite`), `Create` or `CreateOrReplace` for `CREATE TABLE AS`.
    pub mode: WriteMode,
    /// Exposes each row's data file (its path in the log) as a last column of this name.
    #[serde(default)]
    pub file_column: Option<String>,
    /// Scans only these files (paths as in the log) instead of the whole snapshot.
    #[serde(default)]
    pub files: Option<Vec<String>>,
    /// A write through this provider replaces these files (UPDATE, DELETE, MERGE, OPTIMIZE).
    #[serde(default)]
    pub rewrite: Option<Rewrite>,
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
                mode: WriteMode::Append,
                file_column: None,
                files: None,
                rewrite: None,
            },
            schema: snapshot.snapshot().arrow_schema(),
        })
    }

    /// A table that a `CREATE [OR REPLACE] TABLE ... AS` statement will create at `uri`.
    ///
    /// `schema` must already be Delta-compatible (see [`super::schema::delta_compatible_schema`]).
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
                mode: if replace { WriteMode::CreateOrReplace } else { WriteMode::Create },
                file_column: None,
                files: None,
                rewrite: None,
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

    /// The same table with each row's data file path as an extra last column `name` (dictionary
    /// of Utf8).
    pub fn with_file_column(mut self, name: &str) -> Self {
        let mut fields: Vec<FieldRef> = self.schema.fields().iter().cloned().collect();
        // Dictionary-encoded, as partition columns are: one value per file instead of a 60-byte
        // path copied into every row (plain Utf8 made a key DELETE over 10M rows as slow as
        // rewriting the whole table).
        fields.push(Arc::new(Field::new(name, file_column_type(), false)));
        self.schema = Arc::new(Schema::new(fields));
        self.spec.file_column = Some(name.to_string());
        self
    }

    /// The same table, scanning only `files` (paths as [`LogicalFileView::path`] gives them).
    pub fn restricted_to(mut self, files: Vec<String>) -> Self {
        self.spec.files = Some(files);
        self
    }

    /// The same table, whose writes replace the files `rewrite` lists.
    pub fn with_rewrite(mut self, rewrite: Rewrite) -> Self {
        self.spec.rewrite = Some(rewrite);
        self
    }

    /// The pinned snapshot, refused if its files cannot be read as plain Parquet.
    async fn snapshot(&self) -> Result<Option<EagerSnapshot>> {
        let Some(version) = self.spec.version else {
            return Ok(None);
        };
        let table = load_table(&self.spec.uri, Some(version)).await?;
        let snapshot = table.snapshot().map_err(|e| delta_err(&self.spec.uri, e))?.snapshot().clone();
        check_readable(&self.spec.uri, &snapshot)?;
        Ok(Some(snapshot))
    }

    /// Every data file this provider scans (what `OPTIMIZE` and `MERGE` plan with).
    pub async fn files(&self) -> Result<Vec<LogicalFileView>> {
        let Some(snapshot) = self.snapshot().await? else {
            return Ok(vec![]);
        };
        let keep = vec![true; snapshot.log_data().num_files()];
        Ok(self.restrict(&snapshot, keep))
    }

    /// The log's smallest min and largest max of `column` over the files this provider scans;
    /// `None` unless every file has both. Exact for integers and dates, widened by 1 ms for
    /// timestamps (see `SafeBounds`), possibly truncated for strings.
    pub async fn column_bounds(&self, column: &str) -> Result<Option<(ScalarValue, ScalarValue)>> {
        let (Some(snapshot), Ok(field)) = (self.snapshot().await?, self.schema.field_with_name(column)) else {
            return Ok(None);
        };
        let keep = self.restricted_mask(&snapshot, vec![true; snapshot.log_data().num_files()]);
        let statistics = column_statistics(&snapshot, &keep, field);
        Ok(statistics.min_value.get_value().cloned().zip(statistics.max_value.get_value().cloned()))
    }

    /// The snapshot's files where `keep` is true and, if restricted, in the restriction.
    fn restrict(&self, snapshot: &EagerSnapshot, keep: Vec<bool>) -> Vec<LogicalFileView> {
        let mask = self.restricted_mask(snapshot, keep);
        snapshot.log_data().iter().zip(mask).filter_map(|(f, k)| k.then_some(f)).collect()
    }

    /// `keep`, narrowed to the restriction if there is one.
    fn restricted_mask(&self, snapshot: &EagerSnapshot, keep: Vec<bool>) -> Vec<bool> {
        let only: Option<std::collections::HashSet<&str>> =
            self.spec.files.as_ref().map(|f| f.iter().map(String::as_str).collect());
        snapshot
            .log_data()
            .iter()
            .zip(keep)
            .map(|(f, k)| k && only.as_ref().is_none_or(|only| only.contains(f.path().as_ref())))
            .collect()
    }

    /// The schema without the file column: the table's own columns.
    pub fn table_schema(&self) -> SchemaRef {
        match &self.spec.file_column {
            Some(_) => Arc::new(Schema::new(self.schema.fields()[..self.schema.fields().len() - 1].to_vec())),
            None => self.schema.clone(),
        }
    }

    /// Lists the files of the pinned snapshot that may hold rows matching `filters`.
    pub async fn pruned_files(&self, state: &dyn Session, filters: &[Expr]) -> Result<Vec<LogicalFileView>> {
        Ok(match self.pruned(state, filters).await? {
            Some((snapshot, keep)) => self.restrict(&snapshot, keep),
            None => vec![],
        })
    }

    /// The snapshot and which of its files may hold rows matching `filters`.
    async fn pruned(&self, state: &dyn Session, filters: &[Expr]) -> Result<Option<(EagerSnapshot, Vec<bool>)>> {
        let Some(snapshot) = self.snapshot().await? else {
            return Ok(None);
        };
        let all = vec![true; snapshot.log_data().num_files()];
        let Some(predicate) = conjunction(filters.iter().cloned()) else {
            return Ok(Some((snapshot, all)));
        };
        // Prune with the snapshot's per-file statistics (partition values count as min = max).
        // A predicate we cannot translate simply prunes nothing: correctness never depends on it.
        let df_schema = DFSchema::try_from(self.schema.as_ref().clone())?;
        let keep = state
            .create_physical_expr(predicate, &df_schema)
            .and_then(|expr| PruningPredicateBuilder::new().with_file_schema(self.schema.clone()).try_build(expr))
            .and_then(|p| p.prune(&SafeBounds { snapshot: &snapshot, schema: &self.schema }));
        Ok(Some(match keep {
            Ok(keep) => (snapshot, keep),
            Err(e) => {
                tracing::debug!("file pruning skipped for {}: {e}", self.spec.uri);
                (snapshot, all)
            }
        }))
    }
}

/// The log's per-file statistics for pruning, with timestamp maxima made safe: delta-rs writes
/// timestamp bounds truncated to milliseconds, so a file holding 10:00:00.000250 records a max of
/// 10:00:00.000 and `ts = '10:00:00.000250'` would prune it. Maxima of sub-millisecond timestamp
/// columns are raised by 1 ms (delta-rs's `LogicalFileView::max_values` does the same).
struct SafeBounds<'a> {
    snapshot: &'a EagerSnapshot,
    schema: &'a Schema,
}

impl datafusion::common::pruning::PruningStatistics for SafeBounds<'_> {
    fn min_values(&self, column: &datafusion::common::Column) -> Option<arrow::array::ArrayRef> {
        self.snapshot.min_values(column)
    }

    fn max_values(&self, column: &datafusion::common::Column) -> Option<arrow::array::ArrayRef> {
        use arrow::datatypes::TimeUnit;
        let values = self.snapshot.max_values(column)?;
        let per_ms = match self.schema.field_with_name(&column.name).ok()?.data_type() {
            DataType::Timestamp(TimeUnit::Microsecond, _) => 1_000,
            DataType::Timestamp(TimeUnit::Nanosecond, _) => 1_000_000,
            _ => return Some(values),
        };
        let as_int = arrow::compute::cast(&values, &DataType::Int64).ok()?;
        let raised: arrow::array::Int64Array =
            as_int.as_any().downcast_ref::<arrow::array::Int64Array>()?.iter().map(|v| v.map(|v| v.saturating_add(per_ms))).collect();
        arrow::compute::cast(&raised, values.data_type()).ok()
    }

    fn num_containers(&self) -> usize {
        self.snapshot.num_containers()
    }

    fn null_counts(&self, column: &datafusion::common::Column) -> Option<arrow::array::ArrayRef> {
        self.snapshot.null_counts(column)
    }

    fn row_counts(&self) -> Option<arrow::array::ArrayRef> {
        self.snapshot.row_counts()
    }

    fn contained(
        &self,
        column: &datafusion::common::Column,
        values: &std::collections::HashSet<ScalarValue>,
    ) -> Option<arrow::array::BooleanArray> {
        self.snapshot.contained(column, values)
    }
}

/// Table-level statistics of `field` over the kept files, from the log's per-file statistics: the
/// smallest min, largest max and summed null counts. Absent when any kept file lacks them. Delta
/// writers may truncate string bounds, so min and max are inexact.
fn column_statistics(snapshot: &EagerSnapshot, keep: &[bool], field: &Field) -> ColumnStatistics {
    let column = datafusion::common::Column::new_unqualified(field.name());
    let mask = arrow::array::BooleanArray::from(keep.to_vec());
    let kept = |values: Option<arrow::array::ArrayRef>| {
        values
            .filter(|v| v.len() == keep.len())
            .and_then(|v| arrow::compute::filter(&v, &mask).ok())
            .filter(|v| !v.is_empty() && v.null_count() == 0)
    };
    let bound = |values: Option<arrow::array::ArrayRef>, max: bool| -> Precision<ScalarValue> {
        let Some(values) = kept(values) else { return Precision::Absent };
        let values = match arrow::compute::cast(&values, field.data_type()) {
            Ok(v) => v,
            Err(_) => return Precision::Absent,
        };
        let mut best: Option<ScalarValue> = None;
        for i in 0..values.len() {
            let Ok(v) = ScalarValue::try_from_array(&values, i) else { return Precision::Absent };
            best = match best {
                None => Some(v),
                Some(b) => match v.partial_cmp(&b) {
                    Some(std::cmp::Ordering::Greater) if max => Some(v),
                    Some(std::cmp::Ordering::Less) if !max => Some(v),
                    Some(_) => Some(b),
                    None => return Precision::Absent,
                },
            };
        }
        best.map_or(Precision::Absent, Precision::Inexact)
    };
    let null_count = kept(snapshot.null_counts(&column))
        .and_then(|v| arrow::compute::cast(&v, &DataType::UInt64).ok())
        .and_then(|v| arrow::compute::sum(v.as_any().downcast_ref::<arrow::array::UInt64Array>()?))
        .map_or(Precision::Absent, |n| Precision::Exact(n as usize));
    ColumnStatistics {
        null_count,
        max_value: bound(SafeBounds { snapshot, schema: &Schema::new(vec![field.clone()]) }.max_values(&column), true),
        min_value: bound(snapshot.min_values(&column), false),
        ..ColumnStatistics::new_unknown()
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
        let projected = match projection {
            Some(p) => Arc::new(self.schema.project(p)?),
            None => self.schema.clone(),
        };
        let Some((snapshot, keep)) = self.pruned(state, filters).await? else {
            return Ok(Arc::new(EmptyExec::new(projected)));
        };
        // One mask for the files scanned and the statistics that describe them.
        let keep = self.restricted_mask(&snapshot, keep);
        let files: Vec<LogicalFileView> =
            snapshot.log_data().iter().zip(&keep).filter_map(|(f, k)| k.then_some(f)).collect();
        if files.is_empty() {
            return Ok(Arc::new(EmptyExec::new(projected)));
        }

        // DataFusion's file scans put partition columns after the file columns; Delta may declare
        // them anywhere. Map the table's column order onto that layout through the projection.
        // The file column is planned as one more partition column, constant within a file.
        let partition_fields: Vec<FieldRef> = self
            .spec
            .partition_columns
            .iter()
            .chain(self.spec.file_column.iter())
            .map(|c| Ok(Arc::new(self.schema.field_with_name(c)?.clone())))
            .collect::<Result<_>>()?;
        let file_fields: Vec<Field> = self
            .schema
            .fields()
            .iter()
            .filter(|f| !partition_fields.iter().any(|p| p.name() == f.name()))
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
        // Column bounds let the planner estimate filter selectivity and order joins (TPC-H q21 ran
        // 1.4 to 1.55x slower over Delta than over the same Parquet without them).
        for (i, field) in file_schema.fields().iter().enumerate() {
            statistics.column_statistics[i] = column_statistics(&snapshot, &keep, field);
        }
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
        if self.spec.file_column.is_some() {
            return Err(DataFusionError::Plan(format!("{} is opened for reading its files only", self.spec.uri)));
        }
        super::write::plan_write(&self.spec, self.schema.clone(), input, insert_op)
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
            .map(|field| {
                if self.spec.file_column.as_ref() == Some(field.name()) {
                    return Ok(ScalarValue::Dictionary(
                        Box::new(DataType::UInt16),
                        Box::new(ScalarValue::Utf8(Some(file.path().into_owned()))),
                    ));
                }
                match values.get(field.name()).cloned().flatten() {
                    Some(v) => ScalarValue::try_from_string(v, field.data_type()),
                    None => ScalarValue::try_new_null(field.data_type()),
                }
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

fn file_column_type() -> DataType {
    DataType::Dictionary(Box::new(DataType::UInt16), Box::new(DataType::Utf8))
}

/// Deletion vectors and column mapping change what a Parquet file means: reading the files as
/// plain Parquet would return deleted rows or wrong columns. Refuses loudly instead.
fn check_readable(uri: &str, snapshot: &EagerSnapshot) -> Result<()> {
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
            "Delta table {uri} uses {what}, which backbeat cannot read yet"
        )));
    }
    Ok(())
}
