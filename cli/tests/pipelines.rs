//! Pipelines and schedules through the `backbeat` binary: retries, a failing step that blocks only
//! its dependents, a timeout, resume and `--from`; bad files refused before anything runs; two
//! schedule processes on one lake running each slot once; a schedule process killed mid-run whose
//! slot the next process resumes; the `daily` pipeline end to end on the embedded cluster (with
//! exports to the real PostgreSQL and Redis) and on a 2-executor cluster.

mod common;

use std::path::Path;
use std::process::{Child, Output};
use std::time::{Duration, Instant};

use backbeat_cluster::session::{BackbeatSession, ClusterTarget};
use common::{TestCluster, i64s, query};

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

fn pipeline(lake: &Path, args: &[&str]) -> Output {
    let mut all = vec!["pipeline"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--lake", lake.to_str().unwrap()]);
    common::run_cli(&all)
}

fn text(out: &Output) -> String {
    format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// The summary line of `step` in a run's output.
fn line<'a>(out: &'a str, step: &str) -> &'a str {
    out.lines().find(|l| l.split_whitespace().next() == Some(step) && l.contains("  ")).unwrap_or_else(|| panic!("no summary line for {step} in:\n{out}"))
}

async fn embedded(lake: &Path) -> BackbeatSession {
    BackbeatSession::connect(ClusterTarget::Embedded { concurrency: 2 }, lake).await.unwrap()
}

/// Attempts of `step` with `status` in the history.
async fn attempts(session: &BackbeatSession, step: &str, status: &str) -> i64 {
    let sql = format!("SELECT count(*) AS n FROM backbeat_runs WHERE step = '{step}' AND status = '{status}'");
    i64s(&query(session, &sql).await, "n")[0]
}

const STEPS: &str = "name: t
max_parallel: 2
steps:
  - name: seed
    job: seed.sql
  - name: flaky
    job: flaky.sql
    retries: 2
    retry_delay: 100ms
    depends_on: [seed]
  - name: broken
    job: broken.sql
    depends_on: [seed]
  - name: after_broken
    job: after_broken.sql
    depends_on: [broken]
  - name: independent
    job: independent.sql
    depends_on: [seed]
  - name: slow
    job: slow.sql
    timeout: 3s
";

