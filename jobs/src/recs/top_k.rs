//! The `top_k_dot` kernel: for each query row of a partition, the K candidates with the largest dot
//! product (or cosine), excluding given indices. Exact brute force: every query is scored against
//! every candidate, 8 lanes at a time ([`super::vectors::dot`]), and the best K kept by a partial
//! sort, O(candidates) per query. It serves ALS recommendations (user factors · item factors) and
//! content similarity (standardised audio features, cosine).
//!
//! Input: `query_idx` and `exclude_idx` (BIGINT, nullable), keyed by `query_idx`: one row per
//! (query, index it must not return), or one row with a NULL exclusion. Query and candidate vectors
//! come from lake tables read once per process. Output: `query_idx`, `rank` (1-based), `item_idx`,
//! `score`.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Float64Array, Int32Array, Int64Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use backbeat_cluster::broadcast::{read_table, shared};
use backbeat_cluster::map_partitions::PartitionKernel;
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::SendableRecordBatchStream;
use futures::StreamExt;
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use super::ivf::{IvfIndex, IvfParams};
use super::vectors::{DenseVectors, dot, int64_column, norm};

/// A table of vectors: `idx_col` in `0..n`, `vec_col` a list<float> of `dim` values.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct VectorTable {
    /// Table URI.
    pub uri: String,
    /// Pinned version.
    pub version: u64,
    /// Index column.
    pub idx_col: String,
    /// Vector column.
    pub vec_col: String,
    /// Indices lie in `0..n`.
    pub n: usize,
}

/// Arguments of `top_k_dot`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TopKArgs {
    /// Query vectors.
    pub queries: VectorTable,
    /// Candidate vectors (may be the same table).
    pub candidates: VectorTable,
    /// Vector dimension.
    pub dim: usize,
    /// Results per query.
    pub k: usize,
    /// Normalise vectors first (cosine similarity).
    pub cosine: bool,
    /// Only candidates whose index is in this table's `idx_col` (e.g. the most played items).
    pub only: Option<(String, u64, String)>,
    /// Approximate search through an IVF index ([`super::ivf`]); `None` is exact.
    #[serde(default)]
    pub ivf: Option<IvfParams>,
}

/// Registered name of [`TopKKernel`].
pub const TOP_K_DOT: &str = "top_k_dot";

/// See the module docs.
#[derive(Debug, Default)]
pub struct TopKKernel;

impl PartitionKernel for TopKKernel {
    fn name(&self) -> &'static str {
        TOP_K_DOT
    }

    fn output_schema(&self, _args: &serde_json::Value, input: &Schema) -> Result<SchemaRef> {
        for column in ["query_idx", "exclude_idx"] {
            match input.field_with_name(column) {
                Ok(f) if f.data_type() == &DataType::Int64 => {}
                _ => return Err(DataFusionError::Plan(format!("top_k_dot needs a BIGINT column {column} (input: {input})"))),
            }
        }
        Ok(output_schema())
    }

    fn run(&self, args: serde_json::Value, input: SendableRecordBatchStream, _partition: usize) -> BoxFuture<'static, Result<Vec<RecordBatch>>> {
        Box::pin(async move {
            let args: TopKArgs = serde_json::from_value(args).map_err(|e| DataFusionError::Plan(format!("top_k_dot arguments: {e}")))?;
            let excludes = collect_queries(input).await?;
            let queries = load(&args.queries, args.dim, args.cosine).await?;
            let candidates = load(&args.candidates, args.dim, args.cosine).await?;
            let only = match &args.only {
                Some((uri, version, column)) => Some(read_table(uri, Some(*version), &[column]).await?),
                None => None,
            };
            let column = args.only.as_ref().map(|o| o.2.clone());
            let index_key = args.ivf.map(|ivf| format!("ivf:{ivf:?}:{}:{:?}", serde_json::to_string(&args.candidates).unwrap_or_default(), args.only));
            let ivf = args.ivf;
            tokio::task::spawn_blocking(move || {
                let pool: Vec<u32> = match (only, column) {
                    (Some(batches), Some(column)) => {
                        let mut pool = Vec::new();
                        for b in &batches {
                            let idx = int64_column(b, &column)?;
                            pool.extend(idx.values().iter().filter(|i| **i >= 0 && (**i as usize) < candidates.len()).map(|i| *i as u32));
                        }
                        pool.sort_unstable();
                        pool.dedup();
                        pool
                    }
                    _ => (0..candidates.len() as u32).filter(|i| candidates.present[*i as usize]).collect(),
                };
                let index = match (ivf, index_key) {
                    // Built once per executor process; the tasks of the stage wait for the first.
                    (Some(params), Some(key)) => Some((shared_blocking(key, || IvfIndex::build(&candidates, &pool, &params))?, params.probes)),
                    _ => None,
                };
                let search = index.as_ref().map(|(index, probes)| (index.as_ref(), *probes));
                Ok(vec![top_k(&queries, &candidates, &pool, &excludes, args.k, search)?])
            })
            .await
            .map_err(|e| DataFusionError::Execution(format!("top_k_dot task: {e}")))?
        })
    }
}

