//! The executor process: Ballista's executor with backbeat's codecs and UDF registry.

use std::sync::Arc;

use anyhow::{Context, Result};
use ballista_core::config::TaskSchedulingPolicy;
use ballista_executor::executor_process::{ExecutorProcessConfig, start_executor_process};

use crate::codec::{BackbeatLogicalCodec, BackbeatPhysicalCodec};
use crate::udf_registry::executor_function_registry;

/// Where an executor listens and which scheduler it serves.
#[derive(Debug, Clone)]
pub struct ExecutorOptions {
    /// Scheduler host.
    pub scheduler_host: String,
    /// Scheduler port.
    pub scheduler_port: u16,
    /// IP address to bind.
    pub bind_host: String,
    /// Host name or IP advertised to the scheduler and to other executors.
    pub external_host: String,
    /// Arrow Flight port (shuffle data is fetched from here).
    pub flight_port: u16,
    /// gRPC port the scheduler pushes tasks to.
    pub grpc_port: u16,
    /// Directory for shuffle files; a fresh temporary directory when `None`.
    pub work_dir: Option<String>,
    /// Tasks run at once; 0 means one per core.
    pub concurrency: usize,
    /// Bytes of memory the executor's tasks may hold in sorts, aggregates and joins, shared out
    /// per task slot; beyond it sorts and aggregates spill to `work_dir`, and operators that cannot
    /// spill (a hash join's build side) fail with "Resources exhausted". `None`: Ballista's
    /// default, 70% of the host's (or cgroup's) memory.
    pub memory_pool: Option<u64>,
    /// Seconds between heartbeats to the scheduler (see [`DEFAULT_HEARTBEAT_SECONDS`]).
    pub heartbeat_seconds: u64,
    /// Mutual TLS: fronts on `bind_host`'s two ports, the servers themselves on 127.0.0.1.
    pub tls: Option<crate::cluster_tls::ClusterTls>,
}

/// Parses a memory size: bytes, or a number with a K, M, G or T suffix (powers of 1024; "GiB",
/// "GB" and "g" all mean the same).
pub fn parse_memory_size(text: &str) -> Result<u64> {
    let t = text.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let value: f64 = number
        .parse()
        .with_context(|| format!("memory size '{text}' does not start with a number (try 2GiB or 512M)"))?;
    let shift = match unit.trim().to_ascii_lowercase().trim_end_matches('b').trim_end_matches('i') {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        other => anyhow::bail!("memory size '{text}': unknown unit '{other}' (use K, M, G or T)"),
    };
    Ok((value * (1u64 << shift) as f64) as u64)
}

/// Seconds between an executor's heartbeats: a fifth of the scheduler's default executor timeout,
/// so one late beat never gets an executor forgotten (Ballista's default is 60 s).
pub const DEFAULT_HEARTBEAT_SECONDS: u64 = 5;

