//! Ingest orchestration: a source split into partitions, read concurrently, typed row by row, written
//! as Parquet files, then committed to Delta in one transaction per table.
//!
//! Nothing is visible before the commit: data files are written under the table (or, for merges,
//! under a hidden staging table), and only the Delta commit makes them part of a version. A run that
//! fails, is over its reject-rate limit, or is killed leaves every table at its previous version.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use arrow::array::{ArrayRef, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use backbeat_cluster::delta::commit::commit_files;
use backbeat_cluster::delta::writer::FileWriter;
use backbeat_cluster::delta::{DeltaTableProvider, DeltaTableSpec, WriteMode};
use backbeat_cluster::lake_catalog::{LakeCatalog, TableFormat};
use backbeat_cluster::session::{BackbeatSession, rows_written};
use datafusion::datasource::TableProvider;
use deltalake::kernel::Add;
use futures::StreamExt;
use futures::future::BoxFuture;
use tokio::sync::mpsc;

use crate::row_progress::RowProgress;
use crate::dead_letter::{Reject, rejected_schema, rejected_table_name, rejects_batch};
use crate::table_spec::TableSpec;
use crate::typed_row::{FieldError, RowAssembler};

/// Rows per batch a source hands to its writer.
pub const BATCH_ROWS: usize = 65_536;
/// The staging column that orders rows of one run, so that a merge keeps the last row of a key.
const SEQ_COLUMN: &str = "__ingest_seq";

/// One table a source fills.
#[derive(Debug, Clone)]
pub struct TargetTable {
    /// Lake table name.
    pub name: String,
    /// Its declared or inferred schema.
    pub spec: Arc<TableSpec>,
}

/// What a source partition sends its writer: typed rows for one table and the rows it rejected.
#[derive(Debug)]
pub struct Chunk {
    /// Index into [`SourcePlan::tables`].
    pub table: usize,
    /// Rows that passed (may be empty).
    pub batch: Option<RecordBatch>,
    /// Rows that did not.
    pub rejects: Vec<Reject>,
    /// Rows read for this table in this chunk (= batch rows + rejects).
    pub rows_read: u64,
}

/// The rows of one table a partition has read but not yet sent: typed rows, rejects, and the count
/// read (always `rows + rejects`). Every source reader fills one and sends it when full.
pub struct PendingChunk {
    table: usize,
    rows: RowAssembler,
    rejects: Vec<Reject>,
    read: u64,
}

impl PendingChunk {
    /// An empty chunk for table `table` of the plan, typed by `spec`.
    pub fn new(table: usize, spec: Arc<TableSpec>) -> Self {
        Self { table, rows: RowAssembler::new(spec), rejects: vec![], read: 0 }
    }

    /// Reads one row: typed into the batch (true), or rejected with `reject` making the
    /// dead-letter row (false).
    pub fn add(&mut self, fields: &[Option<&str>], reject: impl FnOnce(FieldError) -> Reject) -> bool {
        self.read += 1;
        match self.rows.push(fields) {
            Ok(()) => true,
            Err(e) => {
                self.rejects.push(reject(e));
                false
            }
        }
    }

    /// Reads one row that was rejected before typing (a malformed line, broken JSON).
    pub fn reject(&mut self, reject: Reject) {
        self.read += 1;
        self.rejects.push(reject);
    }

    /// True when the chunk should be sent.
    pub fn is_full(&self) -> bool {
        self.read as usize >= BATCH_ROWS
    }

    /// The chunk to send; this one starts empty again.
    pub fn take(&mut self) -> Chunk {
        Chunk {
            table: self.table,
            batch: Some(self.rows.finish()),
            rejects: std::mem::take(&mut self.rejects),
            rows_read: std::mem::take(&mut self.read),
        }
    }
}

/// Sends a partition's chunks; the channel is bounded, so a fast reader waits for its writer.
pub type ChunkSender = mpsc::Sender<Chunk>;

/// Reads one partition of a source into the sender.
pub type PartitionReader = Box<dyn FnOnce(ChunkSender) -> BoxFuture<'static, Result<()>> + Send>;

/// A source, split into partitions that are read concurrently.
pub struct SourcePlan {
    /// The tables the source fills.
    pub tables: Vec<TargetTable>,
    /// The partitions, in source order (a merge keeps the last row of a key in this order).
    pub partitions: Vec<PartitionReader>,
    /// What the progress bar calls the source.
    pub label: String,
}

