//! The ALS half-sweep kernel: on an executor, solve the rows of one side (users or items) of
//! implicit-feedback ALS (Hu, Koren and Volinsky 2008) for the partition's keys, with the other side
//! fixed and read once per process from the lake ([`backbeat_cluster::broadcast`]).
//!
//! For a row u with interactions I(u), confidence c = 1 + alpha * plays and preference 1:
//!
//! ```text
//! (YᵀY + λI + Σ_{i∈I(u)} (c_ui − 1) y_i y_iᵀ) x_u = Σ_{i∈I(u)} c_ui y_i
//! ```
//!
//! `YᵀY` is computed once per broadcast and shared; each row then costs O(|I(u)|·k²) to form and
//! O(k³) to solve exactly (Cholesky, `nalgebra`: Spark MLlib's method), or O(|I(u)|·k·s) for `s`
//! conjugate-gradient steps warm-started from the previous sweep's x_u (Takács et al. 2011: what
//! `implicit` does by default, with s = 3). The loss of Hu et al. over *all* user-item pairs
//! is reported per row without touching the zeros, since Σ_i (x_u·y_i)² = x_uᵀ YᵀY x_u.

use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, Int64Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use backbeat_cluster::broadcast::{read_table, shared};
use backbeat_cluster::map_partitions::PartitionKernel;
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::SendableRecordBatchStream;
use futures::StreamExt;
use futures::future::BoxFuture;
use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};

use super::vectors::{DenseVectors, axpy_mixed, dot, dot_mixed, int64_column, vector_column, vector_type};

/// Where a side's vectors come from: a lake table of (`idx`, `factors`) at a version, or a seeded
/// random start.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum VectorSource {
    /// Rows `idx` (BIGINT) and `factors` (list<float>) of a Delta table.
    Table {
        /// Table URI.
        uri: String,
        /// Pinned version.
        version: u64,
        /// Rows: indices are `0..n`.
        n: usize,
    },
    /// [`DenseVectors::random`].
    Random {
        /// Rows.
        n: usize,
        /// Seed.
        seed: u64,
        /// Stream, so users and items differ.
        stream: u64,
    },
}

/// The hyper-parameters of one solve.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct AlsParams {
    /// Factors per row, k.
    pub rank: usize,
    /// L2 regularisation λ (not scaled by the row's interaction count, as in `implicit`).
    pub lambda: f64,
    /// Confidence slope: c = 1 + alpha * plays.
    pub alpha: f64,
    /// Conjugate-gradient steps; 0 solves exactly by Cholesky.
    pub cg_steps: usize,
}

/// Arguments of the `als_solve` kernel.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AlsSolveArgs {
    /// Hyper-parameters.
    pub params: AlsParams,
    /// The side held fixed in this half-sweep.
    pub fixed: VectorSource,
    /// This side's previous vectors, the warm start of conjugate gradient.
    pub start: VectorSource,
}

/// The other side, fixed for a half-sweep, with its Gram matrix.
pub struct FixedSide {
    /// Its vectors.
    pub y: DenseVectors,
    /// YᵀY, k x k row-major.
    pub gram: Vec<f64>,
}

impl FixedSide {
    /// Computes YᵀY (upper triangle, then mirrored; a fixed order, so deterministic).
    pub fn new(y: DenseVectors) -> Self {
        let k = y.dim;
        let mut gram = vec![0.0f64; k * k];
        for i in 0..y.len() {
            let row = y.row(i);
            for a in 0..k {
                let ya = row[a] as f64;
                if ya == 0.0 {
                    continue;
                }
                axpy_mixed(ya, &row[a..], &mut gram[a * k + a..a * k + k]);
            }
        }
        for a in 0..k {
            for b in 0..a {
                gram[a * k + b] = gram[b * k + a];
            }
        }
        Self { y, gram }
    }
}

/// Solves one row from its interactions `(other index, plays)`, starting CG at `x0`. Returns the
/// row and its part of the data loss: xᵀYᵀYx + Σ_i [c_i (1 − x·y_i)² − (x·y_i)²].
pub fn solve_row(fixed: &FixedSide, items: &[(u32, f64)], p: &AlsParams, x0: &[f32]) -> Result<(Vec<f32>, f64)> {
    let k = p.rank;
    let x: Vec<f64> = if p.cg_steps == 0 { solve_exact(fixed, items, p)? } else { solve_cg(fixed, items, p, x0) };
    let x32: Vec<f32> = x.iter().map(|v| *v as f32).collect();
    let mut gx = vec![0.0f64; k];
    for a in 0..k {
        gx[a] = (0..k).map(|b| fixed.gram[a * k + b] * x[b]).sum();
    }
    let mut loss: f64 = x.iter().zip(&gx).map(|(a, b)| a * b).sum();
    for &(i, plays) in items {
        let s = dot(&x32, fixed.y.row(i as usize)) as f64;
        let c = 1.0 + p.alpha * plays;
        loss += c * (1.0 - s) * (1.0 - s) - s * s;
    }
    Ok((x32, loss))
}

