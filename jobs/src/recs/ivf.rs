//! An inverted-file (IVF) index for approximate nearest neighbours by cosine: spherical k-means cuts
//! the candidate vectors into `lists` cells; a query is scored against every centroid, then only
//! against the members of its `probes` best cells (Jégou et al. 2011's IVF, without the product
//! quantisation: our vectors are small enough to keep whole).
//!
//! Why: exact content similarity for 1M tracks is 10¹² dot products, about an hour on 2 cores. With
//! √n cells and 16 probes a query scores about 1,000 centroids and 16,000 members instead of 10⁶.
//! `track_similarity` reports recall@K of the index against exact search on a sample of queries, so
//! the approximation is measured on whatever catalogue it runs, not assumed.
//!
//! The index depends only on the vectors, the candidate pool and (lists, seed): k-means starts from
//! a seeded sample, runs a fixed number of rounds over a fixed training subset, and breaks ties by
//! index, so every executor process builds the same index and results do not depend on the
//! partitioning. Each process builds it once and shares it between its tasks
//! ([`backbeat_cluster::broadcast::shared`]).

use rand::seq::index::sample;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::vectors::{DenseVectors, dot, norm};

/// How the index is built and searched.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct IvfParams {
    /// Cells; 0 picks √(candidates).
    pub lists: usize,
    /// Cells searched per query.
    pub probes: usize,
    /// Seed of the k-means start.
    pub seed: u64,
}

/// k-means rounds: past ~8 the cells barely move and recall stops changing.
const ROUNDS: usize = 8;
/// Training points per cell: k-means is fitted on a subset of at most `lists * TRAIN_PER_LIST` points.
const TRAIN_PER_LIST: usize = 64;

/// The built index: centroids and, per cell, its members (candidate indices, ascending) with
/// their vectors copied next to each other. The copy is what makes probing fast: members of one
/// cell lie scattered over the whole candidate matrix (48 MB for 1M x 12), so scoring them in
/// place costs a cache miss per member; packed, a cell streams from memory. The copy is
/// column-major (dimension by dimension): scoring a cell is then `dim` passes of
/// `scores[j] += q[d] * column_d[j]`, which the compiler vectorises across members, where a
/// 12-value dot product per member is too short to vectorise well.
pub struct IvfIndex {
    dim: usize,
    centroids: Vec<f32>,
    cells: Vec<Vec<u32>>,
    packed: Vec<Vec<f32>>,
}

impl IvfIndex {
    /// Clusters the `pool` rows of `vectors` (unit length for cosine) into cells.
    pub fn build(vectors: &DenseVectors, pool: &[u32], params: &IvfParams) -> Self {
        let dim = vectors.dim;
        let lists = if params.lists == 0 { (pool.len() as f64).sqrt().round() as usize } else { params.lists };
        let lists = lists.clamp(1, pool.len().max(1));
        let mut rng = ChaCha8Rng::seed_from_u64(params.seed);
        let train: Vec<u32> = if pool.len() <= lists * TRAIN_PER_LIST {
            pool.to_vec()
        } else {
            let mut picked: Vec<u32> = sample(&mut rng, pool.len(), lists * TRAIN_PER_LIST).into_iter().map(|i| pool[i]).collect();
            picked.sort_unstable();
            picked
        };
        let mut centroids: Vec<f32> = Vec::with_capacity(lists * dim);
        let mut starts: Vec<usize> = sample(&mut rng, train.len(), lists.min(train.len())).into_vec();
        starts.sort_unstable();
        for s in starts {
            centroids.extend_from_slice(vectors.row(train[s] as usize));
        }
        let lists = centroids.len() / dim.max(1);
        for _ in 0..ROUNDS {
            let mut sums = vec![0.0f64; lists * dim];
            let mut counts = vec![0usize; lists];
            for (&p, &c) in train.iter().zip(&assign(&centroids, dim, vectors, &train)) {
                let v = vectors.row(p as usize);
                counts[c] += 1;
                for (s, x) in sums[c * dim..(c + 1) * dim].iter_mut().zip(v) {
                    *s += *x as f64;
                }
            }
            for c in 0..lists {
                // An empty cell keeps its centroid: it may still attract points in the next round.
                if counts[c] == 0 {
                    continue;
                }
                let row = &mut centroids[c * dim..(c + 1) * dim];
                for (x, s) in row.iter_mut().zip(&sums[c * dim..(c + 1) * dim]) {
                    *x = *s as f32;
                }
                let n = norm(row);
                if n > 0.0 {
                    row.iter_mut().for_each(|x| *x /= n);
                }
            }
        }
        let mut cells = vec![Vec::new(); lists];
        for (&p, &c) in pool.iter().zip(&assign(&centroids, dim, vectors, pool)) {
            cells[c].push(p);
        }
        let packed = cells
            .iter()
            .map(|members| {
                let mut columns = vec![0.0f32; members.len() * dim];
                for (j, &p) in members.iter().enumerate() {
                    for (d, x) in vectors.row(p as usize).iter().enumerate() {
                        columns[d * members.len() + j] = *x;
                    }
                }
                columns
            })
            .collect();
        Self { dim, centroids, cells, packed }
    }

    /// The `probes` cells nearest to `query`, into `out` (cleared first).
    #[inline(always)]
    pub fn probe(&self, query: &[f32], probes: usize, out: &mut Vec<usize>) {
        let mut scored: Vec<(f32, usize)> = (0..self.cells.len()).map(|c| (dot(query, self.centroid(c)), c)).collect();
        let probes = probes.clamp(1, scored.len().max(1));
        let better = |a: &(f32, usize), b: &(f32, usize)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
        if probes < scored.len() {
            scored.select_nth_unstable_by(probes - 1, better);
        }
        out.clear();
        out.extend(scored[..probes.min(scored.len())].iter().map(|&(_, c)| c));
    }

