//! Client sessions: a DataFusion `SessionContext` that plans locally and runs on a Ballista cluster,
//! with the lake as its default schema, backbeat's UDFs, and Delta writes.
//!
//! Also the session states the scheduler and executors build, so that all three sides share one
//! definition of codecs and functions.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use ballista::extension::{SessionConfigExt, SessionContextExt};
use datafusion::catalog::TableProvider;
use datafusion::common::TableReference;
use datafusion::dataframe::DataFrame;
use datafusion::datasource::provider_as_source;
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::LogicalPlanBuilder;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::codec::{BackbeatLogicalCodec, BackbeatPhysicalCodec};
use crate::delta::DeltaTableProvider;
use crate::delta::schema::delta_compatible_schema;
pub use crate::delta::WriteMode;
use crate::embedded_cluster::EmbeddedCluster;
use crate::lake_catalog::{LakeCatalog, LakeRoot, TableFormat};
use crate::local_cluster::scheduler_vcores;
use crate::sql_script::{Statement, parse_statement};
use crate::udf_registry::backbeat_udfs;

/// The session configuration shared by clients: Ballista's, with backbeat's codecs.
pub fn client_session_config() -> SessionConfig {
    SessionConfig::new_with_ballista()
        .set_bool(FORCE_VIEW_TYPES, false)
        .set_bool(ADAPTIVE_PLANNER, false)
        .with_ballista_logical_extension_codec(Arc::new(BackbeatLogicalCodec::default()))
        .with_ballista_physical_extension_codec(Arc::new(BackbeatPhysicalCodec::default()))
        .with_information_schema(true)
}

/// DataFusion reads Parquet strings as `Utf8View` by default. A view array that is sliced (a TopK's
/// 20 rows, a hash repartition's share of a batch) still references every data buffer of its
/// source, and Arrow IPC writes them all: TPC-H q10's 20-row result weighed 12.7 MB in its shuffle
/// file and ~100 MB on the wire, as Flight re-sends the buffers with each chunk of a batch. Plain
/// `Utf8` slices are written compactly, so backbeat reads strings as `Utf8` on every side.
pub const FORCE_VIEW_TYPES: &str = "datafusion.execution.parquet.schema_force_view_types";

/// Ballista 55 turns on its adaptive query planner by default. Here it returned wrong answers and
/// hung jobs: a `UNION ALL` of seven one-row selects over one aggregate CTE gave some rows three or
/// four times (`isrc_eval`'s metrics table); `WITH c AS (SELECT count(*) ...) SELECT ... FROM c
/// UNION ALL ... ORDER BY o` failed the scheduler's re-planning with a SanityCheckPlan error after
/// its first stage, the task status was dropped and the query waited forever. Both run correctly
/// with the static distributed planner, which every session here uses (the scheduler forces it too).
pub const ADAPTIVE_PLANNER: &str = "ballista.planner.adaptive.enabled";

/// The scheduler's session builder: Ballista's default state plus backbeat's UDFs and plan nodes.
pub fn scheduler_session_state(config: SessionConfig) -> datafusion::common::Result<SessionState> {
    let mut config = config;
    if let Err(e) = config.options_mut().set(ADAPTIVE_PLANNER, "false") {
        tracing::warn!("cannot turn off Ballista's adaptive planner in a scheduler session: {e}");
    }
    let state = ballista_core::utils::default_session_builder(config)?;
    // Plans map-partitions steps (ALS solves, kNN) as well as everything DataFusion plans; lists
    // `s3://` lakes with stores built from the scheduler's own environment.
    let mut state = SessionStateBuilder::new_from_existing(state)
        .with_runtime_env(lake_runtime_env()?)
        .with_query_planner(Arc::new(crate::map_partitions::BackbeatQueryPlanner))
        .build();
    for udf in backbeat_udfs() {
        datafusion::execution::FunctionRegistry::register_udf(&mut state, udf)?;
    }
    Ok(state)
}

