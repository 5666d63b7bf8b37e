//! Running one attempt of one step: a job through the job runner, an ingest or an export through
//! the connectors, datagen through the datasets crate. Values are rendered from the run's
//! variables here, then checked by the step's own rules (typed job parameters, existing files).

use std::collections::BTreeMap;

use anyhow::{Context as _, Result};
use backbeat_cluster::delta::WriteMode;
use backbeat_cluster::session::BackbeatSession;
use backbeat_connectors::export::{ExportOptions, export_table, target_for};
use backbeat_connectors::file_ingest::FileIngest;
use backbeat_connectors::ingest::{IngestOptions, run_ingest};

use super::spec::{Step, StepKind};
use super::template::Context;
use crate::job_params::{ParamType, literal};
use crate::job_runner::execute;

/// What one attempt did: rows written, or the error and the rows written before it.
pub type Attempt = Result<u64, (anyhow::Error, u64)>;

/// The parameters an attempt records in the history.
pub type Recorded = BTreeMap<String, String>;

/// Why `step` would not run under `ctx`, if its conditions fail (`when:`).
pub fn skip_reason(step: &Step, ctx: &Context) -> Result<Option<String>> {
    for var in &step.when.env {
        if std::env::var(var).map(|v| v.trim().is_empty()).unwrap_or(true) {
            return Ok(Some(format!("{var} is not set")));
        }
    }
    if !step.when.missing.is_empty() {
        let paths = step.when.missing.iter().map(|p| ctx.render(p)).collect::<Result<Vec<_>>>()?;
        if paths.iter().all(|p| std::path::Path::new(p).exists()) {
            return Ok(Some(format!("{} already present", paths.join(", "))));
        }
    }
    Ok(None)
}

/// Renders a job step's parameters and checks every value whose type needs no file system (a
/// path is checked when the step runs: an earlier step may create it).
pub fn check_params(step: &Step, ctx: &Context) -> Result<()> {
    if let StepKind::Job { job, params } = &step.kind {
        for (name, template) in params {
            let value = ctx.render(template).with_context(|| format!("step {}: parameter {name}", step.name))?;
            let spec = job.params.iter().find(|p| &p.name == name).expect("checked at load");
            if spec.ty != ParamType::Path {
                literal(spec, &value).with_context(|| format!("step {}", step.name))?;
            }
        }
    }
    Ok(())
}

/// Runs one attempt of `step`.
pub async fn run_attempt(session: &BackbeatSession, step: &Step, ctx: &Context) -> (Recorded, Attempt) {
    match &step.kind {
        StepKind::Job { job, params } => {
            let given: Result<Vec<(String, String)>> = params.iter().map(|(k, v)| Ok((k.clone(), ctx.render(v)?))).collect();
            let given = match given {
                Ok(g) => g,
                Err(e) => return (Recorded::new(), Err((e, 0))),
            };
            match execute(session, job, &given).await {
                Ok((recorded, Ok(out))) => (recorded, Ok(out.rows_written)),
                Ok((recorded, Err(e))) => (recorded, Err(e)),
                Err(e) => (given.into_iter().collect(), Err((e, 0))),
            }
        }
        StepKind::Ingest(i) => {
            let mut recorded = Recorded::new();
            let result = async {
                let mut ingest = FileIngest::new(i.format.parse()?, ctx.render(&i.path)?);
                ingest.schema = i.schema.as_deref().map(|s| ctx.render(s)).transpose()?.map(Into::into);
                ingest.mapping = i.mapping.as_deref().map(|s| ctx.render(s)).transpose()?.map(Into::into);
                ingest.table = i.table.as_deref().map(|s| ctx.render(s)).transpose()?;
                ingest.table_prefix = i.table_prefix.clone();
                ingest.key = i.key.clone();
                recorded.insert("path".into(), ingest.path.clone());
                recorded.insert("mode".into(), i.mode.clone());
                let plan = ingest.plan()?;
                let options = IngestOptions {
                    mode: i.mode.parse::<WriteMode>().map_err(anyhow::Error::msg)?,
                    max_reject_rate: i.max_reject_rate,
                    concurrency: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2).max(2),
                    progress: true,
                };
                let report = run_ingest(session, plan, &options).await?;
                for t in &report.tables {
                    recorded.insert(format!("{}.read", t.table), t.read.to_string());
                    recorded.insert(format!("{}.rejected", t.table), t.rejected.to_string());
                }
                anyhow::Ok(report.tables.iter().map(|t| t.written).sum::<u64>())
            }
            .await;
            (recorded, result.map_err(|e| (e, 0)))
        }
        StepKind::Export(e) => {
            let mut recorded = Recorded::new();
            let result = async {
                let table = ctx.render(&e.table)?;
                let url = ctx.render(&e.to)?;
                let options = ExportOptions {
                    name: e.name.clone(),
                    key: e.key.clone(),
                    upsert: e.upsert,
                    key_pattern: e.key_pattern.clone(),
                    redis_value: e.value.clone(),
                    member: e.member.clone(),
                    score: e.score.clone(),
                    ttl: e.ttl,
                };
                let target = target_for(&url, &table, &options)?;
                recorded.insert("table".into(), table.clone());
                recorded.insert("to".into(), target.describe());
                let report = export_table(session, &table, None, &target, true).await?;
                anyhow::Ok(report.rows)
            }
            .await;
            (recorded, result.map_err(|e| (e, 0)))
        }
        StepKind::Datagen(d) => {
            let mut recorded = Recorded::new();
            let result = async {
                let scale: f64 = ctx.render(&d.scale)?.trim().parse().context("datagen scale must be a number")?;
                let datasets = if d.only.is_empty() {
                    backbeat_datasets::datagen::Dataset::ALL.to_vec()
                } else {
                    d.only.iter().map(|n| backbeat_datasets::datagen::Dataset::parse(n)).collect::<Result<_>>()?
                };
                recorded.insert("scale".into(), scale.to_string());
                recorded.insert("seed".into(), d.seed.to_string());
                let config = backbeat_datasets::datagen::DatagenConfig { scale, seed: d.seed, out: session.lake().local_root("datagen")?.to_path_buf(), datasets, dirty_rate: 0.0 };
                let manifest = tokio::task::spawn_blocking(move || backbeat_datasets::datagen::generate(&config)).await??;
                anyhow::Ok(count_leaves(&serde_json::to_value(&manifest.counts)?))
            }
            .await;
            (recorded, result.map_err(|e| (e, 0)))
        }
    }
}

/// The sum of the numbers in a JSON value: datagen's row counts, whatever their nesting.
fn count_leaves(v: &serde_json::Value) -> u64 {
    match v {
        serde_json::Value::Number(n) => n.as_u64().unwrap_or(0),
        serde_json::Value::Array(a) => a.iter().map(count_leaves).sum(),
        serde_json::Value::Object(o) => o.values().map(count_leaves).sum(),
        _ => 0,
    }
}
