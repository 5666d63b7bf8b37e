//! The executors' stage engine: Ballista's default engine, except that per-operator metrics are not
//! sent back to the scheduler.
//!
//! Why: Ballista 55's scheduler restricts each task's plan to the task's partitions, and under a
//! `UnionExec` a child with no partitions for that task is rebuilt as a different (smaller) plan.
//! Tasks of one stage then report operator-metric arrays of different lengths, the scheduler's
//! `update_task_metrics` rejects the second ("task metrics array size 6 does not equal with the
//! stage metrics array size 7"), the task's status update is dropped, and the job waits forever.
//! Seen here on `SELECT 'a', count(*) FROM t1 UNION ALL SELECT 'b', count(*) FROM t2 ...` (counts
//! answered from Delta statistics, so the stage is three projections over placeholder rows): the
//! query hung on the 2-executor cluster and embedded alike. The scheduler skips the merge when a
//! task reports no metrics, so none are reported; they are logged at debug level on the executor.
//! What is lost is the per-operator metrics view of the scheduler's REST API.
//!
//! The engine is built without Ballista's shuffle-client pool (its type is private to the
//! executor crate): each remote shuffle fetch opens its own connection.

use std::fmt;
use std::sync::Arc;

use ballista_core::JobId;
use ballista_core::serde::protobuf::{RuntimeStatsReport, ShuffleWritePartition, TaskColumnStats, WindowStateReport};
use ballista_executor::execution_engine::{DefaultExecutionEngine, ExecutionEngine, QueryStageExecutor};
use datafusion::error::Result;
use datafusion::execution::context::TaskContext;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::metrics::MetricsSet;
use datafusion::prelude::SessionConfig;

/// Ballista's default stage engine without operator metrics in task status reports.
#[derive(Default)]
pub struct StageEngine {
    inner: DefaultExecutionEngine,
}

impl ExecutionEngine for StageEngine {
    fn create_query_stage_exec(
        &self,
        job_id: JobId,
        stage_id: usize,
        task_id: usize,
        global_output_partition_ids: Vec<usize>,
        plan: Arc<dyn ExecutionPlan>,
        work_dir: &str,
        config: &SessionConfig,
    ) -> Result<Arc<dyn QueryStageExecutor>> {
        let inner = self.inner.create_query_stage_exec(job_id, stage_id, task_id, global_output_partition_ids, plan, work_dir, config)?;
        Ok(Arc::new(Stage { inner }))
    }
}

#[derive(Debug)]
struct Stage {
    inner: Arc<dyn QueryStageExecutor>,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.inner, f)
    }
}

#[async_trait::async_trait]
impl QueryStageExecutor for Stage {
    async fn execute_query_stage(&self, task_id: usize, context: Arc<TaskContext>) -> Result<Vec<ShuffleWritePartition>> {
        self.inner.execute_query_stage(task_id, context).await
    }

    fn collect_plan_metrics(&self) -> Vec<MetricsSet> {
        if tracing::enabled!(tracing::Level::DEBUG) {
            for (i, m) in self.inner.collect_plan_metrics().iter().enumerate() {
                tracing::debug!(operator = i, metrics = %m, "stage operator metrics");
            }
        }
        Vec::new()
    }

    fn collect_runtime_stats_reports(&self) -> Vec<RuntimeStatsReport> {
        self.inner.collect_runtime_stats_reports()
    }

    fn collect_window_state_reports(&self) -> Result<Vec<WindowStateReport>> {
        self.inner.collect_window_state_reports()
    }

    fn collect_column_stats(&self) -> Vec<TaskColumnStats> {
        self.inner.collect_column_stats()
    }
}
