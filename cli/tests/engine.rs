//! The engine through a real multi-process cluster and through embedded mode: Delta reads and
//! writes, partitioning, time travel, atomic writes and UDFs on executors.

mod common;

use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, Float64Array, RecordBatch, StringArray, UInt64Array};
use backbeat_cluster::delta::{DeltaTableProvider, load_table};
use backbeat_cluster::session::{BackbeatSession, ClusterTarget, WriteMode};
use backbeat_cluster::text_similarity;
use backbeat_cluster::tpch_data::write_tpch_parquet;
use common::{TestCluster, canonical_rows, row_count};
use datafusion::catalog::TableProvider;
use datafusion::datasource::source::DataSourceExec;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::{SessionContext, col, lit};

async fn collect(session: &BackbeatSession, sql: &str) -> Vec<RecordBatch> {
    let df = session.sql(sql).await.unwrap_or_else(|e| panic!("planning {sql}: {e:#}"));
    df.collect().await.unwrap_or_else(|e| panic!("running {sql}: {e}"))
}

async fn count(session: &BackbeatSession, sql: &str) -> u64 {
    let batches = collect(session, sql).await;
    let column = batches[0].column(0);
    if let Some(a) = column.as_any().downcast_ref::<arrow::array::Int64Array>() {
        a.value(0) as u64
    } else {
        column.as_any().downcast_ref::<UInt64Array>().expect("count column").value(0)
    }
}

fn written(batches: &[RecordBatch]) -> u64 {
    batches[0].column(0).as_any().downcast_ref::<UInt64Array>().expect("DML count").value(0)
}

async fn latest_version(lake: &Path, table: &str) -> i64 {
    let url = url::Url::from_directory_path(lake.join(table)).unwrap();
    load_table(url.as_str(), None).await.unwrap().version().unwrap() as i64
}

