"""Splink 5 (DuckDB backend) as the peer engine for backbeat's YouTube-item -> ISRC record linkage.

One process per run:

    python splink_isrc.py --items ITEMS.parquet --catalogue CATALOGUE.parquet --out MATCHES.parquet \
        [--threads 2] [--seed 42] [--max-pairs-u 1e6] [--recall 0.9] [--threshold 0.0] [--em-every-pair]

Inputs (Parquet files, or globs DuckDB's read_parquet accepts, written by backbeat):
  items      item_id utf8, title_n utf8, artist_n utf8, artists_n utf8 (every credited artist),
             duration_s int64, version_key utf8, title_b utf8, rare_b utf8, keys list<int64>,
             derivative bool (all nullable but item_id)
  catalogue  isrc utf8 and the same columns but derivative
title_n / artist_n are already normalised (lowercase, no diacritics, no punctuation, version tags
removed). The blocking columns are backbeat's, written by `backbeat bench isrc`: title_b and
rare_b are the title and its rarest word, NULL on the catalogue side where more recordings share
them than backbeat's caps allow; keys are backbeat's typo keys (one field exact, the other within
one deletion or truncated), the catalogue's capped the same way.

Model (a link_only Fellegi-Sunter model, trained without labels as Splink's tutorials do):
  unique_id   item_id and isrc are both renamed to unique_id; Splink adds source_dataset itself
              ('items' / 'catalogue', the registered display names) since neither table has one.
  blocking    backbeat's four rules: block_on("title_n", "artist_n"), block_on("keys") with keys
              exploded, block_on("title_b"), block_on("rare_b"); a pair found by several rules
              is scored once. Nulls never block (l.x = r.x).
  comparisons backbeat's levels (jobs/src/matching/compare.rs) as SQL conditions:
              title_n   null / exact / one edit (Damerau-Levenshtein <= 1, 5+ characters) /
                        prefix (4+ characters) / Jaro-Winkler >= 0.92 / >= 0.80 or every word of
                        one in the other / else
              artist_n  null / exact / Jaro-Winkler >= 0.90 / one main artist within the other
                        side's credits / else
              duration  null (either side) / |diff| <= 2 / <= 10 / <= 30 / else
              version   version_key equal / else
              No term-frequency adjustments.
  training    lambda: estimate_probability_two_random_records_match(
                  [block_on("title_n", "artist_n")], recall=0.9)
              u:      estimate_u_using_random_sampling(max_pairs=1e6, seed)
              m:      estimate_parameters_using_expectation_maximisation(block_on("title_n")), then
                      (block_on("artist_n")); each session fixes u and leaves out the comparison its
                      blocking rule uses, Splink's defaults. By default with
                      estimate_without_term_frequencies=True: each EM iteration then reads the
                      counts of each comparison-vector pattern instead of every blocked pair. The
                      model has no term-frequency adjustments, so the estimates are the same (checked
                      on Splink 5.0.0: m probabilities equal to ~1e-14) and EM is far faster on
                      large inputs. --em-every-pair keeps Splink's default (the tutorials' call),
                      which re-scores every blocked pair in every iteration.
  predict     every blocked pair is scored (threshold_match_probability 0.0 = no filter). Then, per
              item, the candidate with the highest match_weight (the same order as
              match_probability, but not saturated at 1.0) is kept, ties to the smaller isrc, and
              items with derivative = true are dropped. Items with no candidate pair get no row.

Writes OUT (item_id utf8, isrc utf8, match_probability double, match_weight double), sorted by
item_id. Prints one JSON line on stdout; Splink's logging and everything else goes to stderr.

Timings (milliseconds, as the other peers report them):
  load_ms      read both Parquet inputs into DuckDB tables (renamed, only the model's columns)
  training_ms  lambda_ms + u_ms + em_ms (building the Linker is in lambda_ms; em_ms is
               em_title_ms + em_artist_ms, one per EM session)
  predict_ms   blocking_ms (linker.inference.compute_blocked_pairs_for_predict, the blocked id
               pairs materialised) + scoring_ms (linker.inference.predict on those cached pairs:
               comparison vectors and match weights materialised)
  select_ms    best candidate per item, derivative filter, Parquet write
  total_ms     wall time of all of the above
Counts: pairs (blocked pairs, i.e. pairs compared), scored_pairs (rows predict returned),
matched_items (output rows), matched_items_p_ge_0_5, derivative_items (dropped).
"""
import argparse
import contextlib
import json
import os
import sys
import time


