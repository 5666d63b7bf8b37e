//! The customer models' partition kernels, run by executor tasks over partitions of the summary:
//! `clv_loglik` sums one partition's log-likelihood and gradient at a parameter point (the fit's
//! optimiser asks the cluster for one such sum per step), `clv_predict` adds the per-customer
//! predictions to the rows of its partition.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float64Array, Int64Array};
use arrow::datatypes::{DataType, Field, Float64Type, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use backbeat_cluster::map_partitions::PartitionKernel;
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::SendableRecordBatchStream;
use futures::TryStreamExt;
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use super::bgnbd::{BgNbd, LikelihoodEval};
use super::gamma_gamma::{GammaGamma, SpendEval};

/// Kernel name of the likelihood sums.
pub const CLV_LOGLIK: &str = "clv_loglik";
/// Kernel name of the predictions.
pub const CLV_PREDICT: &str = "clv_predict";

/// Which likelihood, at which point.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "model", rename_all = "snake_case")]
pub enum LoglikArgs {
    /// BG/NBD over columns x, t_x, t, weight; times are multiplied by `scale` first.
    Bgnbd {
        /// Parameters (alpha in scaled time).
        params: BgNbd,
        /// Time scale.
        scale: f64,
    },
    /// Gamma-Gamma over columns x, m, weight.
    GammaGamma {
        /// Parameters.
        params: GammaGamma,
    },
}

/// Sums of one partition: rows, weight, Σ w·LL and Σ w·∇LL (4 entries; Gamma-Gamma leaves the last 0).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LoglikSums {
    /// Rows seen.
    pub rows: i64,
    /// Σ weight.
    pub weight: f64,
    /// Σ weight · ln L.
    pub ll: f64,
    /// Σ weight · d ln L / d params.
    pub grad: [f64; 4],
}

impl LoglikSums {
    /// Adds another partition's sums.
    pub fn add(&mut self, other: &LoglikSums) {
        self.rows += other.rows;
        self.weight += other.weight;
        self.ll += other.ll;
        for (g, o) in self.grad.iter_mut().zip(other.grad) {
            *g += o;
        }
    }

    /// The sums of the kernel's output rows, added in partition order (so the total does not
    /// depend on which task answered first).
    pub fn from_batches(batches: &[RecordBatch]) -> Result<LoglikSums> {
        let mut parts = Vec::new();
        for batch in batches {
            let col = |name: &str| -> Result<Float64Array> {
                let c = batch.column_by_name(name).ok_or_else(|| DataFusionError::Internal(format!("clv_loglik output has no {name}")))?;
                Ok(arrow::compute::cast(c, &DataType::Float64)?.as_primitive::<Float64Type>().clone())
            };
            let (part, rows, weight, ll) = (col("part")?, col("rows")?, col("weight")?, col("ll")?);
            let grads = [col("g0")?, col("g1")?, col("g2")?, col("g3")?];
            for i in 0..batch.num_rows() {
                let sums = LoglikSums {
                    rows: rows.value(i) as i64,
                    weight: weight.value(i),
                    ll: ll.value(i),
                    grad: [grads[0].value(i), grads[1].value(i), grads[2].value(i), grads[3].value(i)],
                };
                parts.push((part.value(i) as i64, sums));
            }
        }
        parts.sort_by_key(|(p, _)| *p);
        let mut total = LoglikSums::default();
        for (_, s) in &parts {
            total.add(s);
        }
        Ok(total)
    }
}

fn f64_column(batch: &RecordBatch, name: &str, kernel: &str) -> Result<Float64Array> {
    let column = batch
        .column_by_name(name)
        .ok_or_else(|| DataFusionError::Plan(format!("{kernel} needs a column '{name}' (input: {})", batch.schema())))?;
    Ok(arrow::compute::cast(column, &DataType::Float64)?.as_primitive::<Float64Type>().clone())
}

fn require(input: &Schema, kernel: &str, columns: &[&str]) -> Result<()> {
    for column in columns {
        let numeric = input.field_with_name(column).map(|f| f.data_type().is_numeric()).unwrap_or(false);
        if !numeric {
            return Err(DataFusionError::Plan(format!("{kernel} needs a numeric column '{column}' (input: {input})")));
        }
    }
    Ok(())
}

/// Σ log-likelihood and gradient of a partition.
pub struct LoglikKernel;

