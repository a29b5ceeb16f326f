#!/usr/bin/env bash
# Run the Autobahn testsuite against edgews and compare with expected results.
#
#   tests/autobahn/run.sh
#
# Environment:
#   AUTOBAHN_ROLES=server|client|both   which side of edgews to test (default both)
#   AUTOBAHN_CASES="1.*,2.*"            run only these cases (quick local runs);
#                                       only the cases that ran are compared
#   AUTOBAHN_TIMEOUT=2700               seconds allowed for each role's test run
#                                       (12.* and 13.*, permessage-deflate, are
#                                       slow: wstest is Python 2; see README.md)
#   AUTOBAHN_EXPECTED=path              expected results file (default
#                                       tests/autobahn/expected-results.json)
#   AUTOBAHN_DEFLATE=dedicated|shared|off
#                                       the server's --deflate mode (default
#                                       dedicated; the client always offers it)
#   AUTOBAHN_WRITE=1                    regenerate expected-results.json from this
#                                       run instead of comparing (maintainers)
#   AUTOBAHN_TLS=1                      the wss:// run instead of the plain one:
#                                       both roles over TLS, cases 1.*-10.*,
#                                       12.1.* and 13.7.* (AUTOBAHN_CASES
#                                       narrows them), compared with
#                                       expected-results-tls.json; a throwaway
#                                       CA and certificate for 127.0.0.1 are
#                                       made in work/tls by the tls_cert example;
#                                       reports in reports/tls-{server,client},
#                                       logs in reports/tls-logs; default
#                                       AUTOBAHN_TIMEOUT 1500
#   AUTOBAHN_SERVER_CMD / AUTOBAHN_CLIENT_CMD
#                                       replace the edgews command (to test this
#                                       harness with another implementation);
#                                       the cargo build for that role is skipped
#
# Server role: edgews echo server on 127.0.0.1:9001, `wstest -m fuzzingclient`.
# Client role: `wstest -m fuzzingserver` on port 9002 plus our autobahn_client
#   example, both inside a private network namespace (`unshare --net`) with
#   only loopback: the fuzzingserver binds every interface and has no option
#   to bind loopback only, so the namespace keeps it off any real network.
#
# Everything is bounded in time, touches only loopback, and cleans up after
# itself (trap on EXIT). Exit status is non-zero if any role differs.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
ROLES="${AUTOBAHN_ROLES:-both}"
CASES="${AUTOBAHN_CASES:-}"
WRITE="${AUTOBAHN_WRITE:-}"
TLS="${AUTOBAHN_TLS:-}"
[[ "$TLS" == 0 ]] && TLS=
SERVER_PORT=9001
CLIENT_PORT=9002
# The server's default limits, with permessage-deflate (sections 12 and
# 13) in the mode AUTOBAHN_DEFLATE names (default dedicated).
DEFLATE="${AUTOBAHN_DEFLATE:-dedicated}"
if [[ -n "$TLS" ]]; then
    # wss://: the same server and client over TLS, on a reduced case list:
    # sections 1-10 and two permessage-deflate sections, 12.1.* (the
    # default offer) and 13.7.* (three offers, no_context_takeover and
    # max_window_bits); the plain run covers the full list. 8-13 minutes
    # on the loaded 2-core machine; the timeout leaves room.
    TAG=tls-
    SCHEME=wss
    TLS_DIR="$HERE/work/tls"
    TLS_CASES="1.*,2.*,3.*,4.*,5.*,6.*,7.*,9.*,10.*,12.1.*,13.7.*"
    TIMEOUT="${AUTOBAHN_TIMEOUT:-1500}"
    EXPECTED="${AUTOBAHN_EXPECTED:-$HERE/expected-results-tls.json}"
    SERVER_TLS_ARGS=" --tls-cert $TLS_DIR/cert.pem --tls-key $TLS_DIR/key.pem"
    CLIENT_TLS_ARGS=" --ca-file $TLS_DIR/ca.pem"
else
    TAG=
    SCHEME=ws
    TLS_CASES=
    TIMEOUT="${AUTOBAHN_TIMEOUT:-2700}"
    EXPECTED="${AUTOBAHN_EXPECTED:-$HERE/expected-results.json}"
    SERVER_TLS_ARGS=
    CLIENT_TLS_ARGS=
fi
# Reports and logs of this run (plain: reports/{server,client,logs}; TLS:
# reports/tls-{server,client,logs}, so that one does not erase the other).
LOGS="reports/${TAG}logs"
SERVER_CMD="${AUTOBAHN_SERVER_CMD:-$ROOT/target/release/edgews echo --listen 127.0.0.1:$SERVER_PORT --deflate $DEFLATE$SERVER_TLS_ARGS}"
CLIENT_CMD="${AUTOBAHN_CLIENT_CMD:-$ROOT/target/release/examples/autobahn_client --url $SCHEME://127.0.0.1:$CLIENT_PORT --agent edgews$CLIENT_TLS_ARGS}"

