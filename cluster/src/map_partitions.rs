//! `map_partitions`: runs a registered [`PartitionKernel`] over every partition of a DataFrame, on the
//! executors. It is Spark's `mapPartitions` for the numerical work SQL cannot express (ALS solves,
//! nearest-neighbour search): the client adds a [`MapPartitionsNode`] to its logical plan, the
//! scheduler plans it as a [`MapPartitionsExec`] (asking DataFusion for a hash exchange on the key
//! columns, so all rows of one key reach one task), and each executor task hands its partition's
//! rows to the kernel and streams back what the kernel returns.
//!
//! Kernels are code, not data: they live in the crates above this one (`jobs/`), and every process
//! that plans or runs them (client, scheduler, executor, all one `backbeat` binary) registers them
//! at start with [`register_kernel`]. The wire form names the kernel and carries its arguments as
//! JSON; anything large a kernel needs besides its partition (the other side's factors in ALS) it
//! reads from the lake itself, through [`crate::broadcast`].

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, LazyLock, RwLock};

use arrow::datatypes::{Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DFSchema, DFSchemaRef, DataFusionError, Result, internal_err, plan_err};
use datafusion::dataframe::DataFrame;
use datafusion::execution::context::QueryPlanner;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{Expr, Extension, LogicalPlan, UserDefinedLogicalNode, UserDefinedLogicalNodeCore};
use datafusion::physical_expr::{EquivalenceProperties, Partitioning, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::expressions::Column;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, Distribution, ExecutionPlan, ExecutionPlanProperties, PlanProperties};
use datafusion::physical_planner::{DefaultPhysicalPlanner, ExtensionPlanner, PhysicalPlanner};
use futures::future::BoxFuture;
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};

/// Code that turns all rows of one partition into output rows, on an executor.
pub trait PartitionKernel: Send + Sync + 'static {
    /// The name the kernel is registered and shipped under.
    fn name(&self) -> &'static str;

    /// The schema of the kernel's output for `args` over input rows of schema `input`. Called by
    /// client, scheduler and executor alike, so it must depend on nothing else.
    fn output_schema(&self, args: &serde_json::Value, input: &Schema) -> Result<SchemaRef>;

    /// Consumes partition `partition` and returns the output rows. CPU-heavy kernels should do
    /// their work in `tokio::task::spawn_blocking`, so executor heartbeats keep flowing.
    fn run(
        &self,
        args: serde_json::Value,
        input: SendableRecordBatchStream,
        partition: usize,
    ) -> BoxFuture<'static, Result<Vec<RecordBatch>>>;
}

static KERNELS: LazyLock<RwLock<HashMap<&'static str, Arc<dyn PartitionKernel>>>> = LazyLock::new(Default::default);

/// Makes `kernel` available to this process's plans and tasks (registering a name again replaces it).
pub fn register_kernel(kernel: Arc<dyn PartitionKernel>) {
    KERNELS.write().expect("kernel registry poisoned").insert(kernel.name(), kernel);
}

/// The kernel registered as `name`.
pub fn kernel(name: &str) -> Result<Arc<dyn PartitionKernel>> {
    let kernels = KERNELS.read().expect("kernel registry poisoned");
    match kernels.get(name) {
        Some(k) => Ok(k.clone()),
        None => {
            let mut known: Vec<&str> = kernels.keys().copied().collect();
            known.sort();
            plan_err!(
                "no partition kernel '{name}' in this process (registered: {}); every backbeat process registers \
                 the jobs' kernels at start, so a scheduler or executor built from another binary cannot run this job",
                if known.is_empty() { "none".to_string() } else { known.join(", ") }
            )
        }
    }
}

/// The wire form of a map-partitions step: which kernel, its arguments, and the key columns whose
/// rows must meet in one partition (empty: any partitioning will do).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Serialize, Deserialize)]
pub struct MapPartitionsSpec {
    /// Registered kernel name.
    pub kernel: String,
    /// Kernel arguments, as JSON text.
    pub args: String,
    /// Input columns to hash-partition by before the kernel runs.
    pub key: Vec<String>,
    /// All input rows in one partition (one task): for a kernel that needs the whole input at once.
    #[serde(default)]
    pub single: bool,
}

