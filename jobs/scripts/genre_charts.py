# job: genre_charts
# description: Each genre's most played tracks, as a lake table (a Python job script over Flight SQL)
# param: top int = 10 -- tracks kept per genre
# param: events table = listening_events -- listening events: user_id, track_id
# param: tracks table = tracks -- tracks: track_id, track_genre
# param: out table = genre_charts -- table to write
"""A data scientist's job script, run by `backbeat run jobs/scripts/genre_charts.py -p top=5`.

backbeat starts a Flight SQL server for the run and says where in the environment; the heavy work
(the join, the window) runs on the cluster, and pandas only sees the chart it checks. Parameters
arrive checked against the header's types, so the table names are identifiers and `top` a number.
"""
import os
import sys

import adbc_driver_flightsql.dbapi as flight

conn = flight.connect(
    os.environ["BACKBEAT_FLIGHT_URI"],
    db_kwargs={"adbc.flight.sql.authorization_header": "Bearer " + os.environ["BACKBEAT_FLIGHT_TOKEN"]},
)
top = int(os.environ["BACKBEAT_PARAM_TOP"])
events, tracks, out = (os.environ[f"BACKBEAT_PARAM_{p}"] for p in ("EVENTS", "TRACKS", "OUT"))

with conn.cursor() as cur:
    cur.execute(
        f"""CREATE OR REPLACE TABLE {out} AS
        SELECT track_genre, track_id, plays, chart_position FROM (
            SELECT t.track_genre, e.track_id, count(*) AS plays,
                   row_number() OVER (PARTITION BY t.track_genre ORDER BY count(*) DESC, e.track_id) AS chart_position
            FROM {events} e JOIN {tracks} t ON e.track_id = t.track_id
            GROUP BY t.track_genre, e.track_id)
        WHERE chart_position <= {top}"""
    )
    written = cur.fetchall()[0][0]
    cur.execute(f"SELECT * FROM {out} ORDER BY track_genre, chart_position")
    chart = cur.fetch_df()
conn.close()

# A chart that is not one is a failed run, not a table nobody looks at.
if chart.empty:
    sys.exit(f"{out} is empty: no plays joined to a track in {events} and {tracks}")
per_genre = chart.groupby("track_genre")["chart_position"].max()
assert (per_genre <= top).all(), "a genre has more tracks than --top"
ordered = chart.groupby("track_genre")["plays"].apply(lambda s: s.is_monotonic_decreasing)
assert ordered.all(), "chart positions are not in descending play order"
print(f"{out}: {written} rows, {len(per_genre)} genres, top {top}; number ones:")
print(chart[chart.chart_position == 1].head(10).to_string(index=False))
