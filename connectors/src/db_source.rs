//! MariaDB/MySQL and PostgreSQL tables or queries as an ingest source, read like Spark's JDBC source
//! with `partitionColumn`/`numPartitions`: the value range of a numeric or date column is cut into
//! ranges read concurrently, each on its own connection, each streamed in bounded memory
//! (PostgreSQL `COPY ... TO STDOUT`, MySQL's row stream) and typed row by row.

use std::sync::Arc;

use anyhow::{Context, Result, bail, ensure};
use futures::StreamExt;
use mysql_async::prelude::Queryable;

use crate::dead_letter::Reject;
use crate::ingest::{ChunkSender, PartitionReader, PendingChunk, SourcePlan, TargetTable};
use crate::secret_url::{redact, scrub_error};
use crate::table_spec::{ColumnSpec, ColumnType, TableSpec};

/// Which database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbKind {
    /// PostgreSQL.
    Postgres,
    /// MariaDB or MySQL.
    Mysql,
}

/// What to read.
#[derive(Debug, Clone)]
pub enum DbQuery {
    /// A table, optionally schema-qualified (`sales.orders`).
    Table(String),
    /// Any SELECT.
    Query(String),
}

/// A database source.
#[derive(Debug, Clone)]
pub struct DbSource {
    /// Which database.
    pub kind: DbKind,
    /// `postgres://user@host:5432/db` or `mysql://user@host:3306/db`.
    pub url: String,
    /// Table or query.
    pub query: DbQuery,
    /// The numeric or date column whose range is split (Spark's `partitionColumn`).
    pub partition_column: Option<String>,
    /// Ranges read concurrently (Spark's `numPartitions`).
    pub num_partitions: usize,
}

impl DbSource {
    /// The URL scheme decides the database.
    pub fn kind_of(url: &str) -> Result<DbKind> {
        match url.split(':').next() {
            Some("postgres" | "postgresql") => Ok(DbKind::Postgres),
            Some("mysql" | "mariadb") => Ok(DbKind::Mysql),
            _ => bail!("unsupported database URL {} (postgres:// or mysql://)", redact(url)),
        }
    }

    fn quote(&self, ident: &str) -> String {
        match self.kind {
            DbKind::Postgres => format!("\"{}\"", ident.replace('"', "\"\"")),
            DbKind::Mysql => format!("`{}`", ident.replace('`', "``")),
        }
    }

    /// The source as a derived table every partition query selects from.
    fn from_clause(&self) -> String {
        match &self.query {
            DbQuery::Table(t) => t.split('.').map(|p| self.quote(p)).collect::<Vec<_>>().join("."),
            DbQuery::Query(q) => format!("({}) AS backbeat_src", q.trim().trim_end_matches(';')),
        }
    }

    fn describe(&self) -> String {
        let what = match &self.query {
            DbQuery::Table(t) => t.clone(),
            DbQuery::Query(_) => "query".into(),
        };
        format!("{} {what}", redact(&self.url))
    }
}

/// A discovered source column.
struct SourceColumn {
    name: String,
    column_type: ColumnType,
}

/// Plans reading `source` into `table`: discovers columns (a declared spec wins), cuts the
/// partition column's range into `num_partitions` ranges.
pub async fn plan(source: DbSource, table: String, declared: Option<TableSpec>, key: Vec<String>) -> Result<SourcePlan> {
    let url = source.url.clone();
    plan_inner(source, table, declared, key).await.map_err(|e| scrub_error(e, &url))
}

