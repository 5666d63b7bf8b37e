//! `clv_eval`: how well the fitted models predict a period they did not see. The orders are cut at
//! the calibration end: the summary, the fit and the predictions use what came before, and the
//! holdout (calibration end, holdout end] gives the truth:
//!
//! - purchases: predicted expected purchases over the holdout against each customer's actual
//!   purchase periods in it: mean absolute error, totals, and means by calibration frequency (the
//!   paper's Figure 4 as a table);
//! - "buys in the next `window_days`": BG/NBD's probability against the seed-002 baseline (next
//!   order = last order + the customer's mean interval; scored by how far that date is from the
//!   window), as precision and recall at their decisions (BG/NBD's `threshold`) and ROC AUC
//!   (Mann-Whitney, ties averaged).
//!
//! Results: `<out>(model, metric, value)`, `<out>_by_frequency(frequency, customers, predicted,
//! actual)` and the per-customer `<out>_customers`.

use std::collections::BTreeMap;

use anyhow::{Context, Result, ensure};
use backbeat_cluster::session::BackbeatSession;

use super::fit::fit_summary;
use super::next_week::baseline_next_order_sql;
use super::predict::{PredictSpec, predict};
use super::summary::{SummarySpec, summarize};
use super::{f64_cells, text_cell};
use crate::job_runner::{ReportSection, RustJobOutput};
use crate::recs::{first_row_i64, ident, run_sql};

/// The first row of a query as f64s (NULL as NaN).
async fn f64_row(session: &BackbeatSession, sql: &str) -> Result<Vec<f64>> {
    let batches = run_sql(session, sql).await?;
    let batch = batches.iter().find(|b| b.num_rows() > 0).context("an aggregate returned no row")?;
    (0..batch.num_columns()).map(|c| Ok(f64_cells(batch, c)?[0].unwrap_or(f64::NAN))).collect()
}

