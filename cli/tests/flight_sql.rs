//! Flight SQL: `backbeat serve` (embedded cluster) and `backbeat scheduler --flight-sql` (a real
//! 2-executor cluster), driven by arrow-flight's Flight SQL client as a Python or JDBC client
//! would: queries, CTAS, prepared statements with bound parameters, metadata, tokens, streaming.

mod common;

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use arrow::array::{Array, AsArray, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Int64Type, Schema};
use arrow_flight::sql::client::FlightSqlServiceClient;
use arrow_flight::sql::{CommandGetDbSchemas, CommandGetTables, SqlInfo};
use arrow_flight::FlightInfo;
use backbeat_cluster::local_cluster::LocalCluster;
use backbeat_cluster::session::{BackbeatSession, ClusterTarget};
use common::{backbeat, canonical_rows, free_port, row_count};
use futures::TryStreamExt;
use tonic::transport::{Channel, Endpoint};

const TOKEN: &str = "flight-test-token-0123456789abcdef";

type Client = FlightSqlServiceClient<Channel>;

async fn connect(addr: &str, token: Option<&str>) -> Client {
    let channel = Endpoint::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap();
    let mut client = FlightSqlServiceClient::new(channel);
    if let Some(token) = token {
        client.set_token(token.to_string());
    }
    client
}

async fn fetch(client: &mut Client, info: FlightInfo) -> Vec<RecordBatch> {
    let mut batches = vec![];
    for endpoint in info.endpoint {
        let stream = client.do_get(endpoint.ticket.expect("endpoint ticket")).await.unwrap();
        batches.extend(stream.try_collect::<Vec<_>>().await.unwrap());
    }
    batches
}

async fn sql(client: &mut Client, query: &str) -> Vec<RecordBatch> {
    let info = client.execute(query.to_string(), None).await.unwrap_or_else(|e| panic!("{query}: {e}"));
    fetch(client, info).await
}

fn wait_for_port(port: u16, child: &mut Child, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("server exited with {status}:\n{}", std::fs::read_to_string(log).unwrap_or_default());
        }
        assert!(Instant::now() < deadline, "server did not listen:\n{}", std::fs::read_to_string(log).unwrap_or_default());
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `backbeat serve` as a child process; SIGKILLed on drop.
struct Served {
    child: Child,
    addr: String,
    log: std::path::PathBuf,
}