async fn plan_inner(source: DbSource, table: String, declared: Option<TableSpec>, key: Vec<String>) -> Result<SourcePlan> {
    ensure!(source.num_partitions >= 1, "--num-partitions must be at least 1");
    let discovered = match source.kind {
        DbKind::Postgres => postgres_columns(&source).await?,
        DbKind::Mysql => mysql_columns(&source).await?,
    };
    let spec = match declared {
        Some(mut spec) => {
            for c in &spec.columns {
                let wanted = c.source.as_deref().unwrap_or(&c.name);
                ensure!(
                    discovered.iter().any(|d| d.name == wanted),
                    "column '{wanted}' is not in {} ({})",
                    source.describe(),
                    discovered.iter().map(|d| d.name.as_str()).collect::<Vec<_>>().join(", ")
                );
            }
            if !key.is_empty() {
                spec = TableSpec::new(spec.table, spec.columns, key)?;
            }
            spec
        }
        None => TableSpec::new(
            None,
            discovered
                .iter()
                .map(|d| ColumnSpec { name: d.name.clone(), column_type: d.column_type, required: false, format: None, source: None })
                .collect(),
            key,
        )?,
    };
    let spec = Arc::new(spec);
    let predicates = match &source.partition_column {
        Some(column) if source.num_partitions > 1 => range_predicates(&source, column).await?,
        _ => vec![String::new()],
    };
    let columns = spec
        .columns
        .iter()
        .map(|c| source.quote(c.source.as_deref().unwrap_or(&c.name)))
        .collect::<Vec<_>>()
        .join(", ");
    let label = format!("{table} ← {} in {} range(s)", source.describe(), predicates.len());
    let source = Arc::new(source);
    let partitions = predicates
        .into_iter()
        .enumerate()
        .map(|(i, predicate)| {
            let sql = format!("SELECT {columns} FROM {}{predicate}", source.from_clause());
            let source = source.clone();
            let spec = spec.clone();
            let reader: PartitionReader = Box::new(move |tx: ChunkSender| {
                Box::pin(async move {
                    let name = format!("{} partition {}", source.describe(), i + 1);
                    let result = match source.kind {
                        DbKind::Postgres => read_postgres(&source.url, &sql, &name, spec, tx).await,
                        DbKind::Mysql => read_mysql(&source.url, &sql, &name, spec, tx).await,
                    };
                    result.with_context(|| format!("reading {name}")).map_err(|e| scrub_error(e, &source.url))
                })
            });
            reader
        })
        .collect();
    Ok(SourcePlan { tables: vec![TargetTable { name: table, spec }], partitions, label })
}

