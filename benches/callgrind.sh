#!/usr/bin/env bash
# Instructions per echoed message in the edgews echo server, counted by
# Callgrind: repeatable where wall-clock timings on this machine are not.
#
#   bash benches/callgrind.sh                 # 100 connections x 20 B, 4 s
#   SIZE=1024 CONNECTIONS=100 bash benches/callgrind.sh
#   SERVER=floor bash benches/callgrind.sh    # the yardstick (benches/peers)
#   SERVER=connect-floor MODE=connect bash benches/callgrind.sh  # its floor
#   SIZE=1024 LOAD_ARGS=--text bash benches/callgrind.sh   # text (Greek) echo
#   MODE=connect bash benches/callgrind.sh    # per connection: connect, upgrade,
#                                             # one 20 B echo, close handshake
#   MODE=connect LOAD_ARGS=--abrupt bash benches/callgrind.sh  # no close handshake
#   FOOTPRINT=1 MODE=connect bash benches/callgrind.sh  # and the hot code per cycle
#
# MODE=connect drives the server with `edgews load connect` (CONNECTIONS
# parallel clients, default 8, each cycling) and prints instructions and
# allocations (calls to malloc, calloc and realloc, counted by Callgrind)
# per connection cycle, start-up included (about 1.3 M instructions and
# 1,300 allocations, under 2% of a 4 s run).
#
# Runs `edgews echo` under `valgrind --tool=callgrind` on loopback, drives
# it with `edgews load echo` for DURATION, stops it with SIGINT, and prints
# the program's total instructions divided by the messages echoed (start-up
# and the handshakes are included: about 1% at the defaults). The profile
# stays in target/callgrind/ for `callgrind_annotate`.
#
# Environment: SIZE=20, CONNECTIONS=100, DURATION=4s, PORT=19111,
# SERVER=edgews (or floor / connect-floor: `edgews-peers floor`, what the syscalls alone
# cost), LOAD_ARGS (more options for `edgews load echo`, e.g. --text),
# SKIP_BUILD=0 (1: use the release binaries as they are); SERVER_BIN, to
# count another build of `edgews echo` (the generator stays LOAD_BIN,
# default target/release/edgews); FOOTPRINT=1 also records each
# instruction's address and simulates the caches, then prints what
# benches/hot_lines.py finds: the instructions that run once per cycle,
# the 64-byte lines they fill, and the L1 instruction-cache misses per
# cycle (the run is about twice as slow).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
MODE=${MODE:-echo}
SIZE=${SIZE:-20}
if [ "$MODE" = connect ]; then CONNECTIONS=${CONNECTIONS:-8}; fi
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
    floor | connect-floor)
        [ "${SKIP_BUILD:-0}" = 1 ] || cargo build --release -p edgews-peers >&2
        # no signal handler of its own: TERM ends it (Callgrind still writes)
        SERVE=("${CARGO_TARGET_DIR:-$ROOT/target}/release/edgews-peers" "$SERVER") STOP=TERM
        ;;
    *) echo "callgrind.sh: SERVER is edgews, floor or connect-floor" >&2; exit 1 ;;
esac
OUT_DIR=$ROOT/target/callgrind
mkdir -p "$OUT_DIR"
OUT=$OUT_DIR/$SERVER-$CONNECTIONS-$SIZE-$(date +%Y%m%d-%H%M%S).out

FOOTPRINT_ARGS=()
if [ "${FOOTPRINT:-0}" = 1 ]; then FOOTPRINT_ARGS=(--dump-instr=yes --cache-sim=yes); fi
valgrind --tool=callgrind "${FOOTPRINT_ARGS[@]}" --callgrind-out-file="$OUT" \
    "${SERVE[@]}" --listen "127.0.0.1:$PORT" >"$OUT.log" 2>&1 &
SERVER_PID=$!
trap 'kill "$SERVER_PID" 2>/dev/null || true' EXIT
# valgrind starts slowly: wait for the port
for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
    sleep 0.1
done
case $MODE in
    echo) LOAD=(load echo) COUNT=messages ;;
    connect) LOAD=(load connect) COUNT=cycles ;;
    *) echo "callgrind.sh: MODE is echo or connect" >&2; exit 1 ;;
esac
RESULT=$("$LOAD_BIN" "${LOAD[@]}" --url "ws://127.0.0.1:$PORT" --connections "$CONNECTIONS" \
    --size "$SIZE" --duration "$DURATION" --warmup 0s ${LOAD_ARGS:-} 2>/dev/null | tail -1)
kill -"$STOP" "$SERVER_PID"
wait "$SERVER_PID" || true
trap - EXIT
N=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$RESULT" "$COUNT")
TOTAL=$(callgrind_annotate "$OUT" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
# calls into the allocator, from the call graph (cfn= names a callee once,
# later lines refer to it by number)
ALLOCS=$(python3 - "$OUT" <<'PY'
import re, sys
names, calls, callee = {}, 0, None
for line in open(sys.argv[1], errors="replace"):
    m = re.match(r"(c?)fn=\((\d+)\)(?: (.*))?", line)
    if m:
        if m.group(3):
            names[m.group(2)] = m.group(3).split(" ")[0]
        callee = names.get(m.group(2)) if m.group(1) == "c" else None
        continue
    m = re.match(r"calls=(\d+)", line)
    if m and callee in ("malloc", "calloc", "realloc"):
        calls += int(m.group(1))
    callee = None if m else callee
print(calls)
PY
)
echo "$MODE, connections $CONNECTIONS, size $SIZE B: $N $COUNT, $TOTAL instructions," \
    "$(( TOTAL / N )) per ${COUNT%s}, $ALLOCS allocations, $(python3 -c "print(f'{$ALLOCS/$N:.2f}')") per ${COUNT%s} (profile: $OUT)"
if [ "${FOOTPRINT:-0}" = 1 ]; then python3 "$ROOT/benches/hot_lines.py" "$OUT" "$N"; fi
