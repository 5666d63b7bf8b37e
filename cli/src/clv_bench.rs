//! `backbeat bench clv`: BG/NBD + Gamma-Gamma on backbeat beside Python `lifetimes` 0.11.3
//! (`bench/peers/clv_peer.py`), on the CDNOW sample of the paper and on generated orders at the
//! customer counts given. Both start from the same transactions (the peer reads a CSV backbeat
//! writes from the same lake table); each reports its summary, fit and predict times; the
//! parameters, log-likelihoods and every customer's predictions are compared. Prints Markdown for
//! BENCHMARKS.md.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use arrow::array::AsArray;
use arrow::datatypes::Float64Type;
use backbeat_cluster::local_cluster::LocalCluster;
use backbeat_cluster::session::{BackbeatSession, ClusterTarget};
use backbeat_datasets::datagen::{DatagenConfig, Dataset, generate};
use backbeat_jobs::job_catalogue::find;
use backbeat_jobs::job_runner::run_job;
use clap::Args;
use futures::StreamExt;

/// Arguments of `backbeat bench clv`.
#[derive(Args)]
pub struct ClvBenchArgs {
    /// Generated-orders runs, by number of customers (datagen's orders at scale customers/2,500).
    #[arg(long, value_delimiter = ',', default_values_t = [10_000u64, 100_000, 1_000_000])]
    customers: Vec<u64>,
    /// Work directory: one lake per dataset, the peer's CSVs and outputs.
    #[arg(long, default_value = "bench-data/clv")]
    data: PathBuf,
    /// The CDNOW sample (skipped if missing).
    #[arg(long, default_value = "datasets/cdnow/CDNOW_sample.txt")]
    cdnow: PathBuf,
    /// Run backbeat on a scheduler + 2 executor processes instead of embedded.
    #[arg(long)]
    cluster: bool,
    /// Give up on the peer after this many seconds (lifetimes runs out of memory near 1M customers).
    #[arg(long, default_value_t = 1800)]
    peer_timeout: u64,
    /// Skip the peer above this many customers.
    #[arg(long, default_value_t = 1_000_000)]
    peer_max_customers: u64,
    /// Python interpreter with the peers installed (bench/peers/requirements.txt).
    #[arg(long, default_value = "python3")]
    python: PathBuf,
    /// The peer scripts.
    #[arg(long, default_value = "bench/peers")]
    peers: PathBuf,
}

#[derive(Default)]
struct Timings {
    summary: f64,
    fit: f64,
    predict: f64,
}

struct Row {
    dataset: String,
    customers: i64,
    orders: i64,
    ours: Timings,
    evaluations: String,
    peer: Option<Timings>,
    peer_note: String,
    params: String,
    agreement: String,
}

