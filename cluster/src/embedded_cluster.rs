//! The embedded cluster: a scheduler and one executor inside the client process.
//!
//! Ballista's own standalone mode has executors poll for work every 50 ms (a small query costs
//! 300-600 ms) and drops its `TempDir` at once, so shuffle files pile up in /tmp. Here the same
//! push-scheduled scheduler and executor as a real cluster run in-process on free loopback ports, and
//! the work directory is owned by [`EmbeddedCluster`] and removed when it is dropped. A process that
//! is killed cannot clean up, so each work directory carries its owner's pid, and every start
//! removes the directories of owners that no longer run.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tempfile::TempDir;
use tokio::task::JoinHandle;

use crate::executor_process::{ExecutorOptions, run_executor};
use crate::local_cluster::free_port;
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
        sweep_stale_work_dirs();
        let work_dir = tempfile::Builder::new()
            .prefix(&format!("{WORK_DIR_PREFIX}{}-", std::process::id()))
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
            memory_pool: embedded_memory_pool()?,
            heartbeat_seconds: crate::executor_process::DEFAULT_HEARTBEAT_SECONDS,
            tls: None,
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

const WORK_DIR_PREFIX: &str = "backbeat-embedded-";

/// Removes `backbeat-embedded-<pid>-*` work directories whose process is gone (killed, crashed).
/// Linux only: it asks /proc whether the pid runs; a reused pid just postpones the clean-up.
fn sweep_stale_work_dirs() {
    if !cfg!(target_os = "linux") {
        return;
    }
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(WORK_DIR_PREFIX)
            .and_then(|rest| rest.split_once('-'))
            .and_then(|(pid, _)| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            match std::fs::remove_dir_all(entry.path()) {
                Ok(()) => tracing::info!("removed the work directory of dead process {pid}: {name}"),
                Err(e) => tracing::debug!("cannot remove {name}: {e}"),
            }
        }
    }
}


/// `BACKBEAT_EXECUTOR_MEMORY` (for example `2GiB`): the embedded executor's memory pool, as
/// `backbeat executor --memory-pool` sets a standalone one's. Unset: Ballista's default.
fn embedded_memory_pool() -> Result<Option<u64>> {
    match std::env::var("BACKBEAT_EXECUTOR_MEMORY") {
        Ok(text) if !text.trim().is_empty() => crate::executor_process::parse_memory_size(&text)
            .map(Some)
            .context("BACKBEAT_EXECUTOR_MEMORY"),
        _ => Ok(None),
    }
}
