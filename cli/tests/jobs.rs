//! The shipped jobs answer the seeds' questions correctly: each answer is checked against the same
//! answer computed here, directly from the source files, through the multi-process cluster and in
//! embedded mode.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::{Float64Type, Int32Type, Int64Type};
use backbeat_cluster::session::{BackbeatSession, ClusterTarget};
use backbeat_datasets::datagen::{DatagenConfig, Dataset, generate};
use backbeat_jobs::job_catalogue::find;
use backbeat_jobs::job_runner::run_job;
use chrono::{NaiveDate, NaiveDateTime, Timelike};
use common::{TestCluster, run_cli};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

async fn query(session: &BackbeatSession, sql: &str) -> RecordBatch {
    let batches = session.sql(sql).await.unwrap_or_else(|e| panic!("{sql}: {e:#}")).collect().await.unwrap();
    arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap()
}

async fn run(session: &BackbeatSession, job: &str, params: &[(&str, String)]) {
    let job = find(job).unwrap();
    let params: Vec<(String, String)> = params.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    run_job(session, &job, &params).await.unwrap_or_else(|e| panic!("{}: {e:#}", job.name));
}

fn csv_rows(path: &Path) -> Vec<csv::StringRecord> {
    csv::Reader::from_path(path).unwrap().records().map(|r| r.unwrap()).collect()
}