#[tokio::test(flavor = "multi_thread")]
async fn retries_failures_timeouts_resume_and_from() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let lake = d.join("lake");
    std::fs::create_dir(&lake).unwrap();
    write(d, "p.yaml", STEPS);
    write(d, "seed.sql", "CREATE OR REPLACE TABLE base AS SELECT 1 AS x");
    // Fails on its first two attempts, succeeds on the third: each attempt appends one row to the
    // one-row table first.
    write(
        d,
        "flaky.sql",
        "INSERT INTO attempts SELECT 1 AS a;\n\
         SELECT CAST(CASE WHEN (SELECT count(*) FROM attempts) < 4 THEN 'attempt failed' ELSE '1' END AS INT) AS ok",
    );
    write(d, "broken.sql", "SELECT CAST('never a number' AS INT) AS n");
    write(d, "after_broken.sql", "CREATE OR REPLACE TABLE after_broken AS SELECT 1 AS x");
    write(d, "independent.sql", "INSERT INTO independent SELECT x FROM base");
    write(d, "slow.sql", "SELECT sum(value) AS s FROM generate_series(1, 100000000000)");
    let setup = common::run_cli(&["sql", "CREATE TABLE attempts AS SELECT 0 AS a", "--lake", lake.to_str().unwrap()]);
    assert!(setup.status.success(), "{}", text(&setup));
    let setup = common::run_cli(&["sql", "CREATE TABLE independent AS SELECT 0 AS x", "--lake", lake.to_str().unwrap()]);
    assert!(setup.status.success(), "{}", text(&setup));

    let p = d.join("p.yaml");
    let first = pipeline(&lake, &["run", p.to_str().unwrap(), "--date", "2026-12-01"]);
    let out = text(&first);
    assert!(!first.status.success(), "a failed step makes the exit code non-zero:\n{out}");
    assert!(line(&out, "flaky").contains("succeeded") && line(&out, "flaky").split_whitespace().nth(2) == Some("3"), "{out}");
    assert!(line(&out, "broken").contains("FAILED") && line(&out, "broken").contains("never a number"), "{out}");
    assert!(line(&out, "after_broken").contains("blocked"), "{out}");
    assert!(line(&out, "independent").contains("succeeded"), "{out}");
    assert!(line(&out, "slow").contains("FAILED") && line(&out, "slow").contains("timed out after 3.0 s"), "{out}");
    assert!(!lake.join("after_broken").exists(), "a blocked step never runs");

    // Fix the two failing steps; the same date resumes: only what is left runs.
    write(d, "broken.sql", "SELECT CAST('7' AS INT) AS n");
    write(d, "slow.sql", "SELECT 1 AS fast");
    let second = pipeline(&lake, &["run", p.to_str().unwrap(), "--date", "2026-12-01"]);
    let out = text(&second);
    assert!(second.status.success(), "{out}");
    for done in ["seed", "flaky", "independent"] {
        assert!(line(&out, done).contains("done before"), "{done} re-ran:\n{out}");
    }
    for ran in ["broken", "after_broken", "slow"] {
        assert!(line(&out, ran).contains("succeeded"), "{ran}:\n{out}");
    }
    // --from runs that step and its dependents again, nothing else.
    let third = pipeline(&lake, &["run", p.to_str().unwrap(), "--date", "2026-12-01", "--from", "broken"]);
    let out = text(&third);
    assert!(third.status.success(), "{out}");
    assert!(line(&out, "seed").contains("not selected") && line(&out, "after_broken").contains("succeeded"), "{out}");

    let session = embedded(&lake).await;
    assert_eq!(attempts(&session, "seed", "succeeded").await, 1);
    assert_eq!((attempts(&session, "flaky", "failed").await, attempts(&session, "flaky", "succeeded").await), (2, 1));
    assert_eq!((attempts(&session, "broken", "failed").await, attempts(&session, "broken", "succeeded").await), (1, 2));
    assert_eq!(attempts(&session, "after_broken", "succeeded").await, 2);
    assert_eq!(i64s(&query(&session, "SELECT count(*) AS n FROM independent WHERE x = 1").await, "n")[0], 1, "independent ran once");
    let runs = i64s(&query(&session, "SELECT count(DISTINCT pipeline_run) AS n FROM backbeat_runs WHERE pipeline = 't' AND run_key = '2026-12-01'").await, "n")[0];
    assert_eq!(runs, 3);
    let history = common::run_cli(&["runs", "--pipeline", "t", "--lake", lake.to_str().unwrap()]);
    assert!(history.status.success() && text(&history).contains("after_broken"), "{}", text(&history));

    // A backfill runs each date once, oldest first; run again, it resumes every date.
    let backfill = pipeline(&lake, &["backfill", p.to_str().unwrap(), "--from", "2026-11-29", "--to", "2026-11-30"]);
    assert!(backfill.status.success(), "{}", text(&backfill));
    let again = pipeline(&lake, &["backfill", p.to_str().unwrap(), "--from", "2026-11-29", "--to", "2026-11-30"]);
    let reran = text(&again).lines().filter(|l| l.split_whitespace().nth(1) == Some("succeeded")).count();
    assert!(again.status.success() && reran == 0, "{}", text(&again));
    let dates = query(&session, "SELECT run_key, count(*) AS n FROM backbeat_runs WHERE step = 'seed' AND status = 'succeeded' GROUP BY run_key ORDER BY run_key").await;
    assert_eq!(i64s(&dates, "n"), vec![1, 1, 1], "one seed per date: 2026-11-29, 2026-11-30, 2026-12-01");
}

#[test]
fn bad_pipeline_files_are_refused_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let lake = d.join("lake");
    std::fs::create_dir(&lake).unwrap();
    write(d, "ok.sql", "SELECT 1");
    let cases = [
        ("cycle.yaml", "name: c\nsteps:\n  - name: a\n    job: ok.sql\n    depends_on: [b]\n  - name: b\n    job: ok.sql\n    depends_on: [a]\n", "cycle"),
        ("unknown_job.yaml", "name: u\nsteps:\n  - name: a\n    job: ok.sql\n  - name: b\n    job: no_such_job\n", "unknown_job.yaml:5"),
        ("missing_dep.yaml", "name: m\nsteps:\n  - name: a\n    job: ok.sql\n    depends_on: [ghost]\n", "depends on 'ghost'"),
        ("bad_param.yaml", "name: b\nsteps:\n  - name: a\n    job: user_top_genres\n    params: {topp: 3}\n", "no parameter 'topp'"),
    ];
    for (file, yaml, expected) in cases {
        write(d, file, yaml);
        let out = pipeline(&lake, &["run", d.join(file).to_str().unwrap()]);
        assert!(!out.status.success(), "{file} ran");
        assert!(text(&out).contains(expected), "{file}: expected '{expected}' in:\n{}", text(&out));
    }
    // A value of the wrong type is refused before the first step too.
    write(d, "bad_type.yaml", "name: b\nsteps:\n  - name: a\n    job: ok.sql\n  - name: c\n    job: user_top_genres\n    params: {top: three}\n");
    let out = pipeline(&lake, &["run", d.join("bad_type.yaml").to_str().unwrap()]);
    assert!(!out.status.success() && text(&out).contains("not a valid int"), "{}", text(&out));
    assert!(!lake.join("backbeat_runs").exists(), "nothing ran, so nothing was recorded");
    let show = common::run_cli(&["pipeline", "show", "daily"]);
    assert!(show.status.success() && text(&show).contains("recommend: job recommend  <- track_similarity, item_similarity, als_train"), "{}", text(&show));
}

