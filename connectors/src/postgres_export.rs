//! Export to PostgreSQL: binary `COPY` into a new or staging table, then one transaction that either
//! replaces the target (drop + rename) or upserts into it (`INSERT ... ON CONFLICT`). Readers see
//! the old table or the new one; a failure anywhere rolls everything back.

use anyhow::{Context, Result, bail, ensure};
use arrow::datatypes::{DataType, Schema, SchemaRef};
use bytes::{BufMut, Bytes, BytesMut};
use datafusion::execution::SendableRecordBatchStream;
use futures::{SinkExt, StreamExt};

use crate::arrow_cell::{Cell, cell, decimal_text};
use crate::export::validate_key_columns;
use crate::row_progress::RowProgress;
use crate::secret_url::{redact, scrub_error};

/// PostgreSQL's identifier limit; longer names would be silently truncated by the server.
const MAX_IDENT: usize = 63;
const STAGING_SUFFIX: &str = "__backbeat_new";
/// Bytes of COPY data sent per message.
const COPY_CHUNK: usize = 1 << 20;

/// How the rows replace what the table holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PgMode {
    /// The table becomes exactly the exported rows.
    Replace,
    /// Rows are inserted, or update the row with the same key.
    Upsert,
}

/// Where and how to export.
#[derive(Debug, Clone)]
pub struct PgTarget {
    /// `postgres://user[:password]@host:port/db`.
    pub url: String,
    /// Target table (in the connection's search path, or `schema.table`).
    pub table: String,
    /// Key columns: primary key of the target, conflict target of upserts.
    pub key: Vec<String>,
    /// Replace or upsert.
    pub mode: PgMode,
}

/// A PostgreSQL column type for an Arrow type.
#[derive(Debug, Clone, PartialEq)]
enum PgType {
    Bool,
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    Numeric(Option<(u8, i8)>),
    Text,
    Bytea,
    Date,
    Timestamp,
    Timestamptz,
    Jsonb,
    Array(Box<PgType>),
}

impl PgType {
    fn of(t: &DataType) -> Option<Self> {
        use DataType::*;
        Some(match t {
            Boolean => Self::Bool,
            Int8 | Int16 | UInt8 => Self::Int2,
            Int32 | UInt16 => Self::Int4,
            Int64 | UInt32 => Self::Int8,
            UInt64 => Self::Numeric(Some((20, 0))),
            Float32 => Self::Float4,
            Float64 => Self::Float8,
            Decimal128(p, s) if *s >= 0 => Self::Numeric(Some((*p, *s))),
            Decimal128(_, _) => Self::Numeric(None),
            Utf8 | LargeUtf8 | Utf8View => Self::Text,
            Binary | LargeBinary | BinaryView => Self::Bytea,
            Date32 | Date64 => Self::Date,
            Timestamp(_, None) => Self::Timestamp,
            Timestamp(_, Some(_)) => Self::Timestamptz,
            List(f) | LargeList(f) => match Self::of(f.data_type())? {
                Self::Jsonb | Self::Array(_) => Self::Jsonb,
                element => Self::Array(Box::new(element)),
            },
            Struct(_) | Map(_, _) => Self::Jsonb,
            _ => return None,
        })
    }

    fn sql(&self) -> String {
        match self {
            Self::Bool => "boolean".into(),
            Self::Int2 => "smallint".into(),
            Self::Int4 => "integer".into(),
            Self::Int8 => "bigint".into(),
            Self::Float4 => "real".into(),
            Self::Float8 => "double precision".into(),
            Self::Numeric(Some((p, s))) => format!("numeric({p},{s})"),
            Self::Numeric(None) => "numeric".into(),
            Self::Text => "text".into(),
            Self::Bytea => "bytea".into(),
            Self::Date => "date".into(),
            Self::Timestamp => "timestamp".into(),
            Self::Timestamptz => "timestamptz".into(),
            Self::Jsonb => "jsonb".into(),
            Self::Array(e) => format!("{}[]", e.sql()),
        }
    }

