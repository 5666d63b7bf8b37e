//! Broadcast reads: a partition kernel ([`crate::map_partitions`]) that needs a whole table besides
//! its own partition (ALS's other-side factors, the catalogue of track vectors for kNN) reads it
//! here, from the lake, pinned to the version the client named. It is the broadcast variable of
//! Spark: written once by the previous step, read by every task. Tasks of one executor process share
//! one decoded copy through [`shared`], so a 2-slot executor holds the 256 MB of a 1M x 64 factor
//! matrix once, not twice. [`resident`] keeps a value across jobs for iterative kernels, and
//! [`write_ipc`] / [`read_ipc`] move the blocks such a kernel hands from one step to the next.

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, LazyLock, Weak};

use arrow::record_batch::RecordBatch;
use datafusion::common::{DataFusionError, Result};
use datafusion::prelude::{SessionConfig, SessionContext};
use url::Url;

use crate::delta::DeltaTableProvider;
use crate::session::FORCE_VIEW_TYPES;

/// Reads `columns` of the Delta table at `uri`, at `version`, in this process.
pub async fn read_table(uri: &str, version: Option<u64>, columns: &[&str]) -> Result<Vec<RecordBatch>> {
    let url = Url::parse(uri).map_err(|e| DataFusionError::Plan(format!("bad table URI {uri}: {e}")))?;
    let provider = DeltaTableProvider::open(&url, version).await?;
    let config = SessionConfig::new().set_bool(FORCE_VIEW_TYPES, false);
    let ctx = SessionContext::new_with_config(config);
    ctx.read_table(Arc::new(provider))?.select_columns(columns)?.collect().await
}

type Entry = Weak<dyn Any + Send + Sync>;
static SHARED: LazyLock<tokio::sync::Mutex<HashMap<String, Entry>>> = LazyLock::new(Default::default);

/// The value cached under `key` while any task still holds it, else the result of `load`, cached.
/// Keys must identify the content, e.g. a table URI with its version and what was derived from it.
pub async fn shared<T, F>(key: String, load: F) -> Result<Arc<T>>
where
    T: Send + Sync + 'static,
    F: Future<Output = Result<T>>,
{
    // Held across the load on purpose: a second task of the same stage waits for the first one's
    // copy instead of decoding its own.
    let mut cache = SHARED.lock().await;
    cache.retain(|_, v| v.strong_count() > 0);
    if let Some(value) = cache.get(&key).and_then(Weak::upgrade) {
        if let Ok(value) = value.downcast::<T>() {
            return Ok(value);
        }
    }
    let value = Arc::new(load.await?);
    let erased: Arc<dyn Any + Send + Sync> = value.clone();
    cache.insert(key, Arc::downgrade(&erased));
    Ok(value)
}

struct Resident {
    key: String,
    value: Arc<dyn Any + Send + Sync>,
    last_used: std::time::Instant,
}
static RESIDENT: LazyLock<tokio::sync::Mutex<HashMap<&'static str, Resident>>> = LazyLock::new(Default::default);
static REAPER: std::sync::Once = std::sync::Once::new();

/// A resident value unused for this long is dropped (Spark's `unpersist`, done by the clock).
pub const RESIDENT_IDLE: std::time::Duration = std::time::Duration::from_secs(300);

/// Like [`shared`], but the value outlives the task and the job: it stays in this process until a
/// value under another `key` takes its `slot`, or nobody has used it for [`RESIDENT_IDLE`]. It is
/// Spark's cached partition for iterative jobs: ALS keeps its interactions, decoded once per
/// executor, across all twenty half-sweeps instead of re-reading and re-shuffling them per sweep.
/// One value per slot bounds what a process holds. Keys must identify the content *and* the run
/// (a table rewritten from scratch can come back at the same version).
pub async fn resident<T, F>(slot: &'static str, key: String, load: F) -> Result<Arc<T>>
where
    T: Send + Sync + 'static,
    F: Future<Output = Result<T>>,
{
    REAPER.call_once(|| {
        tokio::spawn(async {
            loop {
                tokio::time::sleep(RESIDENT_IDLE / 5).await;
                RESIDENT.lock().await.retain(|_, r| r.last_used.elapsed() < RESIDENT_IDLE);
            }
        });
    });
    let mut cache = RESIDENT.lock().await;
    if let Some(held) = cache.get_mut(slot) {
        if held.key == key {
            if let Ok(value) = held.value.clone().downcast::<T>() {
                held.last_used = std::time::Instant::now();
                return Ok(value);
            }
        }
    }
    // Drop the old value before loading the new one, so peak memory is one value, not two.
    cache.remove(slot);
    let value = Arc::new(load.await?);
    cache.insert(slot, Resident { key, value: value.clone() as Arc<dyn Any + Send + Sync>, last_used: std::time::Instant::now() });
    Ok(value)
}

/// Writes `batch` as an Arrow IPC file at `uri` (any object-store URL). The store's put is atomic:
/// a reader sees the whole file or none, so a task that dies mid-write leaves nothing half-read.
/// For the blocks an iterative kernel hands to the next step (ALS factors by block).
pub async fn write_ipc(uri: &str, batch: &RecordBatch) -> Result<()> {
    let mut writer = arrow::ipc::writer::FileWriter::try_new(Vec::new(), batch.schema_ref())?;
    writer.write(batch)?;
    writer.finish()?;
    let bytes = writer.into_inner()?;
    let (store, path) = store_path(uri)?;
    store
        .put(&path, bytes.into())
        .await
        .map_err(|e| DataFusionError::Execution(format!("cannot write {uri}: {e}")))?;
    Ok(())
}

/// Reads the Arrow IPC file at `uri` written by [`write_ipc`].
pub async fn read_ipc(uri: &str) -> Result<Vec<RecordBatch>> {
    let (store, path) = store_path(uri)?;
    let bytes = store
        .get(&path)
        .await
        .map_err(|e| DataFusionError::Execution(format!("cannot read {uri}: {e}")))?
        .bytes()
        .await
        .map_err(|e| DataFusionError::Execution(format!("cannot read {uri}: {e}")))?;
    let reader = arrow::ipc::reader::FileReader::try_new(std::io::Cursor::new(bytes), None)
        .map_err(|e| DataFusionError::Execution(format!("{uri} is not an Arrow IPC file: {e}")))?;
    reader.collect::<std::result::Result<Vec<_>, _>>().map_err(|e| DataFusionError::Execution(format!("reading {uri}: {e}")))
}

use object_store::ObjectStoreExt;

fn store_path(uri: &str) -> Result<(std::sync::Arc<dyn object_store::ObjectStore>, object_store::path::Path)> {
    let url = Url::parse(uri).map_err(|e| DataFusionError::Plan(format!("bad URI {uri}: {e}")))?;
    crate::object_storage::store_for_url(&url)
}
