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
#        shared|dedicated`;
# the edgews client against a Node `ws` server too:
#   9.   edgews client -> `ws` echo server (node_server.js) with deflate;
# and all of it over TLS, with a throwaway CA and a certificate for
# localhost/127.0.0.1/::1 that examples/tls_cert writes into a temporary
# directory (removed on exit, never committed); every peer verifies the
# certificate against that CA (no "insecure" switch anywhere):
#   10. `websockets` client (ssl context, cafile) -> `edgews echo
#       --tls-cert/--tls-key --deflate dedicated`, wss://localhost;
#   11. edgews client (--ca-file) -> `websockets` server with TLS, deflate;
#   12. Node `ws` clients (`ca` option) -> `edgews broadcast --tls-cert
#       --tls-key --deflate shared`, wss://127.0.0.1 (no SNI);
#   13. edgews client (--ca-file) -> `ws` server with TLS (https), deflate;
#   14. the check is real: without the CA, the edgews client refuses the
#       `websockets` server's certificate, and the `websockets` client
#       refuses edgews' (certificate verify failed, no data exchanged);
# and through `edgews proxy` (extensions negotiated end to end):
#   15-16. the edgews client and the `websockets` client -> edgews proxy ->
#       `websockets` server with compression;
#   17. `websockets` client -> edgews proxy over TLS -> edgews echo over
#       TLS (the proxy verifies the upstream with --upstream-ca-file).
# setup.sh installs the peers (venv, npm) under git-ignored folders; if it
# cannot, this fails loudly: the peers are never skipped.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
log() { echo "[interop +${SECONDS}s] $*" >&2; }

"$HERE/setup.sh"
(cd "$ROOT" && cargo build --release --quiet --bin edgews --example interop_client --example tls_cert)
EDGEWS="$ROOT/target/release/edgews"
CLIENT="$ROOT/target/release/examples/interop_client"
PY="$HERE/venv/bin/python"
PIDS=()
CERTS=""
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    if [[ -n $CERTS ]]; then rm -rf "$CERTS"; fi
}
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

# Asserts from py_server.py's (or node_server.js') log (two lines per
# connection, see py_server.py's docstring) what the edgews client
# negotiated and sent. $1 = port,
# $2 = deflate (every connection negotiated permessage-deflate and at least
# one message arrived compressed) or none (no connection negotiated any
# extension, no message arrived compressed).
check_server_log() {
    local port="$1" want="$2" opened closed
    local f="$HERE/.server-$port.log"
    # A connection's "closed" line may follow the client's exit by a moment.
    for _ in $(seq 50); do
        opened=$(grep -c '^conn [0-9]* extensions: ' "$f" || true)
        closed=$(grep -c '^conn [0-9]* closed ' "$f" || true)
        [[ $opened -gt 0 && $opened == "$closed" ]] && break
        sleep 0.1
    done
    grep '^conn ' "$f" | sed 's/^/  server: /' || true
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
        echo "FAIL server-log-$want: $why"
        return 1
    fi
    echo "ok server-log-$want"
}

# Runs a command that must fail, and asserts its output matches a pattern.
# $1 = name, $2 = extended regex, rest = command.
expect_refused() {
    local name="$1" pattern="$2" out rc=0
    shift 2
    out=$(timeout 60 "$@" 2>&1) || rc=$?
    echo "$out" | grep -E 'FAIL|rror' | head -3 | sed 's/^/  (expected) /'
    if [[ $rc == 0 ]]; then
        echo "FAIL $name: succeeded without the test CA"
        return 1
    elif ! echo "$out" | grep -Eq "$pattern"; then
        echo "FAIL $name: failed (exit $rc), but not with /$pattern/"
        return 1
    fi
    echo "ok $name"
}

FAILED=0
log "1. websockets client -> edgews echo (deflate off by default)"
start 9401 env EDGEWS_LOG=warn "$EDGEWS" echo --listen 127.0.0.1:9401
timeout 120 "$PY" "$HERE/py_client.py" ws://127.0.0.1:9401/ --expect-no-deflate || FAILED=1

log "2. edgews client -> websockets server (compression refused)"
start 9402 "$PY" "$HERE/py_server.py" --port 9402 --duration 120 --no-compression
timeout 120 "$CLIENT" ws://127.0.0.1:9402/ || FAILED=1
check_server_log 9402 none || FAILED=1

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
check_server_log 9406 deflate || FAILED=1

log "7. ws (Node) clients with deflate -> edgews broadcast --deflate shared"
start 9407 env EDGEWS_LOG=warn "$EDGEWS" broadcast --listen 127.0.0.1:9407 --deflate shared
timeout 120 node "$HERE/node_broadcast.js" ws://127.0.0.1:9407/ --clients 8 --messages 50 --deflate \
    --expect-param server_no_context_takeover --expect-param client_no_context_takeover || FAILED=1

log "8. ws (Node) clients with deflate -> edgews broadcast --deflate dedicated"
start 9408 env EDGEWS_LOG=warn "$EDGEWS" broadcast --listen 127.0.0.1:9408 --deflate dedicated
timeout 120 node "$HERE/node_broadcast.js" ws://127.0.0.1:9408/ --clients 8 --messages 50 --deflate \
    --reject-param server_no_context_takeover || FAILED=1

