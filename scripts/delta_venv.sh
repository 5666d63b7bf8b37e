#!/usr/bin/env bash
# Ensures a virtualenv with delta-rs's Python package (pinned in scripts/delta-requirements.txt)
# and prints its python. Idempotent and safe to call concurrently; .ci/run and the tests use it.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
VENV="${BACKBEAT_DELTA_VENV:-$HOME/.cache/backbeat/delta-venv}"
REQ="$HERE/delta-requirements.txt"
mkdir -p "$(dirname "$VENV")"
exec 9>"$VENV.lock"
flock 9
STAMP="$VENV/.requirements"
if [ ! -x "$VENV/bin/python" ] || ! cmp -s "$REQ" "$STAMP"; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet -r "$REQ" >&2
  cp "$REQ" "$STAMP"
fi
echo "$VENV/bin/python"
