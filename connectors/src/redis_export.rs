//! Export to Redis: keys built from columns (`recs:{user_id}`), values as hashes, JSON strings or
//! sorted sets, written pipelined under temporary names and switched in with one `MULTI`/`EXEC` of
//! `RENAME`s (plus `DEL` of keys the new export no longer has). A reader sees the old export or
//! the new one, never a mix; a failed run deletes its temporary keys and leaves the old export.

use std::collections::HashSet;

use anyhow::{Context, Result, bail, ensure};
use arrow::datatypes::Schema;
use datafusion::execution::SendableRecordBatchStream;
use futures::StreamExt;
use redis::aio::MultiplexedConnection;

use crate::arrow_cell::cell;
use crate::row_progress::RowProgress;
use crate::secret_url::{redact, scrub_error};

/// Longest wait for one reply (the atomic switch of a large export is a single reply).
const SWITCH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);
/// Commands per pipeline round trip.
const PIPELINE: usize = 5_000;

/// What each key holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisValue {
    /// A hash of every column (NULLs omitted).
    Hash,
    /// A JSON object of every column.
    Json,
    /// A sorted set: one member per row, rows grouped by key (a ranked list).
    SortedSet {
        /// The column whose value is the member.
        member: String,
        /// The column whose value is the score.
        score: String,
    },
}

/// Where and how to export.
#[derive(Debug, Clone)]
pub struct RedisTarget {
    /// `redis://[:password@]host:port[/db]`.
    pub url: String,
    /// Key pattern: literal text and `{column}` placeholders, e.g. `recs:{user_id}`.
    pub key_pattern: String,
    /// Value layout.
    pub value: RedisValue,
    /// Expiry of every key, seconds.
    pub ttl: Option<u64>,
}

enum Piece {
    Text(String),
    Column(usize),
}

/// A parsed key pattern.
pub struct KeyPattern {
    pieces: Vec<Piece>,
}

impl KeyPattern {
    /// Parses `pattern` against `schema`: every placeholder must name a column; `{{`/`}}` are
    /// literal braces.
    pub fn parse(pattern: &str, schema: &Schema) -> Result<Self> {
        let mut pieces = vec![];
        let mut text = String::new();
        let mut chars = pattern.chars().peekable();
        let mut columns = 0;
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    text.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    text.push('}');
                }
                '{' => {
                    let name: String = chars.by_ref().take_while(|&c| c != '}').collect();
                    let index = schema
                        .index_of(&name)
                        .map_err(|_| anyhow::anyhow!("key pattern '{pattern}': '{{{name}}}' is not a column"))?;
                    if !text.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut text)));
                    }
                    pieces.push(Piece::Column(index));
                    columns += 1;
                }
                '}' => bail!("key pattern '{pattern}': unmatched '}}'"),
                c if c.is_control() || c == ' ' => bail!("key pattern '{pattern}': spaces and control characters are not allowed"),
                c => text.push(c),
            }
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        ensure!(columns > 0, "key pattern '{pattern}' has no {{column}} placeholder: every row would write the same key");
        Ok(Self { pieces })
    }

    /// The key of `row`. Column values are escaped (`%XX` for anything outside letters, digits and
    /// `-_.@`), so a value can never forge a separator or another key.
    pub fn render(&self, batch: &arrow::array::RecordBatch, row: usize) -> Result<String> {
        let mut key = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(t) => key.push_str(t),
                Piece::Column(i) => {
                    let value = cell(batch.column(*i), row)
                        .to_text()
                        .with_context(|| format!("row {row}: key column '{}' is NULL", batch.schema().field(*i).name()))?;
                    for b in value.bytes() {
                        if b.is_ascii_alphanumeric() || b"-_.@".contains(&b) {
                            key.push(b as char);
                        } else {
                            key.push_str(&format!("%{b:02X}"));
                        }
                    }
                }
            }
        }
        Ok(key)
    }
}

/// The set that remembers which keys an export wrote, so the next one can remove stale keys.
fn manifest_key(pattern: &str) -> String {
    format!("backbeat:export:{pattern}")
}

/// Exports `stream`; returns rows exported.
pub async fn export(stream: SendableRecordBatchStream, target: &RedisTarget, progress: &RowProgress) -> Result<u64> {
    export_inner(stream, target, progress).await.map_err(|e| scrub_error(e, &target.url))
}

