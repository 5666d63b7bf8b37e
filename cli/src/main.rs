//! `backbeat`: run SQL and DataFrame jobs over Delta Lake tables on an embedded or multi-process
//! Apache Ballista cluster.
#![warn(missing_docs)]

mod bench_command;
mod connector_bench;
mod export_command;
mod ingest_command;
mod isrc_bench;
mod jobs_command;
mod lake_bench;
mod pipeline_command;
mod clv_bench;
mod recs_bench;
mod result_output;
mod run_metrics;
mod serve_command;
mod signals;
mod sql_command;
mod status_command;
mod tables_command;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use backbeat_cluster::executor_process::{ExecutorOptions, parse_memory_size, run_executor};
use backbeat_datasets::datagen::{self, DatagenConfig, Dataset};
use backbeat_cluster::lake_catalog::LakeRoot;
use backbeat_cluster::session::{BackbeatSession, ClusterTarget};
use clap::{Args, Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use crate::result_output::OutputFormat;

#[derive(Parser)]
#[command(
    name = "backbeat",
    version,
    about = "Spark-style SQL and DataFrame jobs over Delta Lake, on Apache Ballista",
    after_help = "Examples:
  backbeat sql \"SELECT genre, count(*) FROM tracks GROUP BY genre\"      # embedded cluster, ./lake
  backbeat sql -f report.sql --lake /data/lake --format csv --out report.csv
  backbeat scheduler --bind 127.0.0.1:50050
  backbeat executor --scheduler 127.0.0.1:50050 --bind 127.0.0.1:50051
  backbeat sql --cluster df://127.0.0.1:50050 \"CREATE TABLE t AS SELECT 1 AS x\"
  backbeat tables"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// S3 setting for an s3:// lake, over the AWS_* environment (repeatable): aws_endpoint,
    /// aws_region, aws_allow_http, aws_virtual_hosted_style_request... Every process that reads the
    /// lake (client, scheduler, executors) needs the same settings.
    #[arg(long = "storage-option", global = true, value_name = "KEY=VALUE", value_parser = backbeat_cluster::object_storage::parse_storage_option)]
    storage_options: Vec<(String, String)>,
    /// Cluster TLS: this process's certificate (PEM). With --cluster-key and --cluster-ca, every
    /// scheduler, executor and client connection is mutual TLS; peers need a certificate from the CA.
    #[arg(long, global = true, env = "BACKBEAT_CLUSTER_CERT", requires_all = ["cluster_key", "cluster_ca"])]
    cluster_cert: Option<PathBuf>,
    /// Cluster TLS: the private key of --cluster-cert (PEM).
    #[arg(long, global = true, env = "BACKBEAT_CLUSTER_KEY", requires = "cluster_cert")]
    cluster_key: Option<PathBuf>,
    /// Cluster TLS: the CA that signs every cluster certificate (PEM).
    #[arg(long, global = true, env = "BACKBEAT_CLUSTER_CA", requires = "cluster_cert")]
    cluster_ca: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Run a scheduler (gRPC, REST /api/..., Prometheus /api/metrics on one port).
    Scheduler {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:50050")]
        bind: SocketAddr,
        /// Seconds without a heartbeat after which an executor is forgotten and its work rerun.
        #[arg(long, env = "BACKBEAT_EXECUTOR_TIMEOUT", default_value_t = backbeat_cluster::scheduler_process::DEFAULT_EXECUTOR_TIMEOUT_SECONDS)]
        executor_timeout: u64,
        /// Host name executors reach this scheduler by [default: the --bind IP].
        #[arg(long)]
        external_host: Option<String>,
        #[command(flatten)]
        flight: serve_command::SchedulerFlightArgs,
    },
    /// Serve Arrow Flight SQL (ADBC, JDBC, notebooks) on an embedded cluster or --cluster.
    #[command(after_help = "Example: BACKBEAT_FLIGHT_TOKEN_FILE=token backbeat serve --bind 0.0.0.0:50050 --lake ./lake
From Python: adbc_driver_flightsql.dbapi.connect(\"grpc://HOST:50050\", db_kwargs={\"adbc.flight.sql.authorization_header\": \"Bearer TOKEN\"})")]
    Serve(serve_command::ServeArgs),
    /// Run an executor that takes tasks from a scheduler.
    Executor(ExecutorArgs),
    /// Run SQL: one statement, or a script of several with -f.
    #[command(after_help = "Time travel: SELECT * FROM \"orders@v3\" reads version 3 of Delta table orders.
