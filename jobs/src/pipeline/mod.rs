//! Pipelines: the daily batch as a DAG of steps (catalogue jobs, ingests, exports, datagen) read
//! from YAML, run with bounded concurrency, retries, timeouts and resume, and fired on cron slots
//! by `backbeat schedule`. Spark and Ballista leave this to Airflow or Databricks Jobs; here it
//! shares the lake (the run history is `backbeat_runs`, the schedule lease is a file beside the
//! tables), so a pipeline needs no server of its own.

/// Cron expressions in a time zone and catch-up policies.
pub mod cron;
/// The step graph: cycles, order, downstream steps, the DAG as text.
pub mod dag;
/// The schedule lease and slot markers in the lake.
pub mod lease;
/// Running a pipeline: concurrency, retries, timeouts, resume, the summary.
pub mod run;
/// The `backbeat schedule` loop.
pub mod schedule;
/// Pipeline files: parsing and checking.
pub mod spec;
/// One attempt of one step.
pub mod steps;
/// `{{ name }}` variables.
pub mod template;

pub use run::{PipelineReport, RunOptions, Stop, run_pipeline};
pub use spec::{Pipeline, builtin, find_pipeline};
