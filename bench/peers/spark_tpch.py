"""Spark as a peer engine for `backbeat bench tpch` (protocol: peer_protocol.py).

`local[N]` with N = the harness's thread count, over the same Parquet files backbeat reads,
registered as temporary views. Spark's defaults are kept (adaptive execution on, 200 shuffle
partitions that AQE coalesces) except the driver heap, raised to 8 GiB so SF1 and SF10 fit: the
default 1 GiB is a deployment accident, not Spark's speed. Only query execution is timed; the
JVM start and view registration are not.
"""
import re

import local_spark
from peer_protocol import TABLES, arguments, returns_rows, serve


def main():
    a = arguments()
    spark = local_spark.session("backbeat-bench-tpch", a.threads, "8g")
    for t in TABLES:
        spark.read.parquet(f"{a.data}/{t}").createOrReplaceTempView(t)

    def run(sql):
        # q15's view: a temporary view needs no metastore.
        sql = re.sub(r"^\s*create\s+view", "create or replace temporary view", sql, flags=re.I)
        df = spark.sql(sql)
        return [tuple(r) for r in df.collect()] if returns_rows(sql) else None

    serve(f"Spark {spark.version}", run, a.digits, a.queries)


if __name__ == "__main__":
    main()
