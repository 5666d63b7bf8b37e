//! `als_sweep`: the ALS half-sweep as an executor kernel that keeps its data resident between
//! sweeps, as Spark keeps ALS's cached in/out blocks.
//!
//! Why: run as one SQL job per half-sweep (scan the interactions, hash-shuffle them by the side
//! being solved, solve, commit the factors as a Delta version, sum the loss in another query), an
//! iteration at `datagen --scale 10` took 2.21 s, of which ~0.2 s was arithmetic. Now:
//! - the interactions are read once per executor process from the pinned Delta table and held as
//!   two CSR matrices, by user and by item ([`backbeat_cluster::broadcast::resident`]);
//! - each side's rows are cut into [`block_count`] contiguous blocks, a number that depends on the
//!   row count only, so the factors are bit-identical on any cluster; task p of P solves blocks p,
//!   p + P, ...;
//! - a solved block is an Arrow IPC file plus the block's Gram matrix XᵀX. The next half-sweep
//!   reads every block of the side it holds fixed and adds the Grams in block order, so YᵀY costs
//!   nothing extra, and the loss needs no extra pass (see [`super::als_solve`]);
//! - the job's input is P rows, `task` = 0..P, one per partition; a task solves the blocks of the
//!   task numbers it receives, so every block is solved once however the rows are spread. Its
//!   output is one row per block with the block's loss terms, which the client sums in block order.

use std::ops::Range;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, FixedSizeListArray, Float32Array, Float64Array, Int64Array};
use arrow::datatypes::{DataType, Field, Float32Type, Float64Type, Int64Type, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use backbeat_cluster::broadcast::{read_ipc, read_table, resident, shared, write_ipc};
use backbeat_cluster::map_partitions::PartitionKernel;
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::SendableRecordBatchStream;
use futures::future::BoxFuture;
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};

use super::als_solve::{AlsParams, FixedSide, fit_loss, gram, solve_row};
use super::vectors::{DenseVectors, vector_column, vector_type};

/// Registered name of [`AlsSweepKernel`].
pub const ALS_SWEEP: &str = "als_sweep";

/// Most blocks per side. 64 keeps every task of a 32-slot cluster busy with two blocks, and each
/// block of 1M items x rank 64 at 4 MB.
pub const MAX_BLOCKS: usize = 64;

/// Blocks a side of `n` rows is cut into.
pub fn block_count(n: usize) -> usize {
    n.clamp(1, MAX_BLOCKS)
}

/// The rows of block `b` of `blocks` over `n` rows.
pub fn block_range(n: usize, blocks: usize, b: usize) -> Range<usize> {
    b * n / blocks..(b + 1) * n / blocks
}

/// Which side a half-sweep solves.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// Users, items fixed.
    Users,
    /// Items, users fixed.
    Items,
}

/// Where a side's factors are.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum Factors {
    /// [`DenseVectors::random`] with this seed and stream.
    Random {
        /// Seed.
        seed: u64,
        /// Stream, so users and items differ.
        stream: u64,
    },
    /// Block files written by a half-sweep into this directory URL (ending in `/`).
    Blocks {
        /// Directory URL.
        dir: String,
    },
}

/// The interactions table `(user_idx, item_idx, plays)` at a version, with the side sizes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InteractionsRef {
    /// Delta table URI.
    pub uri: String,
    /// Pinned version.
    pub version: u64,
    /// Users: `user_idx` lies in `0..users`.
    pub users: usize,
    /// Items: `item_idx` lies in `0..items`.
    pub items: usize,
    /// The training run, so executors never reuse another run's resident copy.
    pub run: String,
}

/// What one `als_sweep` job does.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "task", rename_all = "snake_case")]
pub enum AlsTask {
    /// Solve every block of `side`, write them to `out`; output one row of loss terms per block.
    Sweep {
        /// The training data.
        interactions: InteractionsRef,
        /// Hyper-parameters.
        params: AlsParams,
        /// The side solved.
        side: Side,
        /// The other side's factors.
        fixed: Factors,
        /// This side's previous factors (conjugate gradient's warm start).
        start: Factors,
        /// Directory URL the solved blocks go to.
        out: String,
        /// Compute the loss terms (the item half-sweep's, after which the loss is reported).
        loss: bool,
        /// Tasks of the job (the input's partitions).
        tasks: usize,
    },
    /// Output the rows `(idx, factors)` of the blocks in `dir` for a side of `n` rows.
    Export {
        /// Directory URL of the blocks.
        dir: String,
        /// Rows of the side.
        n: usize,
        /// Factors per row.
        rank: usize,
        /// Tasks of the job.
        tasks: usize,
    },
}

