//! The ALS solver: one row (a user or an item) of implicit-feedback ALS (Hu, Koren and Volinsky
//! 2008), given the other side's factors. The sweep kernel ([`super::als_sweep`]) calls it for
//! every row of its blocks on an executor.
//!
//! For a row u with interactions I(u), confidence c = 1 + alpha * plays and preference 1:
//!
//! ```text
//! (YᵀY + λI + Σ_{i∈I(u)} (c_ui − 1) y_i y_iᵀ) x_u = Σ_{i∈I(u)} c_ui y_i
//! ```
//!
//! `YᵀY` is computed once per half-sweep and shared; each row then costs O(|I(u)|·k²) to form and
//! O(k³) to solve exactly (Cholesky, `nalgebra`: Spark MLlib's method), or O(|I(u)|·k·s + k²·s)
//! for `s` conjugate-gradient steps warm-started from the previous sweep's x_u (Takács et al.
//! 2011: what `implicit` does by default, with s = 3). The loss of Hu et al. over *all* user-item
//! pairs needs no zeros: Σ_u Σ_i (x_u·y_i)² = ⟨YᵀY, XᵀX⟩, so a block of rows reports its part from
//! its own Gram matrix and each row adds only its observed pairs ([`fit_loss`]).

use datafusion::common::{DataFusionError, Result};
use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};

use super::vectors::{DenseVectors, axpy_mixed, dot, dot_f64, dot_mixed};

/// The hyper-parameters of one solve.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct AlsParams {
    /// Factors per row, k.
    pub rank: usize,
    /// L2 regularisation λ.
    pub lambda: f64,
    /// Scale λ by each row's interaction count (ALS-WR, Zhou et al. 2008: Spark MLlib's
    /// regularisation); off, λ is the same for every row (`implicit`'s).
    #[serde(default)]
    pub scale_lambda: bool,
    /// Confidence slope: c = 1 + alpha * plays.
    pub alpha: f64,
    /// Conjugate-gradient steps; 0 solves exactly by Cholesky.
    pub cg_steps: usize,
}

/// The other side, fixed for a half-sweep, with its Gram matrix.
pub struct FixedSide {
    /// Its vectors.
    pub y: DenseVectors,
    /// YᵀY, k x k row-major.
    pub gram: Vec<f64>,
}

impl FixedSide {
    /// Computes YᵀY from the vectors.
    pub fn new(y: DenseVectors) -> Self {
        let gram = gram(&y.data, y.dim);
        Self { y, gram }
    }
}

/// Σ r rᵀ over the rows r of `data` (row-major, `k` wide), as k x k row-major f64: the upper
/// triangle row by row in a fixed order, then mirrored, so the result is deterministic.
#[inline(always)]
pub fn gram(data: &[f32], k: usize) -> Vec<f64> {
    let mut g = vec![0.0f64; k * k];
    if k == 0 {
        return g;
    }
    for row in data.chunks_exact(k) {
        for a in 0..k {
            let ya = row[a] as f64;
            if ya != 0.0 {
                axpy_mixed(ya, &row[a..], &mut g[a * k + a..a * k + k]);
            }
        }
    }
    for a in 0..k {
        for b in 0..a {
            g[a * k + b] = g[b * k + a];
        }
    }
    g
}

impl AlsParams {
    /// From the job parameters `rank`, `lambda`, `alpha`, `cg_steps` and `lambda_scaling`.
    pub fn from_params(params: &std::collections::BTreeMap<String, String>) -> anyhow::Result<Self> {
        use anyhow::Context;
        let num = |name: &str| -> anyhow::Result<f64> {
            params.get(name).with_context(|| format!("parameter {name} missing"))?.parse().with_context(|| format!("parameter {name}"))
        };
        let scale_lambda = match params.get("lambda_scaling").map_or("none", String::as_str) {
            "none" => false,
            "count" => true,
            other => anyhow::bail!("lambda_scaling must be none (implicit's) or count (Spark's ALS-WR), not '{other}'"),
        };
        Ok(Self { rank: num("rank")? as usize, lambda: num("lambda")?, alpha: num("alpha")?, cg_steps: num("cg_steps")? as usize, scale_lambda })
    }

    /// λ for a row with `count` interactions (at least 1, so a row without any stays regularised).
    pub fn row_lambda(&self, count: usize) -> f64 {
        if self.scale_lambda { self.lambda * count.max(1) as f64 } else { self.lambda }
    }
}

