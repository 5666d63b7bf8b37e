#!/usr/bin/env bash
# The issue-12 scale run: datagen --scale 100, then the training pipeline, each step under /usr/bin/time -v.
# Needs bc and GNU time (/usr/bin/time). BIN, LAKE and OUT override the defaults below.
set -uo pipefail
BIN=${BIN:-target/release-nolto/backbeat}
LAKE=${LAKE:-bench-data/lake100}
OUT=${OUT:-bench-data/scale100}
mkdir -p "$OUT"
[ -d "$LAKE/listening_events" ] || /usr/bin/time -v "$BIN" datagen --scale 100 --seed 42 --out "$LAKE" > "$OUT/datagen.out" 2> "$OUT/datagen.time"
step() {
  name=$1; shift
  start=$(date +%s.%N)
  /usr/bin/time -v "$BIN" "$@" --lake "$LAKE" > "$OUT/$name.out" 2> "$OUT/$name.time"
  rc=$?
  end=$(date +%s.%N)
  rss=$(grep "Maximum resident" "$OUT/$name.time" | awk '{print $6}')
  printf "%-18s rc=%s wall=%.1fs maxrss=%.0fMB\n" "$name" "$rc" "$(echo "$end - $start" | bc)" "$(echo "$rss/1024" | bc)" | tee -a "$OUT/summary.txt"
}
for s in "$@"; do
  case $s in
    track_similarity) step track_similarity run track_similarity -p top=20 ;;
    item_similarity) step item_similarity run item_similarity ;;
    als_train) step als_train run als_train -p rank=64 -p iterations=10 ;;
    recommend) step recommend run recommend -p track_sim=${TRACK_SIM-track_similar} ;;
  esac
done