Writes: CREATE [OR REPLACE] TABLE t [PARTITIONED BY (c, ...)] AS SELECT ...;
        INSERT INTO t SELECT ...;  INSERT OVERWRITE t SELECT ...")]
    Sql(SqlArgs),
    /// Generate the synthetic datasets (tracks, listening, isrc, orders) at a scale, from a seed.
    #[command(after_help = "Example: backbeat datagen --scale 1 --seed 42 --out ./lake   (Parquet tables are then queryable)")]
    Datagen {
        /// Scale: 1 is about 10k tracks and 100k listening events; 100 is about 1M and 10M.
        #[arg(long, default_value_t = 1.0)]
        scale: f64,
        /// Random seed: the same seed and scale give byte-identical files.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Output directory.
        #[arg(long, default_value = "./lake")]
        out: PathBuf,
        /// Only these datasets (comma-separated: tracks, listening, isrc, orders).
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
        /// Share of CSV rows and JSON lines to corrupt (recorded in manifest.json), for ingest tests.
        #[arg(long, default_value_t = 0.0)]
        dirty_rate: f64,
    },
    /// Run a job from the catalogue (see `backbeat jobs`) or a SQL script path, with parameters.
    #[command(after_help = "Example: backbeat run order_analysis --param duplicate_window_minutes=30")]
    Run {
        /// Catalogue name, or a path to a .sql script or a .py script (see `backbeat_jobs::python_job`).
        job: String,
        /// A parameter, name=value (repeat for several).
        #[arg(long = "param", short = 'p')]
        params: Vec<String>,
        #[command(flatten)]
        session: SessionArgs,
        /// Output format of the report.
        #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
        format: OutputFormat,
    },
    /// List the job catalogue with descriptions and parameters.
    Jobs {
        /// Output format.
        #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
        format: OutputFormat,
    },
    /// Show recent job runs from the lake's run history (backbeat_runs).
    Runs {
        #[command(flatten)]
        session: SessionArgs,
        /// How many runs to show.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Show this pipeline's runs, step by step (the last --limit runs).
        #[arg(long)]
        pipeline: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
        format: OutputFormat,
    },
    /// Pipelines: DAGs of jobs, ingests and exports with retries, resume and backfill.
    #[command(subcommand)]
    Pipeline(pipeline_command::PipelineCommand),
    /// Fire pipelines on their cron schedules (one run per slot across processes sharing the lake).
    Schedule(pipeline_command::ScheduleArgs),
    /// Benchmarks (see BENCHMARKS.md).
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Load CSV, JSON, MariaDB/MySQL or PostgreSQL data into Delta tables (append, overwrite, merge),
    /// with typed schemas and bad rows kept in `<table>__rejected`.
    #[command(subcommand)]
    Ingest(ingest_command::IngestSource),
    /// Export a lake table (or query) to PostgreSQL, Redis or MongoDB; readers never see a mix.
    Export(export_command::ExportArgs),
    /// List the lake's tables with format, version, rows, files and bytes.
    Tables {
        #[command(flatten)]
        lake: LakeArgs,
        /// Output format.
        #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
        format: OutputFormat,
    },
    /// Show a running scheduler's executors and recent jobs, read from its REST API.
    #[command(after_help = "Example: backbeat status --cluster df://10.0.0.5:50050 --limit 20 --format csv > status.csv")]
    Status {
        /// Scheduler to ask, df://HOST:PORT (its REST API shares the gRPC port).
        #[arg(long, env = "BACKBEAT_CLUSTER", default_value = "df://127.0.0.1:50050")]
        cluster: String,
        /// How many jobs to show: running and queued ones first, then the most recent others.
        #[arg(long, default_value_t = 10)]
        limit: usize,
        /// Output format.
        #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
        format: OutputFormat,
    },
}

