//! Ingest against real files, the real PostgreSQL and MariaDB on this machine, and an embedded
//! Ballista cluster: counts reconcile, bad rows land in `<table>__rejected`, merges are idempotent,
//! bad files fail by name and commit nothing.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use backbeat_cluster::session::{BackbeatSession, ClusterTarget};
use backbeat_connectors::csv_source::{self, CsvOptions};
use backbeat_connectors::db_source::{self, DbKind, DbQuery, DbSource};
use backbeat_cluster::delta::WriteMode;
use backbeat_connectors::ingest::{IngestOptions, IngestReport, SourcePlan, TargetTable, count_rows, run_ingest};
use backbeat_connectors::json_source::{self, JsonMapping};
use backbeat_connectors::table_spec::TableSpec;
use backbeat_datasets::sinks::DirtyRow;

const PG_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
const MYSQL_ADMIN_URL: &str = "mysql://root@127.0.0.1:3306/test";

fn repo_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

fn orders_spec() -> TableSpec {
    TableSpec::load(&repo_file("jobs/ingest/orders.yaml")).unwrap()
}

fn options(mode: WriteMode) -> IngestOptions {
    IngestOptions { mode, max_reject_rate: None, concurrency: 2, progress: false }
}

async fn session(lake: &Path) -> BackbeatSession {
    BackbeatSession::connect(ClusterTarget::Embedded { concurrency: 2 }, lake).await.unwrap()
}

/// Seed-002-shaped orders from the generator, with `dirty_rate` of the order rows corrupted.
fn generate_orders(dir: &Path, customers: u64, dirty_rate: f64) -> backbeat_datasets::orders::OrderCounts {
    backbeat_datasets::orders::generate(7, customers, dirty_rate, dir, |_| {}).unwrap()
}

fn csv_plan(table: &str, spec: TableSpec, path: &Path) -> SourcePlan {
    let files = csv_source::list_files(path.to_str().unwrap()).unwrap();
    csv_source::plan(TargetTable { name: table.into(), spec: Arc::new(spec) }, files, CsvOptions::default())
}

async fn query_i64(session: &BackbeatSession, sql: &str) -> Vec<i64> {
    let batches = session.context().sql(sql).await.unwrap().collect().await.unwrap();
    // Row-major: every column of every row.
    let mut out = vec![];
    for b in &batches {
        let columns: Vec<arrow::array::Int64Array> = b
            .columns()
            .iter()
            .map(|c| arrow::compute::cast(c, &arrow::datatypes::DataType::Int64).unwrap().as_any().downcast_ref::<arrow::array::Int64Array>().unwrap().clone())
            .collect();
        for row in 0..b.num_rows() {
            out.extend(columns.iter().map(|c| c.value(row)));
        }
    }
    out
}

fn rejected_lines(session_rows: Vec<i64>) -> BTreeSet<u64> {
    session_rows.into_iter().map(|l| l as u64).collect()
}

