"""implicit and Spark as peer engines for backbeat's implicit-feedback ALS benchmark.

Hu, Koren and Volinsky (2008): for every (user, item, plays) row the preference is p = 1 and the
confidence c = 1 + alpha * plays; absent pairs have p = 0, c = 1. The harness runs one process
per fit with --engine, --train (a Parquet file or directory with user_idx int64, item_idx int64,
plays float64; indices dense, so n = max + 1), --out and the hyperparameters. The peer writes
OUT/user_factors.parquet and OUT/item_factors.parquet (idx int64, factors list<float32>) and
prints one JSON line on stdout: engine, library version, load_ms (Parquet read plus building the
engine's input), fit_ms (fitting only, factors materialised), iteration_ms (per ALS iteration
where the library reports it, else []), users, items, nnz. Everything else goes to stderr.

The engines do not solve quite the same problem, and the harness should say so:
  * implicit: the ridge term is regularization * I for every user and item (plain HKV). Its
    conjugate-gradient solver (the default, 3 CG steps per row) is approximate by design.
  * Spark: the ridge term is regParam * n_u (or n_i), the row's number of ratings ("ALS-WR",
    Zhou et al. 2008; the MLlib guide, "Scaling of the regularization parameter"), solved exactly
    by Cholesky. The same --regularization is therefore a much stronger penalty in Spark.
Both take plays > 0; Spark gives a row with plays <= 0 preference 0, implicit would not.
"""
import argparse
import json
import os
import sys
import time

# implicit warns (rightly) that a threaded BLAS underneath its own threads is slow.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


def arguments():
    p = argparse.ArgumentParser()
    p.add_argument("--engine", required=True, choices=["implicit", "spark"])
    p.add_argument("--train", required=True, help="Parquet file or directory of Parquet files")
    p.add_argument("--out", required=True, help="directory for user_ and item_factors.parquet")
    p.add_argument("--factors", type=int, default=64)
    p.add_argument("--regularization", type=float, default=0.01)
    p.add_argument("--alpha", type=float, default=40.0)
    p.add_argument("--iterations", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=42)
    return p.parse_args()


def write_factors(path, idx, factors):
    """Writes idx int64 and factors list<float32>, one row per index, sorted by idx."""
    factors = np.ascontiguousarray(factors, dtype=np.float32)
    n, k = factors.shape
    offsets = pa.array(np.arange(0, n * k + 1, k, dtype=np.int32))
    lists = pa.ListArray.from_arrays(offsets, pa.array(factors.reshape(-1)))
    pq.write_table(pa.table({"idx": pa.array(idx, pa.int64()), "factors": lists}), path)


def run_implicit(a):
    import scipy.sparse
    import implicit
    from implicit.cpu.als import AlternatingLeastSquares

    start = time.perf_counter()
    t = pq.read_table(a.train, columns=["user_idx", "item_idx", "plays"])
    users = t["user_idx"].to_numpy()
    items = t["item_idx"].to_numpy()
    n_users, n_items = int(users.max()) + 1, int(items.max()) + 1
    plays = scipy.sparse.csr_matrix(
        (t["plays"].to_numpy().astype(np.float32), (users, items)), shape=(n_users, n_items)
    )  # coo -> csr sums duplicate (user, item) rows: their plays add up
    if plays.nnz != t.num_rows:
        print(f"{t.num_rows - plays.nnz} duplicate (user, item) rows merged", file=sys.stderr)
    # implicit (checked in 0.7.3, implicit/cpu/als.py) reads the matrix values as the confidence c
    # itself: fit() does `Cui = self.alpha * Cui` (only if alpha != 1.0), then the solvers add
    # (c - 1) * y y^T to Y^T Y and c * y to the right-hand side for each c > 0 (p = 1; a negative
    # value means p = 0 with confidence |c|). So its alpha is a multiplier on c, not HKV's alpha:
    # passing plays with alpha=40 would give c = 40 * plays. We store c = 1 + alpha * plays and
    # pass alpha=1.0.
    cui = plays.copy()
    cui.data = (1.0 + a.alpha * cui.data).astype(np.float32)
    load_ms = (time.perf_counter() - start) * 1000.0

    model = AlternatingLeastSquares(
        factors=a.factors, regularization=a.regularization, alpha=1.0, dtype=np.float32,
        use_cg=True, iterations=a.iterations, calculate_training_loss=False,
        num_threads=a.threads, random_state=a.seed,
    )
    # fit calls callback(iteration, elapsed seconds, loss) after each iteration; the elapsed time
    # covers both half-steps (users, then items), and loss is None without training loss.
    iteration_ms = []
    start = time.perf_counter()
    model.fit(cui, show_progress=False,
              callback=lambda it, seconds, loss: iteration_ms.append(seconds * 1000.0))
    fit_ms = (time.perf_counter() - start) * 1000.0

    os.makedirs(a.out, exist_ok=True)
    write_factors(f"{a.out}/user_factors.parquet", np.arange(n_users), model.user_factors)
    write_factors(f"{a.out}/item_factors.parquet", np.arange(n_items), model.item_factors)
    return implicit.__version__, load_ms, fit_ms, iteration_ms, n_users, n_items, cui.nnz


def run_spark(a):
    from pyspark.ml.recommendation import ALS
    from pyspark.sql import functions as F

    import local_spark

    spark = local_spark.session("backbeat-bench-als", a.threads, "4g", log_level="WARN")

    start = time.perf_counter()
    df = spark.read.parquet(a.train).select("user_idx", "item_idx", "plays").cache()
    nnz = df.count()
    row = df.agg(F.max("user_idx"), F.max("item_idx")).first()
    n_users, n_items = int(row[0]) + 1, int(row[1]) + 1
    load_ms = (time.perf_counter() - start) * 1000.0

    # Spark (ml.recommendation.ALS, implicitPrefs=True) uses c = 1 + alpha * |plays| and
    # p = 1 if plays > 0 else 0: the HKV mapping directly, so alpha is passed as is. Its ridge
    # term is regParam times the row's number of ratings with plays > 0 (ALS-WR), per the MLlib
    # guide; see the module docstring. Block counts (10 x 10) are Spark's defaults.
    als = ALS(
        rank=a.factors, maxIter=a.iterations, regParam=a.regularization, alpha=a.alpha,
        implicitPrefs=True, seed=a.seed, userCol="user_idx", itemCol="item_idx",
        ratingCol="plays", nonnegative=False, coldStartStrategy="drop",
    )
    start = time.perf_counter()
    model = als.fit(df)
    model.userFactors.count()  # fit is eager already; the counts make sure
    model.itemFactors.count()
    fit_ms = (time.perf_counter() - start) * 1000.0

    os.makedirs(a.out, exist_ok=True)
    for name, frame in (("user", model.userFactors), ("item", model.itemFactors)):
        t = frame.toArrow().sort_by("id")  # id int32, features list<float> (float32 already)
        write_factors(f"{a.out}/{name}_factors.parquet", t["id"].to_numpy().astype(np.int64),
                      np.stack(t["features"].to_numpy(zero_copy_only=False)))
    version = spark.version
    spark.stop()
    return version, load_ms, fit_ms, [], n_users, n_items, nnz


def main():
    a = arguments()
    run = run_implicit if a.engine == "implicit" else run_spark
    version, load_ms, fit_ms, iteration_ms, users, items, nnz = run(a)
    print(json.dumps({
        "engine": a.engine, "version": version, "load_ms": load_ms, "fit_ms": fit_ms,
        "iteration_ms": iteration_ms, "users": users, "items": items, "nnz": int(nnz),
    }), flush=True)


if __name__ == "__main__":
    main()
