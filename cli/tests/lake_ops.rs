//! Lake operations through a real 2-executor cluster and the embedded one: MERGE, UPDATE and DELETE
//! against the same change made with plain SQL on a copy; only affected files rewritten; OPTIMIZE,
//! VACUUM, DESCRIBE HISTORY and RESTORE; concurrent writers; a killed MERGE; delta-rs reading back.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use backbeat_cluster::delta::{DeltaTableProvider, update};
use backbeat_cluster::session::{BackbeatSession, ClusterTarget};
use common::{TestCluster, canonical_rows, i64s, query, repo};

/// Data files of the table's latest version.
async fn files(lake: &Path, table: &str) -> BTreeSet<String> {
    let url = url::Url::from_directory_path(lake.join(table)).unwrap();
    let provider = DeltaTableProvider::open(&url, None).await.unwrap();
    provider.files().await.unwrap().iter().map(|f| f.path().into_owned()).collect()
}

async fn version(lake: &Path, table: &str) -> u64 {
    let url = url::Url::from_directory_path(lake.join(table)).unwrap();
    DeltaTableProvider::open(&url, None).await.unwrap().spec().version.unwrap()
}

async fn rows(session: &BackbeatSession, table: &str) -> Vec<String> {
    canonical_rows(&[query(session, &format!("SELECT * FROM {table}")).await], 6)
}

/// One-row DML report as (affected, updated, deleted, inserted).
async fn dml(session: &BackbeatSession, sql: &str) -> (i64, i64, i64, i64) {
    let b = query(session, sql).await;
    let get = |c: &str| i64s(&b, c)[0];
    (get("num_affected_rows"), get("num_updated_rows"), get("num_deleted_rows"), get("num_inserted_rows"))
}

/// `t`: 2,000 rows in 7 partitions (one file each) plus 3 appended files; `r`: a copy.
async fn setup(session: &BackbeatSession) {
    query(
        session,
        "CREATE TABLE t PARTITIONED BY (g) AS SELECT id, id % 7 AS g, concat('v', CAST(id AS VARCHAR)) AS name, \
         id * 1.5 AS score FROM (SELECT unnest(range(0, 2000)) AS id)",
    )
    .await;
    for k in 0..3 {
        query(session, &format!("INSERT INTO t VALUES ({}, 7, 'extra', 0.5)", 5000 + k)).await;
    }
    query(session, "CREATE TABLE r AS SELECT * FROM t").await;
}