fn solve_exact(fixed: &FixedSide, items: &[(u32, f64)], p: &AlsParams) -> Result<Vec<f64>> {
    let k = p.rank;
    let mut a = fixed.gram.clone();
    for d in 0..k {
        a[d * k + d] += p.lambda;
    }
    let mut b = vec![0.0f64; k];
    for &(i, plays) in items {
        let y = fixed.y.row(i as usize);
        let c = 1.0 + p.alpha * plays;
        for r in 0..k {
            let w = (c - 1.0) * y[r] as f64;
            if w != 0.0 {
                axpy_mixed(w, &y[r..], &mut a[r * k + r..r * k + k]);
            }
        }
        axpy_mixed(c, y, &mut b);
    }
    for r in 0..k {
        for s in 0..r {
            a[r * k + s] = a[s * k + r];
        }
    }
    let chol = DMatrix::from_row_slice(k, k, &a).cholesky().ok_or_else(|| {
        DataFusionError::Execution(format!(
            "ALS normal equations are not positive definite (lambda = {}); use a lambda above 0",
            p.lambda
        ))
    })?;
    Ok(chol.solve(&DVector::from_vec(b)).iter().copied().collect())
}

/// A·v = (YᵀY + λI)v + Σ (c_i − 1)(y_i·v) y_i.
fn apply(fixed: &FixedSide, items: &[(u32, f64)], p: &AlsParams, v: &[f64], out: &mut [f64]) {
    let k = p.rank;
    for a in 0..k {
        out[a] = (0..k).map(|b| fixed.gram[a * k + b] * v[b]).sum::<f64>() + p.lambda * v[a];
    }
    for &(i, plays) in items {
        let y = fixed.y.row(i as usize);
        let w = p.alpha * plays * dot_mixed(v, y);
        axpy_mixed(w, y, out);
    }
}

fn solve_cg(fixed: &FixedSide, items: &[(u32, f64)], p: &AlsParams, x0: &[f32]) -> Vec<f64> {
    let k = p.rank;
    let mut x: Vec<f64> = x0.iter().map(|v| *v as f64).collect();
    let mut ax = vec![0.0; k];
    apply(fixed, items, p, &x, &mut ax);
    let mut r: Vec<f64> = ax.iter().map(|v| -v).collect();
    for &(i, plays) in items {
        axpy_mixed(1.0 + p.alpha * plays, fixed.y.row(i as usize), &mut r);
    }
    let mut d = r.clone();
    let mut rs_old: f64 = r.iter().map(|v| v * v).sum();
    let mut ad = vec![0.0; k];
    for _ in 0..p.cg_steps {
        if rs_old < 1e-20 {
            break;
        }
        apply(fixed, items, p, &d, &mut ad);
        let step = rs_old / d.iter().zip(&ad).map(|(a, b)| a * b).sum::<f64>();
        for j in 0..k {
            x[j] += step * d[j];
            r[j] -= step * ad[j];
        }
        let rs_new: f64 = r.iter().map(|v| v * v).sum();
        for j in 0..k {
            d[j] = r[j] + rs_new / rs_old * d[j];
        }
        rs_old = rs_new;
    }
    x
}

/// The `als_solve` kernel. Input: `solve_idx`, `other_idx` (BIGINT), `plays` (DOUBLE), keyed by
/// `solve_idx`. Output: `idx`, `factors`, `fit_loss` (the row's data loss) and `reg` (λ|x|²).
#[derive(Debug, Default)]
pub struct AlsSolveKernel;

/// Registered name of [`AlsSolveKernel`].
pub const ALS_SOLVE: &str = "als_solve";

