//! `recs_eval`: every model against held-out plays, on generated listening data or on the real
//! Chinook purchases (invoice lines as implicit feedback).
//!
//! The split is by time within each user: a user's plays ordered by time (then track), the last
//! `test_share` of them (all but the first ceil(n·(1 − share))) are held out. The models train on the
//! rest, recommend `k` tracks the user has not played in training, and are scored against the
//! held-out tracks the user had not played before (re-listens are not discoveries). Users with no
//! such track are not scored; a user a model has nothing for scores 0 for that model.
//!
//! Metrics, averaged over scored users: precision@k = hits/k; recall@k = hits/|relevant|; MAP@k with
//! AP = Σ_{hit at r} (hits in top r / r) / min(|relevant|, k); NDCG@k with binary gains, DCG =
//! Σ_{hit at r} 1/log2(r + 1) over the ideal DCG of min(|relevant|, k) hits; coverage = distinct
//! recommended tracks / distinct tracks in the data.

use std::collections::BTreeMap;

use anyhow::{Result, bail};
use backbeat_cluster::session::BackbeatSession;

use super::als::{AlsConfig, train};
use super::als_solve::AlsParams;
use super::item_similarity::{ItemSimConfig, build};
use super::recommend::{self, RecommendConfig, candidates, hybrid_sql};
use super::{first_row_i64, ident, run_sql, track_similarity};
use crate::job_runner::{ReportSection, RustJobOutput};

/// Where the evaluation's events come from, in the standard column names.
struct EvalData {
    events: String,
    tracks: String,
    genre: String,
    content: bool,
}

async fn prepare(session: &BackbeatSession, p: &BTreeMap<String, String>) -> Result<EvalData> {
    match p["dataset"].as_str() {
        "chinook" => {
            let dir = p["chinook_dir"].as_str();
            for (name, file) in [("chinook_invoice_csv", "invoice"), ("chinook_invoiceline_csv", "invoiceline"), ("chinook_track_csv", "track")] {
                let _ = session.context().deregister_table(name);
                run_sql(session, &format!(
                    "CREATE EXTERNAL TABLE {name} STORED AS CSV LOCATION '{}/{file}.csv' OPTIONS ('format.has_header' 'true')",
                    dir.replace('\'', "''")
                ))
                .await?;
            }
            run_sql(session, "CREATE OR REPLACE TABLE chinook_purchases AS SELECT i.customer AS user_id, l.track AS track_id, \
                 CAST(i.invoicedate AS TIMESTAMP) AS played_at, l.quantity FROM chinook_invoiceline_csv l JOIN chinook_invoice_csv i ON l.invoice = i.id").await?;
            run_sql(session, "CREATE OR REPLACE TABLE chinook_recs_tracks AS SELECT id AS track_id, genre, album, composer FROM chinook_track_csv").await?;
            Ok(EvalData { events: "chinook_purchases".into(), tracks: "chinook_recs_tracks".into(), genre: "genre".into(), content: false })
        }
        "generated" => {
            let (events, user, item, time) = (&p["events"], ident(&p["user_col"])?, ident(&p["item_col"])?, ident(&p["time_col"])?);
            run_sql(session, &format!(
                "CREATE OR REPLACE TABLE recs_eval_events AS SELECT {user} AS user_id, {item} AS track_id, {time} AS played_at FROM {events}"
            ))
            .await?;
            Ok(EvalData { events: "recs_eval_events".into(), tracks: p["tracks"].clone(), genre: "track_genre".into(), content: true })
        }
        other => bail!("dataset must be 'generated' or 'chinook', not '{other}'"),
    }
}