/// A runtime whose object-store registry resolves `s3://` lakes (see [`crate::object_storage`]).
pub fn lake_runtime_env() -> datafusion::common::Result<Arc<datafusion::execution::runtime_env::RuntimeEnv>> {
    crate::object_storage::register_object_stores();
    let registry = Arc::new(crate::object_storage::LakeObjectStoreRegistry::default());
    Ok(Arc::new(datafusion::execution::runtime_env::RuntimeEnvBuilder::new().with_object_store_registry(registry).build()?))
}

/// Where queries run.
#[derive(Debug, Clone)]
pub enum ClusterTarget {
    /// An in-process scheduler and executor.
    Embedded {
        /// Tasks run at once; 0 = one per core.
        concurrency: usize,
    },
    /// A running scheduler, `df://host:port`.
    Remote(String),
}

/// A connection to a cluster, with a lake.
pub struct BackbeatSession {
    ctx: SessionContext,
    lake: Arc<LakeCatalog>,
    // Kept alive for as long as the session: dropping it stops the in-process cluster.
    _embedded: Option<EmbeddedCluster>,
    /// VACUUM refuses a retention under the table's unless this is off.
    retention_check: AtomicBool,
}

impl BackbeatSession {
    /// Connects to `target` with the lake in directory `lake_root` (which must exist).
    pub async fn connect(target: ClusterTarget, lake_root: &Path) -> Result<Self> {
        Self::connect_lake(target, LakeRoot::local(lake_root)?).await
    }

    /// Connects to `target` with the lake at `lake` (a directory or an `s3://` prefix), after
    /// checking that the lake can be listed.
    pub async fn connect_lake(target: ClusterTarget, lake: LakeRoot) -> Result<Self> {
        lake.check().await?;
        let lake = Arc::new(LakeCatalog::open_root(lake)?);
        // An object-store lake answers SHOW TABLES and Flight SQL's table list from the names it
        // has seen (DataFusion asks synchronously): list the bucket once now.
        if lake.lake_root().local_dir().is_none() {
            lake.table_names_in_lake().await?;
        }
        let (url, embedded, slots) = match target {
            ClusterTarget::Embedded { concurrency } => {
                let cluster = EmbeddedCluster::start(concurrency).await?;
                let slots = if concurrency == 0 { num_cpus() } else { concurrency };
                (cluster.url(), Some(cluster), slots)
            }
            ClusterTarget::Remote(url) => {
                let (host, port) = check_reachable(&url).await?;
                let slots = tokio::task::spawn_blocking(move || scheduler_vcores(&host, port))
                    .await
                    .ok()
                    .flatten()
                    .unwrap_or_else(num_cpus);
                (url, None, slots)
            }
        };
        // Ballista's client configuration plans every job with 16 partitions, whatever the cluster.
        // On a 2-slot cluster that makes each stage 8 tasks run one after another (a scheduler round
        // trip each), and every hash exchange writes 16 files per task: TPC-H SF1 took 14.0 s
        // embedded at 16 partitions and 9.2 s at 2. One partition per task slot is the default;
        // `SET datafusion.execution.target_partitions = N` overrides it per session.
        let mut config = client_session_config().with_target_partitions(slots.max(1));
        if let (None, Some(tls)) = (&embedded, crate::cluster_tls::ClusterTls::current()) {
            config = config.with_ballista_use_tls(true).with_ballista_override_create_grpc_client_endpoint(tls.endpoint_override());
        }
        let state = SessionStateBuilder::new()
            .with_config(config)
            .with_default_features()
            .with_runtime_env(lake_runtime_env()?)
            .build();
        let ctx = SessionContext::remote_with_state(&url, state)
            .await
            .with_context(|| format!("cannot connect to scheduler {url}"))?;
        // Last of the optimizer's rules, so nothing folds its rewrite away before the plan ships.
        ctx.add_optimizer_rule(Arc::new(crate::empty_relation::ShippableEmptyRelation));
        // UDFs go on after `remote_with_state`, which builds a fresh function registry.
        for udf in backbeat_udfs() {
            ctx.register_udf(udf.as_ref().clone());
        }
        let catalog = ctx
            .catalog("datafusion")
            .context("default catalog missing")?;
        catalog.register_schema("public", lake.clone())?;
        Ok(Self { ctx, lake, _embedded: embedded, retention_check: AtomicBool::new(true) })
    }

