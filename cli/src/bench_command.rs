//! `backbeat bench tpch`: the 22 TPC-H queries on backbeat embedded, a backbeat cluster (scheduler +
//! 2 executor processes), the same two over Delta copies of the tables, single-process DataFusion,
//! and the peers DuckDB and Spark `local[N]` (Python processes, `bench/peers/`). Engines alternate
//! per query, each query runs several times and the median counts, and every engine's answers are
//! checked to agree. Prints Markdown tables for BENCHMARKS.md: times per query, then the ratios
//! the project's goals are stated in.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use arrow::record_batch::RecordBatch;
use backbeat_cluster::local_cluster::LocalCluster;
use backbeat_cluster::result_compare::{answers_agree, canonical_rows};
use backbeat_cluster::session::{BackbeatSession, ClusterTarget};
use backbeat_cluster::sql_script::{returns_rows, split_statements};
use backbeat_cluster::tpch_data::{TPCH_TABLES, write_tpch_delta, write_tpch_parquet};
use clap::{Args, ValueEnum};
use datafusion::prelude::{SessionConfig, SessionContext};
use indicatif::{ProgressBar, ProgressStyle};

/// Arguments of `backbeat bench tpch`.
#[derive(Args)]
pub struct TpchBenchArgs {
    /// TPC-H scale factor.
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// Where the Parquet tables are (generated there if missing) [default: ./bench-data/tpch-sf<scale>].
    #[arg(long)]
    data: Option<PathBuf>,
    /// Where the Delta copies are, for the `*-delta` engines (made from --data if missing)
    /// [default: the --data directory with `-delta` appended].
    #[arg(long)]
    delta_data: Option<PathBuf>,
    /// Directory of q1.sql .. q22.sql.
    #[arg(long, default_value = "../shared/tpch-queries")]
    queries: PathBuf,
    /// Run only these queries (e.g. `--only 10,18`), to profile; totals then cover just these.
    #[arg(long, value_delimiter = ',')]
    only: Vec<usize>,
    /// Timed runs per query and engine; the median is reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Tasks (threads) each engine may run at once; the cluster splits them over its two executors.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Engines to run (duckdb and spark need `pip install -r bench/peers/requirements.txt` into the
    /// interpreter given as --python, and spark a Java 17 runtime).
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Engine::Embedded, Engine::Cluster, Engine::Duckdb, Engine::Spark])]
    engines: Vec<Engine>,
    /// Significant digits answers must agree to. DataFusion returns decimal averages truncated to
    /// scale 6 (avg_disc = 0.050144) where DuckDB keeps more digits (0.0501446): at 6 digits they
    /// differ, so the default is 4, as TPC-H validation tolerates rounding of averages.
    #[arg(long, default_value_t = 4)]
    digits: usize,
    /// A setting for the backbeat and DataFusion sessions, as `key=value` (repeatable), e.g.
    /// `--set ballista.shuffle.compression.codec=none`: the way to compare tuning choices in one run.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    settings: Vec<String>,
    /// Python interpreter with the peer engines installed (bench/peers/requirements.txt).
    #[arg(long, default_value = "python3")]
    python: PathBuf,
    /// The peer engine scripts.
    #[arg(long, default_value = "bench/peers")]
    peers: PathBuf,
}

/// An engine under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub enum Engine {
    /// DataFusion in this process, no Ballista.
    Datafusion,
    /// backbeat's in-process cluster.
    Embedded,
    /// backbeat scheduler + 2 executors as separate processes on loopback.
    Cluster,
    /// DuckDB (PyPI) over the same Parquet files, in a Python peer process.
    Duckdb,
    /// Spark `local[threads]` (pyspark from PyPI) over the same Parquet files, in a Python peer.
    Spark,
    /// backbeat embedded over Delta copies of the tables.
    EmbeddedDelta,
    /// backbeat cluster over Delta copies of the tables.
    ClusterDelta,
}