/// The `als_sweep` kernel; its input is the task numbers (`task` BIGINT) whose blocks it solves.
#[derive(Debug, Default)]
pub struct AlsSweepKernel;

impl PartitionKernel for AlsSweepKernel {
    fn name(&self) -> &'static str {
        ALS_SWEEP
    }

    fn output_schema(&self, args: &serde_json::Value, input: &Schema) -> Result<SchemaRef> {
        if !matches!(input.field_with_name("task").map(|f| f.data_type()), Ok(DataType::Int64)) {
            return Err(DataFusionError::Plan(format!("als_sweep needs a BIGINT column task (input: {input})")));
        }
        let fields = match parse(args.clone())? {
            AlsTask::Sweep { .. } => vec![
                Field::new("block", DataType::Int64, false),
                Field::new("rows", DataType::Int64, false),
                Field::new("fit_loss", DataType::Float64, false),
                Field::new("reg", DataType::Float64, false),
            ],
            AlsTask::Export { .. } => vec![Field::new("idx", DataType::Int64, false), Field::new("factors", vector_type(), false)],
        };
        Ok(Arc::new(Schema::new(fields)))
    }

    fn run(&self, args: serde_json::Value, input: SendableRecordBatchStream, _partition: usize) -> BoxFuture<'static, Result<Vec<RecordBatch>>> {
        Box::pin(async move {
            let schema = AlsSweepKernel.output_schema(&args, &input.schema())?;
            let received: Vec<i64> = input
                .map_ok(|b| b.column_by_name("task").map(|c| c.as_primitive::<Int64Type>().iter().flatten().collect()).unwrap_or_else(Vec::new))
                .try_concat()
                .await?;
            match parse(args)? {
                AlsTask::Sweep { interactions, params, side, fixed, start, out, loss, tasks } => {
                    sweep(schema, &interactions, params, side, &fixed, &start, &out, loss, tasks, &received).await
                }
                AlsTask::Export { dir, n, rank, tasks } => export(schema, &dir, n, rank, tasks, &received).await,
            }
        })
    }
}

fn parse(args: serde_json::Value) -> Result<AlsTask> {
    serde_json::from_value(args).map_err(|e| DataFusionError::Plan(format!("als_sweep arguments: {e}")))
}

/// The blocks of task numbers `received`: task t of `tasks` solves blocks t, t + tasks, ...
fn my_blocks(blocks: usize, tasks: usize, received: &[i64]) -> Result<Vec<usize>> {
    let tasks = tasks.max(1);
    let mut mine = vec![];
    for &t in received {
        if !(0..tasks as i64).contains(&t) {
            return Err(DataFusionError::Execution(format!("als_sweep task number {t} outside 0..{tasks}")));
        }
        mine.extend((t as usize..blocks).step_by(tasks));
    }
    mine.sort_unstable();
    Ok(mine)
}