/// `WHERE` clauses that cut `column`'s [min, max] into equal ranges; NULLs go to the first.
async fn range_predicates(source: &DbSource, column: &str) -> Result<Vec<String>> {
    let c = source.quote(column);
    let (min, max) = match source.kind {
        DbKind::Postgres => {
            let client = pg_connect(&source.url).await?;
            let row = client
                .query_one(&format!("SELECT min({c})::text, max({c})::text FROM {}", source.from_clause()), &[])
                .await
                .context("reading the partition column's range")?;
            (row.get::<_, Option<String>>(0), row.get::<_, Option<String>>(1))
        }
        DbKind::Mysql => {
            let mut conn = mysql_connect(&source.url).await?;
            let row: Option<(Option<String>, Option<String>)> = conn
                .query_first(format!("SELECT CAST(min({c}) AS CHAR), CAST(max({c}) AS CHAR) FROM {}", source.from_clause()))
                .await
                .context("reading the partition column's range")?;
            row.unwrap_or((None, None))
        }
    };
    let (Some(min), Some(max)) = (min, max) else {
        return Ok(vec![String::new()]); // empty (or all-NULL) source: one partition
    };
    let n = source.num_partitions as i128;
    // Integers split as they are; dates and timestamps as days / microseconds since the epoch.
    let (lo, hi, literal): (i128, i128, Box<dyn Fn(i128) -> String>) = if let (Ok(a), Ok(b)) = (min.parse::<i64>(), max.parse::<i64>()) {
        (a as i128, b as i128, Box::new(|v: i128| v.to_string()))
    } else if let (Ok(a), Ok(b)) = (chrono::NaiveDate::parse_from_str(&min, "%Y-%m-%d"), chrono::NaiveDate::parse_from_str(&max, "%Y-%m-%d")) {
        let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid");
        (
            (a - epoch).num_days() as i128,
            (b - epoch).num_days() as i128,
            Box::new(move |v: i128| format!("'{}'", epoch + chrono::Days::new(v as u64))),
        )
    } else if let (Ok(a), Ok(b)) = (
        crate::typed_row::parse_timestamp_micros(&min, None),
        crate::typed_row::parse_timestamp_micros(&max, None),
    ) {
        (
            a as i128,
            b as i128,
            Box::new(|v: i128| {
                let t = chrono::DateTime::from_timestamp_micros(v as i64).expect("in range").naive_utc();
                format!("'{}'", t.format("%Y-%m-%d %H:%M:%S%.6f"))
            }),
        )
    } else {
        bail!("partition column '{column}' must be numeric, a date or a timestamp (its range is '{min}'..'{max}')");
    };
    let span = hi - lo + 1;
    let parts = n.min(span).max(1);
    let bounds: Vec<i128> = (1..parts).map(|i| lo + span * i / parts).collect();
    let mut predicates = Vec::with_capacity(parts as usize);
    for i in 0..parts as usize {
        let lower = (i > 0).then(|| format!("{c} >= {}", literal(bounds[i - 1])));
        let upper = (i + 1 < parts as usize).then(|| format!("{c} < {}", literal(bounds[i])));
        let clause = match (lower, upper) {
            (None, None) => String::new(),
            (None, Some(u)) => format!(" WHERE ({u} OR {c} IS NULL)"),
            (Some(l), None) => format!(" WHERE {l}"),
            (Some(l), Some(u)) => format!(" WHERE {l} AND {u}"),
        };
        predicates.push(clause);
    }
    Ok(predicates)
}

async fn pg_connect(url: &str) -> Result<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .with_context(|| format!("cannot connect to {}", redact(url)))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "PostgreSQL connection closed with an error");
        }
    });
    // Text forms we parse: ISO dates, UTC instants, floats that round-trip.
    client
        .batch_execute("SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET extra_float_digits = 3")
        .await
        .context("setting session options")?;
    Ok(client)
}

async fn postgres_columns(source: &DbSource) -> Result<Vec<SourceColumn>> {
    use tokio_postgres::types::Type;
    let client = pg_connect(&source.url).await?;
    let statement = client
        .prepare(&format!("SELECT * FROM {}", source.from_clause()))
        .await
        .with_context(|| format!("cannot read {}", source.describe()))?;
    let mut columns = Vec::new();
    for c in statement.columns() {
        let t = c.type_();
        let column_type = if *t == Type::BOOL {
            ColumnType::Bool
        } else if *t == Type::INT2 || *t == Type::INT4 {
            ColumnType::Int32
        } else if *t == Type::INT8 {
            ColumnType::Int64
        } else if *t == Type::FLOAT4 || *t == Type::FLOAT8 {
            ColumnType::Float64
        } else if *t == Type::NUMERIC {
            numeric_type(&client, source, c.name()).await?
        } else if *t == Type::DATE {
            ColumnType::Date
        } else if *t == Type::TIMESTAMP {
            ColumnType::Timestamp
        } else if *t == Type::TIMESTAMPTZ {
            ColumnType::TimestampTz
        } else {
            ColumnType::String
        };
        columns.push(SourceColumn { name: c.name().to_string(), column_type });
    }
    Ok(columns)
}

