//! Python job scripts: `backbeat run script.py` runs a data scientist's script against the lake,
//! records it in the run history like any job, and fails the run when the script fails.
//!
//! The script gets a Flight SQL server of its own for the length of the run: loopback only, on a
//! free port, with a token made for this run, planned by the job's session (so the embedded or
//! remote cluster, the lake, Delta writes and UDFs are the same as for SQL jobs). Its environment
//! says where: `BACKBEAT_FLIGHT_URI`, `BACKBEAT_FLIGHT_TOKEN`, `BACKBEAT_LAKE`, `BACKBEAT_RUN_DATE`
//! (today) and `BACKBEAT_PARAM_<NAME>` for each parameter. A header declares parameters as SQL
//! scripts do, behind `#`:
//!
//! ```text
//! # job: weekly_top_tracks
//! # description: The week's most played tracks
//! # param: top int = 10 -- tracks to keep
//! ```
//!
//! The interpreter is `$BACKBEAT_PYTHON`, else `python3` on the PATH. The rows the script wrote
//! through the server (CTAS, INSERT, lake verbs) are the run's `rows_written`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use backbeat_cluster::flight_sql::{BearerToken, FlightSqlOptions, FlightSqlServer};
use backbeat_cluster::session::BackbeatSession;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::job_catalogue::{Job, JobBody};
use crate::job_runner::RustJobOutput;

/// How many of the script's last stderr lines a failed run keeps as its error.
const ERROR_LINES: usize = 15;

/// Reads a Python job script and its `#` header.
pub fn parse(path: &Path) -> Result<Job> {
    let script = std::fs::read_to_string(path).with_context(|| format!("cannot read job script {}", path.display()))?;
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    // The header is the leading comment block (a shebang and blank lines allowed), read as SQL's.
    let header: String = script
        .lines()
        .take_while(|l| l.trim_start().starts_with('#') || l.trim().is_empty())
        .filter(|l| !l.starts_with("#!"))
        .map(|l| format!("--{}\n", l.trim_start().trim_start_matches('#')))
        .collect();
    let mut job = Job::parse(&header, &stem).with_context(|| format!("in the header of {}", path.display()))?;
    let absolute = std::fs::canonicalize(path).with_context(|| format!("cannot resolve {}", path.display()))?;
    job.body = JobBody::Python(absolute);
    Ok(job)
}

/// Runs the script at `path` with `params` (already bound and checked) on `session`.
pub async fn run(session: &BackbeatSession, path: &Path, params: &BTreeMap<String, String>) -> Result<RustJobOutput> {
    let token = BearerToken::random();
    let server = FlightSqlServer::start(
        Arc::new(session.shared()),
        FlightSqlOptions { bind: "127.0.0.1:0".parse().expect("static address"), token: Some(token.clone()), tls: None },
    )
    .await?;
    let outcome = run_script(path, params, &server.uri(), &token, &session.lake().lake_root().to_string()).await;
    let rows_written = server.rows_written();
    server.shutdown().await?;
    outcome?;
    Ok(RustJobOutput { report: vec![], rows_written })
}

fn interpreter() -> PathBuf {
    std::env::var_os("BACKBEAT_PYTHON").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("python3"))
}

async fn run_script(
    path: &Path,
    params: &BTreeMap<String, String>,
    uri: &str,
    token: &BearerToken,
    lake: &str,
) -> Result<()> {
    let python = interpreter();
    let mut command = tokio::process::Command::new(&python);
    command
        .arg(path)
        .current_dir(path.parent().unwrap_or(Path::new(".")))
        .env("BACKBEAT_FLIGHT_URI", uri)
        .env("BACKBEAT_FLIGHT_TOKEN", token.expose())
        .env("BACKBEAT_LAKE", lake)
        .env("BACKBEAT_RUN_DATE", chrono::Local::now().format("%Y-%m-%d").to_string())
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        // A cancelled run (a pipeline timeout, Ctrl-C twice) must not leave the script running.
        .kill_on_drop(true);
    for (name, value) in params {
        command.env(format!("BACKBEAT_PARAM_{}", name.to_ascii_uppercase()), value);
    }
    let mut child = command.spawn().with_context(|| {
        format!("cannot start {} (set BACKBEAT_PYTHON to the interpreter to use)", python.display())
    })?;
    // The script's stderr goes on to ours as it comes; its tail is kept for the run's error.
    let stderr = child.stderr.take().context("child stderr")?;
    let mut lines = BufReader::new(stderr).lines();
    let mut tail = std::collections::VecDeque::with_capacity(ERROR_LINES);
    while let Some(line) = lines.next_line().await.context("reading the script's stderr")? {
        eprintln!("{line}");
        if tail.len() == ERROR_LINES {
            tail.pop_front();
        }
        tail.push_back(line);
    }
    let status = child.wait().await.context("waiting for the script")?;
    if !status.success() {
        let tail: Vec<String> = tail.into_iter().collect();
        bail!("{} exited with {status}:\n{}", path.display(), tail.join("\n"));
    }
    Ok(())
}
