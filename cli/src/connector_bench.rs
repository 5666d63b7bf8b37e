//! `backbeat bench ingest` and `backbeat bench export`: connector throughput beside the databases'
//! own tools on the same rows (`mysqldump`, `psql \copy`, `redis-benchmark`). Prints Markdown rows
//! for BENCHMARKS.md.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, ensure};
use backbeat_cluster::session::{BackbeatSession, ClusterTarget};
use backbeat_connectors::csv_source::{self, CsvOptions};
use backbeat_connectors::db_source::{self, DbKind, DbQuery, DbSource};
use backbeat_connectors::export::{ExportOptions, export_table, target_for};
use backbeat_cluster::delta::WriteMode;
use backbeat_connectors::ingest::{IngestOptions, TargetTable, run_ingest};
use backbeat_connectors::table_spec::TableSpec;
use clap::Args;
use mysql_async::prelude::Queryable;

/// Arguments of the connector benchmarks.
#[derive(Args)]
pub struct ConnectorBenchArgs {
    /// Rows for the CSV ingest (ingest) or for every store (export).
    #[arg(long, default_value_t = 1_000_000)]
    rows: u64,
    /// Rows for the database ingests.
    #[arg(long, default_value_t = 1_000_000)]
    db_rows: u64,
    /// Scratch directory (lake and files).
    #[arg(long, default_value = "./bench-data/connectors")]
    work: PathBuf,
    /// PostgreSQL admin URL (a scratch schema is created and dropped).
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/test")]
    postgres: String,
    /// MariaDB/MySQL admin URL (a scratch database is created and dropped).
    #[arg(long, default_value = "mysql://root@127.0.0.1:3306/test")]
    mysql: String,
    /// Redis URL.
    #[arg(long, default_value = "redis://127.0.0.1:6379/0")]
    redis: String,
    /// MongoDB URL (database is created and dropped).
    #[arg(long, default_value = "mongodb://127.0.0.1:27017/backbeat_bench?directConnection=true")]
    mongo: String,
}

fn orders_spec() -> Result<TableSpec> {
    TableSpec::from_yaml_str(
        "key: [order_id]\ncolumns:\n  - {name: order_id, type: int64}\n  - {name: customer_id, type: int64}\n  - {name: order_ts, type: timestamp}\n  - {name: amount, type: 'decimal(10,2)'}\n  - {name: note, type: string}\n",
    )
}

/// Seed-002-shaped order rows as CSV with a header.
fn write_csv(path: &Path, rows: u64) -> Result<()> {
    let mut w = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    writeln!(w, "order_id,customer_id,order_ts,amount,note")?;
    for i in 1..=rows {
        writeln!(w, "{i},{},2024-{:02}-{:02} {:02}:{:02}:00,{}.{:02},order {i}", i % 99_991, 1 + i % 12, 1 + i % 28, i % 24, i % 60, i % 997, i % 100)?;
    }
    Ok(())
}

fn rate(rows: u64, seconds: f64) -> String {
    format!("{:.0}", rows as f64 / seconds)
}

