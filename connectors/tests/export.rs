//! Export from Delta tables to the real PostgreSQL and Redis on this machine and a real
//! MongoDB-protocol server (SecantusDB, started by `scripts/mongo_server.sh`): every type round
//! trips, three exports give identical content, a failing export leaves the previous content, and
//! awkward names are quoted or refused.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Once;

use backbeat_cluster::session::{BackbeatSession, ClusterTarget};
use backbeat_connectors::export::{ExportOptions, ExportTarget, export_table, target_for};
use futures::TryStreamExt;
use mongodb::bson::{Bson, Document, doc};
use redis::AsyncCommands;

const PG_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
const REDIS_URL: &str = "redis://127.0.0.1:6379/0";

fn mongo_url(db: &str) -> String {
    static START: Once = Once::new();
    START.call_once(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/mongo_server.sh");
        let status = std::process::Command::new("bash").arg(script).status().expect("run scripts/mongo_server.sh");
        assert!(status.success(), "no MongoDB-protocol server: scripts/mongo_server.sh failed");
    });
    let port = std::env::var("BACKBEAT_MONGO_PORT").unwrap_or_else(|_| "27017".into());
    format!("mongodb://127.0.0.1:{port}/{db}?directConnection=true")
}

fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", &uuid::Uuid::new_v4().simple().to_string()[..10])
}

async fn session(lake: &Path) -> BackbeatSession {
    BackbeatSession::connect(ClusterTarget::Embedded { concurrency: 2 }, lake).await.unwrap()
}

async fn sql(session: &BackbeatSession, statement: &str) {
    session.sql(statement).await.unwrap().collect().await.unwrap();
}

/// A Delta table with every exported type, a row of NULLs, and awkward text.
async fn all_types_table(session: &BackbeatSession) {
    sql(
        session,
        r#"CREATE TABLE all_types AS
        SELECT * FROM (
          SELECT 1 AS id, arrow_cast(7, 'Int32') AS i32, 9007199254740993 AS i64, 1.5 AS f64, true AS b,
                 'it''s "quoted", ünïcode' AS s, DATE '2024-02-29' AS d,
                 arrow_cast('2024-03-01T10:11:12.345678', 'Timestamp(µs)') AS ts,
                 arrow_cast('2024-03-01T10:11:12.345Z', 'Timestamp(µs, "UTC")') AS tstz,
                 CAST('-12345.678' AS DECIMAL(12,3)) AS dec,
                 make_array(1, 2, 3) AS li, make_array('a', 'b') AS ls,
                 named_struct('x', 1, 'y', 'why') AS st
          UNION ALL
          SELECT 2, CAST(NULL AS INT), CAST(NULL AS BIGINT), CAST(NULL AS DOUBLE), CAST(NULL AS BOOLEAN), CAST(NULL AS VARCHAR),
                 CAST(NULL AS DATE), arrow_cast(NULL, 'Timestamp(µs)'), arrow_cast(NULL, 'Timestamp(µs, "UTC")'),
                 CAST(NULL AS DECIMAL(12,3)), make_array(4), make_array('c'), named_struct('x', 2, 'y', CAST(NULL AS VARCHAR))
        )"#,
    )
    .await;
}

async fn pg() -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(PG_URL, tokio_postgres::NoTls).await.expect("PostgreSQL on 127.0.0.1:5432");
    tokio::spawn(conn);
    client
}

async fn pg_rows(client: &tokio_postgres::Client, sql: &str) -> Vec<Vec<Option<String>>> {
    client
        .query(sql, &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (0..r.len()).map(|i| r.get::<_, Option<String>>(i)).collect())
        .collect()
}

