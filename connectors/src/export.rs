//! `export`: a lake table (or a query over the lake) streamed through the cluster into a serving
//! store, chosen by the URL scheme: `postgres://`, `redis://`, `mongodb://`.

use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use arrow::datatypes::Schema;
use backbeat_cluster::session::BackbeatSession;

use crate::ingest::quote_ident;
use crate::row_progress::RowProgress;
use crate::mongo_export::{self, MongoMode, MongoTarget};
use crate::postgres_export::{self, PgMode, PgTarget};
use crate::redis_export::{self, RedisTarget, RedisValue};
use crate::secret_url::redact;

/// A store and how to write to it.
#[derive(Debug, Clone)]
pub enum ExportTarget {
    /// PostgreSQL.
    Postgres(PgTarget),
    /// Redis.
    Redis(RedisTarget),
    /// MongoDB.
    Mongo(MongoTarget),
}

impl ExportTarget {
    /// The URL, password hidden.
    pub fn describe(&self) -> String {
        match self {
            Self::Postgres(t) => format!("{} table {}", redact(&t.url), t.table),
            Self::Redis(t) => format!("{} keys {}", redact(&t.url), t.key_pattern),
            Self::Mongo(t) => format!("{} collection {}", redact(&t.url), t.collection),
        }
    }
}

/// Options that shape a target, whichever store it is (the CLI's flags).
#[derive(Debug, Clone, Default)]
pub struct ExportOptions {
    /// Target table or collection [default: the lake table's name].
    pub name: Option<String>,
    /// Key columns.
    pub key: Vec<String>,
    /// `replace` (default) or `upsert` for PostgreSQL and MongoDB.
    pub upsert: bool,
    /// Redis key pattern.
    pub key_pattern: Option<String>,
    /// Redis value layout: `hash` (default), `json`, `zset`.
    pub redis_value: Option<String>,
    /// Redis sorted-set member column.
    pub member: Option<String>,
    /// Redis sorted-set score column.
    pub score: Option<String>,
    /// Redis key expiry, seconds.
    pub ttl: Option<u64>,
}

/// Chooses the store by URL scheme and checks the options make sense for it.
pub fn target_for(url: &str, table: &str, options: &ExportOptions) -> Result<ExportTarget> {
    let scheme = url.split(':').next().unwrap_or_default();
    let name = options.name.clone().unwrap_or_else(|| table.to_string());
    Ok(match scheme {
        "postgres" | "postgresql" => ExportTarget::Postgres(PgTarget {
            url: url.to_string(),
            table: name,
            key: options.key.clone(),
            mode: if options.upsert { PgMode::Upsert } else { PgMode::Replace },
        }),
        "redis" | "rediss" => {
            let key_pattern = options.key_pattern.clone().context("a Redis export needs --key-pattern, e.g. 'recs:{user_id}'")?;
            let value = match options.redis_value.as_deref().unwrap_or("hash") {
                "hash" => RedisValue::Hash,
                "json" => RedisValue::Json,
                "zset" | "sorted-set" => RedisValue::SortedSet {
                    member: options.member.clone().context("--value zset needs --member COLUMN")?,
                    score: options.score.clone().context("--value zset needs --score COLUMN")?,
                },
                other => bail!("--value must be hash, json or zset, not '{other}'"),
            };
            ensure!(!options.upsert, "Redis exports always replace the previous export atomically; drop --upsert");
            ExportTarget::Redis(RedisTarget { url: url.to_string(), key_pattern, value, ttl: options.ttl })
        }
        "mongodb" => ExportTarget::Mongo(MongoTarget {
            url: url.to_string(),
            collection: name,
            key: options.key.clone(),
            mode: if options.upsert { MongoMode::Upsert } else { MongoMode::Replace },
        }),
        _ => bail!("cannot export to {}: use postgres://, redis:// or mongodb://", redact(url)),
    })
}

/// Fails, naming the column, when a key column is missing.
pub fn validate_key_columns(schema: &Schema, key: &[String]) -> Result<()> {
    for k in key {
        ensure!(
            schema.index_of(k).is_ok(),
            "key column '{k}' is not a column of the export ({})",
            schema.fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>().join(", ")
        );
    }
    Ok(())
}

/// What an export did.
#[derive(Debug, Clone)]
pub struct ExportReport {
    /// The store, password hidden.
    pub target: String,
    /// Rows exported.
    pub rows: u64,
    /// Wall time, seconds.
    pub seconds: f64,
}

/// Exports lake table `table` (or, with `query`, that query's result) to `target`.
pub async fn export_table(
    session: &BackbeatSession,
    table: &str,
    query: Option<&str>,
    target: &ExportTarget,
    show_progress: bool,
) -> Result<ExportReport> {
    let started = Instant::now();
    let sql = match query {
        Some(q) => q.to_string(),
        None => {
            ensure!(session.lake().table_format(table).await?.is_some(), "no table '{table}' in the lake");
            format!("SELECT * FROM {}", quote_ident(table))
        }
    };
    let df = session.context().sql(&sql).await.with_context(|| format!("planning the export of '{table}'"))?;
    let stream = df.execute_stream().await.with_context(|| format!("reading '{table}'"))?;
    let progress = RowProgress::new(show_progress, &format!("{table} → {}", target.describe()));
    let rows = match target {
        ExportTarget::Postgres(t) => postgres_export::export(stream, t, &progress).await,
        ExportTarget::Redis(t) => redis_export::export(stream, t, &progress).await,
        ExportTarget::Mongo(t) => mongo_export::export(stream, t, &progress).await,
    }
    .with_context(|| format!("export of '{table}' to {} failed; the previous data is unchanged", target.describe()))?;
    progress.finish();
    let report = ExportReport { target: target.describe(), rows, seconds: started.elapsed().as_secs_f64() };
    tracing::info!(table, target = %report.target, rows, seconds = report.seconds, "exported");
    Ok(report)
}
