//! Export to MongoDB: unordered, batched bulk upserts keyed by an `_id` built from key columns;
//! structs become subdocuments, lists arrays, decimals Decimal128.
//!
//! `replace` (the default) upserts into a fresh staging collection, then renames it over the target
//! with `dropTarget` (one atomic switch); `upsert` writes into the target inside one transaction.
//! Either way a failed run leaves the previous documents as they were.

use anyhow::{Context, Result, bail, ensure};
use arrow::array::RecordBatch;
use datafusion::execution::SendableRecordBatchStream;
use futures::StreamExt;
use mongodb::bson::{Bson, Document, doc, spec::BinarySubtype};
use mongodb::{Client, ClientSession, Database};

use crate::arrow_cell::{Cell, cell, decimal_text};
use crate::export::validate_key_columns;
use crate::row_progress::RowProgress;
use crate::secret_url::{redact, scrub_error};

/// Documents per `update` command (MongoDB accepts up to 100,000 statements per batch).
const BATCH_DOCS: usize = 1_000;

/// Replace the collection, or upsert into it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MongoMode {
    /// The collection becomes exactly the exported documents (staging collection + rename).
    Replace,
    /// Documents are inserted or replace the one with the same `_id`, in one transaction.
    Upsert,
}

/// Where and how to export.
#[derive(Debug, Clone)]
pub struct MongoTarget {
    /// `mongodb://[user:password@]host:port/database`.
    pub url: String,
    /// Target collection.
    pub collection: String,
    /// Columns whose values make `_id` (one column: its value; several: a subdocument).
    pub key: Vec<String>,
    /// Replace or upsert.
    pub mode: MongoMode,
}

/// Refuses collection names MongoDB rejects or treats specially.
pub fn validate_collection(name: &str) -> Result<()> {
    ensure!(!name.is_empty(), "empty collection name");
    ensure!(!name.contains(['$', '\0']), "collection name {name:?} may not contain '$' or NUL");
    ensure!(!name.starts_with("system."), "collection name '{name}' is reserved (system.*)");
    ensure!(name.len() <= 200, "collection name '{name}' is too long");
    Ok(())
}

/// IEEE 754-2008 decimal128 (BID) of `unscaled × 10^-scale`, or `None` when the coefficient has
/// more than 34 digits (it is then stored as an exact string).
fn decimal128(unscaled: i128, scale: i8) -> Option<mongodb::bson::Decimal128> {
    let coefficient = unscaled.unsigned_abs();
    if coefficient >= 10u128.pow(34) {
        return None;
    }
    let biased = (6176 - scale as i32) as u128;
    let high = ((u128::from(unscaled < 0)) << 127) | (biased << 113) | coefficient;
    Some(mongodb::bson::Decimal128::from_bytes(high.to_le_bytes()))
}

/// A cell as BSON.
pub fn to_bson(value: &Cell) -> Bson {
    match value {
        Cell::Null => Bson::Null,
        Cell::Bool(b) => Bson::Boolean(*b),
        Cell::Int(i) => Bson::Int64(*i),
        Cell::UInt(u) => i64::try_from(*u).map(Bson::Int64).unwrap_or_else(|_| Bson::String(u.to_string())),
        Cell::Float(f) => Bson::Double(*f),
        Cell::Str(s) => Bson::String(s.clone()),
        Cell::Bytes(b) => Bson::Binary(mongodb::bson::Binary { subtype: BinarySubtype::Generic, bytes: b.clone() }),
        Cell::Decimal(v, _, s) => decimal128(*v, *s).map(Bson::Decimal128).unwrap_or_else(|| Bson::String(decimal_text(*v, *s))),
        Cell::Date(d) => Bson::DateTime(mongodb::bson::DateTime::from_millis(*d as i64 * 86_400_000)),
        // BSON dates have millisecond precision.
        Cell::Timestamp(us, _) => Bson::DateTime(mongodb::bson::DateTime::from_millis(us.div_euclid(1_000))),
        Cell::List(items) => Bson::Array(items.iter().map(to_bson).collect()),
        Cell::Struct(fields) => Bson::Document(fields.iter().map(|(k, v)| (k.clone(), to_bson(v))).collect()),
    }
}

fn documents(batch: &RecordBatch, key: &[usize]) -> Result<Vec<Document>> {
    let schema = batch.schema();
    (0..batch.num_rows())
        .map(|row| {
            let mut document = Document::new();
            let id = if key.len() == 1 {
                to_bson(&cell(batch.column(key[0]), row))
            } else {
                Bson::Document(key.iter().map(|&i| (schema.field(i).name().clone(), to_bson(&cell(batch.column(i), row)))).collect())
            };
            if matches!(id, Bson::Null) {
                bail!("row {row}: the key column is NULL, so the document has no _id");
            }
            document.insert("_id", id);
            for (field, column) in schema.fields().iter().zip(batch.columns()) {
                document.insert(field.name().clone(), to_bson(&cell(column, row)));
            }
            Ok(document)
        })
        .collect()
}

