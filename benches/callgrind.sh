#!/usr/bin/env bash
# Instructions per echoed message in the edgews echo server, counted by
# Callgrind: repeatable where wall-clock timings on this machine are not.
#
#   bash benches/callgrind.sh                 # 100 connections x 20 B, 4 s
#   SIZE=1024 CONNECTIONS=100 bash benches/callgrind.sh
#   SERVER=floor bash benches/callgrind.sh    # the yardstick (benches/peers)
#   SIZE=1024 LOAD_ARGS=--text bash benches/callgrind.sh   # text (Greek) echo
#
# Runs `edgews echo` under `valgrind --tool=callgrind` on loopback, drives
# it with `edgews load echo` for DURATION, stops it with SIGINT, and prints
# the program's total instructions divided by the messages echoed (start-up
# and the handshakes are included: about 1% at the defaults). The profile
# stays in target/callgrind/ for `callgrind_annotate`.
#
# Environment: SIZE=20, CONNECTIONS=100, DURATION=4s, PORT=19111,
# SERVER=edgews (or floor: `edgews-peers floor`, what the syscalls alone
# cost), LOAD_ARGS (more options for `edgews load echo`, e.g. --text),
# SKIP_BUILD=0 (1: use the release binaries as they are); SERVER_BIN, to
# count another build of `edgews echo` (the generator stays LOAD_BIN,
# default target/release/edgews).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
SIZE=${SIZE:-20}
CONNECTIONS=${CONNECTIONS:-100}
DURATION=${DURATION:-4s}
PORT=${PORT:-19111}
command -v valgrind >/dev/null || { echo "callgrind.sh: valgrind is not installed" >&2; exit 1; }
SERVER=${SERVER:-edgews}
[ "${SKIP_BUILD:-0}" = 1 ] || cargo build --release --bin edgews >&2
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/edgews
LOAD_BIN=${LOAD_BIN:-$BIN}
BIN=${SERVER_BIN:-$BIN}
# One reactor (--workers 1), so the figures stay comparable with the
# single-threaded peers; builds from before --workers have only the one.
WORKERS_1=()
if grep -q -- '--workers' <<<"$("$BIN" echo --help 2>/dev/null)"; then WORKERS_1=(--workers 1); fi
case $SERVER in
    edgews)
        # valgrind runs one thread at a time: count one reactor
        SERVE=("$BIN" echo "${WORKERS_1[@]}") STOP=INT
        ;;
    floor)
        [ "${SKIP_BUILD:-0}" = 1 ] || cargo build --release -p edgews-peers >&2
        # no signal handler of its own: TERM ends it (Callgrind still writes)
        SERVE=("${CARGO_TARGET_DIR:-$ROOT/target}/release/edgews-peers" floor) STOP=TERM
        ;;
    *) echo "callgrind.sh: SERVER is edgews or floor" >&2; exit 1 ;;
esac
OUT_DIR=$ROOT/target/callgrind
mkdir -p "$OUT_DIR"
OUT=$OUT_DIR/$SERVER-$CONNECTIONS-$SIZE-$(date +%Y%m%d-%H%M%S).out

valgrind --tool=callgrind --callgrind-out-file="$OUT" \
    "${SERVE[@]}" --listen "127.0.0.1:$PORT" >"$OUT.log" 2>&1 &
SERVER_PID=$!
trap 'kill "$SERVER_PID" 2>/dev/null || true' EXIT
# valgrind starts slowly: wait for the port
for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
    sleep 0.1
done
RESULT=$("$LOAD_BIN" load echo --url "ws://127.0.0.1:$PORT" --connections "$CONNECTIONS" \
    --size "$SIZE" --duration "$DURATION" --warmup 0s ${LOAD_ARGS:-} 2>/dev/null | tail -1)
kill -"$STOP" "$SERVER_PID"
wait "$SERVER_PID" || true
trap - EXIT
MESSAGES=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["messages"])' "$RESULT")
TOTAL=$(callgrind_annotate "$OUT" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
echo "connections $CONNECTIONS, size $SIZE B: $MESSAGES messages, $TOTAL instructions," \
    "$(( TOTAL / MESSAGES )) per message (profile: $OUT)"
