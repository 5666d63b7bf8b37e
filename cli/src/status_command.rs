//! `backbeat status`: what a running scheduler is doing — which executors it has and whether they
//! still beat, and its recent jobs with their progress — for operators at a terminal or in a
//! script. Ballista's own view of this is a web UI, which needs a browser; the data behind it is the
//! scheduler's REST API (`/api/...`, served on the same port as its gRPC), and that is what this
//! reads, with [`http_get_json`]. Responses are read field by field from `serde_json::Value`, so a
//! field that another Ballista version lacks leaves an empty cell instead of failing the command.
//!
//! Where the columns come from (ballista-scheduler 55: `api/handlers.rs`, `api/dto_build.rs`, and
//! the DTOs in `ballista-api-types`):
//! - `GET /api/executors`: `[{id, host, port, last_seen, specification: {vcores}, metrics, os_info}]`.
//!   `last_seen` is the last heartbeat in milliseconds since the epoch, but only to the second (the
//!   heartbeat carries seconds), and `null` before the first one.
//! - `GET /api/jobs`: `[{job_id, job_name, status, job_status, num_stages, completed_stages,
//!   percent_complete, start_time, end_time}]`, in no particular order. `status` is `Queued`,
//!   `Running`, `Completed`, `Failed` or `Invalid`; `job_status` repeats it with the detail
//!   (`Failed: <error>`). Times are milliseconds since the epoch, 0 when not yet known: `start_time`
//!   while queued, `end_time` until the job ends.
//! - `GET /api/job/{job_id}/stages`: `{stages: [{stage_id, stage_status, input_rows, output_rows,
//!   elapsed_compute, tasks: [{id, status, ...} | null]}]}`, task `status` being `"Running"`,
//!   `"Successful"` or `{"Failed": {reason, error}}`. A stage lists only the tasks launched so far
//!   (retries included; a stage not yet started lists none), and how many tasks a stage will run is
//!   not in the API. So the tasks column is succeeded/launched, not done/total.

use std::cmp::Reverse;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow};
use arrow::array::{ArrayRef, Float64Array, RecordBatch, StringArray, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema};
use backbeat_cluster::local_cluster::http_get_json;
use serde_json::Value;

use crate::result_output::{OutputFormat, ResultWriter};

/// An executor heard from within this many seconds is "alive", otherwise "stale": three missed
/// beats of backbeat's 5 s heartbeat. The scheduler forgets an executor after its timeout (30 s by
/// default), so "stale" is the window in which it may be dead but is still given tasks.
const ALIVE_WITHIN_SECS: u64 = 15;

/// How much of a failed job's error a table shows (CSV and JSON get all of it).
const TABLE_ERROR_CHARS: usize = 120;

/// Runs `backbeat status`: the executors of the scheduler at `cluster` (`df://host:port` or
/// `host:port`), then its `jobs_limit` most recent jobs, running and queued ones first.
pub async fn run(cluster: &str, format: OutputFormat, jobs_limit: usize) -> Result<()> {
    let (host, port) = parse_cluster(cluster)?;
    let api = RestApi { host, port };

    let executors_json = api.get("/api/executors").await.map_err(|e| {
        let url = api.url("/api/executors");
        anyhow!("cannot reach the scheduler's REST API at {url}: {e} (is `backbeat scheduler` running there?)")
    })?;
    let mut executors: Vec<&Value> = array(&executors_json, &api.url("/api/executors"))?.iter().collect();
    executors.sort_by(|a, b| {
        (text(a, "host"), a["port"].as_u64(), text(a, "id")).cmp(&(text(b, "host"), b["port"].as_u64(), text(b, "id")))
    });

    let jobs_json = api.get("/api/jobs").await.map_err(|e| anyhow!("GET {}: {e}", api.url("/api/jobs")))?;
    let mut jobs: Vec<&Value> = array(&jobs_json, &api.url("/api/jobs"))?.iter().collect();
    let order = |j: &Value| (activity_rank(text(j, "status")), Reverse(j["start_time"].as_u64().unwrap_or(0)));
    jobs.sort_by(|a, b| order(*a).cmp(&order(*b)).then_with(|| text(a, "job_id").cmp(&text(b, "job_id"))));
    let total_jobs = jobs.len();
    jobs.truncate(jobs_limit);

    // Task counts per shown job; a queued job has launched no tasks yet, so nothing to ask.
    let mut tasks = Vec::with_capacity(jobs.len());
    for job in &jobs {
        let job_id = text(job, "job_id").unwrap_or_default();
        if job_id.is_empty() || text(job, "status") == Some("Queued") {
            tasks.push(None);
            continue;
        }
        let path = format!("/api/job/{job_id}/stages");
        match api.get(&path).await {
            Ok(stages) => tasks.push(task_counts(&stages)),
            Err(e) => {
                eprintln!("warning: no task counts for job {job_id}: GET {}: {e}", api.url(&path));
                tasks.push(None);
            }
        }
    }

    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    eprintln!("executors ({})", executors.len());
    write_table(format, executors_batch(&executors, now_ms)?)?;
    eprintln!("jobs ({} shown of {total_jobs})", jobs.len());
    write_table(format, jobs_batch(&jobs, &tasks, now_ms, format)?)
}