def arguments():
    p = argparse.ArgumentParser()
    p.add_argument("--items", required=True, help="items Parquet (item_id, title_n, artist_n, artists_n, duration_s, version_key, "
                                                   "title_b, rare_b, keys, derivative)")
    p.add_argument("--catalogue", required=True, help="catalogue Parquet (isrc and the items columns "
                                                       "but derivative)")
    p.add_argument("--out", required=True, help="output Parquet file (item_id, isrc, match_probability, "
                                                 "match_weight)")
    p.add_argument("--threads", type=int, default=2, help="DuckDB threads")
    p.add_argument("--seed", type=int, default=42, help="seed of estimate_u_using_random_sampling")
    p.add_argument("--max-pairs-u", type=float, default=1e6, help="max_pairs of estimate_u_using_random_sampling")
    p.add_argument("--recall", type=float, default=0.9,
                   help="assumed recall of the deterministic rule (title_n and artist_n exact)")
    p.add_argument("--threshold", type=float, default=0.0, help="threshold_match_probability of predict")
    p.add_argument("--model-json", help="also write the trained model (Splink's settings JSON) here")
    p.add_argument("--em-every-pair", action="store_true",
                   help="EM with Splink's default estimate_without_term_frequencies=False (same estimates, "
                        "slower; see the module docstring)")
    return p.parse_args()


def row(con, sql):
    """The single row `sql` returns. fetchall, not fetchone: DuckDB 2.0 refuses any further work
    on a connection whose last execute() result was not read to the end (ResourceInUseException)."""
    return con.execute(sql).fetchall()[0]


def sql_string(s):
    return "'" + s.replace("'", "''") + "'"


BLOCKING_COLUMNS = """CAST(artist_n AS VARCHAR) AS artist_n, CAST(artists_n AS VARCHAR) AS artists_n,
               CAST(duration_s AS BIGINT) AS duration_s, CAST(version_key AS VARCHAR) AS version_key,
               CAST(title_b AS VARCHAR) AS title_b, CAST(rare_b AS VARCHAR) AS rare_b,
               CAST(keys AS BIGINT[]) AS keys"""


def settings():
    import splink.comparison_level_library as cll
    import splink.comparison_library as cl
    from splink import SettingsCreator, block_on

    # Splink 5 has no cl.AbsoluteDifferenceAtThresholds (only the level, cll.AbsoluteDifferenceLevel),
    # so the duration comparison is built from levels. Its levels: null, <= 2, <= 10, <= 30, else
    # (no separate exact level: a 0 s difference is in <= 2).
    duration = cl.CustomComparison(
        comparison_levels=[
            cll.NullLevel("duration_s"),
            cll.AbsoluteDifferenceLevel("duration_s", 2),
            cll.AbsoluteDifferenceLevel("duration_s", 10),
            cll.AbsoluteDifferenceLevel("duration_s", 30),
            cll.ElseLevel(),
        ],
        output_column_name="duration_s",
        comparison_description="absolute difference of duration_s in seconds <= 2 / 10 / 30 vs. anything else",
    )
    # backbeat's title_level: exact / one edit / prefix / JW >= 0.92 / JW >= 0.80 or words contained.
    shorter = "least(length(title_n_l), length(title_n_r))"
    words = "list_has_all(string_split(title_n_{}, ' '), string_split(title_n_{}, ' '))"
    title = cl.CustomComparison(
        comparison_levels=[
            cll.NullLevel("title_n"),
            cll.ExactMatchLevel("title_n"),
            cll.CustomLevel(f"{shorter} >= 5 AND damerau_levenshtein(title_n_l, title_n_r) <= 1", "one edit"),
            cll.CustomLevel(f"{shorter} >= 4 AND (starts_with(title_n_l, title_n_r) OR starts_with(title_n_r, title_n_l))",
                            "prefix"),
            cll.JaroWinklerLevel("title_n", 0.92),
            cll.CustomLevel(f"jaro_winkler_similarity(title_n_l, title_n_r) >= 0.80 OR {words.format('l', 'r')} "
                            f"OR {words.format('r', 'l')}", "similar or words contained"),
            cll.ElseLevel(),
        ],
        output_column_name="title_n",
    )
    # backbeat's artist_level: exact / JW >= 0.90 / one main artist credited on the other side.
    artist = cl.CustomComparison(
        comparison_levels=[
            cll.NullLevel("artist_n"),
            cll.ExactMatchLevel("artist_n"),
            cll.JaroWinklerLevel("artist_n", 0.90),
            # Whole words of the other side's credits, and not a namesake that begins the other
            # main artist ("emma" / "emma river").
            cll.CustomLevel("NOT starts_with(artist_n_l, artist_n_r || ' ') AND NOT starts_with(artist_n_r, artist_n_l || ' ') "
                            "AND (contains(' ' || coalesce(artists_n_l, '') || ' ', ' ' || artist_n_r || ' ') "
                            "OR contains(' ' || coalesce(artists_n_r, '') || ' ', ' ' || artist_n_l || ' '))",
                            "credited"),
            cll.ElseLevel(),
        ],
        output_column_name="artist_n",
    )
    version = cl.CustomComparison(
        comparison_levels=[cll.CustomLevel("coalesce(version_key_l, '') = coalesce(version_key_r, '')", "same version"),
                           cll.ElseLevel()],
        output_column_name="version_key",
    )
    return SettingsCreator(
        link_type="link_only",
        unique_id_column_name="unique_id",
        blocking_rules_to_generate_predictions=[
            block_on("title_n", "artist_n"),
            block_on("keys", arrays_to_explode=["keys"]),
            block_on("title_b"),
            block_on("rare_b"),
        ],
        comparisons=[title, artist, duration, version],
        retain_matching_columns=False,
        retain_intermediate_calculation_columns=False,
    )


