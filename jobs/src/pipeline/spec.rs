//! Pipeline files: YAML, one per pipeline (`jobs/pipelines/*.yaml`, compiled in, or any path).
//! Everything a run could trip on later is checked when the file loads, before a step runs:
//! unknown jobs and parameters, unknown variables, missing or duplicate steps, cycles, bad
//! durations and cron expressions, each reported with the file and line.
//!
//! ```yaml
//! name: nightly
//! max_parallel: 2                    # steps run at once
//! vars: {top: {type: int, default: "10"}}
//! schedule: {cron: "0 3 * * *", timezone: Europe/Berlin, catchup: latest}
//! defaults: {retries: 1, retry_delay: 10s, timeout: 2h}
//! steps:
//!   - name: genres
//!     job: user_top_genres
//!     params: {top: "{{ top }}"}
//!   - name: to_redis
//!     export: {table: user_top_genres, to: "{{ env.BACKBEAT_EXPORT_REDIS }}", key_pattern: "genres:{user_id}", value: zset, member: track_genre, score: plays}
//!     when: {env: [BACKBEAT_EXPORT_REDIS]}
//!     depends_on: [genres]
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use serde::Deserialize;

use super::template::variables;
use crate::job_catalogue::{Job, find};
use crate::job_params::{ParamSpec, ParamType};

/// A loaded, checked pipeline.
#[derive(Debug, Clone)]
pub struct Pipeline {
    /// Name (a plain identifier).
    pub name: String,
    /// One line saying what it does.
    pub description: String,
    /// Where it was loaded from (`builtin:NAME` or a path).
    pub source: String,
    /// Steps run at once, at most.
    pub max_parallel: usize,
    /// Declared variables, typed as job parameters are.
    pub vars: Vec<ParamSpec>,
    /// When `backbeat schedule` fires it.
    pub schedule: Option<ScheduleSpec>,
    /// Steps, in file order.
    pub steps: Vec<Step>,
}

/// A pipeline's schedule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSpec {
    /// Cron expression: 5 fields, or 6 with seconds first.
    pub cron: String,
    /// IANA time zone the expression is read in [default: UTC].
    #[serde(default = "utc")]
    pub timezone: String,
    /// Missed slots: `latest` (run the last one), `all`, or `none`.
    #[serde(default = "latest")]
    pub catchup: String,
}

fn utc() -> String {
    "UTC".into()
}

fn latest() -> String {
    "latest".into()
}

/// One step.
#[derive(Debug, Clone)]
pub struct Step {
    /// Name, unique in the pipeline.
    pub name: String,
    /// What it runs.
    pub kind: StepKind,
    /// Steps that must succeed first.
    pub depends_on: Vec<String>,
    /// Attempts after the first.
    pub retries: u32,
    /// Wait before the first retry; doubled for each later one.
    pub retry_delay: Duration,
    /// An attempt running longer fails.
    pub timeout: Option<Duration>,
    /// Conditions; a step whose conditions do not hold is skipped, visibly.
    pub when: When,
    /// Line of the step in its file.
    pub line: usize,
}

/// What a step runs.
#[derive(Debug, Clone)]
pub enum StepKind {
    /// A catalogue job (or a `.sql` script) with parameter templates.
    Job {
        /// The job.
        job: Box<Job>,
        /// Parameter name and value template.
        params: Vec<(String, String)>,
    },
    /// A CSV or JSON file ingest.
    Ingest(IngestStep),
    /// An export to PostgreSQL, Redis or MongoDB.
    Export(ExportStep),
    /// Synthetic data.
    Datagen(DatagenStep),
}

impl StepKind {
    /// What the history calls it.
    pub fn label(&self) -> String {
        match self {
            StepKind::Job { job, .. } => job.name.clone(),
            StepKind::Ingest(i) => format!("ingest:{}", i.format),
            StepKind::Export(_) => "export".into(),
            StepKind::Datagen(_) => "datagen".into(),
        }
    }
}

