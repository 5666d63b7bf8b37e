//! `user_top_genres`: each listener's three most played genres, the input of genre-aware
//! recommendations (seed 000's content and collaborative filtering). A Rust job: written with the
//! DataFrame API, planned on the client and run on the cluster like SQL.

use std::collections::BTreeMap;

use anyhow::Result;
use backbeat_cluster::session::{BackbeatSession, WriteMode};
use backbeat_connectors::export::{ExportOptions, export_table, target_for};
use datafusion::functions_aggregate::expr_fn::count;
use datafusion::functions_window::expr_fn::row_number;
use datafusion::logical_expr::{ExprFunctionExt, JoinType};
use datafusion::prelude::{col, lit};

use crate::job_runner::{ReportSection, RustJobOutput};

/// Runs the job with bound parameter values `params` (events, tracks, out, top, export_to).
pub async fn run(session: &BackbeatSession, params: &BTreeMap<String, String>) -> Result<RustJobOutput> {
    let ctx = session.context();
    let top: i64 = params["top"].parse()?;
    let events = ctx.table(params["events"].as_str()).await?.select_columns(&["user_id", "track_id"])?;
    let tracks = ctx
        .table(params["tracks"].as_str())
        .await?
        .select(vec![col("track_id").alias("genre_track_id"), col("track_genre")])?;
    let plays = events
        .join(tracks, JoinType::Inner, &["track_id"], &["genre_track_id"], None)?
        .aggregate(vec![col("user_id"), col("track_genre")], vec![count(lit(1)).alias("plays")])?;
    let rank = row_number()
        .partition_by(vec![col("user_id")])
        .order_by(vec![col("plays").sort(false, false), col("track_genre").sort(true, false)])
        .build()?
        .alias("genre_rank");
    let ranked = plays
        .window(vec![rank])?
        .filter(col("genre_rank").lt_eq(lit(top)))?
        .select_columns(&["user_id", "genre_rank", "track_genre", "plays"])?;

    let out = params["out"].as_str();
    let written = session.write_table(ranked, out, WriteMode::CreateOrReplace, &[]).await?.collect().await?;
    let rows_written = backbeat_cluster::session::rows_written(&written);

    let summary = ctx
        .table(out)
        .await?
        .filter(col("genre_rank").eq(lit(1_u64)))?
        .aggregate(vec![col("track_genre")], vec![count(lit(1)).alias("listeners")])?
        .sort(vec![col("listeners").sort(false, false), col("track_genre").sort(true, false)])?
        .limit(0, Some(10))?;
    // Serving: the same library call as `backbeat export` (PostgreSQL/MongoDB keyed by listener
    // and rank, or a Redis sorted set per listener ranked by plays).
    if let Some(url) = params.get("export_to").filter(|u| !u.is_empty()) {
        let options = ExportOptions {
            key: vec!["user_id".into(), "genre_rank".into()],
            key_pattern: Some(format!("{out}:{{user_id}}")),
            redis_value: Some("zset".into()),
            member: Some("track_genre".into()),
            score: Some("plays".into()),
            ..Default::default()
        };
        let target = target_for(url, out, &options)?;
        let report = export_table(session, out, None, &target, false).await?;
        tracing::info!(rows = report.rows, target = %report.target, "user_top_genres exported");
    }

    let schema = summary.schema().as_arrow().clone();
    let batches = summary.collect().await?;
    Ok(RustJobOutput {
        report: vec![ReportSection { title: "favourite genre: listeners".into(), schema, batches }],
        rows_written,
    })
}
