"""The Spark session every peer script starts: local[N], no UI or progress bars, UTC, quiet logs.

Spark is imported here, not at module load, so scripts that only sometimes run Spark (the
`--engines` lists) do not pay for the JVM's Python side when they do not.
"""
import os


def session(app, threads, driver_memory, log_level="ERROR", **conf):
    """A local SparkSession named `app` with `threads` cores; `driver_memory` unless
    $SPARK_DRIVER_MEMORY says otherwise; `conf` adds settings (dots spelled as given)."""
    from pyspark.sql import SparkSession

    builder = (
        SparkSession.builder.master(f"local[{threads}]")
        .appName(app)
        .config("spark.driver.memory", os.environ.get("SPARK_DRIVER_MEMORY", driver_memory))
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.session.timeZone", "UTC")
    )
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(log_level)
    return spark
