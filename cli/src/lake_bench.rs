//! `backbeat bench lake`: MERGE and DELETE on a Delta table of `--rows` rows in `--files` files,
//! three ways on copies of the same table: backbeat's verbs (only the touched files rewritten),
//! the full rewrite ingest's merge did before them (`INSERT OVERWRITE` of the whole table), and
//! delta-rs's own single-process MERGE (`bench/peers/delta_merge.py`, Python `deltalake`).
//!
//! The change: `--changed` existing rows updated plus `--new` rows inserted, then `--deleted` rows
//! deleted by key. `--spread recent` puts the changed and deleted keys in the newest and oldest 5%
//! of the table (an order table's late updates, and deletes of old rows); `--spread uniform` spreads
//! them over every file, where copy-on-write must rewrite every file whatever the engine.
//! Prints Markdown for BENCHMARKS.md.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use arrow::array::AsArray;
use arrow::datatypes::Int64Type;
use backbeat_cluster::session::{BackbeatSession, ClusterTarget};
use clap::{Args, ValueEnum};

use crate::clv_bench::run_with_timeout;

/// Where the changed and deleted keys fall.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Spread {
    /// Changes in the newest 5% of keys, deletes in the oldest 5%.
    Recent,
    /// Changes and deletes over the whole key range.
    Uniform,
}

/// Arguments of `backbeat bench lake`.
#[derive(Args)]
pub struct LakeBenchArgs {
    /// Rows in the table.
    #[arg(long, default_value_t = 10_000_000)]
    rows: i64,
    /// Data files the table is written as (one per append).
    #[arg(long, default_value_t = 100)]
    files: i64,
    /// Existing rows the MERGE updates.
    #[arg(long, default_value_t = 100_000)]
    changed: i64,
    /// New rows the MERGE inserts.
    #[arg(long, default_value_t = 10_000)]
    new: i64,
    /// Rows the DELETE removes by key.
    #[arg(long, default_value_t = 100_000)]
    deleted: i64,
    /// Where the changed and deleted keys fall.
    #[arg(long, value_enum, default_value_t = Spread::Recent)]
    spread: Spread,
    /// Work directory: the base table and one copy per contestant.
    #[arg(long, default_value = "bench-data/lake")]
    data: PathBuf,
    /// Skip delta-rs.
    #[arg(long)]
    no_peer: bool,
    /// Python interpreter with the peers installed (bench/peers/requirements.txt).
    #[arg(long, default_value = "python3")]
    python: PathBuf,
    /// The peer scripts.
    #[arg(long, default_value = "bench/peers")]
    peers: PathBuf,
}

/// Runs the benchmark.
pub async fn run(args: LakeBenchArgs) -> Result<()> {
    if args.rows % args.files != 0 || args.changed * 20 > args.rows || args.deleted * 20 > args.rows {
        bail!("--rows must be a multiple of --files, and --changed and --deleted at most 5% of --rows");
    }
    let spread = match args.spread {
        Spread::Recent => "recent",
        Spread::Uniform => "uniform",
    };
    let base = args.data.join(format!("base-{}-{}-{spread}", args.rows, args.files));
    if !base.join("big").is_dir() {
        prepare(&args, &base).await.with_context(|| format!("preparing {}", base.display()))?;
    }
    let mut rows = Vec::new();
    let ours = copy(&base, &args.data.join("backbeat"))?;
    let (merge, delete) = contestant(&ours, &[
        "MERGE INTO big USING changes AS s ON big.id = s.id WHEN MATCHED THEN UPDATE SET * WHEN NOT MATCHED THEN INSERT *",
        "DELETE FROM big WHERE id IN (SELECT id FROM dels)",
    ])
    .await?;
    let peak = peak_rss_mb();
    rows.push(format!("| backbeat MERGE / DELETE (touched files only) | {merge:.2} | {delete:.2} | {peak} |"));
    let full = copy(&base, &args.data.join("rewrite"))?;
    let (rmerge, rdelete) = contestant(&full, &[
        "INSERT OVERWRITE big SELECT t.* FROM big AS t WHERE NOT EXISTS (SELECT 1 FROM changes AS s WHERE s.id = t.id) \
         UNION ALL SELECT * FROM changes",
        "INSERT OVERWRITE big SELECT t.* FROM big AS t WHERE NOT EXISTS (SELECT 1 FROM dels AS d WHERE d.id = t.id)",
    ])
    .await?;
    rows.push(format!("| backbeat full rewrite (ingest merge before this issue) | {rmerge:.2} | {rdelete:.2} | {} |", peak_rss_mb()));
    if !args.no_peer {
        let theirs = copy(&base, &args.data.join("delta-rs"))?;
        let mut command = Command::new(&args.python);
        command.arg(args.peers.join("delta_merge.py")).arg("--lake").arg(&theirs);
        match run_with_timeout(command, Duration::from_secs(3600))? {
            Ok(report) => rows.push(format!(
                "| delta-rs {} (Python, one process) | {:.2} | {:.2} | {:.0} |",
                report["version"].as_str().unwrap_or("?"),
                report["merge_s"].as_f64().unwrap_or(f64::NAN),
                report["delete_s"].as_f64().unwrap_or(f64::NAN),
                report["peak_rss_mb"].as_f64().unwrap_or(f64::NAN)
            )),
            Err(e) => rows.push(format!("| delta-rs (Python, one process) | {e} | | |")),
        }
    }
    println!(
        "\n## Lake operations: {} rows in {} files, MERGE of {} changed + {} new rows, DELETE of {} rows by key ({spread} keys)\n",
        args.rows, args.files, args.changed, args.new, args.deleted
    );
    println!("| engine | MERGE (s) | DELETE (s) | peak RSS (MB) |\n|---|---|---|---|");
    for row in rows {
        println!("{row}");
    }
    println!(
        "\nbackbeat embedded, 2 task slots. MERGE speed-up over the full rewrite: {:.1}x; DELETE: {:.1}x.",
        rmerge / merge,
        rdelete / delete
    );
    Ok(())
}

