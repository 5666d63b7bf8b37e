//! `backbeat bench tpch`: the 22 TPC-H queries on single-process DataFusion, backbeat embedded and
//! a backbeat cluster (scheduler + 2 executor processes), engines alternating per query, median of
//! several runs, answers checked to agree. Prints a Markdown table for BENCHMARKS.md.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use arrow::record_batch::RecordBatch;
use backbeat_cluster::local_cluster::LocalCluster;
use backbeat_cluster::result_compare::canonical_rows;
use backbeat_cluster::session::{BackbeatSession, ClusterTarget};
use backbeat_cluster::sql_script::{returns_rows, split_statements};
use backbeat_cluster::tpch_data::{TPCH_TABLES, write_tpch_parquet};
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
    /// Directory of q1.sql .. q22.sql.
    #[arg(long, default_value = "../shared/tpch-queries")]
    queries: PathBuf,
    /// Timed runs per query and engine; the median is reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Tasks (threads) each engine may run at once; the cluster splits them over its two executors.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Engines to run (duckdb needs `pip install -r bench/peers/requirements.txt` for --python).
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Engine::Datafusion, Engine::Embedded, Engine::Cluster])]
    engines: Vec<Engine>,
    /// Significant digits answers must agree to. DataFusion returns decimal averages truncated to
    /// scale 6 (avg_disc = 0.050144) where DuckDB keeps more digits (0.0501446): at 6 digits they
    /// differ, so the default is 4, as TPC-H validation tolerates rounding of averages.
    #[arg(long, default_value_t = 4)]
    digits: usize,
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
}

enum Runner {
    DataFusion(SessionContext),
    Backbeat(BackbeatSession),
    Peer(PeerProcess),
}

impl Runner {
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
        if !ready.contains("ready") {
            bail!("{} did not start (is its engine installed? pip install -r bench/peers/requirements.txt)", script.display());
        }
        Ok(Self { child, input, output })
    }

    fn run_query(&mut self, q: usize) -> Result<(Duration, Vec<String>)> {
        use std::io::{BufRead, Write};
        writeln!(self.input, "{q}")?;
        self.input.flush()?;
        let mut line = String::new();
        self.output.read_line(&mut line)?;
        let reply: serde_json::Value = serde_json::from_str(&line).with_context(|| format!("peer failed on q{q}"))?;
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

/// Runs the benchmark and prints the table.
pub async fn run(args: TpchBenchArgs) -> Result<()> {
    let data = args.data.clone().unwrap_or_else(|| PathBuf::from(format!("bench-data/tpch-sf{}", args.scale)));
    if !data.join("lineitem").is_dir() {
        eprintln!("generating TPC-H SF{} into {} ...", args.scale, data.display());
        let started = Instant::now();
        let (scale, dir) = (args.scale, data.clone());
        tokio::task::spawn_blocking(move || write_tpch_parquet(scale, &dir, 4)).await??;
        eprintln!("generated in {:.1?}", started.elapsed());
    }
    let scripts: Vec<Vec<String>> = (1..=22)
        .map(|q| {
            let path = args.queries.join(format!("q{q}.sql"));
            std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {} (use --queries DIR)", path.display()))
                .map(|s| split_statements(&s))
        })
        .collect::<Result<_>>()?;

    // Keep the cluster alive for the whole run; its processes are killed when it is dropped.
    let mut _cluster = None;
    let mut runners = Vec::new();
    for &engine in &args.engines {
        let runner = match engine {
            Engine::Datafusion => {
                let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(args.threads));
                for table in TPCH_TABLES {
                    ctx.register_parquet(table, data.join(table).to_str().context("non-UTF-8 path")?, Default::default())
                        .await?;
                }
                Runner::DataFusion(ctx)
            }
            Engine::Embedded => Runner::Backbeat(
                BackbeatSession::connect(ClusterTarget::Embedded { concurrency: args.threads }, &data).await?,
            ),
            Engine::Cluster => {
                let binary = std::env::current_exe()?;
                let cluster = LocalCluster::start(&binary, 2, (args.threads / 2).max(1))?;
                let session = BackbeatSession::connect(ClusterTarget::Remote(cluster.url().to_string()), &data).await?;
                _cluster = Some(cluster);
                Runner::Backbeat(session)
            }
            Engine::Duckdb => Runner::Peer(PeerProcess::start(
                &args.python,
                &args.peers.join("duckdb_tpch.py"),
                &std::path::absolute(&data)?,
                &std::path::absolute(&args.queries)?,
                args.threads,
                args.digits,
            )?),
        };
        runners.push((engine, runner));
    }

    let bar = ProgressBar::new((22 * args.runs * runners.len()) as u64);
    bar.set_style(ProgressStyle::with_template("{bar:40} {pos}/{len} {msg} [{elapsed}]").expect("static template"));
    let mut times: BTreeMap<(usize, Engine), Vec<Duration>> = BTreeMap::new();
    let mut answers: BTreeMap<(usize, Engine), Vec<String>> = BTreeMap::new();
    for (q, statements) in scripts.iter().enumerate() {
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
    let mut disagreements = Vec::new();
    println!("| query | {} |", engines.iter().map(|e| format!("{e:?} (ms)")).collect::<Vec<_>>().join(" | "));
    println!("|---|{}", "---:|".repeat(engines.len()));
    let mut totals = vec![Duration::ZERO; engines.len()];
    for q in 1..=22 {
        let mut cells = Vec::new();
        for (i, engine) in engines.iter().enumerate() {
            let median = median(&times[&(q, *engine)]);
            totals[i] += median;
            cells.push(format!("{:.0}", median.as_secs_f64() * 1000.0));
            if answers[&(q, *engine)] != answers[&(q, engines[0])] {
                disagreements.push(format!("q{q}: {engine:?} differs from {:?}", engines[0]));
            }
        }
        println!("| q{q} | {} |", cells.join(" | "));
    }
    println!(
        "| **total** | {} |",
        totals.iter().map(|t| format!("**{:.0}**", t.as_secs_f64() * 1000.0)).collect::<Vec<_>>().join(" | ")
    );
    println!();
    for (i, a) in engines.iter().enumerate() {
        for (j, b) in engines.iter().enumerate().skip(i + 1) {
            println!("{b:?} / {a:?} = {:.2}", totals[j].as_secs_f64() / totals[i].as_secs_f64());
        }
    }
    if !disagreements.is_empty() {
        bail!("answers disagree: {}", disagreements.join("; "));
    }
    println!("answers agree across engines (row counts and values to {} significant digits)", args.digits);
    Ok(())
}

fn median(samples: &[Duration]) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    sorted[sorted.len() / 2]
}