/// A schedule process logging to `log`.
fn schedule(lake: &Path, file: &Path, lease: &str, log: &Path) -> Child {
    common::backbeat()
        .args(["schedule", file.to_str().unwrap(), "--lake", lake.to_str().unwrap(), "--tick", "200ms", "--lease-timeout", lease])
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

fn terminate(child: &Child) {
    std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
}

/// Waits for a SIGTERMed schedule process to drain and exit 0; its log otherwise.
fn drained(mut child: Child, log: &Path) -> String {
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if start.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let text = std::fs::read_to_string(log).unwrap_or_default();
    assert!(status.is_some_and(|s| s.success()), "the schedule process did not drain and exit 0:\n{text}");
    text
}

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn done_slots(lake: &Path, pipeline: &str) -> usize {
    std::fs::read_dir(lake.join("_backbeat/schedules").join(pipeline).join("done")).map(|d| d.count()).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn two_schedule_processes_run_each_slot_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let lake = d.join("lake");
    std::fs::create_dir(&lake).unwrap();
    write(d, "tick.sql", "-- param: slot text\nINSERT INTO ticks SELECT ${slot} AS slot");
    write(d, "tick.yaml", "name: tick\nschedule: {cron: \"* * * * * *\", timezone: UTC, catchup: all}\nsteps:\n  - name: tick\n    job: tick.sql\n    params: {slot: \"{{ run_key }}\"}\n");
    let setup = common::run_cli(&["sql", "CREATE TABLE ticks AS SELECT 'setup' AS slot", "--lake", lake.to_str().unwrap()]);
    assert!(setup.status.success(), "{}", text(&setup));
    let (log_a, log_b) = (d.join("a.log"), d.join("b.log"));
    let a = schedule(&lake, &d.join("tick.yaml"), "10s", &log_a);
    let b = schedule(&lake, &d.join("tick.yaml"), "10s", &log_b);
    wait_for("four slots", Duration::from_secs(120), || done_slots(&lake, "tick") >= 4);
    terminate(&a);
    terminate(&b);
    drained(a, &log_a);
    drained(b, &log_b);
    let session = embedded(&lake).await;
    let dup = query(&session, "SELECT slot, count(*) AS n FROM ticks GROUP BY slot HAVING count(*) > 1").await;
    assert_eq!(dup.num_rows(), 0, "a slot ran twice");
    let slots = i64s(&query(&session, "SELECT count(DISTINCT slot) AS n FROM ticks WHERE slot <> 'setup'").await, "n")[0];
    assert!(slots >= 4 && slots as usize == done_slots(&lake, "tick"), "{slots} slots ran, {} marked done", done_slots(&lake, "tick"));
    let runs = i64s(&query(&session, "SELECT count(*) AS n FROM backbeat_runs WHERE pipeline = 'tick' AND status = 'succeeded'").await, "n")[0];
    assert_eq!(runs, slots, "one recorded run per slot");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_schedule_process_leaves_nothing_half_written_and_its_slot_is_resumed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let lake = d.join("lake");
    std::fs::create_dir(&lake).unwrap();
    write(d, "first.sql", "CREATE OR REPLACE TABLE first AS SELECT 1 AS x");
    // Long enough to be killed in (minutes in a debug build), then made quick for the restart.
    write(d, "big.sql", "CREATE OR REPLACE TABLE big AS SELECT sum(value) AS s FROM generate_series(1, 100000000000)");
    write(d, "k.yaml", "name: k\nschedule: {cron: \"*/2 * * * * *\", timezone: UTC, catchup: latest}\nsteps:\n  - name: first\n    job: first.sql\n  - name: big\n    job: big.sql\n    depends_on: [first]\n");
    let mut a = schedule(&lake, &d.join("k.yaml"), "2s", &d.join("a.log"));
    wait_for("the first step", Duration::from_secs(120), || lake.join("first/_delta_log").is_dir());
    std::thread::sleep(Duration::from_millis(500));
    a.kill().unwrap(); // SIGKILL: no chance to clean up
    a.wait().unwrap();
    assert!(!lake.join("big/_delta_log").exists(), "the killed step committed nothing");
    let lease = std::fs::read_dir(lake.join("_backbeat/schedules/k")).unwrap().flatten().map(|e| e.path()).filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("lock.")).max().unwrap();
    let held: serde_json::Value = serde_json::from_slice(&std::fs::read(lease).unwrap()).unwrap();
    let slot = held["slot"].as_str().expect("the killed holder was mid-slot").to_string();

    write(d, "big.sql", "CREATE OR REPLACE TABLE big AS SELECT 42 AS s");
    let log_b = d.join("b.log");
    let b = schedule(&lake, &d.join("k.yaml"), "2s", &log_b);
    let marker = lake.join("_backbeat/schedules/k/done").join(backbeat_jobs::pipeline::cron::parse_slot(&slot).unwrap().timestamp_millis().to_string());
    wait_for("the killed slot to be resumed", Duration::from_secs(120), || marker.exists());
    terminate(&b);
    let err = drained(b, &log_b);
    assert!(err.contains("resuming slot"), "{err}");
    let session = embedded(&lake).await;
    let of_slot = |step: &str| format!("SELECT count(*) AS n FROM backbeat_runs WHERE run_key = '{slot}' AND step = '{step}' AND status = 'succeeded'");
    assert_eq!(i64s(&query(&session, &of_slot("first")).await, "n")[0], 1, "the resumed slot did not repeat its succeeded step");
    assert_eq!(i64s(&query(&session, &of_slot("big")).await, "n")[0], 1);
    assert_eq!(i64s(&query(&session, "SELECT s FROM big").await, "s"), vec![42]);
}