impl MapPartitionsSpec {
    fn parsed_args(&self) -> Result<serde_json::Value> {
        serde_json::from_str(&self.args).map_err(|e| DataFusionError::Plan(format!("kernel {} arguments: {e}", self.kernel)))
    }

    fn output_schema(&self, input: &Schema) -> Result<SchemaRef> {
        for column in &self.key {
            if input.index_of(column).is_err() {
                return plan_err!("kernel {}: key column '{column}' is not in its input ({input})", self.kernel);
            }
        }
        kernel(&self.kernel)?.output_schema(&self.parsed_args()?, input)
    }
}

/// Plans `kernel` over `df`: each partition of `df` (hash-partitioned by `key` first, when given)
/// goes through the kernel on an executor. Nothing runs until the result is collected or written.
pub fn map_partitions(df: DataFrame, kernel: &str, args: &serde_json::Value, key: &[&str]) -> Result<DataFrame> {
    let spec = MapPartitionsSpec {
        kernel: kernel.to_string(),
        args: args.to_string(),
        key: key.iter().map(|k| k.to_string()).collect(),
        single: false,
    };
    plan_node(df, spec)
}

/// Plans `kernel` over all rows of `df` at once: one task, on one executor, sees the whole input
/// (DataFusion coalesces the partitions in front of it). For work that cannot be split, on inputs
/// that fit one task.
pub fn map_single_partition(df: DataFrame, kernel: &str, args: &serde_json::Value) -> Result<DataFrame> {
    let spec = MapPartitionsSpec { kernel: kernel.to_string(), args: args.to_string(), key: vec![], single: true };
    plan_node(df, spec)
}

fn plan_node(df: DataFrame, spec: MapPartitionsSpec) -> Result<DataFrame> {
    let (state, plan) = df.into_parts();
    let node = MapPartitionsNode::try_new(plan, spec)?;
    Ok(DataFrame::new(state, LogicalPlan::Extension(Extension { node: Arc::new(node) })))
}

/// The logical plan node of a map-partitions step.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MapPartitionsNode {
    input: LogicalPlan,
    spec: MapPartitionsSpec,
    schema: DFSchemaRef,
}

impl MapPartitionsNode {
    /// The node over `input`; fails if the kernel is unknown or rejects the input.
    pub fn try_new(input: LogicalPlan, spec: MapPartitionsSpec) -> Result<Self> {
        let schema = spec.output_schema(input.schema().as_arrow())?;
        Ok(Self { input, spec, schema: Arc::new(DFSchema::try_from(schema)?) })
    }

    /// The wire form.
    pub fn spec(&self) -> &MapPartitionsSpec {
        &self.spec
    }
}

impl PartialOrd for MapPartitionsNode {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        match self.spec.partial_cmp(&other.spec) {
            Some(std::cmp::Ordering::Equal) => self.input.partial_cmp(&other.input),
            ord => ord,
        }
    }
}

impl UserDefinedLogicalNodeCore for MapPartitionsNode {
    fn name(&self) -> &str {
        "MapPartitions"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.input]
    }

    fn schema(&self) -> &DFSchemaRef {
        &self.schema
    }

    fn expressions(&self) -> Vec<Expr> {
        vec![]
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "MapPartitions: kernel={} key={:?}", self.spec.kernel, self.spec.key)
    }

    fn with_exprs_and_inputs(&self, _exprs: Vec<Expr>, mut inputs: Vec<LogicalPlan>) -> Result<Self> {
        if inputs.len() != 1 {
            return internal_err!("MapPartitions takes one input, got {}", inputs.len());
        }
        Ok(Self { input: inputs.swap_remove(0), spec: self.spec.clone(), schema: self.schema.clone() })
    }
}

