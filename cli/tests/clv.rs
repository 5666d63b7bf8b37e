//! Customer-lifetime models through the 2-executor cluster and embedded mode, on the real CDNOW
//! sample of Fader, Hardie and Lee (2005): the summary, the fitted parameters and log-likelihood
//! against the paper and against lifetimes 0.11.3's numbers (`bench/peers/clv_reference.md`), the
//! predictions, the holdout evaluation, the export to the MongoDB-protocol server, and bad input.

mod common;

use std::sync::Once;

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::DataType;
use backbeat_cluster::session::{BackbeatSession, ClusterTarget};
use backbeat_jobs::clv::bgnbd::BgNbd;
use common::{TestCluster, f64s, i64s, query, repo, run};
use futures::TryStreamExt;
use mongodb::bson::{Document, doc};






fn rel(got: f64, want: f64) -> f64 {
    ((got - want) / want).abs()
}

/// Loads the CDNOW sample and summarises its calibration period (1997-01-01..1997-09-30) in days
/// reported as weeks, the paper's convention.
async fn cdnow_summary(session: &BackbeatSession, unit: &str, multiplier: &str) {
    let sample = repo().join("datasets/cdnow/CDNOW_sample.txt");
    run(session, "cdnow_orders", &[("purchases", sample.to_str().unwrap())]).await.unwrap();
    run(session, "customer_summary", &[
        ("table", "cdnow_orders"),
        ("time_col", "order_date"),
        ("calibration_end", "1997-09-30"),
        ("unit", unit),
        ("multiplier", multiplier),
    ])
    .await
    .unwrap();
}

