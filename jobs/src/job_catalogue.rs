//! The job catalogue: SQL scripts under `jobs/sql/`, compiled into the binary, each starting with a
//! header that names it, describes it and declares its parameters:
//!
//! ```sql
//! -- job: order_analysis
//! -- description: Seed 002's order questions on generated orders
//! -- param: orders_csv path = lake/sources/orders/orders.csv -- orders (order_id, customer_id, order_ts)
//! ```
//!
//! `backbeat run` also takes a path to any SQL script with the same (optional) header.

use std::path::Path;

use anyhow::{Context, Result, bail};

use crate::job_params::{ParamSpec, parse_param_line, placeholders};

/// A Rust job's entry point: the session and the bound parameter values.
pub type RustJobFn = for<'a> fn(
    &'a backbeat_cluster::session::BackbeatSession,
    &'a std::collections::BTreeMap<String, String>,
) -> futures::future::BoxFuture<'a, Result<crate::job_runner::RustJobOutput>>;

/// What a job runs.
#[derive(Clone)]
pub enum JobBody {
    /// A SQL script with `${param}` placeholders.
    Sql(String),
    /// A Rust function using the DataFrame API (one file per job in `jobs/src/`).
    Rust(RustJobFn),
    /// A Python script talking Flight SQL to the job's session ([`crate::python_job`]).
    Python(std::path::PathBuf),
}

impl std::fmt::Debug for JobBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JobBody::Sql(sql) => write!(f, "Sql({} bytes)", sql.len()),
            JobBody::Rust(_) => write!(f, "Rust"),
            JobBody::Python(path) => write!(f, "Python({})", path.display()),
        }
    }
}

/// A runnable job.
#[derive(Debug, Clone)]
pub struct Job {
    /// Catalogue name (or the script's file stem).
    pub name: String,
    /// One line saying what it does.
    pub description: String,
    /// Declared parameters.
    pub params: Vec<ParamSpec>,
    /// What it runs.
    pub body: JobBody,
}

impl Job {
    /// A Rust job of the catalogue.
    pub fn rust(name: &str, description: &str, params: Vec<ParamSpec>, body: RustJobFn) -> Self {
        Self { name: name.into(), description: description.into(), params, body: JobBody::Rust(body) }
    }
}

/// The catalogue's scripts, compiled in.
const BUILTIN: [&str; 8] = [
    include_str!("../sql/order_analysis.sql"),
    include_str!("../sql/order_analysis_cdnow.sql"),
    include_str!("../sql/order_analysis_pizza.sql"),
    include_str!("../sql/shop_prices.sql"),
    include_str!("../sql/catalogue_analytics.sql"),
    include_str!("../sql/chinook_genres.sql"),
    include_str!("../sql/cdnow_orders.sql"),
    include_str!("../sql/order_totals.sql"),
];

impl Job {
    /// The SQL script (empty for a Rust job), whose `${param}` placeholders are bound.
    pub fn script(&self) -> &str {
        match &self.body {
            JobBody::Sql(sql) => sql,
            JobBody::Rust(_) | JobBody::Python(_) => "",
        }
    }

    /// Parses a script and its header; `fallback_name` names a script without `-- job:`.
    pub fn parse(script: &str, fallback_name: &str) -> Result<Self> {
        let mut job = Job { name: fallback_name.to_string(), description: String::new(), params: vec![], body: JobBody::Sql(script.to_string()) };
        for line in script.lines().take_while(|l| l.trim_start().starts_with("--") || l.trim().is_empty()) {
            let text = line.trim_start().trim_start_matches('-').trim();
            if let Some(name) = text.strip_prefix("job:") {
                job.name = name.trim().to_string();
            } else if let Some(description) = text.strip_prefix("description:") {
                job.description = description.trim().to_string();
            } else if let Some(param) = parse_param_line(line)? {
                job.params.push(param);
            }
        }
        for used in placeholders(script) {
            if !job.params.iter().any(|p| p.name == used) {
                bail!("job {}: ${{{used}}} is used but not declared (add `-- param: {used} <type> ...` to its header)", job.name);
            }
        }
        Ok(job)
    }
}

fn rust_jobs() -> Vec<Job> {
    use crate::job_params::{ParamSpec as P, ParamType as T};
    let param = |name: &str, ty, default: &str, help: &str| P { name: name.into(), ty, default: Some(default.into()), help: help.into() };
    let recs = crate::recs::catalogue_jobs();
    let mut jobs = vec![Job {
        name: "user_top_genres".into(),
        description: "Each listener's most played genres (DataFrame API), for genre-aware recommendations".into(),
        params: vec![
            param("events", T::Table, "listening_events", "listening events: user_id, track_id"),
            param("tracks", T::Table, "tracks", "tracks: track_id, track_genre"),
            param("out", T::Table, "user_top_genres", "table to write"),
            param("top", T::Int, "3", "genres kept per listener"),
            param("export_to", T::Text, "", "serving store to export to (e.g. redis://127.0.0.1:6379/0: a sorted set per listener, key <out>:<user_id>)"),
        ],
        body: JobBody::Rust(|session, params| Box::pin(crate::user_top_genres::run(session, params))),
    }];
    jobs.extend(recs);
    jobs.extend(crate::clv::catalogue_jobs());
    jobs.extend(crate::matching::catalogue_jobs());
    jobs
}

/// Every job in the catalogue, sorted by name.
pub fn catalogue() -> Vec<Job> {
    let mut jobs: Vec<Job> = BUILTIN.iter().map(|s| Job::parse(s, "unnamed").expect("built-in jobs parse")).collect();
    jobs.extend(rust_jobs());
    jobs.sort_by(|a, b| a.name.cmp(&b.name));
    jobs
}

/// Finds a job by catalogue name or, if `name` is a path to a `.sql` or `.py` file, loads it.
pub fn find(name: &str) -> Result<Job> {
    if let Some(job) = catalogue().into_iter().find(|j| j.name == name) {
        return Ok(job);
    }
    let path = Path::new(name);
    if path.extension().is_some_and(|e| e == "sql") {
        let script = std::fs::read_to_string(path).with_context(|| format!("cannot read job script {}", path.display()))?;
        let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        return Job::parse(&script, &stem);
    }
    if path.extension().is_some_and(|e| e == "py") {
        return crate::python_job::parse(path);
    }
    let names: Vec<String> = catalogue().into_iter().map(|j| j.name).collect();
    bail!("unknown job '{name}'; the catalogue has: {} (or give a path to a .sql or .py script)", names.join(", "))
}
