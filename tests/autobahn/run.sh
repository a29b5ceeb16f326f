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
TIMEOUT="${AUTOBAHN_TIMEOUT:-2700}"
EXPECTED="${AUTOBAHN_EXPECTED:-$HERE/expected-results.json}"
WRITE="${AUTOBAHN_WRITE:-}"
SERVER_PORT=9001
CLIENT_PORT=9002
# The server's default limits, with permessage-deflate (sections 12 and
# 13) in the mode AUTOBAHN_DEFLATE names (default dedicated).
DEFLATE="${AUTOBAHN_DEFLATE:-dedicated}"
SERVER_CMD="${AUTOBAHN_SERVER_CMD:-$ROOT/target/release/edgews echo --listen 127.0.0.1:$SERVER_PORT --deflate $DEFLATE}"
CLIENT_CMD="${AUTOBAHN_CLIENT_CMD:-$ROOT/target/release/examples/autobahn_client --url ws://127.0.0.1:$CLIENT_PORT --agent edgews}"

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
if ((${#BUILD_ARGS[@]})); then
    log "cargo build --release ${BUILD_ARGS[*]}"
    (cd "$ROOT" && cargo build --release "${BUILD_ARGS[@]}")
fi

# wstest resolves the specs' relative outdirs (./reports/...) against its cwd,
# so it always runs from this directory.
cd "$HERE"
mkdir -p reports/logs work

# With AUTOBAHN_CASES, write copies of the specs with that case list, and
# compare in subset mode (only the cases that ran).
SERVER_SPEC="$HERE/fuzzingclient.json"
CLIENT_SPEC="$HERE/fuzzingserver.json"
COMPARE_ARGS=()
if [[ -n "$CASES" ]]; then
    for spec in fuzzingclient fuzzingserver; do
        python3 - "$HERE/$spec.json" "work/$spec.json" "$CASES" <<'EOF'
import json, sys
src, dst, cases = sys.argv[1:]
spec = json.load(open(src))
spec["cases"] = [c.strip() for c in cases.split(",") if c.strip()]
json.dump(spec, open(dst, "w"), indent=2)
EOF
    done
    SERVER_SPEC="$HERE/work/fuzzingclient.json"
    CLIENT_SPEC="$HERE/work/fuzzingserver.json"
    COMPARE_ARGS+=(--subset)
    log "cases overridden: $CASES (comparing only these)"
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
    python3 "$HERE/compare.py" --role "$1" --report "reports/$1/index.json" \
        --expected "$EXPECTED" "${COMPARE_ARGS[@]}"
}

FAILED=()

# --- Server role: wstest is the client, edgews the echo server ----------------
server_role() {
    log "server role: starting: $SERVER_CMD"
    rm -rf reports/server
    if port_open "$SERVER_PORT"; then
        echo "something already listens on 127.0.0.1:$SERVER_PORT; stop it first" >&2
        exit 1
    fi
    # exec so that $! is the server itself, not a wrapper shell.
    bash -c "exec $SERVER_CMD" > reports/logs/server.log 2>&1 &
    SERVER_PID=$!
    if ! wait_port "$SERVER_PORT" 30 "$SERVER_PID"; then
        cat reports/logs/server.log >&2
        exit 1
    fi
    log "server role: running wstest -m fuzzingclient (limit ${TIMEOUT}s, log reports/logs/fuzzingclient.log)"
    rc=0
    timeout -k 10 "$TIMEOUT" "$WSTEST" -m fuzzingclient -s "$SERVER_SPEC" \
        > reports/logs/fuzzingclient.log 2>&1 || rc=$?
    if ((rc == 124)); then log "server role: wstest timed out after ${TIMEOUT}s"; fi
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        log "server role: edgews exited during the run (see reports/logs/server.log)"
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
    rm -rf reports/client
    # The inner script: loopback only, fuzzingserver in the background (web UI
    # off: -u 0), our client in the foreground, then stop the fuzzingserver.
    # Both get killed with the namespace's shell if the outer timeout hits
    # (timeout signals its whole process group).
    export WSTEST CLIENT_SPEC CLIENT_CMD CLIENT_PORT TIMEOUT
    rc=0
    # shellcheck disable=SC2016  # expanded by the inner shell, from the env
    timeout -k 10 "$((TIMEOUT + 60))" unshare --net bash -c '
        set -euo pipefail
        ip link set lo up
        "$WSTEST" -m fuzzingserver -s "$CLIENT_SPEC" -u 0 > reports/logs/fuzzingserver.log 2>&1 &
        WS_PID=$!
        trap "kill $WS_PID 2>/dev/null || true; wait $WS_PID 2>/dev/null || true" EXIT
        wait_port "$CLIENT_PORT" 60 "$WS_PID"
        timeout -k 10 "$TIMEOUT" bash -c "exec $CLIENT_CMD"
    ' > reports/logs/client.log 2>&1 || rc=$?
    if ((rc == 124)); then log "client role: timed out after ${TIMEOUT}s"; fi
    if ((rc != 0)); then
        log "client role: client run exited $rc; last lines of reports/logs/client.log:"
        tail -n 20 reports/logs/client.log >&2 || true
    fi
    log "client role: done (exit $rc)"
    compare client
}

# The roles run at once (each is single-threaded Python against one edgews
# process; sections 12 and 13 take most of the time): the client role in
# the background, its output kept apart and shown when it ends.
CLIENT_JOB=
if [[ -n "$RUN_CLIENT" ]]; then
    client_role > reports/logs/client-role.out 2>&1 &
    CLIENT_JOB=$!
fi
if [[ -n "$RUN_SERVER" ]]; then
    server_role
fi
if [[ -n "$CLIENT_JOB" ]]; then
    client_rc=0
    wait "$CLIENT_JOB" || client_rc=$?
    CLIENT_JOB=
    cat reports/logs/client-role.out >&2
    ((client_rc == 0)) || FAILED+=(client)
fi

if ((${#FAILED[@]})); then
    log "FAILED: ${FAILED[*]} (reports in $HERE/reports)"
    exit 1
fi
log "all selected roles as expected"
