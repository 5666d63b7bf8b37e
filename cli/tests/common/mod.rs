//! Test support: the `backbeat` binary, and a real multi-process cluster running it.
#![allow(dead_code, unused_imports)]

use std::ops::Deref;
use std::path::Path;
use std::process::{Command, Output};

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
