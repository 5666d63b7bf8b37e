//! ISRC matching end to end: generated playlists and catalogue ingested through the CLI, then
//! `isrc_match` and `isrc_eval` on the 2-executor cluster and embedded (same matches), blocking
//! recall, idempotent and incremental re-runs, and bad input.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float64Type, Int64Type};
use backbeat_cluster::session::{BackbeatSession, ClusterTarget};
use common::{TestCluster, query, repo, run, run_cli};




fn i64_at(batch: &RecordBatch, column: &str) -> i64 {
    let c = arrow::compute::cast(batch.column_by_name(column).unwrap(), &DataType::Int64).unwrap();
    c.as_primitive::<Int64Type>().value(0)
}

fn ingest(lake: &Path, args: &[&str]) {
    let mut all = vec!["ingest"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--lake", lake.to_str().unwrap()]);
    let out = run_cli(&all);
    assert!(out.status.success(), "backbeat {all:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Generated catalogue and playlists (no corruption) ingested into `lake` through the CLI.
fn load(lake: &Path, catalogue: u64, items: u64) {
    let src = tempfile::tempdir().unwrap();
    backbeat_datasets::isrc::generate(7, catalogue, items, 0.0, src.path(), |_| {}).unwrap();
    let file = |name: &str| src.path().join(name).to_string_lossy().into_owned();
    let spec = |name: &str| repo().join("jobs/ingest").join(name).to_string_lossy().into_owned();
    ingest(lake, &["csv", &file("catalogue.csv"), "--schema", &spec("isrc_catalogue.yaml")]);
    ingest(lake, &["csv", &file("ground_truth.csv"), "--schema", &spec("isrc_ground_truth.yaml")]);
    ingest(lake, &["json", &file("youtube_playlists.ndjson"), "--mapping", &spec("youtube_playlists.yaml")]);
}

async fn matches(session: &BackbeatSession) -> BTreeMap<String, (String, f64)> {
    let b = query(session, "SELECT item_id, isrc, match_probability FROM isrc_matches").await;
    let (ids, isrcs) = (b.column(0).as_string::<i32>(), b.column(1).as_string::<i32>());
    let p = b.column(2).as_primitive::<Float64Type>();
    (0..b.num_rows()).map(|i| (ids.value(i).to_string(), (isrcs.value(i).to_string(), p.value(i)))).collect()
}

async fn metric(session: &BackbeatSession, name: &str) -> f64 {
    let b = query(session, &format!("SELECT value FROM isrc_eval WHERE metric = '{name}'")).await;
    b.column(0).as_primitive::<Float64Type>().value(0)
}

fn versions(lake: &Path) -> Vec<usize> {
    ["isrc_matches", "isrc_review", "isrc_unmatched", "isrc_item_state", "isrc_model"]
        .iter()
        .map(|t| std::fs::read_dir(lake.join(t).join("_delta_log")).unwrap().filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".json")).count())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn matching_on_two_executors_equals_embedded_and_reruns_are_incremental() {
    let cluster = TestCluster::start();
    let lake = tempfile::tempdir().unwrap();
    load(lake.path(), 3000, 2000);
    let session = cluster.session(lake.path()).await;
    run(&session, "isrc_match", &[]).await.unwrap();
    run(&session, "isrc_eval", &[]).await.unwrap();
    let (precision, recall, false_rate) = (metric(&session, "precision").await, metric(&session, "recall").await, metric(&session, "false_match_rate").await);
    eprintln!("precision {precision:.4} recall {recall:.4} false-match rate {false_rate:.4}");
    assert!(precision >= 0.95 && recall >= 0.8 && false_rate <= 0.05, "precision {precision} recall {recall} false-match rate {false_rate}");
    // Covers, karaoke and tutorials never match.
    let derivative = query(&session, "SELECT count(*) AS n FROM isrc_matches m JOIN isrc_ground_truth t ON m.item_id = t.media_item_id WHERE t.kind IN ('cover', 'karaoke', 'tutorial')").await;
    assert_eq!(i64_at(&derivative, "n"), 0);

    // Blocking loses no true pair whose folded title and main artist are both exact.
    let lost = query(
        &session,
        "SELECT count(*) AS n FROM (SELECT DISTINCT media_item_id, isrc FROM isrc_ground_truth WHERE isrc IS NOT NULL AND isrc <> '') t \
         JOIN isrc_work_readings r ON r.item_id = t.media_item_id JOIN isrc_work_catalogue c ON c.isrc = t.isrc \
         WHERE r.title_n = c.title_n AND r.artist_n = c.artist_n \
           AND NOT EXISTS (SELECT 1 FROM isrc_work_pairs p WHERE p.item_id = t.media_item_id AND p.isrc = t.isrc)",
    )
    .await;
    assert_eq!(i64_at(&lost, "n"), 0);

    // The same matches embedded.
    let on_cluster = matches(&session).await;
    let embedded_lake = tempfile::tempdir().unwrap();
    load(embedded_lake.path(), 3000, 2000);
    backbeat_jobs::register_kernels();
    let embedded = BackbeatSession::connect(ClusterTarget::Embedded { concurrency: 2 }, embedded_lake.path()).await.unwrap();
    run(&embedded, "isrc_match", &[]).await.unwrap();
    let on_embedded = matches(&embedded).await;
    assert_eq!(on_cluster.len(), on_embedded.len());
    for (item, (isrc, p)) in &on_cluster {
        let (e_isrc, e_p) = &on_embedded[item];
        assert!(isrc == e_isrc && (p - e_p).abs() < 1e-9, "{item}: {isrc} {p} vs {e_isrc} {e_p}");
    }

    // A re-run with nothing new commits nothing.
    let before = versions(lake.path());
    run(&session, "isrc_match", &[]).await.unwrap();
    assert_eq!(versions(lake.path()), before);

    // One item becomes another video (title, channel, length): only it is matched again, the other
    // rows stay as they were.
    let (item, (_, _)) = on_cluster.iter().next().unwrap();
    query(&session, &format!(
        "CREATE OR REPLACE TABLE media_items AS SELECT media_item_id, CASE WHEN media_item_id = '{item}' THEN 'Minecraft Let''s Play Part 3' ELSE title END AS title, \
         CASE WHEN media_item_id = '{item}' THEN 'BlockBuilderGaming' ELSE channel_name END AS channel_name, description, \
         CASE WHEN media_item_id = '{item}' THEN 1834 ELSE duration_s END AS duration_s FROM media_items"
    ))
    .await;
    query(&session, &format!("CREATE OR REPLACE TABLE media_item_metadata_log AS SELECT * FROM media_item_metadata_log WHERE media_item_id <> '{item}'")).await;
    run(&session, "isrc_match", &[]).await.unwrap();
    let after = matches(&session).await;
    assert!(!after.contains_key(item), "the changed item no longer matches");
    assert_eq!(after.len(), on_cluster.len() - 1);
    for (other, v) in &after {
        assert_eq!(&on_cluster[other], v, "{other} was untouched");
    }
    let unmatched = query(&session, &format!("SELECT count(*) AS n FROM isrc_unmatched WHERE item_id = '{item}'")).await;
    assert_eq!(i64_at(&unmatched, "n"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_input_gives_defined_results_or_clear_errors() {
    let lake = tempfile::tempdir().unwrap();
    backbeat_jobs::register_kernels();
    let session = BackbeatSession::connect(ClusterTarget::Embedded { concurrency: 2 }, lake.path()).await.unwrap();
    let long = "la ".repeat(3500);
    query(&session, "CREATE TABLE isrc_catalogue AS VALUES ('GB-AAA-01-00001', 'Hello', 'Adele', 295000, 2015), ('GB-AAA-01-00002', 'Rolling in the Deep', 'Adele', 228000, 2010)").await;
    query(&session, "CREATE OR REPLACE TABLE isrc_catalogue AS SELECT column1 AS isrc, column2 AS title, column3 AS artists, CAST(column4 AS BIGINT) AS duration_ms, CAST(column5 AS INT) AS release_year FROM isrc_catalogue").await;
    query(&session, &format!(
        "CREATE TABLE media_items AS SELECT column1 AS media_item_id, column2 AS title, column3 AS channel_name, CAST(column4 AS INT) AS duration_s FROM (VALUES \
         ('a', 'Adele - Hello (Official Music Video)', 'AdeleVEVO', 367), ('b', '', NULL, NULL), ('c', NULL, 'Someone', 100), \
         ('d', '{long}', NULL, 200), ('e', 'Adele - Hello (Karaoke Version)', 'Sing King', 290), ('f', '(Official Video)', NULL, 228))"
    ))
    .await;
    run(&session, "isrc_match", &[("metadata_log", "")]).await.unwrap();
    let outcome = |item: &'static str| {
        let session = &session;
        async move {
            let b = query(session, &format!(
                "SELECT (SELECT count(*) FROM isrc_matches WHERE item_id = '{item}') AS matched, (SELECT count(*) FROM isrc_review WHERE item_id = '{item}') AS review, \
                 (SELECT count(*) FROM isrc_unmatched WHERE item_id = '{item}') AS unmatched"
            ))
            .await;
            (i64_at(&b, "matched"), i64_at(&b, "review"), i64_at(&b, "unmatched"))
        }
    };
    // Every item lands in exactly one outcome; the noise and the karaoke version do not match.
    for item in ["a", "b", "c", "d", "e", "f"] {
        let (m, r, u) = outcome(item).await;
        assert_eq!(m + r + u, 1, "item {item}: matched {m} review {r} unmatched {u}");
    }
    assert_eq!(outcome("e").await, (0, 0, 1));
    assert_eq!(outcome("b").await, (0, 0, 1));
    let reason = query(&session, "SELECT reason FROM isrc_unmatched WHERE item_id = 'e'").await;
    assert!(reason.column(0).as_string::<i32>().value(0).starts_with("derivative: "), "{reason:?}");

    // A table without a needed column: the error names the table and the column.
    query(&session, "CREATE TABLE videos AS SELECT media_item_id, title FROM media_items").await;
    let err = run(&session, "isrc_match", &[("items", "videos"), ("metadata_log", "")]).await.unwrap_err();
    assert!(format!("{err:#}").contains("table 'videos' has no column 'channel_name'"), "{err:#}");
    let err = run(&session, "isrc_match", &[("match_threshold", "0.3")]).await.unwrap_err();
    assert!(format!("{err:#}").contains("review_threshold <= match_threshold"), "{err:#}");
}

/// Invalid UTF-8 in the playlist export: the line is a dead letter, the rest is ingested.
#[test]
fn invalid_utf8_in_the_playlist_export_is_a_dead_letter() {
    let lake = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    let good = r#"{"playlist_id": "PL1", "items": [{"position": 0, "media_item": {"id": "v1", "title": "Adele - Hello", "channel": {"name": "AdeleVEVO"}, "duration_s": 367, "metadata_log": []}}]}"#;
    let mut bytes = good.as_bytes().to_vec();
    bytes.push(b'\n');
    bytes.extend_from_slice(b"{\"playlist_id\": \"PL2\", \"items\": [{\"position\": 0, \"media_item\": {\"id\": \"v2\", \"title\": \"Bad \xff\xfe title\"}}]}\n");
    let file = src.path().join("playlists.ndjson");
    std::fs::write(&file, bytes).unwrap();
    let mapping = repo().join("jobs/ingest/youtube_playlists.yaml");
    let out = run_cli(&["ingest", "json", file.to_str().unwrap(), "--mapping", mapping.to_str().unwrap(), "--lake", lake.path().to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let sql = |q: &str| {
        let out = run_cli(&["sql", q, "--format", "csv", "--lake", lake.path().to_str().unwrap()]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(sql("SELECT media_item_id FROM media_items").contains("v1"));
    let rejected = sql("SELECT line, reason FROM playlists__rejected");
    assert!(rejected.contains('2') && rejected.to_lowercase().contains("utf-8"), "{rejected}");
}
