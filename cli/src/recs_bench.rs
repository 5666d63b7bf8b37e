//! `backbeat bench recs`: implicit-feedback ALS on backbeat beside Spark MLlib (`ALS(implicitPrefs=
//! True)`) and Python `implicit`, on the same generated listening data, the same time-based split,
//! the same rank, regularisation, alpha and iterations, and the same 2 cores. Each engine's factors
//! are scored by one evaluator (backbeat's `top_k_dot` and metrics SQL), so quality differences are
//! the models', not the metric code's. Prints a Markdown table for BENCHMARKS.md.
//!
//! The peers run as Python processes (`bench/peers/als_peer.py`) reading the interactions table
//! backbeat trained on, and write their factors as Parquet, which are loaded into the lake.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use backbeat_cluster::local_cluster::LocalCluster;
use backbeat_cluster::session::{BackbeatSession, ClusterTarget};
use backbeat_datasets::datagen::{DatagenConfig, Dataset, generate};
use backbeat_jobs::recs::als::{AlsConfig, train};
use backbeat_jobs::recs::als_solve::AlsParams;
use backbeat_jobs::recs::eval::{metrics_sql, split_by_time};
use backbeat_jobs::recs::recommend::{FactorTables, score_factors};
use clap::Args;

/// Arguments of `backbeat bench recs`.
#[derive(Args)]
pub struct RecsBenchArgs {
    /// datagen scale of the listening data (1: 1k users, 100k plays; 100: 100k users, 10M plays).
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// Lake directory for the data and results [default: ./bench-data/recs-s<scale>].
    #[arg(long)]
    data: Option<PathBuf>,
    /// Engines: backbeat, implicit, spark.
    #[arg(long, value_delimiter = ',', default_values_t = ["backbeat".to_string(), "implicit".to_string(), "spark".to_string()])]
    engines: Vec<String>,
    /// Factors.
    #[arg(long, default_value_t = 64)]
    rank: usize,
    /// L2 regularisation.
    #[arg(long, default_value_t = 0.1)]
    lambda: f64,
    /// backbeat's regularisation: none (implicit's) or count (lambda x interactions, Spark's ALS-WR).
    #[arg(long, default_value = "none")]
    lambda_scaling: String,
    /// Confidence slope, c = 1 + alpha * plays.
    #[arg(long, default_value_t = 1.0)]
    alpha: f64,
    /// Iterations.
    #[arg(long, default_value_t = 10)]
    iterations: usize,
    /// backbeat's conjugate-gradient steps (0 = exact Cholesky solves).
    #[arg(long, default_value_t = 3)]
    cg_steps: usize,
    /// Cores for every engine.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Run backbeat on a scheduler + 2 executor processes instead of embedded.
    #[arg(long)]
    cluster: bool,
    /// Only the most played tracks are scored for recommendations.
    #[arg(long, default_value_t = 20000)]
    pool: usize,
    /// Python interpreter with the peers installed (bench/peers/requirements.txt).
    #[arg(long, default_value = "python3")]
    python: PathBuf,
    /// The peer scripts.
    #[arg(long, default_value = "bench/peers")]
    peers: PathBuf,
}

struct EngineResult {
    engine: String,
    version: String,
    fit_seconds: f64,
    per_iteration: f64,
}

