//! Dense f32 vectors by index (factor matrices, standardised audio features), read from and written
//! to Arrow `list<float>` columns, plus the two loops every model spends its time in: `dot` and
//! `axpy`. `dot` keeps 8 independent partial sums so LLVM can vectorise it (a single running sum is
//! a serial dependency chain under IEEE rules); the order of additions is fixed, so results are
//! bit-identical run to run and whatever the partitioning.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float32Array, Float32Builder, Int64Array, ListArray, ListBuilder};
use arrow::datatypes::{DataType, Field, Float32Type, Int64Type};
use arrow::record_batch::RecordBatch;
use datafusion::common::{DataFusionError, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// `n` vectors of dimension `dim`, row-major; a row never written is all zeros.
#[derive(Debug, Clone)]
pub struct DenseVectors {
    /// Dimension.
    pub dim: usize,
    /// `n * dim` values.
    pub data: Vec<f32>,
    /// Which rows were present in the source (absent rows are zero vectors).
    pub present: Vec<bool>,
}

impl DenseVectors {
    /// `n` zero vectors of dimension `dim`.
    pub fn zeros(n: usize, dim: usize) -> Self {
        Self { dim, data: vec![0.0; n * dim], present: vec![false; n] }
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.present.len()
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.present.is_empty()
    }

    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }

    /// Small uniform [0, 0.01) values, as `implicit` initialises factors; row `i` depends only on
    /// (`seed`, `stream`, `i`), not on how rows are spread over tasks.
    pub fn random(n: usize, dim: usize, seed: u64, stream: u64) -> Self {
        Self::random_rows(0..n, dim, seed, stream)
    }

    /// Rows `range` of [`DenseVectors::random`]`(n, ..)` for any `n` past the range's end.
    pub fn random_rows(range: std::ops::Range<usize>, dim: usize, seed: u64, stream: u64) -> Self {
        let mut data = Vec::with_capacity(range.len() * dim);
        for i in range.start as u64..range.end as u64 {
            let mut rng = ChaCha8Rng::seed_from_u64(seed ^ stream.wrapping_mul(0xA24B_AED4_963E_E407) ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            data.extend((0..dim).map(|_| rng.random::<f32>() * 0.01));
        }
        Self { dim, data, present: vec![true; range.len()] }
    }

    /// Reads rows from batches with an Int64 index column and a `list<float>` vector column. Indices
    /// must lie in `0..n`, and every vector must have `dim` values.
    pub fn from_batches(batches: &[RecordBatch], idx_col: &str, vec_col: &str, n: usize, dim: usize) -> Result<Self> {
        let mut out = Self::zeros(n, dim);
        for batch in batches {
            let idx = int64_column(batch, idx_col)?;
            let lists = batch
                .column_by_name(vec_col)
                .ok_or_else(|| DataFusionError::Plan(format!("vector table has no column '{vec_col}'")))?
                .as_list_opt::<i32>()
                .ok_or_else(|| DataFusionError::Plan(format!("column '{vec_col}' is not a list<float>")))?;
            let values = lists
                .values()
                .as_primitive_opt::<Float32Type>()
                .ok_or_else(|| DataFusionError::Plan(format!("column '{vec_col}' is not a list<float>")))?;
            for row in 0..batch.num_rows() {
                let i = idx.value(row);
                if i < 0 || i as usize >= n {
                    return Err(DataFusionError::Execution(format!("vector index {i} outside 0..{n}")));
                }
                let (start, end) = (lists.value_offsets()[row] as usize, lists.value_offsets()[row + 1] as usize);
                if end - start != dim {
                    return Err(DataFusionError::Execution(format!("vector {i} has {} values, expected {dim}", end - start)));
                }
                let i = i as usize;
                out.data[i * dim..(i + 1) * dim].copy_from_slice(&values.values()[start..end]);
                out.present[i] = true;
            }
        }
        Ok(out)
    }
}

/// An Int64 column by name, with a clear error.
pub fn int64_column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a Int64Array> {
    batch
        .column_by_name(name)
        .ok_or_else(|| DataFusionError::Plan(format!("input has no column '{name}'")))?
        .as_primitive_opt::<Int64Type>()
        .ok_or_else(|| DataFusionError::Plan(format!("column '{name}' must be BIGINT")))
}

/// The Arrow type of a vector column: `list<float>` (Delta `array<float>`).
pub fn vector_type() -> DataType {
    DataType::List(Arc::new(Field::new("item", DataType::Float32, true)))
}

/// Builds a `list<float>` column from rows of f32.
pub fn vector_column<'a>(rows: impl Iterator<Item = &'a [f32]>, capacity: usize, dim: usize) -> ArrayRef {
    let mut builder = ListBuilder::with_capacity(Float32Builder::with_capacity(capacity * dim), capacity);
    for row in rows {
        builder.values().append_slice(row);
        builder.append(true);
    }
    let list: ListArray = builder.finish();
    Arc::new(list)
}

/// A `list<float>` column's values for row `row`.
pub fn list_row(lists: &ListArray, row: usize) -> &[f32] {
    let values = lists.values().as_any().downcast_ref::<Float32Array>().expect("list<float>");
    let (start, end) = (lists.value_offsets()[row] as usize, lists.value_offsets()[row + 1] as usize);
    &values.values()[start..end]
}

// The loops below walk `chunks_exact` pairs, not `a[c * 8 + l]`: indexing keeps a bounds check
// per element, which stops LLVM from vectorising them.

/// Dot product with a fixed summation order (8 lanes, then the tail).
#[inline(always)]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f32; 8];
    for (x, y) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    let mut sum = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    let tail = n / 8 * 8;
    for (x, y) in a[tail..].iter().zip(&b[tail..]) {
        sum += x * y;
    }
    sum
}

/// Dot product of an f64 vector with an f32 one, in f64.
#[inline(always)]
pub fn dot_mixed(a: &[f64], b: &[f32]) -> f64 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f64; 4];
    for (x, y) in a.chunks_exact(4).zip(b.chunks_exact(4)) {
        for l in 0..4 {
            acc[l] += x[l] * y[l] as f64;
        }
    }
    let mut sum = (acc[0] + acc[2]) + (acc[1] + acc[3]);
    let tail = n / 4 * 4;
    for (x, y) in a[tail..].iter().zip(&b[tail..]) {
        sum += x * *y as f64;
    }
    sum
}

/// Dot product of two f64 vectors (4 lanes, then the tail: vectorised, and a fixed order).
#[inline(always)]
pub fn dot_f64(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f64; 4];
    for (x, y) in a.chunks_exact(4).zip(b.chunks_exact(4)) {
        for l in 0..4 {
            acc[l] += x[l] * y[l];
        }
    }
    let mut sum = (acc[0] + acc[2]) + (acc[1] + acc[3]);
    let tail = n / 4 * 4;
    for (x, y) in a[tail..].iter().zip(&b[tail..]) {
        sum += x * y;
    }
    sum
}

/// `y += a * x`, with `x` in f32.
#[inline(always)]
pub fn axpy_mixed(a: f64, x: &[f32], y: &mut [f64]) {
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi += a * *xi as f64;
    }
}

/// L2 norm.
pub fn norm(v: &[f32]) -> f32 {
    dot(v, v).sqrt()
}
