//! The 22 TPC-H queries at scale factor 0.1 give the same answers through a real multi-process
//! cluster as through single-process DataFusion over the same Parquet files.

mod common;

use std::path::PathBuf;

use backbeat_cluster::sql_script::{returns_rows, split_statements};
use backbeat_cluster::tpch_data::{TPCH_TABLES, write_tpch_delta, write_tpch_parquet};
use backbeat_cluster::session::BackbeatSession;
use common::{TestCluster, canonical_rows};
use datafusion::prelude::SessionContext;

fn queries_dir() -> PathBuf {
    // The repository's clone sits beside shared/, in CI as on a developer machine.
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/tpch-queries")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tpch_sf01_cluster_matches_single_process_datafusion() {
    let lake_dir = tempfile::tempdir().unwrap();
    let lake = lake_dir.path();
    write_tpch_parquet(0.1, lake, 4).unwrap();

    let local = SessionContext::new();
    for table in TPCH_TABLES {
        local.register_parquet(table, lake.join(table).to_str().unwrap(), Default::default()).await.unwrap();
    }
    let cluster = TestCluster::start();
    let remote = cluster.session(lake).await;

    assert_all_queries_match(&local, &remote, &cluster).await;
}

/// Runs the 22 queries on `remote` (the cluster) and `local` (DataFusion) and asserts that each
/// returns the same rows.
async fn assert_all_queries_match(local: &SessionContext, remote: &BackbeatSession, cluster: &TestCluster) {
    let mut checked = 0;
    for q in 1..=22 {
        let path = queries_dir().join(format!("q{q}.sql"));
        let script = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        for sql in split_statements(&script) {
            let expected = local.sql(&sql).await.unwrap().collect().await.unwrap();
            let got = remote
                .sql(&sql)
                .await
                .unwrap_or_else(|e| panic!("q{q} planning: {e:#}"))
                .collect()
                .await
                .unwrap_or_else(|e| panic!("q{q} on the cluster: {e}\n{}", cluster.logs()));
            if returns_rows(&sql) {
                assert_eq!(canonical_rows(&got, 9), canonical_rows(&expected, 9), "q{q}: {sql}");
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 22, "every query returned a result to compare");
}

/// The Delta scan path gives the same answers as plain Parquet: the 22 queries over Delta copies
/// of the tables (the same data, one Delta data file per Parquet file), through the cluster,
/// against single-process DataFusion over the Parquet originals. Equal row counts also show that
/// the Delta scan is split across tasks rather than sent whole to each (which would duplicate
/// rows once per executor). The session also plans with one partition per task slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tpch_over_delta_copies_matches_parquet() {
    let dir = tempfile::tempdir().unwrap();
    let (parquet, delta) = (dir.path().join("parquet"), dir.path().join("delta"));
    write_tpch_parquet(0.05, &parquet, 3).unwrap();
    write_tpch_delta(&parquet, &delta).await.unwrap();
    for table in TPCH_TABLES {
        assert!(delta.join(table).join("_delta_log/00000000000000000000.json").is_file(), "{table} is a Delta table");
    }

    let local = SessionContext::new();
    for table in TPCH_TABLES {
        local.register_parquet(table, parquet.join(table).to_str().unwrap(), Default::default()).await.unwrap();
    }
    let cluster = TestCluster::start();
    let remote = cluster.session(&delta).await;
    // Two executors with two slots each.
    assert_eq!(remote.context().state().config().target_partitions(), 4);

    assert_all_queries_match(&local, &remote, &cluster).await;
    let lineitem = remote.sql("SELECT count(*) FROM lineitem").await.unwrap().collect().await.unwrap();
    let expected = local.sql("SELECT count(*) FROM lineitem").await.unwrap().collect().await.unwrap();
    assert_eq!(canonical_rows(&lineitem, 9), canonical_rows(&expected, 9));
}