    fn oid(&self) -> u32 {
        match self {
            Self::Bool => 16,
            Self::Int2 => 21,
            Self::Int4 => 23,
            Self::Int8 => 20,
            Self::Float4 => 700,
            Self::Float8 => 701,
            Self::Numeric(_) => 1700,
            Self::Text => 25,
            Self::Bytea => 17,
            Self::Date => 1082,
            Self::Timestamp => 1114,
            Self::Timestamptz => 1184,
            Self::Jsonb => 3802,
            Self::Array(_) => 0, // nested arrays are exported as jsonb, never as elements
        }
    }

    /// Appends one field of binary COPY: its length, then its bytes (-1 for NULL).
    fn encode(&self, value: &Cell, buf: &mut BytesMut) -> Result<()> {
        if matches!(value, Cell::Null) {
            buf.put_i32(-1);
            return Ok(());
        }
        let start = buf.len();
        buf.put_i32(0); // length, patched below
        match (self, value) {
            (Self::Bool, Cell::Bool(b)) => buf.put_u8(u8::from(*b)),
            (Self::Int2, Cell::Int(i)) => buf.put_i16(*i as i16),
            (Self::Int2, Cell::UInt(u)) => buf.put_i16(*u as i16),
            (Self::Int4, Cell::Int(i)) => buf.put_i32(*i as i32),
            (Self::Int4, Cell::UInt(u)) => buf.put_i32(*u as i32),
            (Self::Int8, Cell::Int(i)) => buf.put_i64(*i),
            (Self::Int8, Cell::UInt(u)) => buf.put_i64(*u as i64),
            (Self::Float4, Cell::Float(f)) => buf.put_f32(*f as f32),
            (Self::Float8, Cell::Float(f)) => buf.put_f64(*f),
            (Self::Numeric(_), Cell::Decimal(v, _, s)) => encode_numeric(&decimal_text(*v, *s), buf),
            (Self::Numeric(_), Cell::UInt(u)) => encode_numeric(&u.to_string(), buf),
            (Self::Text, Cell::Str(s)) => buf.put_slice(s.as_bytes()),
            (Self::Bytea, Cell::Bytes(b)) => buf.put_slice(b),
            // PostgreSQL counts days and microseconds from 2000-01-01.
            (Self::Date, Cell::Date(d)) => buf.put_i32(d - 10_957),
            (Self::Timestamp | Self::Timestamptz, Cell::Timestamp(us, _)) => buf.put_i64(us - 946_684_800_000_000),
            (Self::Jsonb, v) => {
                buf.put_u8(1); // jsonb binary format version
                buf.put_slice(v.to_json().to_string().as_bytes());
            }
            (Self::Array(element), Cell::List(items)) => {
                let has_null = items.iter().any(|c| matches!(c, Cell::Null));
                buf.put_i32(i32::from(!items.is_empty())); // dimensions (an empty array has none)
                buf.put_i32(i32::from(has_null));
                buf.put_u32(element.oid());
                if !items.is_empty() {
                    buf.put_i32(items.len() as i32);
                    buf.put_i32(1); // lower bound
                    for item in items {
                        element.encode(item, buf)?;
                    }
                }
            }
            (t, v) => bail!("cannot encode {v:?} as {}", t.sql()),
        }
        let len = (buf.len() - start - 4) as i32;
        buf[start..start + 4].copy_from_slice(&len.to_be_bytes());
        Ok(())
    }
}

/// NUMERIC's binary form: base-10000 digits with a weight, a sign and the display scale.
fn encode_numeric(text: &str, buf: &mut BytesMut) {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let int = int.trim_start_matches('0');
    let int_pad = (4 - int.len() % 4) % 4;
    let frac_pad = (4 - frac.len() % 4) % 4;
    let int_digits = format!("{}{int}", "0".repeat(int_pad));
    let frac_digits = format!("{frac}{}", "0".repeat(frac_pad));
    let group = |s: &str| -> Vec<i16> { s.as_bytes().chunks(4).map(|c| std::str::from_utf8(c).expect("ASCII").parse().expect("digits")).collect() };
    let mut groups = group(&int_digits);
    let mut weight = groups.len() as i16 - 1;
    groups.extend(group(&frac_digits));
    while groups.first() == Some(&0) {
        groups.remove(0);
        weight -= 1;
    }
    while groups.last() == Some(&0) {
        groups.pop();
    }
    if groups.is_empty() {
        weight = 0;
    }
    buf.put_i16(groups.len() as i16);
    buf.put_i16(weight);
    buf.put_u16(if negative && !groups.is_empty() { 0x4000 } else { 0 });
    buf.put_i16(frac.len() as i16);
    for g in groups {
        buf.put_i16(g);
    }
}

