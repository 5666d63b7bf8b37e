//! The lake on S3: the engine through a real 2-executor cluster and the embedded one, concurrent
//! commits, and the CLI, against moto's S3 server (`scripts/s3_server.sh`, started here if down).
//! Every process gets its credentials from its own environment or options; none may print them.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::OnceLock;

use backbeat_cluster::lake_catalog::LakeRoot;
use backbeat_cluster::local_cluster::LocalCluster;
use backbeat_cluster::object_storage::set_storage_options;
use backbeat_cluster::session::{BackbeatSession, ClusterTarget};
use common::{backbeat, canonical_rows, i64s, query, repo};
use futures::TryStreamExt;
use object_store::{ObjectStore, PutMode, PutOptions};

/// A secret no output may contain (moto accepts any credentials).
const SECRET: &str = "s3cr3t-Never-Printed-9f2c";

/// moto's endpoint, started once per test binary.
fn endpoint() -> &'static str {
    static ENDPOINT: OnceLock<String> = OnceLock::new();
    ENDPOINT.get_or_init(|| {
        let out = std::process::Command::new("bash").arg(repo().join("scripts/s3_server.sh")).output().expect("run scripts/s3_server.sh");
        assert!(out.status.success(), "no S3 server: {}", String::from_utf8_lossy(&out.stderr));
        let endpoint = String::from_utf8(out.stdout).unwrap().trim().to_string();
        // This process's sessions and embedded executors; child processes get `aws_env()`.
        set_storage_options(vec![
            ("aws_endpoint".into(), endpoint.clone()),
            ("aws_allow_http".into(), "true".into()),
            ("aws_region".into(), "us-east-1".into()),
            ("aws_access_key_id".into(), "backbeat-test".into()),
            ("aws_secret_access_key".into(), SECRET.into()),
        ]);
        endpoint
    })
}

