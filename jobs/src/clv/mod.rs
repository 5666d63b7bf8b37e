//! Next-order prediction (seed 002): "buy till you die" customer models on the cluster. BG/NBD
//! (Fader, Hardie and Lee 2005) for when and whether customers buy again, Gamma-Gamma for how much,
//! the two together for lifetime value; the customers expected to buy next week exported for
//! marketing. One file per step, each a catalogue job; likelihoods and predictions run as
//! partition kernels on the executors ([`kernels`]), the optimiser on the client asks the cluster
//! for one likelihood sum per step.

use std::sync::Arc;

use anyhow::Result;
use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Float64Type};
use arrow::record_batch::RecordBatch;
use backbeat_cluster::map_partitions::register_kernel;

use crate::job_catalogue::Job;
use crate::job_params::{ParamSpec, ParamType as T};

/// The BG/NBD likelihood, gradient and predictions.
pub mod bgnbd;
/// Holdout evaluation against the seed-002 baseline (`clv_eval`).
pub mod eval;
/// Maximum-likelihood fits on the cluster (`clv_fit`).
pub mod fit;
/// The fit run inside one executor task.
pub mod fit_task;
/// The Gamma-Gamma spend model.
pub mod gamma_gamma;
/// The likelihood-sum and prediction partition kernels.
pub mod kernels;
/// Customers expected to buy within a week, exported (`next_week_buyers`).
pub mod next_week;
/// Per-customer predictions (`clv_predict`).
pub mod predict;
/// lnΓ, digamma and the Gauss hypergeometric function.
pub mod special;
/// Frequency, recency, T and spend per customer (`customer_summary`).
pub mod summary;

/// Registers the customer-model kernels in this process.
pub fn register_kernels() {
    register_kernel(Arc::new(kernels::LoglikKernel));
    register_kernel(Arc::new(kernels::PredictKernel));
    register_kernel(Arc::new(fit_task::FitTaskKernel));
}

/// The customer-model jobs of the catalogue.
pub fn catalogue_jobs() -> Vec<Job> {
    let p = ParamSpec::with_default;
    let orders = || {
        vec![
            p("table", T::Table, "order_totals", "orders: one row per order (or order line) with customer, time and amount"),
            p("customer_col", T::Text, "customer_id", "customer column"),
            p("time_col", T::Text, "order_ts", "order date or timestamp column"),
            p("amount_col", T::Text, "amount", "order amount column (empty: no spend model)"),
            p("unit", T::Text, "day", "time unit: day, or week (Monday-based, as pandas' W)"),
            p("multiplier", T::Int, "1", "lifetimes' freq_multiplier: unit=day multiplier=7 counts days and reports weeks (the CDNOW paper's T = 38.86)"),
        ]
    };
    let mut summary = orders();
    summary.extend([
        p("calibration_end", T::Text, "", "last day of the calibration period, YYYY-MM-DD (empty: the table's last day)"),
        p("out", T::Table, "customer_summary", "output: customer_id, frequency, recency, T, monetary_value, first/last purchase, as_of, unit"),
    ]);
    let mut eval = orders();
    eval.extend([
        p("calibration_end", T::Text, "", "last day of the calibration period, YYYY-MM-DD (required)"),
        p("holdout_end", T::Text, "", "last day of the holdout, YYYY-MM-DD (empty: the table's last day)"),
        p("penalizer", T::Float, "0", "L2 penalty, as lifetimes' penalizer_coef"),
        p("window_days", T::Int, "7", "the 'buys within' window after the calibration end"),
        p("threshold", T::Float, "0.5", "P(buy in window) at which BG/NBD says 'buys'"),
        p("out", T::Table, "clv_eval", "output: <out>(model, metric, value), <out>_by_frequency, <out>_customers"),
    ]);
    let model = || {
        vec![
            p("summary", T::Table, "customer_summary", "customer summary from customer_summary"),
            p("model_table", T::Table, "clv_model", "fitted models, one row per model and fit"),
        ]
    };
    let mut fit = model();
    fit.extend([
        p("penalizer", T::Float, "0", "L2 penalty on the parameters (lifetimes' penalizer_coef: added to the mean negative log-likelihood)"),
        p("max_iterations", T::Int, "500", "BFGS iterations at most"),
        p("placement", T::Text, "auto", "task: the optimiser inside one executor task; distributed: one cluster job per evaluation; auto: task up to 5M rows of statistics"),
    ]);
    let mut predict = model();
    predict.extend([
        p("model_id", T::Text, "", "model to use (empty: the latest fit of the summary)"),
        p("horizon_days", T::Float, "30", "horizon of expected_purchases, days"),
        p("window_days", T::Float, "7", "window of p_buy (P(at least one purchase)), days"),
        p("clv_months", T::Int, "12", "months of the lifetime value"),
        p("discount_rate", T::Float, "0.01", "monthly discount rate of the lifetime value"),
        p("out", T::Table, "customer_predictions", "output: the summary's columns plus p_alive, expected_purchases, p_buy, expected_purchases_window, expected_spend, clv"),
    ]);
    let next_week = vec![
        p("predictions", T::Table, "customer_predictions", "output of clv_predict"),
        p("threshold", T::Float, "0.5", "least P(buy in the window) to be selected"),
        p("top", T::Int, "0", "select the top N by P(buy) instead (0: use threshold)"),
        p("window_days", T::Int, "7", "the window clv_predict used, for the baseline's comparison"),
        p("out", T::Table, "next_week_buyers", "output table (and collection or table name in the store)"),
        p("export_to", T::Text, "", "mongodb://... or postgres://... to export to (empty: lake only)"),
    ];
    let job = Job::rust;
    vec![
        job("customer_summary", "Frequency, recency, T and mean repeat spend per customer from an orders table, as lifetimes defines them", summary, |s, p| Box::pin(summary::run(s, p))),
        job("clv_fit", "BG/NBD and Gamma-Gamma by maximum likelihood on the executors (BFGS); parameters and log-likelihood in clv_model", fit, |s, p| Box::pin(fit::run(s, p))),
        job("clv_predict", "Per customer: P(alive), expected purchases, P(buy within 7 days), expected spend and lifetime value", predict, |s, p| Box::pin(predict::run(s, p))),
        job("next_week_buyers", "Customers likely to buy within 7 days, with expected spend and seed 002's baseline; export to MongoDB or PostgreSQL", next_week, |s, p| Box::pin(next_week::run(s, p))),
        job("clv_eval", "Calibration/holdout evaluation of BG/NBD: purchases MAE and by frequency; P(buy in 7 days) precision, recall, AUC against the interval baseline", eval, |s, p| Box::pin(eval::run(s, p))),
    ]
}

/// Cell (column `column`, row `row`) of `batch` as text, whatever its string or number type.
pub(crate) fn text_cell(batch: &RecordBatch, column: usize, row: usize) -> String {
    match arrow::compute::cast(batch.column(column), &DataType::Utf8) {
        Ok(c) if !c.is_null(row) => c.as_string::<i32>().value(row).to_string(),
        _ => String::new(),
    }
}

/// Column `column` of `batch` as f64 values, NULL as None.
pub(crate) fn f64_cells(batch: &RecordBatch, column: usize) -> Result<Vec<Option<f64>>> {
    let c = arrow::compute::cast(batch.column(column), &DataType::Float64)?;
    Ok(c.as_primitive::<Float64Type>().iter().collect())
}
