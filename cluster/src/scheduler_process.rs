//! The scheduler process: Ballista's scheduler with backbeat's codecs and UDFs, push scheduling.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use ballista_core::config::TaskSchedulingPolicy;
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::{SchedulerConfig, TaskDistributionPolicy};
use ballista_scheduler::scheduler_process::{create_scheduler, start_grpc_service_with_listener};
use ballista_scheduler::scheduler_server::SchedulerServer;
use datafusion_proto::protobuf::{LogicalPlanNode, PhysicalPlanNode};
use tokio::net::TcpListener;

use crate::codec::{BackbeatLogicalCodec, BackbeatPhysicalCodec};
use crate::session::scheduler_session_state;

/// The scheduler's default port; REST (`/api/...`) and Prometheus metrics share it.
pub const DEFAULT_SCHEDULER_PORT: u16 = 50050;

/// The scheduler configuration backbeat runs with, for a scheduler reachable at `host:port`.
///
/// Push-staged scheduling: the scheduler hands tasks to executors as soon as a stage is runnable,
/// instead of executors polling every 50 ms (which is what makes Ballista's standalone mode slow).
/// Round-robin task distribution spreads a stage's tasks over all executors.
pub fn scheduler_config(host: &str, port: u16) -> SchedulerConfig {
    SchedulerConfig {
        bind_host: host.to_string(),
        external_host: host.to_string(),
        bind_port: port,
        scheduling_policy: TaskSchedulingPolicy::PushStaged,
        task_distribution: TaskDistributionPolicy::RoundRobin,
        override_session_builder: Some(Arc::new(scheduler_session_state)),
        override_logical_codec: Some(Arc::new(BackbeatLogicalCodec::default())),
        override_physical_codec: Some(Arc::new(BackbeatPhysicalCodec::default())),
        ..Default::default()
    }
}

/// A scheduler bound to its port and ready to serve.
pub struct BoundScheduler {
    listener: TcpListener,
    server: SchedulerServer<LogicalPlanNode, PhysicalPlanNode>,
}

impl BoundScheduler {
    /// Binds `addr` (port 0 picks a free port) and initialises the scheduler state.
    pub async fn bind(addr: SocketAddr) -> Result<Self> {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot bind scheduler to {addr}"))?;
        let local = listener.local_addr()?;
        let config = Arc::new(scheduler_config(&local.ip().to_string(), local.port()));
        let cluster = BallistaCluster::new_from_config(&config)
            .await
            .context("cannot create scheduler cluster state")?;
        let server = create_scheduler::<LogicalPlanNode, PhysicalPlanNode>(cluster, config)
            .await
            .context("cannot start scheduler")?;
        Ok(Self { listener, server })
    }

    /// The address the scheduler listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("bound listener has an address")
    }

    /// A handle on the scheduler's state, e.g. to see which executors have registered.
    pub fn server(&self) -> SchedulerServer<LogicalPlanNode, PhysicalPlanNode> {
        self.server.clone()
    }

    /// Serves gRPC, REST and metrics until the process ends.
    pub async fn serve(self) -> Result<()> {
        tracing::info!(addr = %self.local_addr(), "backbeat scheduler listening");
        start_grpc_service_with_listener(self.listener, self.server)
            .await
            .context("scheduler stopped")
    }
}

/// Runs a scheduler on `addr` until the process is stopped.
pub async fn run_scheduler(addr: SocketAddr) -> Result<()> {
    BoundScheduler::bind(addr).await?.serve().await
}