/// The environment a child process reads the same settings from.
fn aws_env() -> Vec<(String, String)> {
    [
        ("AWS_ENDPOINT_URL", endpoint()),
        ("AWS_ALLOW_HTTP", "true"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "backbeat-test"),
        ("AWS_SECRET_ACCESS_KEY", SECRET),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// A fresh bucket (moto keeps buckets in memory; names must be unique per run) and its lake URL.
fn new_lake() -> String {
    let port = endpoint().rsplit(':').next().unwrap();
    let bucket = format!("lake-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let mut stream = TcpStream::connect(format!("127.0.0.1:{port}")).unwrap();
    write!(stream, "PUT /{bucket} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "create bucket {bucket}: {response}");
    format!("s3://{bucket}/lake")
}

async fn count(session: &BackbeatSession, sql: &str) -> i64 {
    i64s(&query(session, sql).await, "n")[0]
}

async fn object_names(lake: &str, under: &str) -> Vec<String> {
    let root = LakeRoot::parse(lake).unwrap();
    let prefix = root.path(under);
    root.store().list(Some(&prefix)).map_ok(|m| m.location.to_string()).try_collect().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn delta_tables_on_s3_through_the_cluster_and_embedded() {
    let lake = new_lake();
    let cluster = LocalCluster::start_with_env(Path::new(env!("CARGO_BIN_EXE_backbeat")), 2, 2, &[], &aws_env())
        .unwrap_or_else(|e| panic!("cluster: {e:#}"));
    let remote = BackbeatSession::connect_lake(ClusterTarget::Remote(cluster.url().to_string()), LakeRoot::parse(&lake).unwrap())
        .await
        .unwrap();

    // Executors write the files, the client commits: a partitioned CTAS, then an append.
    query(
        &remote,
        "CREATE TABLE plays PARTITIONED BY (genre) AS SELECT id, CASE id % 3 WHEN 0 THEN 'rock' WHEN 1 THEN 'jazz' \
         ELSE 'pop' END AS genre, id * 1.5 AS secs FROM (SELECT unnest(range(0, 20000)) AS id)",
    )
    .await;
    query(&remote, "INSERT INTO plays SELECT id, 'folk' AS genre, 1.0 AS secs FROM (SELECT unnest(range(20000, 20100)) AS id)").await;
    assert_eq!(count(&remote, "SELECT count(*) AS n FROM plays").await, 20_100, "{}", cluster.logs());
    assert_eq!(count(&remote, "SELECT count(*) AS n FROM \"plays@v0\"").await, 20_000, "time travel");
    // The same through the CLI: `backbeat sql --cluster ... --lake s3://...`.
    let out = backbeat()
        .args(["sql", "--cluster", cluster.url(), "--lake", &lake, "--format", "csv", "SELECT genre, count(*) AS n FROM plays GROUP BY genre ORDER BY genre"])
        .envs(aws_env())
        .output()
        .unwrap();
    let csv = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && csv.contains("folk,100") && csv.contains("rock,6667"), "{csv}{}", String::from_utf8_lossy(&out.stderr));
    let objects = object_names(&lake, "plays").await;
    assert!(objects.iter().any(|o| o.contains("/plays/genre=rock/") && o.ends_with(".parquet")), "{objects:?}");
    assert!(objects.iter().any(|o| o.ends_with("plays/_delta_log/00000000000000000001.json")), "{objects:?}");

    // A second file in partition folk, for OPTIMIZE to pack.
    query(&remote, "INSERT INTO plays VALUES (30000, 'folk', 1.0)").await;
    // The lake's verbs rewrite only what they touch, and the answers agree with embedded.
    let deleted = query(&remote, "DELETE FROM plays WHERE genre = 'pop' AND id >= 10000").await;
    assert_eq!(i64s(&deleted, "num_deleted_rows")[0], 3333);
    let updated = query(&remote, "UPDATE plays SET secs = 0 WHERE genre = 'folk' AND id < 20010").await;
    assert_eq!(i64s(&updated, "num_updated_rows")[0], 10);
    query(&remote, "CREATE TABLE changes AS SELECT id, 2.0 AS secs FROM (SELECT unnest(range(19990, 20200)) AS id)").await;
    let merged = query(
        &remote,
        "MERGE INTO plays USING changes ON plays.id = changes.id WHEN MATCHED THEN UPDATE SET secs = changes.secs \
         WHEN NOT MATCHED THEN INSERT (id, genre, secs) VALUES (changes.id, 'new', changes.secs)",
    )
    .await;
    // 110 ids overlap, 3 of them ('pop', deleted above) no longer: 107 updated, 100 + 3 inserted.
    assert_eq!((i64s(&merged, "num_updated_rows")[0], i64s(&merged, "num_inserted_rows")[0]), (107, 103));
    query(&remote, "OPTIMIZE plays").await;
    let by_genre = "SELECT genre, count(*) AS n, sum(secs) AS s FROM plays GROUP BY genre";
    let embedded = BackbeatSession::connect_lake(ClusterTarget::Embedded { concurrency: 2 }, LakeRoot::parse(&lake).unwrap())
        .await
        .unwrap();
    let expected = canonical_rows(&[query(&remote, by_genre).await], 6);
    assert_eq!(canonical_rows(&[query(&embedded, by_genre).await], 6), expected);
    assert_eq!(count(&embedded, "SELECT count(*) AS n FROM plays").await, 20_101 - 3333 + 103);
    let names = embedded.lake().table_names_in_lake().await.unwrap();
    assert_eq!(names, vec!["changes".to_string(), "plays".to_string()]);
    let history = query(&embedded, "DESCRIBE HISTORY plays").await;
    let operations = arrow::compute::cast(history.column_by_name("operation").unwrap(), &arrow::datatypes::DataType::Utf8).unwrap();
    let operations: Vec<&str> = operations.as_any().downcast_ref::<arrow::array::StringArray>().unwrap().iter().flatten().collect();
    assert_eq!(operations.len(), 7, "CTAS, 2 INSERTs, DELETE, UPDATE, MERGE, OPTIMIZE: {operations:?}");
    assert_eq!((operations[0], operations[6]), ("OPTIMIZE", "CREATE TABLE"), "{operations:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_commits_on_s3_lose_nothing() {
    let lake = new_lake();
    // The server honours put-if-absent, which every Delta commit relies on.
    let root = LakeRoot::parse(&lake).unwrap();
    let marker = root.path("probe/0.json");
    let create = PutOptions { mode: PutMode::Create, ..Default::default() };
    root.store().put_opts(&marker, "a".into(), create.clone()).await.unwrap();
    let second = root.store().put_opts(&marker, "b".into(), create).await;
    assert!(matches!(second, Err(object_store::Error::AlreadyExists { .. })), "{second:?}");

    let session = BackbeatSession::connect_lake(ClusterTarget::Embedded { concurrency: 2 }, root.clone()).await.unwrap();
    query(&session, "CREATE TABLE t AS SELECT 0 AS writer, 0 AS k").await;
    // Two writers race five appends each; a commit that loses the race retries at the next version.
    let writers = (1..=2).map(|w| {
        let session = session.shared();
        tokio::spawn(async move {
            for k in 0..5 {
                query(&session, &format!("INSERT INTO t VALUES ({w}, {k})")).await;
            }
        })
    });
    for writer in writers.collect::<Vec<_>>() {
        writer.await.unwrap();
    }
    assert_eq!(count(&session, "SELECT count(*) AS n FROM t").await, 11);
    let commits: Vec<String> = object_names(&lake, "t/_delta_log").await.into_iter().filter(|o| o.ends_with(".json")).collect();
    assert_eq!(commits.len(), 11, "one commit per write, versions 0..=10: {commits:?}");
}

#[test]
fn the_cli_sql_ingest_export_and_runs_on_an_s3_lake_never_print_credentials() {
    let lake = new_lake();
    let run = |args: &[&str]| {
        let out = backbeat().args(args).args(["--lake", &lake]).envs(aws_env()).output().unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(!text.contains(SECRET), "a credential was printed by {args:?}:\n{text}");
        (out.status.success(), text)
    };
    let (ok, text) = run(&["sql", "CREATE TABLE listens AS SELECT 7 AS track, 'a' AS who"]);
    assert!(ok, "{text}");
    let (ok, text) = run(&["sql", "--format", "csv", "SELECT count(*) AS n, max(track) AS top FROM listens"]);
    assert!(ok && text.contains("1,7"), "{text}");
    let (ok, text) = run(&["tables", "--format", "csv"]);
    assert!(ok && text.contains("listens,delta,0,1,1"), "{text}");
    // A job run is recorded in the lake's run history, on S3 too.
    let script = tempfile::Builder::new().suffix(".sql").tempfile().unwrap();
    std::fs::write(script.path(), "CREATE OR REPLACE TABLE top_tracks AS SELECT track, count(*) AS plays FROM listens GROUP BY track;\n").unwrap();
    let (ok, text) = run(&["run", script.path().to_str().unwrap()]);
    assert!(ok, "{text}");
    let (ok, text) = run(&["runs", "--format", "csv"]);
    assert!(ok && text.contains("succeeded"), "{text}");

    // Ingest lands a CSV in the S3 lake with its bad row in the dead letters; export reads it back
    // out to PostgreSQL.
    let csv = tempfile::Builder::new().suffix(".csv").tempfile().unwrap();
    std::fs::write(csv.path(), "order_id,customer_id,order_ts,total\n1,10,2026-01-02 10:00:00,9.5\n2,11,not a time,3.0\n3,10,2026-01-03 11:00:00,4.25\n").unwrap();
    let spec = tempfile::Builder::new().suffix(".yaml").tempfile().unwrap();
    std::fs::write(
        spec.path(),
        "table: s3_orders\nkey: [order_id]\ncolumns:\n  - {name: order_id, type: int64, required: true}\n  - {name: customer_id, type: int64, required: true}\n  - {name: order_ts, type: timestamp, required: true}\n  - {name: total, type: float64}\n",
    )
    .unwrap();
    let (ok, text) = run(&["ingest", "csv", csv.path().to_str().unwrap(), "--schema", spec.path().to_str().unwrap(), "--mode", "merge"]);
    assert!(ok, "{text}");
    let (ok, text) = run(&["sql", "--format", "csv", "SELECT (SELECT count(*) FROM s3_orders) AS good, (SELECT count(*) FROM s3_orders__rejected) AS bad"]);
    assert!(ok && text.contains("2,1"), "{text}");
    let pg_table = format!("s3_export_{}", std::process::id());
    let (ok, text) = run(&["export", "s3_orders", "--to", "postgres://postgres@127.0.0.1:5432/test", "--name", &pg_table, "--key", "order_id"]);
    assert!(ok && text.contains("2 rows"), "{text}");
    let psql = std::process::Command::new("psql")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "test", "-tAc", &format!("SELECT count(*), sum(total) FROM {pg_table}")])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&psql.stdout).trim(), "2|13.75");
    let _ = std::process::Command::new("psql").args(["-h", "127.0.0.1", "-U", "postgres", "-d", "test", "-c", &format!("DROP TABLE IF EXISTS {pg_table}")]).output();

    // A bucket that does not exist is a clear error, and still no secret.
    let out = backbeat()
        .args(["sql", "--lake", "s3://no-such-bucket-backbeat/lake", "SELECT 1"])
        .envs(aws_env())
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success() && text.contains("cannot list lake s3://no-such-bucket-backbeat/lake/"), "{text}");
    assert!(!text.contains(SECRET), "{text}");
}
