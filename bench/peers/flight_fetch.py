"""Query results into pandas: backbeat over Flight SQL (ADBC) beside DuckDB and Spark.

What a data scientist does in a notebook: run a query and get a pandas DataFrame. Three queries,
the same SQL text for every engine, over the Parquet directories of a generated lake
(`backbeat datagen --out LAKE`):

  scan     SELECT * FROM listening_events, all of it into pandas
  genre    plays, distinct tracks and skip rate per genre (listening_events joined to tracks)
  top100   the 100 most played tracks with their names

Engines:
  backbeat  ADBC Flight SQL (adbc_driver_flightsql) against a server that is already running
            (`backbeat serve --lake LAKE`), `cursor.execute(sql)` then `cursor.fetch_df()`. The
            URI is --uri (default $BACKBEAT_FLIGHT_URI); the bearer token, if the server wants
            one, is read from the environment variable named by --token-env. A fresh cursor per
            query, as the notebooks' helper does; ADBC's dbapi prepares each new SQL text
            (CreatePreparedStatement, then GetFlightInfo and DoGet), and that round trip is
            timed too. The server's own parallelism is whatever it was started with.
  duckdb    in process, views over read_parquet('LAKE/<table>/*.parquet'), `SET threads`,
            `con.sql(sql).df()`.
  spark     pyspark local[--threads] (driver heap $SPARK_DRIVER_MEMORY, default 2g), temporary
            views over spark.read.parquet, `spark.sql(sql).toPandas()` with Arrow on and the
            silent non-Arrow fallback off, so a failure of the Arrow path shows instead of being
            timed as something else.

Timed: from sending the query to holding the DataFrame. Not timed: connecting, starting the JVM,
registering views. For each query every engine runs once to warm up, then --runs timed runs
with the engines taking turns within each run; the report is the median. Afterwards the results
are checked against each other: the same row count and column names everywhere, the aggregate
and top-N rows equal (sorted, floats within --tolerance relative), and for the full scan a
per-column fingerprint (sums of numbers and booleans, distinct strings, first and last
timestamp in UTC). The exit status is 1 if any engine failed or any two disagree.

    python bench/peers/flight_fetch.py --lake LAKE --uri grpc://127.0.0.1:50050 \
        --engines backbeat,duckdb,spark --runs 3 --json out.json
"""
import argparse
import gc
import glob
import json
import math
import os
import statistics
import sys
import time

import pandas as pd

TABLES = ["listening_events", "tracks"]

QUERIES = {
    "scan": "SELECT * FROM listening_events",
    "genre": """
SELECT t.track_genre AS genre,
       COUNT(*) AS plays,
       COUNT(DISTINCT e.track_id) AS tracks,
       AVG(CAST(e.skipped AS DOUBLE)) AS skip_rate
FROM listening_events e
JOIN tracks t ON e.track_id = t.track_id
GROUP BY t.track_genre
ORDER BY plays DESC, genre""",
    "top100": """
SELECT e.track_id, t.track_name, t.artists, COUNT(*) AS plays
FROM listening_events e
JOIN tracks t ON e.track_id = t.track_id
GROUP BY e.track_id, t.track_name, t.artists
ORDER BY plays DESC, e.track_id
LIMIT 100""",
}

# Per-engine rewrites of a query, where a dialect needs one: {query: {engine: sql}}. None so far.
DIALECT = {}

DESCRIPTIONS = {
    "scan": "full scan of listening_events",
    "genre": "plays and skip rate per genre (join)",
    "top100": "100 most played tracks (join, top-N)",
}


