//! Test support: the `backbeat` binary, and a real multi-process cluster running it.
#![allow(dead_code, unused_imports)]

use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float64Type, Int64Type};

use backbeat_cluster::local_cluster::LocalCluster;
use backbeat_cluster::session::{BackbeatSession, ClusterTarget};

pub use backbeat_cluster::local_cluster::free_port;
pub use backbeat_cluster::result_compare::{canonical_rows, row_count};

/// The `backbeat` binary under test.
pub fn backbeat() -> Command {
    Command::new(env!("CARGO_BIN_EXE_backbeat"))
}

/// Runs `backbeat` with `args` and returns its output.
pub fn run_cli(args: &[&str]) -> Output {
    backbeat().args(args).output().expect("run backbeat")
}

/// One scheduler and two executors (two task slots each) as child processes; killed on drop.
pub struct TestCluster {
    cluster: LocalCluster,
    /// `df://127.0.0.1:PORT`.
    pub url: String,
}

impl TestCluster {
    /// Starts the cluster and waits until both executors have registered.
    pub fn start() -> Self {
        let cluster = LocalCluster::start(Path::new(env!("CARGO_BIN_EXE_backbeat")), 2, 2)
            .unwrap_or_else(|e| panic!("test cluster: {e:#}"));
        let url = cluster.url().to_string();
        Self { cluster, url }
    }

    /// A client session on this cluster over `lake`.
    pub async fn session(&self, lake: &Path) -> BackbeatSession {
        BackbeatSession::connect(ClusterTarget::Remote(self.url.clone()), lake)
            .await
            .expect("connect to test cluster")
    }
}

impl Deref for TestCluster {
    type Target = LocalCluster;
    fn deref(&self) -> &LocalCluster {
        &self.cluster
    }
}

/// The repository root (the tests read `jobs/ingest/*.yaml`, `bench/`, `../shared`).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs `sql` and returns all its rows as one batch (with the plan's schema, so an empty answer
/// still has its columns); panics naming the statement on error.
pub async fn query(session: &BackbeatSession, sql: &str) -> RecordBatch {
    let df = session.sql(sql).await.unwrap_or_else(|e| panic!("{sql}: {e:#}"));
    let schema = df.schema().as_arrow().clone();
    let batches = df.collect().await.unwrap_or_else(|e| panic!("{sql}: {e:#}"));
    arrow::compute::concat_batches(&std::sync::Arc::new(schema), &batches).unwrap()
}

/// Runs the catalogue job `job` with `params`, as `backbeat run` does.
pub async fn run(session: &BackbeatSession, job: &str, params: &[(&str, &str)]) -> anyhow::Result<()> {
    let job = backbeat_jobs::job_catalogue::find(job).unwrap_or_else(|e| panic!("{e:#}"));
    let params: Vec<(String, String)> = params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    backbeat_jobs::job_runner::run_job(session, &job, &params).await.map(|_| ())
}

/// Column `column` cast to i64.
pub fn i64s(batch: &RecordBatch, column: &str) -> Vec<i64> {
    let c = arrow::compute::cast(batch.column_by_name(column).unwrap_or_else(|| panic!("no column {column}")), &DataType::Int64).unwrap();
    c.as_primitive::<Int64Type>().values().to_vec()
}

/// Column `column` cast to f64.
pub fn f64s(batch: &RecordBatch, column: &str) -> Vec<f64> {
    let c = arrow::compute::cast(batch.column_by_name(column).unwrap_or_else(|| panic!("no column {column}")), &DataType::Float64).unwrap();
    c.as_primitive::<Float64Type>().values().to_vec()
}