/// Solves one row from its interactions (`others[j]` played `plays[j]` times), starting
/// conjugate gradient at `x0`.
#[inline(always)]
pub fn solve_row(fixed: &FixedSide, others: &[u32], plays: &[f64], p: &AlsParams, x0: &[f32]) -> Result<Vec<f32>> {
    let x = if p.cg_steps == 0 { solve_exact(fixed, others, plays, p)? } else { solve_cg(fixed, others, plays, p, x0) };
    Ok(x.iter().map(|v| *v as f32).collect())
}

/// The row's observed-pair part of the loss: Σ_i [c_i (1 − x·y_i)² − (x·y_i)²]. Added to ⟨YᵀY, xxᵀ⟩
/// it is the row's whole data loss.
#[inline(always)]
pub fn fit_loss(y: &DenseVectors, others: &[u32], plays: &[f64], alpha: f64, x: &[f32]) -> f64 {
    let mut loss = 0.0;
    for (&i, &w) in others.iter().zip(plays) {
        let s = dot(x, y.row(i as usize)) as f64;
        loss += (1.0 + alpha * w) * (1.0 - s) * (1.0 - s) - s * s;
    }
    loss
}

fn solve_exact(fixed: &FixedSide, others: &[u32], plays: &[f64], p: &AlsParams) -> Result<Vec<f64>> {
    let k = p.rank;
    let mut a = fixed.gram.clone();
    let lambda = p.row_lambda(others.len());
    for d in 0..k {
        a[d * k + d] += lambda;
    }
    let mut b = vec![0.0f64; k];
    for (&i, &w) in others.iter().zip(plays) {
        let y = fixed.y.row(i as usize);
        let c = 1.0 + p.alpha * w;
        for r in 0..k {
            let weight = (c - 1.0) * y[r] as f64;
            if weight != 0.0 {
                axpy_mixed(weight, &y[r..], &mut a[r * k + r..r * k + k]);
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
            "ALS normal equations are not positive definite (lambda = {lambda}); use a lambda above 0"
        ))
    })?;
    Ok(chol.solve(&DVector::from_vec(b)).iter().copied().collect())
}

/// A·v = (YᵀY + λI)v + Σ (c_i − 1)(y_i·v) y_i. YᵀY is symmetric, so its product with v is
/// Σ_b v_b·(row b): k axpys, vertical adds that vectorise fully, where k dot products each end
/// in a horizontal sum (and a plain `sum()` is one serial chain of k adds).
#[inline(always)]
fn apply(fixed: &FixedSide, others: &[u32], plays: &[f64], p: &AlsParams, v: &[f64], out: &mut [f64]) {
    let (k, lambda) = (p.rank, p.row_lambda(others.len()));
    for (o, x) in out.iter_mut().zip(v) {
        *o = lambda * x;
    }
    for (row, &vb) in fixed.gram.chunks_exact(k).zip(v) {
        for (o, g) in out.iter_mut().zip(row) {
            *o += vb * g;
        }
    }
    for (&i, &w) in others.iter().zip(plays) {
        let y = fixed.y.row(i as usize);
        axpy_mixed(p.alpha * w * dot_mixed(v, y), y, out);
    }
}

#[inline(always)]
fn solve_cg(fixed: &FixedSide, others: &[u32], plays: &[f64], p: &AlsParams, x0: &[f32]) -> Vec<f64> {
    let k = p.rank;
    let mut x: Vec<f64> = x0.iter().map(|v| *v as f64).collect();
    let mut ax = vec![0.0; k];
    apply(fixed, others, plays, p, &x, &mut ax);
    let mut r: Vec<f64> = ax.iter().map(|v| -v).collect();
    for (&i, &w) in others.iter().zip(plays) {
        axpy_mixed(1.0 + p.alpha * w, fixed.y.row(i as usize), &mut r);
    }
    let mut d = r.clone();
    let mut rs_old = dot_f64(&r, &r);
    let mut ad = vec![0.0; k];
    for _ in 0..p.cg_steps {
        if rs_old < 1e-20 {
            break;
        }
        apply(fixed, others, plays, p, &d, &mut ad);
        let step = rs_old / dot_f64(&d, &ad);
        for j in 0..k {
            x[j] += step * d[j];
            r[j] -= step * ad[j];
        }
        let rs_new = dot_f64(&r, &r);
        for j in 0..k {
            d[j] = r[j] + rs_new / rs_old * d[j];
        }
        rs_old = rs_new;
    }
    x
}
