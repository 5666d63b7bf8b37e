//! backbeat's jobs: a catalogue of named, parameterised jobs, SQL scripts (`jobs/sql/`) and Rust
//! DataFrame jobs (one file each in `jobs/src/`), run on the cluster with typed parameters and a
//! Delta run history.
#![warn(missing_docs)]

/// Next-order prediction: BG/NBD and Gamma-Gamma customer models.
pub mod clv;
/// The catalogue of jobs and loading a job from a script.
pub mod job_catalogue;
/// Typed parameters bound into SQL as checked literals.
pub mod job_params;
/// Running a job and collecting its report.
pub mod job_runner;
/// ISRC matching: title parsing, blocking, Fellegi-Sunter scoring and evaluation.
pub mod matching;
/// Pipelines of jobs: DAGs with retries, resume, backfill and cron schedules.
pub mod pipeline;
/// Python job scripts, given a Flight SQL server of their own for the run.
pub mod python_job;
/// Recommendation models: training, evaluation and serving.
pub mod recs;
/// The `backbeat_runs` Delta table.
pub mod run_history;
/// Rust job: each listener's most played genres.
pub mod user_top_genres;

/// Registers every partition kernel and UDF the jobs use in this process. Each backbeat process
/// (client, scheduler, executor) calls it once at start, before any session; calling it again is
/// harmless.
pub fn register_kernels() {
    recs::register_kernels();
    clv::register_kernels();
    matching::register();
}
