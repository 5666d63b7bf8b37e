//! Test support: a real multi-process cluster (one scheduler, two executors, each its own OS
//! process running the `backbeat` binary on free loopback ports), the CLI, and result comparison.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use backbeat_cluster::session::{BackbeatSession, ClusterTarget};

/// The `backbeat` binary under test.
pub fn backbeat() -> Command {
    Command::new(env!("CARGO_BIN_EXE_backbeat"))
}

/// Runs `backbeat` with `args` and returns its output.
pub fn run_cli(args: &[&str]) -> Output {
    backbeat().args(args).output().expect("run backbeat")
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .expect("bind")
        .local_addr()
        .unwrap()
        .port()
}

/// One scheduler and two executors as child processes; killed on drop.
pub struct TestCluster {
    /// `df://127.0.0.1:PORT`.
    pub url: String,
    /// The scheduler's port (REST and metrics too).
    pub port: u16,
    children: Vec<Child>,
    _work: tempfile::TempDir,
}

impl TestCluster {
    /// Starts the cluster and waits until both executors have registered.
    pub fn start() -> Self {
        let work = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut children = vec![spawn(
            &["scheduler", "--bind", &format!("127.0.0.1:{port}")],
            &work.path().join("scheduler.log"),
        )];
        wait_for(Duration::from_secs(30), "scheduler to listen", || {
            TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok()
        });
        for i in 0..2 {
            let flight = free_port();
            let grpc = free_port();
            let dir = work.path().join(format!("executor-{i}"));
            children.push(spawn(
                &[
                    "executor",
                    "--scheduler",
                    &format!("127.0.0.1:{port}"),
                    "--bind",
                    &format!("127.0.0.1:{flight}"),
                    "--grpc-port",
                    &grpc.to_string(),
                    "--work-dir",
                    dir.to_str().unwrap(),
                    "--concurrency",
                    "2",
                ],
                &work.path().join(format!("executor-{i}.log")),
            ));
        }
        let cluster = Self { url: format!("df://127.0.0.1:{port}"), port, children, _work: work };
        wait_for(Duration::from_secs(60), "two executors to register", || {
            cluster.executor_count() == 2
        });
        cluster
    }

    /// Executors the scheduler knows, from its REST API.
    pub fn executor_count(&self) -> usize {
        let body = http_get(self.port, "/api/executors").unwrap_or_default();
        serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.as_array().map(|a| a.len()))
            .unwrap_or(0)
    }

    /// A client session on this cluster over `lake`.
    pub async fn session(&self, lake: &Path) -> BackbeatSession {
        BackbeatSession::connect(ClusterTarget::Remote(self.url.clone()), lake)
            .await
            .expect("connect to test cluster")
    }

    /// The logs of the cluster's processes, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for name in ["scheduler.log", "executor-0.log", "executor-1.log"] {
            let text = std::fs::read_to_string(self._work.path().join(name)).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(30).collect();
            out.push_str(&format!("--- {name}\n{}\n", tail.into_iter().rev().collect::<Vec<_>>().join("\n")));
        }
        out
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn spawn(args: &[&str], log: &PathBuf) -> Child {
    let file = std::fs::File::create(log).unwrap();
    backbeat()
        .args(args)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(file)
        .spawn()
        .expect("spawn backbeat")
}

fn wait_for(limit: Duration, what: &str, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn http_get(port: u16, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_string()).or_else(|| head.starts_with("HTTP/1.0 200").then(|| body.to_string()))
}

/// Rows as strings, floats rounded to `digits` significant decimals, sorted: two engines agree on
/// a result when these are equal (ORDER BY ties and float summation order may differ).
pub fn canonical_rows(batches: &[RecordBatch], digits: usize) -> Vec<String> {
    let options = FormatOptions::default().with_null("NULL");
    let mut rows = Vec::new();
    for batch in batches {
        let formatters: Vec<ArrayFormatter> = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).unwrap())
            .collect();
        for row in 0..batch.num_rows() {
            let cells: Vec<String> = formatters
                .iter()
                .zip(batch.columns())
                .map(|(f, col)| {
                    let text = f.value(row).to_string();
                    if col.data_type().is_floating() {
                        text.parse::<f64>().map(|v| round_sig(v, digits)).unwrap_or(text)
                    } else {
                        text
                    }
                })
                .collect();
            rows.push(cells.join(" | "));
        }
    }
    rows.sort();
    rows
}

fn round_sig(v: f64, digits: usize) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    format!("{:.*e}", digits.saturating_sub(1), v)
}

/// Total rows in `batches`.
pub fn row_count(batches: &[RecordBatch]) -> usize {
    batches.iter().map(|b| b.num_rows()).sum()
}
