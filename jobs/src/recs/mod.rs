//! Recommendations (seeds 000, 001 and 003): models trained on the cluster, evaluated on held-out
//! plays, served by user, track, album, artist and genre. One file per model or step, each a
//! catalogue job; the numerical work runs as partition kernels on the executors
//! ([`backbeat_cluster::map_partitions`]), with SQL doing the joins and aggregations around it.

use std::sync::Arc;

use anyhow::{Context, Result, bail};
use arrow::array::{Array, AsArray};
use arrow::datatypes::Int64Type;
use arrow::record_batch::RecordBatch;
use backbeat_cluster::delta::DeltaTableProvider;
use backbeat_cluster::map_partitions::register_kernel;
use backbeat_cluster::session::BackbeatSession;

use crate::job_catalogue::Job;
use crate::job_params::{ParamSpec, ParamType as T};

/// Implicit-feedback ALS training (`als_train`).
pub mod als;
/// The ALS solver for one row, exact or by conjugate gradient.
pub mod als_solve;
/// The ALS half-sweep kernel: resident interactions, factor blocks handed between sweeps.
pub mod als_sweep;
/// Held-out evaluation of every model (`recs_eval`).
pub mod eval;
/// An inverted-file index for approximate cosine neighbours.
pub mod ivf;
/// Item-item collaborative filtering in cluster SQL (`item_similarity`).
pub mod item_similarity;
/// The hybrid recommender and seed 001's API tables (`recommend`).
pub mod recommend;
/// The exact top-K by dot product / cosine kernel.
pub mod top_k;
/// Content-based neighbours from audio features (`track_similarity`).
pub mod track_similarity;
/// Dense vectors, their Arrow form and the dot products.
pub mod vectors;

/// Registers the recommendation kernels in this process; every backbeat process calls it at start.
pub fn register_kernels() {
    register_kernel(Arc::new(als_sweep::AlsSweepKernel));
    register_kernel(Arc::new(top_k::TopKKernel));
}

/// The recommendation jobs of the catalogue.
pub fn catalogue_jobs() -> Vec<Job> {
    let p = ParamSpec::with_default;
    let events = || {
        vec![
            p("events", T::Table, "listening_events", "events: one row per play"),
            p("user_col", T::Text, "user_id", "user column of events"),
            p("item_col", T::Text, "track_id", "track column of events"),
        ]
    };
    let time = || p("time_col", T::Text, "played_at", "time column of events");
    let als_params = || {
        vec![
            p("rank", T::Int, "64", "factors per user and item"),
            p("lambda", T::Float, "0.1", "L2 regularisation"),
            p("lambda_scaling", T::Text, "none", "none: the same lambda for every row (implicit's); count: lambda x the row's interactions (Spark's ALS-WR)"),
            p("alpha", T::Float, "1.0", "confidence c = 1 + alpha * plays"),
            p("iterations", T::Int, "10", "sweeps over users and items"),
            p("cg_steps", T::Int, "3", "conjugate-gradient steps per solve (implicit's default); 0 = exact Cholesky (Spark's)"),
        ]
    };
    let mut als = events();
    als.extend(als_params());
    als.extend([
        p("weight_col", T::Text, "", "weight column (e.g. quantity); empty counts rows"),
        p("seed", T::Int, "42", "seed of the initial factors"),
        p("prefix", T::Table, "als", "output tables <prefix>_user_factors, _item_factors, _loss, _users, _items, _interactions"),
    ]);
    let mut item_sim = events();
    item_sim.extend([
        time(),
        p("max_history", T::Int, "50", "most recent distinct tracks kept per user"),
        p("shrinkage", T::Float, "10", "shrinkage of small co-listening counts"),
        p("min_co", T::Int, "2", "minimum users who played both tracks"),
        p("top", T::Int, "20", "neighbours per track"),
        p("out", T::Table, "item_similar", "output table (track_id, rank, similar_track_id, score)"),
    ]);
    let mut recommend = events();
    recommend.extend([
        time(),
        p("tracks", T::Table, "tracks", "tracks: track_id, the genre column, album and artist columns"),
        p("genre_col", T::Text, "track_genre", "genre column of tracks"),
        p("album_col", T::Text, "album_name", "album column of tracks (empty: no recs_by_album)"),
        p("artist_col", T::Text, "artists", "artist column of tracks (empty: no recs_by_artist)"),
        p("users", T::Text, "users", "users table for the no-history fallback (empty: none)"),
        p("als", T::Text, "als", "ALS tables prefix from als_train (empty: no ALS source)"),
        p("item_sim", T::Text, "item_similar", "item-item table (empty: none)"),
        p("track_sim", T::Text, "track_similar", "content table (empty: none)"),
        p("top", T::Int, "10", "recommendations per user, track, album, artist, genre"),
        p("history", T::Int, "20", "most recent tracks per user that seed item-item and content candidates"),
        p("pool", T::Int, "20000", "ALS scores only the most played tracks"),
        p("als_candidates", T::Int, "50", "ALS candidates per user"),
        p("w_als", T::Float, "1", "hybrid weight of ALS"),
        p("w_item", T::Float, "1", "hybrid weight of item-item"),
        p("w_content", T::Float, "1", "hybrid weight of content"),
        p("w_genre", T::Float, "1", "hybrid weight of genre affinity"),
        p("users_per_pass", T::Int, "10000", "users whose candidates are scored together; bounds memory"),
        p("export_to", T::Text, "", "redis://... (sorted set recs:<user_id>), postgres://... or mongodb://... (recs_by_track)"),
    ]);
    let mut eval = events();
    eval.extend(als_params());
    eval.extend([
        time(),
        p("dataset", T::Text, "generated", "generated (the events/tracks tables) or chinook (the real purchases)"),
        p("chinook_dir", T::Text, "datasets/chinook", "directory of the Chinook CSVs"),
        p("tracks", T::Table, "tracks", "tracks with audio features (generated dataset)"),
        p("k", T::Int, "10", "cut-off of the metrics"),
        p("test_share", T::Float, "0.2", "share of each user's latest plays held out"),
        p("max_history", T::Int, "50", "history cap of item-item and the hybrid"),
        p("pool", T::Int, "20000", "ALS scores only the most played tracks"),
    ]);
    let job = Job::rust;
    vec![
        job("als_train", "Implicit-feedback ALS (Hu et al. 2008) on the executors: factor tables and the loss per iteration", als, |s, p| Box::pin(als::run(s, p))),
        job("item_similarity", "Item-item collaborative filtering: top-K co-listened tracks per track (cosine with shrinkage)", item_sim, |s, p| Box::pin(item_similarity::run(s, p))),
        job(
            "track_similarity",
            "Content-based: top-K tracks per track by cosine of standardised audio features, on the executors",
            vec![
                p("tracks", T::Table, "tracks", "tracks with audio features"),
                p("top", T::Int, "20", "neighbours per track"),
                p("method", T::Text, "auto", "exact, ivf (approximate, recall reported), or auto: exact up to 50,000 tracks"),
                p("probes", T::Int, "16", "IVF cells searched per track (of sqrt(tracks)); more is slower and closer to exact"),
                p("out", T::Table, "track_similar", "output table (track_id, rank, similar_track_id, score)"),
            ],
            |s, p| Box::pin(track_similarity::run(s, p)),
        ),
        job("recommend", "Hybrid top-N per user (ALS, item-item, content, genre) and recs by track, album, artist and genre", recommend, |s, p| Box::pin(recommend::run(s, p))),
        job("recs_eval", "Held-out evaluation of popularity, item-item, content, ALS and hybrid: precision, recall, MAP, NDCG@k, coverage", eval, |s, p| Box::pin(eval::run(s, p))),
    ]
}

