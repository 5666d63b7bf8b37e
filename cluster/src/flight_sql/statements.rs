//! Statement handles between the Flight SQL calls of one query.
//!
//! A Flight SQL query is two or three calls: `GetFlightInfo` (plan, report the schema), `DoGet` (the
//! rows), and for prepared statements a `CreatePreparedStatement` and a `DoPut` of the parameters
//! before them. Whatever the first call planned waits here under a random handle for the next; a
//! handle nobody collects expires (a client that died between calls must not pin a plan, or a
//! write's report, forever), and the tables are bounded so a client in a loop cannot grow them
//! without end.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use datafusion::common::ParamValues;
use datafusion::dataframe::DataFrame;
use tonic::Status;

/// A planned result waiting for its `DoGet`.
pub(super) enum Pending {
    /// A query, planned, to run when fetched (streamed, never held whole).
    Query(DataFrame),
    /// A statement that already ran (a write, DDL, a lake verb): its small report.
    Done(SchemaRef, Vec<RecordBatch>),
}

impl Pending {
    /// The schema of the rows a `DoGet` of this will send.
    pub fn schema(&self) -> SchemaRef {
        match self {
            Pending::Query(df) => std::sync::Arc::new(df.schema().as_arrow().clone()),
            Pending::Done(schema, _) => schema.clone(),
        }
    }
}

/// A prepared statement: its SQL and the parameters bound to it by the last `DoPut`.
#[derive(Clone)]
pub(super) struct Prepared {
    pub sql: String,
    pub params: Option<ParamValues>,
}

/// An unfetched result lives this long after `GetFlightInfo`.
const PENDING_TTL: Duration = Duration::from_secs(600);
/// A prepared statement lives this long after its last use.
const PREPARED_TTL: Duration = Duration::from_secs(3600);
/// More live handles than this of one kind and the oldest go first.
const MAX_HANDLES: usize = 4096;

struct Entry<T> {
    value: T,
    touched: Instant,
}

#[derive(Default)]
struct Tables {
    pending: HashMap<Bytes, Entry<Pending>>,
    prepared: HashMap<Bytes, Entry<Prepared>>,
}

/// The server's live handles.
#[derive(Default)]
pub(super) struct Statements {
    tables: Mutex<Tables>,
}

fn new_handle() -> Bytes {
    Bytes::from(uuid::Uuid::new_v4().as_bytes().to_vec())
}

fn sweep<T>(map: &mut HashMap<Bytes, Entry<T>>, ttl: Duration) {
    map.retain(|_, e| e.touched.elapsed() < ttl);
    while map.len() >= MAX_HANDLES {
        let Some(oldest) = map.iter().min_by_key(|(_, e)| e.touched).map(|(k, _)| k.clone()) else { break };
        map.remove(&oldest);
    }
}

impl Statements {
    fn lock(&self) -> std::sync::MutexGuard<'_, Tables> {
        // A panic while holding the lock leaves only whole entries behind: keep serving.
        self.tables.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Keeps a result for one `DoGet`; returns its handle.
    pub fn add_pending(&self, pending: Pending) -> Bytes {
        let mut tables = self.lock();
        sweep(&mut tables.pending, PENDING_TTL);
        let handle = new_handle();
        tables.pending.insert(handle.clone(), Entry { value: pending, touched: Instant::now() });
        handle
    }

    /// Takes the result of a handle: each is fetched once.
    pub fn take_pending(&self, handle: &Bytes) -> Result<Pending, Status> {
        self.lock().pending.remove(handle).map(|e| e.value).ok_or_else(|| {
            Status::not_found("unknown or expired statement handle (results are fetched once, within 10 minutes)")
        })
    }

    /// Registers a prepared statement; returns its handle.
    pub fn prepare(&self, sql: String) -> Bytes {
        let mut tables = self.lock();
        sweep(&mut tables.prepared, PREPARED_TTL);
        let handle = new_handle();
        tables.prepared.insert(handle.clone(), Entry { value: Prepared { sql, params: None }, touched: Instant::now() });
        handle
    }

    /// A prepared statement by handle.
    pub fn prepared(&self, handle: &Bytes) -> Result<Prepared, Status> {
        let mut tables = self.lock();
        let entry = tables.prepared.get_mut(handle).ok_or_else(unknown_prepared)?;
        entry.touched = Instant::now();
        Ok(entry.value.clone())
    }

    /// Binds parameters to a prepared statement (replacing any bound before).
    pub fn bind(&self, handle: &Bytes, params: ParamValues) -> Result<(), Status> {
        let mut tables = self.lock();
        let entry = tables.prepared.get_mut(handle).ok_or_else(unknown_prepared)?;
        entry.touched = Instant::now();
        entry.value.params = Some(params);
        Ok(())
    }

    /// Closes a prepared statement; closing an unknown one is not an error (it may have expired).
    pub fn close(&self, handle: &Bytes) {
        self.lock().prepared.remove(handle);
    }

    /// Live handles (pending results, prepared statements), for tests and metrics.
    pub fn counts(&self) -> (usize, usize) {
        let tables = self.lock();
        (tables.pending.len(), tables.prepared.len())
    }
}

fn unknown_prepared() -> Status {
    Status::not_found("unknown or expired prepared statement handle (unused statements close after an hour)")
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::common::ScalarValue;

    #[test]
    fn results_are_fetched_once_and_statements_keep_their_bindings() {
        let statements = Statements::default();
        let schema = std::sync::Arc::new(arrow::datatypes::Schema::empty());
        let handle = statements.add_pending(Pending::Done(schema, vec![]));
        assert!(statements.take_pending(&handle).is_ok());
        assert_eq!(statements.take_pending(&handle).err().map(|e| e.code()), Some(tonic::Code::NotFound));

        let prepared = statements.prepare("SELECT $1".into());
        statements.bind(&prepared, vec![ScalarValue::Int64(Some(7))].into()).unwrap();
        assert!(statements.prepared(&prepared).unwrap().params.is_some());
        statements.close(&prepared);
        assert!(statements.prepared(&prepared).is_err());
        assert_eq!(statements.counts(), (0, 0));
    }

    #[test]
    fn tables_stay_bounded() {
        let statements = Statements::default();
        for i in 0..MAX_HANDLES + 10 {
            statements.prepare(format!("SELECT {i}"));
        }
        assert!(statements.counts().1 <= MAX_HANDLES);
    }
}