/// The catalogue entry point.
pub async fn run(session: &BackbeatSession, p: &BTreeMap<String, String>) -> Result<RustJobOutput> {
    let k: i64 = p["k"].parse()?;
    let share: f64 = p["test_share"].parse()?;
    if !(0.0..1.0).contains(&share) || k < 1 {
        bail!("test_share must be in [0, 1) and k >= 1");
    }
    let data = prepare(session, p).await?;
    let e = "recs_eval";
    split_by_time(session, &data.events, share).await?;
    let std_params = |extra: &[(&str, &str)]| {
        let mut m: BTreeMap<String, String> = [("events", format!("{e}_train")), ("user_col", "user_id".into()), ("item_col", "track_id".into()), ("time_col", "played_at".into())]
            .into_iter()
            .map(|(a, b)| (a.to_string(), b))
            .collect();
        for (a, b) in extra {
            m.insert(a.to_string(), b.to_string());
        }
        m
    };
    let item_sim = format!("{e}_item_similar");
    let sim = std_params(&[("max_history", &p["max_history"]), ("shrinkage", "10"), ("min_co", "1"), ("top", "50"), ("out", &item_sim)]);
    build(session, &ItemSimConfig::from_params(&sim)?).await?;
    let track_sim = if data.content {
        let out = format!("{e}_track_similar");
        let params: BTreeMap<String, String> = [("tracks", data.tracks.clone()), ("out", out.clone()), ("top", "50".to_string())].into_iter().map(|(a, b)| (a.to_string(), b)).collect();
        track_similarity::run(session, &params).await?;
        out
    } else {
        String::new()
    };
    let als = AlsConfig {
        events: format!("{e}_train"),
        user: "user_id".into(),
        item: "track_id".into(),
        weight: String::new(),
        prefix: format!("{e}_als"),
        params: AlsParams::from_params(p)?,
        iterations: p["iterations"].parse()?,
        seed: 42,
    };
    train(session, &als).await?;

    let rc = RecommendConfig::from_params(&std_params(&[
        ("tracks", &data.tracks),
        ("genre_col", &data.genre),
        ("als", &als.prefix),
        ("item_sim", &item_sim),
        ("track_sim", &track_sim),
        ("top", &k.to_string()),
        ("history", &p["max_history"]),
        ("pool", &p["pool"]),
        ("als_candidates", &(k * 5).to_string()),
        ("w_als", "1"),
        ("w_item", "1"),
        ("w_content", "1"),
        ("w_genre", "1"),
    ]))?;
    let rc = RecommendConfig { out: e.to_string(), ..rc };
    recommend::prepare(session, &rc).await?;
    candidates(session, &rc, None).await?;
    let mut models = vec![
        format!("SELECT 'hybrid' AS model, user_id, rank, track_id FROM ({})", hybrid_sql(&rc)),
        format!(
            "SELECT 'popularity' AS model, user_id, CAST(rank AS INT) AS rank, track_id FROM ( \
               SELECT u.user_id, p.track_id, row_number() OVER (PARTITION BY u.user_id ORDER BY p.plays DESC, p.track_id) AS rank \
               FROM (SELECT DISTINCT user_id FROM {e}_truth) u CROSS JOIN \
                    (SELECT track_id, count(*) AS plays FROM {e}_train GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT {limit}) p \
               LEFT ANTI JOIN {e}_train t ON t.user_id = u.user_id AND t.track_id = p.track_id) WHERE rank <= {k}",
            limit = 1000 + k
        ),
    ];
    for (source, model) in [("als", "als"), ("item_item", "item_item"), ("content", "content")] {
        if source == "content" && !data.content {
            continue;
        }
        models.push(format!(
            "SELECT '{model}' AS model, user_id, CAST(rank AS INT) AS rank, track_id FROM ( \
               SELECT user_id, track_id, row_number() OVER (PARTITION BY user_id ORDER BY score DESC, track_id) AS rank \
               FROM {e}_candidates WHERE source = '{source}') WHERE rank <= {k}"
        ));
    }
    run_sql(session, &format!("CREATE OR REPLACE TABLE {e}_recs AS {}", models.join(" UNION ALL "))).await?;
    let n_items = first_row_i64(session, &format!("SELECT count(DISTINCT track_id) FROM {}", data.events)).await?[0];
    run_sql(session, &format!("CREATE OR REPLACE TABLE {e} AS {}", metrics_sql(&format!("{e}_recs"), &format!("{e}_truth"), k, n_items))).await?;
    let report = run_sql(session, &format!(
        "SELECT model, k, round(precision, 4) AS precision, round(recall, 4) AS recall, round(map, 4) AS map, round(ndcg, 4) AS ndcg, \
         round(coverage, 4) AS coverage FROM {e} ORDER BY ndcg DESC"
    ))
    .await?;
    let users = first_row_i64(session, &format!("SELECT count(DISTINCT user_id) FROM {e}_truth")).await?[0];
    Ok(RustJobOutput {
        report: vec![ReportSection::from_batches(
            format!("{} held-out evaluation: {users} users, last {:.0}% of each user's plays", p["dataset"], share * 100.0),
            report,
        )],
        rows_written: 0,
    })
}