/// Options of one run.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    /// Append, overwrite or merge.
    pub mode: WriteMode,
    /// Fail the run, committing nothing, when more than this fraction of rows is rejected.
    pub max_reject_rate: Option<f64>,
    /// Partitions read at once.
    pub concurrency: usize,
    /// Show a progress bar (on a terminal).
    pub progress: bool,
}

/// The counts of one table after a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableReport {
    /// Lake table name.
    pub table: String,
    /// Rows read from the source.
    pub read: u64,
    /// Rows written to the table (before merge de-duplication).
    pub written: u64,
    /// Rows sent to `<table>__rejected`.
    pub rejected: u64,
    /// The table's version after the run.
    pub version: u64,
    /// Rows in the table after the run.
    pub rows_after: Option<u64>,
}

/// What a run did, table by table.
#[derive(Debug, Clone)]
pub struct IngestReport {
    /// One entry per target table, in the source's order.
    pub tables: Vec<TableReport>,
    /// The run's id (also stored with its rejected rows).
    pub run_id: String,
    /// Wall time, seconds.
    pub seconds: f64,
}

#[derive(Default)]
struct TableOutcome {
    adds: Vec<Add>,
    rejects: Vec<Reject>,
    read: u64,
    written: u64,
}

/// Runs `plan` into the lake of `session` (see the module docs for the guarantees).
pub async fn run_ingest(session: &BackbeatSession, plan: SourcePlan, options: &IngestOptions) -> Result<IngestReport> {
    let started = Instant::now();
    let run_id = uuid::Uuid::new_v4().simple().to_string();
    let lake = session.lake();
    ensure!(!plan.tables.is_empty(), "the source fills no table");
    let mut targets = Vec::with_capacity(plan.tables.len());
    for table in &plan.tables {
        targets.push(prepare_target(lake, table, options.mode, &run_id).await?);
    }

    let progress = RowProgress::new(options.progress, &plan.label);
    let partitions = plan.partitions.into_iter().enumerate().map(|(index, reader)| {
        let targets = targets.clone();
        let progress = progress.clone();
        async move { write_partition(index as i64, reader, targets, progress).await }
    });
    let mut results = futures::stream::iter(partitions).buffer_unordered(options.concurrency.max(1));
    let mut outcomes: Vec<TableOutcome> = plan.tables.iter().map(|_| TableOutcome::default()).collect();
    let mut failure = None;
    while let Some(result) = results.next().await {
        match result {
            Ok(parts) => {
                for (outcome, part) in outcomes.iter_mut().zip(parts) {
                    outcome.adds.extend(part.adds);
                    outcome.rejects.extend(part.rejects);
                    outcome.read += part.read;
                    outcome.written += part.written;
                }
            }
            Err(e) => {
                failure.get_or_insert(e);
            }
        }
    }
    drop(results);
    progress.finish();
    if let Some(e) = failure {
        discard(&targets, &outcomes).await;
        return Err(e.context("ingest failed; nothing was committed"));
    }

    for (target, outcome) in targets.iter().zip(&outcomes) {
        // Every row read is either written or rejected: a mismatch is a bug, never silent loss.
        ensure!(
            outcome.read == outcome.written + outcome.rejects.len() as u64,
            "internal error: table '{}' read {} rows but wrote {} and rejected {}",
            target.name,
            outcome.read,
            outcome.written,
            outcome.rejects.len()
        );
        if let Some(limit) = options.max_reject_rate {
            let rate = if outcome.read == 0 { 0.0 } else { outcome.rejects.len() as f64 / outcome.read as f64 };
            if rate > limit {
                discard(&targets, &outcomes).await;
                bail!(
                    "table '{}': {} of {} rows rejected ({:.2}%), above --max-reject-rate {:.2}%; nothing was committed. First reject: {}",
                    target.name,
                    outcome.rejects.len(),
                    outcome.read,
                    rate * 100.0,
                    limit * 100.0,
                    outcome.rejects.first().map(describe_reject).unwrap_or_default()
                );
            }
        }
    }

    let ingested_at = chrono::Utc::now().timestamp_micros();
    let mut reports = Vec::with_capacity(targets.len());
    for (target, outcome) in targets.iter().zip(outcomes) {
        let version = commit_target(session, target, outcome.adds).await?;
        // The data commit comes first: if the process dies before the dead-letter commit, the
        // data is in (and a re-run in merge mode reproduces the same rejects).
        if !outcome.rejects.is_empty() {
            commit_rejects(lake, &target.name, &run_id, ingested_at, &outcome.rejects).await?;
        }
        reports.push(TableReport {
            table: target.name.clone(),
            read: outcome.read,
            written: outcome.written,
            rejected: outcome.rejects.len() as u64,
            version,
            rows_after: None,
        });
    }
    Ok(IngestReport { tables: reports, run_id, seconds: started.elapsed().as_secs_f64() })
}

