"""The protocol `backbeat bench tpch` speaks with a peer engine in another process.

The harness starts the peer with --data, --queries, --threads and --digits, waits for one line
{"ready": "<engine version>"}, then writes query numbers on stdin ("7" runs q7.sql). For each the
peer runs every statement of the query and prints one JSON line: elapsed milliseconds and the
result rows, each cell normalised exactly as backbeat's result_compare does (floats and decimals
to significant digits in Rust's `{:e}` style, rows sorted), so the harness can check that all
engines agree. A failure is reported as {"error": "..."} and the peer keeps serving.
"""
import argparse
import datetime
import decimal
import json
import sys
import time

TABLES = ["customer", "lineitem", "nation", "orders", "part", "partsupp", "region", "supplier"]


def arguments():
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True, help="directory with one Parquet directory per table")
    p.add_argument("--queries", required=True, help="directory of q1.sql .. q22.sql")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--digits", type=int, default=4)
    return p.parse_args()


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


def returns_rows(sql):
    return sql.lstrip().lower().startswith(("select", "with"))


def serve(version, run_statement, digits, queries):
    """Announces `version`, then answers query numbers until stdin closes.

    `run_statement(sql)` runs one statement and returns its rows as tuples (or None for DDL).
    """
    print(json.dumps({"ready": version}), flush=True)
    for line in sys.stdin:
        q = int(line)
        try:
            rows = []
            start = time.perf_counter()
            for sql in statements(f"{queries}/q{q}.sql"):
                result = run_statement(sql)
                if returns_rows(sql):
                    rows = result
            ms = (time.perf_counter() - start) * 1000.0
            out = sorted(" | ".join(cell(v, digits) for v in row) for row in rows)
            print(json.dumps({"ms": ms, "rows": out}), flush=True)
        except Exception as e:  # report and keep serving: one failing query must not end the run
            print(json.dumps({"error": f"q{q}: {e}"}), flush=True)