/// The daily pipeline's outputs, present and non-empty.
async fn assert_daily_outputs(session: &BackbeatSession) {
    for table in ["orders_landing", "order_totals", "customer_predictions", "next_week_buyers", "track_similar", "item_similar", "als_item_factors", "user_recs", "recs_by_track", "isrc_matches", "isrc_eval"] {
        let n = i64s(&query(session, &format!("SELECT count(*) AS n FROM {table}")).await, "n")[0];
        assert!(n > 0, "{table} is empty");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_daily_pipeline_runs_end_to_end_embedded_with_exports() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    std::fs::create_dir(&lake).unwrap();
    let out = common::backbeat()
        .args(["pipeline", "run", "daily", "--date", "2026-12-01", "--var", "scale=0.2", "--lake", lake.to_str().unwrap()])
        .current_dir(common::repo())
        .env("BACKBEAT_EXPORT_REDIS", "redis://127.0.0.1:6379/0")
        .env("BACKBEAT_EXPORT_POSTGRES", "postgres://postgres@127.0.0.1:5432/test")
        .env_remove("BACKBEAT_EXPORT_MONGO")
        .output()
        .unwrap();
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(line(&all, "export_next_week_buyers").contains("skipped") && all.contains("BACKBEAT_EXPORT_MONGO is not set"), "{all}");
    assert!(line(&all, "export_user_recs").contains("succeeded"), "{all}");
    assert!(all.contains("tables written in"), "{all}");
    let session = embedded(&lake).await;
    assert_daily_outputs(&session).await;
    let user = i64s(&query(&session, "SELECT min(user_id) AS u FROM user_recs").await, "u")[0];
    let mut redis = redis::Client::open("redis://127.0.0.1:6379/0").unwrap().get_connection().unwrap();
    let cached: i64 = redis::cmd("ZCARD").arg(format!("recs:{user}")).query(&mut redis).unwrap();
    assert!(cached > 0, "user {user}'s recs are not in Redis");
    // A second run the same day resumes: every step done before, nothing re-run.
    let again = common::backbeat()
        .args(["pipeline", "run", "daily", "--date", "2026-12-01", "--var", "scale=0.2", "--lake", lake.to_str().unwrap()])
        .current_dir(common::repo())
        .output()
        .unwrap();
    let all = text(&again);
    assert!(again.status.success(), "{all}");
    assert!(line(&all, "recommend").contains("done before") && line(&all, "isrc_match").contains("done before"), "{all}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_daily_pipeline_runs_end_to_end_on_a_two_executor_cluster() {
    let cluster = TestCluster::start();
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    std::fs::create_dir(&lake).unwrap();
    let out = common::backbeat()
        .args(["pipeline", "run", "daily", "--var", "scale=0.2", "--cluster", &cluster.url, "--lake", lake.to_str().unwrap()])
        .current_dir(common::repo())
        .env_remove("BACKBEAT_EXPORT_REDIS")
        .env_remove("BACKBEAT_EXPORT_POSTGRES")
        .env_remove("BACKBEAT_EXPORT_MONGO")
        .output()
        .unwrap();
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(line(&all, "export_user_recs").contains("skipped"), "{all}");
    assert_daily_outputs(&cluster.session(&lake).await).await;
}
