//! `recommend`: the top N tracks per user from a hybrid of four candidate sources, plus seed 001's
//! recommendation API as tables (by track, album, artist and genre).
//!
//! Candidate sources, each scored per user, all excluding tracks the user has played:
//! - `als`: the best `als_candidates` tracks by x_u·y_i among the `pool` most played tracks
//!   (`top_k_dot` on the executors; scoring all 1M tracks for 100k users would be 6.4·10¹² FLOPs);
//! - `item_item`: Σ over the user's `history` most recent tracks h of item_similar(h, t);
//! - `content`: the same over track_similar (skipped when `track_sim` is empty, e.g. Chinook);
//! - `genre`: the `genre_candidates` most played tracks of each genre, scored by the genre's share
//!   of the user's plays.
//!
//! The hybrid rescales each source's scores per user to [0, 1]: divided by the best score when all
//! are >= 0, else min-max (ALS dot products can be negative, and dividing by a negative best would
//! reverse their order); a source whose scores are all equal gives 1. It takes the weighted sum, and names as `reason` the source that contributed most.
//! The weights are parameters, equal by default: nothing here is fitted to a dataset. Users in the
//! `users` table with no plays get the most played tracks, reason `popular`.
//!
//! Tables: `<out>_candidates(user_id, track_id, source, score)`, `<out>_genre_top(genre, track_id)`, `user_recs(user_id, rank,
//! track_id, score, reason)`, `recs_by_track`, `recs_by_album`, `recs_by_artist`, `recs_by_genre`.

use std::collections::BTreeMap;

use anyhow::Result;
use backbeat_cluster::map_partitions::map_partitions;
use backbeat_cluster::session::{BackbeatSession, WriteMode};
use backbeat_connectors::export::{ExportOptions, export_table, target_for};

use super::top_k::{TOP_K_DOT, TopKArgs, VectorTable};
use super::{first_row_i64, ident, pinned, run_sql};
use crate::job_runner::{ReportSection, RustJobOutput};

/// Inputs and knobs of the hybrid.
#[derive(Debug, Clone)]
pub struct RecommendConfig {
    /// Events table.
    pub events: String,
    /// User column of events.
    pub user: String,
    /// Item column of events.
    pub item: String,
    /// Time column of events.
    pub time: String,
    /// Tracks table (track_id and the genre column).
    pub tracks: String,
    /// Genre column of tracks.
    pub genre: String,
    /// ALS tables prefix; empty skips ALS.
    pub als: String,
    /// Item-item table; empty skips it.
    pub item_sim: String,
    /// Content table; empty skips it.
    pub track_sim: String,
    /// Output prefix of the candidates table.
    pub out: String,
    /// Recommendations per user.
    pub top: i64,
    /// Most recent distinct tracks per user used as seeds.
    pub history: i64,
    /// Tracks ALS may recommend: the most played ones.
    pub pool: i64,
    /// ALS candidates per user.
    pub als_candidates: usize,
    /// Tracks per genre for the genre source.
    pub genre_candidates: i64,
    /// Weights: als, item_item, content, genre.
    pub weights: [f64; 4],
}

/// The four sources, in weight order.
pub const SOURCES: [&str; 4] = ["als", "item_item", "content", "genre"];

impl RecommendConfig {
    /// From bound job parameters.
    pub fn from_params(p: &BTreeMap<String, String>) -> Result<Self> {
        let f = |n: &str| -> Result<f64> { Ok(p[n].parse()?) };
        Ok(Self {
            events: p["events"].clone(),
            user: p["user_col"].clone(),
            item: p["item_col"].clone(),
            time: p["time_col"].clone(),
            tracks: p["tracks"].clone(),
            genre: p["genre_col"].clone(),
            als: p["als"].clone(),
            item_sim: p["item_sim"].clone(),
            track_sim: p["track_sim"].clone(),
            out: "recs".into(),
            top: p["top"].parse()?,
            history: p["history"].parse()?,
            pool: p["pool"].parse()?,
            als_candidates: p["als_candidates"].parse()?,
            genre_candidates: 50,
            weights: [f("w_als")?, f("w_item")?, f("w_content")?, f("w_genre")?],
        })
    }
}