fn timed(mut command: Command) -> Result<f64> {
    let started = Instant::now();
    let out = command.output().with_context(|| format!("running {command:?}"))?;
    ensure!(out.status.success(), "{command:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    Ok(started.elapsed().as_secs_f64())
}

async fn embedded(lake: &Path) -> Result<BackbeatSession> {
    std::fs::create_dir_all(lake)?;
    BackbeatSession::connect(ClusterTarget::Embedded { concurrency: 0 }, lake).await
}

fn options() -> IngestOptions {
    IngestOptions { mode: WriteMode::Overwrite, max_reject_rate: None, concurrency: 4, progress: false }
}

/// Runs `backbeat bench ingest`.
pub async fn ingest(args: ConnectorBenchArgs) -> Result<()> {
    let _ = std::fs::remove_dir_all(&args.work);
    std::fs::create_dir_all(&args.work)?;
    let session = embedded(&args.work.join("lake")).await?;
    let spec = Arc::new(orders_spec()?);
    println!("| source | rows | backbeat s | backbeat rows/s | baseline | baseline s | baseline rows/s |");
    println!("|---|---:|---:|---:|---|---:|---:|");

    let csv = args.work.join("orders.csv");
    write_csv(&csv, args.rows)?;
    let started = Instant::now();
    let plan = csv_source::plan(TargetTable { name: "csv_orders".into(), spec: spec.clone() }, csv_source::list_files(csv.to_str().unwrap())?, CsvOptions::default());
    let report = run_ingest(&session, plan, &options()).await?;
    let s = started.elapsed().as_secs_f64();
    ensure!(report.tables[0].written == args.rows, "CSV ingest wrote {} rows", report.tables[0].written);
    println!("| CSV → Delta | {} | {s:.2} | {} | – | – | – |", args.rows, rate(args.rows, s));

    // The same rows in PostgreSQL and MariaDB.
    let db_csv = args.work.join("db_orders.csv");
    write_csv(&db_csv, args.db_rows)?;
    let schema = format!("bench_{}", std::process::id());
    let psql = |sql: &str| {
        let mut c = Command::new("psql");
        c.args([args.postgres.as_str(), "-v", "ON_ERROR_STOP=1", "-q", "-c", sql]);
        c
    };
    timed(psql(&format!(
        "CREATE SCHEMA {schema}; CREATE TABLE {schema}.orders (order_id bigint PRIMARY KEY, customer_id bigint, order_ts timestamp, amount numeric(10,2), note text)"
    )))?;
    timed(psql(&format!("\\copy {schema}.orders FROM '{}' WITH (FORMAT csv, HEADER true)", db_csv.display())))?;
    timed(psql(&format!("VACUUM ANALYZE {schema}.orders")))?;
    let started = Instant::now();
    let source = DbSource { kind: DbKind::Postgres, url: args.postgres.clone(), query: DbQuery::Table(format!("{schema}.orders")), partition_column: Some("order_id".into()), num_partitions: 4 };
    let report = run_ingest(&session, db_source::plan(source, "pg_orders".into(), None, vec![]).await?, &options()).await?;
    let s = started.elapsed().as_secs_f64();
    ensure!(report.tables[0].written == args.db_rows);
    let dump = args.work.join("pg_dump.csv");
    let base = timed(psql(&format!("\\copy {schema}.orders TO '{}' WITH (FORMAT csv)", dump.display())))?;
    println!("| PostgreSQL → Delta (4 ranges) | {} | {s:.2} | {} | `psql \\copy` to CSV | {base:.2} | {} |", args.db_rows, rate(args.db_rows, s), rate(args.db_rows, base));
    timed(psql(&format!("DROP SCHEMA {schema} CASCADE")))?;

    let mut conn = mysql_async::Conn::new(mysql_async::Opts::from_url(&args.mysql)?).await?;
    conn.query_drop(format!("CREATE DATABASE {schema}")).await?;
    conn.query_drop(format!(
        "CREATE TABLE {schema}.orders (order_id BIGINT PRIMARY KEY, customer_id BIGINT, order_ts DATETIME, amount DECIMAL(10,2), note VARCHAR(64))"
    ))
    .await?;
    let mut reader = csv::Reader::from_path(&db_csv)?;
    let mut values = Vec::with_capacity(5_000);
    for record in reader.records() {
        let r = record?;
        values.push(format!("({},{},'{}',{},'{}')", &r[0], &r[1], &r[2], &r[3], &r[4]));
        if values.len() == 5_000 {
            conn.query_drop(format!("INSERT INTO {schema}.orders VALUES {}", values.join(","))).await?;
            values.clear();
        }
    }
    if !values.is_empty() {
        conn.query_drop(format!("INSERT INTO {schema}.orders VALUES {}", values.join(","))).await?;
    }
    let url = format!("{}/{schema}", args.mysql.rsplit_once('/').map(|(a, _)| a).unwrap_or(&args.mysql));
    let started = Instant::now();
    let source = DbSource { kind: DbKind::Mysql, url, query: DbQuery::Table("orders".into()), partition_column: Some("order_id".into()), num_partitions: 4 };
    let report = run_ingest(&session, db_source::plan(source, "my_orders".into(), None, vec![]).await?, &options()).await?;
    let s = started.elapsed().as_secs_f64();
    ensure!(report.tables[0].written == args.db_rows);
    let dump = args.work.join("mysqldump.sql");
    let mut c = Command::new("sh");
    c.args(["-c", &format!("mysqldump -h 127.0.0.1 -u root {schema} orders > '{}'", dump.display())]);
    let base = timed(c)?;
    println!("| MariaDB → Delta (4 ranges) | {} | {s:.2} | {} | `mysqldump` to a file | {base:.2} | {} |", args.db_rows, rate(args.db_rows, s), rate(args.db_rows, base));
    conn.query_drop(format!("DROP DATABASE {schema}")).await?;
    Ok(())
}

/// Runs `backbeat bench export`.
pub async fn export(args: ConnectorBenchArgs) -> Result<()> {
    let _ = std::fs::remove_dir_all(&args.work);
    std::fs::create_dir_all(&args.work)?;
    let session = embedded(&args.work.join("lake")).await?;
    let n = args.rows;
    session
        // unnest(range(..)), not the range() table function, which Ballista cannot serialize.
        .sql(&format!(
            "CREATE TABLE recs AS SELECT value AS user_id, value % 5000 AS track_id, CAST(value % 1000 AS DOUBLE) / 1000 AS score, \
             arrow_cast(value * 1000000, 'Timestamp(µs, \"UTC\")') AS at, 'title ' || CAST(value AS VARCHAR) AS title \
             FROM (SELECT unnest(range(0, {n})) AS value)"
        ))
        .await?
        .collect()
        .await?;
    println!("| store | rows | backbeat s | backbeat rows/s | baseline | baseline s | baseline rows/s |");
    println!("|---|---:|---:|---:|---|---:|---:|");
    let table = format!("bench_recs_{}", std::process::id());

    // PostgreSQL, beside psql \copy of the same rows from CSV.
    let target = target_for(&args.postgres, "recs", &ExportOptions { name: Some(table.clone()), key: vec!["user_id".into()], ..Default::default() })?;
    let r = export_table(&session, "recs", None, &target, false).await?;
    let csv = args.work.join("recs.csv");
    let mut w = std::io::BufWriter::new(std::fs::File::create(&csv)?);
    for i in 0..n {
        writeln!(w, "{i},{},{},{},title {i}", i % 5000, (i % 1000) as f64 / 1000.0, chrono::DateTime::from_timestamp(i as i64, 0).unwrap().to_rfc3339())?;
    }
    w.flush()?;
    let copy_table = format!("{table}_copy");
    let psql = |sql: String| {
        let mut c = Command::new("psql");
        c.args([args.postgres.as_str(), "-v", "ON_ERROR_STOP=1", "-q", "-c", &sql]);
        c
    };
    timed(psql(format!("CREATE TABLE {copy_table} (user_id bigint, track_id bigint, score double precision, at timestamptz, title text)")))?;
    let base = timed(psql(format!("\\copy {copy_table} FROM '{}' WITH (FORMAT csv)", csv.display())))?;
    println!("| PostgreSQL (binary COPY + swap) | {} | {:.2} | {} | `psql \\copy` from CSV | {base:.2} | {} |", r.rows, r.seconds, rate(r.rows, r.seconds), rate(n, base));
    timed(psql(format!("DROP TABLE {table}; DROP TABLE {copy_table}")))?;

    // Redis hashes, beside redis-benchmark SETs pipelined 64 deep.
    let pattern = format!("{table}:{{user_id}}");
    let target = target_for(&args.redis, "recs", &ExportOptions { key_pattern: Some(pattern.clone()), ..Default::default() })?;
    let r = export_table(&session, "recs", None, &target, false).await?;
    let mut c = Command::new("redis-benchmark");
    c.args(["-P", "64", "-t", "set", "-n", &n.to_string(), "-q", "-r", &n.to_string()]);
    let base = timed(c)?;
    println!("| Redis (hashes, pipelined, MULTI switch) | {} | {:.2} | {} | `redis-benchmark -P 64 -t set` | {base:.2} | {} |", r.rows, r.seconds, rate(r.rows, r.seconds), rate(n, base));
    let mut c = Command::new("sh");
    c.args(["-c", &format!("redis-cli --scan --pattern '{table}:*' | xargs -r -n 1000 redis-cli DEL > /dev/null; redis-cli DEL 'backbeat:export:{pattern}' > /dev/null; redis-cli --scan --pattern 'key:*' | xargs -r -n 1000 redis-cli DEL > /dev/null")]);
    timed(c)?;

    // MongoDB (SecantusDB here).
    let target = target_for(&args.mongo, "recs", &ExportOptions { name: Some(table.clone()), key: vec!["user_id".into()], ..Default::default() })?;
    let r = export_table(&session, "recs", None, &target, false).await?;
    println!("| MongoDB protocol (SecantusDB; bulk upserts + rename) | {} | {:.2} | {} | – | – | – |", r.rows, r.seconds, rate(r.rows, r.seconds));
    let client = mongodb::Client::with_uri_str(&args.mongo).await?;
    client.default_database().context("database")?.collection::<mongodb::bson::Document>(&table).drop().await?;
    Ok(())
}
