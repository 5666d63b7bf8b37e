//! A multi-process cluster on loopback: one scheduler and N executors, each its own OS process
//! running the `backbeat` binary on free ports. Used by the tests and the benchmarks to exercise the
//! same topology as a real deployment; the processes are killed when the value is dropped.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// A running scheduler with its executors.
pub struct LocalCluster {
    url: String,
    port: u16,
    children: Vec<Child>,
    logs: Vec<PathBuf>,
    /// Environment every process gets (e.g. `AWS_*` for an `s3://` lake).
    env: Vec<(String, String)>,
    _work: tempfile::TempDir,
}

impl LocalCluster {
    /// Starts `executors` executors running `concurrency` tasks each, with `binary` (the
    /// `backbeat` executable), and waits until all have registered with the scheduler.
    ///
    /// Ports are picked free and then bound by the child processes, so another process can take
    /// one in between (it happened under a full test run: "Address already in use", and the
    /// registration wait timed out). Such a start is retried with fresh ports, twice at most.
    pub fn start(binary: &Path, executors: usize, concurrency: usize) -> Result<Self> {
        Self::start_with(binary, executors, concurrency, &[])
    }

    /// [`LocalCluster::start`], with more arguments for the scheduler (`--flight-sql ADDR ...`).
    pub fn start_with(binary: &Path, executors: usize, concurrency: usize, scheduler_args: &[&str]) -> Result<Self> {
        Self::start_with_env(binary, executors, concurrency, scheduler_args, &[])
    }