/// Rows as read by plain single-process DataFusion straight from the Parquet files: an answer
/// computed without backbeat's catalog, codecs or cluster.
async fn reference(lake: &Path, sql: &str) -> Vec<String> {
    let ctx = SessionContext::new();
    for table in ["lineitem", "orders", "customer", "nation"] {
        ctx.register_parquet(table, lake.join(table).to_str().unwrap(), Default::default())
            .await
            .unwrap();
    }
    canonical_rows(&ctx.sql(sql).await.unwrap().collect().await.unwrap(), 9)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn delta_reads_and_writes_through_cluster_and_embedded() {
    let lake_dir = tempfile::tempdir().unwrap();
    let lake = lake_dir.path();
    write_tpch_parquet(0.01, lake, 3).unwrap();

    let cluster = TestCluster::start();
    let remote = cluster.session(lake).await;
    let embedded = BackbeatSession::connect(ClusterTarget::Embedded { concurrency: 2 }, lake).await.unwrap();

    // CTAS through the cluster: executors write, one commit; partitioned by a low-cardinality column.
    let lineitems = count(&remote, "SELECT count(*) FROM lineitem").await;
    let w = written(&collect(&remote, "CREATE TABLE lineitem_d AS SELECT * FROM lineitem").await);
    assert_eq!(w, lineitems, "CTAS reports the rows it wrote\n{}", cluster.logs());
    collect(&remote, "CREATE TABLE orders_d PARTITIONED BY (o_orderstatus) AS SELECT * FROM orders").await;
    // The DataFrame API writes the same way.
    let df = embedded.context().table("customer").await.unwrap();
    embedded.write_table(df, "customer_d", WriteMode::Create, &["c_mktsegment".into()]).await.unwrap().collect().await.unwrap();
    collect(&embedded, "CREATE TABLE nation_d AS SELECT * FROM nation").await;
    assert_eq!(latest_version(lake, "lineitem_d").await, 0);
    assert!(lake.join("orders_d/o_orderstatus=F").is_dir(), "Hive-style partition directories");
    // Rows are shuffled by partition value before writing: one file per value, not one per task.
    let statuses = count(&remote, "SELECT count(DISTINCT o_orderstatus) FROM orders").await;
    let files: usize = std::fs::read_dir(lake.join("orders_d"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name() != "_delta_log")
        .map(|dir| std::fs::read_dir(dir.path()).unwrap().count())
        .sum();
    assert_eq!(files as u64, statuses, "one data file per partition value");

    // The same SQL over Parquet and over Delta, remote and embedded, equals single-process
    // DataFusion over the Parquet files. Row counts catch any scan duplicated across executors.
    let queries = [
        "SELECT count(*) FROM {lineitem}",
        "SELECT l_returnflag, l_linestatus, sum(l_quantity), sum(l_extendedprice * (1 - l_discount)), avg(l_discount), count(*) FROM {lineitem} GROUP BY l_returnflag, l_linestatus",
        "SELECT o_orderstatus, count(*), sum(o_totalprice) FROM {orders} WHERE o_orderstatus IN ('F', 'P') GROUP BY o_orderstatus",
        "SELECT o_orderpriority, count(*) FROM {orders} WHERE o_orderdate >= DATE '1995-01-01' AND o_totalprice > 100000 GROUP BY o_orderpriority",
        "SELECT n_name, count(*) AS c FROM {customer} JOIN {nation} ON c_nationkey = n_nationkey WHERE c_mktsegment = 'BUILDING' GROUP BY n_name",
        "SELECT l_orderkey, l_linenumber, l_comment FROM {lineitem} ORDER BY l_extendedprice DESC, l_orderkey, l_linenumber LIMIT 7",
    ];
    for q in queries {
        let plain = |suffix: &str| {
            q.replace("{lineitem}", &format!("lineitem{suffix}"))
                .replace("{orders}", &format!("orders{suffix}"))
                .replace("{customer}", &format!("customer{suffix}"))
                .replace("{nation}", &format!("nation{suffix}"))
        };
        let expected = reference(lake, &plain("")).await;
        assert!(!expected.is_empty());
        for (mode, session) in [("cluster", &remote), ("embedded", &embedded)] {
            for (format, suffix) in [("parquet", ""), ("delta", "_d")] {
                let sql = plain(suffix);
                let got = canonical_rows(&collect(session, &sql).await, 9);
                assert_eq!(got, expected, "{mode} over {format}: {sql}");
            }
        }
    }

    // Partition pruning: a filter on the partition column plans only that partition's files.
    let url = url::Url::from_directory_path(lake.join("orders_d")).unwrap();
    let provider = DeltaTableProvider::open(&url, None).await.unwrap();
    let state = remote.context().state();
    let all = scanned_files(provider.scan(&state, None, &[], None).await.unwrap());
    let only_f = scanned_files(provider.scan(&state, None, &[col("o_orderstatus").eq(lit("F"))], None).await.unwrap());
    assert!(only_f > 0 && only_f < all, "pruned to {only_f} of {all} files");

    // INSERT INTO (SQL, through the cluster) appends as version 1; time travel reads version 0.
    let before = count(&remote, "SELECT count(*) FROM lineitem_d").await;
    collect(&remote, "INSERT INTO lineitem_d SELECT * FROM lineitem WHERE l_shipmode = 'AIR'").await;
    let air = count(&remote, "SELECT count(*) FROM lineitem WHERE l_shipmode = 'AIR'").await;
    assert_eq!(latest_version(lake, "lineitem_d").await, 1);
    for session in [&remote, &embedded] {
        assert_eq!(count(session, "SELECT count(*) FROM lineitem_d").await, before + air);
        assert_eq!(count(session, "SELECT count(*) FROM \"lineitem_d@v0\"").await, before);
        assert_eq!(count(session, "SELECT count(*) FROM \"lineitem_d@v1\"").await, before + air);
    }

    // INSERT OVERWRITE replaces the rows and keeps the schema; the old version stays readable.
    collect(&remote, "INSERT OVERWRITE nation_d SELECT * FROM nation WHERE n_regionkey = 1").await;
    assert_eq!(count(&remote, "SELECT count(*) FROM nation_d").await, 5);
    assert_eq!(count(&remote, "SELECT count(*) FROM \"nation_d@v0\"").await, 25);
    // CREATE OR REPLACE may change the schema.
    collect(&remote, "CREATE OR REPLACE TABLE nation_d AS SELECT n_name, upper(n_name) AS shout FROM nation").await;
    let replaced = collect(&remote, "SELECT * FROM nation_d").await;
    assert_eq!(replaced[0].schema().fields().len(), 2);
    assert_eq!(row_count(&replaced), 25);

    // A statement that fails on one task commits nothing: same version, same rows.
    collect(&remote, "CREATE TABLE nums AS SELECT unnest(range(0, 20000)) AS n").await;
    let version = latest_version(lake, "nums").await;
    for session in [&remote, &embedded] {
        let failing = "INSERT INTO nums SELECT CASE WHEN n = 19999 THEN CAST(CAST(n AS VARCHAR) || 'x' AS BIGINT) ELSE n END FROM nums";
        let result = match session.sql(failing).await {
            Ok(df) => df.collect().await.map(|_| ()).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        assert!(result.is_err(), "the cast of '19999x' must fail the statement");
        assert_eq!(latest_version(lake, "nums").await, version);
        assert_eq!(count(session, "SELECT count(*) FROM nums").await, 20000);
    }

    // File statistics prune too: a new file holds only n >= 100000, so a filter on n skips the rest.
    collect(&remote, "INSERT INTO nums SELECT unnest(range(100000, 101000))").await;
    let url = url::Url::from_directory_path(lake.join("nums")).unwrap();
    let provider = DeltaTableProvider::open(&url, None).await.unwrap();
    let all = scanned_files(provider.scan(&state, None, &[], None).await.unwrap());
    let high = scanned_files(provider.scan(&state, None, &[col("n").gt_eq(lit(100000i64))], None).await.unwrap());
    assert!(high >= 1 && high < all, "min/max statistics pruned to {high} of {all} files");
    assert_eq!(count(&remote, "SELECT count(*) FROM nums WHERE n >= 100000").await, 1000);

    // UNION ALL over one aggregate, and of counts answered from Delta statistics: each row exactly
    // once, in time. Ballista 55's adaptive planner repeated rows of the first, hung on the second
    // (a dropped task status) and on the first with an ORDER BY (a failed re-plan).
    let unions = [
        ("WITH c AS (SELECT count(*) AS n, sum(l_quantity) AS q FROM lineitem_d) SELECT o FROM (SELECT 1 AS o FROM c UNION ALL SELECT 2 FROM c \
          UNION ALL SELECT 3 FROM c UNION ALL SELECT 4 FROM c UNION ALL SELECT 5 FROM c UNION ALL SELECT 6 FROM c UNION ALL SELECT 7 FROM c) ORDER BY o", 7),
        ("SELECT 'l' AS t, count(*) AS n FROM lineitem_d UNION ALL SELECT 'o', count(*) FROM orders_d UNION ALL SELECT 'n', count(*) FROM nation_d", 3),
    ];
    for session in [&remote, &embedded] {
        for (sql, rows) in unions {
            let batches = tokio::time::timeout(std::time::Duration::from_secs(60), collect(session, sql)).await.unwrap_or_else(|_| panic!("{sql} hung"));
            let got: Vec<String> = canonical_rows(&batches, 9);
            assert_eq!(got.len(), rows, "{sql}: {got:?}");
            let distinct: std::collections::BTreeSet<&String> = got.iter().collect();
            assert_eq!(distinct.len(), rows, "{sql}: {got:?}");
        }
    }

    // Ballista must not have lost an executor on the way.
    assert_eq!(cluster.executor_count(), 2);
}

fn scanned_files(plan: Arc<dyn ExecutionPlan>) -> usize {
    let source = plan.downcast_ref::<DataSourceExec>().expect("a Delta scan is a DataSourceExec");
    let config = source
        .data_source()
        .downcast_ref::<datafusion::datasource::physical_plan::FileScanConfig>()
        .expect("a file scan");
    config.file_groups.iter().map(|g| g.len()).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn udfs_give_the_same_results_remote_and_embedded() {
    let lake_dir = tempfile::tempdir().unwrap();
    let lake = lake_dir.path();
    let cluster = TestCluster::start();
    let remote = cluster.session(lake).await;
    let embedded = BackbeatSession::connect(ClusterTarget::Embedded { concurrency: 2 }, lake).await.unwrap();

    let titles: [Option<&str>; 8] = [
        Some("Beyoncé - Halo (Official Music Video)"),
        Some("HALO [Lyrics] ft. Drake"),
        Some(""),
        None,
        Some("東京フラッシュ"),
        Some("Ελλάδα - Remastered 2011"),
        Some("Don't Stop Me Now (2011 Remaster)"),
        Some("Halo (Remix)"),
    ];
    // A Delta table spread over several files, so executors (not the client) evaluate the UDFs.
    let values: Vec<String> = titles
        .iter()
        .enumerate()
        .map(|(i, t)| match t {
            Some(t) => format!("({i}, '{}')", t.replace('\'', "''")),
            None => format!("({i}, NULL)"),
        })
        .collect();
    collect(&remote, &format!("CREATE TABLE titles PARTITIONED BY (id) AS SELECT * FROM (VALUES {}) AS v(id, title)", values.join(", "))).await;

    let sql = "SELECT id, normalize_title(title) AS n, jaro_winkler(title, 'Halo') AS jw, token_set_ratio(title, 'halo beyonce') AS ts FROM titles ORDER BY id";
    let remote_rows = collect(&remote, sql).await;
    let embedded_rows = collect(&embedded, sql).await;
    assert_eq!(canonical_rows(&remote_rows, 12), canonical_rows(&embedded_rows, 12));

    // And both equal the functions applied directly.
    let batch = arrow::compute::concat_batches(&remote_rows[0].schema(), &remote_rows).unwrap();
    let n = batch.column(1).as_any().downcast_ref::<StringArray>().unwrap();
    let jw = batch.column(2).as_any().downcast_ref::<Float64Array>().unwrap();
    let ts = batch.column(3).as_any().downcast_ref::<Float64Array>().unwrap();
    for (i, title) in titles.iter().enumerate() {
        match title {
            Some(t) => {
                assert_eq!(n.value(i), text_similarity::normalize_title(t));
                assert_eq!(jw.value(i), text_similarity::jaro_winkler(t, "Halo"));
                assert_eq!(ts.value(i), text_similarity::token_set_ratio(t, "halo beyonce"));
            }
            None => assert!(n.is_null(i) && jw.is_null(i) && ts.is_null(i), "NULL in gives NULL out"),
        }
    }
    assert_eq!(n.value(0), "beyonce halo");
    assert_eq!(n.value(2), "");
}

/// `CREATE TABLE t AS SELECT ... WHERE false` makes an empty table with the query's columns (the
/// optimizer folds the query into an empty relation, whose plan protobuf has no schema).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_empty_query_keeps_its_columns_on_the_cluster_and_embedded() {
    let lake_dir = tempfile::tempdir().unwrap();
    let lake = lake_dir.path();
    let cluster = TestCluster::start();
    let remote = cluster.session(lake).await;
    let embedded = BackbeatSession::connect(ClusterTarget::Embedded { concurrency: 2 }, lake).await.unwrap();
    for (session, table) in [(&remote, "empty_r"), (&embedded, "empty_e")] {
        collect(session, &format!("CREATE TABLE {table} AS SELECT 0 AS a, 'x' AS b, CAST(1.5 AS DOUBLE) AS c WHERE false")).await;
        let df = session.sql(&format!("SELECT * FROM {table}")).await.unwrap();
        let names: Vec<String> = df.schema().fields().iter().map(|f| f.name().clone()).collect();
        assert_eq!(names, ["a", "b", "c"], "{table}\n{}", cluster.logs());
        assert_eq!(count(session, &format!("SELECT count(*) FROM {table}")).await, 0);
        collect(session, &format!("INSERT INTO {table} VALUES (1, 'y', 2.5)")).await;
        assert_eq!(count(session, &format!("SELECT count(*) FROM {table} WHERE b = 'y'")).await, 1);
        let batches = collect(session, "SELECT 7 AS n, 'z' AS s WHERE 1 = 0").await;
        assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 0);
    }
}