/// The scheduler's REST API at `host:port`.
struct RestApi {
    host: String,
    port: u16,
}

impl RestApi {
    fn url(&self, path: &str) -> String {
        if self.host.contains(':') {
            format!("http://[{}]:{}{path}", self.host, self.port)
        } else {
            format!("http://{}:{}{path}", self.host, self.port)
        }
    }

    /// GETs `path` as JSON on a blocking thread: the HTTP helper uses plain blocking sockets.
    async fn get(&self, path: &str) -> std::result::Result<Value, String> {
        let (host, port, path) = (self.host.clone(), self.port, path.to_string());
        tokio::task::spawn_blocking(move || http_get_json(&host, port, &path))
            .await
            .unwrap_or_else(|e| Err(format!("the request did not finish: {e}")))
    }
}

/// `df://host:port` or `host:port` (an IPv6 host may be in brackets) into host and port.
fn parse_cluster(cluster: &str) -> Result<(String, u16)> {
    let bad = || anyhow!("--cluster (or BACKBEAT_CLUSTER) '{cluster}' is not df://HOST:PORT or HOST:PORT");
    let trimmed = cluster.trim();
    let address = trimmed.strip_prefix("df://").unwrap_or(trimmed).trim_end_matches('/');
    let (host, port) = address.rsplit_once(':').ok_or_else(bad)?;
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    let port: u16 = port.parse().map_err(|_| bad())?;
    if host.is_empty() || port == 0 || host.contains(|c: char| c == '/' || c == '@' || c.is_whitespace()) {
        return Err(bad());
    }
    Ok((host.to_string(), port))
}

/// The JSON array a list endpoint returns, or an error naming the URL.
fn array<'a>(value: &'a Value, url: &str) -> Result<&'a [Value]> {
    value.as_array().map(Vec::as_slice).with_context(|| format!("{url} did not return a JSON array"))
}

/// A string field, `None` when missing, not a string or empty.
fn text<'a>(value: &'a Value, field: &str) -> Option<&'a str> {
    value[field].as_str().filter(|s| !s.is_empty())
}

/// Running jobs first, then queued ones (waiting is what an operator looks for), then the rest.
fn activity_rank(status: Option<&str>) -> u8 {
    match status {
        Some("Running") => 0,
        Some("Queued") => 1,
        _ => 2,
    }
}

/// (succeeded, launched) tasks over all stages of a `/api/job/{id}/stages` response.
fn task_counts(stages: &Value) -> Option<(u64, u64)> {
    let stages = stages["stages"].as_array()?;
    let launched = stages.iter().filter_map(|s| s["tasks"].as_array()).flatten().filter(|t| t.is_object());
    let (mut succeeded, mut total) = (0, 0);
    for task in launched {
        total += 1;
        if task["status"] == "Successful" {
            succeeded += 1;
        }
    }
    Some((succeeded, total))
}

/// Seconds from a job's start to its end, or to now while it runs; `None` before it starts.
fn elapsed_secs(job: &Value, now_ms: u64) -> Option<f64> {
    let start = job["start_time"].as_u64().filter(|&t| t > 0)?;
    let end = match job["end_time"].as_u64().filter(|&t| t > 0) {
        Some(end) => end,
        None if text(job, "status") == Some("Running") => now_ms,
        None => return None,
    };
    // Tenths of a second: most queries take less than one.
    end.checked_sub(start).map(|ms| (ms as f64 / 100.0).round() / 10.0)
}