#[derive(Subcommand)]
enum BenchCommand {
    /// TPC-H: the 22 queries on DataFusion, backbeat embedded and a backbeat cluster.
    Tpch(bench_command::TpchBenchArgs),
    /// Ingest throughput: CSV, PostgreSQL and MariaDB into Delta, beside psql \copy and mysqldump.
    Ingest(connector_bench::ConnectorBenchArgs),
    /// Export throughput: PostgreSQL, Redis and MongoDB, beside psql \copy and redis-benchmark.
    Export(connector_bench::ConnectorBenchArgs),
    /// Implicit ALS beside Spark MLlib and `implicit`: time per iteration and held-out quality.
    Recs(recs_bench::RecsBenchArgs),
    /// BG/NBD and Gamma-Gamma beside Python lifetimes, on CDNOW and generated orders.
    Clv(clv_bench::ClvBenchArgs),
    /// ISRC matching beside Splink 5: time, precision, recall and F1 on generated playlists.
    Isrc(isrc_bench::IsrcBenchArgs),
    /// MERGE and DELETE on a large Delta table beside a full rewrite and delta-rs's own MERGE.
    Lake(lake_bench::LakeBenchArgs),
}

#[derive(Args)]
struct ExecutorArgs {
    /// Scheduler to serve, HOST:PORT.
    #[arg(long, default_value = "127.0.0.1:50050")]
    scheduler: String,
    /// Address for the Arrow Flight (shuffle) service; also the host advertised to the scheduler.
    #[arg(long, default_value = "127.0.0.1:50051")]
    bind: SocketAddr,
    /// Host name the scheduler and other executors use to reach this one [default: the --bind IP].
    #[arg(long)]
    external_host: Option<String>,
    /// Port the scheduler pushes tasks to [default: the --bind port + 1].
    #[arg(long)]
    grpc_port: Option<u16>,
    /// Directory for shuffle files [default: a fresh temporary directory].
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Tasks to run at once [default: one per core].
    #[arg(long, default_value_t = 0)]
    concurrency: usize,
    /// Memory for the tasks' sorts, aggregates and joins (e.g. 2GiB), split across the task slots;
    /// beyond it they spill to the work dir [default: 70% of the host's memory].
    #[arg(long, env = "BACKBEAT_EXECUTOR_MEMORY")]
    memory_pool: Option<String>,
    /// Seconds between heartbeats to the scheduler.
    #[arg(long, env = "BACKBEAT_HEARTBEAT_INTERVAL", default_value_t = backbeat_cluster::executor_process::DEFAULT_HEARTBEAT_SECONDS)]
    heartbeat_interval: u64,
}

/// Where the lake is.
#[derive(Args, Clone)]
pub struct LakeArgs {
    /// Lake root: a directory, file:// URL or s3://bucket/prefix (credentials from AWS_* variables and
    /// --storage-option); each Delta table or Parquet directory in it is a table.
    #[arg(long, env = "BACKBEAT_LAKE", default_value = DEFAULT_LAKE)]
    lake: String,
}

const DEFAULT_LAKE: &str = "./lake";

impl LakeArgs {
    /// The lake: a directory, a `file://` URL or `s3://bucket/prefix`. The default lake (`./lake`)
    /// is created on first use; a directory the user named must exist, so a typo is an error rather
    /// than a silently empty lake.
    pub fn root(&self) -> Result<LakeRoot> {
        let is_default = std::env::var_os("BACKBEAT_LAKE").is_none() && self.lake == DEFAULT_LAKE;
        if is_default && !std::path::Path::new(DEFAULT_LAKE).is_dir() {
            std::fs::create_dir_all(DEFAULT_LAKE).with_context(|| format!("cannot create lake {DEFAULT_LAKE}"))?;
        }
        Ok(LakeRoot::parse(&self.lake)?)
    }
}