/// One unordered bulk upsert of `docs` into `collection`.
async fn upsert(db: &Database, collection: &str, docs: Vec<Document>, session: Option<&mut ClientSession>) -> Result<()> {
    let updates: Vec<Document> = docs
        .into_iter()
        .map(|d| doc! { "q": { "_id": d.get("_id").cloned().unwrap_or(Bson::Null) }, "u": d, "upsert": true })
        .collect();
    let n = updates.len();
    let command = doc! { "update": collection, "updates": updates, "ordered": false };
    let reply = match session {
        Some(s) => db.run_command(command).session(s).await?,
        None => db.run_command(command).await?,
    };
    if let Ok(errors) = reply.get_array("writeErrors") {
        if let Some(first) = errors.first() {
            bail!("{} of {n} upserts failed; first: {first}", errors.len());
        }
    }
    Ok(())
}

/// Exports `stream`; returns rows exported.
pub async fn export(stream: SendableRecordBatchStream, target: &MongoTarget, progress: &RowProgress) -> Result<u64> {
    export_inner(stream, target, progress).await.map_err(|e| scrub_error(e, &target.url))
}

async fn export_inner(mut stream: SendableRecordBatchStream, target: &MongoTarget, progress: &RowProgress) -> Result<u64> {
    validate_collection(&target.collection)?;
    let schema = stream.schema();
    ensure!(!target.key.is_empty(), "a MongoDB export needs --key (the columns that make _id)");
    validate_key_columns(&schema, &target.key)?;
    for f in schema.fields() {
        ensure!(!f.name().starts_with('$') && !f.name().contains('.'), "column '{}' cannot be a MongoDB field name ('$' prefix or '.')", f.name());
    }
    let key: Vec<usize> = target.key.iter().map(|k| schema.index_of(k).expect("validated")).collect();
    let client = Client::with_uri_str(&target.url).await.with_context(|| format!("cannot connect to {}", redact(&target.url)))?;
    let db = client.default_database().with_context(|| format!("{} names no database (mongodb://host:port/DATABASE)", redact(&target.url)))?;
    let run = uuid::Uuid::new_v4().simple().to_string();
    let staging = format!("{}__backbeat_tmp_{}", target.collection, &run[..12]);

    let mut session = match target.mode {
        MongoMode::Upsert => {
            let mut s = client.start_session().await?;
            s.start_transaction().await.context("MongoDB transactions are needed for --mode upsert")?;
            Some(s)
        }
        MongoMode::Replace => None,
    };
    let write_to = if target.mode == MongoMode::Replace { staging.as_str() } else { target.collection.as_str() };
    let result = async {
        let mut rows = 0u64;
        while let Some(batch) = stream.next().await {
            let batch = batch.context("reading the exported table")?;
            let docs = documents(&batch, &key)?;
            let mut docs = docs.into_iter().peekable();
            while docs.peek().is_some() {
                let chunk: Vec<Document> = docs.by_ref().take(BATCH_DOCS).collect();
                upsert(&db, write_to, chunk, session.as_mut()).await.with_context(|| format!("upserting into {write_to}"))?;
            }
            rows += batch.num_rows() as u64;
            progress.inc(batch.num_rows() as u64);
        }
        match session.as_mut() {
            Some(s) => s.commit_transaction().await.context("committing")?,
            None => {
                if rows == 0 {
                    // An empty export still replaces the collection: create the staging one.
                    db.create_collection(&staging).await?;
                }
                client
                    .database("admin")
                    .run_command(doc! {
                        "renameCollection": format!("{}.{staging}", db.name()),
                        "to": format!("{}.{}", db.name(), target.collection),
                        "dropTarget": true,
                    })
                    .await
                    .context("switching the staging collection in")?;
            }
        }
        anyhow::Ok(rows)
    }
    .await;
    if result.is_err() {
        match session.as_mut() {
            Some(s) => {
                let _ = s.abort_transaction().await;
            }
            None => {
                let _ = db.collection::<Document>(&staging).drop().await;
            }
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_become_exact_decimal128() {
        assert_eq!(decimal128(12345, 2).unwrap().to_string(), "123.45");
        assert_eq!(decimal128(-5, 3).unwrap().to_string(), "-0.005");
        assert!(decimal128(10i128.pow(35), 2).is_none());
    }
}
