#!/usr/bin/env bash
# Where an echo server's CPU goes: user and kernel time of the server and
# of the load generator over one long window, to see a user-space share
# that compare.sh's 4-second rounds are too short to resolve (the kernel's
# counters move in 10 ms ticks).
#
#   bash benches/cpu-split.sh                            # edgews, 100 x 20 B, 15 s, 3 runs
#   SERVER_BIN=/tmp/old/edgews RUNS=3 bash benches/cpu-split.sh   # another build
#   SIZE=65536 CONNECTIONS=10 bash benches/cpu-split.sh
#
# The server runs pinned to CPU 0 and `edgews load echo` to CPU 1, as in
# compare.sh. Per run it prints msg/s, the server's user and system time as
# % of a core, the user share of the server's time, and the generator's.
# To compare two builds, alternate them (SERVER_BIN) in one session.
#
# Environment: SERVER_BIN (default target/release/edgews, started as
# `SERVER_BIN echo --listen ...`), LOAD_BIN (default target/release/edgews),
# SIZE=20, CONNECTIONS=100, WINDOW=15 (seconds measured per run), RUNS=3, PORT=19222,
# LOAD_ARGS (more options for `edgews load echo`, e.g. --text).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILT=${CARGO_TARGET_DIR:-$ROOT/target}/release/edgews
SERVER_BIN=${SERVER_BIN:-$BUILT}
LOAD_BIN=${LOAD_BIN:-$BUILT}
SIZE=${SIZE:-20}
CONNECTIONS=${CONNECTIONS:-100}
WINDOW=${WINDOW:-15}
RUNS=${RUNS:-3}
PORT=${PORT:-19222}
for bin in "$SERVER_BIN" "$LOAD_BIN"; do
    [ -x "$bin" ] || { echo "cpu-split.sh: $bin not built (cargo build --release)" >&2; exit 1; }
done
# One reactor (--workers 1), so the figures stay comparable with the
# single-threaded peers; builds from before --workers have only the one.
WORKERS_1=()
if grep -q -- '--workers' <<<"$("$SERVER_BIN" echo --help 2>/dev/null)"; then WORKERS_1=(--workers 1); fi

ticks() { awk '{print $14, $15}' "/proc/$1/stat"; }

for run in $(seq "$RUNS"); do
    taskset -c 0 "$SERVER_BIN" echo --listen "127.0.0.1:$PORT" "${WORKERS_1[@]}" >/dev/null 2>&1 &
    server=$!
    for _ in $(seq 50); do
        (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
        sleep 0.1
    done
    result=$(mktemp)
    taskset -c 1 "$LOAD_BIN" load echo --url "ws://127.0.0.1:$PORT" \
        --connections "$CONNECTIONS" --size "$SIZE" --warmup 1s \
        --duration "$((WINDOW + 2))s" ${LOAD_ARGS:-} 2>/dev/null >"$result" &
    load=$!
    sleep 2
    read -r su0 ss0 < <(ticks "$server")
    read -r lu0 ls0 < <(ticks "$load")
    sleep "$WINDOW"
    read -r su1 ss1 < <(ticks "$server")
    read -r lu1 ls1 < <(ticks "$load")
    wait "$load"
    kill "$server"
    wait "$server" 2>/dev/null || true
    python3 - "$result" "$run" "$WINDOW" $((su1 - su0)) $((ss1 - ss0)) $((lu1 - lu0)) $((ls1 - ls0)) <<'PY'
import json, os, sys
path, run, window, su, ss, lu, ls = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:])
hz = os.sysconf("SC_CLK_TCK")
d = json.loads(open(path).read().strip().splitlines()[-1])
pct = lambda t: 100 * t / hz / window
print(f"run {run}: {d['msg_per_s']:>8,} msg/s  server usr {pct(su):4.1f}% sys {pct(ss):4.1f}%"
      f" (user share {100 * su / max(1, su + ss):4.2f}%)  load usr {pct(lu):4.1f}% sys {pct(ls):4.1f}%"
      f"  errors {d['errors']}")
PY
    rm -f "$result"
done