impl PartitionKernel for LoglikKernel {
    fn name(&self) -> &'static str {
        CLV_LOGLIK
    }

    fn output_schema(&self, args: &serde_json::Value, input: &Schema) -> Result<SchemaRef> {
        let args: LoglikArgs = serde_json::from_value(args.clone()).map_err(|e| DataFusionError::Plan(format!("{CLV_LOGLIK} arguments: {e}")))?;
        match args {
            LoglikArgs::Bgnbd { .. } => require(input, CLV_LOGLIK, &["x", "t_x", "t", "weight"])?,
            LoglikArgs::GammaGamma { .. } => require(input, CLV_LOGLIK, &["x", "m", "weight"])?,
        }
        let f = |name: &str, ty| Field::new(name, ty, false);
        Ok(Arc::new(Schema::new(vec![
            f("part", DataType::Int64),
            f("rows", DataType::Int64),
            f("weight", DataType::Float64),
            f("ll", DataType::Float64),
            f("g0", DataType::Float64),
            f("g1", DataType::Float64),
            f("g2", DataType::Float64),
            f("g3", DataType::Float64),
        ])))
    }

    fn run(&self, args: serde_json::Value, input: SendableRecordBatchStream, partition: usize) -> BoxFuture<'static, Result<Vec<RecordBatch>>> {
        Box::pin(async move {
            let args: LoglikArgs = serde_json::from_value(args).map_err(|e| DataFusionError::Plan(format!("{CLV_LOGLIK} arguments: {e}")))?;
            let schema = self_schema(&args, input.schema().as_ref())?;
            let batches: Vec<RecordBatch> = input.try_collect().await?;
            let sums = tokio::task::spawn_blocking(move || sum_partition(&args, &batches))
                .await
                .map_err(|e| DataFusionError::Execution(format!("{CLV_LOGLIK} task: {e}")))??;
            let columns: Vec<ArrayRef> = vec![
                Arc::new(Int64Array::from(vec![partition as i64])),
                Arc::new(Int64Array::from(vec![sums.rows])),
                Arc::new(Float64Array::from(vec![sums.weight])),
                Arc::new(Float64Array::from(vec![sums.ll])),
                Arc::new(Float64Array::from(vec![sums.grad[0]])),
                Arc::new(Float64Array::from(vec![sums.grad[1]])),
                Arc::new(Float64Array::from(vec![sums.grad[2]])),
                Arc::new(Float64Array::from(vec![sums.grad[3]])),
            ];
            Ok(vec![RecordBatch::try_new(schema, columns)?])
        })
    }
}

fn self_schema(args: &LoglikArgs, input: &Schema) -> Result<SchemaRef> {
    LoglikKernel.output_schema(&serde_json::to_value(args).map_err(|e| DataFusionError::Internal(e.to_string()))?, input)
}

/// The sums over `batches` (one partition).
pub fn sum_partition(args: &LoglikArgs, batches: &[RecordBatch]) -> Result<LoglikSums> {
    let mut sums = LoglikSums::default();
    match args {
        LoglikArgs::Bgnbd { params, scale } => {
            let mut eval = LikelihoodEval::new(*params);
            for batch in batches {
                let (x, tx, t, w) = (f64_column(batch, "x", CLV_LOGLIK)?, f64_column(batch, "t_x", CLV_LOGLIK)?, f64_column(batch, "t", CLV_LOGLIK)?, f64_column(batch, "weight", CLV_LOGLIK)?);
                for i in 0..batch.num_rows() {
                    let (ll, grad) = eval.customer(x.value(i), tx.value(i) * scale, t.value(i) * scale);
                    let w = w.value(i);
                    sums.ll += w * ll;
                    for (s, g) in sums.grad.iter_mut().zip(grad) {
                        *s += w * g;
                    }
                    sums.weight += w;
                }
                sums.rows += batch.num_rows() as i64;
            }
        }
        LoglikArgs::GammaGamma { params } => {
            let mut eval = SpendEval::new(*params);
            for batch in batches {
                let (x, m, w) = (f64_column(batch, "x", CLV_LOGLIK)?, f64_column(batch, "m", CLV_LOGLIK)?, f64_column(batch, "weight", CLV_LOGLIK)?);
                for i in 0..batch.num_rows() {
                    let (ll, grad) = eval.customer(x.value(i), m.value(i));
                    let w = w.value(i);
                    sums.ll += w * ll;
                    for (s, g) in sums.grad.iter_mut().zip(grad) {
                        *s += w * g;
                    }
                    sums.weight += w;
                }
                sums.rows += batch.num_rows() as i64;
            }
        }
    }
    Ok(sums)
}

