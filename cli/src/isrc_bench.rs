//! `backbeat bench isrc`: `isrc_match` beside Splink 5 (DuckDB backend, `bench/peers/splink_isrc.py`)
//! on generated playlists and catalogue. Both link the same parsed, folded fields (backbeat's
//! `isrc_work_readings` and `isrc_work_catalogue`, written as Parquet for the peer) with
//! comparable comparison levels and unsupervised training, and both are scored by `isrc_eval`
//! against the labels at the same threshold. Splink is given backbeat's blocking: the same four
//! rules with the same caps, its typo keys as an array column Splink explodes, and comparison
//! levels written as the same SQL conditions (DuckDB's `damerau_levenshtein`, `starts_with`,
//! `jaro_winkler_similarity`), so both compare the same pairs the same way and differ in engine
//! and training. Prints Markdown for BENCHMARKS.md.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use arrow::array::{Array, AsArray};
use arrow::datatypes::Float64Type;
use backbeat_cluster::local_cluster::LocalCluster;
use backbeat_cluster::session::{BackbeatSession, ClusterTarget};
use backbeat_jobs::job_catalogue::find;
use backbeat_jobs::job_runner::run_job;
use clap::Args;

use crate::clv_bench::run_with_timeout;

/// Arguments of `backbeat bench isrc`.
#[derive(Args)]
pub struct IsrcBenchArgs {
    /// Scale: 10,000 recordings and 10,000 playlist items per unit.
    #[arg(long, default_value_t = 10.0)]
    scale: f64,
    /// Share of corrupted source rows (dead letters at ingest).
    #[arg(long, default_value_t = 0.02)]
    dirty_rate: f64,
    /// Work directory: the sources, the lake, the peer's inputs and outputs.
    #[arg(long, default_value = "bench-data/isrc")]
    data: PathBuf,
    /// Match probability at which both tools call a match.
    #[arg(long, default_value_t = 0.9)]
    threshold: f64,
    /// Run backbeat on a scheduler + 2 executor processes instead of embedded.
    #[arg(long)]
    cluster: bool,
    /// Skip the peer.
    #[arg(long)]
    no_peer: bool,
    /// Give up on the peer after this many seconds.
    #[arg(long, default_value_t = 3600)]
    peer_timeout: u64,
    /// Python interpreter with the peers installed (bench/peers/requirements.txt).
    #[arg(long, default_value = "python3")]
    python: PathBuf,
    /// The peer scripts.
    #[arg(long, default_value = "bench/peers")]
    peers: PathBuf,
}

/// Runs the benchmark.
pub async fn run(args: IsrcBenchArgs) -> Result<()> {
    let dir = args.data.join(format!("scale-{}", args.scale));
    let lake = dir.join("lake");
    if !lake.join("isrc_catalogue").is_dir() {
        prepare(&args, &dir, &lake)?;
    }
    let cluster = if args.cluster { Some(LocalCluster::start(&std::env::current_exe()?, 2, 1)?) } else { None };
    let target = match &cluster {
        Some(c) => ClusterTarget::Remote(c.url().to_string()),
        None => ClusterTarget::Embedded { concurrency: 2 },
    };
    let session = BackbeatSession::connect(target, &lake).await?;
    let threshold = args.threshold.to_string();
    let clock = Instant::now();
    let outcome = job(&session, "isrc_match", &[("full", "true"), ("match_threshold", &threshold), ("review_threshold", &threshold)]).await?;
    let total = clock.elapsed().as_secs_f64();
    let phases = phase_seconds(&outcome)?;
    let linkage: f64 = phases.iter().filter(|(p, _)| ["blocking", "comparison levels", "u and EM", "weights, best per item"].contains(&p.as_str())).map(|(_, s)| s).sum();
    job(&session, "isrc_eval", &[]).await?;
    let ours = metrics(&session, "isrc_eval").await?;
    let pairs = scalar(&session, "SELECT CAST(count(*) AS DOUBLE) FROM isrc_work_pairs").await?;
    let levels = phases.iter().find(|(p, _)| p == "comparison levels").map_or(f64::NAN, |(_, s)| *s);
    println!("\n## ISRC matching, scale {} ({} items, dirty rate {})\n", args.scale, (args.scale * 10_000.0) as u64, args.dirty_rate);
    println!("backbeat phases (s): {}", phases.iter().map(|(p, s)| format!("{p} {s:.2}")).collect::<Vec<_>>().join(", "));
    println!("string comparisons: {pairs:.0} pairs in {levels:.2} s ({:.2} M pairs/s, 4 fields each)\n", pairs / levels / 1e6);
    println!("| tool | blocking + training + scoring (s) | whole run (s) | pairs | precision | recall | F1 | false-match rate |");
    println!("|---|---|---|---|---|---|---|---|");
    println!("| backbeat {} | {linkage:.1} | {total:.1} | {pairs:.0} | {:.4} | {:.4} | {:.4} | {:.4} |", if args.cluster { "2 executors" } else { "embedded" }, ours[0], ours[1], ours[2], ours[3]);
    if !args.no_peer {
        match peer(&args, &session, &dir).await? {
            Ok((report, m)) => {
                let s = |k: &str| report[k].as_f64().unwrap_or(f64::NAN) / 1000.0;
                println!(
                    "| Splink {} (DuckDB {}, 2 threads) | {:.1} | {:.1} | {} | {:.4} | {:.4} | {:.4} | {:.4} |",
                    report["version"].as_str().unwrap_or("?"),
                    report["duckdb_version"].as_str().unwrap_or("?"),
                    s("training_ms") + s("predict_ms"),
                    s("total_ms"),
                    report["pairs"],
                    m[0],
                    m[1],
                    m[2],
                    m[3]
                );
            }
            Err(why) => println!("| Splink | {why} | | | | | | |"),
        }
    }
    Ok(())
}