/// Runs the benchmark.
pub async fn run(args: RecsBenchArgs) -> Result<()> {
    let data = args.data.clone().unwrap_or_else(|| PathBuf::from(format!("bench-data/recs-s{}", args.scale)));
    if !data.join("listening_events").is_dir() {
        eprintln!("generating listening data at scale {} into {}", args.scale, data.display());
        std::fs::create_dir_all(&data)?;
        generate(&DatagenConfig { scale: args.scale, seed: 42, out: data.clone(), datasets: vec![Dataset::Tracks, Dataset::Listening], dirty_rate: 0.0 })?;
    }
    let _cluster;
    let target = if args.cluster {
        let started = LocalCluster::start(&std::env::current_exe()?, 2, (args.threads / 2).max(1))?;
        let url = started.url().to_string();
        _cluster = Some(started);
        ClusterTarget::Remote(url)
    } else {
        _cluster = None;
        ClusterTarget::Embedded { concurrency: args.threads }
    };
    let session = BackbeatSession::connect(target, &data).await?;
    let sql = |s: String| {
        let session = &session;
        async move { session.sql(&s).await?.collect().await.with_context(|| s.clone()) }
    };
    sql("CREATE OR REPLACE TABLE bench_recs_events AS SELECT user_id, track_id, played_at FROM listening_events".into()).await?;
    split_by_time(&session, "bench_recs_events", 0.2).await?;

    // backbeat trains first: its index and interaction tables are what the peers read, as plain
    // Parquet. A replaced Delta table keeps its old files until vacuumed, so the table is removed
    // first: the peers must see this run's interactions only.
    match std::fs::remove_dir_all(data.join("bench_als_interactions")) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e).context("cannot remove the old bench_als_interactions"),
        _ => {}
    }
    let config = AlsConfig {
        events: "recs_eval_train".into(),
        user: "user_id".into(),
        item: "track_id".into(),
        weight: String::new(),
        prefix: "bench_als".into(),
        params: AlsParams {
            rank: args.rank,
            lambda: args.lambda,
            alpha: args.alpha,
            cg_steps: args.cg_steps,
            scale_lambda: match args.lambda_scaling.as_str() {
                "none" => false,
                "count" => true,
                other => bail!("--lambda-scaling must be none or count, not '{other}'"),
            },
        },
        iterations: args.iterations,
        seed: 42,
    };
    let clock = Instant::now();
    let outcome = train(&session, &config).await?;
    let total = clock.elapsed().as_secs_f64();
    let sweeps: f64 = outcome.losses.iter().map(|l| l.seconds).sum();
    let (users, items, nnz) = outcome.shape;
    eprintln!("backbeat: {users} users, {items} items, {nnz} interactions; {total:.1} s with indexing, {sweeps:.1} s in sweeps");
    let mut results = vec![];
    let mut models = vec![];
    sql(format!(
        "CREATE OR REPLACE TABLE bench_pool AS SELECT item_idx FROM bench_als_interactions GROUP BY item_idx ORDER BY count(*) DESC, item_idx LIMIT {}",
        args.pool
    ))
    .await?;
    for engine in &args.engines {
        let (factors, result) = match engine.as_str() {
            "backbeat" => (
                FactorTables { index_prefix: "bench_als".into(), user_factors: "bench_als_user_factors".into(), item_factors: "bench_als_item_factors".into() },
                EngineResult { engine: engine.clone(), version: env!("CARGO_PKG_VERSION").into(), fit_seconds: sweeps, per_iteration: sweeps / args.iterations as f64 },
            ),
            "implicit" | "spark" => run_peer(&args, engine, &session, &data).await?,
            other => bail!("unknown engine '{other}' (backbeat, implicit, spark)"),
        };
        score_factors(&session, &factors, "bench_pool", 10, &format!("bench_{engine}_scored")).await?;
        models.push(format!(
            "SELECT '{engine}' AS model, user_id, CAST(row_number() OVER (PARTITION BY user_id ORDER BY score DESC, track_id) AS INT) AS rank, track_id \
             FROM bench_{engine}_scored"
        ));
        results.push(result);
    }
    sql(format!("CREATE OR REPLACE TABLE bench_recs_all AS {}", models.join(" UNION ALL "))).await?;
    let batches = sql(format!(
        "SELECT model, precision, recall, map, ndcg, coverage FROM ({}) ORDER BY model",
        metrics_sql("bench_recs_all", "recs_eval_truth", 10, items as i64)
    ))
    .await?;
    let metrics = arrow::compute::concat_batches(&batches[0].schema(), &batches)?;
    println!("ALS at rank {}, lambda {}, alpha {}, {} iterations; {users} users x {items} items, {nnz} interactions; {} cores\n", args.rank, args.lambda, args.alpha, args.iterations, args.threads);
    println!("| engine | version | fit (s) | s / iteration | precision@10 | recall@10 | MAP@10 | NDCG@10 | coverage |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|");
    for r in &results {
        let row = (0..metrics.num_rows()).find(|i| metrics.column(0).as_any().downcast_ref::<arrow::array::StringArray>().is_some_and(|a| a.value(*i) == r.engine));
        let cell = |c: usize| {
            row.map(|i| format!("{:.4}", metrics.column(c).as_any().downcast_ref::<arrow::array::Float64Array>().map(|a| a.value(i)).unwrap_or(f64::NAN)))
                .unwrap_or_default()
        };
        println!("| {} | {} | {:.2} | {:.3} | {} | {} | {} | {} | {} |", r.engine, r.version, r.fit_seconds, r.per_iteration, cell(1), cell(2), cell(3), cell(4), cell(5));
    }
    Ok(())
}