/// The physical node: one task per input partition, each running the kernel over its rows.
pub struct MapPartitionsExec {
    input: Arc<dyn ExecutionPlan>,
    spec: MapPartitionsSpec,
    kernel: Arc<dyn PartitionKernel>,
    args: serde_json::Value,
    key_exprs: Vec<Arc<dyn PhysicalExpr>>,
    properties: Arc<PlanProperties>,
}

impl fmt::Debug for MapPartitionsExec {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "MapPartitionsExec({:?})", self.spec)
    }
}

impl MapPartitionsExec {
    /// The node over `input` (also how the codec re-creates it on an executor).
    pub fn try_new(input: Arc<dyn ExecutionPlan>, spec: MapPartitionsSpec) -> Result<Self> {
        let input_schema = input.schema();
        let schema = spec.output_schema(&input_schema)?;
        let key_exprs = spec
            .key
            .iter()
            .map(|c| Ok(Arc::new(Column::new(c, input_schema.index_of(c)?)) as Arc<dyn PhysicalExpr>))
            .collect::<Result<Vec<_>>>()?;
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(schema),
            Partitioning::UnknownPartitioning(input.output_partitioning().partition_count()),
            EmissionType::Final,
            Boundedness::Bounded,
        ));
        Ok(Self { kernel: kernel(&spec.kernel)?, args: spec.parsed_args()?, input, spec, key_exprs, properties })
    }

    /// The wire form.
    pub fn spec(&self) -> &MapPartitionsSpec {
        &self.spec
    }
}

impl DisplayAs for MapPartitionsExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "MapPartitionsExec: kernel={} key={:?}", self.spec.kernel, self.spec.key)
    }
}

impl ExecutionPlan for MapPartitionsExec {
    fn name(&self) -> &str {
        "MapPartitionsExec"
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
            [child] => Ok(Arc::new(Self::try_new(child.clone(), self.spec.clone())?)),
            _ => internal_err!("MapPartitionsExec takes one child"),
        }
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![false]
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![!self.spec.single]
    }

    fn required_input_distribution(&self) -> Vec<Distribution> {
        if self.spec.single {
            vec![Distribution::SinglePartition]
        } else if self.key_exprs.is_empty() {
            vec![Distribution::UnspecifiedDistribution]
        } else {
            vec![Distribution::KeyPartitioned(self.key_exprs.clone())]
        }
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let input = self.input.execute(partition, context)?;
        let run = self.kernel.run(self.args.clone(), input, partition);
        let batches = futures::stream::once(run)
            .map_ok(|batches| futures::stream::iter(batches.into_iter().map(Ok)))
            .try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(self.properties.eq_properties.schema().clone(), batches.boxed())))
    }
}

/// Plans [`MapPartitionsNode`]s; everything else is DataFusion's.
#[derive(Debug, Default)]
pub struct BackbeatQueryPlanner;

#[async_trait]
impl QueryPlanner for BackbeatQueryPlanner {
    async fn create_physical_plan(&self, plan: &LogicalPlan, session: &dyn Session) -> Result<Arc<dyn ExecutionPlan>> {
        DefaultPhysicalPlanner::with_extension_planners(vec![Arc::new(MapPartitionsPlanner)])
            .create_physical_plan(plan, session)
            .await
    }
}

struct MapPartitionsPlanner;

#[async_trait]
impl ExtensionPlanner for MapPartitionsPlanner {
    async fn plan_extension(
        &self,
        _planner: &dyn PhysicalPlanner,
        node: &dyn UserDefinedLogicalNode,
        _logical_inputs: &[&LogicalPlan],
        physical_inputs: &[Arc<dyn ExecutionPlan>],
        _session: &dyn Session,
        _planning_ctx: &PhysicalPlanningContext,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        let Some(node) = node.as_any().downcast_ref::<MapPartitionsNode>() else {
            return Ok(None);
        };
        let [input] = physical_inputs else {
            return internal_err!("MapPartitions takes one input");
        };
        Ok(Some(Arc::new(MapPartitionsExec::try_new(input.clone(), node.spec.clone())?)))
    }
}