log() { echo "[autobahn +${SECONDS}s] $*" >&2; }

case "$ROLES" in
    both) RUN_SERVER=1; RUN_CLIENT=1 ;;
    server) RUN_SERVER=1; RUN_CLIENT= ;;
    client) RUN_SERVER=; RUN_CLIENT=1 ;;
    *) echo "AUTOBAHN_ROLES must be server, client or both (got '$ROLES')" >&2; exit 2 ;;
esac

# True once something accepts TCP connections on 127.0.0.1:$1 (bash's
# /dev/tcp, so no extra tools). Exported: the namespace's shell uses it too.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# Poll for up to $2 seconds; fail early if process $3 (optional) has died.
wait_port() {
    local port="$1" limit="$2" pid="${3:-}" i
    for ((i = 0; i < limit * 10; i++)); do
        port_open "$port" && return 0
        if [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null; then
            echo "process $pid exited before port $port opened" >&2
            return 1
        fi
        sleep 0.1
    done
    echo "port $port did not open within ${limit}s" >&2
    return 1
}
export -f port_open wait_port

# --- Preparation -----------------------------------------------------------

# `ip` (iproute2) brings up loopback inside the namespace.
if [[ -n "$RUN_CLIENT" ]] && ! command -v ip >/dev/null 2>&1; then
    log "installing iproute2 for 'ip'"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2
fi

"$HERE/setup.sh"
WSTEST="$HERE/venv/bin/wstest"

# Build only what the selected roles need (and only when not overridden).
BUILD_ARGS=()
[[ -n "$RUN_SERVER" && -z "${AUTOBAHN_SERVER_CMD:-}" ]] && BUILD_ARGS+=(--bin edgews)
[[ -n "$RUN_CLIENT" && -z "${AUTOBAHN_CLIENT_CMD:-}" ]] && BUILD_ARGS+=(--example autobahn_client)
[[ -n "$TLS" ]] && BUILD_ARGS+=(--example tls_cert)
if ((${#BUILD_ARGS[@]})); then
    log "cargo build --release ${BUILD_ARGS[*]}"
    (cd "$ROOT" && cargo build --release "${BUILD_ARGS[@]}")
fi

# wstest resolves the specs' relative outdirs (./reports/...) against its cwd,
# so it always runs from this directory.
cd "$HERE"
mkdir -p "$LOGS" work

# With AUTOBAHN_TLS, a fresh throwaway CA and server certificate (never
# committed: work/ is git-ignored), for both roles.
if [[ -n "$TLS" ]]; then
    rm -rf "$TLS_DIR"
    "$ROOT/target/release/examples/tls_cert" "$TLS_DIR" >/dev/null
    log "TLS: certificates in $TLS_DIR (ca.pem, cert.pem, key.pem)"
fi

# With AUTOBAHN_CASES or AUTOBAHN_TLS, write copies of the specs with that
# case list (and for TLS the wss:// URLs, the report directories and the
# fuzzingserver's key and certificate). Compare in subset mode (only the
# cases that ran) when AUTOBAHN_CASES chose the cases.
SERVER_SPEC="$HERE/fuzzingclient.json"
CLIENT_SPEC="$HERE/fuzzingserver.json"
COMPARE_ARGS=()
if [[ -n "$CASES" || -n "$TLS" ]]; then
    for spec in fuzzingclient fuzzingserver; do
        python3 - "$HERE/$spec.json" "work/$TAG$spec.json" "${CASES:-$TLS_CASES}" \
            "$TAG" "${TLS_DIR:-}" <<'EOF'
import json, sys
src, dst, cases, tag, tls_dir = sys.argv[1:]
spec = json.load(open(src))
spec["cases"] = [c.strip() for c in cases.split(",") if c.strip()]
if tls_dir:
    # fuzzingclient: connects to wss:// (Twisted's ClientContextFactory: no
    # certificate check); fuzzingserver: listens for wss:// with this key and
    # certificate (fuzzing.startServer reads the spec's "key" and "cert").
    for server in spec.get("servers", []):
        server["url"] = server["url"].replace("ws://", "wss://", 1)
    if "url" in spec:
        spec["url"] = spec["url"].replace("ws://", "wss://", 1)
        spec["key"] = tls_dir + "/key.pem"
        spec["cert"] = tls_dir + "/cert.pem"
    spec["outdir"] = spec["outdir"].replace("/reports/", "/reports/" + tag, 1)
json.dump(spec, open(dst, "w"), indent=2)
EOF
    done
    SERVER_SPEC="$HERE/work/${TAG}fuzzingclient.json"
    CLIENT_SPEC="$HERE/work/${TAG}fuzzingserver.json"
    if [[ -n "$CASES" ]]; then
        COMPARE_ARGS+=(--subset)
        log "cases overridden: $CASES (comparing only these)"
    fi
fi
[[ -n "$WRITE" ]] && COMPARE_ARGS+=(--write)

SERVER_PID=
cleanup() {
    if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID" 2>/dev/null || true
        # Give it 5 s to stop, then force.
        for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$SERVER_PID" 2>/dev/null || true
    fi
}
stop_client_job() {
    if [[ -n "${CLIENT_JOB:-}" ]]; then
        kill "$CLIENT_JOB" 2>/dev/null || true
    fi
}
trap 'cleanup; stop_client_job' EXIT
trap 'exit 130' INT TERM   # run the EXIT trap on signals too

compare() {  # $1 = role
    python3 "$HERE/compare.py" --role "$1" --report "reports/$TAG$1/index.json" \
        --expected "$EXPECTED" "${COMPARE_ARGS[@]}"
}

FAILED=()

# --- Server role: wstest is the client, edgews the echo server ----------------
server_role() {
    log "server role: starting: $SERVER_CMD"
    rm -rf "reports/${TAG}server"
    if port_open "$SERVER_PORT"; then
        echo "something already listens on 127.0.0.1:$SERVER_PORT; stop it first" >&2
        exit 1
    fi
    # exec so that $! is the server itself, not a wrapper shell.
    bash -c "exec $SERVER_CMD" > "$LOGS/server.log" 2>&1 &
    SERVER_PID=$!
    if ! wait_port "$SERVER_PORT" 30 "$SERVER_PID"; then
        cat "$LOGS/server.log" >&2
        exit 1
    fi
    log "server role: running wstest -m fuzzingclient (limit ${TIMEOUT}s, log $LOGS/fuzzingclient.log)"
    rc=0
    timeout -k 10 "$TIMEOUT" "$WSTEST" -m fuzzingclient -s "$SERVER_SPEC" \
        > "$LOGS/fuzzingclient.log" 2>&1 || rc=$?
    if ((rc == 124)); then log "server role: wstest timed out after ${TIMEOUT}s"; fi
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        log "server role: edgews exited during the run (see $LOGS/server.log)"
        FAILED+=("server (edgews died)")
    fi
    cleanup
    SERVER_PID=
    log "server role: done (wstest exit $rc)"
    compare server || FAILED+=(server)
}

# --- Client role: wstest is the server, edgews' autobahn_client the client ----
client_role() {
    log "client role: wstest -m fuzzingserver + $CLIENT_CMD in a private netns (limit ${TIMEOUT}s)"
    rm -rf "reports/${TAG}client"
    # The inner script: loopback only, fuzzingserver in the background (web UI
    # off: -u 0), our client in the foreground, then stop the fuzzingserver.
    # Both get killed with the namespace's shell if the outer timeout hits
    # (timeout signals its whole process group).
    export WSTEST CLIENT_SPEC CLIENT_CMD CLIENT_PORT TIMEOUT LOGS
    rc=0
    # shellcheck disable=SC2016  # expanded by the inner shell, from the env
    timeout -k 10 "$((TIMEOUT + 60))" unshare --net bash -c '
        set -euo pipefail
        ip link set lo up
        "$WSTEST" -m fuzzingserver -s "$CLIENT_SPEC" -u 0 > "$LOGS/fuzzingserver.log" 2>&1 &
        WS_PID=$!
        trap "kill $WS_PID 2>/dev/null || true; wait $WS_PID 2>/dev/null || true" EXIT
        wait_port "$CLIENT_PORT" 60 "$WS_PID"
        timeout -k 10 "$TIMEOUT" bash -c "exec $CLIENT_CMD"
    ' > "$LOGS/client.log" 2>&1 || rc=$?
    if ((rc == 124)); then log "client role: timed out after ${TIMEOUT}s"; fi
    if ((rc != 0)); then
        log "client role: client run exited $rc; last lines of $LOGS/client.log:"
        tail -n 20 "$LOGS/client.log" >&2 || true
    fi
    log "client role: done (exit $rc)"
    compare client
}

# The roles run at once (each is single-threaded Python against one edgews
# process; sections 12 and 13 take most of the time): the client role in
# the background, its output kept apart and shown when it ends.
CLIENT_JOB=
if [[ -n "$RUN_CLIENT" ]]; then
    client_role > "$LOGS/client-role.out" 2>&1 &
    CLIENT_JOB=$!
fi
if [[ -n "$RUN_SERVER" ]]; then
    server_role
fi
if [[ -n "$CLIENT_JOB" ]]; then
    client_rc=0
    wait "$CLIENT_JOB" || client_rc=$?
    CLIENT_JOB=
    cat "$LOGS/client-role.out" >&2
    ((client_rc == 0)) || FAILED+=(client)
fi

if ((${#FAILED[@]})); then
    log "FAILED: ${FAILED[*]} (reports in $HERE/reports)"
    exit 1
fi
log "all selected roles as expected"