impl PartitionKernel for AlsSolveKernel {
    fn name(&self) -> &'static str {
        ALS_SOLVE
    }

    fn output_schema(&self, _args: &serde_json::Value, input: &Schema) -> Result<SchemaRef> {
        for (column, ty) in [("solve_idx", DataType::Int64), ("other_idx", DataType::Int64), ("plays", DataType::Float64)] {
            match input.field_with_name(column) {
                Ok(f) if f.data_type() == &ty => {}
                _ => return Err(DataFusionError::Plan(format!("als_solve needs column {column} {ty} (input: {input})"))),
            }
        }
        Ok(Arc::new(Schema::new(vec![
            Field::new("idx", DataType::Int64, false),
            Field::new("factors", vector_type(), false),
            Field::new("fit_loss", DataType::Float64, false),
            Field::new("reg", DataType::Float64, false),
        ])))
    }

    fn run(&self, args: serde_json::Value, input: SendableRecordBatchStream, _partition: usize) -> BoxFuture<'static, Result<Vec<RecordBatch>>> {
        Box::pin(async move {
            let args: AlsSolveArgs = serde_json::from_value(args).map_err(|e| DataFusionError::Plan(format!("als_solve arguments: {e}")))?;
            let rows = collect_interactions(input).await?;
            let k = args.params.rank;
            // YᵀY is ~1 s of arithmetic for 1M x 64 factors: off the async runtime, once per process.
            let fixed = shared(source_key("gram", &args.fixed, k), async {
                let y = load_vectors(&args.fixed, k).await?;
                tokio::task::spawn_blocking(move || FixedSide::new(y))
                    .await
                    .map_err(|e| DataFusionError::Execution(format!("als_solve Gram matrix: {e}")))
            })
            .await?;
            let start = shared(source_key("vectors", &args.start, k), load_vectors(&args.start, k)).await?;
            tokio::task::spawn_blocking(move || solve_partition(&args.params, rows, &fixed, &start))
                .await
                .map_err(|e| DataFusionError::Execution(format!("als_solve task: {e}")))?
        })
    }
}

fn source_key(what: &str, source: &VectorSource, k: usize) -> String {
    format!("als:{what}:{k}:{}", serde_json::to_string(source).unwrap_or_default())
}

async fn load_vectors(source: &VectorSource, k: usize) -> Result<DenseVectors> {
    match source {
        VectorSource::Random { n, seed, stream } => Ok(DenseVectors::random(*n, k, *seed, *stream)),
        VectorSource::Table { uri, version, n } => {
            let batches = read_table(uri, Some(*version), &["idx", "factors"]).await?;
            DenseVectors::from_batches(&batches, "idx", "factors", *n, k)
        }
    }
}

async fn collect_interactions(mut input: SendableRecordBatchStream) -> Result<Vec<(u32, u32, f64)>> {
    let mut rows = Vec::new();
    while let Some(batch) = input.next().await {
        let batch = batch?;
        let solve = int64_column(&batch, "solve_idx")?;
        let other = int64_column(&batch, "other_idx")?;
        let plays = batch.column_by_name("plays").and_then(|c| c.as_any().downcast_ref::<Float64Array>()).expect("checked by output_schema");
        for r in 0..batch.num_rows() {
            let (s, o, w) = (solve.value(r), other.value(r), plays.value(r));
            if !(w.is_finite() && w >= 0.0) {
                return Err(DataFusionError::Execution(format!("interaction ({s}, {o}) has weight {w}; weights must be finite and >= 0")));
            }
            rows.push((s as u32, o as u32, w));
        }
    }
    Ok(rows)
}

fn solve_partition(p: &AlsParams, mut rows: Vec<(u32, u32, f64)>, fixed: &FixedSide, start: &DenseVectors) -> Result<Vec<RecordBatch>> {
    rows.sort_unstable_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    let mut idx = Vec::new();
    let mut factors: Vec<f32> = Vec::new();
    let mut fit = Vec::new();
    let mut reg = Vec::new();
    let mut items: Vec<(u32, f64)> = Vec::new();
    let mut at = 0;
    while at < rows.len() {
        let solve = rows[at].0;
        items.clear();
        while at < rows.len() && rows[at].0 == solve {
            let other = rows[at].1 as usize;
            if other >= fixed.y.len() || solve as usize >= start.len() {
                return Err(DataFusionError::Execution(format!("interaction ({solve}, {other}) lies outside the factor tables")));
            }
            items.push((rows[at].1, rows[at].2));
            at += 1;
        }
        let (x, loss) = solve_row(fixed, &items, p, start.row(solve as usize))?;
        reg.push(p.lambda * x.iter().map(|v| (*v as f64) * (*v as f64)).sum::<f64>());
        idx.push(solve as i64);
        factors.extend_from_slice(&x);
        fit.push(loss);
    }
    let n = idx.len();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(idx)),
        vector_column(factors.chunks(p.rank.max(1)).take(n), n, p.rank),
        Arc::new(Float64Array::from(fit)),
        Arc::new(Float64Array::from(reg)),
    ];
    let schema = AlsSolveKernel.output_schema(&serde_json::Value::Null, &interactions_schema())?;
    Ok(vec![RecordBatch::try_new(schema, columns)?])
}

fn interactions_schema() -> Schema {
    Schema::new(vec![
        Field::new("solve_idx", DataType::Int64, false),
        Field::new("other_idx", DataType::Int64, false),
        Field::new("plays", DataType::Float64, false),
    ])
}
