"""DuckDB as a peer engine for `backbeat bench tpch` (protocol: peer_protocol.py).

Views over the same Parquet files backbeat reads; `SET threads` to the harness's thread count.
Only query execution is timed.
"""
import duckdb

from peer_protocol import TABLES, arguments, returns_rows, serve


def main():
    a = arguments()
    con = duckdb.connect()
    con.execute(f"SET threads = {a.threads}")
    for t in TABLES:
        con.execute(f"CREATE VIEW {t} AS SELECT * FROM read_parquet('{a.data}/{t}/*.parquet')")

    def run(sql):
        result = con.execute(sql)
        return result.fetchall() if returns_rows(sql) else None

    serve(f"DuckDB {duckdb.__version__}", run, a.digits, a.queries)


if __name__ == "__main__":
    main()
