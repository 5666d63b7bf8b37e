//! `customer_summary`: frequency, recency, T and mean repeat spend per customer from any orders
//! table, through cluster SQL, as lifetimes' `summary_data_from_transaction_data` defines them:
//!
//! - dates are floored to periods of the unit (a day, or a week starting Monday as pandas' `W`),
//!   and a customer's purchases in one period count as one, their amounts summed;
//! - frequency = the customer's periods with a purchase - 1 (repeat purchases);
//! - recency = last period - first period, T = calibration end's period - first period, both in
//!   units of (unit x multiplier): `unit=day multiplier=7` gives the fractional weeks of Fader,
//!   Hardie and Lee's CDNOW data (T = 38.86), `unit=week` whole weeks;
//! - monetary_value = mean of the per-period sums, the first period excluded; 0 without repeats.
//!
//! One difference, on purpose: purchases after the calibration end are dropped before flooring.
//! lifetimes compares floored dates, so with weeks it would keep purchases made later in the
//! calibration end's own week (its `calibration_and_holdout_data` drops them as here).
//! Rows with no customer or no time are left out and counted in the report; a negative amount is an
//! error naming the customer and date.

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail, ensure};
use backbeat_cluster::session::BackbeatSession;

use super::text_cell;
use crate::job_runner::{ReportSection, RustJobOutput};
use crate::recs::{first_row_i64, ident, require_columns, run_sql};

/// How to summarise.
#[derive(Debug, Clone)]
pub struct SummarySpec {
    /// Orders table.
    pub table: String,
    /// Customer column.
    pub customer: String,
    /// Date or timestamp column.
    pub time: String,
    /// Amount column; empty: no monetary value (0).
    pub amount: String,
    /// Last day of the calibration period, YYYY-MM-DD; empty: the table's last day.
    pub calibration_end: String,
    /// `day` or `week`.
    pub unit: String,
    /// lifetimes' freq_multiplier.
    pub multiplier: u32,
    /// Output table.
    pub out: String,
}

impl SummarySpec {
    /// From bound job parameters.
    pub fn from_params(p: &BTreeMap<String, String>) -> Result<Self> {
        let spec = Self {
            table: p["table"].clone(),
            customer: p["customer_col"].clone(),
            time: p["time_col"].clone(),
            amount: p["amount_col"].clone(),
            calibration_end: p["calibration_end"].clone(),
            unit: p["unit"].clone(),
            multiplier: p["multiplier"].parse().context("parameter multiplier")?,
            out: p["out"].clone(),
        };
        ensure!(spec.unit == "day" || spec.unit == "week", "unit must be day or week, not '{}'", spec.unit);
        ensure!(spec.multiplier >= 1, "multiplier must be at least 1");
        Ok(spec)
    }

    /// Days in one unit of the summary's times.
    pub fn unit_days(&self) -> f64 {
        (if self.unit == "week" { 7.0 } else { 1.0 }) * self.multiplier as f64
    }

    /// The unit's name as the summary records it: `day`, `week`, `day*7`...
    pub fn unit_name(&self) -> String {
        if self.multiplier == 1 { self.unit.clone() } else { format!("{}*{}", self.unit, self.multiplier) }
    }
}

/// Days since 1970-01-01 of a date or timestamp expression.
fn day_expr(column: &str) -> String {
    format!("CAST(arrow_cast(CAST({column} AS DATE), 'Int32') AS BIGINT)")
}

/// The period (its first day) of a day-number expression: itself, or the Monday on or before it
/// (1970-01-01 was a Thursday).
fn period_expr(day: &str, unit: &str) -> String {
    if unit == "week" { format!("({day} - ((({day} + 3) % 7) + 7) % 7)") } else { day.to_string() }
}