/// One row per executor: id, host, port, vcores, seconds since its last heartbeat, health.
fn executors_batch(executors: &[&Value], now_ms: u64) -> Result<RecordBatch> {
    let seen_ago: Vec<Option<u64>> = executors
        .iter()
        .map(|e| e["last_seen"].as_u64().map(|ms| now_ms.saturating_sub(ms) / 1000))
        .collect();
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, true),
        Field::new("host", DataType::Utf8, true),
        Field::new("port", DataType::UInt64, true),
        Field::new("vcores", DataType::UInt64, true),
        Field::new("last_seen_secs_ago", DataType::UInt64, true),
        Field::new("health", DataType::Utf8, false),
    ]));
    let health = seen_ago.iter().map(|ago| match ago {
        Some(secs) if *secs <= ALIVE_WITHIN_SECS => "alive",
        _ => "stale",
    });
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter(executors.iter().map(|e| text(e, "id")))),
        Arc::new(StringArray::from_iter(executors.iter().map(|e| text(e, "host")))),
        Arc::new(UInt64Array::from_iter(executors.iter().map(|e| e["port"].as_u64()))),
        Arc::new(UInt64Array::from_iter(executors.iter().map(|e| e["specification"]["vcores"].as_u64()))),
        Arc::new(UInt64Array::from_iter(seen_ago.iter().copied())),
        Arc::new(StringArray::from_iter_values(health)),
    ];
    RecordBatch::try_new(schema, columns).context("cannot build the executors table")
}

/// One row per job: id, name, status, stages done/total, tasks succeeded/launched, seconds, error.
fn jobs_batch(jobs: &[&Value], tasks: &[Option<(u64, u64)>], now_ms: u64, format: OutputFormat) -> Result<RecordBatch> {
    let stages = jobs.iter().map(|j| match (j["completed_stages"].as_u64(), j["num_stages"].as_u64()) {
        (Some(done), Some(total)) => Some(format!("{done}/{total}")),
        _ => None,
    });
    // `job_status` is "Failed: <error>" for a failed job; the other statuses carry no error.
    let errors = jobs.iter().map(|j| {
        let error = text(j, "job_status")?.strip_prefix("Failed: ")?;
        if format != OutputFormat::Table {
            return Some(error.to_string());
        }
        // One line in a table, and not so long that it pushes the other columns off the screen.
        let line = error.split_whitespace().collect::<Vec<_>>().join(" ");
        if line.chars().count() <= TABLE_ERROR_CHARS {
            return Some(line);
        }
        Some(format!("{}…", line.chars().take(TABLE_ERROR_CHARS).collect::<String>()))
    });
    let schema = Arc::new(Schema::new(vec![
        Field::new("job_id", DataType::Utf8, true),
        Field::new("job_name", DataType::Utf8, true),
        Field::new("status", DataType::Utf8, true),
        Field::new("stages_done/total", DataType::Utf8, true),
        Field::new("tasks_ok/launched", DataType::Utf8, true),
        Field::new("elapsed_secs", DataType::Float64, true),
        Field::new("error", DataType::Utf8, true),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter(jobs.iter().map(|j| text(j, "job_id")))),
        Arc::new(StringArray::from_iter(jobs.iter().map(|j| text(j, "job_name")))),
        Arc::new(StringArray::from_iter(jobs.iter().map(|j| text(j, "status")))),
        Arc::new(StringArray::from_iter(stages)),
        Arc::new(StringArray::from_iter(tasks.iter().map(|t| t.map(|(ok, launched)| format!("{ok}/{launched}"))))),
        Arc::new(Float64Array::from_iter(jobs.iter().map(|j| elapsed_secs(j, now_ms)))),
        Arc::new(StringArray::from_iter(errors)),
    ];
    RecordBatch::try_new(schema, columns).context("cannot build the jobs table")
}

/// Writes one table to standard output and flushes it, so it comes out before the next header.
fn write_table(format: OutputFormat, batch: RecordBatch) -> Result<()> {
    let schema = batch.schema();
    let mut out = ResultWriter::new(format, None)?;
    out.write(&schema, &[batch])?;
    out.finish()
}