impl Engine {
    /// The column heading: what ran, with the peer's own version string when it reported one.
    fn label(self, version: Option<&str>) -> String {
        let name = match self {
            Engine::Datafusion => "DataFusion 1-process",
            Engine::Embedded => "backbeat embedded",
            Engine::Cluster => "backbeat cluster",
            Engine::Duckdb => "DuckDB",
            Engine::Spark => "Spark",
            Engine::EmbeddedDelta => "embedded, Delta",
            Engine::ClusterDelta => "cluster, Delta",
        };
        match version {
            Some(v) => v.to_string(),
            None => name.to_string(),
        }
    }
}

/// The ratios the goals are stated in (numerator / denominator), shown per query when both ran.
const RATIOS: [(Engine, Engine); 5] = [
    (Engine::Embedded, Engine::Duckdb),
    (Engine::Cluster, Engine::Embedded),
    (Engine::Spark, Engine::Cluster),
    (Engine::EmbeddedDelta, Engine::Embedded),
    (Engine::ClusterDelta, Engine::Cluster),
];

enum Runner {
    DataFusion(SessionContext),
    Backbeat(BackbeatSession),
    Peer(PeerProcess),
}

impl Runner {
    /// Applies `key=value` settings with SQL `SET` (Ballista sends them along with every job).
    async fn apply_settings(&self, settings: &[String]) -> Result<()> {
        for setting in settings {
            let (key, value) = setting.split_once('=').with_context(|| format!("--set {setting}: expected KEY=VALUE"))?;
            let sql = format!("SET {} = '{}'", key.trim(), value.trim().replace('\'', "''"));
            match self {
                Runner::DataFusion(ctx) if !key.trim().starts_with("ballista.") => {
                    ctx.sql(&sql).await?.collect().await?;
                }
                Runner::Backbeat(session) => {
                    session.sql(&sql).await?.collect().await?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Runs query `q` (all its statements) and returns the elapsed time and its canonical answer.
    async fn run_query(&mut self, q: usize, statements: &[String], digits: usize) -> Result<(Duration, Vec<String>)> {
        if let Runner::Peer(peer) = self {
            return peer.run_query(q);
        }
        let started = Instant::now();
        let mut answer = Vec::new();
        for sql in statements {
            let batches: Vec<RecordBatch> = match self {
                Runner::DataFusion(ctx) => ctx.sql(sql).await?.collect().await?,
                Runner::Backbeat(session) => session.sql(sql).await?.collect().await?,
                Runner::Peer(_) => unreachable!("handled above"),
            };
            if returns_rows(sql) {
                answer = batches;
            }
        }
        Ok((started.elapsed(), canonical_rows(&answer, digits)))
    }
}


/// A peer engine in another process: one query number per line in, one JSON line out.
struct PeerProcess {
    version: String,
    child: std::process::Child,
    input: std::process::ChildStdin,
    output: std::io::BufReader<std::process::ChildStdout>,
}

impl PeerProcess {
    fn start(python: &std::path::Path, script: &std::path::Path, data: &std::path::Path, queries: &std::path::Path, threads: usize, digits: usize) -> Result<Self> {
        use std::io::BufRead;
        use std::process::{Command, Stdio};
        let mut child = Command::new(python)
            .arg(script)
            .args(["--data", &data.to_string_lossy(), "--queries", &queries.to_string_lossy(), "--threads", &threads.to_string(), "--digits", &digits.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {} {}", python.display(), script.display()))?;
        let input = child.stdin.take().context("peer stdin")?;
        let mut output = std::io::BufReader::new(child.stdout.take().context("peer stdout")?);
        let mut ready = String::new();
        output.read_line(&mut ready)?;
        let version = serde_json::from_str::<serde_json::Value>(&ready)
            .ok()
            .and_then(|v| v["ready"].as_str().map(str::to_owned))
            .with_context(|| format!("{} did not start (is its engine installed? pip install -r bench/peers/requirements.txt)", script.display()))?;
        Ok(Self { version, child, input, output })
    }

    fn run_query(&mut self, q: usize) -> Result<(Duration, Vec<String>)> {
        use std::io::{BufRead, Write};
        writeln!(self.input, "{q}")?;
        self.input.flush()?;
        let mut line = String::new();
        self.output.read_line(&mut line)?;
        let reply: serde_json::Value = serde_json::from_str(&line).with_context(|| format!("{} exited on q{q}", self.version))?;
        if let Some(error) = reply["error"].as_str() {
            bail!("{}: {error}", self.version);
        }
        let ms = reply["ms"].as_f64().context("peer reply without ms")?;
        let rows = reply["rows"].as_array().context("peer reply without rows")?.iter().filter_map(|r| r.as_str().map(str::to_owned)).collect();
        Ok((Duration::from_secs_f64(ms / 1000.0), rows))
    }
}

impl Drop for PeerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the benchmark and prints the tables.
pub async fn run(args: TpchBenchArgs) -> Result<()> {
    let data = args.data.clone().unwrap_or_else(|| PathBuf::from(format!("bench-data/tpch-sf{}", args.scale)));
    if !data.join("lineitem").is_dir() {
        eprintln!("generating TPC-H SF{} into {} ...", args.scale, data.display());
        let started = Instant::now();
        let (scale, dir) = (args.scale, data.clone());
        tokio::task::spawn_blocking(move || write_tpch_parquet(scale, &dir, 4)).await??;
        eprintln!("generated in {:.1?}", started.elapsed());
    }
    let delta_data = args.delta_data.clone().unwrap_or_else(|| PathBuf::from(format!("{}-delta", data.display())));
    let wants_delta = args.engines.iter().any(|e| matches!(e, Engine::EmbeddedDelta | Engine::ClusterDelta));
    if wants_delta && !delta_data.join("lineitem").join("_delta_log").is_dir() {
        eprintln!("copying {} into Delta tables under {} ...", data.display(), delta_data.display());
        let started = Instant::now();
        write_tpch_delta(&data, &delta_data).await?;
        eprintln!("copied in {:.1?}", started.elapsed());
    }
    let queries: Vec<usize> = if args.only.is_empty() { (1..=22).collect() } else { args.only.clone() };
    if let Some(bad) = queries.iter().find(|q| !(1..=22).contains(*q)) {
        bail!("--only {bad}: TPC-H queries are numbered 1 to 22");
    }
    let scripts: Vec<(usize, Vec<String>)> = queries
        .iter()
        .map(|&q| {
            let path = args.queries.join(format!("q{q}.sql"));
            std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {} (use --queries DIR)", path.display()))
                .map(|s| (q, split_statements(&s)))
        })
        .collect::<Result<_>>()?;

    // One multi-process cluster serves both cluster engines; its processes die with it.
    let mut cluster: Option<LocalCluster> = None;
    let mut runners = Vec::new();
    for &engine in &args.engines {
        eprintln!("starting {engine:?} ...");
        let runner = match engine {
            Engine::Datafusion => {
                let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(args.threads));
                for table in TPCH_TABLES {
                    ctx.register_parquet(table, data.join(table).to_str().context("non-UTF-8 path")?, Default::default())
                        .await?;
                }
                Runner::DataFusion(ctx)
            }
            Engine::Embedded | Engine::EmbeddedDelta => {
                let lake = if engine == Engine::Embedded { &data } else { &delta_data };
                Runner::Backbeat(BackbeatSession::connect(ClusterTarget::Embedded { concurrency: args.threads }, lake).await?)
            }
            Engine::Cluster | Engine::ClusterDelta => {
                let url = match &cluster {
                    Some(c) => c.url().to_string(),
                    None => {
                        let binary = std::env::current_exe()?;
                        let started = LocalCluster::start(&binary, 2, (args.threads / 2).max(1))?;
                        let url = started.url().to_string();
                        cluster = Some(started);
                        url
                    }
                };
                let lake = if engine == Engine::Cluster { &data } else { &delta_data };
                Runner::Backbeat(BackbeatSession::connect(ClusterTarget::Remote(url), lake).await?)
            }
            Engine::Duckdb | Engine::Spark => {
                let script = if engine == Engine::Duckdb { "duckdb_tpch.py" } else { "spark_tpch.py" };
                Runner::Peer(PeerProcess::start(
                    &args.python,
                    &args.peers.join(script),
                    &std::path::absolute(&data)?,
                    &std::path::absolute(&args.queries)?,
                    args.threads,
                    args.digits,
                )?)
            }
        };
        runner.apply_settings(&args.settings).await.with_context(|| format!("settings for {engine:?}"))?;
        runners.push((engine, runner));
    }

    let bar = ProgressBar::new((queries.len() * args.runs * runners.len()) as u64);
    bar.set_style(ProgressStyle::with_template("{bar:40} {pos}/{len} {msg} [{elapsed}]").expect("static template"));
    let mut times: BTreeMap<(usize, Engine), Vec<Duration>> = BTreeMap::new();
    let mut answers: BTreeMap<(usize, Engine), Vec<String>> = BTreeMap::new();
    for (q, statements) in &scripts {
        let q = q - 1;
        for run in 0..args.runs {
            // Engines alternate within each run so none gets a warmer cache by going first always.
            for (engine, runner) in runners.iter_mut() {
                bar.set_message(format!("q{} {:?}", q + 1, engine));
                let (elapsed, answer) = runner.run_query(q + 1, statements, args.digits).await.with_context(|| format!("q{} on {engine:?}", q + 1))?;
                times.entry((q + 1, *engine)).or_default().push(elapsed);
                if run == 0 {
                    answers.insert((q + 1, *engine), answer);
                }
                bar.inc(1);
            }
        }
    }
    bar.finish_and_clear();

    let engines: Vec<Engine> = runners.iter().map(|(e, _)| *e).collect();
    let labels: Vec<String> = runners
        .iter()
        .map(|(e, r)| e.label(match r {
            Runner::Peer(p) => Some(p.version.as_str()),
            _ => None,
        }))
        .collect();
    let medians: BTreeMap<(usize, Engine), f64> =
        times.iter().map(|(k, v)| (*k, median(v).as_secs_f64() * 1000.0)).collect();
    let total = |e: Engine| queries.iter().map(|q| medians[&(*q, e)]).sum::<f64>();
    let ratios: Vec<(Engine, Engine)> =
        RATIOS.into_iter().filter(|(a, b)| engines.contains(a) && engines.contains(b)).collect();
    let label_of = |e: Engine| labels[engines.iter().position(|x| *x == e).expect("engine ran")].clone();

    println!("| query | {} |", labels.iter().map(|l| format!("{l} (ms)")).collect::<Vec<_>>().join(" | "));
    println!("|---|{}", "---:|".repeat(engines.len()));
    let mut disagreements = Vec::new();
    for &q in &queries {
        let cells: Vec<String> = engines.iter().map(|e| format!("{:.0}", medians[&(q, *e)])).collect();
        println!("| q{q} | {} |", cells.join(" | "));
        for engine in &engines[1..] {
            let (theirs, ours) = (&answers[&(q, *engine)], &answers[&(q, engines[0])]);
            if !answers_agree(theirs, ours, args.digits) {
                let first = theirs.iter().zip(ours).find(|(a, b)| a != b);
                disagreements.push(match first {
                    Some((a, b)) => format!("q{q}: {engine:?} returned [{a}] where {:?} returned [{b}]", engines[0]),
                    None => format!("q{q}: {engine:?} returned {} rows, {:?} {}", theirs.len(), engines[0], ours.len()),
                });
            }
        }
    }
    println!("| **total** | {} |", engines.iter().map(|e| format!("**{:.0}**", total(*e))).collect::<Vec<_>>().join(" | "));
    if !ratios.is_empty() {
        println!();
        println!("| query | {} |", ratios.iter().map(|(a, b)| format!("{} / {}", label_of(*a), label_of(*b))).collect::<Vec<_>>().join(" | "));
        println!("|---|{}", "---:|".repeat(ratios.len()));
        for &q in &queries {
            let cells: Vec<String> = ratios.iter().map(|(a, b)| format!("{:.2}", medians[&(q, *a)] / medians[&(q, *b)])).collect();
            println!("| q{q} | {} |", cells.join(" | "));
        }
        println!("| **total** | {} |", ratios.iter().map(|(a, b)| format!("**{:.2}**", total(*a) / total(*b))).collect::<Vec<_>>().join(" | "));
    }
    println!();
    if !disagreements.is_empty() {
        bail!("answers disagree: {}", disagreements.join("; "));
    }
    println!("All engines agree on all {} queries (row counts, and values to {} significant digits).", queries.len(), args.digits);
    Ok(())
}

fn median(samples: &[Duration]) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    sorted[sorted.len() / 2]
}