/// Quotes an identifier (`a"b` → `"a""b"`), refusing what PostgreSQL would truncate or reject.
pub fn quote_pg_ident(name: &str) -> Result<String> {
    ensure!(!name.is_empty(), "empty PostgreSQL identifier");
    ensure!(!name.contains('\0'), "PostgreSQL identifier {name:?} contains a NUL byte");
    ensure!(name.len() <= MAX_IDENT, "PostgreSQL identifier '{name}' is longer than {MAX_IDENT} bytes");
    Ok(format!("\"{}\"", name.replace('"', "\"\"")))
}

/// A table name as given (`table` or `schema.table`), for building quoted names of the table and
/// of the objects that belong to it (its staging table, its primary-key index).
struct PgName {
    schema: Option<String>,
    table: String,
}

impl PgName {
    fn parse(name: &str) -> Result<Self> {
        let (schema, table) = match name.split_once('.') {
            Some((s, t)) => (Some(quote_pg_ident(s)?), t.to_string()),
            None => (None, name.to_string()),
        };
        quote_pg_ident(&table)?;
        Ok(Self { schema, table })
    }

    /// `"table<suffix>"`, unqualified (what `RENAME TO` takes).
    fn bare(&self, suffix: &str) -> Result<String> {
        quote_pg_ident(&format!("{}{suffix}", self.table))
    }

    /// `"schema"."table<suffix>"`, or unqualified without a schema.
    fn qualified(&self, suffix: &str) -> Result<String> {
        let bare = self.bare(suffix)?;
        Ok(match &self.schema {
            Some(s) => format!("{s}.{bare}"),
            None => bare,
        })
    }
}

fn column_types(schema: &Schema) -> Result<Vec<PgType>> {
    schema
        .fields()
        .iter()
        .map(|f| PgType::of(f.data_type()).with_context(|| format!("column '{}' has type {} which cannot be exported to PostgreSQL", f.name(), f.data_type())))
        .collect()
}

/// Exports `stream` to `target`; returns the rows exported.
pub async fn export(stream: SendableRecordBatchStream, target: &PgTarget, progress: &RowProgress) -> Result<u64> {
    export_inner(stream, target, progress).await.map_err(|e| scrub_error(e, &target.url))
}

