//! `backbeat ingest` and `backbeat export` as users run them: through a real scheduler with two
//! executors, and killed in the middle of a run.

mod common;

use std::path::{Path, PathBuf};
use std::time::Instant;

use common::{TestCluster, backbeat, run_cli};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn stdout_of(output: &std::process::Output) -> String {
    assert!(output.status.success(), "backbeat failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Writes `rows` orders rows (seed-002 shape) with a handful of bad lines.
fn write_orders(path: &Path, rows: u64) {
    let mut w = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    use std::io::Write;
    writeln!(w, "order_id,customer_id,order_ts").unwrap();
    for i in 1..=rows {
        match i % 50_000 {
            7 => writeln!(w, "{i},{},not-a-time", i % 997).unwrap(),
            8 => writeln!(w, ",{},2024-01-01 00:00:00", i % 997).unwrap(),
            _ => writeln!(w, "{i},{},2024-01-{:02} 10:00:00", i % 997, 1 + i % 28).unwrap(),
        }
    }
}

#[test]
fn merge_ingest_through_a_two_executor_cluster_is_exact_and_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let lake = tempfile::tempdir().unwrap();
    let csv = dir.path().join("orders.csv");
    write_orders(&csv, 120_000);
    let cluster = TestCluster::start();
    let spec = repo().join("jobs/ingest/orders.yaml");
    let args = |mode: &str| {
        vec![
            "ingest".to_string(),
            "csv".into(),
            csv.to_str().unwrap().into(),
            "--schema".into(),
            spec.to_str().unwrap().into(),
            "--mode".into(),
            mode.into(),
            "--lake".into(),
            lake.path().to_str().unwrap().into(),
            "--cluster".into(),
            cluster.url.clone(),
        ]
    };
    let mut reports = vec![];
    for _ in 0..3 {
        let a = args("merge");
        reports.push(stdout_of(&run_cli(&a.iter().map(String::as_str).collect::<Vec<_>>())));
    }
    // 120,000 lines, 2 × 3 bad ones (lines 7, 8 and 50,007 ... of every 50,000).
    assert!(reports[0].contains("orders: read 120000 = written 119994 + rejected 6"), "{}", reports[0]);
    for r in &reports {
        assert!(r.contains("119994 rows"), "the table holds each key once after every merge: {r}");
    }
    let count = stdout_of(&run_cli(&[
        "sql",
        "--lake",
        lake.path().to_str().unwrap(),
        "--cluster",
        &cluster.url,
        "--format",
        "csv",
        "SELECT count(*) AS n, count(DISTINCT order_id) AS k FROM orders",
    ]));
    assert!(count.contains("119994,119994"), "{count}");
    let rejected = stdout_of(&run_cli(&[
        "sql",
        "--lake",
        lake.path().to_str().unwrap(),
        "--format",
        "csv",
        "SELECT count(*) AS n FROM orders__rejected WHERE kind = 'missing_required' AND \"column\" = 'order_id'",
    ]));
    assert!(rejected.contains("\n9\n") || rejected.ends_with("9\n"), "three runs × three missing keys: {rejected}");
}

#[test]
fn a_killed_ingest_leaves_the_table_at_its_previous_version() {
    let dir = tempfile::tempdir().unwrap();
    let lake = tempfile::tempdir().unwrap();
    let small = dir.path().join("small.csv");
    write_orders(&small, 1_000);
    let big = dir.path().join("big.csv");
    write_orders(&big, 3_000_000);
    let spec = repo().join("jobs/ingest/orders.yaml");
    let lake_arg = lake.path().to_str().unwrap();
    stdout_of(&run_cli(&["ingest", "csv", small.to_str().unwrap(), "--schema", spec.to_str().unwrap(), "--lake", lake_arg]));

    // How long a full run takes here, so the kill lands in the middle of one.
    let scratch = tempfile::tempdir().unwrap();
    let timed = Instant::now();
    stdout_of(&run_cli(&["ingest", "csv", big.to_str().unwrap(), "--schema", spec.to_str().unwrap(), "--lake", scratch.path().to_str().unwrap()]));
    let full_run = timed.elapsed();

    let mut child = backbeat()
        .args(["ingest", "csv", big.to_str().unwrap(), "--schema", spec.to_str().unwrap(), "--mode", "overwrite", "--lake", lake_arg])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(full_run / 2);
    assert!(child.try_wait().unwrap().is_none(), "the ingest finished before it could be killed");
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success(), "killed, not finished");

    let tables = stdout_of(&run_cli(&["tables", "--lake", lake_arg, "--format", "csv"]));
    let line = tables.lines().find(|l| l.starts_with("orders,")).unwrap_or_else(|| panic!("{tables}"));
    assert!(line.starts_with("orders,delta,0,998,"), "still version 0 with its 998 good rows: {line}");
    // And the next run succeeds.
    let out = stdout_of(&run_cli(&["ingest", "csv", small.to_str().unwrap(), "--schema", spec.to_str().unwrap(), "--mode", "overwrite", "--lake", lake_arg]));
    assert!(out.contains("version 1"), "{out}");
}

#[test]
fn export_command_reports_rows_per_store_and_fails_cleanly() {
    let lake = tempfile::tempdir().unwrap();
    let lake_arg = lake.path().to_str().unwrap();
    stdout_of(&run_cli(&["sql", "--lake", lake_arg, "CREATE TABLE picks AS SELECT * FROM (VALUES (1, 'a', 0.5), (2, 'b', 0.25)) AS v(user_id, item, score)"]));
    let table = format!("cli_export_{}", std::process::id());
    let out = stdout_of(&run_cli(&[
        "export",
        "picks",
        "--lake",
        lake_arg,
        "--to",
        "postgres://postgres@127.0.0.1:5432/test",
        "--to",
        "redis://127.0.0.1:6379/0",
        "--name",
        &table,
        "--key",
        "user_id",
        "--key-pattern",
        &format!("{table}:{{user_id}}"),
    ]));
    assert_eq!(out.lines().filter(|l| l.contains(": 2 rows in")).count(), 2, "{out}");
    // A store that cannot be reached: non-zero exit, password hidden.
    let failed = run_cli(&["export", "picks", "--lake", lake_arg, "--to", "postgres://u:topsecret99@127.0.0.1:1/x", "--key", "user_id"]);
    assert!(!failed.status.success());
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(!stderr.contains("topsecret99") && stderr.contains("***"), "{stderr}");
    let _ = std::process::Command::new("psql").args(["-h", "127.0.0.1", "-U", "postgres", "-d", "test", "-c", &format!("DROP TABLE IF EXISTS {table}")]).output();
    let _ = std::process::Command::new("redis-cli").args(["DEL", &format!("{table}:1"), &format!("{table}:2"), &format!("backbeat:export:{table}:{{user_id}}")]).output();
}