/// Writes `<out>_seen` (each user's played tracks) and, when ALS is a source, `<out>_als` (each
/// user's best ALS tracks, scored on the executors): the inputs every pass of [`candidates`] reads.
pub async fn prepare(session: &BackbeatSession, c: &RecommendConfig) -> Result<()> {
    let (events, out) = (&c.events, &c.out);
    let (user, item, time) = (ident(&c.user)?, ident(&c.item)?, ident(&c.time)?);
    run_sql(session, &format!(
        "CREATE OR REPLACE TABLE {out}_seen AS SELECT {user} AS user_id, {item} AS track_id, count(*) AS plays, max({time}) AS last_played \
         FROM {events} WHERE {user} IS NOT NULL AND {item} IS NOT NULL GROUP BY 1, 2"
    ))
    .await?;
    // A catalogue may list a track once per genre (Spotify's does): one row per (track, genre).
    let genre = ident(&c.genre)?;
    run_sql(session, &format!(
        "CREATE OR REPLACE TABLE {out}_genres AS SELECT DISTINCT track_id, {genre} AS genre FROM {} WHERE track_id IS NOT NULL AND {genre} IS NOT NULL",
        c.tracks
    ))
    .await?;
    // Each genre's most played tracks: the genre source's candidates, the same for every pass.
    run_sql(session, &format!(
        "CREATE OR REPLACE TABLE {out}_genre_top AS SELECT genre, track_id FROM ( \
           SELECT t.genre, t.track_id, row_number() OVER (PARTITION BY t.genre ORDER BY p.plays DESC, t.track_id) AS r \
           FROM {out}_genres t JOIN (SELECT track_id, sum(plays) AS plays FROM {out}_seen GROUP BY 1) p ON t.track_id = p.track_id) \
         WHERE r <= {}",
        c.genre_candidates
    ))
    .await?;
    if !c.als.is_empty() {
        als_candidates(session, c).await?;
    }
    Ok(())
}

/// Writes `<out>_candidates` with every source's scores, for the users of `users` (a table or
/// subquery with a `user_id` column), or for everyone. Needs [`prepare`] first.
pub async fn candidates(session: &BackbeatSession, c: &RecommendConfig, users: Option<&str>) -> Result<()> {
    let out = &c.out;
    let only = |alias: &str| users.map(|u| format!(" WHERE {alias}user_id IN (SELECT user_id FROM {u})")).unwrap_or_default();
    let mut parts = Vec::new();
    if !c.als.is_empty() {
        parts.push(format!("SELECT user_id, track_id, 'als' AS source, score FROM {out}_als{}", only("")));
    }
    let recent = format!(
        "(SELECT user_id, track_id FROM (SELECT user_id, track_id, row_number() OVER (PARTITION BY user_id ORDER BY last_played DESC NULLS LAST, track_id) AS r \
         FROM {out}_seen{}) WHERE r <= {})",
        only(""),
        c.history
    );
    for (table, source) in [(&c.item_sim, "item_item"), (&c.track_sim, "content")] {
        if !table.is_empty() {
            parts.push(format!(
                "SELECT h.user_id, s.similar_track_id AS track_id, '{source}' AS source, sum(s.score) AS score \
                 FROM {recent} h JOIN {table} s ON h.track_id = s.track_id GROUP BY 1, 2"
            ));
        }
    }
    parts.push(format!(
        "SELECT ug.user_id, gt.track_id, 'genre' AS source, max(ug.share) AS score FROM \
         (SELECT s.user_id, t.genre, CAST(sum(s.plays) AS DOUBLE) / sum(sum(s.plays)) OVER (PARTITION BY s.user_id) AS share \
          FROM {out}_seen s JOIN {out}_genres t ON s.track_id = t.track_id{} GROUP BY 1, 2) ug \
         JOIN {out}_genre_top gt ON ug.genre = gt.genre GROUP BY 1, 2",
        only("s."),
    ));
    // Played tracks are excluded against this pass's users' plays only, not every user's.
    run_sql(session, &format!(
        "CREATE OR REPLACE TABLE {out}_candidates AS SELECT c.user_id, c.track_id, c.source, CAST(c.score AS DOUBLE) AS score \
         FROM ({}) c LEFT ANTI JOIN (SELECT user_id, track_id FROM {out}_seen{}) s ON c.user_id = s.user_id AND c.track_id = s.track_id",
        parts.join(" UNION ALL "),
        only("")
    ))
    .await?;
    Ok(())
}

