//! backbeat's jobs: a catalogue of named, parameterised jobs, SQL scripts (`jobs/sql/`) and Rust
//! DataFrame jobs (one file each in `jobs/src/`), run on the cluster with typed parameters and a
//! Delta run history.
#![warn(missing_docs)]

/// The catalogue of jobs and loading a job from a script.
pub mod job_catalogue;
/// Typed parameters bound into SQL as checked literals.
pub mod job_params;
/// Running a job and collecting its report.
pub mod job_runner;
/// The `backbeat_runs` Delta table.
pub mod run_history;
/// Rust job: each listener's most played genres.
pub mod user_top_genres;