fn options(key: &[&str]) -> ExportOptions {
    ExportOptions { key: key.iter().map(|k| k.to_string()).collect(), ..Default::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_round_trips_every_type_and_replaces_atomically() {
    let lake = tempfile::tempdir().unwrap();
    let session = session(lake.path()).await;
    all_types_table(&session).await;
    let client = pg().await;
    let schema = unique("export_test");
    client.batch_execute(&format!("CREATE SCHEMA {schema}")).await.unwrap();
    let name = format!("{schema}.we\"ird name");
    let mut opts = options(&["id"]);
    opts.name = Some(name.clone());
    let target = target_for(PG_URL, "all_types", &opts).unwrap();
    let quoted = format!("{schema}.\"we\"\"ird name\"");
    let select = format!(
        "SELECT id::text, i32::text, i64::text, f64::text, b::text, s, d::text, ts::text, tstz AT TIME ZONE 'UTC' || '', dec::text, li::text, ls::text, st::text FROM {quoted} ORDER BY id"
    );
    let mut snapshots = vec![];
    for _ in 0..3 {
        let report = export_table(&session, "all_types", None, &target, false).await.unwrap();
        assert_eq!(report.rows, 2);
        snapshots.push(pg_rows(&client, &select).await);
    }
    let s = |v: &str| Some(v.to_string());
    assert_eq!(
        snapshots[0][0],
        vec![
            s("1"),
            s("7"),
            s("9007199254740993"),
            s("1.5"),
            s("true"),
            s("it's \"quoted\", ünïcode"),
            s("2024-02-29"),
            s("2024-03-01 10:11:12.345678"),
            s("2024-03-01 10:11:12.345"),
            s("-12345.678"),
            s("{1,2,3}"),
            s("{a,b}"),
            s("{\"x\": 1, \"y\": \"why\"}"),
        ]
    );
    assert_eq!(snapshots[0][1][1..10], vec![None; 9]);
    assert!(snapshots.iter().all(|x| x == &snapshots[0]), "three exports, identical content");
    let types = pg_rows(
        &client,
        &format!("SELECT data_type FROM information_schema.columns WHERE table_schema = '{schema}' AND column_name IN ('dec', 'tstz', 'st') ORDER BY column_name"),
    )
    .await;
    assert_eq!(types, vec![vec![s("numeric")], vec![s("jsonb")], vec![s("timestamp with time zone")]]);
    let pk = pg_rows(&client, &format!("SELECT indexdef FROM pg_indexes WHERE schemaname = '{schema}'")).await;
    assert_eq!(pk.len(), 1, "one primary-key index on the key: {pk:?}");

    // A failing export (duplicate keys break the primary key after COPY) rolls back completely.
    sql(&session, "CREATE TABLE dup_keys AS SELECT * FROM all_types UNION ALL SELECT * FROM all_types").await;
    let err = export_table(&session, "dup_keys", None, &target, false).await.unwrap_err();
    assert!(format!("{err:#}").contains("previous data is unchanged"), "{err:#}");
    assert_eq!(pg_rows(&client, &select).await, snapshots[0], "previous content intact");

    // Upsert: changed rows update, new rows insert, others stay.
    sql(&session, "CREATE TABLE changes AS SELECT id + 1 AS id, i32 FROM all_types").await;
    let mut up = options(&["id"]);
    up.name = Some(format!("{schema}.upserted"));
    up.upsert = true;
    let upsert_target = target_for(PG_URL, "changes", &up).unwrap();
    for _ in 0..3 {
        export_table(&session, "changes", None, &upsert_target, false).await.unwrap();
    }
    let rows = pg_rows(&client, &format!("SELECT id::text, i32::text FROM {schema}.upserted ORDER BY id")).await;
    assert_eq!(rows, vec![vec![s("2"), s("7")], vec![s("3"), None]]);
    client.batch_execute(&format!("DROP SCHEMA {schema} CASCADE")).await.unwrap();
}

async fn redis_snapshot(conn: &mut redis::aio::MultiplexedConnection, pattern: &str) -> BTreeMap<String, String> {
    let keys: Vec<String> = conn.keys(pattern).await.unwrap();
    let mut out = BTreeMap::new();
    for key in keys {
        let kind: String = redis::cmd("TYPE").arg(&key).query_async(conn).await.unwrap();
        let value = match kind.as_str() {
            "hash" => format!("{:?}", conn.hgetall::<_, BTreeMap<String, String>>(&key).await.unwrap()),
            "zset" => format!("{:?}", conn.zrange_withscores::<_, Vec<(String, f64)>>(&key, 0, -1).await.unwrap()),
            _ => conn.get::<_, String>(&key).await.unwrap(),
        };
        out.insert(key, value);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_hashes_json_and_ranked_sets_switch_atomically() {
    let lake = tempfile::tempdir().unwrap();
    let session = session(lake.path()).await;
    all_types_table(&session).await;
    sql(
        &session,
        "CREATE TABLE recs AS SELECT * FROM (VALUES (1, 't1', 0.9), (1, 't2', 0.5), (1, 't3', 0.7), (2, 't1', 0.2), (2, 'odd key:{x}', 0.1)) AS v(user_id, track_id, score)",
    )
    .await;
    let prefix = unique("bbtest");
    let client = redis::Client::open(REDIS_URL).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.expect("Redis on 127.0.0.1:6379");

    let mut zset = ExportOptions { key_pattern: Some(format!("{prefix}:recs:{{user_id}}")), ..Default::default() };
    zset.redis_value = Some("zset".into());
    zset.member = Some("track_id".into());
    zset.score = Some("score".into());
    zset.ttl = Some(3600);
    let zset_target = target_for(REDIS_URL, "recs", &zset).unwrap();
    let mut snapshots = vec![];
    for _ in 0..3 {
        assert_eq!(export_table(&session, "recs", None, &zset_target, false).await.unwrap().rows, 5);
        snapshots.push(redis_snapshot(&mut conn, &format!("{prefix}:recs:*")).await);
    }
    assert!(snapshots.iter().all(|s| s == &snapshots[0]));
    let ranked: Vec<String> = conn.zrevrange(format!("{prefix}:recs:1"), 0, -1).await.unwrap();
    assert_eq!(ranked, vec!["t1", "t3", "t2"]);
    let ttl: i64 = conn.ttl(format!("{prefix}:recs:1")).await.unwrap();
    assert!(ttl > 3000 && ttl <= 3600, "ttl {ttl}");

    let json = ExportOptions { key_pattern: Some(format!("{prefix}:row:{{id}}")), redis_value: Some("json".into()), ..Default::default() };
    let json_target = target_for(REDIS_URL, "all_types", &json).unwrap();
    export_table(&session, "all_types", None, &json_target, false).await.unwrap();
    let text: String = conn.get(format!("{prefix}:row:1")).await.unwrap();
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(value["dec"], "-12345.678");
    assert_eq!(value["li"], serde_json::json!([1, 2, 3]));
    assert_eq!(value["st"]["y"], "why");
    assert_eq!(value["tstz"], "2024-03-01T10:11:12.345Z");
    let hash = ExportOptions { key_pattern: Some(format!("{prefix}:h:{{s}}")), ..Default::default() };
    let hash_target = target_for(REDIS_URL, "all_types", &hash).unwrap();
    // Row 2 has a NULL key column: the export fails and leaves nothing of itself behind.
    let err = export_table(&session, "all_types", None, &hash_target, false).await.unwrap_err();
    assert!(format!("{err:#}").contains("NULL"), "{err:#}");
    let leftovers: Vec<String> = conn.keys(format!("{prefix}:h:*")).await.unwrap();
    assert!(leftovers.is_empty());
    let tmp: Vec<String> = conn.keys("backbeat:tmp:*").await.unwrap();
    assert!(tmp.iter().all(|k| !k.contains(&prefix)), "temporary keys cleaned up");

    // A re-export with fewer keys removes the stale ones in the same switch; a failing re-export
    // (two rows for one hash key) leaves the previous keys as they were.
    sql(&session, "CREATE TABLE recs2 AS SELECT * FROM recs WHERE user_id = 1").await;
    export_table(&session, "recs2", None, &zset_target, false).await.unwrap();
    let keys: Vec<String> = conn.keys(format!("{prefix}:recs:*")).await.unwrap();
    assert_eq!(keys, vec![format!("{prefix}:recs:1")]);
    let dup = ExportOptions { key_pattern: Some(format!("{prefix}:recs:{{user_id}}")), ..Default::default() };
    let before = redis_snapshot(&mut conn, &format!("{prefix}:recs:*")).await;
    assert!(export_table(&session, "recs", None, &target_for(REDIS_URL, "recs", &dup).unwrap(), false).await.is_err());
    assert_eq!(redis_snapshot(&mut conn, &format!("{prefix}:recs:*")).await, before);

    // Names: a value with separators is escaped in the key; a pattern with spaces is refused.
    let escaped = ExportOptions { key_pattern: Some(format!("{prefix}:t:{{track_id}}")), redis_value: Some("json".into()), ..Default::default() };
    sql(&session, "CREATE TABLE tracks1 AS SELECT DISTINCT track_id FROM recs").await;
    export_table(&session, "tracks1", None, &target_for(REDIS_URL, "tracks1", &escaped).unwrap(), false).await.unwrap();
    let exists: bool = conn.exists(format!("{prefix}:t:odd%20key%3A%7Bx%7D")).await.unwrap();
    assert!(exists);
    let bad = ExportOptions { key_pattern: Some("recs by {user_id}".into()), ..Default::default() };
    let err = export_table(&session, "recs", None, &target_for(REDIS_URL, "recs", &bad).unwrap(), false).await.unwrap_err();
    assert!(format!("{err:#}").contains("spaces"), "{err:#}");

    let mut cleanup: Vec<String> = conn.keys(format!("{prefix}:*")).await.unwrap();
    cleanup.extend(
        [format!("backbeat:export:{prefix}:recs:{{user_id}}"), format!("backbeat:export:{prefix}:row:{{id}}"), format!("backbeat:export:{prefix}:t:{{track_id}}")],
    );
    let _: () = conn.del(cleanup).await.unwrap();
}

async fn mongo_docs(db: &mongodb::Database, collection: &str) -> Vec<Document> {
    db.collection::<Document>(collection).find(doc! {}).sort(doc! {"_id": 1}).await.unwrap().try_collect().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mongo_upserts_documents_with_subdocuments_and_arrays() {
    let lake = tempfile::tempdir().unwrap();
    let session = session(lake.path()).await;
    all_types_table(&session).await;
    let db_name = unique("bbtest");
    let url = mongo_url(&db_name);
    let client = mongodb::Client::with_uri_str(&url).await.unwrap();
    let db = client.database(&db_name);
    let target = target_for(&url, "all_types", &options(&["id"])).unwrap();
    let mut snapshots = vec![];
    for _ in 0..3 {
        export_table(&session, "all_types", None, &target, false).await.unwrap();
        snapshots.push(mongo_docs(&db, "all_types").await);
    }
    assert!(snapshots.iter().all(|s| s == &snapshots[0]));
    let first = &snapshots[0][0];
    assert_eq!(first.get("_id"), Some(&Bson::Int64(1)));
    assert_eq!(first.get_i64("i64").unwrap(), 9007199254740993);
    assert_eq!(first.get_document("st").unwrap().get_str("y").unwrap(), "why");
    assert_eq!(first.get_array("li").unwrap(), &vec![Bson::Int64(1), Bson::Int64(2), Bson::Int64(3)]);
    assert_eq!(first.get("dec").unwrap().to_string(), "-12345.678");
    assert_eq!(first.get_datetime("tstz").unwrap().timestamp_millis(), 1_709_287_872_345);
    assert_eq!(snapshots[0][1].get("s"), Some(&Bson::Null));
    let names: Vec<String> = db.list_collection_names().await.unwrap();
    assert_eq!(names, vec!["all_types".to_string()], "no staging collection left");

    // A failing export (a NULL key in the last row) leaves the previous documents.
    sql(&session, "CREATE TABLE null_key AS SELECT CASE WHEN id = 2 THEN NULL ELSE id END AS id, s FROM all_types ORDER BY id").await;
    let err = export_table(&session, "null_key", None, &target_for(&url, "all_types", &options(&["id"])).unwrap(), false).await.unwrap_err();
    assert!(format!("{err:#}").contains("_id"), "{err:#}");
    assert_eq!(mongo_docs(&db, "all_types").await, snapshots[0]);
    assert_eq!(db.list_collection_names().await.unwrap(), vec!["all_types".to_string()]);

    // Upsert mode with a composite key: _id is a subdocument.
    let mut up = options(&["id", "s"]);
    up.upsert = true;
    up.name = Some("composite".into());
    for _ in 0..3 {
        export_table(&session, "all_types", None, &target_for(&url, "all_types", &up).unwrap(), false).await.unwrap();
    }
    let docs = mongo_docs(&db, "composite").await;
    assert_eq!(docs.len(), 2);
    assert!(docs[0].get_document("_id").is_ok());

    let mut bad = options(&["id"]);
    bad.name = Some("bad$name".into());
    let err = export_table(&session, "all_types", None, &target_for(&url, "all_types", &bad).unwrap(), false).await.unwrap_err();
    assert!(format!("{err:#}").contains("'$'"), "{err:#}");
    db.drop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn passwords_never_reach_errors() {
    let lake = tempfile::tempdir().unwrap();
    let session = session(lake.path()).await;
    sql(&session, "CREATE TABLE t AS SELECT 1 AS id").await;
    for url in ["postgres://bob:pa55word-xyz@127.0.0.1:1/db", "redis://:pa55word-xyz@127.0.0.1:1/0"] {
        let opts = ExportOptions { key: vec!["id".into()], key_pattern: Some("k:{id}".into()), ..Default::default() };
        let target = target_for(url, "t", &opts).unwrap();
        let err = export_table(&session, "t", None, &target, false).await.unwrap_err();
        let message = format!("{err:#}");
        assert!(!message.contains("pa55word-xyz"), "{message}");
        assert!(message.contains("***"), "{message}");
        assert!(matches!(target, ExportTarget::Postgres(_) | ExportTarget::Redis(_)));
    }
}