fn describe_reject(r: &Reject) -> String {
    format!(
        "{} line {}{}: {} ({})",
        r.source,
        r.line,
        r.column.as_deref().map(|c| format!(" column '{c}'")).unwrap_or_default(),
        r.reason,
        r.kind.name()
    )
}

/// Where one table's files go and how they are committed.
#[derive(Clone)]
struct Target {
    name: String,
    spec: Arc<TableSpec>,
    /// Schema of the files written (the table's, plus the sequence column when staging a merge).
    file_schema: SchemaRef,
    /// The Delta table the files are written under: the table itself, or the merge staging table.
    write_spec: DeltaTableSpec,
    /// The merge staging table's lake name.
    staging: Option<String>,
}

async fn prepare_target(lake: &LakeCatalog, table: &TargetTable, mode: WriteMode, run_id: &str) -> Result<Target> {
    let name = &table.name;
    let url = lake.table_url(name)?;
    let schema = table.spec.arrow_schema();
    let existing = match lake.table_format(name).await? {
        Some(TableFormat::Parquet) => bail!("'{name}' is a Parquet directory; ingest writes Delta tables only"),
        Some(TableFormat::Delta) => {
            let provider = DeltaTableProvider::open(&url, None).await?;
            table.spec.check_matches(name, &provider.schema())?;
            Some(provider)
        }
        None => None,
    };
    ensure!(
        matches!(mode, WriteMode::Append | WriteMode::Overwrite | WriteMode::Merge),
        "ingest writes with mode append, overwrite or merge, not {mode}"
    );
    if mode == WriteMode::Merge {
        ensure!(!table.spec.key.is_empty(), "merge into '{name}' needs key columns (a spec `key:` or --key)");
        let staging = format!("_ingest_{name}_{}", &run_id[..12]);
        let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.push(Field::new(SEQ_COLUMN, DataType::Int64, false));
        let file_schema = Arc::new(Schema::new(fields));
        let provider = DeltaTableProvider::for_create(&lake.table_url(&staging)?, file_schema.clone(), vec![], false)?;
        return Ok(Target {
            name: name.clone(),
            spec: table.spec.clone(),
            file_schema,
            write_spec: provider.spec().clone(),
            staging: Some(staging),
        });
    }
    let write_spec = match existing {
        Some(p) => {
            let mut spec = p.spec().clone();
            spec.mode = mode;
            spec
        }
        None => DeltaTableProvider::for_create(&url, schema.clone(), vec![], false)?.spec().clone(),
    };
    Ok(Target { name: name.clone(), spec: table.spec.clone(), file_schema: schema, write_spec, staging: None })
}

/// Reads one partition and writes its rows, returning per-table outcomes (files not yet committed).
async fn write_partition(
    index: i64,
    reader: PartitionReader,
    targets: Vec<Target>,
    progress: RowProgress,
) -> Result<Vec<TableOutcome>> {
    let (tx, mut rx) = mpsc::channel::<Chunk>(4);
    let read = tokio::spawn(reader(tx));
    let mut writers: Vec<Option<FileWriter>> = targets.iter().map(|_| None).collect();
    let mut outcomes: Vec<TableOutcome> = targets.iter().map(|_| TableOutcome::default()).collect();
    let mut seq: Vec<i64> = vec![index << 40; targets.len()];
    let written = async {
        while let Some(chunk) = rx.recv().await {
            let t = chunk.table;
            progress.inc(chunk.rows_read);
            let outcome = &mut outcomes[t];
            outcome.read += chunk.rows_read;
            outcome.rejects.extend(chunk.rejects);
            let Some(batch) = chunk.batch.filter(|b| b.num_rows() > 0) else { continue };
            outcome.written += batch.num_rows() as u64;
            let target = &targets[t];
            let batch = if target.staging.is_some() {
                let n = batch.num_rows() as i64;
                let seqs: ArrayRef = Arc::new(Int64Array::from_iter_values(seq[t]..seq[t] + n));
                seq[t] += n;
                let mut columns = batch.columns().to_vec();
                columns.push(seqs);
                RecordBatch::try_new(target.file_schema.clone(), columns)?
            } else {
                batch
            };
            let writer = match &mut writers[t] {
                Some(w) => w,
                slot => slot.insert(
                    FileWriter::try_new(&target.write_spec.uri, target.file_schema.clone(), &[])
                        .with_context(|| format!("cannot write table '{}'", target.name))?,
                ),
            };
            writer.write(batch).await.with_context(|| format!("writing table '{}'", target.name))?;
        }
        for (writer, outcome) in writers.into_iter().zip(outcomes.iter_mut()) {
            if let Some(w) = writer {
                outcome.adds = w.finish().await.context("finishing data files")?;
            }
        }
        anyhow::Ok(())
    }
    .await;
    // A failing writer drops the receiver, which stops the reader; report the reader's error first,
    // as it names the file and line.
    let read = read.await.context("source reader panicked")?;
    read?;
    written?;
    Ok(outcomes)
}