#[allow(clippy::too_many_arguments)]
async fn sweep(
    schema: SchemaRef,
    interactions: &InteractionsRef,
    params: AlsParams,
    side: Side,
    fixed: &Factors,
    start: &Factors,
    out: &str,
    loss: bool,
    tasks: usize,
    received: &[i64],
) -> Result<Vec<RecordBatch>> {
    let clock = std::time::Instant::now();
    let key = format!("{}@{}:{}", interactions.uri, interactions.version, interactions.run);
    let data = resident("als-interactions", key, load_interactions(interactions)).await?;
    let k = params.rank;
    let (n, n_other) = match side {
        Side::Users => (interactions.users, interactions.items),
        Side::Items => (interactions.items, interactions.users),
    };
    let fixed_key = format!("als-fixed:{k}:{n_other}:{}", serde_json::to_string(fixed).unwrap_or_default());
    let fixed = shared(fixed_key, load_fixed(fixed.clone(), n_other, k)).await?;
    let blocks = block_count(n);
    let mine = my_blocks(blocks, tasks, received)?;
    let loaded = clock.elapsed();
    let mut starts = Vec::with_capacity(mine.len());
    for &b in &mine {
        starts.push(load_block(start, n, k, b).await?);
    }
    let solved = tokio::task::spawn_blocking(move || {
        let csr = match side {
            Side::Users => &data.by_user,
            Side::Items => &data.by_item,
        };
        mine.iter()
            .zip(&starts)
            .map(|(&b, x0)| solve_block(&params, csr, &fixed, block_range(n, blocks, b), x0, loss).map(|s| (b, s)))
            .collect::<Result<Vec<_>>>()
    })
    .await
    .map_err(|e| DataFusionError::Execution(format!("als_sweep task: {e}")))??;

    let solved_at = clock.elapsed();
    let (mut ids, mut rows, mut fits, mut regs) = (vec![], vec![], vec![], vec![]);
    for (b, block) in &solved {
        write_ipc(&format!("{out}block-{b:03}.arrow"), &factor_batch(&block.factors, k)?).await?;
        let g: ArrayRef = Arc::new(Float64Array::from(block.gram.clone()));
        write_ipc(&format!("{out}gram-{b:03}.arrow"), &RecordBatch::try_from_iter([("gram", g)])?).await?;
        ids.push(*b as i64);
        rows.push((block.factors.len() / k.max(1)) as i64);
        fits.push(block.fit);
        regs.push(block.reg);
    }
    tracing::debug!(?side, blocks = ids.len(), load = ?loaded, solve = ?(solved_at - loaded), write = ?(clock.elapsed() - solved_at), "als_sweep task");
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(ids)),
        Arc::new(Int64Array::from(rows)),
        Arc::new(Float64Array::from(fits)),
        Arc::new(Float64Array::from(regs)),
    ];
    Ok(vec![RecordBatch::try_new(schema, columns)?])
}

async fn export(schema: SchemaRef, dir: &str, n: usize, k: usize, tasks: usize, received: &[i64]) -> Result<Vec<RecordBatch>> {
    let blocks = block_count(n);
    let mut out = vec![];
    for b in my_blocks(blocks, tasks, received)? {
        let range = block_range(n, blocks, b);
        let block = load_block(&Factors::Blocks { dir: dir.to_string() }, n, k, b).await?;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from_iter_values(range.clone().map(|i| i as i64))),
            vector_column(block.data.chunks(k.max(1)), range.len(), k),
        ];
        out.push(RecordBatch::try_new(schema.clone(), columns)?);
    }
    Ok(out)
}

/// One block's result.
struct SolvedBlock {
    factors: Vec<f32>,
    gram: Vec<f64>,
    fit: f64,
    reg: f64,
}

/// Solves a block, with AVX2 where the CPU has it: the solver's loops are 4-lane f64 dot products
/// and axpys, which SSE2 (the x86-64 baseline we compile for) runs 2 lanes at a time. Only the
/// vector width changes, not the order of operations (no FMA), so results are bit-identical with
/// and without it. Measured at `datagen --scale 10`, rank 64: item half-sweep 0.66-1.0 s without.
/// The same three-function pattern stands in `top_k` and `ivf` on purpose: a generic
/// `with_avx2(|| ...)` helper was tried and `perf` showed the closure compiled apart from the
/// AVX2 function (closures cannot be `#[inline(always)]` on stable Rust), so it ran as SSE2.
fn solve_block(p: &AlsParams, csr: &Csr, fixed: &FixedSide, range: Range<usize>, x0: &DenseVectors, loss: bool) -> Result<SolvedBlock> {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above.
        return unsafe { solve_block_avx2(p, csr, fixed, range, x0, loss) };
    }
    solve_block_portable(p, csr, fixed, range, x0, loss)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn solve_block_avx2(p: &AlsParams, csr: &Csr, fixed: &FixedSide, range: Range<usize>, x0: &DenseVectors, loss: bool) -> Result<SolvedBlock> {
    solve_block_portable(p, csr, fixed, range, x0, loss)
}

#[inline(always)]
fn solve_block_portable(p: &AlsParams, csr: &Csr, fixed: &FixedSide, range: Range<usize>, x0: &DenseVectors, loss: bool) -> Result<SolvedBlock> {
    let k = p.rank;
    let mut factors = Vec::with_capacity(range.len() * k);
    let (mut fit, mut reg) = (0.0, 0.0);
    for (j, row) in range.enumerate() {
        let (others, plays) = csr.row(row);
        let x = solve_row(fixed, others, plays, p, x0.row(j))?;
        if loss {
            fit += fit_loss(&fixed.y, others, plays, p.alpha, &x);
        }
        reg += p.row_lambda(others.len()) * x.iter().map(|v| (*v as f64) * (*v as f64)).sum::<f64>();
        factors.extend_from_slice(&x);
    }
    let g = gram(&factors, k);
    if loss {
        fit += fixed.gram.iter().zip(&g).map(|(a, b)| a * b).sum::<f64>();
    }
    Ok(SolvedBlock { factors, gram: g, fit, reg })
}