/// Runs the benchmark.
pub async fn run(args: ClvBenchArgs) -> Result<()> {
    std::fs::create_dir_all(&args.data)?;
    let cluster = if args.cluster { Some(LocalCluster::start(&std::env::current_exe()?, 2, 1)?) } else { None };
    let mut rows = Vec::new();
    if args.cdnow.exists() {
        let lake = args.data.join("cdnow");
        std::fs::create_dir_all(&lake)?;
        let session = connect(&cluster, &lake).await?;
        job(&session, "cdnow_orders", &[("purchases", &args.cdnow.canonicalize()?.to_string_lossy())]).await?;
        rows.push(bench_one(&args, &session, &lake, "CDNOW sample (days/7, paper)", "cdnow_orders", "order_date", "1997-09-30", "7", 0).await?);
    }
    for &n in &args.customers {
        let lake = args.data.join(format!("orders-{n}"));
        std::fs::create_dir_all(&lake)?;
        let session = connect(&cluster, &lake).await?;
        if session.lake().table_format("order_totals").await?.is_none() {
            eprintln!("generating orders for {n} customers");
            generate(&DatagenConfig { scale: n as f64 / 2_500.0, seed: 42, out: lake.clone(), datasets: vec![Dataset::Orders], dirty_rate: 0.0 })?;
            let dir = lake.join("sources/orders").canonicalize()?;
            session
                .sql(&format!(
                    "CREATE EXTERNAL TABLE bench_src_orders (order_id BIGINT NOT NULL, customer_id BIGINT NOT NULL, order_ts TIMESTAMP NOT NULL) \
                     STORED AS CSV LOCATION '{}' OPTIONS ('format.has_header' 'true')",
                    dir.join("orders.csv").display()
                ))
                .await?;
            session
                .sql(&format!(
                    "CREATE EXTERNAL TABLE bench_src_details (order_id BIGINT NOT NULL, line_no INT, product_id BIGINT NOT NULL, price DOUBLE NOT NULL, \
                     quantity INT NOT NULL, tax_rate DOUBLE, shipping_rate DOUBLE) STORED AS CSV LOCATION '{}' OPTIONS ('format.has_header' 'true')",
                    dir.join("order_details.csv").display()
                ))
                .await?;
            job(&session, "order_totals", &[("orders", "bench_src_orders"), ("details", "bench_src_details")]).await?;
        }
        let end = scalar_text(&session, "SELECT CAST(max(CAST(order_ts AS DATE)) AS VARCHAR) FROM order_totals").await?;
        rows.push(bench_one(&args, &session, &lake, &format!("generated, {n} customers (days)"), "order_totals", "order_ts", &end, "1", n).await?);
    }
    print_table(&rows);
    Ok(())
}

async fn connect(cluster: &Option<LocalCluster>, lake: &Path) -> Result<BackbeatSession> {
    let target = match cluster {
        Some(c) => ClusterTarget::Remote(c.url().to_string()),
        None => ClusterTarget::Embedded { concurrency: 2 },
    };
    BackbeatSession::connect(target, lake).await
}

async fn job(session: &BackbeatSession, name: &str, params: &[(&str, &str)]) -> Result<f64> {
    let job = find(name)?;
    let params: Vec<(String, String)> = params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let clock = Instant::now();
    run_job(session, &job, &params).await.with_context(|| format!("job {name}"))?;
    Ok(clock.elapsed().as_secs_f64())
}

async fn scalar_text(session: &BackbeatSession, sql: &str) -> Result<String> {
    let batches = session.sql(sql).await?.collect().await?;
    let b = batches.iter().find(|b| b.num_rows() > 0).with_context(|| format!("no row from {sql}"))?;
    let c = arrow::compute::cast(b.column(0), &arrow::datatypes::DataType::Utf8)?;
    Ok(c.as_string::<i32>().value(0).to_string())
}

async fn scalar_f64(session: &BackbeatSession, sql: &str) -> Result<f64> {
    let batches = session.sql(sql).await?.collect().await?;
    let b = batches.iter().find(|b| b.num_rows() > 0).with_context(|| format!("no row from {sql}"))?;
    let c = arrow::compute::cast(b.column(0), &arrow::datatypes::DataType::Float64)?;
    Ok(c.as_primitive::<Float64Type>().value(0))
}