/// An `ingest:` step (the fields of `backbeat ingest csv|json`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestStep {
    /// `csv` or `json`.
    pub format: String,
    /// File, directory or glob.
    pub path: String,
    /// Declared schema (YAML).
    pub schema: Option<String>,
    /// JSON mapping to several tables.
    pub mapping: Option<String>,
    /// Target table.
    pub table: Option<String>,
    /// Prefix of a mapping's tables.
    #[serde(default)]
    pub table_prefix: String,
    /// `append`, `overwrite` or `merge`.
    #[serde(default = "append")]
    pub mode: String,
    /// Merge key (overrides the spec's).
    #[serde(default)]
    pub key: Vec<String>,
    /// Most rejected rows, as a fraction, before the ingest commits nothing.
    pub max_reject_rate: Option<f64>,
}

fn append() -> String {
    "append".into()
}

/// An `export:` step (the fields of `backbeat export`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportStep {
    /// Lake table.
    pub table: String,
    /// Store URL.
    pub to: String,
    /// Target table or collection.
    pub name: Option<String>,
    /// Key columns.
    #[serde(default)]
    pub key: Vec<String>,
    /// Upsert instead of replace.
    #[serde(default)]
    pub upsert: bool,
    /// Redis key pattern.
    pub key_pattern: Option<String>,
    /// Redis value kind.
    pub value: Option<String>,
    /// Redis sorted-set member column.
    pub member: Option<String>,
    /// Redis sorted-set score column.
    pub score: Option<String>,
    /// Redis key expiry, seconds.
    pub ttl: Option<u64>,
}

/// A `datagen:` step.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatagenStep {
    /// Scale (a template: `"{{ scale }}"`).
    #[serde(default = "one")]
    pub scale: String,
    /// Seed.
    #[serde(default = "seed")]
    pub seed: u64,
    /// Datasets (default: all).
    #[serde(default)]
    pub only: Vec<String>,
}

fn one() -> String {
    "1".into()
}

fn seed() -> u64 {
    42
}

/// A step's conditions.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct When {
    /// Environment variables that must be set and non-empty.
    #[serde(default)]
    pub env: Vec<String>,
    /// Paths (templates) of which at least one must be missing: "make it unless it is there".
    #[serde(default)]
    pub missing: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPipeline {
    name: String,
    #[serde(default)]
    description: String,
    max_parallel: Option<usize>,
    #[serde(default)]
    vars: BTreeMap<String, RawVar>,
    schedule: Option<ScheduleSpec>,
    #[serde(default)]
    defaults: RawPolicy,
    steps: Vec<RawStep>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVar {
    #[serde(rename = "type")]
    ty: String,
    default: Option<serde_yaml::Value>,
    #[serde(default)]
    help: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    retries: Option<u32>,
    retry_delay: Option<String>,
    timeout: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    name: String,
    job: Option<String>,
    #[serde(default)]
    params: BTreeMap<String, serde_yaml::Value>,
    ingest: Option<IngestStep>,
    export: Option<ExportStep>,
    datagen: Option<DatagenStep>,
    #[serde(default)]
    depends_on: Vec<String>,
    retries: Option<u32>,
    retry_delay: Option<String>,
    timeout: Option<String>,
    #[serde(default)]
    when: When,
}

/// `30s`, `10m`, `2h`, `1d` or a number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration> {
    let t = text.trim();
    let (number, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(t.len()));
    let n: f64 = number.parse().with_context(|| format!("'{text}' is not a duration (30s, 10m, 2h, 1d)"))?;
    let seconds = match unit.trim() {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86400.0,
        other => bail!("'{text}': unknown duration unit '{other}' (ms, s, m, h, d)"),
    };
    anyhow::ensure!(seconds.is_finite() && seconds >= 0.0, "'{text}' is not a duration");
    Ok(Duration::from_secs_f64(seconds))
}

