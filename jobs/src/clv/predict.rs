//! `clv_predict`: per customer, from a fitted model, P(alive), expected purchases over a horizon,
//! the probability of at least one purchase in the next 7 days, expected spend per purchase and
//! the discounted lifetime value: `customer_predictions`. The predictions run in `clv_predict`
//! tasks over partitions of the summary ([`super::kernels`]).

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail, ensure};
use backbeat_cluster::map_partitions::map_partitions;
use backbeat_cluster::session::{BackbeatSession, WriteMode};

use super::bgnbd::BgNbd;
use super::gamma_gamma::GammaGamma;
use super::kernels::{CLV_PREDICT, PredictArgs};
use super::{f64_cells, text_cell};
use crate::job_runner::{ReportSection, RustJobOutput};
use crate::recs::{first_row_i64, run_sql};

/// A fitted pair of models as `clv_model` holds them.
#[derive(Debug, Clone)]
pub struct FittedModels {
    /// Shared id of the rows.
    pub model_id: String,
    /// Purchases.
    pub bgnbd: BgNbd,
    /// Spend, when fitted.
    pub spend: Option<GammaGamma>,
}

/// The fit `model_id` of `model_table`, or with an empty id the latest fit of `summary`.
pub async fn load_models(session: &BackbeatSession, model_table: &str, summary: &str, model_id: &str) -> Result<FittedModels> {
    ensure!(session.lake().table_format(model_table).await?.is_some(), "no model table '{model_table}' in the lake: run clv_fit first");
    // The latest fit is looked up first and matched as a literal: Ballista 55 answered the same as
    // one statement, `model_id = (SELECT ... ORDER BY fitted_at DESC LIMIT 1)`, with no rows once
    // the table had two files (intermittently on the 2-executor cluster; the ignored test
    // `scalar_subquery_over_a_two_file_table_finds_the_latest_row` reproduces it).
    let model_id = if model_id.is_empty() {
        let latest = run_sql(session, &format!(
            "SELECT model_id FROM {model_table} WHERE summary_table = '{}' ORDER BY fitted_at DESC LIMIT 1",
            summary.replace('\'', "''")
        ))
        .await?;
        latest.iter().find(|b| b.num_rows() > 0).map(|b| text_cell(b, 0, 0)).unwrap_or_default()
    } else {
        model_id.to_string()
    };
    let model_id = model_id.as_str();
    let which = format!("model_id = '{}'", model_id.replace('\'', "''"));
    let batches = run_sql(session, &format!("SELECT model_id, model, r, alpha, a, b, p, q, v FROM {model_table} WHERE {which} ORDER BY model")).await?;
    let mut found = None;
    let mut spend = None;
    let mut id = String::new();
    for batch in batches.iter().filter(|b| b.num_rows() > 0) {
        let cells = |row: usize| -> Result<Vec<f64>> { (2..9).map(|c| Ok(f64_cells(batch, c)?[row].unwrap_or(f64::NAN))).collect() };
        for row in 0..batch.num_rows() {
            id = text_cell(batch, 0, row);
            let v = cells(row)?;
            match text_cell(batch, 1, row).as_str() {
                "bgnbd" => found = Some(BgNbd { r: v[0], alpha: v[1], a: v[2], b: v[3] }),
                "gamma_gamma" => spend = Some(GammaGamma { p: v[4], q: v[5], v: v[6] }),
                other => bail!("{model_table}: unknown model '{other}'"),
            }
        }
    }
    let Some(bgnbd) = found else {
        if model_id.is_empty() {
            bail!("{model_table} has no BG/NBD fit of '{summary}': run clv_fit with summary={summary}");
        }
        bail!("{model_table} has no BG/NBD model with id {model_id}");
    };
    Ok(FittedModels { model_id: id, bgnbd, spend })
}

/// The summary's unit: its name and days per unit.
pub async fn summary_unit(session: &BackbeatSession, summary: &str) -> Result<(String, f64)> {
    let batches = run_sql(session, &format!("SELECT unit, unit_days FROM {summary} LIMIT 1")).await.with_context(|| {
        format!("'{summary}' does not look like a customer summary (it needs the unit and unit_days columns customer_summary writes)")
    })?;
    let batch = batches.iter().find(|b| b.num_rows() > 0).with_context(|| format!("summary '{summary}' is empty"))?;
    Ok((text_cell(batch, 0, 0), f64_cells(batch, 1)?[0].unwrap_or(1.0)))
}

