#!/usr/bin/env bash
# Ensures a MongoDB-wire-protocol server listens on 127.0.0.1:$BACKBEAT_MONGO_PORT (default 27017):
# SecantusDB from PyPI, installed once into a virtualenv. No mongod installs on this machine; the
# export tests and .ci/run use this. Idempotent and safe to call concurrently (the server must not
# inherit the lock's file descriptor, or it would hold the lock for its whole life).
set -euo pipefail
PORT="${BACKBEAT_MONGO_PORT:-27017}"
VENV="${BACKBEAT_MONGO_VENV:-$HOME/.cache/backbeat/mongo-venv}"
DATA="${BACKBEAT_MONGO_DATA:-$HOME/.cache/backbeat/mongo-data}"
VERSION="0.7.0b3"

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; }

listening && exit 0
mkdir -p "$(dirname "$VENV")" "$DATA"
exec 9>"$VENV.lock"
flock 9
listening && exit 0
if [ ! -x "$VENV/bin/secantusd-py" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet "SecantusDB==$VERSION"
fi
nohup "$VENV/bin/secantusd-py" --host 127.0.0.1 --port "$PORT" --storage-path "$DATA" >"$DATA/server.log" 2>&1 9>&- &
for _ in $(seq 1 100); do
  listening && exit 0
  sleep 0.2
done
echo "SecantusDB did not start on port $PORT; see $DATA/server.log" >&2
exit 1