/// Runs one statement and collects its rows.
pub(crate) async fn run_sql(session: &BackbeatSession, sql: &str) -> Result<Vec<RecordBatch>> {
    let clock = std::time::Instant::now();
    let df = session.sql(sql).await.with_context(|| format!("planning: {}", first_line(sql)))?;
    let batches = df.collect().await.with_context(|| format!("running: {}", first_line(sql)))?;
    tracing::debug!(seconds = clock.elapsed().as_secs_f64(), statement = %sql.chars().take(160).collect::<String>(), "statement done");
    Ok(batches)
}

fn first_line(sql: &str) -> &str {
    sql.trim().lines().next().unwrap_or_default()
}

/// The first row of a query whose columns are all integers (counts), as i64; scalar subqueries
/// must be aliased.
pub(crate) async fn first_row_i64(session: &BackbeatSession, sql: &str) -> Result<Vec<i64>> {
    let batches = run_sql(session, sql).await?;
    let batch = batches.iter().find(|b| b.num_rows() > 0).context("query returned no row")?;
    batch
        .columns()
        .iter()
        .map(|c| {
            let c = arrow::compute::cast(c, &arrow::datatypes::DataType::Int64)?;
            let c = c.as_primitive::<Int64Type>();
            Ok(if c.is_null(0) { 0 } else { c.value(0) })
        })
        .collect()
}

/// The URI of lake table `name` and its current version, to pin a broadcast read to.
pub(crate) async fn pinned(session: &BackbeatSession, name: &str) -> Result<(String, u64)> {
    let url = session.lake().table_url(name)?;
    let provider = DeltaTableProvider::open(&url, None).await.with_context(|| format!("opening {name}"))?;
    let version = provider.spec().version.with_context(|| format!("table {name} has no version"))?;
    Ok((url.to_string(), version))
}

/// Removes a working table the job created; a table that is not there is fine.
pub(crate) async fn drop_table(session: &BackbeatSession, name: &str) -> Result<()> {
    let lake = session.lake();
    lake.table_url(name)?;
    lake.lake_root().remove_all(name).await.with_context(|| format!("cannot remove working table {name}"))
}

/// A column name parameter as a quoted SQL identifier; only plain names are accepted.
pub(crate) fn ident(name: &str) -> Result<String> {
    let plain = !name.is_empty()
        && name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !plain {
        bail!("'{name}' is not a plain column name (letters, digits and underscores)");
    }
    Ok(format!("\"{name}\""))
}

/// Fails, naming the table and its columns, unless `table` has every column in `columns`.
pub(crate) async fn require_columns(session: &BackbeatSession, table: &str, columns: &[&str]) -> Result<()> {
    let df = session.context().table(table).await.with_context(|| format!("table '{table}' is not in the lake"))?;
    let schema = df.schema();
    let have: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    for column in columns {
        if !have.contains(column) {
            bail!("table '{table}' has no column '{column}' (its columns: {})", have.join(", "));
        }
    }
    Ok(())
}