/// Runs a peer on the interactions table and loads its factors into the lake.
async fn run_peer(args: &RecsBenchArgs, engine: &str, session: &BackbeatSession, data: &Path) -> Result<(FactorTables, EngineResult)> {
    let out = data.join(format!("peer-{engine}"));
    std::fs::create_dir_all(&out)?;
    let train = data.join("bench_als_interactions");
    let script = args.peers.join("als_peer.py");
    eprintln!("{engine}: training");
    let output = Command::new(&args.python)
        .arg(&script)
        .args(["--engine", engine, "--train"])
        .arg(&train)
        .arg("--out")
        .arg(&out)
        .args(["--factors", &args.rank.to_string(), "--regularization", &args.lambda.to_string(), "--alpha", &args.alpha.to_string()])
        .args(["--iterations", &args.iterations.to_string(), "--threads", &args.threads.to_string(), "--seed", "42"])
        .output()
        .with_context(|| format!("cannot run {} {}", args.python.display(), script.display()))?;
    if !output.status.success() {
        bail!("{engine} peer failed:\n{}", String::from_utf8_lossy(&output.stderr));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().rev().find(|l| l.trim_start().starts_with('{')).with_context(|| format!("{engine} peer printed no JSON line:\n{stdout}"))?;
    let report: serde_json::Value = serde_json::from_str(line)?;
    let fit = report["fit_ms"].as_f64().unwrap_or(f64::NAN) / 1000.0;
    let per_iteration = report["iteration_ms"]
        .as_array()
        .filter(|v| !v.is_empty())
        .map(|v| v.iter().filter_map(|x| x.as_f64()).sum::<f64>() / v.len() as f64 / 1000.0)
        .unwrap_or(fit / args.iterations as f64);
    for (side, idx) in [("user", "user_idx"), ("item", "item_idx")] {
        let path = out.join(format!("{side}_factors.parquet"));
        let name = format!("peer_{engine}_{side}_parquet");
        let _ = session.context().deregister_table(name.as_str());
        session.context().register_parquet(name.as_str(), path.to_string_lossy().as_ref(), Default::default()).await?;
        session
            .sql(&format!("CREATE OR REPLACE TABLE bench_{engine}_{side}_factors AS SELECT CAST(idx AS BIGINT) AS {idx}, CAST(factors AS ARRAY<FLOAT>) AS factors FROM {name}"))
            .await?
            .collect()
            .await?;
    }
    let tables = FactorTables { index_prefix: "bench_als".into(), user_factors: format!("bench_{engine}_user_factors"), item_factors: format!("bench_{engine}_item_factors") };
    let version = report["version"].as_str().unwrap_or("?").to_string();
    Ok((tables, EngineResult { engine: engine.to_string(), version, fit_seconds: fit, per_iteration }))
}