fn factor_batch(values: &[f32], k: usize) -> Result<RecordBatch> {
    let item = Arc::new(Field::new("item", DataType::Float32, false));
    let list = FixedSizeListArray::try_new(item, k as i32, Arc::new(Float32Array::from(values.to_vec())), None)?;
    Ok(RecordBatch::try_from_iter([("factors", Arc::new(list) as ArrayRef)])?)
}

/// Block `b` of a side of `n` rows.
async fn load_block(source: &Factors, n: usize, k: usize, b: usize) -> Result<DenseVectors> {
    let range = block_range(n, block_count(n), b);
    match source {
        Factors::Random { seed, stream } => Ok(DenseVectors::random_rows(range, k, *seed, *stream)),
        Factors::Blocks { dir } => {
            let uri = format!("{dir}block-{b:03}.arrow");
            let mut data = Vec::with_capacity(range.len() * k);
            for batch in read_ipc(&uri).await? {
                let list = batch.column(0).as_fixed_size_list_opt().filter(|l| l.value_length() as usize == k);
                let list = list.ok_or_else(|| DataFusionError::Execution(format!("{uri}: not a block of rank-{k} factors")))?;
                let values = list.values().as_primitive_opt::<Float32Type>();
                let values = values.ok_or_else(|| DataFusionError::Execution(format!("{uri}: factors are not floats")))?.values();
                data.extend_from_slice(&values[list.offset() * k..(list.offset() + list.len()) * k]);
            }
            if data.len() != range.len() * k {
                return Err(DataFusionError::Execution(format!("{uri}: {} values, expected {} rows x {k}", data.len(), range.len())));
            }
            Ok(DenseVectors { dim: k, data, present: vec![true; range.len()] })
        }
    }
}

/// The whole side held fixed, with its Gram matrix: summed from the blocks' in block order.
async fn load_fixed(source: Factors, n: usize, k: usize) -> Result<FixedSide> {
    match &source {
        Factors::Random { seed, stream } => {
            let (seed, stream) = (*seed, *stream);
            tokio::task::spawn_blocking(move || FixedSide::new(DenseVectors::random(n, k, seed, stream)))
                .await
                .map_err(|e| DataFusionError::Execution(format!("als_sweep Gram matrix: {e}")))
        }
        Factors::Blocks { dir } => {
            let blocks = block_count(n);
            let loads = (0..blocks).map(|b| {
                let source = &source;
                async move {
                    let block = load_block(source, n, k, b).await?;
                    let uri = format!("{dir}gram-{b:03}.arrow");
                    let mut g = Vec::with_capacity(k * k);
                    for batch in read_ipc(&uri).await? {
                        let column = batch.column(0).as_primitive_opt::<Float64Type>();
                        g.extend_from_slice(column.ok_or_else(|| DataFusionError::Execution(format!("{uri}: not a Gram matrix")))?.values());
                    }
                    if g.len() != k * k {
                        return Err(DataFusionError::Execution(format!("{uri}: {} values, expected {k} x {k}", g.len())));
                    }
                    Ok((block, g))
                }
            });
            // In block order, appended as each arrives: one copy of the side in memory, not two.
            let mut parts = std::pin::pin!(futures::stream::iter(loads).buffered(8));
            let mut y = DenseVectors { dim: k, data: Vec::with_capacity(n * k), present: vec![true; n] };
            let mut total = vec![0.0f64; k * k];
            while let Some((block, g)) = parts.try_next().await? {
                y.data.extend_from_slice(&block.data);
                total.iter_mut().zip(&g).for_each(|(t, v)| *t += v);
            }
            Ok(FixedSide { y, gram: total })
        }
    }
}

/// Interactions of one side: row r's others are `others[indptr[r]..indptr[r + 1]]`, ascending.
pub struct Csr {
    indptr: Vec<usize>,
    others: Vec<u32>,
    plays: Vec<f64>,
}

