//! A lease in the lake that keeps two runs of one pipeline from overlapping, however many
//! `backbeat schedule` processes share the lake, and lets a crashed holder's lease lapse.
//!
//! The lease of pipeline P is the highest-numbered file `_backbeat/schedules/P/lock.N`. Taking it
//! means creating `lock.N+1` when `lock.N` is released or its heartbeat is older than the
//! timeout; creation is atomic and exclusive (a hard link of a finished temporary file, so a reader
//! never sees a half-written lease), so of two processes racing for the same lapsed lease exactly
//! one wins. The holder rewrites its file (write, then rename over it) every quarter timeout and
//! gives up the run if a higher number appears. Slots that ran are marked by files
//! `done/<slot>`, created the same exclusive way, while the lease is held.
//!
//! The limit: without fencing tokens on every write, a holder stalled for longer than the
//! timeout (a stopped VM) can finish a step after another process took over. Keep the timeout
//! well above the longest pause you expect; the default is 60 s.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What a lease file says.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LeaseState {
    /// Who holds it (host, process id and a random part).
    pub holder: String,
    /// Last heartbeat.
    pub heartbeat_at: DateTime<Utc>,
    /// The slot being run, if any (RFC 3339, UTC).
    pub slot: Option<String>,
    /// Given up on purpose.
    pub released: bool,
}

/// A held lease.
#[derive(Debug)]
pub struct Lease {
    dir: PathBuf,
    generation: u64,
    state: LeaseState,
}

/// The directory of `pipeline`'s lease and slot markers in the lake at `root`.
pub fn schedule_dir(root: &Path, pipeline: &str) -> PathBuf {
    root.join("_backbeat").join("schedules").join(pipeline)
}

fn lock_path(dir: &Path, generation: u64) -> PathBuf {
    dir.join(format!("lock.{generation:012}"))
}

/// The current lease file's generation and state (`None` before the first lease).
pub fn current(dir: &Path) -> Result<Option<(u64, Option<LeaseState>)>> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(None) };
    let top = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.strip_prefix("lock.")).and_then(|g| g.parse::<u64>().ok()))
        .max();
    Ok(top.map(|g| {
        // Unreadable content is treated as held: only a lapsed heartbeat frees a lease.
        let state = std::fs::read(lock_path(dir, g)).ok().and_then(|b| serde_json::from_slice(&b).ok());
        (g, state)
    }))
}

/// Writes `bytes` to `path` only if nothing is there, atomically; `false` if something was.
pub fn create_exclusive(path: &Path, bytes: &[u8]) -> Result<bool> {
    let dir = path.parent().context("a lease path has a parent")?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let tmp = dir.join(format!(".tmp-{}", uuid::Uuid::new_v4()));
    std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e).with_context(|| format!("cannot create {}", path.display())),
    }
}

impl Lease {
    /// Takes the lease if it is free (never taken, released, or lapsed after `timeout`). Returns
    /// the lease and the previous holder's state when that holder lapsed (crashed) mid-slot.
    pub fn try_acquire(dir: &Path, holder: &str, timeout: Duration) -> Result<Option<(Lease, Option<LeaseState>)>> {
        let (generation, lapsed) = match current(dir)? {
            None => (1, None),
            Some((g, Some(s))) if s.released => (g + 1, None),
            Some((g, Some(s))) if Utc::now() - s.heartbeat_at > chrono::Duration::from_std(timeout)? => (g + 1, Some(s)),
            Some(_) => return Ok(None),
        };
        let state = LeaseState { holder: holder.to_string(), heartbeat_at: Utc::now(), slot: None, released: false };
        if !create_exclusive(&lock_path(dir, generation), &serde_json::to_vec(&state)?)? {
            return Ok(None);
        }
        if let Some(s) = &lapsed {
            tracing::warn!(previous = %s.holder, slot = ?s.slot, "took over a lapsed schedule lease");
        }
        // Old generations are history nobody reads.
        if generation > 3 {
            let _ = std::fs::remove_file(lock_path(dir, generation - 3));
        }
        Ok(Some((Lease { dir: dir.to_path_buf(), generation, state }, lapsed)))
    }

    fn write(&self) -> Result<()> {
        let tmp = self.dir.join(format!(".tmp-{}", uuid::Uuid::new_v4()));
        std::fs::write(&tmp, serde_json::to_vec(&self.state)?)?;
        std::fs::rename(&tmp, lock_path(&self.dir, self.generation)).context("renewing the schedule lease")
    }

    /// Whether this lease is still the current one.
    pub fn still_held(&self) -> Result<bool> {
        Ok(current(&self.dir)?.map(|(g, _)| g) == Some(self.generation))
    }

    /// Records the slot being run and renews.
    pub fn set_slot(&mut self, slot: Option<String>) -> Result<bool> {
        self.state.slot = slot;
        self.renew()
    }

    /// Renews the heartbeat; `false` (and no write) when another process took the lease over.
    pub fn renew(&mut self) -> Result<bool> {
        if !self.still_held()? {
            return Ok(false);
        }
        self.state.heartbeat_at = Utc::now();
        self.write()?;
        Ok(true)
    }

    /// Gives the lease up.
    pub fn release(mut self) -> Result<()> {
        if self.still_held()? {
            self.state.released = true;
            self.state.slot = None;
            self.write()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_at_a_time_and_a_lapsed_lease_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let timeout = Duration::from_millis(300);
        let (mut a, lapsed) = Lease::try_acquire(dir.path(), "a", timeout).unwrap().unwrap();
        assert!(lapsed.is_none());
        assert!(Lease::try_acquire(dir.path(), "b", timeout).unwrap().is_none(), "held");
        assert!(a.set_slot(Some("2026-01-01T00:00:00Z".into())).unwrap());
        std::thread::sleep(Duration::from_millis(400));
        let (b, lapsed) = Lease::try_acquire(dir.path(), "b", timeout).unwrap().expect("lapsed");
        assert_eq!(lapsed.unwrap().slot.as_deref(), Some("2026-01-01T00:00:00Z"));
        assert!(!a.renew().unwrap(), "a lost it");
        b.release().unwrap();
        assert!(Lease::try_acquire(dir.path(), "c", timeout).unwrap().is_some(), "released");
        assert!(create_exclusive(&dir.path().join("done/x"), b"1").unwrap());
        assert!(!create_exclusive(&dir.path().join("done/x"), b"2").unwrap());
    }
}