fn scalar(value: &serde_yaml::Value) -> Result<String> {
    Ok(match value {
        serde_yaml::Value::String(s) => s.clone(),
        serde_yaml::Value::Number(n) => n.to_string(),
        serde_yaml::Value::Bool(b) => b.to_string(),
        other => bail!("a parameter value must be a string, number or boolean, not {other:?}"),
    })
}

/// The names every template may use besides the pipeline's vars.
pub const BUILTIN_VARS: [&str; 4] = ["ds", "ds_nodash", "lake", "run_key"];

impl Pipeline {
    /// Loads and checks a pipeline file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read pipeline file {}", path.display()))?;
        Self::parse(&text, &path.display().to_string(), path.parent())
    }

    /// Parses and checks pipeline `text` from `source`; relative `.sql` job paths resolve
    /// against `dir`.
    pub fn parse(text: &str, source: &str, dir: Option<&Path>) -> Result<Self> {
        let raw: RawPipeline = serde_yaml::from_str(text).with_context(|| format!("pipeline {source} is not valid"))?;
        let at = |step: &str| format!("{source}:{}", step_line(text, step));
        if !is_plain(&raw.name) {
            bail!("{source}: pipeline name '{}' must be letters, digits and underscores", raw.name);
        }
        let mut vars = Vec::new();
        for (name, var) in &raw.vars {
            if BUILTIN_VARS.contains(&name.as_str()) || !is_plain(name) {
                bail!("{source}: variable '{name}' is reserved or not a plain name");
            }
            let ty = crate::job_params::parse_param_line(&format!("-- param: {name} {}", var.ty))
                .with_context(|| format!("{source}: variable {name}"))?
                .map(|p| p.ty)
                .unwrap_or(ParamType::Text);
            let default = var.default.as_ref().map(scalar).transpose().with_context(|| format!("{source}: variable {name}"))?;
            vars.push(ParamSpec { name: name.clone(), ty, default, help: var.help.clone() });
        }
        let known: Vec<String> = BUILTIN_VARS.iter().map(|s| s.to_string()).chain(vars.iter().map(|v| v.name.clone())).collect();
        let check_vars = |where_: &str, value: &str| -> Result<()> {
            for v in variables(value) {
                if !v.starts_with("env.") && !known.contains(&v) {
                    bail!("{where_}: unknown variable {{{{ {v} }}}} (known: {}, env.NAME)", known.join(", "));
                }
            }
            Ok(())
        };
        let default_delay = raw.defaults.retry_delay.as_deref().map(parse_duration).transpose().with_context(|| format!("{source}: defaults"))?;
        let default_timeout = raw.defaults.timeout.as_deref().map(parse_duration).transpose().with_context(|| format!("{source}: defaults"))?;
        let mut steps: Vec<Step> = Vec::new();
        for s in raw.steps {
            let here = at(&s.name);
            if !is_plain(&s.name) {
                bail!("{here}: step name '{}' must be letters, digits and underscores", s.name);
            }
            if steps.iter().any(|o| o.name == s.name) {
                bail!("{here}: two steps are named '{}'", s.name);
            }
            let kinds = [s.job.is_some(), s.ingest.is_some(), s.export.is_some(), s.datagen.is_some()].iter().filter(|k| **k).count();
            if kinds != 1 {
                bail!("{here}: step '{}' needs exactly one of job:, ingest:, export:, datagen:", s.name);
            }
            if !s.params.is_empty() && s.job.is_none() {
                bail!("{here}: params: belongs to a job: step");
            }
            let kind = if let Some(name) = &s.job {
                let resolved = match dir {
                    Some(d) if (name.ends_with(".sql") || name.ends_with(".py")) && Path::new(name).is_relative() => d.join(name).display().to_string(),
                    _ => name.clone(),
                };
                let job = find(&resolved).with_context(|| format!("{here}: step '{}'", s.name))?;
                let mut params = Vec::new();
                for (k, v) in &s.params {
                    if !job.params.iter().any(|p| &p.name == k) {
                        let valid: Vec<String> = job.params.iter().map(|p| p.name.clone()).collect();
                        bail!("{here}: job {} has no parameter '{k}' (its parameters: {})", job.name, valid.join(", "));
                    }
                    let v = scalar(v).with_context(|| format!("{here}: parameter {k}"))?;
                    check_vars(&here, &v)?;
                    params.push((k.clone(), v));
                }
                StepKind::Job { job: Box::new(job), params }
            } else if let Some(i) = s.ingest {
                i.format.parse::<backbeat_connectors::file_ingest::FileFormat>().with_context(|| here.clone())?;
                if !matches!(i.mode.as_str(), "append" | "overwrite" | "merge") {
                    bail!("{here}: ingest mode '{}' (append, overwrite or merge)", i.mode);
                }
                for v in [Some(&i.path), i.schema.as_ref(), i.mapping.as_ref(), i.table.as_ref()].into_iter().flatten() {
                    check_vars(&here, v)?;
                }
                StepKind::Ingest(i)
            } else if let Some(e) = s.export {
                check_vars(&here, &e.to)?;
                check_vars(&here, &e.table)?;
                StepKind::Export(e)
            } else {
                let d = s.datagen.expect("one kind");
                check_vars(&here, &d.scale)?;
                StepKind::Datagen(d)
            };
            for v in s.when.missing.iter() {
                check_vars(&here, v)?;
            }
            steps.push(Step {
                name: s.name.clone(),
                kind,
                depends_on: s.depends_on,
                retries: s.retries.or(raw.defaults.retries).unwrap_or(0),
                retry_delay: s.retry_delay.as_deref().map(parse_duration).transpose().with_context(|| here.clone())?.or(default_delay).unwrap_or(Duration::from_secs(5)),
                timeout: s.timeout.as_deref().map(parse_duration).transpose().with_context(|| here.clone())?.or(default_timeout),
                when: s.when,
                line: step_line(text, &s.name),
            });
        }
        if steps.is_empty() {
            bail!("{source}: a pipeline needs at least one step");
        }
        for step in &steps {
            for dep in &step.depends_on {
                if !steps.iter().any(|s| &s.name == dep) {
                    bail!("{source}:{}: step '{}' depends on '{dep}', which is not a step of this pipeline", step.line, step.name);
                }
            }
        }
        let pipeline = Pipeline {
            name: raw.name,
            description: raw.description,
            source: source.to_string(),
            max_parallel: raw.max_parallel.unwrap_or(2).max(1),
            vars,
            schedule: raw.schedule,
            steps,
        };
        if let Some(cycle) = super::dag::find_cycle(&pipeline) {
            let first = &pipeline.steps[cycle[0]];
            let names: Vec<&str> = cycle.iter().chain(std::iter::once(&cycle[0])).map(|&i| pipeline.steps[i].name.as_str()).collect();
            bail!("{source}:{}: the steps form a cycle: {} (depends_on must not loop back)", first.line, names.join(" -> "));
        }
        if let Some(schedule) = &pipeline.schedule {
            super::cron::Cron::new(&schedule.cron, &schedule.timezone).with_context(|| format!("{source}: schedule"))?;
            super::cron::CatchUp::parse(&schedule.catchup).with_context(|| format!("{source}: schedule"))?;
        }
        Ok(pipeline)
    }

    /// The step called `name`.
    pub fn step_index(&self, name: &str) -> Result<usize> {
        self.steps.iter().position(|s| s.name == name).with_context(|| {
            let names: Vec<&str> = self.steps.iter().map(|s| s.name.as_str()).collect();
            format!("pipeline {} has no step '{name}' (its steps: {})", self.name, names.join(", "))
        })
    }
}