/// What `clv_predict` computes, in the summary's time unit.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PredictArgs {
    /// The purchase model.
    pub bgnbd: BgNbd,
    /// The spend model, when fitted.
    pub spend: Option<GammaGamma>,
    /// Horizon of `expected_purchases`.
    pub horizon: f64,
    /// Window of `p_buy` (7 days in the unit).
    pub buy_window: f64,
    /// Months of the lifetime value.
    pub clv_months: u32,
    /// Periods of the unit per month (lifetimes: 30 for days, 4.345 for weeks).
    pub periods_per_month: f64,
    /// Monthly discount rate.
    pub discount_rate: f64,
}

/// Output columns the prediction kernel appends.
pub const PREDICTION_COLUMNS: [&str; 6] = ["p_alive", "expected_purchases", "p_buy", "expected_purchases_window", "expected_spend", "clv"];

/// Per-customer predictions appended to the rows of a partition.
pub struct PredictKernel;

impl PartitionKernel for PredictKernel {
    fn name(&self) -> &'static str {
        CLV_PREDICT
    }

    fn output_schema(&self, _args: &serde_json::Value, input: &Schema) -> Result<SchemaRef> {
        require(input, CLV_PREDICT, &["frequency", "recency", "T", "monetary_value"])?;
        let mut fields: Vec<Field> = input.fields().iter().map(|f| f.as_ref().clone()).collect();
        for name in PREDICTION_COLUMNS {
            if input.index_of(name).is_ok() {
                return Err(DataFusionError::Plan(format!("{CLV_PREDICT}: the input already has a column '{name}'")));
            }
            fields.push(Field::new(name, DataType::Float64, true));
        }
        Ok(Arc::new(Schema::new(fields)))
    }

    fn run(&self, args: serde_json::Value, input: SendableRecordBatchStream, _partition: usize) -> BoxFuture<'static, Result<Vec<RecordBatch>>> {
        Box::pin(async move {
            let args: PredictArgs = serde_json::from_value(args.clone()).map_err(|e| DataFusionError::Plan(format!("{CLV_PREDICT} arguments: {e}")))?;
            let schema = PredictKernel.output_schema(&serde_json::Value::Null, input.schema().as_ref())?;
            let batches: Vec<RecordBatch> = input.try_collect().await?;
            tokio::task::spawn_blocking(move || batches.iter().map(|b| predict_batch(&args, b, schema.clone())).collect::<Result<Vec<_>>>())
                .await
                .map_err(|e| DataFusionError::Execution(format!("{CLV_PREDICT} task: {e}")))?
        })
    }
}

/// The predictions of one batch of summary rows.
pub fn predict_batch(args: &PredictArgs, batch: &RecordBatch, schema: SchemaRef) -> Result<RecordBatch> {
    let (x, tx, t, m) = (
        f64_column(batch, "frequency", CLV_PREDICT)?,
        f64_column(batch, "recency", CLV_PREDICT)?,
        f64_column(batch, "T", CLV_PREDICT)?,
        f64_column(batch, "monetary_value", CLV_PREDICT)?,
    );
    let n = batch.num_rows();
    let mut out: [Vec<Option<f64>>; 6] = Default::default();
    for column in out.iter_mut() {
        column.reserve(n);
    }
    let model = &args.bgnbd;
    for i in 0..n {
        if x.is_null(i) || tx.is_null(i) || t.is_null(i) {
            for column in out.iter_mut() {
                column.push(None);
            }
            continue;
        }
        let (x, tx, t) = (x.value(i), tx.value(i), t.value(i));
        let finite = |v: f64| v.is_finite().then_some(v);
        out[0].push(finite(model.p_alive(x, tx, t)));
        out[1].push(finite(model.expected_purchases(args.horizon, x, tx, t)));
        out[2].push(finite(model.p_any_purchase(args.buy_window, x, tx, t)));
        out[3].push(finite(model.expected_purchases(args.buy_window, x, tx, t)));
        match &args.spend {
            Some(gg) => {
                let m = if m.is_null(i) || x == 0.0 { 0.0 } else { m.value(i) };
                let spend = gg.expected_spend(x, m);
                out[4].push(finite(spend));
                out[5].push(finite(model.lifetime_value(spend, args.clv_months, args.periods_per_month, args.discount_rate, x, tx, t)));
            }
            None => {
                out[4].push(None);
                out[5].push(None);
            }
        }
    }
    let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
    for column in out {
        columns.push(Arc::new(Float64Array::from(column)));
    }
    Ok(RecordBatch::try_new(schema, columns)?)
}
