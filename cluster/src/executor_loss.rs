//! What the scheduler does when an executor is lost mid-job: fail the jobs it was serving, with
//! the reason in the scheduler's log, instead of letting Ballista 55 recover them.
//!
//! Ballista's recovery re-runs the lost executor's share of a job, which is what Spark does, but on
//! Ballista 55 it is not safe. Measured in `cli/tests/executor_loss.rs` (kill -9 one of two
//! executors a third of the way into TPC-H q18 at SF1): with the default stage retries the query
//! came back with some groups' sums doubled (a wrong answer, silently); with stage retries off it
//! answered correctly once and hung in three of four runs, the scheduler having rolled a running
//! stage back to "unresolved" and then ignored its tasks' updates ("Ignore TaskStatus update ...
//! as the Stage is in UnResolved status"). So backbeat turns stage retries off
//! ([`crate::scheduler_process::scheduler_config`]) and this watcher cancels every running job as
//! soon as the scheduler forgets an executor (a failed task launch, or no heartbeat for the
//! executor timeout). The client gets an error within that bound, nothing half-written is
//! committed (a Delta write commits only after every task has succeeded), and a re-run uses the
//! executors that are left, once their task slots are reset ([`refresh_slots`] says why).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use ballista_scheduler::scheduler_server::SchedulerServer;
use datafusion_proto::protobuf::{LogicalPlanNode, PhysicalPlanNode};

/// How often the watcher compares the executor list.
const POLL: Duration = Duration::from_millis(250);

/// Watches `server`'s executors until the task is aborted.
pub fn spawn_watch(server: SchedulerServer<LogicalPlanNode, PhysicalPlanNode>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut known: BTreeMap<String, String> = BTreeMap::new();
        // Executors this watcher removed itself, to be re-registered: not losses.
        let mut refreshing: BTreeSet<String> = BTreeSet::new();
        loop {
            tokio::time::sleep(POLL).await;
            let Ok(state) = server.state.executor_manager.get_executors_state().await else { continue };
            let now: BTreeMap<String, String> =
                state.into_iter().map(|(meta, ..)| (meta.id.clone(), format!("{}:{}", meta.host, meta.grpc_port))).collect();
            refreshing.retain(|id| !now.contains_key(id));
            let lost: Vec<(String, String)> = known
                .iter()
                .filter(|(id, _)| !now.contains_key(*id) && !refreshing.contains(*id))
                .map(|(id, address)| (id.clone(), address.clone()))
                .collect();
            known = now;
            for (id, address) in lost {
                let jobs: Vec<_> = server.state.task_manager.get_running_job_cache().keys().cloned().collect();
                if jobs.is_empty() {
                    tracing::warn!(executor = %id, %address, "executor lost while idle");
                    continue;
                }
                for job in &jobs {
                    tracing::error!(
                        %job, executor = %id, %address,
                        "executor lost while the job ran: cancelling the job rather than trusting Ballista's recovery \
                         (it can hang or double-count); re-run it on the executors that are left"
                    );
                    if let Err(e) = server.cancel_job(job.clone()).await {
                        tracing::error!(%job, error = %e, "could not cancel the job");
                    }
                }
                refresh_slots(&server, &known, &mut refreshing).await;
            }
        }
    })
}

/// Ballista's rollback on a lost executor cancels the survivors' tasks of the rolled-back stages
/// and then ignores their final status, so their task slots are never given back: seen as every
/// later job waiting forever with no task launched. Once the cancelled jobs are gone, each
/// survivor is dropped from the scheduler's state; its next heartbeat registers it again with all
/// its slots free (a 5 s pause at the default heartbeat).
async fn refresh_slots(
    server: &SchedulerServer<LogicalPlanNode, PhysicalPlanNode>,
    survivors: &BTreeMap<String, String>,
    refreshing: &mut BTreeSet<String>,
) {
    for id in survivors.keys() {
        // Only with nothing running: a job submitted after the cancel must keep its executors (a
        // removed executor's task reports are dropped until it re-registers).
        let mut idle = false;
        for _ in 0..40 {
            if server.state.task_manager.get_running_job_cache().is_empty() && server.pending_job_number() == 0 {
                idle = true;
                break;
            }
            tokio::time::sleep(POLL).await;
        }
        if !idle {
            tracing::warn!(
                executor = %id,
                "jobs kept running after an executor was lost; its task slots were not reset, and if jobs stop getting \
                 tasks, restart the executors"
            );
            return;
        }
        refreshing.insert(id.clone());
        let reason = Some("task slots reset after another executor was lost".to_string());
        if let Err(e) = server.state.executor_manager.remove_executor(id, reason).await {
            tracing::warn!(executor = %id, error = %e, "could not reset the executor's task slots");
        } else {
            tracing::info!(executor = %id, "executor's task slots reset; it re-registers on its next heartbeat");
        }
    }
}