/// A NUMERIC column's declared precision and scale, read from the catalogue for a table source;
/// a query's or an unconstrained column's NUMERIC becomes decimal(38,10).
async fn numeric_type(client: &tokio_postgres::Client, source: &DbSource, column: &str) -> Result<ColumnType> {
    if let DbQuery::Table(t) = &source.query {
        let (schema, table) = t.rsplit_once('.').map(|(s, t)| (Some(s), t)).unwrap_or((None, t.as_str()));
        let row = client
            .query_opt(
                "SELECT numeric_precision, numeric_scale FROM information_schema.columns \
                 WHERE table_name = $1 AND column_name = $2 AND ($3::text IS NULL OR table_schema = $3) LIMIT 1",
                &[&table, &column, &schema],
            )
            .await?;
        if let Some(row) = row {
            if let (Some(p), Some(s)) = (row.get::<_, Option<i32>>(0), row.get::<_, Option<i32>>(1)) {
                return Ok(ColumnType::Decimal(p.min(38) as u8, s as i8));
            }
        }
    }
    Ok(ColumnType::Decimal(38, 10))
}

/// Streams `COPY (sql) TO STDOUT` (text format: tab-separated, `\N` for NULL, backslash escapes).
async fn read_postgres(url: &str, sql: &str, source: &str, spec: Arc<TableSpec>, tx: ChunkSender) -> Result<()> {
    let client = pg_connect(url).await?;
    let stream = client.copy_out(&format!("COPY ({sql}) TO STDOUT")).await.context("starting COPY")?;
    futures::pin_mut!(stream);
    let mut chunk = PendingChunk::new(0, spec);
    let mut pending: Vec<u8> = Vec::new();
    let mut ordinal = 0u64;
    while let Some(bytes) = stream.next().await {
        pending.extend_from_slice(&bytes.context("COPY stream")?);
        let mut start = 0;
        while let Some(end) = pending[start..].iter().position(|&b| b == b'\n').map(|p| start + p) {
            ordinal += 1;
            let line = std::str::from_utf8(&pending[start..end]).with_context(|| format!("row {ordinal} is not UTF-8"))?;
            let fields: Vec<Option<String>> = line.split('\t').map(unescape_copy_text).collect();
            let refs: Vec<Option<&str>> = fields.iter().map(|f| f.as_deref()).collect();
            chunk.add(&refs, |e| Reject::new(source, ordinal, e, line.to_string()));
            start = end + 1;
            if chunk.is_full() && tx.send(chunk.take()).await.is_err() {
                return Ok(());
            }
        }
        pending.drain(..start);
    }
    ensure!(pending.is_empty(), "COPY output ended in the middle of a row");
    let _ = tx.send(chunk.take()).await;
    Ok(())
}

