//! Job runs in the scheduler's Prometheus metrics: a scheduler started with the lake exports the
//! run history beside Ballista's own metrics.

mod common;

use std::time::{Duration, Instant};

use common::{free_port, run_cli};

#[test]
fn the_scheduler_exports_job_runs_from_the_lake() {
    let lake = tempfile::tempdir().unwrap();
    let lake_arg = lake.path().to_str().unwrap();
    let ok = lake.path().join("weekly_counts.sql");
    std::fs::write(&ok, "CREATE OR REPLACE TABLE weekly AS SELECT * FROM (VALUES (1, 'a'), (2, 'b'), (3, 'c')) AS t(id, name);\n").unwrap();
    let bad = lake.path().join("broken_job.sql");
    std::fs::write(&bad, "SELECT * FROM no_such_table;\n").unwrap();
    for _ in 0..2 {
        let out = run_cli(&["run", ok.to_str().unwrap(), "--lake", lake_arg]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    assert!(!run_cli(&["run", bad.to_str().unwrap(), "--lake", lake_arg]).status.success());

    let port = free_port().unwrap();
    let mut scheduler = common::backbeat()
        .args(["scheduler", "--bind", &format!("127.0.0.1:{port}"), "--lake", lake_arg])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let metrics = loop {
        let body = backbeat_cluster::local_cluster::http_get_text("127.0.0.1", port, "/api/metrics").unwrap_or_default();
        if body.contains("backbeat_job_runs{") || start.elapsed() > Duration::from_secs(30) {
            break body;
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    let _ = scheduler.kill();
    let _ = scheduler.wait();
    let line = |prefix: &str| metrics.lines().find(|l| l.starts_with(prefix)).unwrap_or_else(|| panic!("no {prefix} in\n{metrics}")).to_string();
    assert!(line(r#"backbeat_job_runs{job="weekly_counts",status="succeeded"}"#).ends_with(" 2"), "{metrics}");
    assert!(line(r#"backbeat_job_runs{job="broken_job",status="failed"}"#).ends_with(" 1"), "{metrics}");
    assert!(line(r#"backbeat_job_rows_written{job="weekly_counts"}"#).ends_with(" 6"), "{metrics}");
    assert!(line(r#"backbeat_job_last_run_rows_written{job="weekly_counts"}"#).ends_with(" 3"), "{metrics}");
    assert!(metrics.contains("backbeat_job_last_run_duration_seconds{"), "{metrics}");
    // Ballista's own metrics are still there.
    assert!(metrics.lines().any(|l| l.starts_with("job_") || l.contains("ballista") || l.starts_with("process_")), "{metrics}");
}
