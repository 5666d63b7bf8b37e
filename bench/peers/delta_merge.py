"""delta-rs's own MERGE and key DELETE, in one process, for `backbeat bench lake`.

Reads the change set (`changes`) and delete keys (`dels`) from the lake copy, then on its `big`
table runs the same two statements backbeat times: an upsert (update all columns of matched rows,
insert the rest) and a delete by key (delta-rs's idiom for a key list: MERGE ... WHEN MATCHED
DELETE). Prints one JSON line: seconds for each, delta-rs version, peak RSS.
"""
import argparse
import json
import os
import resource
import time

import deltalake


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--lake", required=True)
    args = p.parse_args()
    changes = deltalake.DeltaTable(os.path.join(args.lake, "changes")).to_pyarrow_table()
    dels = deltalake.DeltaTable(os.path.join(args.lake, "dels")).to_pyarrow_table()
    big = os.path.join(args.lake, "big")

    clock = time.perf_counter()
    (
        deltalake.DeltaTable(big)
        .merge(source=changes, predicate="t.id = s.id", source_alias="s", target_alias="t")
        .when_matched_update_all()
        .when_not_matched_insert_all()
        .execute()
    )
    merge_s = time.perf_counter() - clock

    clock = time.perf_counter()
    (
        deltalake.DeltaTable(big)
        .merge(source=dels, predicate="t.id = s.id", source_alias="s", target_alias="t")
        .when_matched_delete()
        .execute()
    )
    delete_s = time.perf_counter() - clock

    rows = deltalake.DeltaTable(big).to_pyarrow_table(columns=["id"]).num_rows
    # flush, then os._exit: the interpreter's shutdown, with delta-rs's and Arrow's thread pools
    # still up, sometimes aborted ("terminate called without an active exception") after the answer.
    print(json.dumps({
        "version": deltalake.__version__,
        "merge_s": merge_s,
        "delete_s": delete_s,
        "rows": rows,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }), flush=True)
    os._exit(0)


if __name__ == "__main__":
    main()