#[allow(clippy::too_many_arguments)]
async fn bench_one(args: &ClvBenchArgs, session: &BackbeatSession, lake: &Path, dataset: &str, table: &str, time_col: &str, end: &str, multiplier: &str, n: u64) -> Result<Row> {
    eprintln!("{dataset}: backbeat");
    let mut ours = Timings::default();
    ours.summary = job(session, "customer_summary", &[("table", table), ("time_col", time_col), ("calibration_end", end), ("multiplier", multiplier)]).await?;
    ours.fit = job(session, "clv_fit", &[]).await?;
    ours.predict = job(session, "clv_predict", &[("horizon_days", "7"), ("window_days", "7")]).await?;
    let customers = scalar_f64(session, "SELECT count(*) FROM customer_summary").await? as i64;
    let orders = scalar_f64(session, &format!("SELECT count(*) FROM {table}")).await? as i64;
    // The latest fit's id first, then matched as a literal (see `predict::load_models` for why).
    let latest = scalar_text(session, "SELECT model_id FROM clv_model ORDER BY fitted_at DESC LIMIT 1").await?;
    let model = format!("FROM clv_model WHERE model_id = '{latest}'");
    let evaluations = scalar_text(
        session,
        &format!("SELECT string_agg(model || ' ' || CAST(evaluations AS VARCHAR) || ' evaluations, ' || CAST(iterations AS VARCHAR) || ' iterations', '; ') {model}"),
    )
    .await?;
    let mut params = Vec::new();
    for (m, cols) in [("bgnbd", ["r", "alpha", "a", "b"].as_slice()), ("gamma_gamma", ["p", "q", "v"].as_slice())] {
        let mut shown = Vec::new();
        for c in cols {
            shown.push(format!("{c}={:.6}", scalar_f64(session, &format!("SELECT {c} {model} AND model = '{m}'")).await.unwrap_or(f64::NAN)));
        }
        params.push(shown.join(" "));
    }
    let ll = scalar_f64(session, &format!("SELECT log_likelihood {model} AND model = 'bgnbd'")).await?;
    params.push(format!("LL={ll:.4}"));

    let mut row = Row { dataset: dataset.into(), customers, orders, ours, evaluations, peer: None, peer_note: String::new(), params: params.join("; "), agreement: String::new() };
    if n > args.peer_max_customers {
        row.peer_note = format!("not run (above --peer-max-customers {})", args.peer_max_customers);
        return Ok(row);
    }
    eprintln!("{dataset}: lifetimes");
    let csv = lake.join("peer_transactions.csv");
    write_transactions(session, table, time_col, &csv).await?;
    let out = lake.join("peer_out");
    let unit_multiplier = multiplier.to_string();
    let mut command = Command::new(&args.python);
    command
        .arg(args.peers.join("clv_peer.py"))
        .arg("--transactions")
        .arg(&csv)
        .args(["--customer-col", "customer", "--date-col", "date", "--amount-col", "amount", "--calibration-end", end, "--freq", "D"])
        .args(["--freq-multiplier", &unit_multiplier, "--horizon-days", "7", "--out"])
        .arg(&out);
    match run_with_timeout(command, Duration::from_secs(args.peer_timeout))? {
        Err(why) => row.peer_note = why,
        Ok(report) => {
            row.peer = Some(Timings {
                summary: report["summary_ms"].as_f64().unwrap_or(f64::NAN) / 1000.0 + report["load_ms"].as_f64().unwrap_or(0.0) / 1000.0,
                fit: report["fit_ms"].as_f64().unwrap_or(f64::NAN) / 1000.0,
                predict: report["predict_ms"].as_f64().unwrap_or(f64::NAN) / 1000.0,
            });
            row.agreement = compare(session, &out, &report).await?;
        }
    }
    Ok(row)
}

/// The transactions as the peer reads them: customer, date (YYYY-MM-DD), amount, streamed.
async fn write_transactions(session: &BackbeatSession, table: &str, time_col: &str, path: &Path) -> Result<()> {
    let df = session
        .sql(&format!("SELECT CAST(customer_id AS VARCHAR) AS customer, CAST(CAST({time_col} AS DATE) AS VARCHAR) AS date, CAST(amount AS DOUBLE) AS amount FROM {table}"))
        .await?;
    let mut stream = df.execute_stream().await?;
    let file = std::io::BufWriter::new(std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?);
    let mut writer = arrow::csv::WriterBuilder::new().with_header(true).build(file);
    while let Some(batch) = stream.next().await {
        writer.write(&batch?)?;
    }
    Ok(())
}

