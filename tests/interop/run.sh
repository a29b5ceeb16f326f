#!/usr/bin/env bash
# Interop with independent implementations, all on 127.0.0.1:
#   1. Python `websockets` as a client against `edgews echo` (deflate off:
#      the client's permessage-deflate offer must be declined);
#   2. the edgews client (examples/interop_client) against a `websockets`
#      server that refuses compression;
#   3. Node `ws` clients against `edgews broadcast` (no extension offered);
# and the same peers with permessage-deflate (RFC 7692), proven both ways:
#   4-5. `websockets` client -> `edgews echo --deflate dedicated|shared`;
#   6.   edgews client -> `websockets` server with compression, asserted
#        from the server's per-connection log;
#   7-8. Node `ws` clients with deflate -> `edgews broadcast --deflate
#        shared|dedicated`.
# setup.sh installs the peers (venv, npm) under git-ignored folders; if it
# cannot, this fails loudly: the peers are never skipped.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
log() { echo "[interop +${SECONDS}s] $*" >&2; }

"$HERE/setup.sh"
(cd "$ROOT" && cargo build --release --quiet --bin edgews --example interop_client)
EDGEWS="$ROOT/target/release/edgews"
CLIENT="$ROOT/target/release/examples/interop_client"
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

# Asserts from py_server.py's log (two lines per connection, see its
# docstring) what the edgews client negotiated and sent. $1 = port,
# $2 = deflate (every connection negotiated permessage-deflate and at least
# one message arrived compressed) or none (no connection negotiated any
# extension, no message arrived compressed).
check_py_server_log() {
    local port="$1" want="$2" opened closed
    local f="$HERE/.server-$port.log"
    # A connection's "closed" line may follow the client's exit by a moment.
    for _ in $(seq 50); do
        opened=$(grep -c '^conn [0-9]* extensions: ' "$f" || true)
        closed=$(grep -c '^conn [0-9]* closed ' "$f" || true)
        [[ $opened -gt 0 && $opened == "$closed" ]] && break
        sleep 0.1
    done
    grep '^conn ' "$f" | sed 's/^/  py_server: /' || true
    local why=""
    if [[ $opened == 0 ]]; then
        why="no connection logged"
    elif [[ $opened != "$closed" ]]; then
        why="$opened connections opened but $closed closed"
    elif [[ $want == deflate ]]; then
        if grep '^conn [0-9]* extensions: ' "$f" | grep -qv 'extensions: permessage-deflate'; then
            why="a connection did not negotiate permessage-deflate"
        elif ! grep -q '^conn [0-9]* closed .*([1-9][0-9]* compressed)' "$f"; then
            why="no message from the client arrived compressed"
        fi
    else
        if grep '^conn [0-9]* extensions: ' "$f" | grep -qv 'extensions: none '; then
            why="a connection negotiated an extension"
        elif grep -q '^conn [0-9]* closed .*([1-9][0-9]* compressed)' "$f"; then
            why="a message arrived compressed"
        fi
    fi
    if [[ -n $why ]]; then
        echo "FAIL py_server-log-$want: $why"
        return 1
    fi
    echo "ok py_server-log-$want"
}

FAILED=0
log "1. websockets client -> edgews echo (deflate off by default)"
start 9401 env EDGEWS_LOG=warn "$EDGEWS" echo --listen 127.0.0.1:9401
timeout 120 "$PY" "$HERE/py_client.py" ws://127.0.0.1:9401/ --expect-no-deflate || FAILED=1

log "2. edgews client -> websockets server (compression refused)"
start 9402 "$PY" "$HERE/py_server.py" --port 9402 --duration 120 --no-compression
timeout 120 "$CLIENT" ws://127.0.0.1:9402/ || FAILED=1
check_py_server_log 9402 none || FAILED=1

log "3. ws (Node) clients -> edgews broadcast (no extension offered)"
start 9403 env EDGEWS_LOG=warn "$EDGEWS" broadcast --listen 127.0.0.1:9403
timeout 120 node "$HERE/node_broadcast.js" ws://127.0.0.1:9403/ --clients 8 --messages 50 || FAILED=1

# Dedicated: the server keeps its compression context between messages
# unless the client asks otherwise (the websockets client does not).
log "4. websockets client -> edgews echo --deflate dedicated"
start 9404 env EDGEWS_LOG=warn "$EDGEWS" echo --listen 127.0.0.1:9404 --deflate dedicated
timeout 120 "$PY" "$HERE/py_client.py" ws://127.0.0.1:9404/ --expect-deflate \
    --reject-param server_no_context_takeover --expect-takeover yes \
    --expect-threshold 128 || FAILED=1

# Shared: no context takeover either way; a non-default threshold.
log "5. websockets client -> edgews echo --deflate shared --deflate-threshold 1000"
start 9405 env EDGEWS_LOG=warn "$EDGEWS" echo --listen 127.0.0.1:9405 --deflate shared --deflate-threshold 1000
timeout 120 "$PY" "$HERE/py_client.py" ws://127.0.0.1:9405/ --expect-deflate \
    --expect-param server_no_context_takeover --expect-param client_no_context_takeover \
    --expect-takeover no --expect-threshold 1000 || FAILED=1

log "6. edgews client -> websockets server with compression"
start 9406 "$PY" "$HERE/py_server.py" --port 9406 --duration 120
timeout 120 "$CLIENT" ws://127.0.0.1:9406/ || FAILED=1
check_py_server_log 9406 deflate || FAILED=1

log "7. ws (Node) clients with deflate -> edgews broadcast --deflate shared"
start 9407 env EDGEWS_LOG=warn "$EDGEWS" broadcast --listen 127.0.0.1:9407 --deflate shared
timeout 120 node "$HERE/node_broadcast.js" ws://127.0.0.1:9407/ --clients 8 --messages 50 --deflate \
    --expect-param server_no_context_takeover --expect-param client_no_context_takeover || FAILED=1

log "8. ws (Node) clients with deflate -> edgews broadcast --deflate dedicated"
start 9408 env EDGEWS_LOG=warn "$EDGEWS" broadcast --listen 127.0.0.1:9408 --deflate dedicated
timeout 120 node "$HERE/node_broadcast.js" ws://127.0.0.1:9408/ --clients 8 --messages 50 --deflate \
    --reject-param server_no_context_takeover || FAILED=1

rm -f "$HERE"/.server-*.log
if [[ $FAILED != 0 ]]; then
    echo "interop: FAILED" >&2
    exit 1
fi
log "interop: all peers agree"