async fn export_inner(mut stream: SendableRecordBatchStream, target: &RedisTarget, progress: &RowProgress) -> Result<u64> {
    let schema = stream.schema();
    let pattern = KeyPattern::parse(&target.key_pattern, &schema)?;
    let (member, score) = match &target.value {
        RedisValue::SortedSet { member, score } => (
            Some(schema.index_of(member).map_err(|_| anyhow::anyhow!("--member '{member}' is not a column"))?),
            Some(schema.index_of(score).map_err(|_| anyhow::anyhow!("--score '{score}' is not a column"))?),
        ),
        _ => (None, None),
    };
    let client = redis::Client::open(target.url.as_str()).with_context(|| format!("bad Redis URL {}", redact(&target.url)))?;
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .with_context(|| format!("cannot connect to {}", redact(&target.url)))?;
    // The switch is one MULTI/EXEC of a RENAME per key: at a million keys it takes seconds, far
    // beyond the driver's default response timeout.
    conn.set_response_timeout(SWITCH_TIMEOUT);
    let run = uuid::Uuid::new_v4().simple().to_string();
    let tmp_prefix = format!("backbeat:tmp:{}:", &run[..12]);
    let mut keys: HashSet<String> = HashSet::new();
    let result = async {
        let mut pipe = redis::pipe();
        let mut queued = 0usize;
        let mut rows = 0u64;
        while let Some(batch) = stream.next().await {
            let batch = batch.context("reading the exported table")?;
            let names: Vec<String> = batch.schema().fields().iter().map(|f| f.name().clone()).collect();
            for row in 0..batch.num_rows() {
                let key = pattern.render(&batch, row)?;
                let tmp = format!("{tmp_prefix}{key}");
                let fresh = keys.insert(key);
                match &target.value {
                    RedisValue::Hash => {
                        let fields: Vec<(String, String)> = names
                            .iter()
                            .zip(batch.columns())
                            .filter_map(|(n, c)| cell(c, row).to_text().map(|v| (n.clone(), v)))
                            .collect();
                        ensure!(fresh, "key '{}' is produced by two rows; a hash export needs one row per key", tmp.trim_start_matches(&tmp_prefix));
                        if !fields.is_empty() {
                            pipe.hset_multiple(&tmp, &fields).ignore();
                        }
                    }
                    RedisValue::Json => {
                        ensure!(fresh, "key '{}' is produced by two rows; a JSON export needs one row per key", tmp.trim_start_matches(&tmp_prefix));
                        let object: serde_json::Map<String, serde_json::Value> =
                            names.iter().zip(batch.columns()).map(|(n, c)| (n.clone(), cell(c, row).to_json())).collect();
                        pipe.set(&tmp, serde_json::Value::Object(object).to_string()).ignore();
                    }
                    RedisValue::SortedSet { .. } => {
                        let m = cell(batch.column(member.expect("set")), row).to_text().context("sorted-set member is NULL")?;
                        let s = cell(batch.column(score.expect("set")), row).to_f64().context("sorted-set score is NULL or not a number")?;
                        pipe.zadd(&tmp, m, s).ignore();
                    }
                }
                if fresh {
                    if let Some(ttl) = target.ttl {
                        pipe.expire(&tmp, ttl as i64).ignore();
                    }
                }
                queued += 1;
                if queued >= PIPELINE {
                    pipe.query_async::<()>(&mut conn).await.context("writing keys")?;
                    pipe = redis::pipe();
                    queued = 0;
                }
            }
            rows += batch.num_rows() as u64;
            progress.inc(batch.num_rows() as u64);
        }
        if queued > 0 {
            pipe.query_async::<()>(&mut conn).await.context("writing keys")?;
        }
        switch(&mut conn, &target.key_pattern, &tmp_prefix, &keys).await?;
        anyhow::Ok(rows)
    }
    .await;
    if result.is_err() {
        cleanup(&mut conn, &tmp_prefix, &keys).await;
    }
    result
}

/// Renames every temporary key into place, deletes keys the previous export wrote that this one
/// did not, and records the new key set, all in one transaction.
async fn switch(conn: &mut MultiplexedConnection, pattern: &str, tmp_prefix: &str, keys: &HashSet<String>) -> Result<()> {
    let manifest = manifest_key(pattern);
    let new_manifest = format!("{tmp_prefix}manifest");
    let previous: Vec<String> = redis::cmd("SMEMBERS").arg(&manifest).query_async(conn).await.context("reading the previous export's keys")?;
    let mut listed: Vec<&String> = keys.iter().collect();
    listed.sort();
    let mut prepare = redis::pipe();
    for chunk in listed.chunks(PIPELINE) {
        prepare.sadd(&new_manifest, chunk.to_vec()).ignore();
    }
    prepare.query_async::<()>(conn).await.context("recording the new key set")?;

    let mut tx = redis::pipe();
    tx.atomic();
    for key in &listed {
        tx.rename(format!("{tmp_prefix}{key}"), key.as_str()).ignore();
    }
    for stale in previous.iter().filter(|k| !keys.contains(*k)) {
        tx.del(stale).ignore();
    }
    if listed.is_empty() {
        tx.del(&manifest).ignore();
    } else {
        tx.rename(&new_manifest, &manifest).ignore();
    }
    tx.query_async::<()>(conn).await.context("switching to the new keys")?;
    Ok(())
}

async fn cleanup(conn: &mut MultiplexedConnection, tmp_prefix: &str, keys: &HashSet<String>) {
    let mut pipe = redis::pipe();
    for key in keys {
        pipe.del(format!("{tmp_prefix}{key}")).ignore();
    }
    pipe.del(format!("{tmp_prefix}manifest")).ignore();
    if let Err(e) = pipe.query_async::<()>(conn).await {
        tracing::warn!(error = %e, "could not delete temporary keys of a failed export");
    }
}
