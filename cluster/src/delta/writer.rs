//! The one Parquet file writer of every Delta write, and [`DeltaWriteExec`], the plan node that runs
//! it on the executors (one task per input partition).
//!
//! The writer owns the target file size: 128 MiB, as Databricks' default for tables under 2.5 TB, so
//! that a large task writes several files rather than one huge one and `OPTIMIZE` packs small files
//! to the same size. Files only become part of the table when [`crate::delta::commit`] commits their
//! `Add` actions; a writer that fails aborts its open uploads and leaves finished files unreferenced.

use std::fmt;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, Result, internal_err};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::expressions::Column;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, Distribution, ExecutionPlan, ExecutionPlanProperties, Partitioning, PlanProperties,
};
use deltalake::kernel::Add;
use parquet::file::properties::WriterProperties;
use deltalake::writer::{DeltaWriter, RecordBatchWriter};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use super::delta_err;
use super::tally::{Counts, Tally};

/// Files roll over at this size, so a large task writes several files rather than one huge one.
pub const TARGET_FILE_SIZE: u64 = 128 * 1024 * 1024;

/// Writes record batches as Parquet data files of one Delta table (not yet committed).
pub struct FileWriter {
    uri: String,
    inner: RecordBatchWriter,
}

impl FileWriter {
    /// A writer of files under the table root `uri`, split into Hive-style directories by
    /// `partition_columns`, rolling over at [`TARGET_FILE_SIZE`].
    pub fn try_new(uri: &str, schema: SchemaRef, partition_columns: &[String]) -> Result<Self> {
        let partition_columns = (!partition_columns.is_empty()).then(|| partition_columns.to_vec());
        let inner = RecordBatchWriter::try_new(uri, schema, partition_columns, None)
            .map_err(|e| delta_err(uri, e))?
            .with_target_file_size(TARGET_FILE_SIZE);
        Ok(Self { uri: uri.to_string(), inner })
    }

    /// Overrides the target file size (the TPC-H copies keep one file per source file).
    pub fn with_target_file_size(mut self, bytes: u64) -> Self {
        self.inner = self.inner.with_target_file_size(bytes);
        self
    }

    /// Overrides the Parquet writer properties (compression, row group size).
    pub fn with_writer_properties(mut self, properties: WriterProperties) -> Self {
        self.inner = self.inner.with_writer_properties(properties);
        self
    }

    /// Writes one batch; on error, aborts open uploads so nothing half-written is left open.
    pub async fn write(&mut self, batch: RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        if let Err(e) = self.inner.write(batch).await {
            self.inner.reset();
            return Err(delta_err(&self.uri, e));
        }
        Ok(())
    }

    /// Closes the open files and returns their `Add` actions, with statistics.
    pub async fn finish(mut self) -> Result<Vec<Add>> {
        self.inner.flush().await.map_err(|e| delta_err(&self.uri, e))
    }

    /// Abandons the files being written (finished ones stay unreferenced until a vacuum).
    pub fn abort(&mut self) {
        self.inner.reset();
    }
}

/// Writes a stream into files of the table at `uri`; on any error, aborts and returns it.
pub async fn write_stream(
    mut input: SendableRecordBatchStream,
    uri: &str,
    schema: SchemaRef,
    partition_columns: &[String],
) -> Result<Vec<Add>> {
    let mut writer = FileWriter::try_new(uri, schema, partition_columns)?;
    while let Some(batch) = input.next().await {
        match batch {
            Ok(batch) => writer.write(batch).await?,
            Err(e) => {
                writer.abort();
                return Err(e);
            }
        }
    }
    writer.finish().await
}

/// The wire form of a [`DeltaWriteExec`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeltaWriteSpec {
    /// Table root URL.
    pub uri: String,
    /// Hive-style partition columns.
    pub partition_columns: Vec<String>,
    /// Keep the input's partitions (`OPTIMIZE` sizes them to the files it wants) rather than let
    /// the planner spread rows over more writers, which would write more, smaller files.
    #[serde(default)]
    pub keep_partitions: bool,
    /// A one-pass rewrite's row codes: counted per task and stripped before writing.
    #[serde(default)]
    pub tally: Option<Tally>,
}