impl Served {
    fn start(lake: &Path, token: Option<&str>) -> Self {
        let port = free_port().unwrap();
        let addr = format!("127.0.0.1:{port}");
        let log = lake.join("..").join(format!("serve-{port}.log"));
        let mut command = backbeat();
        command
            .args(["serve", "--bind", &addr, "--lake", &lake.to_string_lossy()])
            .env_remove("BACKBEAT_FLIGHT_TOKEN")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        if let Some(token) = token {
            command.env("BACKBEAT_FLIGHT_TOKEN", token);
        }
        let mut child = command.spawn().unwrap();
        wait_for_port(port, &mut child, &log);
        Self { child, addr, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn int_column(batches: &[RecordBatch], name: &str) -> Vec<i64> {
    batches
        .iter()
        .flat_map(|b| {
            let c = arrow::compute::cast(b.column_by_name(name).unwrap_or_else(|| panic!("no column {name}")), &DataType::Int64).unwrap();
            c.as_primitive::<Int64Type>().values().to_vec()
        })
        .collect()
}

fn string_column(batches: &[RecordBatch], name: &str) -> Vec<String> {
    batches
        .iter()
        .flat_map(|b| {
            let c = arrow::compute::cast(b.column_by_name(name).unwrap(), &DataType::Utf8).unwrap();
            let c = c.as_string::<i32>().clone();
            (0..c.len()).map(|i| c.value(i).to_string()).collect::<Vec<_>>()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_runs_queries_ctas_prepared_statements_and_metadata_behind_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    std::fs::create_dir_all(&lake).unwrap();
    let server = Served::start(&lake, Some(TOKEN));

    // A wrong token is refused before anything runs: the CTAS it carried writes no table.
    let mut intruder = connect(&server.addr, Some("not-the-token-0123456789")).await;
    let err = intruder
        .execute("CREATE TABLE stolen AS SELECT 1 AS x".into(), None)
        .await
        .expect_err("a wrong token must be refused");
    // tonic words the UNAUTHENTICATED code as "...does not have valid authentication credentials".
    assert!(err.to_string().contains("valid authentication credentials"), "{err}");
    let mut anonymous = connect(&server.addr, None).await;
    let err = anonymous.get_catalogs().await.expect_err("no token must be refused");
    assert!(err.to_string().contains("valid authentication credentials"), "{err}");
    assert!(!lake.join("stolen").exists(), "a refused call wrote a table");

    let mut client = connect(&server.addr, Some(TOKEN)).await;
    // CTAS through Flight SQL is a Delta write in the lake, reported as a count.
    let written = sql(
        &mut client,
        "CREATE TABLE plays AS SELECT value AS id, value % 7 AS k, concat('Track ', CAST(value AS VARCHAR), ' (Official Video)') AS title FROM generate_series(1, 10000)",
    )
    .await;
    assert_eq!(int_column(&written, "count"), vec![10_000]);
    assert!(lake.join("plays").join("_delta_log").is_dir(), "CTAS did not write a Delta table");

    // A query, its values checked against arithmetic, and a UDF that runs on the executor.
    let rows = sql(&mut client, "SELECT k, count(*) AS n, sum(id) AS s FROM plays GROUP BY k ORDER BY k").await;
    let ks = int_column(&rows, "k");
    assert_eq!(ks, (0..7).collect::<Vec<_>>());
    for (k, (n, s)) in ks.iter().zip(int_column(&rows, "n").into_iter().zip(int_column(&rows, "s"))) {
        let ids: Vec<i64> = (1..=10_000).filter(|i| i % 7 == *k).collect();
        assert_eq!(n, ids.len() as i64, "count for k={k}");
        assert_eq!(s, ids.iter().sum::<i64>(), "sum for k={k}");
    }
    let titles = sql(&mut client, "SELECT normalize_title(title) AS t FROM plays WHERE id = 42").await;
    let expected = backbeat_cluster::text_similarity::normalize_title("Track 42 (Official Video)");
    assert_eq!(string_column(&titles, "t"), vec![expected]);

    // A planning error comes back with the cause, and the server keeps serving.
    let err = client.execute("SELECT nope FROM plays".into(), None).await.expect_err("unknown column");
    assert!(err.to_string().contains("nope"), "{err}");

    // Prepared statement with a bound parameter: the same answer as the literal query.
    let mut prepared = client.prepare("SELECT count(*) AS n FROM plays WHERE k = $1".into(), None).await.unwrap();
    assert_eq!(prepared.parameter_schema().unwrap().fields().len(), 1);
    let param = RecordBatch::try_new(
        std::sync::Arc::new(Schema::new(vec![Field::new("$1", DataType::Int64, false)])),
        vec![std::sync::Arc::new(Int64Array::from(vec![3]))],
    )
    .unwrap();
    prepared.set_parameters(param).unwrap();
    let info = prepared.execute().await.unwrap();
    let bound = fetch(&mut client, info).await;
    let literal = sql(&mut client, "SELECT count(*) AS n FROM plays WHERE k = 3").await;
    assert_eq!(int_column(&bound, "n"), int_column(&literal, "n"));
    prepared.close().await.unwrap();

    // Updates: INSERT through DoPut reports its rows, and they are there.
    let inserted = client.execute_update("INSERT INTO plays SELECT 10001, 0, 'Extra'".into(), None).await.unwrap();
    assert_eq!(inserted, 1);
    assert_eq!(int_column(&sql(&mut client, "SELECT count(*) AS n FROM plays").await, "n"), vec![10_001]);

    // Metadata: the lake is datafusion.public, the table is listed with its schema.
    let info = client.get_catalogs().await.unwrap();
    let catalogs = fetch(&mut client, info).await;
    assert!(string_column(&catalogs, "catalog_name").contains(&"datafusion".to_string()));
    let info = client.get_db_schemas(CommandGetDbSchemas { catalog: None, db_schema_filter_pattern: None }).await.unwrap();
    assert!(string_column(&fetch(&mut client, info).await, "db_schema_name").contains(&"public".to_string()));
    let info = client
        .get_tables(CommandGetTables {
            catalog: Some("datafusion".into()),
            db_schema_filter_pattern: Some("public".into()),
            table_name_filter_pattern: Some("pla%".into()),
            table_types: vec![],
            include_schema: true,
        })
        .await
        .unwrap();
    let tables = fetch(&mut client, info).await;
    assert_eq!(string_column(&tables, "table_name"), vec!["plays".to_string()]);
    let schema_bytes = tables[0].column_by_name("table_schema").unwrap().as_binary::<i32>().value(0).to_vec();
    let schema = arrow::ipc::convert::try_schema_from_ipc_buffer(&schema_bytes).unwrap();
    assert_eq!(schema.fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>(), vec!["id", "k", "title"]);
    let info = client.get_sql_info(vec![SqlInfo::FlightSqlServerName]).await.unwrap();
    let info = fetch(&mut client, info).await;
    assert_eq!(row_count(&info), 1);

    // The token never reaches the log.
    let log = server.log();
    assert!(log.contains("Flight SQL"), "{log}");
    assert!(!log.contains(TOKEN), "the token was logged");
}

#[test]
fn serve_refuses_an_open_address_without_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port().unwrap();
    let out = backbeat()
        .args(["serve", "--bind", &format!("0.0.0.0:{port}"), "--lake", &dir.path().to_string_lossy()])
        .env_remove("BACKBEAT_FLIGHT_TOKEN")
        .env_remove("BACKBEAT_FLIGHT_TOKEN_FILE")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("without authentication") && stderr.contains("--token-file"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_speaks_tls_with_the_given_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    std::fs::create_dir_all(&lake).unwrap();
    // A private CA and a server certificate it signed, as an operator would have.
    let (ca, ca_key) = (dir.path().join("ca.pem"), dir.path().join("ca-key.pem"));
    let (cert, key, csr) = (dir.path().join("cert.pem"), dir.path().join("key.pem"), dir.path().join("cert.csr"));
    let ext = dir.path().join("ext.cnf");
    std::fs::write(&ext, "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n").unwrap();
    let openssl = |args: &[&std::ffi::OsStr]| {
        let out = std::process::Command::new("openssl").args(args).output().unwrap();
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    let os = |s: &'static str| std::ffi::OsStr::new(s);
    openssl(&[os("req"), os("-x509"), os("-newkey"), os("rsa:2048"), os("-nodes"), os("-days"), os("2"), os("-subj"), os("/CN=backbeat test CA"),
        os("-keyout"), ca_key.as_os_str(), os("-out"), ca.as_os_str()]);
    openssl(&[os("req"), os("-newkey"), os("rsa:2048"), os("-nodes"), os("-subj"), os("/CN=localhost"),
        os("-keyout"), key.as_os_str(), os("-out"), csr.as_os_str()]);
    openssl(&[os("x509"), os("-req"), os("-in"), csr.as_os_str(), os("-CA"), ca.as_os_str(), os("-CAkey"), ca_key.as_os_str(),
        os("-CAcreateserial"), os("-days"), os("2"), os("-extfile"), ext.as_os_str(), os("-out"), cert.as_os_str()]);
    let port = free_port().unwrap();
    let log = dir.path().join("serve.log");
    let mut child = backbeat()
        .args(["serve", "--bind", &format!("127.0.0.1:{port}"), "--lake", &lake.to_string_lossy()])
        .arg("--tls-cert").arg(&cert).arg("--tls-key").arg(&key)
        .env("BACKBEAT_FLIGHT_TOKEN", TOKEN)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    wait_for_port(port, &mut child, &log);
    let guard = Served { child, addr: format!("127.0.0.1:{port}"), log };

    // A client that trusts the certificate gets answers over TLS...
    let tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(std::fs::read(&ca).unwrap()))
        .domain_name("localhost");
    let channel = Endpoint::from_shared(format!("https://localhost:{port}")).unwrap().tls_config(tls).unwrap().connect().await.unwrap();
    let mut client = FlightSqlServiceClient::new(channel);
    client.set_token(TOKEN.to_string());
    let rows = sql(&mut client, "SELECT 40 + 2 AS answer").await;
    assert_eq!(int_column(&rows, "answer"), vec![42]);
    // ...and a plaintext client gets nothing.
    let plain = Endpoint::from_shared(format!("http://127.0.0.1:{port}")).unwrap().connect().await;
    if let Ok(channel) = plain {
        let mut client = FlightSqlServiceClient::new(channel);
        client.set_token(TOKEN.to_string());
        assert!(client.execute("SELECT 1".into(), None).await.is_err(), "plaintext call answered on a TLS port");
    }
    assert!(guard.log().contains("grpc+tls://"), "{}", guard.log());
}

/// Peak resident memory of a process, from /proc (kB).
fn peak_rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scheduler_flight_sql_streams_a_large_result_and_serves_concurrent_clients() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    std::fs::create_dir_all(&lake).unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let flight_port = free_port().unwrap();
    let flight_addr = format!("127.0.0.1:{flight_port}");
    let cluster = LocalCluster::start_with(
        Path::new(env!("CARGO_BIN_EXE_backbeat")),
        2,
        2,
        &["--flight-sql", &flight_addr, "--lake", &lake.to_string_lossy(), "--token-file", &token_file.to_string_lossy()],
    )
    .unwrap_or_else(|e| panic!("cluster: {e:#}"));
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(&flight_addr).is_err() {
        assert!(Instant::now() < deadline, "Flight SQL did not listen:\n{}", cluster.logs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut client = connect(&flight_addr, Some(TOKEN)).await;
    sql(&mut client, "CREATE TABLE events AS SELECT value AS id, value % 8 AS k FROM generate_series(1, 200000)").await;

    // The same query through Flight SQL and through a client session (`backbeat sql`'s path).
    let query = "SELECT k, count(*) AS n, sum(id) AS s, avg(id) AS a FROM events GROUP BY k";
    let flight = sql(&mut client, query).await;
    let session = BackbeatSession::connect(ClusterTarget::Remote(cluster.url().to_string()), &lake).await.unwrap();
    let direct = session.sql(query).await.unwrap().collect().await.unwrap();
    assert_eq!(canonical_rows(&flight, 6), canonical_rows(&direct, 6));

    // 1M rows of ~200 bytes (~200 MB) stream through the scheduler's frontend: batch by batch,
    // so its peak memory grows by far less than the result.
    let before = peak_rss_kb(cluster.scheduler_pid());
    let info = client
        .execute("SELECT value AS id, repeat('x', 200) AS pad FROM generate_series(1, 1000000)".into(), None)
        .await
        .unwrap();
    let (mut rows, mut bytes, mut batches) = (0usize, 0usize, 0usize);
    for endpoint in info.endpoint {
        let mut stream = client.do_get(endpoint.ticket.unwrap()).await.unwrap();
        while let Some(batch) = stream.try_next().await.unwrap() {
            rows += batch.num_rows();
            bytes += batch.get_array_memory_size();
            batches += 1;
        }
    }
    let grown_mb = (peak_rss_kb(cluster.scheduler_pid()).saturating_sub(before)) / 1024;
    eprintln!("streamed {rows} rows in {batches} batches ({} MB in Arrow); scheduler peak RSS grew {grown_mb} MB", bytes / 1_000_000);
    assert_eq!(rows, 1_000_000);
    assert!(batches > 10, "the result came in {batches} batches");
    assert!(bytes > 200_000_000, "{bytes} bytes received");
    assert!(grown_mb < 100, "the scheduler's peak memory grew by {grown_mb} MB while streaming ~200 MB");

    // 8 clients at once, each with its own question and the answer it should get.
    let tasks: Vec<_> = (0..8i64)
        .map(|k| {
            let addr = flight_addr.clone();
            tokio::spawn(async move {
                let mut client = connect(&addr, Some(TOKEN)).await;
                let rows = sql(&mut client, &format!("SELECT count(*) AS n, sum(id) AS s FROM events WHERE k = {k}")).await;
                (k, int_column(&rows, "n")[0], int_column(&rows, "s")[0])
            })
        })
        .collect();
    for task in tasks {
        let (k, n, s) = task.await.unwrap();
        let ids: Vec<i64> = (1..=200_000).filter(|i| i % 8 == k).collect();
        assert_eq!((n, s), (ids.len() as i64, ids.iter().sum::<i64>()), "client for k={k}");
    }
}