    /// Cell `c`'s members, with their dot products with `query` in `scores` (resized to match).
    /// Each score sums the dimensions in order, so it is deterministic.
    #[inline(always)]
    pub fn score_cell<'a>(&'a self, c: usize, query: &[f32], scores: &mut Vec<f32>) -> &'a [u32] {
        let members = &self.cells[c];
        let n = members.len();
        scores.clear();
        scores.resize(n, 0.0);
        if n == 0 {
            return members;
        }
        for (d, column) in self.packed[c].chunks_exact(n).enumerate() {
            let q = query[d];
            for (s, x) in scores.iter_mut().zip(column) {
                *s += q * *x;
            }
        }
        members
    }

    /// Number of cells.
    pub fn lists(&self) -> usize {
        self.cells.len()
    }

    /// The candidates of the `probes` cells nearest to `query`, into `out` (cleared first): what
    /// [`Self::probe`] and [`Self::score_cell`] give the search, flattened for the tests.
    #[cfg(test)]
    pub fn candidates(&self, query: &[f32], probes: usize, out: &mut Vec<u32>) {
        let mut cells = Vec::new();
        self.probe(query, probes, &mut cells);
        out.clear();
        for c in cells {
            out.extend_from_slice(&self.cells[c]);
        }
    }

    fn centroid(&self, c: usize) -> &[f32] {
        &self.centroids[c * self.dim..(c + 1) * self.dim]
    }
}

/// The nearest centroid of each of `points`, on every core: a process builds the index once while
/// its other tasks wait for it, so one thread left the other core idle (1M tracks x 1,000 cells:
/// `nearest` was 21% of the whole 1M-track job's samples under `perf`). Each point's answer is
/// independent of the split, so the result is deterministic.
fn assign(centroids: &[f32], dim: usize, vectors: &DenseVectors, points: &[u32]) -> Vec<usize> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 16);
    let chunk = points.len().div_ceil(threads).max(1);
    let mut out = vec![0usize; points.len()];
    std::thread::scope(|scope| {
        for (ps, os) in points.chunks(chunk).zip(out.chunks_mut(chunk)) {
            scope.spawn(move || {
                for (p, o) in ps.iter().zip(os.iter_mut()) {
                    *o = nearest_dispatch(centroids, dim, vectors.row(*p as usize));
                }
            });
        }
    });
    out
}

/// [`nearest`] with AVX2 where the CPU has it (same order of operations, same answer).
fn nearest_dispatch(centroids: &[f32], dim: usize, v: &[f32]) -> usize {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above.
        return unsafe { nearest_avx2(centroids, dim, v) };
    }
    nearest(centroids, dim, v)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn nearest_avx2(centroids: &[f32], dim: usize, v: &[f32]) -> usize {
    nearest(centroids, dim, v)
}

/// The centroid with the largest dot product with `v`; ties go to the lower index.
#[inline(always)]
fn nearest(centroids: &[f32], dim: usize, v: &[f32]) -> usize {
    let mut best = (f32::NEG_INFINITY, 0);
    for (c, centroid) in centroids.chunks_exact(dim).enumerate() {
        let s = dot(v, centroid);
        if s > best.0 {
            best = (s, c);
        }
    }
    best.1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit_vectors(n: usize, dim: usize, seed: u64) -> DenseVectors {
        let mut v = DenseVectors::random(n, dim, seed, 7);
        for x in v.data.iter_mut() {
            *x -= 0.005;
        }
        for i in 0..n {
            let row = &mut v.data[i * dim..(i + 1) * dim];
            let n = norm(row);
            row.iter_mut().for_each(|x| *x /= n);
        }
        v
    }

    #[test]
    fn every_pool_member_lands_in_exactly_one_cell() {
        let v = unit_vectors(2000, 12, 1);
        let pool: Vec<u32> = (0..2000).filter(|i| i % 3 != 0).collect();
        let index = IvfIndex::build(&v, &pool, &IvfParams { lists: 0, probes: 4, seed: 9 });
        assert_eq!(index.lists(), (pool.len() as f64).sqrt().round() as usize);
        let mut all: Vec<u32> = index.cells.iter().flatten().copied().collect();
        all.sort_unstable();
        assert_eq!(all, pool);
        // Probing every cell returns the whole pool.
        let mut out = Vec::new();
        index.candidates(v.row(0), index.lists(), &mut out);
        out.sort_unstable();
        assert_eq!(out, pool);
    }

    #[test]
    fn probing_more_cells_finds_more_true_neighbours() {
        let v = unit_vectors(3000, 8, 2);
        let pool: Vec<u32> = (0..3000).collect();
        let index = IvfIndex::build(&v, &pool, &IvfParams { lists: 50, probes: 1, seed: 3 });
        let recall = |probes: usize| {
            let mut found = 0;
            let mut out = Vec::new();
            for q in (0..3000).step_by(30) {
                let mut exact: Vec<(f32, u32)> = pool.iter().filter(|&&c| c != q).map(|&c| (dot(v.row(q as usize), v.row(c as usize)), c)).collect();
                exact.sort_by(|a, b| b.0.total_cmp(&a.0));
                index.candidates(v.row(q as usize), probes, &mut out);
                found += exact[..10].iter().filter(|(_, c)| out.contains(c)).count();
            }
            found as f64 / (100.0 * 10.0)
        };
        let (one, eight, all) = (recall(1), recall(8), recall(50));
        assert!(one < eight && eight <= all, "recall by probes: 1 -> {one}, 8 -> {eight}, 50 -> {all}");
        assert_eq!(all, 1.0);
    }
}
