//! `backbeat ingest`: CSV, JSON, MariaDB/MySQL and PostgreSQL sources into Delta tables.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use backbeat_connectors::csv_source::CsvOptions;
use backbeat_connectors::file_ingest::{FileFormat, FileIngest};
use backbeat_connectors::db_source::{self, DbKind, DbQuery, DbSource};
use backbeat_cluster::delta::WriteMode;
use backbeat_connectors::ingest::{IngestOptions, SourcePlan, count_rows, format_report, run_ingest};
use backbeat_connectors::table_spec::TableSpec;
use clap::{Args, Subcommand};

use crate::SessionArgs;

/// The source of an ingest.
#[derive(Subcommand)]
pub enum IngestSource {
    /// CSV: a file, a directory or a glob; .gz and .zst files are decompressed.
    #[command(after_help = "Example: backbeat ingest csv 'data/orders/*.csv.gz' --table orders --schema specs/orders.yaml --mode merge")]
    Csv {
        /// File, directory or glob.
        path: String,
        /// The files have no header line (columns are then taken in the spec's order).
        #[arg(long)]
        no_header: bool,
        /// Field delimiter (one character; `\t` for tab).
        #[arg(long, default_value = ",")]
        delimiter: String,
        /// Quote character.
        #[arg(long, default_value = "\"")]
        quote: String,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// JSON: NDJSON (.ndjson/.jsonl) or documents (.json), flattened by a mapping into tables.
    #[command(after_help = "Example: backbeat ingest json exports/youtube_playlists.ndjson --mapping jobs/ingest/youtube_playlists.yaml --mode merge")]
    Json {
        /// File, directory or glob.
        path: String,
        /// A mapping of nested arrays to several tables (see jobs/ingest/youtube_playlists.yaml).
        #[arg(long, conflicts_with = "schema")]
        mapping: Option<PathBuf>,
        /// Prefix for the mapping's table names.
        #[arg(long, default_value = "")]
        table_prefix: String,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// A MariaDB/MySQL table or query.
    Mysql(DbArgs),
    /// A PostgreSQL table or query.
    Postgres(DbArgs),
}

/// Arguments of the database sources.
#[derive(Args)]
pub struct DbArgs {
    /// Connection URL, e.g. mysql://root@127.0.0.1:3306/shop or postgres://me@127.0.0.1:5432/shop.
    #[arg(long, env = "BACKBEAT_SOURCE_URL")]
    url: String,
    /// Source table (optionally schema.table).
    #[arg(long, conflicts_with = "query", required_unless_present = "query")]
    source_table: Option<String>,
    /// Source query.
    #[arg(long)]
    query: Option<String>,
    /// Numeric, date or timestamp column whose range is split into concurrent reads.
    #[arg(long)]
    partition_column: Option<String>,
    /// Ranges read concurrently.
    #[arg(long, default_value_t = 4)]
    num_partitions: usize,
    #[command(flatten)]
    common: CommonArgs,
}

/// Arguments every source shares.
#[derive(Args)]
pub struct CommonArgs {
    /// Target table [default: the spec's `table:`].
    #[arg(long)]
    table: Option<String>,
    /// Declared schema (YAML: columns with types, required, key). Without it the schema is inferred.
    #[arg(long)]
    schema: Option<PathBuf>,
    /// Key columns for merge (overrides the spec's key).
    #[arg(long, value_delimiter = ',')]
    key: Vec<String>,
    /// append, overwrite, or merge (upsert by key).
    #[arg(long, default_value = "append", value_parser = ingest_mode)]
    mode: WriteMode,
    /// Fail, committing nothing, when more than this fraction of rows is rejected (e.g. 0.01).
    #[arg(long)]
    max_reject_rate: Option<f64>,
    /// Partitions (files, ranges) read at once [default: one per core, at least 2].
    #[arg(long, default_value_t = 0)]
    concurrency: usize,
    #[command(flatten)]
    session: SessionArgs,
}

/// `--mode`: the write modes an ingest can use.
fn ingest_mode(s: &str) -> Result<WriteMode, String> {
    match s.parse::<WriteMode>()? {
        mode @ (WriteMode::Append | WriteMode::Overwrite | WriteMode::Merge) => Ok(mode),
        other => Err(format!("ingest cannot use mode '{other}' (append, overwrite or merge)")),
    }
}

impl CommonArgs {
    fn options(&self) -> IngestOptions {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        IngestOptions {
            mode: self.mode,
            max_reject_rate: self.max_reject_rate,
            concurrency: if self.concurrency == 0 { cores.max(2) } else { self.concurrency },
            progress: true,
        }
    }

    fn file_ingest(&self, format: FileFormat, path: &str) -> FileIngest {
        FileIngest { schema: self.schema.clone(), table: self.table.clone(), key: self.key.clone(), ..FileIngest::new(format, path) }
    }

    fn spec(&self) -> Result<Option<TableSpec>> {
        let Some(path) = &self.schema else { return Ok(None) };
        let spec = TableSpec::load(path)?;
        Ok(Some(if self.key.is_empty() { spec } else { TableSpec::new(spec.table, spec.columns, self.key.clone())? }))
    }

    fn table_name(&self, spec: Option<&TableSpec>) -> Result<String> {
        self.table
            .clone()
            .or_else(|| spec.and_then(|s| s.table.clone()))
            .context("name the target with --table (or `table:` in the spec)")
    }
}

fn one_char(flag: &str, value: &str) -> Result<u8> {
    let value = if value == "\\t" { "\t" } else { value };
    match value.as_bytes() {
        [b] => Ok(*b),
        _ => bail!("--{flag} must be one ASCII character, got '{value}'"),
    }
}

/// Runs `backbeat ingest`.
pub async fn run(source: IngestSource) -> Result<()> {
    let (plan, common): (SourcePlan, &CommonArgs) = match &source {
        IngestSource::Csv { path, no_header, delimiter, quote, common } => {
            let mut ingest = common.file_ingest(FileFormat::Csv, path);
            ingest.csv = CsvOptions { header: !no_header, delimiter: one_char("delimiter", delimiter)?, quote: one_char("quote", quote)? };
            (ingest.plan()?, common)
        }
        IngestSource::Json { path, mapping, table_prefix, common } => {
            let mut ingest = common.file_ingest(FileFormat::Json, path);
            ingest.mapping = mapping.clone();
            ingest.table_prefix = table_prefix.clone();
            (ingest.plan()?, common)
        }
        IngestSource::Mysql(args) | IngestSource::Postgres(args) => {
            let expected = if matches!(source, IngestSource::Mysql(_)) { DbKind::Mysql } else { DbKind::Postgres };
            let kind = DbSource::kind_of(&args.url)?;
            if kind != expected {
                bail!("the URL's scheme does not match the source (mysql:// for mysql, postgres:// for postgres)");
            }
            let query = match (&args.source_table, &args.query) {
                (Some(t), _) => DbQuery::Table(t.clone()),
                (None, Some(q)) => DbQuery::Query(q.clone()),
                (None, None) => bail!("--source-table or --query is required"),
            };
            let spec = args.common.spec()?;
            let table = args
                .common
                .table_name(spec.as_ref())
                .or_else(|_| args.source_table.clone().map(|t| t.rsplit('.').next().unwrap_or(&t).to_string()).context("name the target with --table"))?;
            let source = DbSource {
                kind,
                url: args.url.clone(),
                query,
                partition_column: args.partition_column.clone(),
                num_partitions: args.num_partitions,
            };
            (db_source::plan(source, table, spec, args.common.key.clone()).await?, &args.common)
        }
    };
    let session = common.session.connect().await?;
    let mut report = run_ingest(&session, plan, &common.options()).await?;
    for t in &mut report.tables {
        t.rows_after = Some(count_rows(&session, &t.table).await?);
    }
    print!("{}", format_report(&report));
    Ok(())
}
