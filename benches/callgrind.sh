#!/usr/bin/env bash
# Instructions per echoed message in the edgews echo server, counted by
# Callgrind: repeatable where wall-clock timings on this machine are not.
#
#   bash benches/callgrind.sh                 # 100 connections x 20 B, 4 s
#   SIZE=1024 CONNECTIONS=100 bash benches/callgrind.sh
#
# Runs `edgews echo` under `valgrind --tool=callgrind` on loopback, drives
# it with `edgews load echo` for DURATION, stops it with SIGINT, and prints
# the program's total instructions divided by the messages echoed (start-up
# and the handshakes are included: about 1% at the defaults). The profile
# stays in target/callgrind/ for `callgrind_annotate`.
#
# Environment: SIZE=20, CONNECTIONS=100, DURATION=4s, PORT=19111,
# SKIP_BUILD=0 (1: use target/release/edgews as it is).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
SIZE=${SIZE:-20}
CONNECTIONS=${CONNECTIONS:-100}
DURATION=${DURATION:-4s}
PORT=${PORT:-19111}
command -v valgrind >/dev/null || { echo "callgrind.sh: valgrind is not installed" >&2; exit 1; }
[ "${SKIP_BUILD:-0}" = 1 ] || cargo build --release --bin edgews >&2
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/edgews
OUT_DIR=$ROOT/target/callgrind
mkdir -p "$OUT_DIR"
OUT=$OUT_DIR/echo-$CONNECTIONS-$SIZE-$(date +%Y%m%d-%H%M%S).out

valgrind --tool=callgrind --callgrind-out-file="$OUT" \
    "$BIN" echo --listen "127.0.0.1:$PORT" >"$OUT.log" 2>&1 &
SERVER=$!
trap 'kill "$SERVER" 2>/dev/null || true' EXIT
# valgrind starts slowly: wait for the port
for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
    sleep 0.1
done
RESULT=$("$BIN" load echo --url "ws://127.0.0.1:$PORT" --connections "$CONNECTIONS" \
    --size "$SIZE" --duration "$DURATION" --warmup 0s 2>/dev/null | tail -1)
kill -INT "$SERVER"
wait "$SERVER" || true
trap - EXIT
MESSAGES=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["messages"])' "$RESULT")
TOTAL=$(callgrind_annotate "$OUT" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
echo "connections $CONNECTIONS, size $SIZE B: $MESSAGES messages, $TOTAL instructions," \
    "$(( TOTAL / MESSAGES )) per message (profile: $OUT)"
