#!/usr/bin/env bash
# Ensures an S3-compatible server (moto's server mode, scripts/s3-requirements.txt, in a virtualenv)
# listens on 127.0.0.1:$BACKBEAT_S3_PORT (default 5055) and prints its endpoint URL. The
# object-storage tests and .ci/run use it; moto keeps buckets in memory, so each test makes its own.
# Idempotent and safe to call concurrently (the server must not inherit the lock's descriptor).
set -euo pipefail
PORT="${BACKBEAT_S3_PORT:-5055}"
DIR="$(cd "$(dirname "$0")" && pwd)"
LOG="${BACKBEAT_VENV_ROOT:-$HOME/.cache/backbeat}/s3-server.log"

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; }

if ! listening; then
  PYTHON="$(bash "$DIR/python_venv.sh" s3 "$DIR/s3-requirements.txt")"
  exec 9>"$LOG.lock"
  flock 9
  if ! listening; then
    nohup "$(dirname "$PYTHON")/moto_server" -H 127.0.0.1 -p "$PORT" >"$LOG" 2>&1 9>&- &
    for _ in $(seq 1 150); do
      listening && break
      sleep 0.2
    done
    listening || { echo "moto did not start on port $PORT; see $LOG" >&2; exit 1; }
  fi
fi
echo "http://127.0.0.1:$PORT"
