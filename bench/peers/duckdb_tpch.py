"""DuckDB as a peer engine for `backbeat bench tpch`.

Reads query numbers on stdin ("7" runs q7.sql), runs every statement of the query on DuckDB over
the same Parquet files, and prints one JSON line per query: elapsed milliseconds and the result
rows, each cell normalised exactly as backbeat's result_compare does (floats and decimals to
significant digits in Rust's `{:e}` style), so the harness can check the answers agree.
"""
import argparse
import datetime
import decimal
import json
import sys
import time

import duckdb

TABLES = ["customer", "lineitem", "nation", "orders", "part", "partsupp", "region", "supplier"]


def cell(v, digits):
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, (float, decimal.Decimal)):
        f = float(v)
        if f == 0.0:
            return "0"
        mantissa, exponent = f"{f:.{digits - 1}e}".split("e")
        return f"{mantissa}e{int(exponent)}"
    if isinstance(v, (datetime.date, datetime.datetime)):
        return v.isoformat()
    return str(v)


def statements(path):
    text = "\n".join(line for line in open(path) if not line.strip().startswith("--"))
    return [s.strip() for s in text.split(";") if s.strip()]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True)
    p.add_argument("--queries", required=True)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--digits", type=int, default=6)
    a = p.parse_args()
    con = duckdb.connect()
    con.execute(f"SET threads = {a.threads}")
    for t in TABLES:
        con.execute(f"CREATE VIEW {t} AS SELECT * FROM read_parquet('{a.data}/{t}/*.parquet')")
    print(json.dumps({"ready": duckdb.__version__}), flush=True)
    for line in sys.stdin:
        q = int(line)
        rows = []
        start = time.perf_counter()
        for sql in statements(f"{a.queries}/q{q}.sql"):
            result = con.execute(sql)
            if sql.lstrip().lower().startswith(("select", "with")):
                rows = result.fetchall()
        ms = (time.perf_counter() - start) * 1000.0
        out = sorted(" | ".join(cell(v, a.digits) for v in row) for row in rows)
        print(json.dumps({"ms": ms, "rows": out}), flush=True)


if __name__ == "__main__":
    main()
