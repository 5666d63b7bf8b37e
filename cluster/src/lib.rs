//! backbeat's engine: a Ballista cluster that reads and writes Delta Lake tables and runs backbeat's
//! UDFs on its executors.
//!
//! A query is planned on the client ([`session`]), shipped to the scheduler as a logical plan
//! ([`codec`] carries Delta tables across), planned physically there ([`delta_table`] turns a Delta
//! snapshot into a Parquet scan, [`delta_write`] turns a write into parallel file writes plus one
//! commit) and run by executors ([`executor_process`]).
#![warn(missing_docs)]

pub mod codec;
pub mod delta_table;
pub mod delta_write;
pub mod embedded_cluster;
pub mod executor_process;
pub mod lake_catalog;
pub mod scheduler_process;
pub mod session;
pub mod sql_script;
pub mod text_similarity;
pub mod tpch_data;
pub mod udf_registry;