/// Runs the peer; Ok(Err(why)) when it failed or ran out of time (a result, not a bench error).
pub(crate) fn run_with_timeout(mut command: Command, limit: Duration) -> Result<std::result::Result<serde_json::Value, String>> {
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().context("starting the peer")?;
    let clock = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            let output = child.wait_with_output()?;
            if !status.success() {
                let err = String::from_utf8_lossy(&output.stderr);
                let last = err.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no message");
                return Ok(Err(format!("failed after {:.0} s ({status}): {last}", clock.elapsed().as_secs_f64())));
            }
            let stdout = String::from_utf8_lossy(&output.stdout);
            let line = stdout.lines().rev().find(|l| l.trim_start().starts_with('{')).context("the peer printed no JSON line")?;
            return Ok(Ok(serde_json::from_str(line)?));
        }
        if clock.elapsed() > limit {
            child.kill()?;
            return Ok(Err(format!("did not finish in {} s", limit.as_secs())));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Largest relative differences between ours and the peer's parameters and predictions.
async fn compare(session: &BackbeatSession, out: &Path, report: &serde_json::Value) -> Result<String> {
    let mut parts = Vec::new();
    let latest = scalar_text(session, "SELECT model_id FROM clv_model ORDER BY fitted_at DESC LIMIT 1").await?;
    let model = format!("FROM clv_model WHERE model_id = '{latest}'");
    let mut worst: f64 = 0.0;
    for (m, key, names) in [("bgnbd", "params", ["r", "alpha", "a", "b"].as_slice()), ("gamma_gamma", "gg_params", ["p", "q", "v"].as_slice())] {
        for name in names {
            let ours = scalar_f64(session, &format!("SELECT {name} {model} AND model = '{m}'")).await?;
            let peer = report[key][name].as_f64().unwrap_or(f64::NAN);
            worst = worst.max(((ours - peer) / peer).abs());
        }
    }
    parts.push(format!("params {worst:.1e}"));
    let ll = scalar_f64(session, &format!("SELECT log_likelihood {model} AND model = 'bgnbd'")).await?;
    let peer_ll = report["loglik"].as_f64().unwrap_or(f64::NAN);
    parts.push(format!("LL {:.1e}", ((ll - peer_ll) / peer_ll).abs()));
    parts.push(format!("predictions at each tool's own optimum: {}", prediction_diffs(session, out, "customer_predictions").await?));
    // The same formulas at lifetimes' parameters: what is left is the formulas' own agreement.
    let (r, gg) = (&report["params"], &report["gg_params"]);
    session
        .sql(&format!(
            "INSERT INTO clv_model SELECT 'lifetimes' AS model_id, model, summary_table, summary_version, customers, \
             CASE WHEN model = 'bgnbd' THEN {:e} END AS r, CASE WHEN model = 'bgnbd' THEN {:e} END AS alpha, \
             CASE WHEN model = 'bgnbd' THEN {:e} END AS a, CASE WHEN model = 'bgnbd' THEN {:e} END AS b, \
             CASE WHEN model = 'gamma_gamma' THEN {:e} END AS p, CASE WHEN model = 'gamma_gamma' THEN {:e} END AS q, \
             CASE WHEN model = 'gamma_gamma' THEN {:e} END AS v, log_likelihood, penalizer, iterations, evaluations, converged, \
             'parameters of lifetimes 0.11.3' AS stop_reason, gradient_norm, seconds, fitted_at - INTERVAL '1 day' AS fitted_at \
             {model}",
            r["r"].as_f64().unwrap_or(f64::NAN),
            r["alpha"].as_f64().unwrap_or(f64::NAN),
            r["a"].as_f64().unwrap_or(f64::NAN),
            r["b"].as_f64().unwrap_or(f64::NAN),
            gg["p"].as_f64().unwrap_or(f64::NAN),
            gg["q"].as_f64().unwrap_or(f64::NAN),
            gg["v"].as_f64().unwrap_or(f64::NAN)
        ))
        .await?
        .collect()
        .await?;
    job(session, "clv_predict", &[("model_id", "lifetimes"), ("horizon_days", "7"), ("window_days", "7"), ("out", "customer_predictions_at_peer")]).await?;
    parts.push(format!("at lifetimes' parameters: {}", prediction_diffs(session, out, "customer_predictions_at_peer").await?));
    Ok(parts.join("; "))
}

/// Largest relative differences between `ours` (a clv_predict table) and the peer's predictions.
async fn prediction_diffs(session: &BackbeatSession, out: &Path, ours: &str) -> Result<String> {
    let path = out.join("predictions.csv").canonicalize()?;
    let _ = session.context().deregister_table("bench_peer_predictions");
    session
        .sql(&format!(
            "CREATE EXTERNAL TABLE bench_peer_predictions (customer VARCHAR, p_alive DOUBLE, expected_purchases DOUBLE, p_any_purchase DOUBLE, \
             expected_avg_profit DOUBLE, clv DOUBLE) STORED AS CSV LOCATION '{}' OPTIONS ('format.has_header' 'true')",
            path.display()
        ))
        .await?;
    let diff = |ours: &str, theirs: &str| format!("max(abs(o.{ours} - p.{theirs}) / greatest(abs(p.{theirs}), 1e-300))");
    let sql = format!(
        "SELECT count(*) AS n, {}, {}, {}, {}, {} FROM {ours} o JOIN bench_peer_predictions p ON CAST(o.customer_id AS VARCHAR) = p.customer",
        diff("p_alive", "p_alive"),
        diff("expected_purchases", "expected_purchases"),
        diff("p_buy", "p_any_purchase"),
        diff("expected_spend", "expected_avg_profit"),
        diff("clv", "clv")
    );
    let batches = session.sql(&sql).await?.collect().await?;
    let b = batches.iter().find(|b| b.num_rows() > 0).context("no comparison row")?;
    let value = |i: usize| -> f64 {
        let c = arrow::compute::cast(b.column(i), &arrow::datatypes::DataType::Float64).expect("numeric");
        c.as_primitive::<Float64Type>().value(0)
    };
    if value(0) as i64 == 0 {
        bail!("no customer of the peer's predictions matched {ours}");
    }
    Ok(format!(
        "{} customers, p_alive {:.1e}, E[X(7d)] {:.1e}, P(buy 7d) {:.1e}, spend {:.1e}, CLV {:.1e}",
        value(0) as i64,
        value(1),
        value(2),
        value(3),
        value(4),
        value(5)
    ))
}

fn print_table(rows: &[Row]) {
    println!("| data | customers | orders | backbeat summary / fit / predict (s) | backbeat total | lifetimes summary / fit / predict (s) | lifetimes total | speed-up |");
    println!("|---|---|---|---|---|---|---|---|");
    for r in rows {
        let ours = r.ours.summary + r.ours.fit + r.ours.predict;
        let (peer, peer_total, speedup) = match &r.peer {
            Some(p) => {
                let total = p.summary + p.fit + p.predict;
                (format!("{:.3} / {:.3} / {:.3}", p.summary, p.fit, p.predict), format!("{total:.3}"), format!("{:.1}x", total / ours))
            }
            None => (r.peer_note.clone(), "-".into(), "-".into()),
        };
        println!(
            "| {} | {} | {} | {:.3} / {:.3} / {:.3} | {ours:.3} | {peer} | {peer_total} | {speedup} |",
            r.dataset, r.customers, r.orders, r.ours.summary, r.ours.fit, r.ours.predict
        );
    }
    println!();
    for r in rows {
        println!("- {}: {} ({}); agreement with lifetimes: {}", r.dataset, r.params, r.evaluations, if r.agreement.is_empty() { "-" } else { &r.agreement });
    }
}