    /// Another handle on this session: the same context (settings, registered tables and UDFs), lake
    /// and cluster, for a server that needs to own one. It does not keep an embedded cluster
    /// alive: this session must outlive it.
    pub fn shared(&self) -> Self {
        Self {
            ctx: self.ctx.clone(),
            lake: self.lake.clone(),
            _embedded: None,
            retention_check: AtomicBool::new(self.retention_check()),
        }
    }

    /// The DataFusion context, for the DataFrame API.
    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// The lake this session reads and writes.
    pub fn lake(&self) -> &LakeCatalog {
        &self.lake
    }

    /// Whether VACUUM enforces the table's retention (see [`crate::lake_sql::LakeStatement`]).
    pub fn retention_check(&self) -> bool {
        self.retention_check.load(Ordering::Relaxed)
    }

    /// Turns VACUUM's retention check on or off for this session.
    pub fn set_retention_check(&self, on: bool) {
        self.retention_check.store(on, Ordering::Relaxed);
    }

    /// Plans one SQL statement. `CREATE [OR REPLACE] TABLE ... AS` becomes a Delta write (DataFusion
    /// alone would build an in-memory table on the client); the lake's own statements (`MERGE`,
    /// `UPDATE`, `DELETE`, `OPTIMIZE`, `VACUUM`, `DESCRIBE HISTORY`, `RESTORE`) run at once through
    /// [`crate::lake_sql`] and return their report; everything else is DataFusion SQL.
    pub async fn sql(&self, sql: &str) -> Result<DataFrame> {
        if let Some(statement) = crate::lake_sql::parse(sql)? {
            return crate::lake_sql::execute(self, statement).await;
        }
        match parse_statement(sql)? {
            Statement::CreateTableAs {
                name,
                replace,
                if_not_exists,
                partition_by,
                query,
            } => {
                if self.lake.table_format(&name).await?.is_some() {
                    if if_not_exists {
                        return Ok(self.ctx.sql("SELECT arrow_cast(0, 'UInt64') AS count").await?);
                    }
                    if !replace {
                        bail!("table '{name}' already exists (use CREATE OR REPLACE TABLE, or INSERT INTO)");
                    }
                }
                let df = self.ctx.sql(&query).await?;
                let mode = if replace { WriteMode::CreateOrReplace } else { WriteMode::Create };
                self.write_table(df, &name, mode, &partition_by).await
            }
            Statement::Other(sql) => {
                let df = self.ctx.sql(&sql).await?;
                check_shippable(&df)?;
                Ok(df)
            }
        }
    }