async fn als_candidates(session: &BackbeatSession, c: &RecommendConfig) -> Result<()> {
    let (als, out) = (&c.als, &c.out);
    run_sql(session, &format!(
        "CREATE OR REPLACE TABLE {out}_pool AS SELECT item_idx FROM {als}_interactions GROUP BY item_idx ORDER BY count(*) DESC, item_idx LIMIT {}",
        c.pool
    ))
    .await?;
    let factors = FactorTables { index_prefix: als.clone(), user_factors: format!("{als}_user_factors"), item_factors: format!("{als}_item_factors") };
    score_factors(session, &factors, &format!("{out}_pool"), c.als_candidates, &format!("{out}_als")).await
}

/// Factor tables to score: `<index_prefix>_users/_items/_interactions` from `als_train`, and
/// factor tables with `user_idx`/`item_idx` and `factors` (ours, or a peer's in the benchmark).
#[derive(Debug, Clone)]
pub struct FactorTables {
    /// Prefix of the index and interaction tables.
    pub index_prefix: String,
    /// Table of (user_idx, factors).
    pub user_factors: String,
    /// Table of (item_idx, factors).
    pub item_factors: String,
}

/// Writes `out(user_id, track_id, score)`: each user's best `k` unplayed tracks among the items in
/// `pool(item_idx)`, by x_u·y_i, computed on the executors.
pub async fn score_factors(session: &BackbeatSession, f: &FactorTables, pool: &str, k: usize, out: &str) -> Result<()> {
    let p = &f.index_prefix;
    let counts = first_row_i64(session, &format!("SELECT (SELECT count(*) FROM {p}_users) AS users, (SELECT count(*) FROM {p}_items) AS items")).await?;
    let dim = first_row_i64(session, &format!("SELECT max(array_length(factors)) FROM {}", f.item_factors)).await?[0] as usize;
    let table = |name: String, idx: &'static str, n: i64| async move {
        let (uri, version) = pinned(session, &name).await?;
        anyhow::Ok(VectorTable { uri, version, idx_col: idx.into(), vec_col: "factors".into(), n: n as usize })
    };
    let (pool_uri, pool_version) = pinned(session, pool).await?;
    let args = TopKArgs {
        queries: table(f.user_factors.clone(), "user_idx", counts[0]).await?,
        candidates: table(f.item_factors.clone(), "item_idx", counts[1]).await?,
        dim,
        k,
        cosine: false,
        only: Some((pool_uri, pool_version, "item_idx".into())),
        ivf: None,
    };
    let input = session.sql(&format!("SELECT user_idx AS query_idx, item_idx AS exclude_idx FROM {p}_interactions")).await?;
    let scored = map_partitions(input, TOP_K_DOT, &serde_json::to_value(&args)?, &["query_idx"])?;
    session.context().register_table("als_scored_by_idx", scored.into_view())?;
    let named = session
        .sql(&format!(
            "SELECT u.user_id, i.track_id, s.score FROM als_scored_by_idx s JOIN {p}_users u ON s.query_idx = u.user_idx \
             JOIN {p}_items i ON s.item_idx = i.item_idx"
        ))
        .await;
    session.context().deregister_table("als_scored_by_idx")?;
    session.write_table(named?, out, WriteMode::CreateOrReplace, &[]).await?.collect().await?;
    Ok(())
}

