//! Recommendation jobs through the 2-executor cluster and embedded mode, each checked against an
//! answer computed here independently: ALS against dense closed-form solves, item-item against brute
//! force over the raw events, content kNN against brute-force cosine, metrics against hand-computed
//! cases.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float32Type};
use backbeat_cluster::session::{BackbeatSession, ClusterTarget};
use backbeat_datasets::datagen::{DatagenConfig, Dataset, generate};
use backbeat_jobs::recs::eval::metrics_sql;
use backbeat_jobs::recs::vectors::DenseVectors;
use common::{TestCluster, f64s, i64s, query, run};
use nalgebra::{DMatrix, DVector};





fn strings(batch: &RecordBatch, column: &str) -> Vec<String> {
    let c = arrow::compute::cast(batch.column_by_name(column).unwrap(), &DataType::Utf8).unwrap();
    c.as_string::<i32>().iter().map(|s| s.unwrap_or_default().to_string()).collect()
}

fn vectors(batch: &RecordBatch, column: &str) -> Vec<Vec<f32>> {
    let lists = batch.column_by_name(column).unwrap().as_list::<i32>();
    (0..lists.len()).map(|i| lists.value(i).as_primitive::<Float32Type>().values().to_vec()).collect()
}

/// 7 users x 5 items with play counts; user 7 played once, item 50 by one user only.
const TINY_EVENTS: &str = "SELECT CAST(column1 AS BIGINT) AS user_id, CAST(column2 AS BIGINT) AS track_id, CAST(column3 AS BIGINT) AS plays FROM (VALUES \
    (1, 10, 3), (1, 20, 1), (1, 30, 2), (2, 10, 1), (2, 40, 4), (3, 20, 2), (3, 30, 1), (3, 40, 1), \
    (4, 10, 5), (4, 30, 1), (5, 20, 1), (5, 40, 2), (5, 50, 1), (6, 30, 3), (6, 10, 1), (7, 20, 1))";

struct Dense {
    users: Vec<i64>,
    items: Vec<i64>,
    plays: DMatrix<f64>,
}

fn tiny_dense() -> Dense {
    let rows = [(1, 10, 3), (1, 20, 1), (1, 30, 2), (2, 10, 1), (2, 40, 4), (3, 20, 2), (3, 30, 1), (3, 40, 1), (4, 10, 5), (4, 30, 1), (5, 20, 1), (5, 40, 2), (5, 50, 1), (6, 30, 3), (6, 10, 1), (7, 20, 1)];
    let users: Vec<i64> = (1..=7).collect();
    let items = vec![10, 20, 30, 40, 50];
    let mut plays = DMatrix::zeros(users.len(), items.len());
    for (u, i, p) in rows {
        plays[(users.iter().position(|x| *x == u).unwrap(), items.iter().position(|x| *x == i).unwrap())] = p as f64;
    }
    Dense { users, items, plays }
}

/// One side's exact solve with the full confidence matrix (unobserved pairs c = 1, p = 0): the
/// textbook form of Hu et al.'s equations, not the YᵀY shortcut the kernel uses.
fn closed_form(fixed: &DMatrix<f64>, plays: &DMatrix<f64>, alpha: f64, lambda: f64) -> DMatrix<f64> {
    let k = fixed.ncols();
    let mut out = DMatrix::zeros(plays.nrows(), k);
    for u in 0..plays.nrows() {
        let c = DVector::from_iterator(plays.ncols(), (0..plays.ncols()).map(|i| 1.0 + alpha * plays[(u, i)]));
        let p = DVector::from_iterator(plays.ncols(), (0..plays.ncols()).map(|i| if plays[(u, i)] > 0.0 { 1.0 } else { 0.0 }));
        let cy = DMatrix::from_fn(plays.ncols(), k, |i, j| c[i] * fixed[(i, j)]);
        let a = fixed.transpose() * &cy + DMatrix::identity(k, k) * lambda;
        let b = cy.transpose() * p;
        out.set_row(u, &a.lu().solve(&b).unwrap().transpose());
    }
    out
}