/// Generates the sources and ingests them with the CLI (not timed).
fn prepare(args: &IsrcBenchArgs, dir: &Path, lake: &Path) -> Result<()> {
    let src = dir.join("sources");
    std::fs::create_dir_all(&src)?;
    std::fs::create_dir_all(lake)?;
    let n = (args.scale * 10_000.0).round() as u64;
    eprintln!("generating {n} recordings and {n} playlist items");
    backbeat_datasets::isrc::generate(42, n, n, args.dirty_rate, &src, |_| {})?;
    let exe = std::env::current_exe()?;
    let file = |name: &str| src.join(name).to_string_lossy().into_owned();
    for ingest in [
        vec!["csv".to_string(), file("catalogue.csv"), "--schema".into(), "jobs/ingest/isrc_catalogue.yaml".into()],
        vec!["csv".to_string(), file("ground_truth.csv"), "--schema".into(), "jobs/ingest/isrc_ground_truth.yaml".into()],
        vec!["json".to_string(), file("youtube_playlists.ndjson"), "--mapping".into(), "jobs/ingest/youtube_playlists.yaml".into()],
    ] {
        let status = Command::new(&exe).arg("ingest").args(&ingest).arg("--lake").arg(lake).status()?;
        if !status.success() {
            bail!("backbeat ingest {} failed", ingest.join(" "));
        }
    }
    Ok(())
}

async fn job(session: &BackbeatSession, name: &str, params: &[(&str, &str)]) -> Result<backbeat_jobs::job_runner::JobOutcome> {
    let job = find(name)?;
    let params: Vec<(String, String)> = params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    run_job(session, &job, &params).await.with_context(|| format!("job {name}"))
}

fn phase_seconds(outcome: &backbeat_jobs::job_runner::JobOutcome) -> Result<Vec<(String, f64)>> {
    let section = outcome.report.iter().find(|s| s.title == "seconds per phase").context("isrc_match reported no phases")?;
    let mut out = Vec::new();
    for b in &section.batches {
        let names = arrow::compute::cast(b.column(0), &arrow::datatypes::DataType::Utf8)?;
        let secs = arrow::compute::cast(b.column(1), &arrow::datatypes::DataType::Float64)?;
        for i in 0..b.num_rows() {
            out.push((names.as_string::<i32>().value(i).to_string(), secs.as_primitive::<Float64Type>().value(i)));
        }
    }
    Ok(out)
}

async fn scalar(session: &BackbeatSession, sql: &str) -> Result<f64> {
    let batches = session.sql(sql).await?.collect().await?;
    let b = batches.iter().find(|b| b.num_rows() > 0).with_context(|| format!("no row from {sql}"))?;
    let c = arrow::compute::cast(b.column(0), &arrow::datatypes::DataType::Float64)?;
    // NULL (precision with no match at all) is NaN, not whatever the null slot holds.
    Ok(if c.is_null(0) { f64::NAN } else { c.as_primitive::<Float64Type>().value(0) })
}

/// precision, recall, F1, false-match rate from an `isrc_eval` table.
async fn metrics(session: &BackbeatSession, table: &str) -> Result<[f64; 4]> {
    let mut out = [f64::NAN; 4];
    for (i, m) in ["precision", "recall", "f1", "false_match_rate"].iter().enumerate() {
        out[i] = scalar(session, &format!("SELECT value FROM {table} WHERE metric = '{m}'")).await?;
    }
    Ok(out)
}