fn weekday_name(d: NaiveDate) -> String {
    d.format("%A").to_string()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

fn string_i64_map(batch: &RecordBatch, key: &str, value: &str) -> BTreeMap<String, i64> {
    let k = batch.column_by_name(key).unwrap();
    let k = arrow::compute::cast(k, &arrow::datatypes::DataType::Utf8).unwrap();
    let k = k.as_string::<i32>();
    let v = batch.column_by_name(value).unwrap().as_primitive::<Int64Type>();
    (0..batch.num_rows()).map(|i| (k.value(i).to_string(), v.value(i))).collect()
}

fn f64_of(batch: &RecordBatch, column: &str) -> f64 {
    batch.column_by_name(column).unwrap().as_primitive::<Float64Type>().value(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn order_and_shop_jobs_answer_seed_questions_on_generated_orders() {
    let lake_dir = tempfile::tempdir().unwrap();
    let lake = lake_dir.path();
    generate(&DatagenConfig { scale: 0.3, seed: 11, out: lake.to_path_buf(), datasets: vec![Dataset::Orders], dirty_rate: 0.0 }).unwrap();
    let src = lake.join("sources/orders");
    let params = [
        ("orders_csv", src.join("orders.csv").display().to_string()),
        ("details_csv", src.join("order_details.csv").display().to_string()),
        ("products_csv", src.join("products.csv").display().to_string()),
    ];

    // Independent answers from the CSVs.
    let duplicates: HashSet<i64> = csv_rows(&src.join("duplicates.csv")).iter().map(|r| r[0].parse().unwrap()).collect();
    assert!(!duplicates.is_empty());
    let orders: Vec<(i64, i64, NaiveDateTime)> = csv_rows(&src.join("orders.csv"))
        .iter()
        .map(|r| (r[0].parse().unwrap(), r[1].parse().unwrap(), NaiveDateTime::parse_from_str(&r[2], "%Y-%m-%d %H:%M:%S").unwrap()))
        .filter(|(id, _, _)| !duplicates.contains(id))
        .collect();
    let details = csv_rows(&src.join("order_details.csv"));
    let mut weekdays: BTreeMap<String, i64> = BTreeMap::new();
    let mut hours: BTreeMap<String, i64> = BTreeMap::new();
    for (_, _, ts) in &orders {
        *weekdays.entry(weekday_name(ts.date())).or_default() += 1;
        *hours.entry(ts.hour().to_string()).or_default() += 1;
    }
    let mut by_customer: HashMap<i64, Vec<(NaiveDateTime, i64)>> = HashMap::new();
    for (id, customer, ts) in &orders {
        by_customer.entry(*customer).or_default().push((*ts, *id));
    }
    let mut gaps = vec![];
    let mut first_orders = HashSet::new();
    for list in by_customer.values_mut() {
        list.sort();
        first_orders.insert(list[0].1);
        gaps.extend(list.windows(2).map(|w| (w[1].0 - w[0].0).num_seconds() as f64 / 86400.0));
    }
    let mut first_products: BTreeMap<String, i64> = BTreeMap::new();
    for d in &details {
        if first_orders.contains(&d[0].parse::<i64>().unwrap()) {
            *first_products.entry(d[2].to_string()).or_default() += 1;
        }
    }
    let avg_gap = gaps.iter().sum::<f64>() / gaps.len() as f64;
    let median_gap = median(gaps.clone());
    let products = csv_rows(&src.join("products.csv"));
    let cheapest = products.iter().min_by(|a, b| a[3].parse::<f64>().unwrap().total_cmp(&b[3].parse::<f64>().unwrap()).then(a[0].parse::<i64>().unwrap().cmp(&b[0].parse::<i64>().unwrap()))).unwrap();
    let costs: Vec<f64> = details.iter().map(|d| d[3].parse::<f64>().unwrap() * d[4].parse::<f64>().unwrap() + d[5].parse::<f64>().unwrap() + d[6].parse::<f64>().unwrap()).collect();
    let avg_cost = costs.iter().sum::<f64>() / costs.len() as f64;

    let cluster = TestCluster::start();
    for session in [cluster.session(lake).await, BackbeatSession::connect(ClusterTarget::Embedded { concurrency: 2 }, lake).await.unwrap()] {
        run(&session, "order_analysis", &params).await;
        let removed = query(&session, "SELECT order_id FROM order_duplicates").await;
        let removed: HashSet<i64> = removed.column(0).as_primitive::<Int64Type>().values().iter().copied().collect();
        assert_eq!(removed, duplicates, "exactly the generator's duplicates are removed");
        let remaining = query(&session, "SELECT count(*) AS n FROM orders").await;
        assert_eq!(remaining.column(0).as_primitive::<Int64Type>().value(0), orders.len() as i64);
        assert_eq!(string_i64_map(&query(&session, "SELECT weekday, orders FROM order_report_weekday").await, "weekday", "orders"), weekdays);
        assert_eq!(string_i64_map(&query(&session, "SELECT hour, orders FROM order_report_hour").await, "hour", "orders"), hours);
        assert_eq!(
            string_i64_map(&query(&session, "SELECT product_id, times_bought_first FROM order_report_first_product").await, "product_id", "times_bought_first"),
            first_products
        );
        let intervals = query(&session, "SELECT * FROM order_report_intervals").await;
        assert!((f64_of(&intervals, "avg_days_between_purchases") - avg_gap).abs() < 1e-6);
        assert!((f64_of(&intervals, "median_days_between_purchases") - median_gap).abs() < 1e-6);

        run(&session, "shop_prices", &[params[2].clone(), params[1].clone()]).await;
        let shop = query(&session, "SELECT * FROM shop_report").await;
        assert_eq!(shop.column_by_name("cheapest_product").unwrap().as_string::<i32>().value(0), &cheapest[1]);
        assert!((f64_of(&shop, "average_order_cost") - avg_cost).abs() < 1e-6);
    }

    // Every run is in the history, with its parameters.
    let session = cluster.session(lake).await;
    let runs = query(&session, "SELECT job, status, rows_written, params FROM backbeat_runs ORDER BY started_at").await;
    assert_eq!(runs.num_rows(), 4);
    let jobs = runs.column(0).as_string::<i32>();
    assert_eq!((0..4).map(|i| jobs.value(i)).collect::<Vec<_>>(), ["order_analysis", "shop_prices", "order_analysis", "shop_prices"]);
    assert!((0..4).all(|i| runs.column(1).as_string::<i32>().value(i) == "succeeded"));
    assert!(runs.column(2).as_primitive::<Int64Type>().value(0) > orders.len() as i64);
    assert!(runs.column(3).as_string::<i32>().value(0).contains("duplicate_window_minutes"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn real_data_jobs_answer_on_cdnow_pizza_and_chinook() {
    let lake_dir = tempfile::tempdir().unwrap();
    let lake = lake_dir.path();
    let cdnow = repo().join("datasets/cdnow/CDNOW_master.txt");
    let pizza = repo().join("datasets/pizzaplace/pizzaplace.csv");

    // CDNOW: weekday of every purchase; gaps between each customer's distinct purchase days.
    let text = std::fs::read_to_string(&cdnow).unwrap();
    let mut weekdays: BTreeMap<String, i64> = BTreeMap::new();
    let mut days: HashMap<i64, HashSet<NaiveDate>> = HashMap::new();
    for line in text.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let date = NaiveDate::parse_from_str(f[1], "%Y%m%d").unwrap();
        *weekdays.entry(weekday_name(date)).or_default() += 1;
        days.entry(f[0].parse().unwrap()).or_default().insert(date);
    }
    let mut gaps = vec![];
    for set in days.values() {
        let mut d: Vec<NaiveDate> = set.iter().copied().collect();
        d.sort();
        gaps.extend(d.windows(2).map(|w| (w[1] - w[0]).num_days() as f64));
    }
    // Pizza: orders (distinct ids) per hour of day.
    let mut pizza_orders: HashMap<String, u32> = HashMap::new();
    for r in csv_rows(&pizza) {
        pizza_orders.entry(r[0].to_string()).or_insert(r[2][..2].parse().unwrap());
    }
    let mut pizza_hours: BTreeMap<String, i64> = BTreeMap::new();
    for h in pizza_orders.values() {
        *pizza_hours.entry(h.to_string()).or_default() += 1;
    }
    // Chinook: tracks per genre name.
    let genres: HashMap<String, String> = csv_rows(&repo().join("datasets/chinook/genre.csv")).iter().map(|r| (r[0].to_string(), r[1].to_string())).collect();
    let mut chinook: BTreeMap<String, i64> = BTreeMap::new();
    for r in csv_rows(&repo().join("datasets/chinook/track.csv")) {
        *chinook.entry(genres[&r[7]].clone()).or_default() += 1;
    }

    // chinook_genres reads datasets/ relative to the working directory, as from the repo root.
    std::env::set_current_dir(repo()).unwrap();
    let cluster = TestCluster::start();
    for session in [cluster.session(lake).await, BackbeatSession::connect(ClusterTarget::Embedded { concurrency: 2 }, lake).await.unwrap()] {
        run(&session, "order_analysis_cdnow", &[("purchases", cdnow.display().to_string())]).await;
        assert_eq!(string_i64_map(&query(&session, "SELECT weekday, purchases FROM cdnow_report_weekday").await, "weekday", "purchases"), weekdays);
        let intervals = query(&session, "SELECT * FROM cdnow_report_intervals").await;
        assert!((f64_of(&intervals, "avg_days_between_purchases") - gaps.iter().sum::<f64>() / gaps.len() as f64).abs() < 1e-9);
        let median_days = arrow::compute::cast(intervals.column_by_name("median_days_between_purchases").unwrap(), &arrow::datatypes::DataType::Float64).unwrap();
        assert_eq!(median_days.as_primitive::<Float64Type>().value(0), median(gaps.clone()));

        run(&session, "order_analysis_pizza", &[("orders", pizza.display().to_string())]).await;
        let hours = query(&session, "SELECT hour, orders FROM pizza_report_hour").await;
        let hours: BTreeMap<String, i64> = (0..hours.num_rows())
            .map(|i| (hours.column(0).as_primitive::<Int32Type>().value(i).to_string(), hours.column(1).as_primitive::<Int64Type>().value(i)))
            .collect();
        assert_eq!(hours, pizza_hours);

        run(&session, "chinook_genres", &[]).await;
        assert_eq!(string_i64_map(&query(&session, "SELECT genre, tracks FROM chinook_genre_report").await, "genre", "tracks"), chinook);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn catalogue_analytics_matches_the_tracks_file() {
    let lake_dir = tempfile::tempdir().unwrap();
    let lake = lake_dir.path();
    generate(&DatagenConfig { scale: 0.3, seed: 5, out: lake.to_path_buf(), datasets: vec![Dataset::Tracks], dirty_rate: 0.0 }).unwrap();
    let file = std::fs::File::open(lake.join("tracks/part-0.parquet")).unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).unwrap().build().unwrap();
    let mut per_genre: BTreeMap<String, (i64, f64)> = BTreeMap::new();
    for batch in reader {
        let batch = batch.unwrap();
        let genre = batch.column_by_name("track_genre").unwrap().as_string::<i32>();
        let energy = batch.column_by_name("energy").unwrap().as_primitive::<Float64Type>();
        for i in 0..batch.num_rows() {
            let e = per_genre.entry(genre.value(i).to_string()).or_default();
            e.0 += 1;
            e.1 += energy.value(i);
        }
    }
    let cluster = TestCluster::start();
    let session = cluster.session(lake).await;
    run(&session, "catalogue_analytics", &[]).await;
    let report = query(&session, "SELECT track_genre, tracks, energy FROM genre_report").await;
    assert_eq!(report.num_rows(), per_genre.len());
    for i in 0..report.num_rows() {
        let genre = report.column(0).as_string::<i32>().value(i);
        let (n, sum) = per_genre[genre];
        assert_eq!(report.column(1).as_primitive::<Int64Type>().value(i), n, "{genre}");
        assert!((report.column(2).as_primitive::<Float64Type>().value(i) - sum / n as f64).abs() < 1e-9, "{genre}");
    }
}

#[test]
fn bad_job_parameters_run_nothing_and_list_the_valid_ones() {
    let lake = tempfile::tempdir().unwrap();
    let lake_arg = lake.path().to_str().unwrap();
    for (args, expect) in [
        (vec!["run", "no_such_job"], "order_analysis"),
        (vec!["run", "catalogue_analytics", "--param", "top=ten"], "top (int, default 10)"),
        (vec!["run", "catalogue_analytics", "--param", "tracks=x; DROP TABLE y"], "tracks (table"),
        (vec!["run", "catalogue_analytics", "--param", "colour=red"], "no parameter 'colour'"),
        (vec!["run", "order_analysis_cdnow", "--param", "purchases=/no/such/file"], "does not exist"),
    ] {
        let mut full = args.clone();
        full.extend(["--lake", lake_arg]);
        let out = run_cli(&full);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} must fail");
        assert!(stderr.contains(expect), "{args:?}: {stderr}");
    }
    assert_eq!(std::fs::read_dir(lake.path()).unwrap().count(), 0, "nothing ran: the lake is untouched");
}

fn read_parquet(path: &Path) -> Vec<RecordBatch> {
    let file = std::fs::File::open(path).unwrap();
    parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).unwrap().build().unwrap().map(|b| b.unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rust_dataframe_job_finds_each_listeners_top_genre() {
    let lake_dir = tempfile::tempdir().unwrap();
    let lake = lake_dir.path();
    generate(&DatagenConfig { scale: 0.2, seed: 3, out: lake.to_path_buf(), datasets: vec![Dataset::Tracks, Dataset::Listening], dirty_rate: 0.0 }).unwrap();
    let mut genre_of: HashMap<String, String> = HashMap::new();
    for b in read_parquet(&lake.join("tracks/part-0.parquet")) {
        let (ids, genres) = (b.column_by_name("track_id").unwrap().as_string::<i32>(), b.column_by_name("track_genre").unwrap().as_string::<i32>());
        for i in 0..b.num_rows() {
            genre_of.insert(ids.value(i).to_string(), genres.value(i).to_string());
        }
    }
    let mut plays: HashMap<i64, BTreeMap<String, i64>> = HashMap::new();
    for b in read_parquet(&lake.join("listening_events/part-0.parquet")) {
        let (users, tracks) = (b.column_by_name("user_id").unwrap().as_primitive::<Int64Type>(), b.column_by_name("track_id").unwrap().as_string::<i32>());
        for i in 0..b.num_rows() {
            *plays.entry(users.value(i)).or_default().entry(genre_of[tracks.value(i)].clone()).or_default() += 1;
        }
    }
    // Most plays first, ties by genre name.
    let expected: BTreeMap<i64, String> = plays
        .iter()
        .map(|(u, g)| (*u, g.iter().max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0))).unwrap().0.clone()))
        .collect();

    let cluster = TestCluster::start();
    let session = cluster.session(lake).await;
    let out = format!("top_genres_{}", std::process::id());
    run(&session, "user_top_genres", &[("top", "2".into()), ("out", out.clone()), ("export_to", "redis://127.0.0.1:6379/0".into())]).await;
    let top = query(&session, &format!("SELECT user_id, track_genre FROM {out} WHERE genre_rank = 1")).await;
    let got: BTreeMap<i64, String> = (0..top.num_rows())
        .map(|i| (top.column(0).as_primitive::<Int64Type>().value(i), top.column(1).as_string::<i32>().value(i).to_string()))
        .collect();
    assert_eq!(got, expected);
    // Exported to Redis: one sorted set per listener, the favourite genre ranked first.
    let redis = redis::Client::open("redis://127.0.0.1:6379/0").unwrap();
    let mut conn = redis.get_multiplexed_async_connection().await.expect("Redis on 127.0.0.1:6379");
    let (user, genre) = expected.iter().next().unwrap();
    let ranked: Vec<(String, f64)> = redis::cmd("ZREVRANGE").arg(format!("{out}:{user}")).arg(0).arg(-1).arg("WITHSCORES").query_async(&mut conn).await.unwrap();
    assert_eq!(&ranked[0].0, genre, "{ranked:?}");
    let keys: Vec<String> = redis::cmd("KEYS").arg(format!("{out}:*")).query_async(&mut conn).await.unwrap();
    assert_eq!(keys.len(), expected.len(), "one key per listener");
    let _: () = redis::cmd("DEL").arg(&keys).arg(format!("backbeat:export:{out}:{{user_id}}")).query_async(&mut conn).await.unwrap();
    let max_rank = query(&session, &format!("SELECT max(genre_rank) AS r FROM {out}")).await;
    // row_number is UInt64; Delta has no unsigned types, so the table stores it as BIGINT.
    assert_eq!(max_rank.column(0).as_primitive::<Int64Type>().value(0), 2, "top=2 keeps two genres");
}