def main():
    a = arguments()
    import duckdb
    import splink
    from splink import DuckDBAPI, Linker, block_on

    con = duckdb.connect(":memory:")
    con.execute(f"SET threads={int(a.threads)}")
    con.execute("SET enable_progress_bar=false")  # DuckDB's bar would write to the terminal

    total_start = time.perf_counter()

    start = time.perf_counter()
    con.execute(f"""
        CREATE TABLE items AS
        SELECT CAST(item_id AS VARCHAR) AS unique_id, CAST(title_n AS VARCHAR) AS title_n,
               {BLOCKING_COLUMNS}
        FROM read_parquet({sql_string(a.items)})""")
    con.execute(f"""
        CREATE TABLE item_derivative AS
        SELECT CAST(item_id AS VARCHAR) AS item_id, coalesce(derivative, false) AS derivative
        FROM read_parquet({sql_string(a.items)})""")
    con.execute(f"""
        CREATE TABLE catalogue AS
        SELECT CAST(isrc AS VARCHAR) AS unique_id, CAST(title_n AS VARCHAR) AS title_n,
               {BLOCKING_COLUMNS}
        FROM read_parquet({sql_string(a.catalogue)})""")
    n_items = row(con, "SELECT count(*) FROM items")[0]
    n_catalogue = row(con, "SELECT count(*) FROM catalogue")[0]
    load_ms = (time.perf_counter() - start) * 1000.0

    # Splink logs to stderr; anything else a library prints goes there too, so stdout carries only
    # the JSON line.
    with contextlib.redirect_stdout(sys.stderr):
        db_api = DuckDBAPI(connection=con)
        start = time.perf_counter()
        items = db_api.register("items", dataset_display_name="items")
        catalogue = db_api.register("catalogue", dataset_display_name="catalogue")
        linker = Linker([items, catalogue], settings())
        linker.training.estimate_probability_two_random_records_match(
            [block_on("title_n", "artist_n")], recall=a.recall)
        lambda_ms = (time.perf_counter() - start) * 1000.0
        probability_two_random_records_match = float(linker._settings_obj._probability_two_random_records_match)

        start = time.perf_counter()
        linker.training.estimate_u_using_random_sampling(max_pairs=a.max_pairs_u, seed=a.seed)
        u_ms = (time.perf_counter() - start) * 1000.0

        em_session_ms, em_iterations = [], []
        for column in ("title_n", "artist_n"):
            start = time.perf_counter()
            session = linker.training.estimate_parameters_using_expectation_maximisation(
                block_on(column), estimate_without_term_frequencies=not a.em_every_pair)
            em_session_ms.append((time.perf_counter() - start) * 1000.0)
            # the history holds the starting parameters and then one entry per iteration
            em_iterations.append(len(getattr(session, "_core_model_settings_history", [None])) - 1)
        em_ms = sum(em_session_ms)
        if a.model_json:
            linker.misc.save_model_to_json(a.model_json, overwrite=True)

        start = time.perf_counter()
        blocked = linker.inference.compute_blocked_pairs_for_predict()
        pairs = row(con, f"SELECT count(*) FROM {blocked.physical_name}")[0]
        blocking_ms = (time.perf_counter() - start) * 1000.0

        start = time.perf_counter()
        predictions = linker.inference.predict(threshold_match_probability=a.threshold)
        scored = row(con, f"SELECT count(*) FROM {predictions.physical_name}")[0]
        scoring_ms = (time.perf_counter() - start) * 1000.0

    # Which side is the item depends on Splink's ordering of the two inputs, so it is read from
    # source_dataset rather than assumed. Best per item: the highest match_weight, then the
    # smallest isrc among the pairs with that weight (two aggregations and a join: faster than a
    # window sort of every scored pair). Equal weights mean equal probabilities, so max() of the
    # probability in the second aggregation is the chosen pair's.
    start = time.perf_counter()
    out_dir = os.path.dirname(os.path.abspath(a.out))
    os.makedirs(out_dir, exist_ok=True)
    con.execute(f"""
        CREATE TABLE best AS
        WITH pairs AS (
            SELECT CASE WHEN p.source_dataset_l = 'items' THEN p.unique_id_l ELSE p.unique_id_r END AS item_id,
                   CASE WHEN p.source_dataset_l = 'items' THEN p.unique_id_r ELSE p.unique_id_l END AS isrc,
                   CAST(p.match_probability AS DOUBLE) AS match_probability,
                   CAST(p.match_weight AS DOUBLE) AS match_weight
            FROM {predictions.physical_name} p
        ), kept AS (
            SELECT pairs.* FROM pairs
            WHERE pairs.item_id NOT IN (SELECT item_id FROM item_derivative WHERE derivative)
        ), top AS (
            SELECT item_id, max(match_weight) AS match_weight FROM kept GROUP BY item_id
        )
        SELECT k.item_id, min(k.isrc) AS isrc, max(k.match_probability) AS match_probability,
               max(k.match_weight) AS match_weight
        FROM kept k JOIN top t ON t.item_id = k.item_id AND t.match_weight = k.match_weight
        GROUP BY k.item_id
        ORDER BY k.item_id""")
    con.execute(f"COPY best TO {sql_string(a.out)} (FORMAT parquet)")
    matched, above_half = row(
        con, "SELECT count(*), count(*) FILTER (WHERE match_probability >= 0.5) FROM best")
    derivative = row(con, "SELECT count(*) FROM item_derivative WHERE derivative")[0]
    select_ms = (time.perf_counter() - start) * 1000.0
    total_ms = (time.perf_counter() - total_start) * 1000.0

    training_ms = lambda_ms + u_ms + em_ms
    print(json.dumps({
        "engine": "splink", "version": splink.__version__, "duckdb_version": duckdb.__version__,
        "threads": a.threads,
        "load_ms": load_ms,
        "training_ms": training_ms, "lambda_ms": lambda_ms, "u_ms": u_ms, "em_ms": em_ms,
        "em_title_ms": em_session_ms[0], "em_artist_ms": em_session_ms[1], "em_iterations": em_iterations,
        "em_counts": "pairs" if a.em_every_pair else "patterns",
        "predict_ms": blocking_ms + scoring_ms, "blocking_ms": blocking_ms, "scoring_ms": scoring_ms,
        "select_ms": select_ms, "total_ms": total_ms,
        "items": int(n_items), "catalogue": int(n_catalogue), "derivative_items": int(derivative),
        "pairs": int(pairs), "scored_pairs": int(scored),
        "matched_items": int(matched), "matched_items_p_ge_0_5": int(above_half),
        "probability_two_random_records_match": probability_two_random_records_match,
    }), flush=True)


if __name__ == "__main__":
    main()