/// Writes the base table (one file per append), the change set and the delete keys.
async fn prepare(args: &LakeBenchArgs, base: &Path) -> Result<()> {
    std::fs::create_dir_all(base)?;
    let session = BackbeatSession::connect(ClusterTarget::Embedded { concurrency: 2 }, base).await?;
    // One task per append, so each append is one file.
    session.sql("SET datafusion.execution.target_partitions = 1").await?.collect().await?;
    let per = args.rows / args.files;
    let progress = indicatif::ProgressBar::new(args.files as u64).with_message("writing the base table");
    for i in 0..args.files {
        let select = format!(
            "SELECT value AS id, value % 1000 AS customer, concat('order-', CAST(value AS VARCHAR)) AS label, \
             CAST(value % 9973 AS DOUBLE) * 0.25 AS amount FROM generate_series({}, {})",
            i * per,
            (i + 1) * per - 1
        );
        let sql = if i == 0 { format!("CREATE TABLE big AS {select}") } else { format!("INSERT INTO big {select}") };
        session.sql(&sql).await?.collect().await?;
        progress.inc(1);
    }
    progress.finish();
    let n = args.rows;
    let window = n / 20;
    let (changed, deleted) = match args.spread {
        Spread::Recent => (
            format!("generate_series({}, {}, {})", n - window, n - 1, window / args.changed),
            format!("generate_series(1, {}, {})", window - 1, window / args.deleted),
        ),
        Spread::Uniform => (
            format!("generate_series(0, {}, {})", n - 1, n / args.changed),
            format!("generate_series(1, {}, {})", n - 1, n / args.deleted),
        ),
    };
    session
        .sql(&format!(
            "CREATE TABLE changes AS SELECT value AS id, value % 1000 AS customer, 'changed' AS label, -1.0 AS amount FROM {changed} \
             UNION ALL SELECT value AS id, value % 1000, 'new', 1.0 FROM generate_series({n}, {})",
            n + args.new - 1
        ))
        .await?
        .collect()
        .await?;
    session.sql(&format!("CREATE TABLE dels AS SELECT value AS id FROM {deleted}")).await?.collect().await?;
    Ok(())
}

/// Copies the base lake for one contestant.
fn copy(base: &Path, to: &Path) -> Result<PathBuf> {
    if to.exists() {
        std::fs::remove_dir_all(to)?;
    }
    let status = Command::new("cp").arg("-r").arg(base).arg(to).status()?;
    if !status.success() {
        bail!("cp -r {} {} failed", base.display(), to.display());
    }
    Ok(to.to_path_buf())
}

/// Runs the two statements on `lake` and returns their seconds; checks the row count after.
async fn contestant(lake: &Path, statements: &[&str; 2]) -> Result<(f64, f64)> {
    let session = BackbeatSession::connect(ClusterTarget::Embedded { concurrency: 2 }, lake).await?;
    let before = count(&session).await?;
    let mut seconds = [0.0; 2];
    for (s, sql) in seconds.iter_mut().zip(statements) {
        let clock = Instant::now();
        session.sql(sql).await?.collect().await.with_context(|| sql.to_string())?;
        *s = clock.elapsed().as_secs_f64();
    }
    let after = count(&session).await?;
    tracing::info!(before, after, "rows");
    eprintln!("{}: {before} rows -> {after}", lake.display());
    Ok((seconds[0], seconds[1]))
}

async fn count(session: &BackbeatSession) -> Result<i64> {
    let batches = session.sql("SELECT count(*) FROM big").await?.collect().await?;
    Ok(batches[0].column(0).as_primitive::<Int64Type>().value(0))
}

/// This process's peak resident memory so far (MB), from /proc.
fn peak_rss_mb() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).map(|l| l.to_string()))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|kb| kb.parse::<f64>().ok()))
        .map_or("?".into(), |kb| format!("{:.0}", kb / 1024.0))
}