log "9. edgews client -> ws (Node) echo server with deflate"
start 9409 node "$HERE/node_server.js" --port 9409 --duration 120
timeout 120 "$CLIENT" ws://127.0.0.1:9409/ || FAILED=1
check_server_log 9409 deflate || FAILED=1

# `edgews proxy` in front of an independent server: the upgrade, the
# offers and answers pass through, so permessage-deflate is negotiated
# between the client and the upstream, and the compressed frames are
# relayed as they are (the server's log shows them arrive compressed).
log "15. edgews client -> edgews proxy -> websockets server with compression"
start 9415 "$PY" "$HERE/py_server.py" --port 9415 --duration 120
start 9416 env EDGEWS_LOG=warn "$EDGEWS" proxy --listen 127.0.0.1:9416 --workers 1 \
    --upstream ws://127.0.0.1:9415
timeout 120 "$CLIENT" ws://127.0.0.1:9416/ || FAILED=1
check_server_log 9415 deflate || FAILED=1

log "16. websockets client -> edgews proxy -> websockets server with compression"
timeout 120 "$PY" "$HERE/py_client.py" ws://127.0.0.1:9416/ --expect-deflate || FAILED=1

# --- over TLS ----------------------------------------------------------------
CERTS="$(mktemp -d "${TMPDIR:-/tmp}/edgews-interop-tls.XXXXXX")"
"$ROOT/target/release/examples/tls_cert" "$CERTS" > /dev/null
CA="$CERTS/ca.pem"
TLS=(--tls-cert "$CERTS/cert.pem" --tls-key "$CERTS/key.pem")
log "TLS: test CA and localhost certificate in $CERTS"

log "10. websockets client -> edgews echo over TLS, --deflate dedicated (wss://localhost)"
start 9410 env EDGEWS_LOG=warn "$EDGEWS" echo --listen 127.0.0.1:9410 --deflate dedicated "${TLS[@]}"
timeout 120 "$PY" "$HERE/py_client.py" wss://localhost:9410/ --ca-file "$CA" --expect-deflate \
    --reject-param server_no_context_takeover --expect-takeover yes \
    --expect-threshold 128 || FAILED=1

log "11. edgews client -> websockets server over TLS with compression (wss://127.0.0.1)"
start 9411 "$PY" "$HERE/py_server.py" --port 9411 --duration 120 "${TLS[@]}"
timeout 120 "$CLIENT" wss://127.0.0.1:9411/ --ca-file "$CA" || FAILED=1
check_server_log 9411 deflate || FAILED=1

log "12. ws (Node) clients with deflate -> edgews broadcast over TLS, --deflate shared (wss://127.0.0.1)"
start 9412 env EDGEWS_LOG=warn "$EDGEWS" broadcast --listen 127.0.0.1:9412 --deflate shared "${TLS[@]}"
timeout 120 node "$HERE/node_broadcast.js" wss://127.0.0.1:9412/ --ca-file "$CA" --clients 8 --messages 50 --deflate \
    --expect-param server_no_context_takeover --expect-param client_no_context_takeover || FAILED=1

log "13. edgews client -> ws (Node) echo server over TLS with deflate (wss://localhost)"
start 9413 node "$HERE/node_server.js" --port 9413 --duration 120 "${TLS[@]}"
timeout 120 "$CLIENT" wss://localhost:9413/ --ca-file "$CA" || FAILED=1
check_server_log 9413 deflate || FAILED=1

# The servers of 10 and 11 are still up. Without the test CA (the system's
# roots instead) neither client may get as far as the WebSocket handshake.
log "14. without the test CA, certificates are refused both ways"
expect_refused edgews-client-refuses-untrusted 'FAIL tls: connect: .*([Cc]ertificate|UnknownIssuer)' \
    "$CLIENT" wss://127.0.0.1:9411/ || FAILED=1
expect_refused websockets-client-refuses-untrusted 'FAIL connect: .*CERTIFICATE_VERIFY_FAILED' \
    "$PY" "$HERE/py_client.py" wss://localhost:9410/ --total-timeout 30 || FAILED=1

log "17. websockets client -> edgews proxy over TLS -> edgews echo over TLS (wss:// both hops)"
start 9417 env EDGEWS_LOG=warn "$EDGEWS" echo --listen 127.0.0.1:9417 --deflate dedicated "${TLS[@]}"
start 9418 env EDGEWS_LOG=warn "$EDGEWS" proxy --listen 127.0.0.1:9418 --workers 1 "${TLS[@]}" \
    --upstream wss://127.0.0.1:9417 --upstream-ca-file "$CA"
timeout 120 "$PY" "$HERE/py_client.py" wss://localhost:9418/ --ca-file "$CA" --expect-deflate \
    --reject-param server_no_context_takeover --expect-takeover yes \
    --expect-threshold 128 || FAILED=1

rm -f "$HERE"/.server-*.log
if [[ $FAILED != 0 ]]; then
    echo "interop: FAILED" >&2
    exit 1
fi
log "interop: all peers agree"