/// Removes files written by a run that will not be committed (best effort: unreferenced files
/// are invisible anyway).
async fn discard(targets: &[Target], outcomes: &[TableOutcome]) {
    use object_store::ObjectStoreExt;
    for (target, outcome) in targets.iter().zip(outcomes) {
        if let Some(staging) = &target.staging {
            remove_staging(&target.write_spec, staging).await;
            continue;
        }
        let Ok(url) = url::Url::parse(&target.write_spec.uri) else { continue };
        // The log's paths are URL-encoded; the files are stored under the decoded names.
        if let Ok(dir) = url.to_file_path() {
            for add in &outcome.adds {
                let _ = std::fs::remove_file(dir.join(percent_decode(&add.path)));
            }
            continue;
        }
        let Ok((store, root)) = backbeat_cluster::object_storage::store_for_url(&url) else { continue };
        for add in &outcome.adds {
            if let Ok(location) = object_store::path::Path::parse(format!("{root}/{}", percent_decode(&add.path))) {
                let _ = store.delete(&location).await;
            }
        }
    }
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("p={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| s.to_string())
}

/// Removes a merge staging table (a directory, or every object under its prefix).
async fn remove_staging(spec: &DeltaTableSpec, name: &str) {
    use futures::TryStreamExt;
    use object_store::ObjectStoreExt;
    let Ok(url) = url::Url::parse(&spec.uri) else { return };
    if let Ok(dir) = url.to_file_path() {
        if let Err(e) = std::fs::remove_dir_all(&dir) {
            tracing::warn!(staging = name, error = %e, "could not remove merge staging table");
        }
        return;
    }
    let Ok((store, prefix)) = backbeat_cluster::object_storage::store_for_url(&url) else { return };
    let objects: Vec<_> = match store.list(Some(&prefix)).map_ok(|m| m.location).try_collect().await {
        Ok(objects) => objects,
        Err(e) => return tracing::warn!(staging = name, error = %e, "could not list merge staging table"),
    };
    for location in objects {
        if let Err(e) = store.delete(&location).await {
            tracing::warn!(staging = name, error = %e, "could not remove merge staging table");
        }
    }
}

/// Commits one table; returns its new version.
async fn commit_target(session: &BackbeatSession, target: &Target, adds: Vec<Add>) -> Result<u64> {
    let Some(staging) = &target.staging else {
        let outcome = commit_files(target.write_spec.clone(), &target.file_schema, adds)
            .await
            .with_context(|| format!("committing table '{}'", target.name))?;
        tracing::info!(table = %target.name, version = outcome.version, rows = outcome.rows, "ingest committed");
        return Ok(outcome.version);
    };
    let result = merge_staged(session, target, staging, adds).await;
    remove_staging(&target.write_spec, staging).await;
    result
}

/// Merges the staged rows into the table through the cluster: the last staged row of every key
/// replaces the table's row with that key, or is inserted, by `MERGE INTO` (which rewrites only the
/// files holding those keys). The first run creates the table from the staged rows.
async fn merge_staged(session: &BackbeatSession, target: &Target, staging: &str, adds: Vec<Add>) -> Result<u64> {
    commit_files(target.write_spec.clone(), &target.file_schema, adds)
        .await
        .with_context(|| format!("staging rows for merge into '{}'", target.name))?;
    let columns: Vec<String> = target.spec.columns.iter().map(|c| quote_ident(&c.name)).collect();
    let keys: Vec<String> = target.spec.key.iter().map(|k| quote_ident(k)).collect();
    // Ballista plans joins too big to broadcast as sort-merge joins, and DataFusion 55's sort-merge
    // join has no comparator for timestamps with a time zone ("Unsupported data type in sort merge
    // join comparator", the YouTube metadata log at datagen scale 10): such keys are compared as
    // their Int64 microseconds, which is the same equality.
    let timestamp_key = |k: &str| target.spec.columns.iter().any(|c| c.name == k && matches!(c.column_type, crate::table_spec::ColumnType::Timestamp | crate::table_spec::ColumnType::TimestampTz));
    let key_eq = |a: &str, b: &str, raw: &str, k: &str| {
        if timestamp_key(raw) { format!("arrow_cast({a}.{k}, 'Int64') = arrow_cast({b}.{k}, 'Int64')") } else { format!("{a}.{k} = {b}.{k}") }
    };
    // The last staged row of each key: a join on max(seq), not row_number(), which DataFusion 55
    // may plan as a TopK that panics on an empty partition ("topk_emitter_count > 0").
    let stg = quote_ident(staging);
    let on: Vec<String> = target.spec.key.iter().zip(&keys).map(|(raw, k)| key_eq("s", "l", raw, k)).collect();
    let latest = format!(
        "SELECT {} FROM {stg} AS s JOIN (SELECT {k}, max({SEQ_COLUMN}) AS __last FROM {stg} GROUP BY {k}) AS l \
         ON {} AND s.{SEQ_COLUMN} = l.__last",
        columns.iter().map(|c| format!("s.{c}")).collect::<Vec<_>>().join(", "),
        on.join(" AND "),
        k = keys.join(", "),
    );
    let lake = session.lake();
    if lake.table_format(&target.name).await?.is_none() {
        let df = session.context().sql(&latest).await.with_context(|| format!("planning merge into '{}'", target.name))?;
        let batches = session.write_table(df, &target.name, WriteMode::Create, &[]).await?.collect().await?;
        tracing::info!(table = %target.name, rows = rows_written(&batches), "merge created the table");
    } else {
        let matches: Vec<String> = target.spec.key.iter().zip(&keys).map(|(raw, k)| key_eq("t", "s", raw, k)).collect();
        let sql = format!(
            "MERGE INTO {} AS t USING ({latest}) AS s ON {} WHEN MATCHED THEN UPDATE SET * WHEN NOT MATCHED THEN INSERT *",
            quote_ident(&target.name),
            matches.join(" AND ")
        );
        let report = session.sql(&sql).await?.collect().await.with_context(|| format!("merging into '{}'", target.name))?;
        tracing::info!(table = %target.name, report = ?report.first().map(|b| b.num_rows()), "merge committed");
    }
    let version = DeltaTableProvider::open(&lake.table_url(&target.name)?, None).await?.spec().version.unwrap_or(0);
    Ok(version)
}

/// Appends a run's rejected rows to `<table>__rejected` (created on first use).
async fn commit_rejects(lake: &LakeCatalog, table: &str, run_id: &str, at: i64, rejects: &[Reject]) -> Result<()> {
    let name = rejected_table_name(table);
    let url = lake.table_url(&name)?;
    let schema = rejected_schema();
    let spec = match lake.table_format(&name).await? {
        Some(_) => DeltaTableProvider::open(&url, None).await?.spec().clone(),
        None => DeltaTableProvider::for_create(&url, schema.clone(), vec![], false)?.spec().clone(),
    };
    let mut writer = FileWriter::try_new(url.as_str(), schema.clone(), &[])?;
    for chunk in rejects.chunks(BATCH_ROWS) {
        writer.write(rejects_batch(run_id, at, chunk)).await?;
    }
    let adds = writer.finish().await?;
    commit_files(spec, &schema, adds)
        .await
        .with_context(|| format!("committing rejected rows to '{name}'"))?;
    Ok(())
}

/// Quotes an SQL identifier: nothing in a name reaches SQL unescaped.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Counts rows in a lake table (for reports and tests).
pub async fn count_rows(session: &BackbeatSession, table: &str) -> Result<u64> {
    let batches = session
        .context()
        .sql(&format!("SELECT count(*) AS n FROM {}", quote_ident(table)))
        .await?
        .collect()
        .await?;
    let n = batches
        .first()
        .and_then(|b| b.column(0).as_any().downcast_ref::<Int64Array>().map(|a| a.value(0)))
        .unwrap_or(0);
    Ok(n as u64)
}

/// The report as lines, with the reconcile check spelled out.
pub fn format_report(report: &IngestReport) -> String {
    let mut out = String::new();
    for t in &report.tables {
        out.push_str(&format!(
            "{}: read {} = written {} + rejected {} -> version {}{}\n",
            t.table,
            t.read,
            t.written,
            t.rejected,
            t.version,
            t.rows_after.map(|n| format!(", {n} rows")).unwrap_or_default()
        ));
    }
    out.push_str(&format!("run {} in {:.1} s\n", report.run_id, report.seconds));
    out
}
