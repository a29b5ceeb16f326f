#!/usr/bin/env bash
# The server Autobahn's fuzzingclient meets in the proxy run: `edgews proxy`
# on 127.0.0.1:9001 in front of `edgews echo --deflate dedicated` on
# 127.0.0.1:9011, so every case goes through the proxy's frame relay and
# permessage-deflate is negotiated end to end (run.sh passes this script as
# AUTOBAHN_SERVER_CMD; see scripts/test-all.sh). Stopping this script (the
# SIGTERM run.sh sends) stops both.
set -euo pipefail
BIN="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/target/release/edgews"
"$BIN" echo --listen 127.0.0.1:9011 --workers 1 --deflate dedicated &
UPSTREAM=$!
trap 'kill "$UPSTREAM" 2>/dev/null || true; wait "$UPSTREAM" 2>/dev/null || true' EXIT
trap 'exit 0' TERM INT
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/9011) 2>/dev/null && break; sleep 0.1; done
"$BIN" proxy --listen 127.0.0.1:9001 --workers 1 --upstream ws://127.0.0.1:9011 &
PROXY=$!
trap 'kill "$PROXY" "$UPSTREAM" 2>/dev/null || true; wait 2>/dev/null || true' EXIT
wait "$PROXY"
