//! The embedded cluster: a scheduler and one executor inside the client process.
//!
//! Ballista's own standalone mode has executors poll for work every 50 ms (a small query costs
//! 300-600 ms) and drops its `TempDir` at once, so shuffle files pile up in /tmp. Here the same
//! push-scheduled scheduler and executor as a real cluster run in-process on free loopback ports, and
//! the work directory is owned by [`EmbeddedCluster`] and removed when it is dropped.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tempfile::TempDir;
use tokio::task::JoinHandle;

use crate::executor_process::{ExecutorOptions, run_executor};
use crate::scheduler_process::BoundScheduler;

/// A running in-process cluster; stops and cleans up when dropped.
pub struct EmbeddedCluster {
    scheduler_addr: SocketAddr,
    tasks: Vec<JoinHandle<()>>,
    // Dropped last: executors must stop writing before the directory goes.
    _work_dir: TempDir,
}

impl EmbeddedCluster {
    /// Starts a scheduler and an executor running `concurrency` tasks at once (0 = one per core)
    /// and waits until the executor has registered.
    pub async fn start(concurrency: usize) -> Result<Self> {
        let work_dir = tempfile::Builder::new()
            .prefix("backbeat-embedded-")
            .tempdir()
            .context("cannot create the embedded cluster's work directory")?;
        let scheduler = BoundScheduler::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await?;
        let scheduler_addr = scheduler.local_addr();
        let server = scheduler.server();
        let mut tasks = vec![tokio::spawn(async move {
            if let Err(e) = scheduler.serve().await {
                tracing::error!("embedded scheduler: {e:#}");
            }
        })];

        let options = ExecutorOptions {
            scheduler_host: scheduler_addr.ip().to_string(),
            scheduler_port: scheduler_addr.port(),
            bind_host: Ipv4Addr::LOCALHOST.to_string(),
            external_host: Ipv4Addr::LOCALHOST.to_string(),
            flight_port: free_port()?,
            grpc_port: free_port()?,
            work_dir: Some(work_dir.path().to_string_lossy().into_owned()),
            concurrency,
        };
        tasks.push(tokio::spawn(async move {
            if let Err(e) = run_executor(options).await {
                tracing::error!("embedded executor: {e:#}");
            }
        }));

        let cluster = Self { scheduler_addr, tasks, _work_dir: work_dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let registered = server.state.executor_manager.get_executors_state().await.map(|s| s.len()).unwrap_or(0);
            if registered > 0 {
                break;
            }
            if Instant::now() > deadline {
                bail!("the embedded executor did not register with the embedded scheduler within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(cluster)
    }

    /// The `df://host:port` URL clients connect to.
    pub fn url(&self) -> String {
        format!("df://{}", self.scheduler_addr)
    }
}

impl Drop for EmbeddedCluster {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// A port that was free a moment ago (the OS picks it; we release it for the executor to bind).
fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("no free loopback port")?;
    Ok(listener.local_addr()?.port())
}