def arguments():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lake", required=True, help="lake directory with Parquet table directories")
    p.add_argument("--uri", default=os.environ.get("BACKBEAT_FLIGHT_URI", "grpc://127.0.0.1:50050"),
                   help="Flight SQL URI of a running `backbeat serve` [$BACKBEAT_FLIGHT_URI]")
    p.add_argument("--token-env", default="BACKBEAT_FLIGHT_TOKEN",
                   help="environment variable holding the bearer token (unset or empty: none)")
    p.add_argument("--engines", default="backbeat,duckdb,spark")
    p.add_argument("--queries", default=",".join(QUERIES), help="subset of " + ",".join(QUERIES))
    p.add_argument("--runs", type=int, default=3, help="timed runs after one warm-up")
    p.add_argument("--threads", type=int, default=2, help="DuckDB threads and Spark local[N]")
    p.add_argument("--tolerance", type=float, default=1e-6, help="relative tolerance for floats")
    p.add_argument("--json", help="also write the results here")
    a = p.parse_args()
    a.engines = [e.strip() for e in a.engines.split(",") if e.strip()]
    a.queries = [q.strip() for q in a.queries.split(",") if q.strip()]
    for e in a.engines:
        if e not in ENGINES:
            p.error(f"unknown engine {e!r} (known: {', '.join(ENGINES)})")
    for q in a.queries:
        if q not in QUERIES:
            p.error(f"unknown query {q!r} (known: {', '.join(QUERIES)})")
    if a.runs < 1:
        p.error("--runs must be at least 1")
    return a


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def table_dir(lake, table):
    """The table's directory, checked to be plain Parquet files as datagen writes them."""
    d = os.path.join(lake, table)
    if os.path.isdir(os.path.join(d, "_delta_log")):
        # read_parquet over a Delta table's directory would also read files the log removed.
        raise SystemExit(f"{d} is a Delta table; this benchmark reads plain Parquet directories "
                         "(generate them with `backbeat datagen --out DIR`)")
    if not glob.glob(os.path.join(d, "*.parquet")):
        raise SystemExit(f"no *.parquet files directly under {d}")
    return os.path.abspath(d)


# ---- engines: each is a class with version, setup_s, fetch(sql) -> DataFrame and close() ----

class Backbeat:
    name = "backbeat"

    def __init__(self, a):
        import adbc_driver_flightsql
        import adbc_driver_flightsql.dbapi as flight

        token = os.environ.get(a.token_env, "")
        kwargs = {"adbc.flight.sql.authorization_header": f"Bearer {token}"} if token else {}
        start = time.perf_counter()
        self.conn = flight.connect(a.uri, db_kwargs=kwargs, autocommit=True)
        with self.conn.cursor() as cur:  # fails here, not in the first timed query, if unreachable
            cur.execute("SELECT 1")
            cur.fetchall()
        self.setup_s = time.perf_counter() - start
        try:
            info = self.conn.adbc_get_info()
            server = f"{info.get('vendor_name', 'backbeat')} {info.get('vendor_version', '')}".strip()
        except Exception:
            server = "backbeat"
        self.version = f"{server} via ADBC Flight SQL {adbc_driver_flightsql.__version__}"
        self.label = "backbeat (Flight SQL)"

    def fetch(self, sql):
        with self.conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetch_df()

    def close(self):
        self.conn.close()


class DuckDB:
    name = "duckdb"

    def __init__(self, a):
        import duckdb

        start = time.perf_counter()
        self.con = duckdb.connect()
        self.con.execute(f"SET threads = {a.threads}")
        for t in TABLES:
            path = table_dir(a.lake, t).replace("'", "''")
            self.con.execute(f"CREATE VIEW {t} AS SELECT * FROM read_parquet('{path}/*.parquet')")
        self.setup_s = time.perf_counter() - start
        self.version = f"DuckDB {duckdb.__version__}"
        self.label = self.version

    def fetch(self, sql):
        return self.con.sql(sql).df()

    def close(self):
        self.con.close()


class Spark:
    name = "spark"

    def __init__(self, a):
        import local_spark

        start = time.perf_counter()
        self.spark = local_spark.session(
            "backbeat-bench-flight-fetch",
            a.threads,
            "2g",
            **{"spark.sql.execution.arrow.pyspark.enabled": "true", "spark.sql.execution.arrow.pyspark.fallback.enabled": "false"},
        )
        for t in TABLES:
            self.spark.read.parquet(table_dir(a.lake, t)).createOrReplaceTempView(t)
        self.setup_s = time.perf_counter() - start
        self.version = f"Spark {self.spark.version}"
        self.label = self.version

    def fetch(self, sql):
        return self.spark.sql(sql).toPandas()

    def close(self):
        self.spark.stop()