impl Csr {
    /// Builds from (row, other, plays) triples with unique (row, other) pairs.
    fn build(n: usize, rows: &[u32], others: &[u32], plays: &[f64]) -> Self {
        let mut indptr = vec![0usize; n + 1];
        for &r in rows {
            indptr[r as usize + 1] += 1;
        }
        for r in 0..n {
            indptr[r + 1] += indptr[r];
        }
        let mut fill = indptr.clone();
        let mut entries = vec![(0u32, 0.0f64); rows.len()];
        for ((&r, &o), &w) in rows.iter().zip(others).zip(plays) {
            entries[fill[r as usize]] = (o, w);
            fill[r as usize] += 1;
        }
        for r in 0..n {
            entries[indptr[r]..indptr[r + 1]].sort_unstable_by_key(|e| e.0);
        }
        Self { indptr, others: entries.iter().map(|e| e.0).collect(), plays: entries.iter().map(|e| e.1).collect() }
    }

    /// Row `r`'s interactions.
    pub fn row(&self, r: usize) -> (&[u32], &[f64]) {
        let span = self.indptr[r]..self.indptr[r + 1];
        (&self.others[span.clone()], &self.plays[span])
    }
}

/// The interactions, resident in an executor process across sweeps.
pub struct Interactions {
    by_user: Csr,
    by_item: Csr,
}

async fn load_interactions(source: &InteractionsRef) -> Result<Interactions> {
    let batches = read_table(&source.uri, Some(source.version), &["user_idx", "item_idx", "plays"]).await?;
    let (mut users, mut items, mut plays) = (vec![], vec![], vec![]);
    for batch in &batches {
        let u = batch.column(0).as_primitive_opt::<Int64Type>();
        let i = batch.column(1).as_primitive_opt::<Int64Type>();
        let w = batch.column(2).as_primitive_opt::<Float64Type>();
        let (Some(u), Some(i), Some(w)) = (u, i, w) else {
            return Err(DataFusionError::Execution(format!("{}: needs user_idx BIGINT, item_idx BIGINT, plays DOUBLE", source.uri)));
        };
        if u.null_count() + i.null_count() + w.null_count() > 0 {
            return Err(DataFusionError::Execution(format!("{}: NULL in user_idx, item_idx or plays", source.uri)));
        }
        for r in 0..batch.num_rows() {
            let (user, item, weight) = (u.value(r), i.value(r), w.value(r));
            if !(weight.is_finite() && weight >= 0.0) {
                return Err(DataFusionError::Execution(format!("interaction ({user}, {item}) has weight {weight}; weights must be finite and >= 0")));
            }
            if !(0..source.users as i64).contains(&user) || !(0..source.items as i64).contains(&item) {
                return Err(DataFusionError::Execution(format!("interaction ({user}, {item}) lies outside {} users x {} items", source.users, source.items)));
            }
            users.push(user as u32);
            items.push(item as u32);
            plays.push(weight);
        }
    }
    drop(batches);
    let (n_users, n_items) = (source.users, source.items);
    tokio::task::spawn_blocking(move || Interactions {
        by_user: Csr::build(n_users, &users, &items, &plays),
        by_item: Csr::build(n_items, &items, &users, &plays),
    })
    .await
    .map_err(|e| DataFusionError::Execution(format!("als_sweep interactions: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_cover_every_row_once() {
        for n in [1, 2, 7, 63, 64, 65, 1000] {
            let blocks = block_count(n);
            let covered: Vec<usize> = (0..blocks).flat_map(|b| block_range(n, blocks, b)).collect();
            assert_eq!(covered, (0..n).collect::<Vec<_>>(), "n = {n}");
            assert!((0..blocks).all(|b| !block_range(n, blocks, b).is_empty()), "an empty block at n = {n}");
        }
    }

    #[test]
    fn tasks_split_blocks_without_overlap() {
        let mut all: Vec<usize> = (0..3).flat_map(|t| my_blocks(10, 3, &[t]).unwrap()).collect();
        all.sort();
        assert_eq!(all, (0..10).collect::<Vec<_>>());
        // One task that receives every task number solves every block.
        assert_eq!(my_blocks(10, 3, &[2, 0, 1]).unwrap(), (0..10).collect::<Vec<_>>());
        assert!(my_blocks(10, 3, &[3]).is_err());
    }

    #[test]
    fn csr_rows_are_sorted_and_complete() {
        let csr = Csr::build(3, &[2, 0, 2, 0], &[5, 1, 4, 0], &[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(csr.row(0), (&[0u32, 1][..], &[4.0, 2.0][..]));
        assert_eq!(csr.row(1), (&[][..], &[][..]));
        assert_eq!(csr.row(2), (&[4u32, 5][..], &[3.0, 1.0][..]));
    }
}