/// The hybrid's SQL: per user, the top `top` tracks of the weighted, per-source normalised scores.
pub fn hybrid_sql(c: &RecommendConfig) -> String {
    let weights: Vec<String> = SOURCES.iter().zip(c.weights).map(|(s, w)| format!("WHEN '{s}' THEN CAST({w} AS DOUBLE)")).collect();
    // The reason is the source with the largest part, ties to the alphabetically first. It was
    // `first_value(source ORDER BY part DESC, source)`, whose accumulator keeps a Vec of
    // ScalarValues (64 bytes each) per group: ~3 GB for a 10,000-user pass at datagen scale 100.
    // One max() per source keeps four doubles per group instead.
    let mut by_name = SOURCES.to_vec();
    by_name.sort_unstable();
    let parts: Vec<String> = by_name.iter().map(|s| format!("max(CASE WHEN source = '{s}' THEN part END) AS p_{s}")).collect();
    let best = format!("greatest({})", by_name.iter().map(|s| format!("p_{s}")).collect::<Vec<_>>().join(", "));
    let reason: Vec<String> = by_name.iter().map(|s| format!("WHEN p_{s} = {best} THEN '{s}'")).collect();
    format!(
        // The bounds come from a GROUP BY joined back, not from min/max OVER (PARTITION BY user_id,
        // source): with a window keyed by columns that are not all group keys of the aggregate
        // after it, DataFusion 55 + Ballista wrote duplicate (user_id, track_id) groups into the
        // table (35,836 rows for 32,968 pairs at datagen scale 0.1), while the same SELECT alone
        // counted right. The bounds (users x sources) come first: the build side of the join.
        "WITH bounds AS (SELECT user_id, source, min(score) AS lo, max(score) AS hi FROM {out}_candidates GROUP BY 1, 2), \
         normalised AS (SELECT c.user_id, c.track_id, c.source, \
            coalesce(CASE WHEN b.lo >= 0 THEN c.score / nullif(b.hi, 0) ELSE (c.score - b.lo) / nullif(b.hi - b.lo, 0) END, 1) \
            * CASE c.source {weights} ELSE 0 END AS part \
            FROM bounds b JOIN {out}_candidates c ON c.user_id = b.user_id AND c.source = b.source), \
         per_track AS (SELECT user_id, track_id, sum(part) AS score, {parts} FROM normalised GROUP BY 1, 2) \
         SELECT user_id, CAST(rank AS INT) AS rank, track_id, score, reason FROM ( \
           SELECT user_id, track_id, score, CASE {reason} END AS reason, \
             row_number() OVER (PARTITION BY user_id ORDER BY score DESC, track_id) AS rank \
           FROM per_track) WHERE rank <= {top}",
        weights = weights.join(" "),
        parts = parts.join(", "),
        reason = reason.join(" "),
        out = c.out,
        top = c.top
    )
}

/// The catalogue entry point.
///
/// The hybrid runs in passes of at most `users_per_pass` users: each pass writes that bucket's
/// candidates (about history x neighbours x 2 + ALS + genre rows a user, ~1,000 at the defaults)
/// and appends its top N to a working table, so memory stays bounded by the bucket, not by the
/// user base. `user_recs` is replaced by one commit at the end.
pub async fn run(session: &BackbeatSession, params: &BTreeMap<String, String>) -> Result<RustJobOutput> {
    let c = RecommendConfig::from_params(params)?;
    let per_pass: i64 = params.get("users_per_pass").map_or(Ok(10_000), |v| v.parse())?;
    anyhow::ensure!(per_pass >= 1 && c.top >= 1, "users_per_pass and top must be at least 1");
    prepare(session, &c).await?;
    let out = &c.out;
    run_sql(session, &format!(
        "CREATE OR REPLACE TABLE {out}_user_buckets AS SELECT user_id, CAST((row_number() OVER (ORDER BY user_id) - 1) / {per_pass} AS BIGINT) AS bucket \
         FROM (SELECT DISTINCT user_id FROM {out}_seen)"
    ))
    .await?;
    let passes = first_row_i64(session, &format!("SELECT coalesce(max(bucket) + 1, 0) AS passes FROM {out}_user_buckets")).await?[0];
    let staging = format!("{out}_user_recs");
    super::drop_table(session, &staging).await?;
    let progress = indicatif::ProgressBar::new(passes as u64).with_style(
        indicatif::ProgressStyle::with_template("recommend {pos}/{len} passes {wide_bar} {elapsed}").expect("static template"),
    );
    for pass in 0..passes {
        let bucket = format!("(SELECT user_id FROM {out}_user_buckets WHERE bucket = {pass})");
        candidates(session, &c, Some(&bucket)).await?;
        let verb = if pass == 0 { format!("CREATE TABLE {staging} AS") } else { format!("INSERT INTO {staging}") };
        run_sql(session, &format!("{verb} {}", hybrid_sql(&c))).await?;
        progress.inc(1);
    }
    progress.finish_and_clear();
    if passes == 0 {
        run_sql(session, &format!(
            "CREATE TABLE {staging} AS SELECT user_id, CAST(0 AS INT) AS rank, track_id, CAST(0 AS DOUBLE) AS score, 'none' AS reason FROM {out}_seen WHERE false"
        ))
        .await?;
    }
    let users = params["users"].as_str();
    let fallback = if users.is_empty() {
        String::new()
    } else {
        format!(
            " UNION ALL SELECT u.user_id, CAST(p.rank AS INT) AS rank, p.track_id, p.score, 'popular' AS reason \
             FROM (SELECT DISTINCT user_id FROM {users} WHERE user_id NOT IN (SELECT user_id FROM {out}_seen)) u \
             CROSS JOIN (SELECT track_id, CAST(plays AS DOUBLE) AS score, row_number() OVER (ORDER BY plays DESC, track_id) AS rank \
                         FROM (SELECT track_id, sum(plays) AS plays FROM {out}_seen GROUP BY 1)) p WHERE p.rank <= {}",
            c.top
        )
    };
    let mut written = run_rows(session, &format!("CREATE OR REPLACE TABLE user_recs AS SELECT user_id, rank, track_id, score, reason FROM {staging}{fallback}")).await?;
    super::drop_table(session, &staging).await?;
    written += api_tables(session, &c, params).await?;
    if let Some(url) = params.get("export_to").filter(|u| !u.is_empty()) {
        export(session, url).await?;
    }
    let summary = run_sql(session, "SELECT reason, count(*) AS recs, count(DISTINCT user_id) AS users, count(DISTINCT track_id) AS tracks FROM user_recs GROUP BY reason ORDER BY recs DESC").await?;
    Ok(RustJobOutput { report: vec![ReportSection::from_batches("user_recs by reason", summary)], rows_written: written })
}