fn full_loss(x: &DMatrix<f64>, y: &DMatrix<f64>, plays: &DMatrix<f64>, alpha: f64, lambda: f64) -> f64 {
    let scores = x * y.transpose();
    let mut loss = 0.0;
    for u in 0..plays.nrows() {
        for i in 0..plays.ncols() {
            let p = if plays[(u, i)] > 0.0 { 1.0 } else { 0.0 };
            loss += (1.0 + alpha * plays[(u, i)]) * (p - scores[(u, i)]).powi(2);
        }
    }
    loss + lambda * (x.norm_squared() + y.norm_squared())
}

async fn factors(session: &BackbeatSession, table: &str, idx: &str) -> DMatrix<f64> {
    let batch = query(session, &format!("SELECT {idx}, factors FROM {table} ORDER BY {idx}")).await;
    let rows = vectors(&batch, "factors");
    DMatrix::from_fn(rows.len(), rows[0].len(), |r, c| rows[r][c] as f64)
}

async fn als_checks(session: &BackbeatSession) -> Vec<Vec<f32>> {
    session.sql(&format!("CREATE OR REPLACE TABLE tiny_events AS {TINY_EVENTS}")).await.unwrap().collect().await.unwrap();
    let (alpha, lambda, rank) = (2.0, 0.1, 3);
    let base = [("events", "tiny_events"), ("weight_col", "plays"), ("rank", "3"), ("alpha", "2"), ("lambda", "0.1"), ("cg_steps", "0"), ("seed", "7")];
    let mut one = base.to_vec();
    one.push(("iterations", "1"));
    run(session, "als_train", &one).await.unwrap();

    // One sweep by hand: users from the seeded start of the items, then items from those users.
    let dense = tiny_dense();
    let start = DenseVectors::random(dense.items.len(), rank, 7, 2);
    let y0 = DMatrix::from_fn(dense.items.len(), rank, |r, c| start.row(r)[c] as f64);
    let x1 = closed_form(&y0, &dense.plays, alpha, lambda);
    let y1 = closed_form(&x1, &dense.plays.transpose(), alpha, lambda);
    let (got_x, got_y) = (factors(session, "als_user_factors", "user_idx").await, factors(session, "als_item_factors", "item_idx").await);
    let users = i64s(&query(session, "SELECT user_id FROM als_user_factors ORDER BY user_idx").await, "user_id");
    assert_eq!(users, dense.users, "user indices follow user ids");
    for (got, want, side) in [(&got_x, &x1, "users"), (&got_y, &y1, "items")] {
        let err = (got - want).abs().max() / want.abs().max();
        assert!(err < 1e-4, "{side}: factors differ from the closed form by {err:e}\n{got}\n{want}");
    }
    let loss = f64s(&query(session, "SELECT loss FROM als_loss").await, "loss")[0];
    let want = full_loss(&x1, &y1, &dense.plays, alpha, lambda);
    assert!((loss - want).abs() / want < 1e-4, "loss {loss} vs closed form {want}");

    // More iterations: the loss never increases (each half-sweep is an exact minimisation).
    let mut five = base.to_vec();
    five.push(("iterations", "6"));
    run(session, "als_train", &five).await.unwrap();
    let losses = f64s(&query(session, "SELECT loss FROM als_loss ORDER BY iteration").await, "loss");
    assert_eq!(losses.len(), 6);
    for w in losses.windows(2) {
        assert!(w[1] <= w[0] * (1.0 + 1e-9), "loss increased: {losses:?}");
    }
    // Conjugate gradient (the default) also lowers the loss monotonically.
    let mut cg = five.clone();
    cg.retain(|(k, _)| *k != "cg_steps");
    cg.push(("prefix", "als_cg"));
    run(session, "als_train", &cg).await.unwrap();
    let cg_losses = f64s(&query(session, "SELECT loss FROM als_cg_loss ORDER BY iteration").await, "loss");
    for w in cg_losses.windows(2) {
        assert!(w[1] <= w[0] * (1.0 + 1e-6), "CG loss increased: {cg_losses:?}");
    }
    vectors(&query(session, "SELECT factors FROM als_user_factors ORDER BY user_idx").await, "factors")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn als_matches_closed_form_and_is_deterministic_across_cluster_and_embedded() {
    let cluster = TestCluster::start();
    let lake_dir = tempfile::tempdir().unwrap();
    let on_cluster = als_checks(&cluster.session(lake_dir.path()).await).await;
    let embedded_lake = tempfile::tempdir().unwrap();
    let embedded = BackbeatSession::connect(ClusterTarget::Embedded { concurrency: 2 }, embedded_lake.path()).await.unwrap();
    let on_embedded = als_checks(&embedded).await;
    assert_eq!(on_cluster, on_embedded, "same seed, same factors, whatever the cluster");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn als_bad_input_gives_clear_errors() {
    let lake_dir = tempfile::tempdir().unwrap();
    let session = BackbeatSession::connect(ClusterTarget::Embedded { concurrency: 2 }, lake_dir.path()).await.unwrap();
    session.sql(&format!("CREATE TABLE tiny_events AS {TINY_EVENTS}")).await.unwrap().collect().await.unwrap();
    let missing = run(&session, "als_train", &[("events", "tiny_events"), ("item_col", "song")]).await.unwrap_err();
    assert!(format!("{missing:#}").contains("has no column 'song'"), "{missing:#}");
    session.sql("CREATE TABLE no_events AS SELECT * FROM tiny_events WHERE user_id < 0").await.unwrap().collect().await.unwrap();
    let empty = run(&session, "als_train", &[("events", "no_events")]).await.unwrap_err();
    assert!(format!("{empty:#}").contains("nothing to train on"), "{empty:#}");
    session.sql("CREATE TABLE negative AS SELECT user_id, track_id, plays - 4 AS plays FROM tiny_events").await.unwrap().collect().await.unwrap();
    let negative = run(&session, "als_train", &[("events", "negative"), ("weight_col", "plays")]).await.unwrap_err();
    assert!(format!("{negative:#}").contains("negative total weight"), "{negative:#}");
    let zero_rank = run(&session, "als_train", &[("events", "tiny_events"), ("rank", "0")]).await.unwrap_err();
    assert!(format!("{zero_rank:#}").contains("rank must be"), "{zero_rank:#}");
    // A user with one play gets factors like everyone else, all finite.
    run(&session, "als_train", &[("events", "tiny_events"), ("rank", "4"), ("iterations", "2")]).await.unwrap();
    let rows = query(&session, "SELECT user_id, factors FROM als_user_factors WHERE user_id = 7").await;
    assert_eq!(rows.num_rows(), 1);
    assert!(vectors(&rows, "factors")[0].iter().all(|v| v.is_finite()));
}

fn listening_lake(lake: &Path, scale: f64) {
    generate(&DatagenConfig { scale, seed: 5, out: lake.to_path_buf(), datasets: vec![Dataset::Tracks, Dataset::Listening], dirty_rate: 0.0 }).unwrap();
}

/// Item-item by brute force over the raw events: history cap, co-counts, shrunk cosine, top K.
fn brute_force_item_item(events: &[(i64, String, i64)], cap: usize, shrink: f64, min_co: usize, top: usize) -> BTreeMap<String, Vec<(String, f64)>> {
    let mut last: HashMap<(i64, String), i64> = HashMap::new();
    for (u, t, at) in events {
        let e = last.entry((*u, t.clone())).or_insert(*at);
        *e = (*e).max(*at);
    }
    let mut by_user: BTreeMap<i64, Vec<(i64, String)>> = BTreeMap::new();
    for ((u, t), at) in last {
        by_user.entry(u).or_default().push((at, t));
    }
    let mut support: HashMap<String, usize> = HashMap::new();
    let mut co: HashMap<(String, String), usize> = HashMap::new();
    for (_, mut tracks) in by_user {
        tracks.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        tracks.truncate(cap);
        for (_, a) in &tracks {
            *support.entry(a.clone()).or_default() += 1;
            for (_, b) in &tracks {
                if a != b {
                    *co.entry((a.clone(), b.clone())).or_default() += 1;
                }
            }
        }
    }
    let mut out: BTreeMap<String, Vec<(String, f64)>> = BTreeMap::new();
    for ((a, b), n) in co {
        if n < min_co {
            continue;
        }
        let n = n as f64;
        let score = n / ((support[&a] * support[&b]) as f64).sqrt() * n / (n + shrink);
        out.entry(a).or_default().push((b, score));
    }
    for list in out.values_mut() {
        list.sort_by(|x, y| y.1.total_cmp(&x.1).then(x.0.cmp(&y.0)));
        list.truncate(top);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn item_similarity_and_track_similarity_match_brute_force_on_two_executors() {
    let cluster = TestCluster::start();
    let lake_dir = tempfile::tempdir().unwrap();
    listening_lake(lake_dir.path(), 0.05);
    let session = cluster.session(lake_dir.path()).await;

    run(&session, "item_similarity", &[("max_history", "8"), ("min_co", "2"), ("top", "5")]).await.unwrap();
    let raw = query(&session, "SELECT user_id, track_id, CAST(played_at AS BIGINT) AS at FROM listening_events").await;
    let events: Vec<(i64, String, i64)> =
        i64s(&raw, "user_id").into_iter().zip(strings(&raw, "track_id")).zip(i64s(&raw, "at")).map(|((u, t), a)| (u, t, a)).collect();
    let want = brute_force_item_item(&events, 8, 10.0, 2, 5);
    let got = query(&session, "SELECT track_id, rank, similar_track_id, score FROM item_similar ORDER BY track_id, rank").await;
    let mut got_map: BTreeMap<String, Vec<(String, f64)>> = BTreeMap::new();
    for ((t, s), score) in strings(&got, "track_id").into_iter().zip(strings(&got, "similar_track_id")).zip(f64s(&got, "score")) {
        got_map.entry(t).or_default().push((s, score));
    }
    assert!(!want.is_empty());
    assert_eq!(got_map.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>());
    for (track, list) in &want {
        let mine = &got_map[track];
        assert_eq!(mine.len(), list.len(), "{track}");
        for ((a, x), (b, y)) in mine.iter().zip(list) {
            assert!((x - y).abs() < 1e-9, "{track}: score {x} vs {y}");
            // Equal scores may list in either order only if they tie exactly; names match otherwise.
            if (x - y).abs() < 1e-12 && a != b {
                assert!(list.iter().any(|(n, s)| n == a && (s - x).abs() < 1e-12), "{track}: {a} not in brute force");
            }
        }
    }

    // Content kNN: the kernel's top-K (rows counted across both executors) equals brute-force cosine.
    run(&session, "track_similarity", &[("top", "4")]).await.unwrap();
    let features = query(&session, "SELECT idx, track_id, features FROM track_similar_features ORDER BY idx").await;
    let (ids, vecs) = (strings(&features, "track_id"), vectors(&features, "features"));
    let n = ids.len();
    let rows = query(&session, "SELECT count(*) AS n FROM track_similar").await;
    assert_eq!(i64s(&rows, "n")[0] as usize, n * 4, "every track has 4 neighbours");
    let got = query(&session, "SELECT track_id, similar_track_id, score FROM track_similar WHERE rank = 1").await;
    let top1: HashMap<String, (String, f64)> =
        strings(&got, "track_id").into_iter().zip(strings(&got, "similar_track_id").into_iter().zip(f64s(&got, "score"))).collect();
    let unit: Vec<Vec<f64>> = vecs
        .iter()
        .map(|v| {
            let norm = v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
            v.iter().map(|x| *x as f64 / norm).collect()
        })
        .collect();
    for q in 0..n {
        let (best, score) = (0..n)
            .filter(|c| *c != q)
            .map(|c| (c, unit[q].iter().zip(&unit[c]).map(|(a, b)| a * b).sum::<f64>()))
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap();
        let (got_id, got_score) = &top1[&ids[q]];
        assert!((got_score - score).abs() < 1e-4, "{}: top score {got_score} vs {score}", ids[q]);
        assert!(got_id == &ids[best] || (got_score - score).abs() < 1e-6, "{}: {got_id} vs {}", ids[q], ids[best]);
    }
    // IVF probing every cell is exact search by another road: the same neighbours and scores.
    run(&session, "track_similarity", &[("top", "4"), ("method", "ivf"), ("probes", "100000"), ("out", "track_similar_ivf")]).await.unwrap();
    let exact = query(&session, "SELECT track_id, rank, similar_track_id, score FROM track_similar ORDER BY track_id, rank").await;
    let approx = query(&session, "SELECT track_id, rank, similar_track_id, score FROM track_similar_ivf ORDER BY track_id, rank").await;
    assert_eq!(approx.num_rows(), exact.num_rows());
    assert_eq!(strings(&approx, "track_id"), strings(&exact, "track_id"));
    for (a, b) in f64s(&approx, "score").iter().zip(f64s(&exact, "score")) {
        assert!((a - b).abs() < 1e-6, "IVF with every cell probed: score {a} vs exact {b}");
    }
    // One probed cell of ~sqrt(n): every track still gets 4 neighbours from its own cell or fewer
    // when the cell is small, and never itself.
    run(&session, "track_similarity", &[("top", "4"), ("method", "ivf"), ("probes", "1"), ("out", "track_similar_ivf1")]).await.unwrap();
    let selfs = query(&session, "SELECT count(*) AS n FROM track_similar_ivf1 WHERE track_id = similar_track_id").await;
    assert_eq!(i64s(&selfs, "n")[0], 0);
    let bad = run(&session, "track_similarity", &[("method", "lsh")]).await.unwrap_err();
    assert!(format!("{bad:#}").contains("method must be auto, exact or ivf"), "{bad:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ranking_metrics_match_hand_computed_cases() {
    let lake_dir = tempfile::tempdir().unwrap();
    let session = BackbeatSession::connect(ClusterTarget::Embedded { concurrency: 2 }, lake_dir.path()).await.unwrap();
    // User 1: relevant {a, b, c}; model m ranks a (hit), x, b (hit). User 2: relevant {d}; m ranks y, z, w.
    // Model n has nothing for user 2 and ranks c first for user 1.
    session.sql("CREATE TABLE truth AS SELECT CAST(column1 AS BIGINT) AS user_id, column2 AS track_id FROM (VALUES (1, 'a'), (1, 'b'), (1, 'c'), (2, 'd'))").await.unwrap().collect().await.unwrap();
    session.sql("CREATE TABLE recs AS SELECT column1 AS model, CAST(column2 AS BIGINT) AS user_id, CAST(column3 AS INT) AS rank, column4 AS track_id FROM (VALUES \
        ('m', 1, 1, 'a'), ('m', 1, 2, 'x'), ('m', 1, 3, 'b'), ('m', 2, 1, 'y'), ('m', 2, 2, 'z'), ('m', 2, 3, 'w'), ('n', 1, 1, 'c'))").await.unwrap().collect().await.unwrap();
    let batch = query(&session, &format!("SELECT * FROM ({}) ORDER BY model", metrics_sql("recs", "truth", 3, 10))).await;
    let l2 = |r: f64| 1.0 / (r + 1.0).log2();
    let idcg1 = l2(1.0) + l2(2.0) + l2(3.0);
    // model m: user 1 hits at ranks 1 and 3; user 2 none.
    let m = [
        (2.0 / 3.0 + 0.0) / 2.0,                        // precision@3
        (2.0 / 3.0 + 0.0) / 2.0,                        // recall@3
        ((1.0 + 2.0 / 3.0) / 3.0 + 0.0) / 2.0,          // MAP@3
        ((l2(1.0) + l2(3.0)) / idcg1 + 0.0) / 2.0,      // NDCG@3
        6.0 / 10.0,                                     // coverage: a x b y z w
    ];
    let n = [(1.0 / 3.0) / 2.0, (1.0 / 3.0) / 2.0, (1.0 / 3.0) / 2.0, (l2(1.0) / idcg1) / 2.0, 1.0 / 10.0];
    assert_eq!(strings(&batch, "model"), vec!["m", "n"]);
    for (row, want) in [(0, m), (1, n)] {
        for (column, w) in ["precision", "recall", "map", "ndcg", "coverage"].iter().zip(want) {
            let got = f64s(&batch, column)[row];
            assert!((got - w).abs() < 1e-12, "row {row} {column}: {got} vs {w}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn recommend_and_eval_run_end_to_end_with_redis_export() {
    let lake_dir = tempfile::tempdir().unwrap();
    listening_lake(lake_dir.path(), 0.1);
    let session = BackbeatSession::connect(ClusterTarget::Embedded { concurrency: 2 }, lake_dir.path()).await.unwrap();
    let small = [("rank", "16"), ("iterations", "4")];
    run(&session, "als_train", &small).await.unwrap();
    run(&session, "item_similarity", &[]).await.unwrap();
    run(&session, "track_similarity", &[]).await.unwrap();
    let redis_url = "redis://127.0.0.1:6379/0";
    run(&session, "recommend", &[("export_to", redis_url)]).await.unwrap();

    let recs = query(&session, "SELECT user_id, rank, track_id, reason FROM user_recs").await;
    let users = query(&session, "SELECT count(*) AS n FROM users").await;
    let per_user: HashMap<i64, usize> = i64s(&recs, "user_id").into_iter().fold(HashMap::new(), |mut m, u| {
        *m.entry(u).or_default() += 1;
        m
    });
    assert_eq!(per_user.len() as i64, i64s(&users, "n")[0], "every user, played or not, has recommendations");
    assert!(per_user.values().all(|n| *n == 10), "ten per user");
    let pairs = query(&session, "SELECT count(*) AS n FROM (SELECT DISTINCT user_id, track_id FROM user_recs)").await;
    assert_eq!(i64s(&pairs, "n")[0] as usize, recs.num_rows(), "no track twice in a user's list");
    let played = query(&session, "SELECT count(*) AS n FROM user_recs r JOIN listening_events e ON r.user_id = e.user_id AND r.track_id = e.track_id").await;
    assert_eq!(i64s(&played, "n")[0], 0, "nothing already played is recommended");
    let reasons: HashSet<String> = strings(&recs, "reason").into_iter().collect();
    assert!(reasons.contains("als") && reasons.contains("item_item"), "{reasons:?}");
    for table in ["recs_by_track", "recs_by_album", "recs_by_artist", "recs_by_genre"] {
        let n = query(&session, &format!("SELECT count(*) AS n FROM {table}")).await;
        assert!(i64s(&n, "n")[0] > 0, "{table} is empty");
    }
    // Redis holds each user's list as a sorted set, best first.
    let user = i64s(&recs, "user_id")[0];
    let mut redis = redis::Client::open(redis_url).unwrap().get_multiplexed_async_connection().await.unwrap();
    // Redis orders equal scores by member, descending; user_recs by track_id, ascending: compare
    // each member's score, and that the best-first order never rises.
    let members: Vec<(String, f64)> =
        redis::cmd("ZREVRANGE").arg(format!("recs:{user}")).arg(0).arg(-1).arg("WITHSCORES").query_async(&mut redis).await.unwrap();
    let want = query(&session, &format!("SELECT CAST(track_id AS VARCHAR) AS t, score FROM user_recs WHERE user_id = {user} ORDER BY rank")).await;
    let want: HashMap<String, f64> = strings(&want, "t").into_iter().zip(f64s(&want, "score")).collect();
    assert_eq!(members.len(), want.len());
    for (member, score) in &members {
        assert!((want[member] - score).abs() < 1e-9, "{member}: redis {score} vs user_recs {}", want[member]);
    }
    assert!(members.windows(2).all(|w| w[0].1 >= w[1].1), "{members:?}");

    run(&session, "recs_eval", &small).await.unwrap();
    let eval = query(&session, "SELECT model, precision, recall, map, ndcg, coverage FROM recs_eval ORDER BY model").await;
    assert_eq!(strings(&eval, "model"), vec!["als", "content", "hybrid", "item_item", "popularity"]);
    for column in ["precision", "recall", "map", "ndcg", "coverage"] {
        assert!(f64s(&eval, column).iter().all(|v| (0.0..=1.0).contains(v)), "{column} out of [0, 1]");
    }
    run(&session, "recs_eval", &[("dataset", "chinook"), ("chinook_dir", &format!("{}/../datasets/chinook", env!("CARGO_MANIFEST_DIR"))), ("rank", "8"), ("iterations", "3")]).await.unwrap();
    let chinook = query(&session, "SELECT model FROM recs_eval ORDER BY model").await;
    assert_eq!(strings(&chinook, "model"), vec!["als", "hybrid", "item_item", "popularity"]);
}
