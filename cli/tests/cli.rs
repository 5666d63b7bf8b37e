//! The `backbeat` binary as a user runs it: SQL in embedded mode, `tables`, errors on bad input,
//! a writer killed mid-statement, and the docker-compose topology.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{backbeat, run_cli, TestCluster};
use serde_json::Value;

fn stdout_json(output: &std::process::Output) -> Value {
    assert!(output.status.success(), "backbeat failed: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&output.stdout)))
}

#[test]
fn sql_writes_then_reads_a_delta_table_and_tables_describes_it() {
    let lake = tempfile::tempdir().unwrap();
    let lake_arg = lake.path().to_str().unwrap();
    let script = lake.path().join("job.sql");
    std::fs::write(
        &script,
        "-- a job with two writes and a query\n\
         CREATE TABLE plays PARTITIONED BY (genre) AS\n\
           SELECT * FROM (VALUES (1, 'rock', 3.5), (2, 'jazz', 1.0), (3, 'rock', 2.0)) AS t(id, genre, score);\n\
         INSERT INTO plays VALUES (4, 'pop', 0.5);\n\
         SELECT genre, count(*) AS n, sum(score) AS total FROM plays GROUP BY genre ORDER BY genre;",
    )
    .unwrap();
    let out = run_cli(&["sql", "--lake", lake_arg, "--format", "json", "-f", script.to_str().unwrap()]);
    let rows = stdout_json(&out);
    assert_eq!(
        rows,
        serde_json::json!([
            {"genre": "jazz", "n": 1, "total": 1.0},
            {"genre": "pop", "n": 1, "total": 0.5},
            {"genre": "rock", "n": 2, "total": 5.5}
        ])
    );

    let tables = stdout_json(&run_cli(&["tables", "--lake", lake_arg, "--format", "json"]));
    let plays = &tables.as_array().unwrap()[0];
    assert_eq!(plays["table"], "plays");
    assert_eq!(plays["format"], "delta");
    assert_eq!(plays["version"], 1);
    assert_eq!(plays["rows"], 4);
    // At least one file per partition value written: rock and jazz by the CTAS, pop by the insert.
    assert!(plays["files"].as_u64().unwrap() >= 3, "{plays}");

    let csv_path = lake.path().join("out.csv");
    let out = run_cli(&["sql", "--lake", lake_arg, "--format", "csv", "--out", csv_path.to_str().unwrap(), "SELECT id FROM \"plays@v0\" ORDER BY id"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read_to_string(&csv_path).unwrap(), "id\n1\n2\n3\n");
}

#[test]
fn cli_writes_and_queries_delta_through_a_hand_started_cluster() {
    let cluster = TestCluster::start();
    let lake = tempfile::tempdir().unwrap();
    let lake_arg = lake.path().to_str().unwrap();
    let out = run_cli(&["sql", "--cluster", &cluster.url, "--lake", lake_arg, "CREATE TABLE squares AS SELECT n, n * n AS sq FROM (SELECT unnest(range(1, 1001)) AS n)"]);
    assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stderr), cluster.logs());
    let rows = stdout_json(&run_cli(&["sql", "--cluster", &cluster.url, "--lake", lake_arg, "--format", "json", "SELECT count(*) AS c, sum(sq) AS s FROM squares"]));
    let expected_sum: i64 = (1..=1000i64).map(|n| n * n).sum();
    assert_eq!(rows, serde_json::json!([{"c": 1000, "s": expected_sum}]));
}

fn assert_one_error_line(args: &[&str], must_mention: &str) {
    let out = run_cli(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} should fail");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{args:?}: one error line, got:\n{stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    assert!(lines[0].contains(must_mention), "{args:?}: '{}' should mention '{must_mention}'", lines[0]);
    assert!(!stderr.contains("panicked") && !stderr.contains("backtrace"), "{stderr}");
}