/// Writes the summary; returns (customers, rows used, rows left out without customer or time,
/// rows after the calibration end, the calibration end as YYYY-MM-DD).
pub async fn summarize(session: &BackbeatSession, spec: &SummarySpec) -> Result<(i64, i64, i64, i64, String)> {
    let mut columns = vec![spec.customer.as_str(), spec.time.as_str()];
    if !spec.amount.is_empty() {
        columns.push(&spec.amount);
    }
    require_columns(session, &spec.table, &columns).await?;
    let (table, cust, time) = (&spec.table, ident(&spec.customer)?, ident(&spec.time)?);
    let amount = if spec.amount.is_empty() { "0.0".to_string() } else { format!("CAST({} AS DOUBLE)", ident(&spec.amount)?) };
    let day = day_expr(&time);
    let valid = format!("{cust} IS NOT NULL AND {time} IS NOT NULL");
    let end_day = if spec.calibration_end.is_empty() {
        let last = first_row_i64(session, &format!("SELECT max({day}) AS d FROM {table} WHERE {valid}")).await?;
        if last.is_empty() || first_row_i64(session, &format!("SELECT count(*) AS n FROM {table} WHERE {valid}")).await?[0] == 0 {
            bail!("table '{table}' has no rows with both {} and {}: nothing to summarise", spec.customer, spec.time);
        }
        last[0].to_string()
    } else {
        chrono::NaiveDate::parse_from_str(&spec.calibration_end, "%Y-%m-%d")
            .with_context(|| format!("calibration_end '{}' is not a date YYYY-MM-DD", spec.calibration_end))?;
        day_expr(&format!("DATE '{}'", spec.calibration_end))
    };
    let counts = first_row_i64(session, &format!(
        "SELECT count(*) AS all_rows, \
                count(*) FILTER (WHERE NOT ({valid})) AS missing, \
                count(*) FILTER (WHERE {valid} AND {day} > {end_day}) AS late, \
                count(*) FILTER (WHERE {valid} AND {day} <= {end_day} AND {amount} < 0) AS negative \
         FROM {table}"
    ))
    .await?;
    let (all, missing, late, negative) = (counts[0], counts[1], counts[2], counts[3]);
    if negative > 0 {
        let rows = run_sql(session, &format!(
            "SELECT CAST({cust} AS VARCHAR) AS c, CAST({time} AS VARCHAR) AS t, {amount} AS a FROM {table} \
             WHERE {valid} AND {day} <= {end_day} AND {amount} < 0 LIMIT 1"
        ))
        .await?;
        let b = rows.iter().find(|b| b.num_rows() > 0).context("negative row vanished")?;
        let s = |i: usize| text_cell(b, i, 0);
        bail!(
            "table '{table}': {negative} rows have a negative {} (first: customer {} at {}); net refunds against their orders \
             before summarising, the spend model needs amounts >= 0",
            spec.amount, s(0), s(1)
        );
    }
    let used = all - missing - late;
    ensure!(used > 0, "table '{table}' has no purchases on or before the calibration end ({} rows after it)", late);
    let period = period_expr("day", &spec.unit);
    let end_period = period_expr(&end_day, &spec.unit);
    let len = if spec.unit == "week" { 7 * spec.multiplier } else { spec.multiplier };
    let out = &spec.out;
    run_sql(session, &format!(
        "CREATE OR REPLACE TABLE {out} AS \
         WITH tx AS ( \
           SELECT customer_id, {period} AS period, min(day) AS first_day, max(day) AS last_day, sum(amount) AS amount \
           FROM (SELECT {cust} AS customer_id, {day} AS day, {amount} AS amount FROM {table} WHERE {valid}) \
           WHERE day <= {end_day} GROUP BY 1, 2) \
         SELECT customer_id, \
           CAST(count(*) - 1 AS DOUBLE) AS frequency, \
           CAST(max(period) - min(period) AS DOUBLE) / {len} AS recency, \
           CAST({end_period} - min(period) AS DOUBLE) / {len} AS \"T\", \
           CASE WHEN count(*) > 1 THEN (sum(amount) - first_value(amount ORDER BY period)) / CAST(count(*) - 1 AS DOUBLE) ELSE 0.0 END AS monetary_value, \
           arrow_cast(CAST(min(first_day) AS INT), 'Date32') AS first_purchase, \
           arrow_cast(CAST(max(last_day) AS INT), 'Date32') AS last_purchase, \
           arrow_cast(CAST({end_day} AS INT), 'Date32') AS as_of, \
           '{}' AS unit, CAST({} AS DOUBLE) AS unit_days \
         FROM tx GROUP BY customer_id",
        spec.unit_name(),
        spec.unit_days()
    ))
    .await?;
    let customers = first_row_i64(session, &format!("SELECT count(*) AS n FROM {out}")).await?[0];
    let end = run_sql(session, &format!("SELECT CAST(max(as_of) AS VARCHAR) AS d FROM {out}")).await?;
    let end = end.iter().find(|b| b.num_rows() > 0).map(|b| text_cell(b, 0, 0)).unwrap_or_default();
    Ok((customers, used, missing, late, end))
}

/// The `customer_summary` job.
pub async fn run(session: &BackbeatSession, params: &BTreeMap<String, String>) -> Result<RustJobOutput> {
    let spec = SummarySpec::from_params(params)?;
    let (customers, used, missing, late, end) = summarize(session, &spec).await?;
    let report = run_sql(session, &format!(
        "SELECT count(*) AS customers, sum(CASE WHEN frequency > 0 THEN 1 ELSE 0 END) AS repeat_customers, \
         round(avg(frequency), 3) AS mean_frequency, round(max(\"T\"), 3) AS max_t, round(avg(CASE WHEN frequency > 0 THEN monetary_value END), 2) AS mean_repeat_spend \
         FROM {}",
        spec.out
    ))
    .await?;
    Ok(RustJobOutput {
        report: vec![ReportSection::from_batches(
            format!(
                "{customers} customers from {used} purchases up to {end} in {} (unit {}); left out: {missing} rows without customer or time, {late} after the calibration end",
                spec.out,
                spec.unit_name()
            ),
            report,
        )],
        rows_written: customers as u64,
    })
}
