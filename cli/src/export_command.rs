//! `backbeat export`: a lake table or query into PostgreSQL, Redis and/or MongoDB.

use anyhow::{Result, bail};
use backbeat_connectors::export::{ExportOptions, export_table, target_for};
use clap::Args;

use crate::SessionArgs;

/// Arguments of `backbeat export`.
#[derive(Args)]
#[command(after_help = "Examples:
  backbeat export customer_segments --to postgres://me@127.0.0.1:5432/serving --key customer_id --upsert
  backbeat export user_recs --to redis://127.0.0.1:6379/0 --key-pattern 'recs:{user_id}' --value zset --member track_id --score score --ttl 86400
  backbeat export next_week_buyers --to mongodb://127.0.0.1:27017/shop --key customer_id
Several --to export the same rows to several stores, one after the other.")]
pub struct ExportArgs {
    /// Lake table to export (also the default target table/collection name).
    table: String,
    /// Store URL: postgres://, redis:// or mongodb:// (repeat for several stores).
    #[arg(long = "to", required = true)]
    to: Vec<String>,
    /// Export this query's result instead of the whole table.
    #[arg(long)]
    query: Option<String>,
    /// Target table (PostgreSQL, may be schema.table) or collection (MongoDB) [default: TABLE].
    #[arg(long)]
    name: Option<String>,
    /// Key columns: PostgreSQL primary key and upsert conflict target, MongoDB _id.
    #[arg(long, value_delimiter = ',')]
    key: Vec<String>,
    /// Upsert by key instead of replacing the table/collection (PostgreSQL, MongoDB).
    #[arg(long)]
    upsert: bool,
    /// Redis key pattern with {column} placeholders, e.g. 'recs:{user_id}'.
    #[arg(long)]
    key_pattern: Option<String>,
    /// Redis value: hash (every column), json (an object), or zset (ranked members).
    #[arg(long = "value")]
    redis_value: Option<String>,
    /// Redis sorted-set member column.
    #[arg(long)]
    member: Option<String>,
    /// Redis sorted-set score column.
    #[arg(long)]
    score: Option<String>,
    /// Redis key expiry in seconds.
    #[arg(long)]
    ttl: Option<u64>,
    #[command(flatten)]
    session: SessionArgs,
}

/// Runs `backbeat export`.
pub async fn run(args: ExportArgs) -> Result<()> {
    let options = ExportOptions {
        name: args.name.clone(),
        key: args.key.clone(),
        upsert: args.upsert,
        key_pattern: args.key_pattern.clone(),
        redis_value: args.redis_value.clone(),
        member: args.member.clone(),
        score: args.score.clone(),
        ttl: args.ttl,
    };
    // Every target is checked before anything is written.
    let targets = args.to.iter().map(|url| target_for(url, &args.table, &options)).collect::<Result<Vec<_>>>()?;
    let session = args.session.connect().await?;
    let mut failures = 0;
    for target in &targets {
        match export_table(&session, &args.table, args.query.as_deref(), target, true).await {
            Ok(r) => println!("{}: {} rows in {:.2} s ({:.0} rows/s)", r.target, r.rows, r.seconds, r.rows as f64 / r.seconds.max(1e-9)),
            Err(e) => {
                failures += 1;
                eprintln!("error: {e:#}");
            }
        }
    }
    if failures > 0 {
        bail!("{failures} of {} exports failed", targets.len());
    }
    Ok(())
}