#[test]
fn bad_input_gives_one_clear_error_line() {
    let lake = tempfile::tempdir().unwrap();
    let lake_arg = lake.path().to_str().unwrap();
    assert_one_error_line(&["sql", "--lake", lake_arg, "SELECT * FROM no_such_table"], "no_such_table");
    assert_one_error_line(&["sql", "--lake", lake_arg, "SELEC 1"], "SELEC");
    let dead = common::free_port().unwrap();
    assert_one_error_line(&["sql", "--lake", lake_arg, "--cluster", &format!("df://127.0.0.1:{dead}"), "SELECT 1"], &format!("127.0.0.1:{dead}"));
    assert_one_error_line(&["sql", "--lake", "/no/such/lake", "SELECT 1"], "/no/such/lake");
    assert_one_error_line(&["tables", "--lake", "/no/such/lake"], "/no/such/lake");
    assert_one_error_line(&["sql", "--lake", "s3://bucket/lake", "SELECT 1"], "s3://");
    let as_url = format!("file://{lake_arg}");
    let out = run_cli(&["sql", "--lake", &as_url, "SELECT 1 AS one"]);
    assert!(out.status.success(), "a file:// lake URL works: {}", String::from_utf8_lossy(&out.stderr));

    // A corrupt Delta log: the commit file is cut short.
    let out = run_cli(&["sql", "--lake", lake_arg, "CREATE TABLE broken AS SELECT 1 AS x"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let commit = lake.path().join("broken/_delta_log/00000000000000000000.json");
    let text = std::fs::read_to_string(&commit).unwrap();
    std::fs::write(&commit, &text[..text.len() / 2]).unwrap();
    assert_one_error_line(&["sql", "--lake", lake_arg, "SELECT * FROM broken"], "broken");
}

#[test]
fn a_writer_killed_mid_statement_leaves_the_previous_version() {
    let lake = tempfile::tempdir().unwrap();
    let lake_arg = lake.path().to_str().unwrap();
    let out = run_cli(&["sql", "--lake", lake_arg, "CREATE TABLE events AS SELECT 1 AS n, 'seed' AS payload"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let table = lake.path().join("events");
    let entries_before = count_entries(&table);

    // Far more rows than can be written before the kill.
    let mut writer = backbeat()
        .args(["sql", "--lake", lake_arg, "INSERT INTO events SELECT a.n * 1000000 + b.n, repeat(md5(CAST(b.n AS VARCHAR)), 8) FROM (SELECT unnest(range(0, 1000)) AS n) a CROSS JOIN (SELECT unnest(range(0, 1000000)) AS n) b"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while count_entries(&table) == entries_before && start.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(writer.try_wait().unwrap().is_none(), "the writer must still be running when killed");
    let killed_pid = writer.id();
    writer.kill().unwrap();
    writer.wait().unwrap();
    let leftovers = || {
        std::fs::read_dir(std::env::temp_dir())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(&format!("backbeat-embedded-{killed_pid}-")))
            .count()
    };
    assert_eq!(leftovers(), 1, "a killed process leaves its shuffle work directory behind");
    assert!(count_entries(&table) > entries_before, "the writer had started writing data files");

    let rows = stdout_json(&run_cli(&["sql", "--lake", lake_arg, "--format", "json", "SELECT count(*) AS c FROM events"]));
    assert_eq!(rows, serde_json::json!([{"c": 1}]), "only version 0's row is visible");
    assert_eq!(leftovers(), 0, "the next embedded start removes the dead process's work directory");
    let tables = stdout_json(&run_cli(&["tables", "--lake", lake_arg, "--format", "json"]));
    assert_eq!(tables[0]["version"], 0);
}

/// Files and directories under a table, excluding its log.
fn count_entries(dir: &Path) -> usize {
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        if entry.file_name() == "_delta_log" {
            continue;
        }
        n += 1;
        if entry.path().is_dir() {
            n += count_entries(&entry.path());
        }
    }
    n
}

#[test]
fn docker_compose_uses_real_cli_flags_and_consistent_ports() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docker-compose.yml");
    let mut compose: serde_yaml::Value = serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    compose.apply_merge().unwrap(); // expand the `<<: *backbeat` anchors
    let services = compose["services"].as_mapping().expect("services");
    for name in ["scheduler", "executor-1", "executor-2", "minio", "minio-bucket", "postgres", "redis", "mongodb"] {
        assert!(services.contains_key(name), "service {name} missing");
    }
    let command = |service: &str| -> Vec<String> {
        compose["services"][service]["command"]
            .as_sequence()
            .unwrap_or_else(|| panic!("{service}: command as a list"))
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    };
    // Every backbeat process reads the same S3 lake from the object-store service, with its own
    // copy of the settings (executors sign their own requests).
    let s3_lake = |service: &str| -> bool {
        let env = &compose["services"][service]["environment"];
        env["BACKBEAT_LAKE"].as_str().is_some_and(|l| l.starts_with("s3://"))
            && env["AWS_ENDPOINT_URL"].as_str() == Some("http://minio:9000")
            && env["AWS_SECRET_ACCESS_KEY"].as_str() == compose["services"]["minio"]["environment"]["MINIO_ROOT_PASSWORD"].as_str()
    };

    // Every flag the compose file passes must be one our CLI accepts.
    for service in ["scheduler", "executor-1", "executor-2"] {
        let args = command(service);
        let subcommand = &args[0];
        let help = String::from_utf8(run_cli(&[subcommand, "--help"]).stdout).unwrap();
        for flag in args.iter().filter(|a| a.starts_with("--")) {
            assert!(help.contains(flag.as_str()), "{service}: `backbeat {subcommand}` has no {flag}");
        }
        assert!(s3_lake(service), "{service} reads the lake from MinIO");
    }
    let scheduler = command("scheduler");
    assert_eq!(scheduler[0], "scheduler");
    let bind = &scheduler[scheduler.iter().position(|a| a == "--bind").unwrap() + 1];
    assert!(bind.ends_with(":50050"), "scheduler listens on the default port 50050");
    let ports = compose["services"]["scheduler"]["ports"].as_sequence().unwrap();
    assert!(ports.iter().any(|p| p.as_str() == Some("50050:50050")));
    for service in ["executor-1", "executor-2"] {
        let args = command(service);
        assert_eq!(args[0], "executor");
        let target = &args[args.iter().position(|a| a == "--scheduler").unwrap() + 1];
        assert_eq!(target, "scheduler:50050", "{service} reaches the scheduler by service name");
    }
    assert!(compose["services"]["minio-bucket"]["entrypoint"][2].as_str().is_some_and(|e| e.contains("mc mb --ignore-existing lake/backbeat")));
}