ENGINES = {"backbeat": Backbeat, "duckdb": DuckDB, "spark": Spark}


# ---- comparing results ----

def plain(v):
    """A DataFrame cell as a plain Python value (None for every kind of missing)."""
    if v is None or v is pd.NA or v is pd.NaT:
        return None
    if isinstance(v, pd.Timestamp):
        if v.tzinfo is not None:
            v = v.tz_convert("UTC").tz_localize(None)
        return v.isoformat()
    if hasattr(v, "item") and not isinstance(v, (str, bytes)):
        v = v.item()  # numpy scalar
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


def rows_of(df):
    return [tuple(plain(v) for v in row) for row in df.itertuples(index=False, name=None)]


def sort_key(row):
    # Floats rounded for ordering only, so that engines' last-bit differences sort alike.
    return tuple("" if v is None else f"{v:.6g}" if isinstance(v, float) else str(v) for v in row)


def fingerprint(df):
    """One row per column, cheap to compare: what a full scan's values add up to."""
    out = []
    for name in df.columns:
        s = df[name]
        if pd.api.types.is_bool_dtype(s.dtype):
            out.append((name.lower(), "true", int(s.sum())))
        elif pd.api.types.is_integer_dtype(s.dtype):
            out.append((name.lower(), "sum", int(s.sum())))
        elif pd.api.types.is_float_dtype(s.dtype):
            out.append((name.lower(), "sum", float(s.sum())))
        elif pd.api.types.is_datetime64_any_dtype(s.dtype):
            if getattr(s.dt, "tz", None) is not None:
                s = s.dt.tz_convert("UTC").dt.tz_localize(None)
            out.append((name.lower(), "first", plain(s.min())))
            out.append((name.lower(), "last", plain(s.max())))
        else:
            out.append((name.lower(), "distinct", int(s.nunique(dropna=True))))
    return sorted(out)


def values_match(x, y, tol):
    if x is None or y is None:
        return x is None and y is None
    if isinstance(x, bool) or isinstance(y, bool):
        return x == y
    if isinstance(x, (int, float)) and isinstance(y, (int, float)):
        if isinstance(x, int) and isinstance(y, int):
            return x == y
        return math.isclose(x, y, rel_tol=tol, abs_tol=tol * 1e-3)
    return x == y


def first_difference(rows_a, rows_b, tol):
    """None if the two row lists agree (sorted, floats within tol), else a description."""
    if len(rows_a) != len(rows_b):
        return f"{len(rows_a)} rows against {len(rows_b)}"
    for ra, rb in zip(sorted(rows_a, key=sort_key), sorted(rows_b, key=sort_key)):
        if len(ra) != len(rb) or not all(values_match(x, y, tol) for x, y in zip(ra, rb)):
            return f"row {ra} against {rb}"
    return None


def summarise(query, df):
    """What is kept of a result for the comparison once its timing is done."""
    return {
        "rows": len(df),
        "columns": [str(c).lower() for c in df.columns],
        "values": [tuple(r) for r in fingerprint(df)] if query == "scan" else rows_of(df),
    }


def compare(results, tol):
    """Disagreements between engines, as sentences. results: {query: {engine: summary}}."""
    problems = []
    for q, by_engine in results.items():
        engines = [e for e, s in by_engine.items() if "error" not in s]
        problems += [f"{q}: {e} failed: {s['error']}" for e, s in by_engine.items() if "error" in s]
        if len(engines) < 2:
            continue
        base = engines[0]
        b = by_engine[base]
        for e in engines[1:]:
            s = by_engine[e]
            if s["rows"] != b["rows"]:
                problems.append(f"{q}: {e} returned {s['rows']} rows, {base} {b['rows']}")
            elif s["columns"] != b["columns"]:
                problems.append(f"{q}: {e} columns {s['columns']}, {base} {b['columns']}")
            else:
                diff = first_difference(b["values"], s["values"], tol)
                if diff:
                    problems.append(f"{q}: {base} and {e} differ: {diff}")
    return problems


# ---- the run ----