fn output_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("query_idx", DataType::Int64, false),
        Field::new("rank", DataType::Int32, false),
        Field::new("item_idx", DataType::Int64, false),
        Field::new("score", DataType::Float64, false),
    ]))
}

async fn load(table: &VectorTable, dim: usize, cosine: bool) -> Result<Arc<DenseVectors>> {
    let key = format!("topk:{cosine}:{dim}:{}", serde_json::to_string(table).unwrap_or_default());
    shared(key, async {
        let batches = read_table(&table.uri, Some(table.version), &[&table.idx_col, &table.vec_col]).await?;
        let mut v = DenseVectors::from_batches(&batches, &table.idx_col, &table.vec_col, table.n, dim)?;
        if cosine {
            for i in 0..v.len() {
                let row = &mut v.data[i * dim..(i + 1) * dim];
                let n = norm(row);
                if n > 0.0 {
                    row.iter_mut().for_each(|x| *x /= n);
                }
            }
        }
        Ok(v)
    })
    .await
}

/// The partition's queries, each with its sorted exclusions.
async fn collect_queries(mut input: SendableRecordBatchStream) -> Result<Vec<(u32, Vec<u32>)>> {
    let mut by_query: HashMap<u32, Vec<u32>> = HashMap::new();
    while let Some(batch) = input.next().await {
        let batch = batch?;
        let query = int64_column(&batch, "query_idx")?;
        let exclude = int64_column(&batch, "exclude_idx")?;
        for r in 0..batch.num_rows() {
            if query.is_null(r) {
                continue;
            }
            let entry = by_query.entry(query.value(r) as u32).or_default();
            if exclude.is_valid(r) {
                entry.push(exclude.value(r) as u32);
            }
        }
    }
    let mut queries: Vec<(u32, Vec<u32>)> = by_query.into_iter().collect();
    queries.sort_unstable_by_key(|q| q.0);
    for q in &mut queries {
        q.1.sort_unstable();
    }
    Ok(queries)
}

/// [`shared`] from blocking code: the index is built on this blocking thread, not on the runtime.
fn shared_blocking<T: Send + Sync + 'static>(key: String, build: impl FnOnce() -> T) -> Result<Arc<T>> {
    let handle = tokio::runtime::Handle::current();
    handle.block_on(shared(key, async { Ok(build()) }))
}

/// Scores every query against the candidate pool, or with `ivf = Some((index, probes))` against the
/// members of its `probes` nearest cells only; ties go to the lower index.
pub fn top_k(
    queries: &DenseVectors,
    candidates: &DenseVectors,
    pool: &[u32],
    excludes: &[(u32, Vec<u32>)],
    k: usize,
    ivf: Option<(&IvfIndex, usize)>,
) -> Result<RecordBatch> {
    // AVX2 where the CPU has it: 8 f32 lanes instead of SSE2's 4, same order of operations (no
    // FMA), so the same scores bit for bit. See `als_sweep::solve_block`.
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above.
        return unsafe { top_k_avx2(queries, candidates, pool, excludes, k, ivf) };
    }
    top_k_portable(queries, candidates, pool, excludes, k, ivf)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn top_k_avx2(
    queries: &DenseVectors,
    candidates: &DenseVectors,
    pool: &[u32],
    excludes: &[(u32, Vec<u32>)],
    k: usize,
    ivf: Option<(&IvfIndex, usize)>,
) -> Result<RecordBatch> {
    top_k_portable(queries, candidates, pool, excludes, k, ivf)
}

