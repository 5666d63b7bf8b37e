#!/usr/bin/env bash
# Usage: scripts/python_venv.sh NAME REQUIREMENTS_FILE
# Ensures a virtualenv with the pinned packages of REQUIREMENTS_FILE and prints its python.
# The venv is ${BACKBEAT_VENV_ROOT:-$HOME/.cache/backbeat}/NAME-venv, or $BACKBEAT_VENV when set
# (the per-purpose wrappers map their own overrides, e.g. BACKBEAT_DELTA_VENV, onto it).
# Idempotent and safe to call concurrently (flock on VENV.lock); it installs again whenever the
# requirements file differs from the copy stamped into the venv after the last install.
set -euo pipefail
if [ $# -ne 2 ]; then
  echo "usage: $0 NAME REQUIREMENTS_FILE" >&2
  exit 2
fi
NAME="$1"
REQ="$2"
if [ ! -f "$REQ" ]; then
  echo "$0: no requirements file $REQ" >&2
  exit 2
fi
VENV="${BACKBEAT_VENV:-${BACKBEAT_VENV_ROOT:-$HOME/.cache/backbeat}/$NAME-venv}"
mkdir -p "$(dirname "$VENV")"
exec 9>"$VENV.lock"
flock 9
STAMP="$VENV/.requirements"
if [ ! -x "$VENV/bin/python" ] || ! cmp -s "$REQ" "$STAMP"; then
  python3 -m venv "$VENV"
  rm -f "$STAMP"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$REQ" >&2
  cp "$REQ" "$STAMP"
fi
echo "$VENV/bin/python"