/// Splits `events(user_id, track_id, played_at)` by time within each user into
/// `recs_eval_train(user_id, track_id, played_at)` and `recs_eval_truth(user_id, track_id)`, the
/// held-out tracks each user had not played in training.
pub async fn split_by_time(session: &BackbeatSession, events: &str, share: f64) -> Result<()> {
    let e = "recs_eval";
    run_sql(session, &format!(
        "CREATE OR REPLACE TABLE {e}_split AS SELECT user_id, track_id, played_at, \
           r > ceil(n * (1 - {share})) AS held_out FROM ( \
           SELECT user_id, track_id, played_at, row_number() OVER (PARTITION BY user_id ORDER BY played_at NULLS FIRST, track_id) AS r, \
                  count(*) OVER (PARTITION BY user_id) AS n FROM {events} WHERE user_id IS NOT NULL AND track_id IS NOT NULL)"
    ))
    .await?;
    run_sql(session, &format!("CREATE OR REPLACE TABLE {e}_train AS SELECT user_id, track_id, played_at FROM {e}_split WHERE NOT held_out")).await?;
    run_sql(session, &format!(
        "CREATE OR REPLACE TABLE {e}_truth AS SELECT DISTINCT s.user_id, s.track_id FROM {e}_split s \
         LEFT ANTI JOIN {e}_train t ON s.user_id = t.user_id AND s.track_id = t.track_id WHERE s.held_out"
    ))
    .await?;
    super::drop_table(session, &format!("{e}_split")).await
}

/// Metrics per model of `recs(model, user_id, rank, track_id)` against `truth(user_id, track_id)`:
/// `(model, k, precision, recall, map, ndcg, coverage)`. See the module docs for the definitions.
pub fn metrics_sql(recs: &str, truth: &str, k: i64, n_items: i64) -> String {
    format!(
        "WITH sizes AS (SELECT user_id, count(*) AS n_rel FROM {truth} GROUP BY user_id), \
         hits AS (SELECT r.model, r.user_id, r.rank, CASE WHEN t.track_id IS NULL THEN 0 ELSE 1 END AS hit \
                  FROM {recs} r JOIN sizes s ON r.user_id = s.user_id \
                  LEFT JOIN {truth} t ON r.user_id = t.user_id AND r.track_id = t.track_id WHERE r.rank <= {k}), \
         cum AS (SELECT model, user_id, rank, hit, sum(hit) OVER (PARTITION BY model, user_id ORDER BY rank ROWS UNBOUNDED PRECEDING) AS seen FROM hits), \
         per_user AS (SELECT model, user_id, CAST(sum(hit) AS DOUBLE) AS hits, \
                      sum(CASE WHEN hit = 1 THEN CAST(seen AS DOUBLE) / rank ELSE 0 END) AS ap, \
                      sum(hit / log2(CAST(rank AS DOUBLE) + 1)) AS dcg FROM cum GROUP BY 1, 2), \
         ideal AS (SELECT s.user_id, sum(1 / log2(CAST(pos.i AS DOUBLE) + 1)) AS idcg FROM sizes s \
                   CROSS JOIN (SELECT unnest(range(1, {k} + 1)) AS i) pos WHERE pos.i <= s.n_rel GROUP BY 1), \
         models AS (SELECT model, CAST(count(DISTINCT track_id) AS DOUBLE) / {n_items} AS coverage FROM {recs} WHERE rank <= {k} GROUP BY 1) \
         SELECT m.model, CAST({k} AS INT) AS k, avg(coalesce(p.hits, 0) / {k}) AS precision, \
                avg(coalesce(p.hits, 0) / s.n_rel) AS recall, \
                avg(coalesce(p.ap, 0) / least(s.n_rel, {k})) AS map, avg(coalesce(p.dcg, 0) / i.idcg) AS ndcg, \
                max(m.coverage) AS coverage \
         FROM models m CROSS JOIN sizes s JOIN ideal i ON s.user_id = i.user_id \
         LEFT JOIN per_user p ON p.model = m.model AND p.user_id = s.user_id GROUP BY m.model",
        n_items = n_items.max(1)
    )
}
