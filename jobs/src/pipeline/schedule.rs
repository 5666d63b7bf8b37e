//! `backbeat schedule`: fires pipelines on their cron slots, one run of a pipeline at a time
//! across every schedule process on the lake (the lease), each slot once (a `done/` marker
//! written under the lease), missed slots by the pipeline's catch-up policy. A slot whose holder
//! crashed is run again by the next holder, with the same run key, so its succeeded steps are
//! resumed rather than repeated. On a stop request (SIGTERM) no new slot or step starts and the
//! running steps finish; a second request cancels them (their writes commit nothing).

use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, Result};
use backbeat_cluster::session::BackbeatSession;
use chrono::{DateTime, Utc};
use tokio::sync::watch;

use super::cron::{CatchUp, Cron, parse_slot};
use super::lease::{Lease, create_exclusive, schedule_dir};
use super::run::{RunOptions, Stop, run_pipeline};
use super::spec::Pipeline;

/// Options of a schedule process.
#[derive(Debug, Clone)]
pub struct ScheduleOptions {
    /// A lease whose heartbeat is older than this has lapsed.
    pub lease_timeout: Duration,
    /// How often due slots are looked for.
    pub tick: Duration,
    /// Values of the pipelines' variables.
    pub vars: Vec<(String, String)>,
}

struct Scheduled<'a> {
    pipeline: &'a Pipeline,
    cron: Cron,
    catchup: CatchUp,
    /// Slots after this one are candidates.
    cursor: DateTime<Utc>,
}

fn done_marker(dir: &Path, slot: DateTime<Utc>) -> std::path::PathBuf {
    dir.join("done").join(slot.timestamp_millis().to_string())
}

/// The latest slot marked done, if any.
fn last_done(dir: &Path) -> Option<DateTime<Utc>> {
    std::fs::read_dir(dir.join("done"))
        .ok()?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i64>().ok())
        .max()
        .and_then(DateTime::from_timestamp_millis)
}

/// Runs the schedules of `pipelines` until `stop` asks to.
pub async fn run_schedule(session: &BackbeatSession, pipelines: &[Pipeline], options: &ScheduleOptions, stop: watch::Receiver<Stop>) -> Result<()> {
    let holder = format!("{}-{}-{}", hostname(), std::process::id(), &uuid::Uuid::new_v4().to_string()[..8]);
    let started = Utc::now();
    let mut scheduled = Vec::new();
    for p in pipelines {
        let spec = p.schedule.as_ref().with_context(|| format!("pipeline {} has no schedule: section", p.name))?;
        let dir = schedule_dir(session.lake().local_root("pipeline schedules (their leases are files)")?, &p.name);
        // Bad variables fail now, not at the first slot hours later.
        super::run::context(session, p, started.date_naive(), "check", &options.vars)?;
        let cursor = last_done(&dir).unwrap_or(started);
        eprintln!("schedule {}: '{}' in {}, catch-up {}, holder {holder}", p.name, spec.cron, spec.timezone, spec.catchup);
        scheduled.push(Scheduled { pipeline: p, cron: Cron::new(&spec.cron, &spec.timezone)?, catchup: CatchUp::parse(&spec.catchup)?, cursor });
    }
    let mut previous_tick = started;
    loop {
        if *stop.borrow() != Stop::No {
            eprintln!("schedule stopping: no run in progress");
            return Ok(());
        }
        let now = Utc::now();
        for s in &mut scheduled {
            let dir = schedule_dir(session.lake().local_root("pipeline schedules")?, &s.pipeline.name);
            let candidates: Vec<DateTime<Utc>> = s.cron.slots_between(s.cursor, now, 100_000)?.into_iter().filter(|slot| !done_marker(&dir, *slot).exists()).collect();
            let backlog: Vec<DateTime<Utc>> = candidates.iter().copied().filter(|t| *t <= previous_tick).collect();
            let current: Vec<DateTime<Utc>> = candidates.iter().copied().filter(|t| *t > previous_tick).collect();
            let mut due = match s.catchup {
                CatchUp::All => candidates.clone(),
                CatchUp::Latest => s.catchup.due(&candidates, false),
                CatchUp::None => current.clone(),
            };
            if !backlog.is_empty() && due.len() < candidates.len() {
                tracing::info!(pipeline = %s.pipeline.name, skipped = candidates.len() - due.len(), "missed slots left out by the catch-up policy");
            }
            while let Some(slot) = due.first().copied() {
                match run_slot(session, s, &dir, slot, &holder, options, stop.clone()).await {
                    Ok(SlotOutcome::Ran | SlotOutcome::AlreadyDone) => {
                        due.remove(0);
                        s.cursor = s.cursor.max(slot);
                    }
                    Ok(SlotOutcome::Busy) => break,
                    // A daemon outlives a bad moment (a store or the lake briefly unreachable):
                    // the slot stays due and is tried again at the next tick.
                    Err(e) => {
                        tracing::error!(pipeline = %s.pipeline.name, slot = %slot, "slot could not run: {e:#}");
                        eprintln!("schedule {}: slot {} could not run, trying again: {e:#}", s.pipeline.name, slot.to_rfc3339());
                        break;
                    }
                }
                if *stop.borrow() != Stop::No {
                    break;
                }
            }
            // Slots passed over by the policy are not candidates again.
            if s.catchup != CatchUp::All && due.is_empty() {
                if let Some(last) = candidates.last() {
                    s.cursor = s.cursor.max(*last);
                }
            }
        }
        previous_tick = now;
        let mut stop_rx = stop.clone();
        tokio::select! {
            () = tokio::time::sleep(options.tick) => {}
            _ = stop_rx.changed() => {}
        }
    }
}

