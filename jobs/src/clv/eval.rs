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

    let metrics = format!(
        "WITH c AS (SELECT * FROM {per_customer}), \
         n AS (SELECT CAST(sum(CASE WHEN buys THEN 1 ELSE 0 END) AS DOUBLE) AS pos, CAST(sum(CASE WHEN buys THEN 0 ELSE 1 END) AS DOUBLE) AS neg FROM c), \
         rb AS (SELECT buys, rank() OVER (ORDER BY p_buy) + (count(*) OVER (PARTITION BY p_buy) - 1) / 2.0 AS rk FROM c), \
         rs AS (SELECT buys, rank() OVER (ORDER BY baseline_score) + (count(*) OVER (PARTITION BY baseline_score) - 1) / 2.0 AS rk FROM c), \
         m AS ( \
           SELECT 'bgnbd' AS model, 'holdout_purchases_mae' AS metric, avg(abs(predicted - actual)) AS value FROM c \
           UNION ALL SELECT 'bgnbd', 'holdout_purchases_total', sum(predicted) FROM c \
           UNION ALL SELECT 'actual', 'holdout_purchases_total', sum(actual) FROM c \
           UNION ALL SELECT 'bgnbd', 'window_precision', CAST(sum(CASE WHEN p_buy >= {threshold} AND buys THEN 1 ELSE 0 END) AS DOUBLE) / NULLIF(sum(CASE WHEN p_buy >= {threshold} THEN 1 ELSE 0 END), 0) FROM c \
           UNION ALL SELECT 'bgnbd', 'window_recall', CAST(sum(CASE WHEN p_buy >= {threshold} AND buys THEN 1 ELSE 0 END) AS DOUBLE) / NULLIF(sum(CASE WHEN buys THEN 1 ELSE 0 END), 0) FROM c \
           UNION ALL SELECT 'bgnbd', 'window_auc', (sum(CASE WHEN buys THEN rk END) - max(n.pos) * (max(n.pos) + 1) / 2) / NULLIF(max(n.pos) * max(n.neg), 0) FROM rb, n \
           UNION ALL SELECT 'baseline', 'window_precision', CAST(sum(CASE WHEN baseline_score = 0 AND buys THEN 1 ELSE 0 END) AS DOUBLE) / NULLIF(sum(CASE WHEN baseline_score = 0 THEN 1 ELSE 0 END), 0) FROM c \
           UNION ALL SELECT 'baseline', 'window_recall', CAST(sum(CASE WHEN baseline_score = 0 AND buys THEN 1 ELSE 0 END) AS DOUBLE) / NULLIF(sum(CASE WHEN buys THEN 1 ELSE 0 END), 0) FROM c \
           UNION ALL SELECT 'baseline', 'window_auc', (sum(CASE WHEN buys THEN rk END) - max(n.pos) * (max(n.pos) + 1) / 2) / NULLIF(max(n.pos) * max(n.neg), 0) FROM rs, n \
           UNION ALL SELECT 'actual', 'window_buyers', max(n.pos) FROM n \
           UNION ALL SELECT 'bgnbd', 'window_expected_buyers', sum(p_buy) FROM c) \
         SELECT model, metric, CAST(value AS DOUBLE) AS value FROM m"
    );
    run_sql(session, &format!("CREATE OR REPLACE TABLE {out} AS {metrics}")).await?;
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
