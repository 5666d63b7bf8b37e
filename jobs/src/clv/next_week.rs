//! `next_week_buyers`: seed 002's deliverable, the customers expected to buy within 7 days, for the
//! marketing team, in MongoDB (or PostgreSQL). From `customer_predictions`: those whose BG/NBD
//! probability of a purchase in the window passes `threshold` (or the `top` N), with expected
//! spend. Beside it, seed 002's own baseline for every selected customer: next order date = last
//! order + the customer's mean interval between orders, and whether that date falls in the window.

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail, ensure};
use backbeat_cluster::session::BackbeatSession;
use backbeat_connectors::export::{ExportOptions, export_table, target_for};

use crate::job_runner::{ReportSection, RustJobOutput};
use crate::recs::{first_row_i64, require_columns, run_sql};

/// The baseline's predicted next order (NULL without a repeat purchase), as a SQL expression over
/// a summary's first_purchase, last_purchase and frequency: last + (last - first) / repeats days.
pub fn baseline_next_order_sql() -> &'static str {
    "CASE WHEN frequency > 0 THEN arrow_cast(CAST(arrow_cast(last_purchase, 'Int32') + \
     round(CAST(arrow_cast(last_purchase, 'Int32') - arrow_cast(first_purchase, 'Int32') AS DOUBLE) / frequency) AS INT), 'Date32') END"
}

/// The `next_week_buyers` job.
pub async fn run(session: &BackbeatSession, params: &BTreeMap<String, String>) -> Result<RustJobOutput> {
    let predictions = params["predictions"].as_str();
    let out = params["out"].as_str();
    let threshold: f64 = params["threshold"].parse().context("parameter threshold")?;
    let top: i64 = params["top"].parse().context("parameter top")?;
    let window: i64 = params["window_days"].parse().context("parameter window_days")?;
    ensure!((0.0..=1.0).contains(&threshold), "threshold is a probability, between 0 and 1; got {threshold}");
    ensure!(top >= 0 && window >= 1, "top must be >= 0 and window_days >= 1");
    require_columns(session, predictions, &["customer_id", "p_buy", "expected_purchases_window", "expected_spend", "frequency", "first_purchase", "last_purchase", "as_of"])
        .await
        .context("run clv_predict first: next_week_buyers reads its output")?;
    let select = if top > 0 { format!("ORDER BY p_buy DESC, customer_id LIMIT {top}") } else { format!("WHERE p_buy >= {threshold}") };
    let as_of_day = "arrow_cast(as_of, 'Int32')";
    run_sql(session, &format!(
        "CREATE OR REPLACE TABLE {out} AS \
         SELECT customer_id, p_buy, expected_purchases_window, expected_spend, \
                expected_purchases_window * expected_spend AS expected_spend_window, p_alive, last_purchase, \
                baseline_next_order, \
                COALESCE(arrow_cast(baseline_next_order, 'Int32') > {as_of_day} AND arrow_cast(baseline_next_order, 'Int32') <= {as_of_day} + {window}, false) AS baseline_buys, \
                as_of \
         FROM (SELECT *, {} AS baseline_next_order FROM {predictions}) {select}",
        baseline_next_order_sql()
    ))
    .await?;
    let counts = first_row_i64(session, &format!(
        "SELECT (SELECT count(*) FROM {out}) AS selected, \
                (SELECT count(*) FROM {out} WHERE baseline_buys) AS baseline_agrees, \
                (SELECT count(*) FROM (SELECT {} AS n, {as_of_day} AS d FROM {predictions}) \
                   WHERE arrow_cast(n, 'Int32') > d AND arrow_cast(n, 'Int32') <= d + {window}) AS baseline_selects",
        baseline_next_order_sql()
    ))
    .await?;
    let mut sections = vec![];
    if let Some(url) = params.get("export_to").filter(|u| !u.is_empty()) {
        if !(url.starts_with("mongodb://") || url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            bail!("export_to must be a mongodb:// or postgres:// URL (seed 002 keeps next week's buyers in MongoDB), not '{url}'");
        }
        let options = ExportOptions { name: Some(out.to_string()), key: vec!["customer_id".into()], ..Default::default() };
        let target = target_for(url, out, &options)?;
        let report = export_table(session, out, None, &target, false).await.with_context(|| format!("exporting {out}"))?;
        tracing::info!(rows = report.rows, target = %report.target, "next week's buyers exported");
        let batches = run_sql(session, &format!("SELECT '{}' AS target, CAST({} AS BIGINT) AS rows_exported", report.target.replace('\'', "''"), report.rows)).await?;
        sections.push(ReportSection::from_batches("export", batches));
    }
    let summary = run_sql(session, &format!(
        "SELECT count(*) AS buyers, round(sum(p_buy), 1) AS expected_buyers, round(sum(expected_spend_window), 2) AS expected_spend, \
         CAST({} AS BIGINT) AS baseline_buyers, CAST({} AS BIGINT) AS both_select FROM {out}",
        counts[2], counts[1]
    ))
    .await?;
    sections.insert(0, ReportSection::from_batches(
        if top > 0 { format!("{out}: the top {top} customers by P(buy in {window} days)") } else { format!("{out}: customers with P(buy in {window} days) >= {threshold}") },
        summary,
    ));
    Ok(RustJobOutput { report: sections, rows_written: counts[0] as u64 })
}