async fn dml_matches_plain_sql(session: &BackbeatSession, lake: &Path) {
    setup(session).await;

    // DELETE: only g = 3's file goes; the others are untouched.
    let before = files(lake, "t").await;
    assert_eq!(dml(session, "DELETE FROM t WHERE g = 3 AND id < 1000").await, (143, 0, 143, 0));
    let after = files(lake, "t").await;
    assert_eq!(before.difference(&after).count(), 1, "DELETE rewrote more than the g=3 file");
    assert!(before.difference(&after).all(|f| f.contains("g=3")));
    query(session, "CREATE OR REPLACE TABLE r AS SELECT * FROM r WHERE NOT (g = 3 AND id < 1000)").await;
    assert_eq!(rows(session, "t").await, rows(session, "r").await);

    // A DELETE matching nothing commits nothing.
    let v = version(lake, "t").await;
    assert_eq!(dml(session, "DELETE FROM t WHERE id < 0").await.0, 0);
    assert_eq!(version(lake, "t").await, v);

    // UPDATE with an alias, an expression over other columns, and a predicate over two partitions.
    assert_eq!(dml(session, "UPDATE t AS x SET score = x.score * 2, name = upper(x.name) WHERE x.g IN (1, 2) AND x.id % 10 = 1").await.1, 57);
    query(
        session,
        "CREATE OR REPLACE TABLE r AS SELECT id, g, CASE WHEN g IN (1, 2) AND id % 10 = 1 THEN upper(name) ELSE name END AS name, \
         CASE WHEN g IN (1, 2) AND id % 10 = 1 THEN score * 2 ELSE score END AS score FROM r",
    )
    .await;
    assert_eq!(rows(session, "t").await, rows(session, "r").await);

    // MERGE: of source ids 0..69, 60 match (10 were deleted above): 17 deletes (op 'd'), 43
    // updates; the 10 unmatched and 9000..9029 are inserted.
    query(
        session,
        "CREATE TABLE s AS SELECT id, CASE WHEN id < 20 THEN 'd' ELSE 'u' END AS op, concat('m', CAST(id AS VARCHAR)) AS name, \
         id * 0.25 AS score FROM (SELECT unnest(range(0, 70)) AS id) UNION ALL \
         SELECT id, 'i' AS op, 'new' AS name, 1.0 AS score FROM (SELECT unnest(range(9000, 9030)) AS id)",
    )
    .await;
    let merge = "MERGE INTO t USING s ON t.id = s.id \
                 WHEN MATCHED AND s.op = 'd' THEN DELETE \
                 WHEN MATCHED THEN UPDATE SET name = s.name, score = s.score \
                 WHEN NOT MATCHED THEN INSERT (id, g, name, score) VALUES (s.id, s.id % 7, s.name, s.score)";
    assert_eq!(dml(session, merge).await, (100, 43, 17, 40));
    query(
        session,
        "CREATE OR REPLACE TABLE r AS \
         SELECT r.* FROM r WHERE r.id NOT IN (SELECT id FROM s) \
         UNION ALL SELECT r.id, r.g, s.name, s.score FROM r JOIN s ON r.id = s.id WHERE s.op <> 'd' \
         UNION ALL SELECT s.id, s.id % 7, s.name, s.score FROM s WHERE s.id NOT IN (SELECT id FROM r)",
    )
    .await;
    assert_eq!(rows(session, "t").await, rows(session, "r").await);

    // UPDATE SET * / INSERT *, and NOT MATCHED BY SOURCE restricted to one partition.
    query(session, "CREATE TABLE s2 AS SELECT id, g, 'star' AS name, 9.0 AS score FROM t WHERE id BETWEEN 100 AND 104").await;
    let merge = "MERGE INTO t USING s2 ON t.id = s2.id WHEN MATCHED THEN UPDATE SET * \
                 WHEN NOT MATCHED BY SOURCE AND t.g = 7 THEN DELETE";
    // ids 100, 102, 103, 104 (101 was deleted) are updated; the 3 rows of partition 7 deleted.
    assert_eq!(dml(session, merge).await, (7, 4, 3, 0));
    query(
        session,
        "CREATE OR REPLACE TABLE r AS SELECT id, g, CASE WHEN id BETWEEN 100 AND 104 THEN 'star' ELSE name END AS name, \
         CASE WHEN id BETWEEN 100 AND 104 THEN 9.0 ELSE score END AS score FROM r WHERE g <> 7",
    )
    .await;
    assert_eq!(rows(session, "t").await, rows(session, "r").await);

    // A key DELETE by subquery (its key range prunes files first).
    let keys = "SELECT id FROM s WHERE op = 'u' AND id < 30";
    let expected = i64s(&query(session, &format!("SELECT count(*) AS n FROM r WHERE id IN ({keys})")).await, "n")[0];
    assert!(expected > 0);
    assert_eq!(dml(session, &format!("DELETE FROM t WHERE id IN ({keys})")).await.2, expected);
    query(session, &format!("CREATE OR REPLACE TABLE r AS SELECT * FROM r WHERE id NOT IN ({keys})")).await;
    assert_eq!(rows(session, "t").await, rows(session, "r").await);

    // A source alias with a column list renames the source's columns (the data is unchanged here).
    let renamed = "MERGE INTO t USING (SELECT name, id FROM s2) AS q(n, i) ON t.id = q.i WHEN MATCHED THEN UPDATE SET name = q.n";
    assert_eq!(dml(session, renamed).await, (4, 4, 0, 0));
    assert_eq!(rows(session, "t").await, rows(session, "r").await);

    // Timestamps below a millisecond: the log's bounds are truncated to milliseconds, and the
    // file must still be found.
    query(session, "CREATE TABLE ts AS SELECT CAST('2024-05-01T10:00:00.000250' AS TIMESTAMP) AS ts").await;
    let at = "ts = TIMESTAMP '2024-05-01 10:00:00.000250'";
    assert_eq!(i64s(&query(session, &format!("SELECT count(*) AS n FROM ts WHERE {at}")).await, "n"), vec![1]);
    assert_eq!(dml(session, &format!("DELETE FROM ts WHERE {at}")).await.2, 1);

    // Two source rows for one target row: an error, and the table stays at its version.
    let v = version(lake, "t").await;
    query(session, "CREATE TABLE dup AS SELECT 502 AS id, 'a' AS name UNION ALL SELECT 502, 'b'").await;
    let err = session
        .sql("MERGE INTO t USING dup ON t.id = dup.id WHEN MATCHED THEN UPDATE SET name = dup.name")
        .await
        .map(|_| ())
        .unwrap_err();
    assert!(format!("{err:#}").contains("several source rows matched the same target row"), "{err:#}");
    assert_eq!(version(lake, "t").await, v);

    // Errors name what is wrong.
    let err = session.sql("UPDATE t SET nope = 1").await.map(|_| ()).unwrap_err();
    assert!(format!("{err:#}").contains("'nope'"), "{err:#}");
    let err = session.sql("DELETE FROM missing WHERE id = 1").await.map(|_| ()).unwrap_err();
    assert!(format!("{err:#}").contains("no lake table 'missing'"), "{err:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn merge_update_delete_match_plain_sql_on_the_cluster() {
    let cluster = TestCluster::start();
    let lake = tempfile::tempdir().unwrap();
    let session = cluster.session(lake.path()).await;
    dml_matches_plain_sql(&session, lake.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn merge_update_delete_match_plain_sql_embedded() {
    let lake = tempfile::tempdir().unwrap();
    let session = BackbeatSession::connect(ClusterTarget::Embedded { concurrency: 2 }, lake.path()).await.unwrap();
    dml_matches_plain_sql(&session, lake.path()).await;
}

/// Dense changes (many source keys per file their range reaches) skip the first pass: every file
/// the keys' range reaches is rewritten, and the writers count what each row became.
async fn dense_changes_run_in_one_pass(session: &BackbeatSession, lake: &Path) {
    // `d`: ids 0..3999 as 4 appends of 1,000 consecutive ids, so 4 files with disjoint ranges.
    query(session, "SET datafusion.execution.target_partitions = 1").await;
    for k in 0..4 {
        let select = format!(
            "SELECT id, concat('v', CAST(id AS VARCHAR)) AS name, id * 0.5 AS score FROM (SELECT unnest(range({}, {})) AS id)",
            k * 1000,
            (k + 1) * 1000
        );
        query(session, &if k == 0 { format!("CREATE TABLE d AS {select}") } else { format!("INSERT INTO d {select}") }).await;
    }
    // Back to several tasks, so that the writers' counts come from both executors.
    query(session, "SET datafusion.execution.target_partitions = 4").await;
    query(session, "CREATE TABLE dr AS SELECT * FROM d").await;
    assert_eq!(files(lake, "d").await.len(), 4);

    // 1,100 source rows over the 2 files of ids 2000..3999 (the range reaches 2000..4099): ids
    // 2000..2999 change (every tenth is deleted), 4000..4099 are new.
    query(
        session,
        "CREATE TABLE ch AS SELECT id, CASE WHEN id % 10 = 0 THEN 'd' ELSE 'u' END AS op, 'changed' AS name, -1.0 AS score \
         FROM (SELECT unnest(range(2000, 3000)) AS id) UNION ALL \
         SELECT id, 'u' AS op, 'new' AS name, 2.0 AS score FROM (SELECT unnest(range(4000, 4100)) AS id)",
    )
    .await;
    let before = files(lake, "d").await;
    let merge = "MERGE INTO d USING ch ON d.id = ch.id WHEN MATCHED AND ch.op = 'd' THEN DELETE \
                 WHEN MATCHED THEN UPDATE SET name = ch.name, score = ch.score WHEN NOT MATCHED THEN INSERT (id, name, score) VALUES (ch.id, ch.name, ch.score)";
    assert_eq!(dml(session, merge).await, (1100, 900, 100, 100));
    let after = files(lake, "d").await;
    // One pass rewrites both files the range reaches, the untouched ids 3000..3999 included; the
    // files of ids 0..1999 stay.
    assert_eq!(before.difference(&after).count(), 2, "one pass replaces exactly the 2 candidate files");
    let untouched: BTreeSet<String> = before.intersection(&after).cloned().collect();
    assert_eq!(untouched.len(), 2);
    query(
        session,
        "CREATE OR REPLACE TABLE dr AS SELECT dr.* FROM dr WHERE dr.id NOT IN (SELECT id FROM ch) \
         UNION ALL SELECT dr.id, ch.name, ch.score FROM dr JOIN ch ON dr.id = ch.id WHERE ch.op <> 'd' \
         UNION ALL SELECT ch.id, ch.name, ch.score FROM ch WHERE ch.id NOT IN (SELECT id FROM dr)",
    )
    .await;
    assert_eq!(rows(session, "d").await, rows(session, "dr").await);

    // A key DELETE of 501 ids: 500 in the file of ids 0..999 and id 3500. Its range reaches the
    // file of ids 1000..1999 too, which holds none of them and is rewritten all the same.
    query(session, "CREATE TABLE dk AS SELECT id FROM (SELECT unnest(range(0, 1000, 2)) AS id) UNION ALL SELECT 3500").await;
    assert_eq!(dml(session, "DELETE FROM d WHERE id IN (SELECT id FROM dk)").await, (501, 0, 501, 0));
    assert!(files(lake, "d").await.is_disjoint(&untouched), "one pass rewrites every file the keys' range reaches");
    query(session, "CREATE OR REPLACE TABLE dr AS SELECT * FROM dr WHERE id NOT IN (SELECT id FROM dk)").await;
    assert_eq!(rows(session, "d").await, rows(session, "dr").await);

    // The same DELETE again reaches the rewritten file and changes nothing: no commit, and the
    // copy it wrote is deleted.
    let (v, on_disk) = (version(lake, "d").await, parquet_files(&lake.join("d")));
    assert_eq!(dml(session, "DELETE FROM d WHERE id IN (SELECT id FROM dk)").await, (0, 0, 0, 0));
    assert_eq!(version(lake, "d").await, v);
    assert_eq!(parquet_files(&lake.join("d")), on_disk, "a DELETE that changed nothing left files behind");

    // A source row twice: the writers count 1,001 target rows where the file holds 1,000, and
    // nothing is committed.
    query(session, "CREATE TABLE twice AS SELECT id, 'x' AS name FROM (SELECT unnest(range(1000, 1040)) AS id) UNION ALL SELECT 1007, 'y'").await;
    let err = session
        .sql("MERGE INTO d USING twice ON d.id = twice.id WHEN MATCHED THEN UPDATE SET name = twice.name")
        .await
        .map(|_| ())
        .unwrap_err();
    assert!(format!("{err:#}").contains("several source rows matched the same target row"), "{err:#}");
    assert_eq!(version(lake, "d").await, v);
    assert_eq!(parquet_files(&lake.join("d")), on_disk, "the failed MERGE left its files behind");
    assert_eq!(rows(session, "d").await, rows(session, "dr").await);

    // A key column named like the keys' own column inside the statement (`v`) is still the
    // target's: 100 of 200 rows go, not all of them.
    query(session, "CREATE TABLE kv AS SELECT id AS v, id * 2 AS w FROM (SELECT unnest(range(0, 200)) AS id)").await;
    query(session, "CREATE TABLE kdel AS SELECT id AS k FROM (SELECT unnest(range(0, 100)) AS id)").await;
    assert_eq!(dml(session, "DELETE FROM kv WHERE v IN (SELECT k FROM kdel)").await.2, 100);
    assert_eq!(i64s(&query(session, "SELECT count(*) AS n FROM kv WHERE v >= 100").await, "n"), vec![100]);
    assert_eq!(i64s(&query(session, "SELECT count(*) AS n FROM kv").await, "n"), vec![100]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dense_merges_and_deletes_run_in_one_pass_on_the_cluster() {
    let cluster = TestCluster::start();
    let lake = tempfile::tempdir().unwrap();
    let session = cluster.session(lake.path()).await;
    dense_changes_run_in_one_pass(&session, lake.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dense_merges_and_deletes_run_in_one_pass_embedded() {
    let lake = tempfile::tempdir().unwrap();
    let session = BackbeatSession::connect(ClusterTarget::Embedded { concurrency: 2 }, lake.path()).await.unwrap();
    dense_changes_run_in_one_pass(&session, lake.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn optimize_vacuum_history_and_restore_on_the_cluster() {
    let cluster = TestCluster::start();
    let lake_dir = tempfile::tempdir().unwrap();
    let session = cluster.session(lake_dir.path()).await;
    maintenance(session, lake_dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn optimize_vacuum_history_and_restore_embedded() {
    let lake_dir = tempfile::tempdir().unwrap();
    let session = BackbeatSession::connect(ClusterTarget::Embedded { concurrency: 2 }, lake_dir.path()).await.unwrap();
    maintenance(session, lake_dir.path()).await;
}

/// OPTIMIZE, DESCRIBE HISTORY, VACUUM and RESTORE on a table of 12 tiny files.
async fn maintenance(session: BackbeatSession, lake: &Path) {
    query(&session, "CREATE TABLE o AS SELECT 0 AS id, 'a' AS tag").await;
    for i in 1..12 {
        query(&session, &format!("INSERT INTO o VALUES ({i}, 'a'), ({}, 'b')", i + 100)).await;
    }
    let before = rows(&session, "o").await;
    assert_eq!(files(lake, "o").await.len(), 12);
    let v_before = version(lake, "o").await;

    let report = query(&session, "OPTIMIZE o").await;
    assert_eq!(i64s(&report, "num_files_removed"), vec![12]);
    assert_eq!(files(lake, "o").await.len(), 1, "12 tiny files pack into one");
    assert_eq!(rows(&session, "o").await, before, "OPTIMIZE changed the data");
    // Time travel still reads the version before.
    assert_eq!(canonical_rows(&[query(&session, &format!("SELECT * FROM \"o@v{v_before}\"")).await], 6), before);

    // The history names every operation, newest first.
    let history = query(&session, "DESCRIBE HISTORY o").await;
    let operations = history.column_by_name("operation").unwrap();
    let operations = arrow::compute::cast(operations, &arrow::datatypes::DataType::Utf8).unwrap();
    let operations: Vec<&str> = operations.as_any().downcast_ref::<arrow::array::StringArray>().unwrap().iter().flatten().collect();
    assert_eq!(operations[0], "OPTIMIZE");
    assert_eq!(*operations.last().unwrap(), "CREATE TABLE");
    assert_eq!(operations.len() as u64, version(lake, "o").await + 1);

    // VACUUM refuses a retention under the table's 7 days unless the session turns the check off.
    let err = session.sql("VACUUM o RETAIN 0 HOURS").await.map(|_| ()).unwrap_err();
    assert!(format!("{err:#}").contains("retention"), "{err:#}");
    let current = files(lake, "o").await;
    query(&session, "SET backbeat.vacuum.retention_check = false").await;
    let dry = query(&session, "VACUUM o RETAIN 0 HOURS DRY RUN").await;
    assert_eq!(dry.num_rows(), 12, "the 12 packed files are vacuumable");
    let vacuumed = query(&session, "VACUUM o RETAIN 0 HOURS").await;
    assert_eq!(vacuumed.num_rows(), 12);
    for f in &current {
        assert!(lake.join("o").join(f).exists(), "VACUUM removed {f}, which the current version references");
    }
    assert_eq!(rows(&session, "o").await, before);

    // RESTORE brings back an older version's rows as a new commit.
    let deleted_at = version(lake, "o").await;
    query(&session, "DELETE FROM o WHERE tag = 'b'").await;
    assert_eq!(rows(&session, "o").await.len(), 12);
    let report = query(&session, &format!("RESTORE TABLE o TO VERSION AS OF {deleted_at}")).await;
    assert_eq!(i64s(&report, "version"), vec![deleted_at as i64 + 2]);
    assert_eq!(rows(&session, "o").await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn concurrent_appends_all_land_and_a_stale_update_fails_cleanly() {
    let cluster = TestCluster::start();
    let lake_dir = tempfile::tempdir().unwrap();
    let lake = lake_dir.path();
    let session = cluster.session(lake).await;
    query(&session, "CREATE TABLE c AS SELECT 0 AS id, 0 AS writer").await;

    // 8 writers, each its own session, INSERT at once: every commit lands.
    let mut tasks = Vec::new();
    for w in 1..=8 {
        let url = cluster.url.clone();
        let lake = lake.to_path_buf();
        tasks.push(tokio::spawn(async move {
            let s = BackbeatSession::connect(ClusterTarget::Remote(url), &lake).await.unwrap();
            query(&s, &format!("INSERT INTO c SELECT unnest(range(1, 101)) AS id, {w} AS writer")).await;
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let counts = query(&session, "SELECT writer, count(*) AS n FROM c GROUP BY writer ORDER BY writer").await;
    assert_eq!(i64s(&counts, "writer"), (0..=8).collect::<Vec<_>>());
    assert_eq!(i64s(&counts, "n"), [vec![1], vec![100; 8]].concat());
    assert_eq!(version(lake, "c").await, 8);

    // An UPDATE that read version v loses to an overwrite committed after v: a conflict error,
    // nothing written, the overwrite's rows intact.
    let url = url::Url::from_directory_path(lake.join("c")).unwrap();
    let stale = DeltaTableProvider::open(&url, None).await.unwrap();
    query(&session, "INSERT OVERWRITE c SELECT 42 AS id, 9 AS writer").await;
    let err = update::update(session.context(), &stale, "c", &[("writer".into(), "writer + 1".into())], Some("id > 50"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("write conflict"), "{err}");
    assert_eq!(rows(&session, "c").await, vec!["42 | 9".to_string()]);
    assert_eq!(version(lake, "c").await, 9);

    // A DELETE that read version v loses to an OPTIMIZE that packed its file after v (delta-rs's
    // own check lets it through, as OPTIMIZE's removes are not data changes): the deleted row
    // would come back with the packed file.
    query(&session, "CREATE TABLE p AS SELECT 1 AS id").await;
    for i in 2..=4 {
        query(&session, &format!("INSERT INTO p VALUES ({i})")).await;
    }
    let url = url::Url::from_directory_path(lake.join("p")).unwrap();
    let stale = DeltaTableProvider::open(&url, None).await.unwrap();
    query(&session, "OPTIMIZE p").await;
    let err = update::delete(session.context(), &stale, "p", Some("id = 1")).await.unwrap_err();
    assert!(err.to_string().contains("write conflict"), "{err}");
    assert_eq!(rows(&session, "p").await, vec!["1", "2", "3", "4"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_merge_leaves_the_old_version_or_the_new_one() {
    let lake_dir = tempfile::tempdir().unwrap();
    let lake = lake_dir.path();
    let lake_arg = lake.to_str().unwrap();
    let setup = lake.join("setup.sql");
    std::fs::write(
        &setup,
        "CREATE TABLE k AS SELECT id, id % 100 AS v FROM (SELECT unnest(range(0, 2000000)) AS id);\n\
         CREATE TABLE ks AS SELECT id, -1 AS v FROM (SELECT unnest(range(0, 2000000, 3)) AS id);\n",
    )
    .unwrap();
    let out = common::run_cli(&["sql", "-f", setup.to_str().unwrap(), "--lake", lake_arg]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let before = version(lake, "k").await;
    let old_files = parquet_files(&lake.join("k"));
    let merge = "MERGE INTO k USING ks ON k.id = ks.id WHEN MATCHED THEN UPDATE SET v = ks.v";
    // Killed as soon as the MERGE's first new data file lands, i.e. while it writes, before its
    // commit (the MERGE takes ~1.3 s in a debug build; a fixed delay would often miss it).
    let mut child = common::backbeat().args(["sql", merge, "--lake", lake_arg]).stdout(std::process::Stdio::null()).spawn().unwrap();
    let started = std::time::Instant::now();
    while parquet_files(&lake.join("k")).len() == old_files.len() && started.elapsed() < Duration::from_secs(120) {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let _ = child.kill();
    let _ = child.wait();
    let session = BackbeatSession::connect(ClusterTarget::Embedded { concurrency: 2 }, lake).await.unwrap();
    let now = version(lake, "k").await;
    let updated = i64s(&query(&session, "SELECT count(*) AS n FROM k WHERE v = -1").await, "n")[0];
    let total = i64s(&query(&session, "SELECT count(*) AS n FROM k").await, "n")[0];
    assert_eq!(total, 2_000_000);
    eprintln!("MERGE killed after {:?}: version {now} (was {before})", started.elapsed());
    if now == before {
        assert_eq!(updated, 0, "the old version holds no merged rows");
        assert!(parquet_files(&lake.join("k")).len() > old_files.len(), "killed mid-write: its files are left unreferenced");
    } else {
        assert_eq!(now, before + 1);
        assert_eq!(updated, 666_667, "the new version holds every merged row");
    }
}

/// Parquet files under `dir`, at any depth.
fn parquet_files(dir: &Path) -> BTreeSet<std::path::PathBuf> {
    let mut out = BTreeSet::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(parquet_files(&path));
        } else if path.extension().is_some_and(|e| e == "parquet") {
            out.insert(path);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tables_the_verbs_write_read_back_in_delta_rs_python() {
    let lake_dir = tempfile::tempdir().unwrap();
    let lake = lake_dir.path();
    let session = BackbeatSession::connect(ClusterTarget::Embedded { concurrency: 2 }, lake).await.unwrap();
    setup(&session).await;
    query(&session, "UPDATE t SET score = -1 WHERE id % 5 = 0").await;
    query(&session, "DELETE FROM t WHERE g = 4").await;
    query(&session, "MERGE INTO t USING r ON t.id = r.id AND r.g = 2 WHEN MATCHED THEN DELETE").await;
    query(&session, "OPTIMIZE t").await;
    let sums = query(&session, "SELECT count(*) AS n, sum(id) AS s, CAST(sum(score) AS BIGINT) AS sc FROM t").await;

    let venv = std::process::Command::new("bash").arg(repo().join("scripts/delta_venv.sh")).output().unwrap();
    assert!(venv.status.success(), "delta venv: {}", String::from_utf8_lossy(&venv.stderr));
    let python = String::from_utf8(venv.stdout).unwrap().trim().to_string();
    // os._exit: the interpreter's shutdown, with delta-rs's and Arrow's thread pools still up,
    // occasionally aborted ("terminate called without an active exception") after the answer.
    let script = "import os, sys, deltalake, pyarrow.compute as pc\n\
                  t = deltalake.DeltaTable(sys.argv[1]).to_pyarrow_table()\n\
                  print(t.num_rows, pc.sum(t['id']).as_py(), int(pc.sum(t['score']).as_py()), flush=True)\n\
                  os._exit(0)\n";
    let out = std::process::Command::new(python).args(["-c", script, lake.join("t").to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "delta-rs could not read the table: {}", String::from_utf8_lossy(&out.stderr));
    let theirs = String::from_utf8(out.stdout).unwrap();
    let expected = format!("{} {} {}", i64s(&sums, "n")[0], i64s(&sums, "s")[0], i64s(&sums, "sc")[0]);
    assert_eq!(theirs.trim(), expected);
}

async fn series_queries(session: &BackbeatSession) {
    assert_eq!(i64s(&query(session, "SELECT count(*) AS n FROM generate_series(1, 10)").await, "n"), vec![10]);
    assert_eq!(i64s(&query(session, "SELECT sum(value) AS s FROM range(0, 100, 7)").await, "s"), vec![735]);
    let hours = "SELECT count(*) AS n FROM generate_series(TIMESTAMP '2024-01-01 00:00:00', TIMESTAMP '2024-01-02 00:00:00', INTERVAL '1 hour')";
    assert_eq!(i64s(&query(session, hours).await, "n"), vec![25]);
    // A series joined to a lake table, and written into one.
    query(session, "CREATE TABLE sq AS SELECT value AS id, value * value AS sq FROM generate_series(1, 1000)").await;
    let joined = "SELECT count(*) AS n FROM sq JOIN range(0, 1000, 2) AS r ON sq.id = r.value";
    assert_eq!(i64s(&query(session, joined).await, "n"), vec![499]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn generate_series_and_range_run_on_the_cluster_and_embedded() {
    let cluster = TestCluster::start();
    let lake = tempfile::tempdir().unwrap();
    series_queries(&cluster.session(lake.path()).await).await;
    let lake = tempfile::tempdir().unwrap();
    let embedded = BackbeatSession::connect(ClusterTarget::Embedded { concurrency: 2 }, lake.path()).await.unwrap();
    series_queries(&embedded).await;
}

/// Commits write a checkpoint when `delta.checkpointInterval` says so (delta-rs's CommitBuilder
/// does not by default, and every open then replayed every JSON commit); the table reads the same
/// through it, here and in delta-rs.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn commits_write_checkpoints_at_the_tables_interval() {
    let lake_dir = tempfile::tempdir().unwrap();
    let lake = lake_dir.path();
    let session = BackbeatSession::connect(ClusterTarget::Embedded { concurrency: 2 }, lake).await.unwrap();
    query(&session, "CREATE TABLE c AS SELECT * FROM (VALUES (1, 'a'), (2, 'b')) AS v(id, s)").await;
    let venv = std::process::Command::new("bash").arg(repo().join("scripts/delta_venv.sh")).output().unwrap();
    assert!(venv.status.success(), "delta venv: {}", String::from_utf8_lossy(&venv.stderr));
    let python = String::from_utf8(venv.stdout).unwrap().trim().to_string();
    let run = |script: &str| {
        let out = std::process::Command::new(&python).args(["-c", script, lake.join("c").to_str().unwrap()]).output().unwrap();
        assert!(out.status.success(), "delta-rs: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    // Version 1 sets the interval to 3: versions 2 and 5 are due ((version + 1) % 3 == 0).
    run("import os, sys, deltalake\n\
         deltalake.DeltaTable(sys.argv[1]).alter.set_table_properties({'delta.checkpointInterval': '3'})\n\
         os._exit(0)\n");
    let session = BackbeatSession::connect(ClusterTarget::Embedded { concurrency: 2 }, lake).await.unwrap();
    for id in 3..=5 {
        query(&session, &format!("INSERT INTO c VALUES ({id}, 'x')")).await;
    }
    query(&session, "DELETE FROM c WHERE id = 1").await;
    let checkpoints: BTreeSet<String> = std::fs::read_dir(lake.join("c/_delta_log"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".checkpoint.parquet"))
        .collect();
    assert_eq!(
        checkpoints,
        BTreeSet::from(["00000000000000000002.checkpoint.parquet".to_string(), "00000000000000000005.checkpoint.parquet".to_string()])
    );
    assert_eq!(version(lake, "c").await, 5);
    let sums = query(&session, "SELECT count(*) AS n, sum(id) AS s FROM c").await;
    assert_eq!((i64s(&sums, "n")[0], i64s(&sums, "s")[0]), (4, 14));
    let theirs = run("import os, sys, deltalake, pyarrow.compute as pc\n\
                      t = deltalake.DeltaTable(sys.argv[1]).to_pyarrow_table()\n\
                      print(t.num_rows, pc.sum(t['id']).as_py(), flush=True)\n\
                      os._exit(0)\n");
    assert_eq!(theirs, "4 14");
}