/// Splink on backbeat's parsed fields; its best candidate per item scored by `isrc_eval`.
async fn peer(args: &IsrcBenchArgs, session: &BackbeatSession, dir: &Path) -> Result<std::result::Result<(serde_json::Value, [f64; 4]), String>> {
    let lake = session.lake().local_root("bench isrc (Splink reads the tables from disk)")?.to_path_buf();
    let sql = |q: String| async move { session.sql(&q).await?.collect().await.map_err(anyhow::Error::from) };
    // Fresh tables: a replaced Delta table keeps its old files, which the peer's glob would read.
    for t in ["bench_isrc_items", "bench_isrc_catalogue"] {
        match std::fs::remove_dir_all(lake.join(t)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
    }
    // The same four blocking rules as isrc_match, as columns Splink blocks on: title and artist
    // (rule 0); the typo keys, the catalogue's capped at max_block recordings (rule 1); the title
    // and the rarest word, the catalogue's emptied where more than max_title_block /
    // max_token_block recordings share them (rules 2 and 3). Empty strings become NULL, which
    // never blocks in Splink (isrc_match skips empty keys too).
    let cap = |name: &str| -> Result<String> {
        find("isrc_match")?.params.iter().find(|p| p.name == name).and_then(|p| p.default.clone()).with_context(|| format!("isrc_match has no default {name}"))
    };
    let (max_block, max_title, max_token) = (cap("max_block")?, cap("max_title_block")?, cap("max_token_block")?);
    sql("CREATE TABLE bench_isrc_items AS SELECT concat(item_id, '#', CAST(reading AS VARCHAR)) AS item_id, \
           nullif(title_n, '') AS title_n, nullif(artist_n, '') AS artist_n, artists_n, duration_s, version_key, \
           nullif(title_n, '') AS title_b, nullif(rare_token, '') AS rare_b, \
           array_concat(typo_keys(title_n, artist_n), typo_keys(artist_n, title_n)) AS keys, false AS derivative \
         FROM isrc_work_readings".into()).await?;
    sql(format!(
        "CREATE TABLE bench_isrc_catalogue AS SELECT c.isrc, nullif(c.title_n, '') AS title_n, nullif(c.artist_n, '') AS artist_n, \
           c.artists_n, c.duration_s, c.version_key, \
           CASE WHEN t.n <= {max_title} THEN nullif(c.title_n, '') END AS title_b, \
           CASE WHEN w.n <= {max_token} THEN nullif(c.rare_token, '') END AS rare_b, \
           k.keys \
         FROM isrc_work_catalogue c \
         LEFT JOIN (SELECT title_n, count(*) AS n FROM isrc_work_catalogue GROUP BY 1) t ON c.title_n = t.title_n \
         LEFT JOIN (SELECT rare_token, count(*) AS n FROM isrc_work_catalogue GROUP BY 1) w ON c.rare_token = w.rare_token \
         LEFT JOIN (SELECT isrc, array_agg(k) AS keys FROM isrc_work_catalogue_keys WHERE n <= {max_block} GROUP BY 1) k ON c.isrc = k.isrc"
    )).await?;
    let out = dir.join("splink_matches.parquet");
    let glob = |t: &str| lake.join(t).join("*.parquet").to_string_lossy().into_owned();
    let mut command = Command::new(&args.python);
    command.arg(args.peers.join("splink_isrc.py")).args(["--items", &glob("bench_isrc_items"), "--catalogue", &glob("bench_isrc_catalogue")]);
    command.arg("--out").arg(&out).args(["--threads", "2", "--seed", "42"]);
    eprintln!("splink: linking");
    let report = match run_with_timeout(command, Duration::from_secs(args.peer_timeout))? {
        Ok(r) => r,
        Err(why) => return Ok(Err(why)),
    };
    let name = "bench_isrc_splink_raw";
    let _ = session.context().deregister_table(name);
    session.context().register_parquet(name, out.to_string_lossy().as_ref(), Default::default()).await?;
    let t = args.threshold;
    // Best reading per item, then the same three outcome tables isrc_match writes.
    let best = format!(
        "(SELECT item_id, isrc, match_probability FROM (SELECT split_part(item_id, '#', 1) AS item_id, isrc, match_probability, \
           row_number() OVER (PARTITION BY split_part(item_id, '#', 1) ORDER BY match_weight DESC, isrc) AS k FROM {name}) WHERE k = 1)"
    );
    sql(format!("CREATE OR REPLACE TABLE splink_matches AS SELECT item_id, isrc, match_probability FROM {best} WHERE match_probability >= {t}")).await?;
    // No review band for the peer: an empty table with the columns (a constant-false filter planned
    // to a zero-column empty relation through Ballista, so the filter is on a value).
    sql("CREATE OR REPLACE TABLE splink_review AS SELECT item_id, isrc, match_probability FROM splink_matches WHERE match_probability > 2.0".into()).await?;
    sql(format!("CREATE OR REPLACE TABLE splink_unmatched AS SELECT item_id, isrc AS best_isrc, match_probability AS best_probability FROM {best} WHERE match_probability < {t}")).await?;
    job(session, "isrc_eval", &[("matches", "splink"), ("out", "splink_eval")]).await?;
    Ok(Ok((report, metrics(session, "splink_eval").await?)))
}