/// Builds Ballista's executor configuration from [`ExecutorOptions`].
pub fn executor_config(options: &ExecutorOptions) -> ExecutorProcessConfig {
    crate::object_storage::register_object_stores();
    // Tasks read and write `s3://` lakes with stores this process builds from its own environment.
    let registry = Arc::new(crate::object_storage::LakeObjectStoreRegistry::default());
    let temp_dir = options.work_dir.clone().unwrap_or_else(|| std::env::temp_dir().to_string_lossy().into_owned());
    let runtime_producer: ballista_core::RuntimeProducer = Arc::new(move |_| {
        let runtime = datafusion::execution::runtime_env::RuntimeEnvBuilder::new()
            .with_temp_file_path(temp_dir.clone())
            .with_object_store_registry(registry.clone())
            .build()?;
        Ok(Arc::new(runtime))
    });
    let (bind_host, endpoint_override, config_producer) = match &options.tls {
        None => (options.bind_host.clone(), None, None),
        Some(tls) => {
            let endpoint = tls.endpoint_override();
            let for_tasks = endpoint.clone();
            // Shuffle fetches from other executors read the task's session config.
            let producer: ballista_core::ConfigProducer = Arc::new(move || {
                use ballista::extension::SessionConfigExt;
                datafusion::prelude::SessionConfig::new_with_ballista()
                    .with_ballista_use_tls(true)
                    .with_ballista_override_create_grpc_client_endpoint(for_tasks.clone())
            });
            (std::net::Ipv4Addr::LOCALHOST.to_string(), Some(endpoint), Some(producer))
        }
    };
    ExecutorProcessConfig {
        bind_host,
        external_host: Some(options.external_host.clone()),
        port: options.flight_port,
        grpc_port: options.grpc_port,
        scheduler_host: options.scheduler_host.clone(),
        scheduler_port: options.scheduler_port,
        // Wait for a scheduler that is still starting rather than failing at once.
        scheduler_connect_timeout_seconds: 20,
        vcores: options.concurrency,
        executor_heartbeat_interval_seconds: options.heartbeat_seconds.max(1),
        memory_pool_size: options.memory_pool,
        task_scheduling_policy: TaskSchedulingPolicy::PushStaged,
        work_dir: options.work_dir.clone(),
        print_thread_info: false,
        // Shuffle files of finished jobs are removed by the scheduler's clean-up call; this sweep
        // catches what a crashed job left behind.
        job_data_ttl_seconds: 3600,
        job_data_clean_up_interval_seconds: 600,
        override_function_registry: Some(Arc::new(executor_function_registry())),
        override_logical_codec: Some(Arc::new(BackbeatLogicalCodec::default())),
        override_physical_codec: Some(Arc::new(BackbeatPhysicalCodec::default())),
        override_execution_engine: Some(Arc::new(crate::stage_engine::StageEngine::default())),
        override_runtime_producer: Some(runtime_producer),
        override_create_grpc_client_endpoint: endpoint_override,
        override_config_producer: config_producer,
        ..Default::default()
    }
}

/// Runs an executor until the process is stopped.
pub async fn run_executor(options: ExecutorOptions) -> Result<()> {
    let config = executor_config(&options);
    let mut fronts = Vec::new();
    if let Some(tls) = &options.tls {
        let ip: std::net::IpAddr = options.bind_host.parse().with_context(|| format!("--bind host '{}' is not an IP address", options.bind_host))?;
        if ip.is_unspecified() || ip == std::net::IpAddr::from(std::net::Ipv4Addr::LOCALHOST) {
            anyhow::bail!(
                "with cluster TLS, --bind must be this host's own address (not {ip}): the TLS front listens there and the \
                 executor behind it on 127.0.0.1 at the same ports"
            );
        }
        for port in [options.flight_port, options.grpc_port] {
            let listener = tokio::net::TcpListener::bind((ip, port))
                .await
                .with_context(|| format!("cannot bind the executor's TLS front to {ip}:{port}"))?;
            fronts.push(crate::scheduler_process::AbortOnDrop(tls.spawn_front(listener, (std::net::Ipv4Addr::LOCALHOST, port).into())?));
        }
    }
    tracing::info!(
        memory_pool = ?options.memory_pool,
        scheduler = %format!("{}:{}", options.scheduler_host, options.scheduler_port),
        flight = %format!("{}:{}", options.external_host, options.flight_port),
        "backbeat executor starting"
    );
    start_executor_process(Arc::new(config))
        .await
        .with_context(|| format!("executor for scheduler {}:{} stopped", options.scheduler_host, options.scheduler_port))
}

#[cfg(test)]
mod tests {
    use super::parse_memory_size;

    #[test]
    fn memory_sizes_parse_with_binary_units() {
        assert_eq!(parse_memory_size("1024").unwrap(), 1024);
        assert_eq!(parse_memory_size("2GiB").unwrap(), 2 << 30);
        assert_eq!(parse_memory_size("2g").unwrap(), 2 << 30);
        assert_eq!(parse_memory_size("1.5 GB").unwrap(), 3 << 29);
        assert_eq!(parse_memory_size("512M").unwrap(), 512 << 20);
        let err = parse_memory_size("2 parsecs").unwrap_err().to_string();
        assert!(err.contains("unknown unit 'parsecs'"), "{err}");
        assert!(parse_memory_size("lots").is_err());
    }
}