fn unescape_copy_text(field: &str) -> Option<String> {
    if field == "\\N" {
        return None;
    }
    if !field.contains('\\') {
        return Some(field.to_string());
    }
    let mut out = String::with_capacity(field.len());
    let mut chars = field.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('b') => out.push('\u{8}'),
            Some('f') => out.push('\u{c}'),
            Some('v') => out.push('\u{b}'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    Some(out)
}

async fn mysql_connect(url: &str) -> Result<mysql_async::Conn> {
    let opts = mysql_async::Opts::from_url(url).map_err(|e| anyhow::anyhow!("bad MySQL URL {}: {e}", redact(url)))?;
    let mut conn = mysql_async::Conn::new(opts).await.with_context(|| format!("cannot connect to {}", redact(url)))?;
    // TIMESTAMP columns in UTC, as we store them.
    conn.query_drop("SET time_zone = '+00:00'").await.context("setting the session time zone")?;
    Ok(conn)
}

async fn mysql_columns(source: &DbSource) -> Result<Vec<SourceColumn>> {
    use mysql_async::consts::{ColumnFlags, ColumnType as My};
    let mut conn = mysql_connect(&source.url).await?;
    let result = conn
        .query_iter(format!("SELECT * FROM {} LIMIT 0", source.from_clause()))
        .await
        .with_context(|| format!("cannot read {}", source.describe()))?;
    let columns = result.columns().map(|c| c.to_vec()).unwrap_or_default();
    drop(result);
    Ok(columns
        .iter()
        .map(|c| {
            let unsigned = c.flags().contains(ColumnFlags::UNSIGNED_FLAG);
            let column_type = match c.column_type() {
                My::MYSQL_TYPE_TINY if c.column_length() == 1 => ColumnType::Bool,
                My::MYSQL_TYPE_TINY | My::MYSQL_TYPE_SHORT | My::MYSQL_TYPE_INT24 => ColumnType::Int32,
                My::MYSQL_TYPE_LONG if !unsigned => ColumnType::Int32,
                My::MYSQL_TYPE_LONG | My::MYSQL_TYPE_LONGLONG => ColumnType::Int64,
                My::MYSQL_TYPE_FLOAT | My::MYSQL_TYPE_DOUBLE => ColumnType::Float64,
                My::MYSQL_TYPE_DECIMAL | My::MYSQL_TYPE_NEWDECIMAL => {
                    let scale = c.decimals() as u32;
                    // The display length counts the sign and the decimal point.
                    let precision = c.column_length() - u32::from(scale > 0) - u32::from(!unsigned);
                    ColumnType::Decimal(precision.clamp(1, 38) as u8, scale.min(38) as i8)
                }
                My::MYSQL_TYPE_DATE | My::MYSQL_TYPE_NEWDATE => ColumnType::Date,
                My::MYSQL_TYPE_DATETIME | My::MYSQL_TYPE_DATETIME2 => ColumnType::Timestamp,
                My::MYSQL_TYPE_TIMESTAMP | My::MYSQL_TYPE_TIMESTAMP2 => ColumnType::TimestampTz,
                _ => ColumnType::String,
            };
            SourceColumn { name: c.name_str().to_string(), column_type }
        })
        .collect())
}

/// Streams the rows of `sql` (text protocol: every value arrives as text, typed by our parser).
async fn read_mysql(url: &str, sql: &str, source: &str, spec: Arc<TableSpec>, tx: ChunkSender) -> Result<()> {
    let mut conn = mysql_connect(url).await?;
    let mut result = conn.query_iter(sql).await.context("running the partition query")?;
    let mut stream = result.stream::<mysql_async::Row>().await?.context("no result set")?;
    let mut chunk = PendingChunk::new(0, spec);
    let mut ordinal = 0u64;
    while let Some(row) = stream.next().await {
        let row = row.context("reading a row")?;
        ordinal += 1;
        let fields: Vec<Option<String>> = row.unwrap().into_iter().map(mysql_text).collect();
        let refs: Vec<Option<&str>> = fields.iter().map(|f| f.as_deref()).collect();
        chunk.add(&refs, |e| {
            let raw = fields.iter().map(|f| f.as_deref().unwrap_or("NULL")).collect::<Vec<_>>().join("\t");
            Reject::new(source, ordinal, e, raw)
        });
        if chunk.is_full() && tx.send(chunk.take()).await.is_err() {
            return Ok(());
        }
    }
    drop(stream);
    let _ = tx.send(chunk.take()).await;
    Ok(())
}

fn mysql_text(v: mysql_async::Value) -> Option<String> {
    use mysql_async::Value;
    match v {
        Value::NULL => None,
        Value::Bytes(b) => Some(String::from_utf8(b).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())),
        Value::Int(i) => Some(i.to_string()),
        Value::UInt(u) => Some(u.to_string()),
        Value::Float(f) => Some(f.to_string()),
        Value::Double(d) => Some(d.to_string()),
        Value::Date(y, mo, d, h, mi, s, us) => Some(format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}.{us:06}")),
        Value::Time(neg, d, h, m, s, us) => Some(format!("{}{}:{m:02}:{s:02}.{us:06}", if neg { "-" } else { "" }, d * 24 + h as u32)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_text_unescapes() {
        assert_eq!(unescape_copy_text("\\N"), None);
        assert_eq!(unescape_copy_text("a\\tb\\\\c\\n").as_deref(), Some("a\tb\\c\n"));
    }
}