#[inline(always)]
fn top_k_portable(
    queries: &DenseVectors,
    candidates: &DenseVectors,
    pool: &[u32],
    excludes: &[(u32, Vec<u32>)],
    k: usize,
    ivf: Option<(&IvfIndex, usize)>,
) -> Result<RecordBatch> {
    let (mut q_out, mut rank_out, mut item_out, mut score_out) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut best = Best::new(k);
    let mut probed: Vec<usize> = Vec::new();
    let mut cell_scores: Vec<f32> = Vec::new();
    // The pool's vectors copied next to each other: scoring rows scattered over a large matrix
    // (721k x 64 ALS items, 185 MB) costs a cache miss per candidate; 20k packed rows stream.
    let dim = candidates.dim;
    let packed: Vec<f32> = if ivf.is_none() { pool.iter().flat_map(|&c| candidates.row(c as usize)).copied().collect() } else { Vec::new() };
    for (q, exclude) in excludes {
        if *q as usize >= queries.len() {
            return Err(DataFusionError::Execution(format!("query index {q} outside 0..{}", queries.len())));
        }
        if !queries.present[*q as usize] {
            continue;
        }
        let qv = queries.row(*q as usize);
        best.clear();
        match ivf {
            Some((index, probes)) => {
                index.probe(qv, probes, &mut probed);
                for &cell in &probed {
                    let members = index.score_cell(cell, qv, &mut cell_scores);
                    for (&c, &score) in members.iter().zip(&cell_scores) {
                        if best.admits(score) && exclude.binary_search(&c).is_err() {
                            best.push(score, c);
                        }
                    }
                }
            }
            None => {
                for (j, &c) in pool.iter().enumerate() {
                    let score = dot(qv, &packed[j * dim..(j + 1) * dim]);
                    if best.admits(score) && exclude.binary_search(&c).is_err() {
                        best.push(score, c);
                    }
                }
            }
        }
        for (r, (score, item)) in best.finish().iter().enumerate() {
            q_out.push(*q as i64);
            rank_out.push(r as i32 + 1);
            item_out.push(*item as i64);
            score_out.push(*score as f64);
        }
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(q_out)),
        Arc::new(Int32Array::from(rank_out)),
        Arc::new(Int64Array::from(item_out)),
        Arc::new(Float64Array::from(score_out)),
    ];
    Ok(RecordBatch::try_new(output_schema(), columns)?)
}

/// The best `k` (score, index) pairs of a stream: higher score first, ties to the lower index.
/// Candidates below the k-th best seen so far are refused with one comparison ([`Best::admits`]);
/// the rest are kept until 4k have piled up, then cut back to k. Scoring 16,000 IVF candidates
/// per query, pushing and partially sorting all of them cost more than the dot products did.
struct Best {
    k: usize,
    kept: Vec<(f32, u32)>,
    threshold: f32,
}

impl Best {
    fn new(k: usize) -> Self {
        Self { k, kept: Vec::with_capacity(4 * k.min(1 << 16) + 1), threshold: f32::NEG_INFINITY }
    }

    fn clear(&mut self) {
        self.kept.clear();
        self.threshold = f32::NEG_INFINITY;
    }

    /// False when `score` cannot make the top k. Equal scores are admitted: the index breaks ties.
    #[inline(always)]
    fn admits(&self, score: f32) -> bool {
        score >= self.threshold && self.k > 0
    }

    fn push(&mut self, score: f32, index: u32) {
        self.kept.push((score, index));
        if self.kept.len() >= 4 * self.k {
            self.cut();
            self.threshold = self.kept[self.k - 1].0;
        }
    }

    fn cut(&mut self) {
        let better = |a: &(f32, u32), b: &(f32, u32)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
        if self.kept.len() > self.k {
            self.kept.select_nth_unstable_by(self.k - 1, better);
            self.kept.truncate(self.k);
        }
        self.kept.sort_unstable_by(better);
    }

    /// The top k, best first.
    fn finish(&mut self) -> &[(f32, u32)] {
        if self.k > 0 {
            self.cut();
        }
        &self.kept
    }
}

#[cfg(test)]
mod tests {
    use super::Best;

    #[test]
    fn best_keeps_the_top_k_with_ties_to_the_lower_index() {
        // Scores with many ties, pushed in a scrambled order, through several cuts.
        let items: Vec<(f32, u32)> = (0..500u32).map(|i| (((i * 7919) % 37) as f32, (i * 263) % 500)).collect();
        for k in [1, 3, 10, 50] {
            let mut best = Best::new(k);
            for &(score, index) in &items {
                if best.admits(score) {
                    best.push(score, index);
                }
            }
            let mut want = items.clone();
            want.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            want.truncate(k);
            assert_eq!(best.finish(), &want[..], "k = {k}");
        }
    }
}
