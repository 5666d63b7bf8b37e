//! backbeat's engine: a Ballista cluster that reads and writes Delta Lake tables and runs backbeat's
//! UDFs on its executors.
//!
//! A query is planned on the client ([`session`]), shipped to the scheduler as a logical plan
//! ([`codec`] carries Delta tables across), planned physically there ([`delta`] turns a Delta
//! snapshot into a Parquet scan, and a write into parallel file writes plus one commit) and run by
//! executors ([`executor_process`]).
#![warn(missing_docs)]

/// Whole lake tables read inside executor tasks, shared by the tasks of one process.
pub mod broadcast;
/// Mutual TLS between clients, scheduler and executors: rustls fronts and TLS client endpoints.
pub mod cluster_tls;
/// Extension codecs that carry Delta providers and write nodes between client, scheduler, executors.
pub mod codec;
/// Delta Lake: scans, the one writer and commit, and the verbs (MERGE, UPDATE, DELETE, OPTIMIZE...).
pub mod delta;
/// Arrow Flight SQL: the lake for pandas, notebooks and BI tools, with bearer tokens and TLS.
pub mod flight_sql;
/// An in-process scheduler and executor with push scheduling and an owned work directory.
pub mod embedded_cluster;
/// Empty relations that keep their columns on the way to the scheduler.
pub mod empty_relation;
/// The executor process with backbeat's codecs and UDFs.
pub mod executor_process;
/// Executors lost mid-job: their jobs fail with the reason instead of Ballista's unsafe recovery.
pub mod executor_loss;
/// The lake's own SQL statements (MERGE, UPDATE, DELETE, OPTIMIZE, VACUUM, history, restore).
pub mod lake_sql;
/// The lake root: Delta tables and Parquet directories as tables, time travel by `name@vN`.
pub mod lake_catalog;
/// A scheduler and executors as OS processes on loopback, for tests and benchmarks.
pub mod local_cluster;
/// The lake on S3 as well as on disk: stores from each process's own credentials, safe commits.
pub mod object_storage;
/// Comparing results across engines, insensitive to row order and float noise.
pub mod result_compare;
/// `mapPartitions`: registered kernels run over each partition of a DataFrame on the executors.
pub mod map_partitions;
/// The scheduler process with backbeat's codecs, UDFs and push scheduling.
pub mod scheduler_process;
/// Client sessions: SQL and DataFrames on a cluster, with the lake and Delta writes.
pub mod session;
/// The executors' stage engine: Ballista's, without operator metrics that can hang a job.
pub mod stage_engine;
/// Splitting SQL scripts and recognising `CREATE TABLE ... AS`.
pub mod sql_script;
/// `generate_series` and `range` carried to the scheduler by their arguments.
pub mod table_functions;
/// Pure string functions behind the matching UDFs.
pub mod text_similarity;
/// TPC-H data generated as Parquet table directories, and Delta copies of them.
pub mod tpch_data;
/// backbeat's scalar UDFs and the registry every process loads.
pub mod udf_registry;