fn manifest_lines(dirty: &[DirtyRow], file: &str) -> BTreeSet<u64> {
    dirty.iter().filter(|d| d.file == file).map(|d| d.line).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dirty_csv_reconciles_and_merge_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let lake = tempfile::tempdir().unwrap();
    let counts = generate_orders(dir.path(), 400, 0.03);
    let expected_bad = manifest_lines(&counts.dirty, "orders.csv");
    assert!(expected_bad.len() > 5, "the generator corrupted rows");
    let session = session(lake.path()).await;

    let mut reports: Vec<IngestReport> = vec![];
    for _ in 0..3 {
        let plan = csv_plan("orders", orders_spec(), &dir.path().join("orders.csv"));
        reports.push(run_ingest(&session, plan, &options(WriteMode::Merge)).await.unwrap());
    }
    let first = &reports[0].tables[0];
    assert_eq!(first.read, counts.orders, "every data line is read");
    assert_eq!(first.read, first.written + first.rejected);
    assert_eq!(first.rejected as usize, expected_bad.len());

    // The dead-letter table holds exactly the corrupted lines (once per run), with column and reason.
    let lines = query_i64(&session, &format!("SELECT line FROM orders__rejected WHERE run_id = '{}'", reports[0].run_id)).await;
    assert_eq!(rejected_lines(lines), expected_bad);
    let with_reason = query_i64(&session, "SELECT count(*) FROM orders__rejected WHERE reason <> '' AND raw <> '' AND source LIKE '%orders.csv'").await;
    assert_eq!(with_reason[0] as u64, 3 * expected_bad.len() as u64);
    let typed = query_i64(&session, "SELECT count(*) FROM orders__rejected WHERE kind = 'wrong_type' AND \"column\" IS NOT NULL").await;
    let manifest_typed = counts.dirty.iter().filter(|d| d.file == "orders.csv" && d.kind == "wrong_type").count();
    assert_eq!(typed[0] as usize, 3 * manifest_typed);

    // Three merges: the same rows, no duplicate keys, and every good row present.
    let rows = count_rows(&session, "orders").await.unwrap();
    let distinct = query_i64(&session, "SELECT count(DISTINCT order_id) FROM orders").await[0] as u64;
    assert_eq!(rows, distinct);
    assert_eq!(rows, first.written);
    for r in &reports[1..] {
        assert_eq!(r.tables[0].written, first.written);
    }
    assert_eq!(count_rows(&session, "orders").await.unwrap(), rows);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn merge_replaces_rows_by_key_and_last_row_wins() {
    let dir = tempfile::tempdir().unwrap();
    let lake = tempfile::tempdir().unwrap();
    let session = session(lake.path()).await;
    let spec = || TableSpec::from_yaml_str("key: [id]\ncolumns:\n  - {name: id, type: int64}\n  - {name: v, type: string}\n").unwrap();
    std::fs::write(dir.path().join("a.csv"), "id,v\n1,a\n2,b\n3,c\n").unwrap();
    run_ingest(&session, csv_plan("t", spec(), &dir.path().join("a.csv")), &options(WriteMode::Merge)).await.unwrap();
    std::fs::write(dir.path().join("b.csv"), "id,v\n2,B\n4,d\n4,D\n").unwrap();
    run_ingest(&session, csv_plan("t", spec(), &dir.path().join("b.csv")), &options(WriteMode::Merge)).await.unwrap();
    let batches = session.context().sql("SELECT id, v FROM t ORDER BY id").await.unwrap().collect().await.unwrap();
    let text = arrow::util::pretty::pretty_format_batches(&batches).unwrap().to_string();
    for expected in ["| 1  | a |", "| 2  | B |", "| 3  | c |", "| 4  | D |"] {
        assert!(text.contains(expected), "{expected} missing from\n{text}");
    }
    assert_eq!(count_rows(&session, "t").await.unwrap(), 4);
    // Overwrite replaces everything; append adds.
    run_ingest(&session, csv_plan("t", spec(), &dir.path().join("a.csv")), &options(WriteMode::Overwrite)).await.unwrap();
    assert_eq!(count_rows(&session, "t").await.unwrap(), 3);
    run_ingest(&session, csv_plan("t", spec(), &dir.path().join("a.csv")), &options(WriteMode::Append)).await.unwrap();
    assert_eq!(count_rows(&session, "t").await.unwrap(), 6);
    // Staging tables are gone.
    assert!(std::fs::read_dir(lake.path()).unwrap().flatten().all(|e| !e.file_name().to_string_lossy().starts_with("_ingest")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reject_rate_limit_and_bad_files_commit_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let lake = tempfile::tempdir().unwrap();
    generate_orders(dir.path(), 200, 0.05);
    let session = session(lake.path()).await;
    let orders = dir.path().join("orders.csv");

    let mut strict = options(WriteMode::Append);
    strict.max_reject_rate = Some(0.001);
    let err = run_ingest(&session, csv_plan("orders", orders_spec(), &orders), &strict).await.unwrap_err();
    let message = format!("{err:#}");
    assert!(message.contains("max-reject-rate") && message.contains("orders.csv"), "{message}");
    assert!(session.lake().table_format("orders").await.unwrap().is_none(), "nothing committed");
    assert!(session.lake().table_format("orders__rejected").await.unwrap().is_none());

    // A clean first version, then bad files: the table stays at version 0.
    let clean = dir.path().join("clean.csv");
    std::fs::write(&clean, "order_id,customer_id,order_ts\n1,1,2024-01-01 10:00:00\n").unwrap();
    run_ingest(&session, csv_plan("orders", orders_spec(), &clean), &options(WriteMode::Append)).await.unwrap();

    // A truncated gzip file.
    let full = std::fs::read(&orders).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &full).unwrap();
    let gz = gz.finish().unwrap();
    let truncated = dir.path().join("truncated.csv.gz");
    std::fs::write(&truncated, &gz[..gz.len() / 2]).unwrap();
    let err = run_ingest(&session, csv_plan("orders", orders_spec(), &truncated), &options(WriteMode::Append)).await.unwrap_err();
    assert!(format!("{err:#}").contains("truncated.csv.gz"), "{err:#}");

    // Latin-1 bytes in a UTF-8 file.
    let latin1 = dir.path().join("latin1.csv");
    std::fs::write(&latin1, b"order_id,customer_id,order_ts\n2,2,2024-01-01 10:00:00\n3,3,caf\xe9\n").unwrap();
    let err = run_ingest(&session, csv_plan("orders", orders_spec(), &latin1), &options(WriteMode::Append)).await.unwrap_err();
    let message = format!("{err:#}");
    assert!(message.contains("latin1.csv") && message.contains("line 3") && message.contains("UTF-8"), "{message}");

    // A column the spec declares but the header lacks.
    let wrong = dir.path().join("wrong_header.csv");
    std::fs::write(&wrong, "order_id,customer\n1,1\n").unwrap();
    let err = run_ingest(&session, csv_plan("orders", orders_spec(), &wrong), &options(WriteMode::Append)).await.unwrap_err();
    assert!(format!("{err:#}").contains("wrong_header.csv"), "{err:#}");

    let summary = session.lake().summarize("orders").await.unwrap();
    assert_eq!(summary.version, Some(0), "the table is still at its first version");
    assert_eq!(count_rows(&session, "orders").await.unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nested_playlist_json_flattens_into_keyed_tables() {
    let dir = tempfile::tempdir().unwrap();
    let lake = tempfile::tempdir().unwrap();
    let counts = backbeat_datasets::isrc::generate(11, 300, 3000, 0.2, dir.path(), |_| {}).unwrap();
    let bad = manifest_lines(&counts.dirty, "youtube_playlists.ndjson");
    assert!(!bad.is_empty());
    let session = session(lake.path()).await;
    let mapping = || JsonMapping::load(&repo_file("jobs/ingest/youtube_playlists.yaml")).unwrap();
    let files = vec![dir.path().join("youtube_playlists.ndjson")];

    let mut reports = vec![];
    for _ in 0..3 {
        reports.push(run_ingest(&session, json_source::plan(mapping(), files.clone()), &options(WriteMode::Merge)).await.unwrap());
    }
    let playlists = &reports[0].tables[0];
    assert_eq!(playlists.table, "playlists");
    assert_eq!(playlists.read, counts.playlists);
    assert_eq!(playlists.rejected as usize, bad.len());
    let lines = query_i64(&session, &format!("SELECT line FROM playlists__rejected WHERE run_id = '{}'", reports[0].run_id)).await;
    assert_eq!(rejected_lines(lines), bad);
    for t in &reports[0].tables {
        assert_eq!(t.read, t.written + t.rejected, "{} reconciles", t.table);
    }

    // Keys are unique after three merges, and children point at parents.
    let keys = [
        ("playlists", "playlist_id"),
        ("playlist_items", "playlist_id, position"),
        ("media_items", "media_item_id"),
        ("media_item_metadata_log", "media_item_id, observed_at"),
        ("artists", "media_item_id, name"),
    ];
    for (table, key) in keys {
        let rows = count_rows(&session, table).await.unwrap();
        let distinct = query_i64(&session, &format!("SELECT count(*) FROM (SELECT DISTINCT {key} FROM {table})")).await[0] as u64;
        assert!(rows > 0, "{table} has rows");
        assert_eq!(rows, distinct, "{table} has no duplicate keys");
    }
    assert_eq!(count_rows(&session, "playlists").await.unwrap(), playlists.written);
    let items = count_rows(&session, "playlist_items").await.unwrap();
    let good_items = query_i64(&session, "SELECT count(*) FROM playlist_items i JOIN playlists p USING (playlist_id)").await[0] as u64;
    assert_eq!(items, good_items, "every item belongs to an ingested playlist");
    let orphans = query_i64(&session, "SELECT count(*) FROM media_item_metadata_log l LEFT JOIN media_items m USING (media_item_id) WHERE m.media_item_id IS NULL").await;
    assert_eq!(orphans[0], 0);
}

fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", &uuid::Uuid::new_v4().simple().to_string()[..10])
}

/// Loads `orders.csv` (clean) into a fresh PostgreSQL schema; returns the schema name.
async fn load_postgres_orders(csv: &Path) -> (tokio_postgres::Client, String) {
    let (client, conn) = tokio_postgres::connect(PG_ADMIN_URL, tokio_postgres::NoTls).await.expect("PostgreSQL on 127.0.0.1:5432");
    tokio::spawn(conn);
    let schema = unique("ingest_test");
    client
        .batch_execute(&format!(
            "CREATE SCHEMA {schema}; CREATE TABLE {schema}.orders (order_id bigint PRIMARY KEY, customer_id bigint NOT NULL, order_ts timestamp NOT NULL, note text)"
        ))
        .await
        .unwrap();
    let sink = client.copy_in(&format!("COPY {schema}.orders (order_id, customer_id, order_ts) FROM STDIN WITH (FORMAT csv, HEADER true)")).await.unwrap();
    futures::pin_mut!(sink);
    futures::SinkExt::send(&mut sink, bytes::Bytes::from(std::fs::read(csv).unwrap())).await.unwrap();
    sink.finish().await.unwrap();
    (client, schema)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_table_read_in_parallel_ranges_merges_idempotently() {
    let dir = tempfile::tempdir().unwrap();
    let lake = tempfile::tempdir().unwrap();
    let counts = generate_orders(dir.path(), 300, 0.0);
    let (client, schema) = load_postgres_orders(&dir.path().join("orders.csv")).await;
    client.execute(&format!("UPDATE {schema}.orders SET note = E'tab\\there' WHERE order_id % 7 = 0"), &[]).await.unwrap();
    let session = session(lake.path()).await;
    let source = || DbSource {
        kind: DbKind::Postgres,
        url: PG_ADMIN_URL.into(),
        query: DbQuery::Table(format!("{schema}.orders")),
        partition_column: Some("order_id".into()),
        num_partitions: 4,
    };
    let mut reports = vec![];
    for _ in 0..3 {
        let plan = db_source::plan(source(), "pg_orders".into(), None, vec!["order_id".into()]).await.unwrap();
        assert_eq!(plan.partitions.len(), 4);
        reports.push(run_ingest(&session, plan, &options(WriteMode::Merge)).await.unwrap());
    }
    assert_eq!(reports[0].tables[0].read, counts.orders);
    assert_eq!(reports[0].tables[0].rejected, 0);
    assert_eq!(count_rows(&session, "pg_orders").await.unwrap(), counts.orders);
    let sums = query_i64(&session, "SELECT sum(order_id), count(DISTINCT order_id), sum(CASE WHEN note = 'tab\there' THEN 1 ELSE 0 END) FROM pg_orders").await;
    let pg = client
        .query_one(&format!("SELECT sum(order_id)::bigint FROM {schema}.orders"), &[])
        .await
        .unwrap()
        .get::<_, i64>(0);
    assert_eq!(sums[0], pg);
    let schema_types = session.context().table("pg_orders").await.unwrap().schema().as_arrow().clone();
    assert_eq!(schema_types.field_with_name("order_ts").unwrap().data_type(), &arrow::datatypes::DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, None));
    client.batch_execute(&format!("DROP SCHEMA {schema} CASCADE")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mariadb_query_split_by_timestamp_with_declared_schema() {
    use mysql_async::prelude::Queryable;
    let dir = tempfile::tempdir().unwrap();
    let lake = tempfile::tempdir().unwrap();
    let counts = generate_orders(dir.path(), 300, 0.0);
    let database = unique("ingest_test");
    let mut admin = mysql_async::Conn::new(mysql_async::Opts::from_url(MYSQL_ADMIN_URL).unwrap()).await.expect("MariaDB on 127.0.0.1:3306");
    admin.query_drop(format!("CREATE DATABASE {database}")).await.unwrap();
    admin
        .query_drop(format!(
            "CREATE TABLE {database}.orders (order_id BIGINT PRIMARY KEY, customer_id BIGINT NOT NULL, order_ts DATETIME NOT NULL, total DECIMAL(10,2))"
        ))
        .await
        .unwrap();
    let mut reader = csv::Reader::from_path(dir.path().join("orders.csv")).unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    for chunk in rows.chunks(500) {
        let values: Vec<String> = chunk.iter().map(|r| format!("({}, {}, '{}', {}.25)", &r[0], &r[1], &r[2], &r[0])).collect();
        admin.query_drop(format!("INSERT INTO {database}.orders VALUES {}", values.join(","))).await.unwrap();
    }
    let url = format!("mysql://root@127.0.0.1:3306/{database}");
    let session = session(lake.path()).await;
    let spec = TableSpec::from_yaml_str(
        "key: [order_id]\ncolumns:\n  - {name: order_id, type: int64}\n  - {name: order_ts, type: timestamp}\n  - {name: total, type: 'decimal(10,2)'}\n",
    )
    .unwrap();
    let source = DbSource {
        kind: DbKind::Mysql,
        url,
        query: DbQuery::Query("SELECT order_id, order_ts, total FROM orders WHERE customer_id > 0".into()),
        partition_column: Some("order_ts".into()),
        num_partitions: 3,
    };
    for _ in 0..3 {
        let plan = db_source::plan(source.clone(), "my_orders".into(), Some(spec.clone()), vec![]).await.unwrap();
        assert_eq!(plan.partitions.len(), 3);
        let report = run_ingest(&session, plan, &options(WriteMode::Merge)).await.unwrap();
        assert_eq!(report.tables[0].read, counts.orders);
    }
    assert_eq!(count_rows(&session, "my_orders").await.unwrap(), counts.orders);
    let sums = query_i64(&session, "SELECT sum(order_id), CAST((sum(total) - sum(order_id)) * 4 AS BIGINT) FROM my_orders").await;
    let expected: i64 = rows.iter().map(|r| r[0].parse::<i64>().unwrap()).sum();
    assert_eq!(sums[0], expected);
    assert_eq!(sums[1] as u64, counts.orders, "decimals arrive exactly (.25 per row)");
    admin.query_drop(format!("DROP DATABASE {database}")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn database_passwords_never_appear_in_errors() {
    let source = DbSource {
        kind: DbKind::Postgres,
        url: "postgres://nobody:hunter2secret@127.0.0.1:5432/no_such_db".into(),
        query: DbQuery::Table("t".into()),
        partition_column: None,
        num_partitions: 1,
    };
    let Err(err) = db_source::plan(source, "t".into(), None, vec![]).await else { panic!("no such database") };
    let message = format!("{err:#}");
    assert!(!message.contains("hunter2secret"), "{message}");
    assert!(message.contains("***") || message.contains("nobody"), "{message}");
}