    /// Plans writing `df` into lake table `name` as a Delta table, partitioned by `partition_by`
    /// when the write creates it. Nothing happens until the returned DataFrame is collected; it
    /// yields one row, `count`, the rows written.
    pub async fn write_table(
        &self,
        df: DataFrame,
        name: &str,
        mode: WriteMode,
        partition_by: &[String],
    ) -> Result<DataFrame> {
        let url = self.lake.table_url(name)?;
        let existing = self.lake.table_format(name).await?;
        if existing == Some(TableFormat::Parquet) {
            bail!("'{name}' is a Parquet directory; backbeat writes Delta tables only");
        }
        let create = |replace| -> Result<DeltaTableProvider> {
            let schema = delta_compatible_schema(df.schema().as_arrow())?;
            Ok(DeltaTableProvider::for_create(&url, schema, partition_by.to_vec(), replace)?)
        };
        let (provider, op) = match (mode, existing) {
            (WriteMode::Create, Some(_)) => bail!("table '{name}' already exists"),
            (WriteMode::Create, None) | (WriteMode::Append | WriteMode::Overwrite, None) => {
                (create(false)?, InsertOp::Append)
            }
            (WriteMode::CreateOrReplace, _) => (create(true)?, InsertOp::Overwrite),
            (WriteMode::Append, Some(_)) => (DeltaTableProvider::open(&url, None).await?, InsertOp::Append),
            (WriteMode::Overwrite, Some(_)) => (DeltaTableProvider::open(&url, None).await?, InsertOp::Overwrite),
            (WriteMode::Merge, _) => bail!("writing '{name}' with mode merge needs key columns: use MERGE INTO"),
        };
        let provider: Arc<dyn TableProvider> = Arc::new(provider);
        let plan = LogicalPlanBuilder::insert_into(
            df.into_unoptimized_plan(),
            TableReference::bare(name),
            provider_as_source(provider),
            op,
        )?
        .build()?;
        Ok(DataFrame::new(self.ctx.state(), plan))
    }
}

/// Fails, naming the part, when a query's plan cannot be sent to the scheduler. Without this the
/// query fails only when it runs, as an "Internal error ... likely caused by a bug in DataFusion's
/// code", which it is not: some plan part (a table provider) simply has no wire form.
fn check_shippable(df: &DataFrame) -> Result<()> {
    use datafusion::logical_expr::LogicalPlan;
    use datafusion_proto::logical_plan::AsLogicalPlan;
    if matches!(
        df.logical_plan(),
        LogicalPlan::Ddl(_) | LogicalPlan::Statement(_) | LogicalPlan::DescribeTable(_) | LogicalPlan::Explain(_)
    ) {
        return Ok(());
    }
    // Ballista sends the optimized plan (subqueries decorrelated into joins, which is what makes
    // `NOT EXISTS (...)` serializable); an optimizer error is left for the run to report.
    let Ok(plan) = df.clone().into_optimized_plan() else { return Ok(()) };
    let codec = BackbeatLogicalCodec::default();
    if let Err(e) = datafusion_proto::protobuf::LogicalPlanNode::try_from_logical_plan(&plan, &codec) {
        let message = e.to_string();
        let message = message.split(". This issue was likely caused by a bug").next().unwrap_or(&message);
        bail!("this query cannot run on the cluster: {message}");
    }
    Ok(())
}

/// Rows a write statement reported: DataFusion's DML result is one `count` column (UInt64).
pub fn rows_written(batches: &[arrow::record_batch::RecordBatch]) -> u64 {
    use arrow::array::{Array, UInt64Array};
    batches
        .iter()
        .filter_map(|b| b.column_by_name("count"))
        .filter_map(|c| c.as_any().downcast_ref::<UInt64Array>().map(|a| a.iter().flatten().sum::<u64>()))
        .sum()
}

fn num_cpus() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// Fails fast, with one clear line, when nothing listens at the scheduler URL; returns its host
/// and port.
async fn check_reachable(url: &str) -> Result<(String, u16)> {
    let parsed = url::Url::parse(url).with_context(|| format!("bad scheduler URL '{url}' (expected df://host:port)"))?;
    let host = parsed.host_str().with_context(|| format!("scheduler URL '{url}' has no host"))?;
    let port = parsed.port().unwrap_or(crate::scheduler_process::DEFAULT_SCHEDULER_PORT);
    match tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect((host, port))).await {
        Ok(Ok(_)) => Ok((host.to_string(), port)),
        Ok(Err(e)) => bail!("cannot reach scheduler at {host}:{port}: {e}"),
        Err(_) => bail!("cannot reach scheduler at {host}:{port}: timed out after 5 s"),
    }
}