    /// [`LocalCluster::start_with`], with environment variables for every process.
    pub fn start_with_env(
        binary: &Path,
        executors: usize,
        concurrency: usize,
        scheduler_args: &[&str],
        env: &[(String, String)],
    ) -> Result<Self> {
        let mut attempt = 1;
        loop {
            match Self::start_once(binary, executors, concurrency, scheduler_args, env) {
                Err(e) if attempt < 3 && format!("{e:#}").contains("Address already in use") => {
                    tracing::warn!("a port was taken while the local cluster started; retrying ({attempt})");
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    fn start_once(
        binary: &Path,
        executors: usize,
        concurrency: usize,
        scheduler_args: &[&str],
        env: &[(String, String)],
    ) -> Result<Self> {
        let work = tempfile::Builder::new().prefix("backbeat-cluster-").tempdir()?;
        let port = free_port()?;
        let mut cluster = Self {
            url: format!("df://127.0.0.1:{port}"),
            port,
            children: vec![],
            logs: vec![],
            env: env.to_vec(),
            _work: work,
        };
        let bind = format!("127.0.0.1:{port}");
        let mut args = vec!["scheduler", "--bind", &bind];
        args.extend_from_slice(scheduler_args);
        cluster.spawn(binary, "scheduler", &args)?;
        wait_for(Duration::from_secs(30), "the scheduler to listen", || {
            TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok()
        })?;
        for _ in 0..executors {
            cluster.add_executor(binary, concurrency)?;
        }
        let result = wait_for(Duration::from_secs(60), "the executors to register", || {
            cluster.executor_count() == executors
        });
        if let Err(e) = result {
            bail!("{e}\n{}", cluster.logs());
        }
        Ok(cluster)
    }

    /// Starts one more executor process (it registers by itself; see [`LocalCluster::executor_count`]).
    pub fn add_executor(&mut self, binary: &Path, concurrency: usize) -> Result<()> {
        let i = self.children.len() - 1;
        let (port, flight, grpc) = (self.port, free_port()?, free_port()?);
        let dir = self._work.path().join(format!("executor-{i}"));
        self.spawn(
            binary,
            &format!("executor-{i}"),
            &[
                "executor",
                "--scheduler",
                &format!("127.0.0.1:{port}"),
                "--bind",
                &format!("127.0.0.1:{flight}"),
                "--grpc-port",
                &grpc.to_string(),
                "--work-dir",
                &dir.to_string_lossy(),
                "--concurrency",
                &concurrency.to_string(),
            ],
        )
    }

    /// Kills executor `i` (in start order) with SIGKILL: no goodbye to the scheduler.
    pub fn kill_executor(&mut self, i: usize) -> Result<()> {
        let child = self.children.get_mut(i + 1).with_context(|| format!("no executor {i}"))?;
        child.kill().context("kill executor")?;
        child.wait().context("reap executor")?;
        Ok(())
    }

    /// Kills the scheduler with SIGKILL.
    pub fn kill_scheduler(&mut self) -> Result<()> {
        self.children[0].kill().context("kill scheduler")?;
        self.children[0].wait().context("reap scheduler")?;
        Ok(())
    }

    /// `df://127.0.0.1:PORT`, for `--cluster` and [`crate::session::ClusterTarget::Remote`].
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The scheduler's process id (its memory can be read from `/proc/PID/status`).
    pub fn scheduler_pid(&self) -> u32 {
        self.children[0].id()
    }

    /// Executors the scheduler knows, from its REST API (`/api/executors`).
    pub fn executor_count(&self) -> usize {
        let body = http_get(self.port, "/api/executors").unwrap_or_default();
        serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.as_array().map(|a| a.len()))
            .unwrap_or(0)
    }

    /// The last lines each process logged, to explain a failure.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for log in &self.logs {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(30).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            out.push_str(&format!("--- {}\n{}\n", log.display(), tail.join("\n")));
        }
        out
    }

    fn spawn(&mut self, binary: &Path, name: &str, args: &[&str]) -> Result<()> {
        let log = self._work.path().join(format!("{name}.log"));
        let file = std::fs::File::create(&log)?;
        let child = Command::new(binary)
            .args(args)
            .env("RUST_LOG", "info")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .with_context(|| format!("cannot start {} {name}", binary.display()))?;
        self.children.push(child);
        self.logs.push(log);
        Ok(())
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .context("no free loopback port")?
        .local_addr()?
        .port())
}

fn wait_for(limit: Duration, what: &str, mut ready: impl FnMut() -> bool) -> Result<()> {
    let start = Instant::now();
    while !ready() {
        if start.elapsed() > limit {
            bail!("timed out after {limit:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    Ok(())
}

/// Task slots (vcores) of all executors registered with the scheduler at `host:port`, from its
/// REST API; `None` if the scheduler does not answer or has no executors yet.
pub fn scheduler_vcores(host: &str, port: u16) -> Option<usize> {
    let body = http_get_from(host, port, "/api/executors")?;
    let executors: serde_json::Value = serde_json::from_str(&body).ok()?;
    let total: u64 = executors
        .as_array()?
        .iter()
        .map(|e| e["specification"]["vcores"].as_u64().unwrap_or(1))
        .sum();
    (total > 0).then_some(total as usize)
}

/// A plain HTTP/1.0 GET on loopback: enough for the scheduler's REST API, no HTTP client needed.
fn http_get(port: u16, path: &str) -> Option<String> {
    http_get_from("127.0.0.1", port, path)
}

fn http_get_from(host: &str, port: u16, path: &str) -> Option<String> {
    http_get_text(host, port, path).ok()
}

/// The body of a 200 answer to a GET of `path` from `host:port` (a scheduler's REST API,
/// `/api/...`, or `/api/metrics`), over cluster TLS when this process has it. The error says what
/// went wrong: the name did not resolve, nothing accepted the connection, no answer in time, or a
/// status other than 200 (with the start of the body, where Ballista puts its reason).
/// Connecting, sending and reading each give up after 5 s.
pub fn http_get_text(host: &str, port: u16, path: &str) -> std::result::Result<String, String> {
    use std::io::ErrorKind;
    use std::net::ToSocketAddrs;
    if let Some(tls) = crate::cluster_tls::ClusterTls::current() {
        return crate::cluster_tls::https_get(tls, host, port, path);
    }
    let timeout = Duration::from_secs(5);
    let io_error = |what: &str, e: std::io::Error| match e.kind() {
        ErrorKind::WouldBlock | ErrorKind::TimedOut => format!("{what}: no answer within {timeout:?}"),
        _ => format!("{what}: {e}"),
    };
    let addrs = (host, port).to_socket_addrs().map_err(|e| format!("cannot resolve '{host}': {e}"))?;
    let mut stream = Err(format!("'{host}' resolves to no address"));
    for addr in addrs {
        stream = TcpStream::connect_timeout(&addr, timeout)
            .map_err(|e| io_error(&format!("cannot connect to {addr}"), e));
        if stream.is_ok() {
            break;
        }
    }
    let mut stream = stream?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(|e| io_error("cannot set socket timeouts", e))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").map_err(|e| io_error("cannot send the request", e))?;
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).map_err(|e| io_error("cannot read the response", e))?;
    let response = String::from_utf8_lossy(&bytes);
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("not an HTTP response ({} bytes without a blank line after the headers)", bytes.len()))?;
    let status_line = head.lines().next().unwrap_or_default().trim();
    if status_line.split_whitespace().nth(1) != Some("200") {
        let detail: String = body.trim().chars().take(300).collect();
        return Err(if detail.is_empty() {
            format!("HTTP status '{status_line}'")
        } else {
            format!("HTTP status '{status_line}': {detail}")
        });
    }
    Ok(body.to_string())
}

/// [`http_get_text`], parsed as JSON.
pub fn http_get_json(host: &str, port: u16, path: &str) -> std::result::Result<serde_json::Value, String> {
    let body = http_get_text(host, port, path)?;
    let start: String = body.chars().take(100).collect();
    serde_json::from_str(&body).map_err(|e| format!("the response is not JSON ({e}): '{start}'"))
}
