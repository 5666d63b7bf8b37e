#!/usr/bin/env bash
# delta-rs's Python package (scripts/delta-requirements.txt), which the lake-operations tests read tables back with: ensures its venv, prints its python. BACKBEAT_DELTA_VENV overrides the venv path.
BACKBEAT_VENV="${BACKBEAT_DELTA_VENV:-}" exec bash "$(dirname "$0")/python_venv.sh" delta "$(dirname "$0")/delta-requirements.txt"