/// The `clv_eval` job.
pub async fn run(session: &BackbeatSession, params: &BTreeMap<String, String>) -> Result<RustJobOutput> {
    let out = params["out"].clone();
    ensure!(!params["calibration_end"].is_empty(), "clv_eval needs calibration_end (YYYY-MM-DD): the day the holdout starts after");
    let mut spec = SummarySpec::from_params(params)?;
    spec.out = format!("{out}_summary");
    let window: i64 = params["window_days"].parse().context("parameter window_days")?;
    let threshold: f64 = params["threshold"].parse().context("parameter threshold")?;
    let penalizer: f64 = params["penalizer"].parse().context("parameter penalizer")?;
    let (customers, ..) = summarize(session, &spec).await?;
    let (table, cust, time) = (&spec.table, ident(&spec.customer)?, ident(&spec.time)?);
    let day = format!("CAST(arrow_cast(CAST({time} AS DATE), 'Int32') AS BIGINT)");
    let cal_day = format!("CAST(arrow_cast(DATE '{}', 'Int32') AS BIGINT)", spec.calibration_end);
    let holdout_end_day = if params["holdout_end"].is_empty() {
        first_row_i64(session, &format!("SELECT max({day}) AS d FROM {table} WHERE {cust} IS NOT NULL AND {time} IS NOT NULL")).await?[0].to_string()
    } else {
        format!("CAST(arrow_cast(DATE '{}', 'Int32') AS BIGINT)", params["holdout_end"])
    };
    let lengths = first_row_i64(session, &format!("SELECT {holdout_end_day} - {cal_day} AS holdout_days")).await?;
    let holdout_days = lengths[0];
    ensure!(holdout_days >= window, "the holdout ({holdout_days} days after {}) must be at least window_days ({window}) long", spec.calibration_end);

    let model_table = format!("{out}_model");
    let fit = fit_summary(session, &spec.out, &model_table, penalizer, 500, None).await?;
    let predictions = format!("{out}_predictions");
    let pspec = PredictSpec {
        summary: spec.out.clone(),
        model_table: model_table.clone(),
        model_id: fit.model_id.clone(),
        horizon_days: holdout_days as f64,
        window_days: window as f64,
        clv_months: 12,
        discount_rate: 0.01,
        out: predictions.clone(),
    };
    predict(session, &pspec).await?;

    // Truth per calibration customer: purchase periods in the holdout, and any purchase in the window.
    let unit = if spec.unit == "week" { "week" } else { "day" };
    let period = if unit == "week" { "(day - (((day + 3) % 7) + 7) % 7)" } else { "day" };
    let per_customer = format!("{out}_customers");
    run_sql(session, &format!(
        "CREATE OR REPLACE TABLE {per_customer} AS \
         WITH h AS (SELECT {cust} AS customer_id, {day} AS day FROM {table} \
                    WHERE {cust} IS NOT NULL AND {time} IS NOT NULL AND {day} > {cal_day} AND {day} <= {holdout_end_day}), \
              actual AS (SELECT customer_id, CAST(count(DISTINCT {period}) AS DOUBLE) AS actual, \
                                bool_or(day <= {cal_day} + {window}) AS buys FROM h GROUP BY customer_id), \
              p AS (SELECT *, {} AS next_order FROM {predictions}) \
         SELECT p.customer_id, p.frequency, p.expected_purchases AS predicted, COALESCE(a.actual, 0.0) AS actual, \
                p.p_buy, COALESCE(a.buys, false) AS buys, \
                CASE WHEN next_order IS NULL THEN -1e9 \
                     WHEN arrow_cast(next_order, 'Int32') <= {cal_day} THEN -CAST({cal_day} + 1 - arrow_cast(next_order, 'Int32') AS DOUBLE) \
                     WHEN arrow_cast(next_order, 'Int32') <= {cal_day} + {window} THEN 0.0 \
                     ELSE -CAST(arrow_cast(next_order, 'Int32') - {cal_day} - {window} AS DOUBLE) END AS baseline_score \
         FROM p LEFT JOIN actual a ON p.customer_id = a.customer_id",
        baseline_next_order_sql()
    ))
    .await?;

    // Each metric from single-row aggregates: one statement of UNION ALLs over the shared CTE came
    // back from Ballista 55 with every row repeated.
    let sums = f64_row(session, &format!(
        "SELECT avg(abs(predicted - actual)), sum(predicted), sum(actual), sum(p_buy), \
                sum(CASE WHEN buys THEN 1 ELSE 0 END), sum(CASE WHEN buys THEN 0 ELSE 1 END), \
                sum(CASE WHEN p_buy >= {threshold} THEN 1 ELSE 0 END), sum(CASE WHEN p_buy >= {threshold} AND buys THEN 1 ELSE 0 END), \
                sum(CASE WHEN baseline_score = 0 THEN 1 ELSE 0 END), sum(CASE WHEN baseline_score = 0 AND buys THEN 1 ELSE 0 END) \
         FROM {per_customer}"
    ))
    .await?;
    let [mae, predicted, actual, expected_buyers, pos, neg, bg_sel, bg_hit, base_sel, base_hit] = sums[..] else { unreachable!("10 columns") };
    let auc = async |score: &str| -> Result<f64> {
        let ranks = f64_row(session, &format!(
            "SELECT sum(CASE WHEN buys THEN rk END) FROM (SELECT buys, rank() OVER (ORDER BY {score}) + (count(*) OVER (PARTITION BY {score}) - 1) / 2.0 AS rk FROM {per_customer})"
        ))
        .await?;
        Ok((ranks[0] - pos * (pos + 1.0) / 2.0) / (pos * neg))
    };
    // BG/NBD's top-N by P(buy), N = the number who bought: its precision equals its recall there.
    let top = f64_row(session, &format!(
        "SELECT CAST(sum(CASE WHEN buys THEN 1 ELSE 0 END) AS DOUBLE) FROM (SELECT buys FROM {per_customer} ORDER BY p_buy DESC, customer_id LIMIT {})",
        pos as i64
    ))
    .await?;
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::NAN };
    let rows = [
        ("bgnbd", "holdout_purchases_mae", mae),
        ("bgnbd", "holdout_purchases_total", predicted),
        ("actual", "holdout_purchases_total", actual),
        ("actual", "window_buyers", pos),
        ("bgnbd", "window_expected_buyers", expected_buyers),
        ("bgnbd", "window_precision", ratio(bg_hit, bg_sel)),
        ("bgnbd", "window_recall", ratio(bg_hit, pos)),
        ("bgnbd", "window_precision_at_buyers", ratio(top[0], pos)),
        ("bgnbd", "window_auc", auc("p_buy").await?),
        ("baseline", "window_precision", ratio(base_hit, base_sel)),
        ("baseline", "window_recall", ratio(base_hit, pos)),
        ("baseline", "window_auc", auc("baseline_score").await?),
    ];
    let values: Vec<String> = rows.iter().map(|(m, k, v)| format!("('{m}', '{k}', {})", if v.is_finite() { format!("{v:e}") } else { "NULL".into() })).collect();
    run_sql(session, &format!(
        "CREATE OR REPLACE TABLE {out} AS SELECT column1 AS model, column2 AS metric, CAST(column3 AS DOUBLE) AS value FROM (VALUES {})",
        values.join(", ")
    ))
    .await?;
    run_sql(session, &format!(
        "CREATE OR REPLACE TABLE {out}_by_frequency AS \
         SELECT CASE WHEN frequency >= 7 THEN '7+' ELSE CAST(CAST(frequency AS BIGINT) AS VARCHAR) END AS frequency, \
                count(*) AS customers, avg(predicted) AS predicted, avg(actual) AS actual \
         FROM {per_customer} GROUP BY 1"
    ))
    .await?;

    let table_rows = run_sql(session, &format!("SELECT model, metric, round(value, 4) AS value FROM {out} ORDER BY metric, model")).await?;
    let by_frequency = run_sql(session, &format!(
        "SELECT frequency, customers, round(predicted, 3) AS predicted, round(actual, 3) AS actual FROM {out}_by_frequency ORDER BY length(frequency), frequency"
    ))
    .await?;
    let b = fit.bgnbd.params;
    let mut title = format!(
        "{customers} customers, calibration to {}, holdout {holdout_days} days; BG/NBD r={:.4} alpha={:.4} a={:.4} b={:.4}",
        spec.calibration_end, b.r, b.alpha, b.a, b.b
    );
    if let Some(batch) = table_rows.iter().find(|b| b.num_rows() > 0) {
        let auc = (0..batch.num_rows()).find(|&i| text_cell(batch, 0, i) == "bgnbd" && text_cell(batch, 1, i) == "window_auc");
        if let Some(i) = auc {
            title.push_str(&format!("; AUC (buys within {window} days) {:.4}", f64_cells(batch, 2)?[i].unwrap_or(f64::NAN)));
        }
    }
    Ok(RustJobOutput {
        report: vec![ReportSection::from_batches(title, table_rows), ReportSection::from_batches("holdout purchases by calibration frequency", by_frequency)],
        rows_written: customers as u64,
    })
}