fn is_plain(name: &str) -> bool {
    !name.is_empty() && name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_') && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The 1-based line of `- name: STEP` in `text` (0 when not found).
fn step_line(text: &str, step: &str) -> usize {
    text.lines()
        .position(|l| {
            let l = l.trim_start().trim_start_matches('-').trim();
            l.strip_prefix("name:").map(|v| v.trim().trim_matches(|c| c == '"' || c == '\'') == step).unwrap_or(false)
        })
        .map(|i| i + 1)
        .unwrap_or(0)
}

/// The pipelines compiled into the binary.
const BUILTIN: [(&str, &str); 1] = [("daily", include_str!("../../pipelines/daily.yaml"))];

/// Every built-in pipeline.
pub fn builtin() -> Result<Vec<Pipeline>> {
    BUILTIN.iter().map(|(name, text)| Pipeline::parse(text, &format!("jobs/pipelines/{name}.yaml"), None)).collect()
}

/// A built-in pipeline by name, or a pipeline file by path.
pub fn find_pipeline(name: &str) -> Result<Pipeline> {
    let path = PathBuf::from(name);
    if name.ends_with(".yaml") || name.ends_with(".yml") || path.is_file() {
        return Pipeline::load(&path);
    }
    if let Some((_, text)) = BUILTIN.iter().find(|(n, _)| *n == name) {
        return Pipeline::parse(text, &format!("jobs/pipelines/{name}.yaml"), None);
    }
    let names: Vec<&str> = BUILTIN.iter().map(|(n, _)| *n).collect();
    bail!("unknown pipeline '{name}'; built in: {} (or give a path to a .yaml file)", names.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = "name: p\nsteps:\n  - name: a\n    job: user_top_genres\n    params: {top: 5}\n  - name: b\n    job: user_top_genres\n    depends_on: [a]\n";

    #[test]
    fn a_good_file_loads() {
        let p = Pipeline::parse(OK, "p.yaml", None).unwrap();
        assert_eq!(p.steps.len(), 2);
        assert_eq!(p.steps[1].line, 6);
        assert!(matches!(&p.steps[0].kind, StepKind::Job { params, .. } if params == &vec![("top".to_string(), "5".to_string())]));
    }

    #[test]
    fn bad_files_are_refused_with_the_line_and_the_reason() {
        let err = |text: &str| format!("{:#}", Pipeline::parse(text, "p.yaml", None).unwrap_err());
        let e = err(&OK.replace("job: user_top_genres\n    depends_on", "job: no_such_job\n    depends_on"));
        assert!(e.contains("p.yaml:6") && e.contains("unknown job 'no_such_job'"), "{e}");
        let e = err(&OK.replace("{top: 5}", "{tpo: 5}"));
        assert!(e.contains("p.yaml:3") && e.contains("no parameter 'tpo'"), "{e}");
        let e = err(&OK.replace("depends_on: [a]", "depends_on: [z]"));
        assert!(e.contains("p.yaml:6") && e.contains("depends on 'z'"), "{e}");
        let e = err(&format!("{OK}    retries: 1\n").replace("name: a\n    job: user_top_genres\n", "name: a\n    job: user_top_genres\n    depends_on: [b]\n"));
        assert!(e.contains("cycle: a -> b -> a") || e.contains("cycle: b -> a -> b"), "{e}");
        let e = err(&OK.replace("{top: 5}", "{top: \"{{ nope }}\"}"));
        assert!(e.contains("unknown variable {{ nope }}"), "{e}");
        let e = err(&OK.replace("depends_on: [a]", "depends_on: [a]\n    retrys: 2"));
        assert!(e.contains("retrys") && e.contains("line"), "{e}");
        let e = err(&format!("{OK}schedule: {{cron: \"61 * * * *\"}}\n"));
        assert!(e.contains("schedule"), "{e}");
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1.5h").unwrap(), Duration::from_secs(5400));
        assert!(parse_duration("5 weeks").is_err());
    }
}