/// Where queries run and which lake they see.
#[derive(Args, Clone)]
pub struct SessionArgs {
    /// Scheduler to run on, df://HOST:PORT [default: an embedded in-process cluster].
    #[arg(long, env = "BACKBEAT_CLUSTER")]
    cluster: Option<String>,
    #[command(flatten)]
    lake: LakeArgs,
}

impl SessionArgs {
    /// Connects to the cluster (starting an embedded one if none was named) with the lake.
    pub async fn connect(&self) -> Result<BackbeatSession> {
        let target = match &self.cluster {
            Some(url) => ClusterTarget::Remote(url.clone()),
            None => ClusterTarget::Embedded { concurrency: 0 },
        };
        BackbeatSession::connect_lake(target, self.lake.root()?).await
    }
}

/// Arguments of `backbeat sql`.
#[derive(Args)]
pub struct SqlArgs {
    /// The SQL statement to run.
    #[arg(required_unless_present = "file", conflicts_with = "file")]
    query: Option<String>,
    /// A file of SQL statements separated by `;`.
    #[arg(short = 'f', long = "file")]
    file: Option<PathBuf>,
    #[command(flatten)]
    session: SessionArgs,
    /// Output format of query results.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    format: OutputFormat,
    /// Write query results to this file instead of standard output.
    #[arg(long)]
    out: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(&cli.command);
    // The jobs' partition kernels (ALS solves, kNN): every role of this binary plans or runs them.
    backbeat_jobs::register_kernels();
    // Before any thread exists: pipeline and server commands take SIGTERM and Ctrl-C themselves.
    let messages = match &cli.command {
        Command::Pipeline(_) | Command::Schedule(_) => {
            Some(("running steps finish, no new ones start", "cancelling the running steps (nothing they wrote is committed)"))
        }
        Command::Serve(_) | Command::Scheduler { .. } => Some(("running calls finish, new ones are refused", "exiting now")),
        _ => None,
    };
    let stop = match messages.map(|(drain, cancel)| signals::capture(drain, cancel)).transpose() {
        Ok(stop) => stop,
        Err(e) => return fail(anyhow::Error::from(e).context("cannot take over SIGTERM and Ctrl-C")),
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => return fail(anyhow::Error::from(e).context("cannot start the async runtime")),
    };
    backbeat_cluster::object_storage::set_storage_options(cli.storage_options);
    if let (Some(cert), Some(key), Some(ca)) = (&cli.cluster_cert, &cli.cluster_key, &cli.cluster_ca) {
        match backbeat_cluster::cluster_tls::ClusterTls::from_files(cert, key, ca) {
            Ok(tls) => backbeat_cluster::cluster_tls::ClusterTls::install(tls),
            Err(e) => return fail(e.context("cluster TLS")),
        }
    }
    let result = runtime.block_on(run(cli.command, stop));
    // Don't wait for the embedded cluster's background tasks: they are aborted with the runtime.
    runtime.shutdown_background();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

async fn run(command: Command, stop: Option<tokio::sync::watch::Receiver<backbeat_jobs::pipeline::Stop>>) -> Result<()> {
    let stop = || stop.clone().expect("pipeline commands capture signals in main");
    match command {
        Command::Scheduler { bind, executor_timeout, external_host, flight } => {
            let tls = backbeat_cluster::cluster_tls::ClusterTls::current().cloned();
            let options = backbeat_cluster::scheduler_process::SchedulerOptions { executor_timeout_seconds: executor_timeout, external_host, tls };
            serve_command::scheduler(bind, options, flight, stop()).await
        }
        Command::Serve(args) => serve_command::serve(args, stop()).await,
        Command::Executor(args) => {
            let (host, port) = args
                .scheduler
                .rsplit_once(':')
                .and_then(|(h, p)| Some((h.to_string(), p.parse::<u16>().ok()?)))
                .with_context(|| format!("--scheduler '{}' is not HOST:PORT", args.scheduler))?;
            let work_dir = match args.work_dir {
                Some(dir) => {
                    std::fs::create_dir_all(&dir)
                        .with_context(|| format!("cannot create work dir {}", dir.display()))?;
                    Some(dir.to_string_lossy().into_owned())
                }
                None => None,
            };
            run_executor(ExecutorOptions {
                scheduler_host: host,
                scheduler_port: port,
                bind_host: args.bind.ip().to_string(),
                external_host: args.external_host.unwrap_or_else(|| args.bind.ip().to_string()),
                flight_port: args.bind.port(),
                grpc_port: args.grpc_port.unwrap_or(args.bind.port() + 1),
                work_dir,
                concurrency: args.concurrency,
                memory_pool: args.memory_pool.as_deref().map(parse_memory_size).transpose().context("--memory-pool")?,
                heartbeat_seconds: args.heartbeat_interval,
                tls: backbeat_cluster::cluster_tls::ClusterTls::current().cloned(),
            })
            .await
        }
        Command::Sql(args) => sql_command::run(args).await,
        Command::Tables { lake, format } => tables_command::run(lake.root()?, format).await,
        Command::Status { cluster, limit, format } => status_command::run(&cluster, format, limit).await,
        Command::Bench(BenchCommand::Tpch(args)) => bench_command::run(args).await,
        Command::Bench(BenchCommand::Lake(args)) => lake_bench::run(args).await,
        Command::Bench(BenchCommand::Ingest(args)) => connector_bench::ingest(args).await,
        Command::Bench(BenchCommand::Export(args)) => connector_bench::export(args).await,
        Command::Bench(BenchCommand::Recs(args)) => recs_bench::run(args).await,
        Command::Bench(BenchCommand::Clv(args)) => clv_bench::run(args).await,
        Command::Bench(BenchCommand::Isrc(args)) => isrc_bench::run(args).await,
        Command::Ingest(source) => ingest_command::run(source).await,
        Command::Export(args) => export_command::run(args).await,
        Command::Run { job, params, session, format } => jobs_command::run(&job, &params, &session, format).await,
        Command::Jobs { format } => jobs_command::list(format),
        Command::Runs { session, limit, format, pipeline: Some(p) } => pipeline_command::history(&session, &p, limit, format).await,
        Command::Runs { session, limit, format, pipeline: None } => jobs_command::history(&session, limit, format).await,
        Command::Pipeline(command) => pipeline_command::run(command, stop()).await,
        Command::Schedule(args) => pipeline_command::schedule(args, stop()).await,
        Command::Datagen { scale, seed, out, only, dirty_rate } => {
            let datasets = if only.is_empty() {
                Dataset::ALL.to_vec()
            } else {
                only.iter().map(|n| Dataset::parse(n)).collect::<Result<_>>()?
            };
            let config = DatagenConfig { scale, seed, out, datasets, dirty_rate };
            tokio::task::spawn_blocking(move || datagen::generate(&config)).await??;
            Ok(())
        }
    }
}

/// Logs go to stderr through `tracing`; `RUST_LOG` overrides. Servers log at info; client commands
/// stay quiet so their output is the result, and a failure is reported once, by us.
fn init_tracing(command: &Command) {
    let default = match command {
        Command::Scheduler { .. } | Command::Executor(_) | Command::Serve(_) => "info",
        // Dependencies (Ballista, delta-kernel) log failures we already report as one error line.
        _ => "off,backbeat=warn,backbeat_cluster=warn,backbeat_connectors=warn,backbeat_jobs=warn",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// Prints one error line (the cause chain, newlines folded, causes that only repeat what is
/// already said left out) and returns a failing exit code.
fn fail(error: anyhow::Error) -> ExitCode {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string().split_whitespace().collect::<Vec<_>>().join(" ");
        if text.is_empty() || line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    eprintln!("error: {line}");
    if line.ends_with("failed: Cancelled") || line.contains("has failed 1 times") {
        eprintln!(
            "hint: the scheduler stops a job when it loses an executor mid-job (its log names the executor); \
             re-run the statement: the executors that are left will run it"
        );
    }
    ExitCode::FAILURE
}
