#!/usr/bin/env bash
# Interop with independent implementations, all on 127.0.0.1:
#   1. Python `websockets` as a client against `edgews echo`;
#   2. the edgews client (examples/interop_client) against a `websockets` server;
#   3. Node `ws` clients against `edgews broadcast`.
# setup.sh installs the peers (venv, npm) under git-ignored folders; if it
# cannot, this fails loudly: the peers are never skipped.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
log() { echo "[interop +${SECONDS}s] $*" >&2; }

"$HERE/setup.sh"
(cd "$ROOT" && cargo build --release --quiet --bin edgews --example interop_client)
EDGEWS="$ROOT/target/release/edgews"
PY="$HERE/venv/bin/python"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

# Starts a server in the background; prints nothing. Waits for its port.
start() {  # $1 = port, rest = command
    local port="$1"; shift
    "$@" > "$HERE/.server-$port.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
        sleep 0.1
    done
    cat "$HERE/.server-$port.log" >&2
    echo "server on port $port did not start" >&2
    return 1
}

FAILED=0
log "1. websockets client -> edgews echo"
start 9401 env EDGEWS_LOG=warn "$EDGEWS" echo --listen 127.0.0.1:9401
timeout 120 "$PY" "$HERE/py_client.py" ws://127.0.0.1:9401/ || FAILED=1

log "2. edgews client -> websockets server"
start 9402 "$PY" "$HERE/py_server.py" --port 9402 --duration 120
timeout 120 "$ROOT/target/release/examples/interop_client" ws://127.0.0.1:9402/ || FAILED=1

log "3. ws (Node) clients -> edgews broadcast"
start 9403 env EDGEWS_LOG=warn "$EDGEWS" broadcast --listen 127.0.0.1:9403
timeout 120 node "$HERE/node_broadcast.js" ws://127.0.0.1:9403/ --clients 8 --messages 50 || FAILED=1

rm -f "$HERE"/.server-*.log
if [[ $FAILED != 0 ]]; then
    echo "interop: FAILED" >&2
    exit 1
fi
log "interop: all peers agree"