/// Periods of the summary's unit per month, as lifetimes counts them: 30 for days, 4.345 for
/// weeks (whole weeks, or days reported as weeks: lifetimes' CLV only knows `freq` D and W).
pub fn periods_per_month(unit: &str, unit_days: f64) -> f64 {
    if unit.starts_with("week") || unit_days == 7.0 { 4.345 * 7.0 / unit_days } else { 30.0 / unit_days }
}

/// What to predict.
#[derive(Debug, Clone)]
pub struct PredictSpec {
    /// Summary table.
    pub summary: String,
    /// Model table.
    pub model_table: String,
    /// Model id; empty: the latest fit of the summary.
    pub model_id: String,
    /// Horizon of expected_purchases, days.
    pub horizon_days: f64,
    /// Window of p_buy, days.
    pub window_days: f64,
    /// Lifetime value months.
    pub clv_months: u32,
    /// Monthly discount rate.
    pub discount_rate: f64,
    /// Output table.
    pub out: String,
}

impl PredictSpec {
    /// From bound job parameters.
    pub fn from_params(p: &BTreeMap<String, String>) -> Result<Self> {
        let num = |k: &str| -> Result<f64> { p[k].parse().with_context(|| format!("parameter {k}")) };
        let spec = Self {
            summary: p["summary"].clone(),
            model_table: p["model_table"].clone(),
            model_id: p["model_id"].clone(),
            horizon_days: num("horizon_days")?,
            window_days: num("window_days")?,
            clv_months: num("clv_months")? as u32,
            discount_rate: num("discount_rate")?,
            out: p["out"].clone(),
        };
        ensure!(spec.horizon_days >= 0.0 && spec.window_days >= 0.0, "horizon_days and window_days must be >= 0");
        ensure!(spec.discount_rate > -1.0, "discount_rate must be above -1");
        Ok(spec)
    }
}

/// Writes the predictions; returns the rows written and the model used.
pub async fn predict(session: &BackbeatSession, spec: &PredictSpec) -> Result<(u64, FittedModels)> {
    let models = load_models(session, &spec.model_table, &spec.summary, &spec.model_id).await?;
    let (unit, unit_days) = summary_unit(session, &spec.summary).await?;
    let args = PredictArgs {
        bgnbd: models.bgnbd,
        spend: models.spend,
        horizon: spec.horizon_days / unit_days,
        buy_window: spec.window_days / unit_days,
        clv_months: spec.clv_months,
        periods_per_month: periods_per_month(&unit, unit_days),
        discount_rate: spec.discount_rate,
    };
    let input = session.context().sql(&format!("SELECT *, '{}' AS model_id FROM {}", models.model_id, spec.summary)).await?;
    let df = map_partitions(input, CLV_PREDICT, &serde_json::to_value(&args)?, &[])?;
    session.write_table(df, &spec.out, WriteMode::CreateOrReplace, &[]).await?.collect().await.with_context(|| format!("writing {}", spec.out))?;
    let counts = first_row_i64(session, &format!(
        "SELECT (SELECT count(*) FROM {}) AS customers, (SELECT count(*) FROM {}) AS predicted, \
         (SELECT count(*) FROM {} WHERE p_alive IS NULL OR expected_purchases IS NULL OR p_buy IS NULL) AS undefined",
        spec.summary, spec.out, spec.out
    ))
    .await?;
    ensure!(counts[0] == counts[1], "{} has {} rows but {} has {}: predictions were lost", spec.out, counts[1], spec.summary, counts[0]);
    if counts[2] > 0 {
        tracing::warn!(customers = counts[2], "predictions left NULL where the model's formulas are undefined (a = 1, or a series that does not settle)");
    }
    Ok((counts[1] as u64, models))
}

/// The `clv_predict` job.
pub async fn run(session: &BackbeatSession, params: &BTreeMap<String, String>) -> Result<RustJobOutput> {
    let spec = PredictSpec::from_params(params)?;
    let (rows, models) = predict(session, &spec).await?;
    let report = run_sql(session, &format!(
        "SELECT count(*) AS customers, round(avg(p_alive), 4) AS mean_p_alive, round(sum(expected_purchases), 1) AS expected_purchases, \
         round(sum(p_buy), 1) AS expected_buyers_in_window, round(sum(clv), 2) AS total_clv FROM {}",
        spec.out
    ))
    .await?;
    let b = models.bgnbd;
    Ok(RustJobOutput {
        report: vec![ReportSection::from_batches(
            format!(
                "{} from model {} (r={:.4}, alpha={:.4}, a={:.4}, b={:.4}); horizon {} days, window {} days",
                spec.out, models.model_id, b.r, b.alpha, b.a, b.b, spec.horizon_days, spec.window_days
            ),
            report,
        )],
        rows_written: rows,
    })
}
