//! Data scientists' Python: job scripts run by `backbeat run script.py`, and the notebooks in
//! `notebooks/`, executed headless against `backbeat serve` over a lake the daily pipeline built.
//! Both use the notebooks' virtualenv (`scripts/notebook_venv.sh`, pinned in
//! `notebooks/requirements.txt`; `.ci/run` creates it, cached).

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{backbeat, free_port, repo};

const TOKEN: &str = "notebook-test-token-0123456789abcdef";

fn notebook_python() -> PathBuf {
    let out = std::process::Command::new("bash").arg(repo().join("scripts/notebook_venv.sh")).output().unwrap();
    assert!(out.status.success(), "notebook venv: {}", String::from_utf8_lossy(&out.stderr));
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

fn run_ok(args: &[&str], env: &[(&str, &Path)]) -> String {
    let mut command = backbeat();
    // Pipelines name their ingest specs relative to the repository, as the README runs them.
    command.args(args).current_dir(repo());
    for (k, v) in env {
        command.env(k, v);
    }
    let out = command.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "backbeat {args:?} failed:\n{stderr}");
    String::from_utf8_lossy(&out.stdout).into_owned() + &stderr
}

#[test]
fn a_python_job_script_runs_on_the_lake_is_recorded_and_fails_its_run_when_it_fails() {
    let python = notebook_python();
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let lake_arg = lake.to_str().unwrap();
    run_ok(&["datagen", "--scale", "0.1", "--only", "tracks,listening", "--out", lake_arg], &[]);
    let script = repo().join("jobs/scripts/genre_charts.py");
    let output = run_ok(
        &["run", script.to_str().unwrap(), "-p", "top=3", "--lake", lake_arg],
        &[("BACKBEAT_PYTHON", &python)],
    );
    assert!(output.contains("genre_charts:"), "the script's own output is shown:\n{output}");

    // The chart it wrote, checked through `backbeat sql` against the source tables.
    let csv = run_ok(
        &["sql", "--lake", lake_arg, "--format", "csv",
          "SELECT (SELECT count(*) FROM genre_charts) AS charted, (SELECT count(*) FROM genre_charts WHERE chart_position > 3) AS over, \
           (SELECT count(DISTINCT track_genre) FROM genre_charts) AS genres, (SELECT count(DISTINCT track_genre) FROM tracks) AS all_genres"],
        &[],
    );
    let values: Vec<i64> = csv.lines().nth(1).unwrap().split(',').map(|v| v.trim().parse().unwrap()).collect();
    let (charted, over, genres, all_genres) = (values[0], values[1], values[2], values[3]);
    assert_eq!(over, 0, "no chart is longer than top=3");
    assert!(genres > 0 && genres <= all_genres && charted <= 3 * genres && charted >= genres, "{csv}");

    // A failing script fails the run, with its error, and the history says so.
    let failing = dir.path().join("broken_report.py");
    std::fs::write(&failing, "# job: broken_report\nraise RuntimeError('the model file is missing')\n").unwrap();
    let out = backbeat()
        .args(["run", failing.to_str().unwrap(), "--lake", lake_arg])
        .env("BACKBEAT_PYTHON", &python)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a failing script must fail the run");
    assert!(stderr.contains("the model file is missing"), "{stderr}");
    let runs = run_ok(&["runs", "--lake", lake_arg, "--format", "csv"], &[]);
    assert!(runs.lines().any(|l| l.contains("genre_charts") && l.contains("succeeded")), "{runs}");
    assert!(runs.contains("broken_report,failed") && runs.contains("RuntimeError: the model file is missing"), "{runs}");
}

#[test]
fn the_notebooks_run_headless_against_a_served_lake() {
    let python = notebook_python();
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let lake_arg = lake.to_str().unwrap();
    std::fs::create_dir_all(&lake).unwrap();
    // Every workload's tables, from generated data, as a data scientist's lake would have them.
    run_ok(&["pipeline", "run", "daily", "--date", "2026-12-01", "--var", "scale=0.2", "--lake", lake_arg], &[]);

    let port = free_port().unwrap();
    let log = dir.path().join("serve.log");
    let mut server = backbeat()
        .args(["serve", "--bind", &format!("127.0.0.1:{port}"), "--lake", lake_arg])
        .env("BACKBEAT_FLIGHT_TOKEN", TOKEN)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline && server.try_wait().unwrap().is_none(), "serve did not start:\n{}", std::fs::read_to_string(&log).unwrap_or_default());
        std::thread::sleep(Duration::from_millis(100));
    }
    let out_dir = dir.path().join("notebooks-out");
    let out = std::process::Command::new(&python)
        .arg(repo().join("scripts/run_notebooks.py"))
        .env("BACKBEAT_FLIGHT_URI", format!("grpc://127.0.0.1:{port}"))
        .env("BACKBEAT_FLIGHT_TOKEN", TOKEN)
        .env("BACKBEAT_NOTEBOOK_OUT", &out_dir)
        .current_dir(repo())
        .output()
        .unwrap();
    let _ = server.kill();
    let _ = server.wait();
    let report = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "a notebook failed:\n{report}\nserver log:\n{}", std::fs::read_to_string(&log).unwrap_or_default());
    let notebooks = std::fs::read_dir(repo().join("notebooks")).unwrap().filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "ipynb")).count();
    assert!(notebooks >= 4, "notebooks/ should hold the four notebooks");
    let plots = std::fs::read_dir(&out_dir).unwrap().filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "png")).count();
    assert!(plots >= notebooks, "each notebook draws at least one plot to a file ({plots} plots)");
}