/// Similarity pairs one pass of `recs_by_track` aggregates at most (about 1.1 GB of aggregate
/// state and sort at ~140 bytes a pair, measured 5.2 GB for 23M pairs in one pass).
const PAIRS_PER_PASS: i64 = 5_000_000;

async fn run_rows(session: &BackbeatSession, sql: &str) -> Result<u64> {
    Ok(backbeat_cluster::session::rows_written(&run_sql(session, sql).await?))
}

/// recs_by_track/album/artist/genre: seed 001's API, precomputed.
async fn api_tables(session: &BackbeatSession, c: &RecommendConfig, p: &BTreeMap<String, String>) -> Result<u64> {
    let (tracks, out) = (&c.tracks, &c.out);
    let tables: Vec<&String> = [&c.item_sim, &c.track_sim].into_iter().filter(|t| !t.is_empty()).collect();
    if tables.is_empty() {
        return Ok(0);
    }
    // The pairs of both similarity tables are summed per (track, similar track) and ranked: at
    // datagen scale 100 that is a 23M-group aggregate and sort that peaked at 5.2 GB in one
    // statement (everything else in `recommend` stays under 3.1 GB). Done in passes over
    // buckets of track_id, each holds a fraction of it; a track's pairs all fall in one bucket,
    // so the answer is the same. The passes go to a staging table and `recs_by_track` is
    // replaced by one commit at the end.
    let mut pairs = 0;
    for table in &tables {
        pairs += first_row_i64(session, &format!("SELECT count(*) FROM {table}")).await?[0];
    }
    let passes = ((pairs + PAIRS_PER_PASS - 1) / PAIRS_PER_PASS).clamp(1, 16);
    let staging = format!("{out}_recs_by_track");
    super::drop_table(session, &staging).await?;
    let top = c.top;
    for pass in 0..passes {
        let only = if passes == 1 {
            String::new()
        } else {
            format!(" WHERE strpos('0123456789abcdef', substr(md5(CAST(track_id AS VARCHAR)), 1, 1)) % {passes} = {pass}")
        };
        // Each track's best score from a GROUP BY joined back, not max() OVER (PARTITION BY
        // track_id): an unbounded window is DataFusion's WindowAggExec, which holds its whole
        // input outside the memory pool and emits it as one batch (20M rows of track_similar
        // at datagen scale 100: ~1.5 GB per task that no pool could spill).
        let sims: Vec<String> = tables
            .iter()
            .map(|table| {
                format!(
                    "SELECT s.track_id, s.similar_track_id, greatest(s.score, 0) / nullif(m.best, 0) AS score, '{table}' AS reason \
                     FROM (SELECT track_id, max(score) AS best FROM {table}{only} GROUP BY 1) m JOIN (SELECT * FROM {table}{only}) s ON s.track_id = m.track_id"
                )
            })
            .collect();
        let verb = if pass == 0 { format!("CREATE TABLE {staging} AS") } else { format!("INSERT INTO {staging}") };
        run_sql(session, &format!(
            "{verb} SELECT track_id, CAST(rank AS INT) AS rank, rec_track_id, score, reason FROM ( \
               SELECT track_id, rec_track_id, score, reason, row_number() OVER (PARTITION BY track_id ORDER BY score DESC, rec_track_id) AS rank FROM ( \
                 SELECT track_id, similar_track_id AS rec_track_id, sum(score) AS score, max(reason) AS reason FROM ({}) s GROUP BY 1, 2)) \
             WHERE rank <= {top}",
            sims.join(" UNION ALL ")
        ))
        .await?;
    }
    let mut written = run_rows(session, &format!("CREATE OR REPLACE TABLE recs_by_track AS SELECT * FROM {staging}")).await?;
    super::drop_table(session, &staging).await?;
    for (name, column) in [("album", p["album_col"].as_str()), ("artist", p["artist_col"].as_str())] {
        if column.is_empty() {
            continue;
        }
        let column = ident(column)?;
        let members = format!("(SELECT DISTINCT track_id, {column} FROM {tracks} WHERE {column} IS NOT NULL)");
        written += run_rows(session, &format!(
            "CREATE OR REPLACE TABLE recs_by_{name} AS SELECT {name}, CAST(rank AS INT) AS rank, track_id, score FROM ( \
               SELECT {name}, track_id, score, row_number() OVER (PARTITION BY {name} ORDER BY score DESC, track_id) AS rank FROM ( \
                 SELECT t.{column} AS {name}, r.rec_track_id AS track_id, sum(r.score) AS score \
                 FROM {members} t JOIN recs_by_track r ON t.track_id = r.track_id \
                 LEFT ANTI JOIN {members} own ON own.{column} = t.{column} AND own.track_id = r.rec_track_id \
                 GROUP BY 1, 2)) WHERE rank <= {top}"
        ))
        .await?;
    }
    written += run_rows(session, &format!(
        "CREATE OR REPLACE TABLE recs_by_genre AS SELECT genre, CAST(rank AS INT) AS rank, track_id, score FROM ( \
           SELECT t.genre, t.track_id, CAST(coalesce(p.plays, 0) AS DOUBLE) AS score, \
                  row_number() OVER (PARTITION BY t.genre ORDER BY coalesce(p.plays, 0) DESC, t.track_id) AS rank \
           FROM {out}_genres t LEFT JOIN (SELECT track_id, sum(plays) AS plays FROM {out}_seen GROUP BY 1) p ON t.track_id = p.track_id) \
         WHERE rank <= {top}"
    ))
    .await?;
    Ok(written)
}

/// Users' recs to Redis (a sorted set per user, `recs:<user_id>`) and the by-track lists to
/// PostgreSQL or MongoDB, through the export library; other schemes get user_recs as rows.
async fn export(session: &BackbeatSession, url: &str) -> Result<()> {
    let (table, options) = if url.starts_with("redis") {
        ("user_recs", ExportOptions {
            key: vec!["user_id".into(), "rank".into()],
            key_pattern: Some("recs:{user_id}".into()),
            redis_value: Some("zset".into()),
            member: Some("track_id".into()),
            score: Some("score".into()),
            ..Default::default()
        })
    } else {
        ("recs_by_track", ExportOptions { key: vec!["track_id".into(), "rank".into()], ..Default::default() })
    };
    let target = target_for(url, table, &options)?;
    let report = export_table(session, table, None, &target, false).await?;
    tracing::info!(rows = report.rows, target = %report.target, "recommendations exported");
    Ok(())
}