/// The paper's fit, checked; returns the BG/NBD parameters.
async fn cdnow_fit_checks(session: &BackbeatSession) -> [f64; 4] {
    cdnow_summary(session, "day", "7").await;
    // lifetimes' summary of the same transactions: 2,357 customers, 946 with repeats, Σx = 2,457,
    // and T = 272 days / 7 for a customer who first bought on 1997-01-01.
    let s = query(session, "SELECT count(*) AS n, sum(CASE WHEN frequency > 0 THEN 1 ELSE 0 END) AS repeaters, sum(frequency) AS x FROM customer_summary").await;
    assert_eq!((i64s(&s, "n")[0], i64s(&s, "repeaters")[0], i64s(&s, "x")[0]), (2357, 946, 2457));
    let first = query(session, "SELECT \"T\" FROM customer_summary WHERE customer_id = 1").await;
    assert!((f64s(&first, "T")[0] - 272.0 / 7.0).abs() < 1e-12);

    run(session, "clv_fit", &[]).await.unwrap();
    let m = query(session, "SELECT * FROM clv_model WHERE model = 'bgnbd'").await;
    let got = [f64s(&m, "r")[0], f64s(&m, "alpha")[0], f64s(&m, "a")[0], f64s(&m, "b")[0]];
    // The paper: r = 0.243, alpha = 4.414, a = 0.793, b = 2.426, LL = -9582.4.
    for (g, paper) in got.iter().zip([0.243, 4.414, 0.793, 2.426]) {
        assert!((g - paper).abs() < 5e-4, "{got:?} against the paper");
    }
    // The MLE of these transactions (lifetimes' optimum Newton-refined to |grad| < 1e-15), to
    // 1e-6 as Gamma-Gamma below and for the same reason: on 2026-12-05 a CI run on a fresh clone
    // ended at a = 0.79292190 (1.5e-7 from the MLE) when the partitions'
    // rounding noise stopped the line search early; other runs match to 1e-9.
    for (g, mle) in got.iter().zip([0.24259452243015689, 4.4136020190134984, 0.79292201722557643, 2.4259067768262566]) {
        assert!(rel(*g, mle) < 1e-6, "{got:?} against the MLE");
    }
    let ll = f64s(&m, "log_likelihood")[0];
    assert!(rel(ll, -9582.4292066739363) < 1e-9, "LL {ll}");
    assert_eq!(i64s(&m, "customers")[0], 2357);
    let gg = query(session, "SELECT * FROM clv_model WHERE model = 'gamma_gamma'").await;
    assert_eq!(i64s(&gg, "customers")[0], 946);
    // 1e-6, not BG/NBD's 1e-8: when the sums' rounding noise (which depends on the order in which
    // partitions arrive) stops the line search before the polish can run, the fit ends at |g| of
    // a few 1e-8, under the accepted 1e-7 (lifetimes' own tolerance). One run in three on
    // 2026-12-04 gave p = 6.24957008 (3.5e-7 from the MLE) that way; the others matched to 1e-9.
    assert_eq!(i64s(&gg, "converged")[0], 1, "Gamma-Gamma did not converge");
    for (column, mle) in [("p", 6.2495722776371316), ("q", 3.7442246747580819), ("v", 15.443521018357931)] {
        assert!(rel(f64s(&gg, column)[0], mle) < 1e-6, "Gamma-Gamma {column} = {}", f64s(&gg, column)[0]);
    }

    // Predictions for every customer, finite, consistent with the model's own formulas.
    run(session, "clv_predict", &[("horizon_days", "364")]).await.unwrap();
    let p = query(session, "SELECT * FROM customer_predictions ORDER BY customer_id").await;
    assert_eq!(p.num_rows(), 2357);
    let model = BgNbd { r: got[0], alpha: got[1], a: got[2], b: got[3] };
    let (x, tx, t) = (f64s(&p, "frequency"), f64s(&p, "recency"), f64s(&p, "T"));
    for (i, (alive, e52)) in f64s(&p, "p_alive").iter().zip(f64s(&p, "expected_purchases")).enumerate() {
        // Parameters reach the kernel as JSON, which serde_json parses to within 1 ulp.
        assert!(rel(*alive, model.p_alive(x[i], tx[i], t[i])) < 1e-14);
        assert!(rel(e52, model.expected_purchases(52.0, x[i], tx[i], t[i])) < 1e-12);
    }
    for column in ["p_buy", "expected_spend", "clv"] {
        assert!(f64s(&p, column).iter().all(|v| v.is_finite() && *v >= 0.0), "{column}");
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cdnow_fit_matches_the_paper_on_two_executors_and_embedded() {
    let cluster = TestCluster::start();
    let lake = tempfile::tempdir().unwrap();
    let session = cluster.session(lake.path()).await;
    let on_cluster = cdnow_fit_checks(&session).await;
    // The same fit with one cluster job per likelihood evaluation, each summing over the
    // partitions of both executors, instead of the whole optimisation in one task.
    run(&session, "clv_fit", &[("placement", "distributed"), ("model_table", "clv_model_distributed")]).await.unwrap();
    let d = query(&session, "SELECT r, alpha, a, b FROM clv_model_distributed WHERE model = 'bgnbd'").await;
    for (c, name) in on_cluster.iter().zip(["r", "alpha", "a", "b"]) {
        assert!(rel(*c, f64s(&d, name)[0]) < 1e-9, "{name}: in one task {c}, distributed {}", f64s(&d, name)[0]);
    }
    let embedded_lake = tempfile::tempdir().unwrap();
    let embedded = BackbeatSession::connect(ClusterTarget::Embedded { concurrency: 2 }, embedded_lake.path()).await.unwrap();
    let on_embedded = cdnow_fit_checks(&embedded).await;
    for (c, e) in on_cluster.iter().zip(on_embedded) {
        assert!(rel(*c, e) < 1e-9, "{on_cluster:?} vs {on_embedded:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn weekly_summary_and_holdout_evaluation_on_cdnow() {
    let lake = tempfile::tempdir().unwrap();
    let session = BackbeatSession::connect(ClusterTarget::Embedded { concurrency: 2 }, lake.path()).await.unwrap();
    // lifetimes' freq='W' summary of the same calibration: 929 repeat customers, Σx = 2,216 (two
    // purchases in one Monday-to-Sunday week count once).
    cdnow_summary(&session, "week", "1").await;
    let s = query(&session, "SELECT sum(CASE WHEN frequency > 0 THEN 1 ELSE 0 END) AS repeaters, sum(frequency) AS x, max(\"T\") AS t FROM customer_summary").await;
    assert_eq!((i64s(&s, "repeaters")[0], i64s(&s, "x")[0], f64s(&s, "t")[0]), (929, 2216, 39.0));

    run(&session, "clv_eval", &[
        ("table", "cdnow_orders"),
        ("time_col", "order_date"),
        ("calibration_end", "1997-09-30"),
        ("multiplier", "7"),
    ])
    .await
    .unwrap();
    let metric = |m: &RecordBatch, model: &str, name: &str| -> f64 {
        let (models, names) = (m.column_by_name("model").unwrap(), m.column_by_name("metric").unwrap());
        let (models, names) = (arrow::compute::cast(models, &DataType::Utf8).unwrap(), arrow::compute::cast(names, &DataType::Utf8).unwrap());
        let i = (0..m.num_rows()).find(|&i| models.as_string::<i32>().value(i) == model && names.as_string::<i32>().value(i) == name).unwrap();
        f64s(m, "value")[i]
    };
    let m = query(&session, "SELECT * FROM clv_eval").await;
    let distinct = query(&session, "SELECT count(DISTINCT model || '/' || metric) AS n FROM clv_eval").await;
    assert_eq!(i64s(&distinct, "n")[0] as usize, m.num_rows(), "one row per model and metric");
    // The holdout (273 days to 1998-06-30): the actual purchase days, counted here from the raw
    // file, and BG/NBD's expected total, which lifetimes 0.11.3 puts at 1653.4087241798902
    // (`bench/peers/clv_peer.py --freq D --freq-multiplier 7 --horizon-days 273`, summed).
    let text = std::fs::read_to_string(repo().join("datasets/cdnow/CDNOW_sample.txt")).unwrap();
    let holdout_days: std::collections::HashSet<(String, String)> = text
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() == 5 && f[2] > "19970930").then(|| (f[1].to_string(), f[2].to_string()))
        })
        .collect();
    let (predicted, actual) = (metric(&m, "bgnbd", "holdout_purchases_total"), metric(&m, "actual", "holdout_purchases_total"));
    assert_eq!(actual, holdout_days.len() as f64);
    let week_buyers: std::collections::HashSet<&String> = holdout_days.iter().filter(|(_, day)| day.as_str() <= "19971007").map(|(c, _)| c).collect();
    assert_eq!(metric(&m, "actual", "window_buyers"), week_buyers.len() as f64);
    assert!(rel(predicted, 1653.4087241798902) < 1e-6, "predicted {predicted}");
    let auc = metric(&m, "bgnbd", "window_auc");
    assert!(auc > 0.6 && auc <= 1.0, "AUC {auc}");
    let baseline_auc = metric(&m, "baseline", "window_auc");
    assert!((0.0..=1.0).contains(&baseline_auc));
    let by_frequency = query(&session, "SELECT * FROM clv_eval_by_frequency").await;
    assert_eq!(i64s(&by_frequency, "customers").iter().sum::<i64>(), 2357);
}

fn mongo_url(db: &str) -> String {
    static START: Once = Once::new();
    START.call_once(|| {
        let status = std::process::Command::new("bash").arg(repo().join("scripts/mongo_server.sh")).status().expect("run scripts/mongo_server.sh");
        assert!(status.success(), "no MongoDB-protocol server: scripts/mongo_server.sh failed");
    });
    let port = std::env::var("BACKBEAT_MONGO_PORT").unwrap_or_else(|_| "27017".into());
    format!("mongodb://127.0.0.1:{port}/{db}?directConnection=true")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn next_week_buyers_land_in_mongodb() {
    let lake = tempfile::tempdir().unwrap();
    let session = BackbeatSession::connect(ClusterTarget::Embedded { concurrency: 2 }, lake.path()).await.unwrap();
    cdnow_summary(&session, "day", "1").await;
    run(&session, "clv_fit", &[]).await.unwrap();
    run(&session, "clv_predict", &[]).await.unwrap();
    let db = format!("clv_{}_{}", std::process::id(), std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos());
    let url = mongo_url(&db);
    run(&session, "next_week_buyers", &[("top", "40"), ("export_to", &url)]).await.unwrap();
    let lake_rows = query(&session, "SELECT customer_id, p_buy FROM next_week_buyers ORDER BY customer_id").await;
    assert_eq!(lake_rows.num_rows(), 40);
    // The 40 are the 40 most likely buyers.
    let cut = query(&session, "SELECT p_buy FROM customer_predictions ORDER BY p_buy DESC LIMIT 1 OFFSET 40").await;
    assert!(f64s(&lake_rows, "p_buy").iter().all(|p| *p >= f64s(&cut, "p_buy")[0]));
    let client = mongodb::Client::with_uri_str(&url).await.unwrap();
    let docs: Vec<Document> = client.database(&db).collection::<Document>("next_week_buyers").find(doc! {}).await.unwrap().try_collect().await.unwrap();
    assert_eq!(docs.len(), 40);
    let mut exported: Vec<(i64, f64)> = docs.iter().map(|d| (d.get_i64("customer_id").unwrap(), d.get_f64("p_buy").unwrap())).collect();
    exported.sort_by_key(|e| e.0);
    let expected: Vec<(i64, f64)> = i64s(&lake_rows, "customer_id").into_iter().zip(f64s(&lake_rows, "p_buy")).collect();
    assert_eq!(exported, expected);
    client.database(&db).drop().await.unwrap();
}

async fn expect_error(session: &BackbeatSession, job: &str, params: &[(&str, &str)], needle: &str) {
    let err = run(session, job, params).await.expect_err(&format!("{job} {params:?} should fail"));
    assert!(format!("{err:#}").contains(needle), "{job}: expected '{needle}' in: {err:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn clv_bad_input_gives_clear_errors_or_defined_results() {
    let lake = tempfile::tempdir().unwrap();
    let session = BackbeatSession::connect(ClusterTarget::Embedded { concurrency: 2 }, lake.path()).await.unwrap();
    let orders = "SELECT CAST(column1 AS BIGINT) AS customer_id, CAST(column2 AS DATE) AS order_ts, CAST(column3 AS DOUBLE) AS amount FROM (VALUES \
        (1, '2024-01-01', 10.0), (1, '2024-02-01', 20.0), (1, '2024-03-01', 30.0), (2, '2024-01-15', 5.0), \
        (3, '2024-02-10', 7.0), (3, '2024-02-20', 9.0), (4, '2024-06-01', 50.0), (NULL, '2024-01-02', 1.0))";
    session.sql(&format!("CREATE TABLE small_orders AS {orders}")).await.unwrap().collect().await.unwrap();
    // Customer 2 bought once: frequency 0, P(alive) 1; customer 4 only after the calibration end:
    // left out and counted; the row without a customer is left out and counted.
    run(&session, "customer_summary", &[("table", "small_orders"), ("calibration_end", "2024-03-31")]).await.unwrap();
    let s = query(&session, "SELECT customer_id, frequency, recency, \"T\", monetary_value FROM customer_summary ORDER BY customer_id").await;
    assert_eq!(i64s(&s, "customer_id"), vec![1, 2, 3]);
    assert_eq!(f64s(&s, "frequency"), vec![2.0, 0.0, 1.0]);
    assert_eq!(f64s(&s, "monetary_value"), vec![25.0, 0.0, 9.0]);
    assert_eq!(f64s(&s, "T"), vec![90.0, 76.0, 50.0]);
    run(&session, "clv_fit", &[]).await.unwrap();
    run(&session, "clv_predict", &[]).await.unwrap();
    let p = query(&session, "SELECT p_alive FROM customer_predictions WHERE customer_id = 2").await;
    assert_eq!(f64s(&p, "p_alive"), vec![1.0]);

    session.sql(&format!("CREATE TABLE refunds AS SELECT customer_id, order_ts, amount - 8 AS amount FROM ({orders})")).await.unwrap().collect().await.unwrap();
    expect_error(&session, "customer_summary", &[("table", "refunds"), ("calibration_end", "2024-03-31")], "negative amount").await;
    session.sql("CREATE TABLE no_orders AS SELECT * FROM small_orders WHERE customer_id < 0").await.unwrap().collect().await.unwrap();
    expect_error(&session, "customer_summary", &[("table", "no_orders")], "nothing to summarise").await;
    expect_error(&session, "customer_summary", &[("table", "small_orders"), ("calibration_end", "2023-12-31")], "no purchases on or before").await;
    expect_error(&session, "customer_summary", &[("table", "small_orders"), ("time_col", "ordered")], "has no column 'ordered'").await;
    expect_error(&session, "customer_summary", &[("table", "small_orders"), ("calibration_end", "31/03/2024")], "is not a date").await;
    expect_error(&session, "clv_fit", &[("summary", "small_orders")], "has no column 'frequency'").await;
    session.sql("CREATE TABLE broken_summary AS SELECT customer_id, frequency, recency + 100 AS recency, \"T\", monetary_value FROM customer_summary").await.unwrap().collect().await.unwrap();
    expect_error(&session, "clv_fit", &[("summary", "broken_summary")], "recency below 0 or above T").await;
    expect_error(&session, "clv_predict", &[("model_table", "no_such_models")], "run clv_fit first").await;
}

/// A wrong answer of Ballista 55's adaptive planner: on the 2-executor cluster this scalar
/// subquery over a two-file Delta table returned no rows in about 3 runs of 4. With the static
/// planner every session now uses (`session::ADAPTIVE_PLANNER`) it passed 9 runs of 9.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scalar_subquery_over_a_two_file_table_finds_the_latest_row() {
    let cluster = TestCluster::start();
    let lake = tempfile::tempdir().unwrap();
    let session = cluster.session(lake.path()).await;
    session.sql("CREATE TABLE fits AS SELECT 'a' AS id, 'm' AS model, 1.5 AS ll, TIMESTAMP '2024-01-01 00:00:00' AS at").await.unwrap().collect().await.unwrap();
    session.sql("INSERT INTO fits SELECT 'b' AS id, 'm' AS model, 2.5 AS ll, TIMESTAMP '2024-02-01 00:00:00' AS at").await.unwrap().collect().await.unwrap();
    let rows = query(&session, "SELECT ll FROM fits WHERE id = (SELECT id FROM fits ORDER BY at DESC LIMIT 1) AND model = 'm'").await;
    assert_eq!(f64s(&rows, "ll"), vec![2.5]);
}