def timed(engine, sql):
    gc.collect()
    start = time.perf_counter()
    df = engine.fetch(sql)
    return time.perf_counter() - start, df


def main():
    a = arguments()
    engines = {}
    try:
        for name in a.engines:
            log(f"starting {name} ...")
            engines[name] = ENGINES[name](a)
            log(f"  {engines[name].version}, set up in {engines[name].setup_s:.2f} s")

        times = {q: {e: [] for e in engines} for q in a.queries}
        results = {q: {} for q in a.queries}
        for q in a.queries:
            sql = {e: DIALECT.get(q, {}).get(e, QUERIES[q]) for e in engines}
            failed = set()
            for e, engine in engines.items():
                try:
                    t, df = timed(engine, sql[e])
                    log(f"{q} {e} warm-up {t:.3f} s, {len(df)} rows")
                    del df
                except Exception as ex:  # one engine failing must not hide the others' results
                    failed.add(e)
                    results[q][e] = {"error": f"{type(ex).__name__}: {ex}".strip()}
                    log(f"{q} {e} failed: {ex}")
            for run in range(a.runs):
                for e, engine in engines.items():
                    if e in failed:
                        continue
                    try:
                        t, df = timed(engine, sql[e])
                    except Exception as ex:
                        failed.add(e)
                        results[q][e] = {"error": f"{type(ex).__name__}: {ex}".strip()}
                        log(f"{q} {e} failed in run {run + 1}: {ex}")
                        continue
                    times[q][e].append(t)
                    log(f"{q} {e} run {run + 1}: {t:.3f} s")
                    if run == a.runs - 1:
                        results[q][e] = summarise(q, df)
                    del df
    finally:
        for e in engines.values():
            try:
                e.close()
            except Exception:
                pass

    problems = compare(results, a.tolerance)
    report(a, engines, times, results, problems)
    return 1 if problems else 0


def report(a, engines, times, results, problems):
    labels = {e: engines[e].label for e in engines}
    lines = [
        "| query | rows | " + " | ".join(f"{labels[e]} (s)" for e in engines) + " |",
        "|---|---:|" + "---:|" * len(engines),
    ]
    for q in a.queries:
        rows = sorted({s["rows"] for s in results[q].values() if "rows" in s})
        cells = []
        for e in engines:
            cells.append(f"{statistics.median(times[q][e]):.3f}" if e in results[q]
                         and "error" not in results[q][e] else "failed")
        row_text = ", ".join(f"{r:,}" for r in rows) or "-"
        lines.append(f"| {q}: {DESCRIPTIONS[q]} | {row_text} | " + " | ".join(cells) + " |")
    print("\n".join(lines))
    print()
    print(f"Median of {a.runs} timed run(s) after one warm-up, seconds from query to pandas "
          f"DataFrame. DuckDB threads and Spark local[N]: {a.threads}; backbeat at {a.uri} "
          f"with the server's own parallelism.")
    print("Set-up, not timed: " + ", ".join(f"{labels[e]} {engines[e].setup_s:.2f} s" for e in engines))
    if problems:
        print("\nENGINES DISAGREE:")
        for p in problems:
            print(f"- {p}")
    elif len(engines) > 1:
        print("All engines returned the same rows.")

    if a.json:
        doc = {
            "lake": os.path.abspath(a.lake),
            "uri": a.uri if "backbeat" in engines else None,
            "runs": a.runs,
            "threads": a.threads,
            "engines": {e: {"version": engines[e].version, "setup_s": engines[e].setup_s}
                        for e in engines},
            "queries": {
                q: {
                    "sql": QUERIES[q].strip(),
                    "results": {
                        e: ({"error": results[q][e]["error"]} if "error" in results[q].get(e, {})
                            else {"median_s": statistics.median(times[q][e]),
                                  "runs_s": times[q][e],
                                  "rows": results[q][e]["rows"],
                                  "columns": results[q][e]["columns"]})
                        for e in engines if e in results[q]
                    },
                }
                for q in a.queries
            },
            "agree": not problems,
            "problems": problems,
        }
        with open(a.json, "w") as f:
            json.dump(doc, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    sys.exit(main())