async fn export_inner(mut stream: SendableRecordBatchStream, target: &PgTarget, progress: &RowProgress) -> Result<u64> {
    let schema: SchemaRef = stream.schema();
    let types = column_types(&schema)?;
    validate_key_columns(&schema, &target.key)?;
    if target.mode == PgMode::Upsert {
        ensure!(!target.key.is_empty(), "an upsert into PostgreSQL needs --key");
    }
    let columns: Vec<String> = schema.fields().iter().map(|f| quote_pg_ident(f.name())).collect::<Result<_>>()?;
    let keys: Vec<String> = target.key.iter().map(|k| quote_pg_ident(k)).collect::<Result<_>>()?;
    let definition = columns.iter().zip(&types).map(|(c, t)| format!("{c} {}", t.sql())).collect::<Vec<_>>().join(", ");
    let name = PgName::parse(&target.table)?;
    let final_name = name.qualified("")?;

    let (mut client, connection) = tokio_postgres::connect(&target.url, tokio_postgres::NoTls)
        .await
        .with_context(|| format!("cannot connect to {}", redact(&target.url)))?;
    let connection = tokio::spawn(connection);
    let tx = client.transaction().await?;
    let load_into = match target.mode {
        PgMode::Replace => {
            let staging = name.qualified(STAGING_SUFFIX)?;
            // A staging table left by a crashed run is ours to drop; this runs in our transaction.
            tx.batch_execute(&format!("DROP TABLE IF EXISTS {staging}; CREATE TABLE {staging} ({definition})")).await?;
            staging
        }
        PgMode::Upsert => {
            tx.batch_execute(&format!(
                "CREATE TABLE IF NOT EXISTS {final_name} ({definition}, PRIMARY KEY ({})); \
                 CREATE TEMP TABLE backbeat_stage (LIKE {final_name}) ON COMMIT DROP",
                keys.join(", ")
            ))
            .await?;
            "backbeat_stage".to_string()
        }
    };

    let sink = tx
        .copy_in::<_, Bytes>(&format!("COPY {load_into} ({}) FROM STDIN (FORMAT binary)", columns.join(", ")))
        .await
        .context("starting COPY")?;
    futures::pin_mut!(sink);
    let mut buf = BytesMut::with_capacity(COPY_CHUNK * 2);
    buf.put_slice(b"PGCOPY\n\xff\r\n\0");
    buf.put_i32(0); // flags
    buf.put_i32(0); // header extension length
    let mut rows = 0u64;
    while let Some(batch) = stream.next().await {
        let batch = batch.context("reading the exported table")?;
        for row in 0..batch.num_rows() {
            buf.put_i16(types.len() as i16);
            for (column, t) in batch.columns().iter().zip(&types) {
                t.encode(&cell(column, row), &mut buf)?;
            }
            if buf.len() >= COPY_CHUNK {
                sink.send(buf.split().freeze()).await.context("COPY")?;
            }
        }
        rows += batch.num_rows() as u64;
        progress.inc(batch.num_rows() as u64);
    }
    buf.put_i16(-1); // trailer
    sink.send(buf.split().freeze()).await.context("COPY")?;
    let copied = sink.finish().await.context("finishing COPY")?;
    ensure!(copied == rows, "COPY stored {copied} rows of {rows}");

    match target.mode {
        PgMode::Replace => {
            // The index is built after the load (faster than maintaining it row by row) and named
            // after the table, so that the next run's staging table can take the staging name.
            let staging = name.qualified(STAGING_SUFFIX)?;
            let mut sql = String::new();
            if !keys.is_empty() {
                let index = name.bare(&format!("{STAGING_SUFFIX}_pkey"))?;
                sql.push_str(&format!("ALTER TABLE {staging} ADD CONSTRAINT {index} PRIMARY KEY ({}); ", keys.join(", ")));
            }
            sql.push_str(&format!("DROP TABLE IF EXISTS {final_name}; ALTER TABLE {staging} RENAME TO {}; ", name.bare("")?));
            if !keys.is_empty() {
                sql.push_str(&format!(
                    "ALTER INDEX {} RENAME TO {}; ",
                    name.qualified(&format!("{STAGING_SUFFIX}_pkey"))?,
                    name.bare("_pkey")?
                ));
            }
            tx.batch_execute(&sql).await.context("replacing the target table")?;
        }
        PgMode::Upsert => {
            let non_keys: Vec<&String> = columns.iter().filter(|c| !keys.contains(c)).collect();
            let action = if non_keys.is_empty() {
                "DO NOTHING".to_string()
            } else {
                format!("DO UPDATE SET {}", non_keys.iter().map(|c| format!("{c} = EXCLUDED.{c}")).collect::<Vec<_>>().join(", "))
            };
            // DISTINCT ON: one row per key, as ON CONFLICT cannot touch a row twice in one statement.
            tx.batch_execute(&format!(
                "INSERT INTO {final_name} ({cols}) SELECT DISTINCT ON ({k}) {cols} FROM backbeat_stage ON CONFLICT ({k}) {action}",
                cols = columns.join(", "),
                k = keys.join(", ")
            ))
            .await
            .context("upserting into the target table")?;
        }
    }
    tx.commit().await.context("committing")?;
    drop(client);
    let _ = connection.await;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numerics_encode_like_postgres() {
        let mut buf = BytesMut::new();
        encode_numeric("12345.678", &mut buf);
        // ndigits 3, weight 1, positive, dscale 3, digits 1 2345 6780
        assert_eq!(&buf[..], &[0, 3, 0, 1, 0, 0, 0, 3, 0, 1, 0x09, 0x29, 0x1a, 0x7c]);
        let mut buf = BytesMut::new();
        encode_numeric("-0.05", &mut buf);
        assert_eq!(&buf[..], &[0, 1, 0xff, 0xff, 0x40, 0, 0, 2, 0x01, 0xf4]);
        assert!(quote_pg_ident(&"x".repeat(64)).is_err());
        assert_eq!(quote_pg_ident("we\"ird name").unwrap(), "\"we\"\"ird name\"");
    }
}
