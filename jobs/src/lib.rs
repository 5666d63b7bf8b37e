//! backbeat's jobs: a catalogue of named, parameterised SQL jobs (`jobs/sql/`), run on the cluster
//! with typed parameters and a Delta run history.
#![warn(missing_docs)]

/// The catalogue of jobs and loading a job from a script.
pub mod job_catalogue;
/// Typed parameters bound into SQL as checked literals.
pub mod job_params;
/// Running a job and collecting its report.
pub mod job_runner;
/// The `backbeat_runs` Delta table.
pub mod run_history;
