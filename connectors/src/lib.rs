//! backbeat's connectors: ingest from files and databases into Delta tables, export from Delta
//! tables to serving stores.
//!
//! Ingest reads a source in partitions ([`csv_source`], [`json_source`], [`db_source`]), types
//! every row against a declared or inferred [`table_spec`] ([`typed_row`]), keeps rows that do not
//! fit in a dead-letter table ([`dead_letter`]) and commits each table once ([`ingest`]).
//!
//! Export streams a table from the cluster into a store ([`export`]): every value goes through
//! [`arrow_cell`], then [`postgres_export`], [`redis_export`] or [`mongo_export`] writes it so that
//! readers see the old data or the new, never a mix.
#![warn(missing_docs)]

/// One Arrow value as a store-neutral cell, for every exporter.
pub mod arrow_cell;
/// CSV files, globs and directories (plain, gzip, zstd) as a source.
pub mod csv_source;
/// MariaDB/MySQL and PostgreSQL tables or queries, read in concurrent ranges.
pub mod db_source;
/// Rejected rows and the `<table>__rejected` table.
pub mod dead_letter;
/// Export of a lake table to PostgreSQL, Redis or MongoDB, chosen by URL.
pub mod export;
/// A CSV or JSON file ingest described by values (the CLI's and the pipelines').
pub mod file_ingest;
/// Partitioned, concurrent reads into staged files; one Delta commit per table; merges.
pub mod ingest;
/// NDJSON and nested JSON documents, flattened into tables by a declared mapping.
pub mod json_source;
/// MongoDB: batched unordered upserts by `_id`, switched in by collection rename.
pub mod mongo_export;
/// PostgreSQL: binary COPY into staging, then replace or upsert in one transaction.
pub mod postgres_export;
/// Redis: hashes, JSON or sorted sets under temporary keys, switched in by MULTI/EXEC renames.
pub mod redis_export;
/// The rows-per-second progress bar of ingest and export.
pub mod row_progress;
/// Connection URLs with passwords hidden, for logs and errors.
pub mod secret_url;
/// Declared table schemas (YAML), types and keys.
pub mod table_spec;
/// Text fields to typed Arrow columns, rejecting one row at a time.
pub mod typed_row;
