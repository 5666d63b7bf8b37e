//! Broadcast reads: a partition kernel ([`crate::map_partitions`]) that needs a whole table besides
//! its own partition (ALS's other-side factors, the catalogue of track vectors for kNN) reads it
//! here, from the lake, pinned to the version the client named. It is the broadcast variable of
//! Spark: written once by the previous step, read by every task. Tasks of one executor process share
//! one decoded copy through [`shared`], so a 2-slot executor holds the 256 MB of a 1M x 64 factor
//! matrix once, not twice.

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, LazyLock, Weak};

use arrow::record_batch::RecordBatch;
use datafusion::common::{DataFusionError, Result};
use datafusion::prelude::{SessionConfig, SessionContext};
use url::Url;

use crate::delta_table::DeltaTableProvider;
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