enum SlotOutcome {
    Ran,
    AlreadyDone,
    Busy,
}

/// Takes the lease and runs `slot` (first the slot of a lapsed holder, if it did not finish).
async fn run_slot(session: &BackbeatSession, s: &Scheduled<'_>, dir: &Path, slot: DateTime<Utc>, holder: &str, options: &ScheduleOptions, stop: watch::Receiver<Stop>) -> Result<SlotOutcome> {
    let Some((mut lease, lapsed)) = Lease::try_acquire(dir, holder, options.lease_timeout)? else {
        return Ok(SlotOutcome::Busy);
    };
    let orphan = lapsed.and_then(|l| l.slot).map(|t| parse_slot(&t)).transpose()?.filter(|t| !done_marker(dir, *t).exists());
    let result = async {
        if let Some(orphan) = orphan {
            eprintln!("schedule {}: resuming slot {} of a holder that stopped answering", s.pipeline.name, orphan.to_rfc3339());
            run_one(session, s, dir, orphan, &mut lease, options, stop.clone()).await?;
        }
        if done_marker(dir, slot).exists() {
            return Ok(SlotOutcome::AlreadyDone);
        }
        run_one(session, s, dir, slot, &mut lease, options, stop).await?;
        Ok(SlotOutcome::Ran)
    }
    .await;
    lease.release()?;
    result
}

/// Runs one slot under the lease, renewing it, and marks the slot done.
async fn run_one(session: &BackbeatSession, s: &Scheduled<'_>, dir: &Path, slot: DateTime<Utc>, lease: &mut Lease, options: &ScheduleOptions, stop: watch::Receiver<Stop>) -> Result<()> {
    let key = slot.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    if !lease.set_slot(Some(key.clone()))? {
        anyhow::bail!("lost the schedule lease of {} before slot {key} started", s.pipeline.name);
    }
    let run_options = RunOptions { ds: s.cron.local_date(slot), run_key: Some(key.clone()), from: None, force: false, vars: options.vars.clone() };
    // The heartbeat renews the lease while the run goes on; losing it cancels the run.
    let (lost_tx, lost_rx) = watch::channel(Stop::No);
    let mut stop_in = stop.clone();
    let forward = async {
        let mut interval = tokio::time::interval(options.lease_timeout / 4);
        loop {
            tokio::select! {
                _ = interval.tick() => {
                    if !lease.renew().unwrap_or(false) {
                        tracing::error!("schedule lease of {} lost mid-run; cancelling", s.pipeline.name);
                        let _ = lost_tx.send(Stop::Cancel);
                    }
                }
                changed = stop_in.changed() => {
                    if changed.is_err() { std::future::pending::<()>().await; }
                    let level = *stop_in.borrow();
                    let _ = lost_tx.send(level);
                }
            }
        }
    };
    let run = run_pipeline(session, s.pipeline, &run_options, Some(lost_rx));
    let report = tokio::select! {
        r = run => r?,
        () = forward => unreachable!("the heartbeat loop never ends"),
    };
    eprint!("{}", report.table());
    if report.steps.iter().any(|r| r.status == super::run::StepStatus::Cancelled) {
        // Not done: the next holder runs the slot again and resumes it.
        return Ok(());
    }
    let status = if report.succeeded() { "succeeded" } else { "failed" };
    create_exclusive(&done_marker(dir, slot), format!("{{\"slot\":\"{key}\",\"status\":\"{status}\",\"pipeline_run\":\"{}\"}}", report.pipeline_run).as_bytes())?;
    Ok(())
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_string()).unwrap_or_else(|_| "host".into())
}