/// Streams one input partition into Parquet files under the table root and returns their Delta
/// `Add` actions (as JSON, one row per file). Runs as one task per input partition.
#[derive(Debug)]
pub struct DeltaWriteExec {
    input: Arc<dyn ExecutionPlan>,
    spec: DeltaWriteSpec,
    properties: Arc<PlanProperties>,
    /// The partition columns in the input, by which rows are hash-distributed before writing.
    partition_exprs: Vec<Arc<dyn PhysicalExpr>>,
}

impl DeltaWriteExec {
    /// Writes `input` into the table `spec` describes (also how the codec re-creates the node).
    pub fn from_spec(input: Arc<dyn ExecutionPlan>, spec: DeltaWriteSpec) -> Self {
        let input_schema = input.schema();
        let partition_exprs = spec
            .partition_columns
            .iter()
            .filter_map(|c| input_schema.index_of(c).ok().map(|i| Arc::new(Column::new(c, i)) as Arc<dyn PhysicalExpr>))
            .collect();
        let schema = add_actions_schema();
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(schema),
            Partitioning::UnknownPartitioning(input.output_partitioning().partition_count()),
            EmissionType::Final,
            Boundedness::Bounded,
        ));
        Self { input, spec, properties, partition_exprs }
    }

    /// The wire form of this node.
    pub fn spec(&self) -> &DeltaWriteSpec {
        &self.spec
    }
}

/// One row per file written (`add`, an Add action as JSON), and with a tally one more row of the
/// task's counts per code (`counts`, JSON).
fn add_actions_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new("add", DataType::Utf8, true), Field::new("counts", DataType::Utf8, true)]))
}

impl DisplayAs for DeltaWriteExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "DeltaWriteExec: uri={} partition_by={:?}", self.spec.uri, self.spec.partition_columns)
    }
}

impl ExecutionPlan for DeltaWriteExec {
    fn name(&self) -> &str {
        "DeltaWriteExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(self: Arc<Self>, children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        match children.as_slice() {
            [child] => Ok(Arc::new(Self::from_spec(child.clone(), self.spec.clone()))),
            _ => internal_err!("DeltaWriteExec takes one child"),
        }
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![false]
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![!self.spec.keep_partitions]
    }

    /// A partitioned table gets each partition value's rows in one task (DataFusion inserts the
    /// hash shuffle), so a value is written as one file rather than one per task: what Databricks
    /// calls optimized writes. 16 tasks writing 114 genres would otherwise leave 1,824 small files.
    fn required_input_distribution(&self) -> Vec<Distribution> {
        if self.partition_exprs.is_empty() {
            vec![Distribution::UnspecifiedDistribution]
        } else {
            vec![Distribution::KeyPartitioned(self.partition_exprs.clone())]
        }
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let input = self.input.execute(partition, context)?;
        let spec = self.spec.clone();
        let out = add_actions_schema();
        let batch = async move {
            let schema = input.schema();
            let (adds, counts) = match spec.tally.clone() {
                None => (write_stream(input, &spec.uri, schema, &spec.partition_columns).await?, None),
                Some(tally) => {
                    let written = tally.written_schema(&schema)?;
                    let counts = Arc::new(std::sync::Mutex::new(Counts::new()));
                    let tallied = counts.clone();
                    let counted = input.map(move |batch| {
                        let mut counts = tallied.lock().map_err(|_| DataFusionError::Internal("row counts poisoned".into()))?;
                        batch.and_then(|b| tally.split(b, &mut counts))
                    });
                    let stream = Box::pin(RecordBatchStreamAdapter::new(written.clone(), counted));
                    let adds = write_stream(stream, &spec.uri, written, &spec.partition_columns).await?;
                    let counts = counts.lock().map_err(|_| DataFusionError::Internal("row counts poisoned".into()))?.clone();
                    (adds, Some(counts))
                }
            };
            let mut json = adds
                .iter()
                .map(|a| serde_json::to_string(a).map(Some))
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|e| DataFusionError::Internal(e.to_string()))?;
            let mut counts_json = vec![None; json.len()];
            if let Some(counts) = counts {
                json.push(None);
                counts_json.push(Some(serde_json::to_string(&counts).map_err(|e| DataFusionError::Internal(e.to_string()))?));
            }
            Ok(RecordBatch::try_new(
                add_actions_schema(),
                vec![Arc::new(StringArray::from(json)) as ArrayRef, Arc::new(StringArray::from(counts_json)) as ArrayRef],
            )?)
        };
        Ok(Box::pin(RecordBatchStreamAdapter::new(out, futures::stream::once(batch))))
    }
}
