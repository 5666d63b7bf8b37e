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
///
/// A lost executor is noticed when its heartbeats stop for `executor_timeout_seconds`: the
/// scheduler then forgets it and reruns the stages whose outputs it held. Ballista's default is
/// 180 s against a 60 s heartbeat; backbeat's executors beat every
/// [`crate::executor_process::DEFAULT_HEARTBEAT_SECONDS`] so the default here is
/// [`DEFAULT_EXECUTOR_TIMEOUT_SECONDS`] (Spark: 10 s heartbeats, 120 s network timeout).
pub fn scheduler_config(host: &str, port: u16, executor_timeout_seconds: u64) -> SchedulerConfig {
    SchedulerConfig {
        executor_timeout_seconds,
        // A task that cannot fetch a lost executor's shuffle output fails its job at once, with
        // the reason, instead of Ballista 55's stage resubmission, which returned a *wrong* answer
        // for TPC-H q18 (see `crate::executor_loss`). Plain task failures still retry
        // (`task_max_failures`).
        stage_max_failures: 1,
        // Look for silent executors every few seconds, so detection takes the timeout, not more.
        expire_dead_executor_interval_seconds: 3,
        no_executors_grace_period_seconds: executor_timeout_seconds,
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

/// Seconds without a heartbeat after which the scheduler forgets an executor.
pub const DEFAULT_EXECUTOR_TIMEOUT_SECONDS: u64 = 30;

/// How a scheduler runs beyond its address.
#[derive(Debug, Clone)]
pub struct SchedulerOptions {
    /// Seconds without a heartbeat after which an executor is forgotten and its work rerun.
    pub executor_timeout_seconds: u64,
    /// The host name executors reach the scheduler by [default: the bind IP].
    pub external_host: Option<String>,
    /// Mutual TLS for every connection (see [`crate::cluster_tls`]).
    pub tls: Option<crate::cluster_tls::ClusterTls>,
}

impl Default for SchedulerOptions {
    fn default() -> Self {
        Self { executor_timeout_seconds: DEFAULT_EXECUTOR_TIMEOUT_SECONDS, external_host: None, tls: None }
    }
}

/// A scheduler bound to its port and ready to serve.
pub struct BoundScheduler {
    /// Where Ballista's server listens: the public address, or 127.0.0.1 behind a TLS front.
    listener: TcpListener,
    /// The TLS front's listener on the public address, when the cluster uses TLS.
    front: Option<(TcpListener, crate::cluster_tls::ClusterTls)>,
    server: SchedulerServer<LogicalPlanNode, PhysicalPlanNode>,
}

impl BoundScheduler {
    /// Binds `addr` (port 0 picks a free port) and initialises the scheduler state.
    pub async fn bind(addr: SocketAddr) -> Result<Self> {
        Self::bind_with(addr, &SchedulerOptions::default()).await
    }

    /// [`BoundScheduler::bind`] with [`SchedulerOptions`]: with TLS, mutual TLS is served on
    /// `addr` in front of a loopback-only Ballista server.
    pub async fn bind_with(addr: SocketAddr, options: &SchedulerOptions) -> Result<Self> {
        let (executor_timeout_seconds, tls) = (options.executor_timeout_seconds, options.tls.as_ref());
        let public = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot bind scheduler to {addr}"))?;
        let (listener, front) = match tls {
            None => (public, None),
            Some(tls) => {
                let inner = TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).await.context("cannot bind the scheduler behind its TLS front")?;
                (inner, Some((public, tls.clone())))
            }
        };
        // Executors report task status to the address the scheduler advertises: the public one
        // (the TLS front's), under the name others reach this host by.
        let public = front.as_ref().map_or(&listener, |(front, _)| front).local_addr()?;
        let host = options.external_host.clone().unwrap_or_else(|| public.ip().to_string());
        let mut config = scheduler_config(&host, public.port(), executor_timeout_seconds);
        if let Some(tls) = tls {
            config.use_tls = true;
            config.override_create_grpc_client_endpoint = Some(tls.endpoint_override());
        }
        let config = Arc::new(config);
        let cluster = BallistaCluster::new_from_config(&config)
            .await
            .context("cannot create scheduler cluster state")?;
        let server = create_scheduler::<LogicalPlanNode, PhysicalPlanNode>(cluster, config)
            .await
            .context("cannot start scheduler")?;
        Ok(Self { listener, front, server })
    }

    /// The address the scheduler listens on.
    pub fn local_addr(&self) -> SocketAddr {
        let listener = self.front.as_ref().map_or(&self.listener, |(front, _)| front);
        listener.local_addr().expect("bound listener has an address")
    }

    /// A handle on the scheduler's state, e.g. to see which executors have registered.
    pub fn server(&self) -> SchedulerServer<LogicalPlanNode, PhysicalPlanNode> {
        self.server.clone()
    }

    /// Serves gRPC, REST and metrics until the process ends.
    pub async fn serve(self) -> Result<()> {
        tracing::info!(addr = %self.local_addr(), tls = self.front.is_some(), "backbeat scheduler listening");
        let _watch = AbortOnDrop(crate::executor_loss::spawn_watch(self.server.clone()));
        let _front = match self.front {
            Some((front, tls)) => Some(AbortOnDrop(tls.spawn_front(front, self.listener.local_addr()?)?)),
            None => None,
        };
        start_grpc_service_with_listener(self.listener, self.server)
            .await
            .context("scheduler stopped")
    }
}

/// Runs a scheduler on `addr` until the process is stopped.
pub async fn run_scheduler(addr: SocketAddr) -> Result<()> {
    BoundScheduler::bind(addr).await?.serve().await
}

/// Stops a helper task (TLS front, executor-loss watch, metrics) with the server it serves.
pub struct AbortOnDrop(pub tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
