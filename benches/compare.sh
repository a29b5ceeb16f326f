#!/usr/bin/env bash
# One comparison page: edgews side by side with servers on other Rust
# WebSocket libraries (benches/peers: tokio-tungstenite, fastwebsockets,
# tokio-websockets, each on a current-thread tokio runtime) and with the
# floors (yardsticks that do the kernel's part and next to nothing else),
# all single-threaded, all driven by `edgews load`, in one run and one table
# file: echo (one in flight and pipelined), connection setup, broadcast
# fan-out and idle memory.
#
#   bash benches/compare.sh                               # everything, ~16.5 min
#   BASE_EDGEWS=/path/to/old/edgews bash benches/compare.sh
#                                                         # + an old build, every row
#   SECTIONS=connect ROUNDS=1 bash benches/compare.sh     # one section, quickly
#   SYSCALLS=1 bash benches/compare.sh                    # + edgews' syscalls (strace)
#
# Sections (SECTIONS, default all five, run in this order):
#   echo       `load echo`, one message in flight per connection, at each of
#              ECHO_SETTINGS (connections:size): msg/s, round trip p50, server
#              CPU, messages per server CPU-second, ratio to edgews; then per
#              message the server's user and kernel time and the bound (below).
#   pipeline   the same with --pipeline DEPTH, PIPELINE_SETTINGS
#              (connections:size:depth): many frames per read and per write.
#   connect    `load connect`: CONNECT_CONNECTIONS connections each in a loop
#              connect, upgrade, echo one CONNECT_SIZE message, close; "close"
#              ends with the closing handshake, "abrupt" (--abrupt) drops the
#              TCP connection after the echo. cycles/s, server CPU, cycles
#              per server CPU-second (the figure that ranks the servers),
#              ratio to edgews and to the best real peer, upgrade p50/p99.
#   broadcast  `load broadcast` with BC_SENDERS senders at a fixed total rate
#              against `edgews broadcast` and a fan-out server built on each
#              peer (`edgews-peers fanout-NAME`: every message to every other
#              connection), at each of BC_SETTINGS (subscribers:msgs/s in
#              all; the defaults deliver ~200k frames/s both ways: few
#              subscribers and many messages, many subscribers and few).
#              The rate is fixed, so deliveries/s is the same for every server
#              that keeps up; what ranks them is deliveries per server
#              CPU-second, and the fan-out latency (send to receipt,
#              p50/p99/p99.9: on two cores the loader, which reads and checks
#              every delivery, is part of it). Each run starts the server
#              afresh; its RSS is read just before the loader starts and again
#              at the end of the CPU window, all subscribers connected:
#              RSS/sub = VmRSS / subscribers, grow/sub = its growth over the
#              run / subscribers. missing/errors: summed over the rounds.
#              Also per message the latency to the last subscriber (send to
#              receipt by the last of its receivers, p50/p99/p99.9). And
#              pubsub rows: `edgews pubsub` at the same settings, driven with
#              `load broadcast --topic bench` (each subscriber connects to
#              /topics/bench, sends {"op":"subscribe"} and waits for its
#              acknowledgement; the senders publish {"op":"publish"}, data a
#              JSON string of BC_SIZE bytes, which pubsub delivers in its
#              {"type":"message"} envelope); edgews and edgews-base only.
#   idle       IDLE_CONNECTIONS idle connections to a fresh server
#              (`load idle`): RSS growth per connection, ratio to edgews.
#
# Servers: SERVERS names the libraries; each section maps a name to its
# server:
#   edgews             echo | `edgews echo --workers 1`, connect: the same,
#                      broadcast: `edgews broadcast --workers 1`, and the
#                      row edgews-pubsub: `edgews pubsub --workers 1`
#                      (all --max-connections 20000 --ping-interval 0)
#   edgews-base        the same with the binary BASE_EDGEWS (when set): an old
#                      build measured in the same run, so "no worse than the
#                      baseline" is a ratio read off one table (and the row
#                      edgews-base-pubsub)
#   tokio-tungstenite, fastwebsockets, tokio-websockets
#                      echo, connect: `edgews-peers NAME`;
#                      broadcast: `edgews-peers fanout-NAME`
#   floor              echo: `edgews-peers floor`; connect: `connect-floor`;
#                      broadcast: `fanout-floor`; not in idle (a 256 KiB
#                      buffer per connection by design)
# The floors are no WebSocket servers but yardsticks (benches/peers/src): one
# mio loop that does the kernel's part of the work (reads, writes, accepts)
# and as little else as can be: their rows are what a server whose own code
# cost nothing reaches in the same run.
#
# Environment:
#   SECTIONS="echo pipeline connect broadcast idle"
#   ROUNDS=3          rounds per server and setting (the tables show medians)
#   DURATION=5s       measured time of each echo, pipeline and connect round
#   WARMUP=1s         unmeasured time before it
#   SERVERS="edgews tokio-tungstenite fastwebsockets tokio-websockets floor"
#   BASE_EDGEWS=      path to an old edgews binary: adds the edgews-base rows
#   ECHO_SETTINGS="100:20 100:1KiB 10:64KiB"      connections:size
#   PIPELINE_SETTINGS="100:20:16"                 connections:size:depth
#   CONNECT_CONNECTIONS=50 CONNECT_SIZE=20 CONNECT_MODES="close abrupt"
#   BC_SETTINGS="1000:200 10000:20"               subscribers:msgs/s in all
#   BC_SENDERS=2 BC_SIZE=64 BC_DURATION=$DURATION (sending time; +2 s drain)
#   IDLE_CONNECTIONS=5000, IDLE_ROUNDS=1 (each idle round uses a fresh server)
#   SYSCALLS=0        1: after each section one extra round per setting with
#                     edgews under `strace -f -c`: syscalls per echoed message,
#                     per connection cycle, per delivered frame (throughput
#                     under strace means nothing; the counts cover the whole
#                     run: no warm-up, and for broadcast the subscribers'
#                     connects and closes too)
#   BASE_PORT=19300   servers listen on BASE_PORT, BASE_PORT+1, ...
#   SKIP_BUILD=0      1: use the binaries already built
#   CARGO_TARGET_DIR  honoured, as cargo does (default: target/)
#
# Time, at the defaults with the five default servers (from short runs
# scaled up): echo ~5 min, pipeline ~1.5 min, connect ~3.5 min, broadcast
# ~6 min (each run: connecting, BC_DURATION, the loader's 2 s drain; the
# pubsub row is a sixth run), idle ~0.5 min: ~16.5 min; BASE_EDGEWS adds a
# sixth server everywhere and a second pubsub row: ~20.5 min; SYSCALLS=1
# about a minute more; plus the build. Each section
# prints its elapsed time, and the table file's header repeats them.
#
# Loopback only. Servers run pinned to CPU 0 (`taskset -c 0`), the load
# generator to CPU 1. Rounds are interleaved (round 1 of every server and
# setting, then round 2, ...) so slow drifts in the machine's load spread
# over all servers; in echo, pipeline and connect all servers are up at
# once (an idle server blocks in epoll and takes no CPU). Every loader run's
# exit status and error count is checked: a failed run shows as FAIL (or
# "k of n rounds FAILED") in the table and the script exits non-zero.
# Raw results: target/compare/compare-STAMP.jsonl, the table beside it in
# compare-STAMP.txt, server logs in compare-STAMP-*.log.
#
# Server CPU: on two cores the load generator (which masks, copies and
# verifies every byte) can be the bottleneck, so a rate alone may not show
# which server is cheaper. Each round therefore also reads the server's
# utime+stime (/proc/PID/stat) over the measured window (echo, pipeline,
# connect: from the end of the warm-up to 200 ms before the end; broadcast:
# from 300 ms after the loader reports every subscriber connected and sending
# started to 200 ms before sending stops), and the tables give its CPU use
# (% of one core) and the work done per server CPU-second, the server's own
# cost, with ratios ("n/a" where the CPU time could not be read).
#
# The per-message echo table gives each server's user and kernel time per
# message and, per setting, the bound: how far a server with the best real
# peer's kernel work and no user-space work at all could lead that peer,
# (usr + sys) / sys; the floor's lead is that bound measured.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

cd_root

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5s}
WARMUP=${WARMUP:-1s}
read -r -a SECTIONS <<<"${SECTIONS:-echo pipeline connect broadcast idle}"
read -r -a SERVERS <<<"${SERVERS:-edgews tokio-tungstenite fastwebsockets tokio-websockets floor}"
BASE_EDGEWS=${BASE_EDGEWS:-}
read -r -a ECHO_SETTINGS <<<"${ECHO_SETTINGS:-100:20 100:1KiB 10:64KiB}"
read -r -a PIPELINE_SETTINGS <<<"${PIPELINE_SETTINGS:-100:20:16}"
CONNECT_CONNECTIONS=${CONNECT_CONNECTIONS:-50}
CONNECT_SIZE=${CONNECT_SIZE:-20}
read -r -a CONNECT_MODES <<<"${CONNECT_MODES:-close abrupt}"
read -r -a BC_SETTINGS <<<"${BC_SETTINGS:-1000:200 10000:20}"
BC_SENDERS=${BC_SENDERS:-2}
BC_SIZE=${BC_SIZE:-64}
BC_DURATION=${BC_DURATION:-$DURATION}
IDLE_CONNECTIONS=${IDLE_CONNECTIONS:-5000}
IDLE_ROUNDS=${IDLE_ROUNDS:-1}
IDLE_DURATION=3s
SYSCALLS=${SYSCALLS:-0}
BASE_PORT=${BASE_PORT:-19300}
SKIP_BUILD=${SKIP_BUILD:-0}

TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
case $TARGET in /*) ;; *) TARGET=$ROOT/$TARGET ;; esac
EDGEWS=$TARGET/release/edgews
PEERS=$TARGET/release/edgews-peers

OUT_DIR=$ROOT/target/compare
mkdir -p "$OUT_DIR"
STAMP=$(date +%Y%m%d-%H%M%S)
RAW=$OUT_DIR/compare-$STAMP.jsonl
TABLE=$OUT_DIR/compare-$STAMP.txt

# --- checking the settings ------------------------------------------------------

[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer"
[[ $IDLE_ROUNDS =~ ^[0-9]+$ ]] || die "IDLE_ROUNDS must be an integer"
[[ $SYSCALLS == 0 || $SYSCALLS == 1 ]] || die "SYSCALLS is 0 or 1"
for s in "${SECTIONS[@]}"; do
    case $s in echo | pipeline | connect | broadcast | idle) ;; *) die "unknown section '$s' (SECTIONS: echo pipeline connect broadcast idle)" ;; esac
done
(( ${#SECTIONS[@]} > 0 )) || die "SECTIONS is empty"
for s in "${SERVERS[@]}"; do
    case $s in edgews | tokio-tungstenite | fastwebsockets | tokio-websockets | floor) ;; *) die "unknown server '$s' in SERVERS" ;; esac
done
for s in "${ECHO_SETTINGS[@]}"; do [[ $s =~ ^[1-9][0-9]*:[0-9]+[A-Za-z]*$ ]] || die "ECHO_SETTINGS: '$s' is not connections:size"; done
for s in "${PIPELINE_SETTINGS[@]}"; do [[ $s =~ ^[1-9][0-9]*:[0-9]+[A-Za-z]*:[1-9][0-9]*$ ]] || die "PIPELINE_SETTINGS: '$s' is not connections:size:depth"; done
for s in "${BC_SETTINGS[@]}"; do [[ $s =~ ^([1-9][0-9]*):[1-9][0-9]*$ ]] || die "BC_SETTINGS: '$s' is not subscribers:msgs/s"; done
for s in "${CONNECT_MODES[@]}"; do [[ $s == close || $s == abrupt ]] || die "CONNECT_MODES: '$s' is neither close nor abrupt"; done
[[ $CONNECT_CONNECTIONS =~ ^[1-9][0-9]*$ ]] || die "CONNECT_CONNECTIONS must be a positive integer"
[[ $BC_SENDERS =~ ^[1-9][0-9]*$ ]] || die "BC_SENDERS must be a positive integer"
if [[ -n $BASE_EDGEWS ]]; then
    [[ -x $BASE_EDGEWS ]] || die "BASE_EDGEWS=$BASE_EDGEWS is not an executable"
    BASE_EDGEWS=$(cd "$(dirname "$BASE_EDGEWS")" && pwd)/$(basename "$BASE_EDGEWS")
fi

has_section() { [[ " ${SECTIONS[*]} " == *" $1 "* ]]; }

# The servers of each section, in table order (see the top). Broadcast ids
# are bc:edgews and bc:edgews-base (`edgews broadcast`), shown as edgews
# and edgews-base, each followed by its pubsub row, ps:edgews and
# ps:edgews-base (`edgews pubsub`), shown as edgews-pubsub and
# edgews-base-pubsub.
ECHO_SERVERS=()
for s in "${SERVERS[@]}"; do
    ECHO_SERVERS+=("$s")
    if [[ $s == edgews && -n $BASE_EDGEWS ]]; then ECHO_SERVERS+=(edgews-base); fi
done
if [[ -n $BASE_EDGEWS && " ${SERVERS[*]} " != *" edgews "* ]]; then
    ECHO_SERVERS=(edgews-base "${ECHO_SERVERS[@]}")
fi
CONNECT_SERVERS=() BC_SERVERS=() IDLE_SERVERS=()
for s in "${ECHO_SERVERS[@]}"; do
    case $s in
        floor) CONNECT_SERVERS+=(connect-floor); BC_SERVERS+=(fanout-floor) ;;
        edgews | edgews-base) CONNECT_SERVERS+=("$s"); BC_SERVERS+=("bc:$s" "ps:$s"); IDLE_SERVERS+=("$s") ;;
        *) CONNECT_SERVERS+=("$s"); BC_SERVERS+=("fanout-$s"); IDLE_SERVERS+=("$s") ;;
    esac
done
# Every id gets a port of its own; "strace" is edgews under strace.
ALL_IDS=("${ECHO_SERVERS[@]}" connect-floor "${BC_SERVERS[@]}" strace)

# The server-CPU window of an echo, pipeline or connect round: from WARMUP
# after the loader starts (its warm-up ends then, plus the few ms it takes
# to connect) to DURATION minus a margin later, inside the measured time.
WARMUP_MS=$(msecs "$WARMUP")
DURATION_MS=$(msecs "$DURATION")
BC_DURATION_MS=$(msecs "$BC_DURATION")
CPU_MARGIN_MS=200
(( DURATION_MS > 5 * CPU_MARGIN_MS )) || CPU_MARGIN_MS=$(( DURATION_MS / 5 ))
CPU_WINDOW_MS=$(( DURATION_MS - CPU_MARGIN_MS ))
WARMUP_S=$(ms_to_s "$WARMUP_MS")
CPU_WINDOW_S=$(ms_to_s "$CPU_WINDOW_MS")
# Broadcast: from BC_SETTLE after sending starts to a margin before it stops.
BC_SETTLE_MS=300 BC_MARGIN_MS=200
if (( BC_DURATION_MS < 2500 )); then BC_SETTLE_MS=$(( BC_DURATION_MS / 10 )) BC_MARGIN_MS=$(( BC_DURATION_MS / 10 )); fi
BC_WINDOW_MS=$(( BC_DURATION_MS - BC_SETTLE_MS - BC_MARGIN_MS ))
(( BC_WINDOW_MS > 0 )) || die "BC_DURATION $BC_DURATION is too short"
BC_SETTLE_S=$(ms_to_s "$BC_SETTLE_MS")
BC_WINDOW_S=$(ms_to_s "$BC_WINDOW_MS")
ECHO_LIMIT=$(( $(secs "$WARMUP") + $(secs "$DURATION") + 60 ))
BC_LIMIT=$(( $(secs "$BC_DURATION") + 2 + 120 ))
IDLE_LIMIT=$(( $(secs "$IDLE_DURATION") + 120 ))
CLK_TCK=$(getconf CLK_TCK 2>/dev/null || true)
[[ $CLK_TCK =~ ^[1-9][0-9]*$ ]] || CLK_TCK=

need_tools taskset python3 ss timeout grep
if [[ $SYSCALLS == 1 ]]; then
    command -v strace >/dev/null || die "SYSCALLS=1 needs strace (apt-get install strace)"
fi
(( $(nproc) >= 2 )) || die "needs two CPUs (server on 0, load on 1)"

# The loader holds as many sockets as the largest idle or broadcast run, the
# server as many.
max_fds=$(( CONNECT_CONNECTIONS + 100 ))
if has_section idle && (( IDLE_CONNECTIONS > max_fds )); then max_fds=$IDLE_CONNECTIONS; fi
if has_section broadcast; then
    for s in "${BC_SETTINGS[@]}"; do
        if (( ${s%%:*} > max_fds )); then max_fds=${s%%:*}; fi
    done
fi
need_fds $(( max_fds + 1000 ))

# --- processes we start, stopped on any exit --------------------------------

# PID (the servers), LOAD_PID and STRACE_PID (edgews under strace, SYSCALLS=1)
STRACE_PID=
setup_processes STRACE_PID

port_of() {
    local i
    for i in "${!ALL_IDS[@]}"; do
        [[ ${ALL_IDS[$i]} == "$1" ]] && { echo $(( BASE_PORT + i )); return; }
    done
    die "unknown server $1"
}

# The name a server id has in the tables: bc:edgews is edgews, ps:edgews
# edgews-pubsub.
shown() {
    case $1 in
        ps:*) echo "${1#ps:}-pubsub" ;;
        *) echo "${1#bc:}" ;;
    esac
}

# The edgews options every edgews server here gets (the binary $1: a build
# from before --workers runs one reactor anyway).
edgews_flags() {
    EDGEWS_FLAGS=(--max-connections 20000 --ping-interval 0)
    if has_workers_option "$1"; then EDGEWS_FLAGS+=(--workers 1); fi
}

# Starts server id $1 pinned to CPU 0 and waits for its port.
start_server() {
    local id=$1 port log bin mode=echo
    port=$(port_of "$id")
    log=$OUT_DIR/compare-$STAMP-${id/:/-}.log
    listening "$port" && die "port $port is taken already (set BASE_PORT)"
    case $id in
        edgews | edgews-base | bc:edgews | bc:edgews-base | ps:edgews | ps:edgews-base)
            bin=$EDGEWS
            if [[ $id == *edgews-base ]]; then bin=$BASE_EDGEWS; fi
            if [[ $id == bc:* ]]; then mode=broadcast; fi
            if [[ $id == ps:* ]]; then mode=pubsub; fi
            edgews_flags "$bin"
            EDGEWS_LOG=warn taskset -c 0 "$bin" "$mode" \
                --listen "127.0.0.1:$port" "${EDGEWS_FLAGS[@]}" >>"$log" 2>&1 &
            ;;
        tokio-tungstenite | fastwebsockets | tokio-websockets | floor | connect-floor | fanout-*)
            taskset -c 0 "$PEERS" "$id" --listen "127.0.0.1:$port" >>"$log" 2>&1 &
            ;;
        *) die "unknown server $id" ;;
    esac
    PID[$id]=$!
    wait_port "${PID[$id]}" "$port" || die "$id did not come up on port $port; see $log"
}

# Runs `edgews load "$@"` pinned to CPU 1 (under timeout, $1 seconds at
# most; output in $TMP/load.out and .err) against the server with pid $2,
# reading the server's CPU time over the loader's measured window, which
# starts as $3 says: "warmup" (WARMUP after the start, then CPU_WINDOW_S
# long) or "sending" (BC_SETTLE_S after the loader says that sending
# started, then BC_WINDOW_S long). Loader arguments from $4 on. Sets RC
# (the loader's exit status), CPU ("CLK_TCK U0 S0 T0 U1 S1 T1" or "n/a:
# why"), RSS0 and RSS (the server's VmRSS in kB before the loader starts
# and at the end of the window; empty if not read).
measure() {
    local limit=$1 spid=$2 start=$3 window started=0
    shift 3
    RC=0 CPU="n/a: no reading" RSS0='' RSS=''
    : >"$TMP/load.out"
    : >"$TMP/load.err"
    if [[ -z $spid ]] || ! running "$spid"; then
        echo "    the server is not running (see its log)" >&2
        RC=255 CPU="n/a: server not running"
        return
    fi
    RSS0=$(vmrss_kb "$spid")
    # broadcast's debug line says when sending starts
    EDGEWS_LOG=warn,edgews::load::broadcast=debug timeout -k 5 "$limit" taskset -c 1 "$EDGEWS" load "$@" \
        >"$TMP/load.out" 2>"$TMP/load.err" &
    LOAD_PID=$!
    if [[ $start == sending ]]; then
        window=$BC_WINDOW_S
        for _ in $(seq $(( limit * 10 ))); do
            if grep -aq 'sending starts' "$TMP/load.err"; then started=1; break; fi
            running "$LOAD_PID" || break
            sleep 0.1
        done
        if (( started )); then sleep "$BC_SETTLE_S"; fi
    else
        window=$CPU_WINDOW_S started=1
        sleep "$WARMUP_S"
    fi
    if [[ -z $CLK_TCK ]]; then
        CPU="n/a: no CLK_TCK"
    elif (( ! started )); then
        CPU="n/a: sending never started"
    elif ! running "$LOAD_PID"; then
        CPU="n/a: loader ended before the window"
    elif ! cpu_sample "$spid" wall; then
        CPU="n/a: cannot read /proc/$spid/stat"
    else
        CPU="$CLK_TCK $SAMPLE"
        sleep "$window"
        if ! running "$LOAD_PID"; then
            CPU="n/a: loader ended inside the window"
        elif ! cpu_sample "$spid" wall; then
            CPU="n/a: cannot read /proc/$spid/stat"
        else
            CPU="$CPU $SAMPLE"
            RSS=$(vmrss_kb "$spid")
        fi
    fi
    wait "$LOAD_PID" || RC=$?
    LOAD_PID=
}

# Checks a loader's output and appends one line to $RAW:
#   record TEST SERVER SETTING ROUND EXIT OUT ERR CPU RSS0 RSS [TRACE]
# TEST: echo, connect, broadcast, idle, or syscalls-echo, syscalls-connect,
# syscalls-broadcast (edgews under strace, TRACE its `strace -c` summary).
# SETTING: echo connections:size:depth, connect connections:size:mode,
# broadcast subscribers:rate:senders:size, idle connections. CPU as measure
# sets it ("" where not read). Prints a short summary; returns 1 if the run
# failed.
record() {
    py_run "$RAW" "$@" <<'EOF'
raw, test, server, setting, rnd, rc, out, err, cpu_arg, rss0, rss = sys.argv[1:12]
trace = (sys.argv[12] if len(sys.argv) > 12 else "") or None
rc = int(rc)
f = setting.split(":")
conns = int(f[0])
kind = test[len("syscalls-"):] if test.startswith("syscalls-") else test
load, why = read_load(out, rc, strip=True, lenient=True)
rate_key = {"echo": "msg_per_s", "connect": "cycles_per_s", "broadcast": "deliveries_per_s"}.get(kind)
if kind == "echo":
    echo_why(load, why, conns)
    if load and load.get("pipeline", 1) != int(f[2]):
        why.append(f'pipeline {load.get("pipeline")}, asked {f[2]}')
elif kind == "connect":
    connect_why(load, why, conns)
    if load and bool(load.get("abrupt")) != (f[2] == "abrupt"):
        why.append(f'abrupt {load.get("abrupt")} in a {f[2]} run')
elif kind == "broadcast":
    broadcast_why(load, why, conns)
    if load and ("topic" in load) != server.endswith("-pubsub"):
        why.append(f'topic {load.get("topic")!r} in a {server} run')
else:
    idle_why(load, why, conns, rss_why="no RSS reading")
calls = {}
if trace:
    try:
        calls = strace_calls(trace)
    except (OSError, ValueError) as e:
        why.append(f"strace summary: {e}")
    if not calls:
        why.append("no strace summary")
# A missing CPU reading shows as n/a; it does not fail the run.
server_cpu, cpu_why = None, None
if cpu_arg:
    try:
        server_cpu = window_cpu(cpu_arg, (load or {}).get(rate_key))
    except ValueError as e:
        cpu_why = str(e)
ok = not why
rec = {"test": test, "server": server, "setting": setting, "connections": conns,
       "round": int(rnd), "exit": rc, "ok": ok, "why": "; ".join(why), "load": load}
if trace:
    rec["syscalls"] = calls
if cpu_arg:
    rec["server_cpu"] = server_cpu
    if cpu_why:
        rec["server_cpu_why"] = cpu_why
if rss0 or rss:
    rec["rss_kb_start"] = int(rss0) if rss0 else None
    rec["rss_kb"] = int(rss) if rss else None
if not ok:
    # the loader's last words, without its progress line and terminal codes
    import re
    tail = [re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", l).strip() for l in err_tail(err, 8)]
    tail = [l for l in tail if l and not l.startswith("[load ")]
    rec["stderr_tail"] = tail[-3:]
append(raw, rec)
if not ok:
    print(f"FAILED: {rec['why']}" + ("  | " + " | ".join(rec["stderr_tail"]) if rec["stderr_tail"] else ""))
    sys.exit(1)

if server_cpu:
    pc = server_cpu["per_cpu_s"]
    cpu = (f'server CPU {server_cpu["cpu_pct"]:.0f}% (user {server_cpu["user_pct"]:.0f}%, '
           f'sys {server_cpu["sys_pct"]:.0f}%)  ' + (f"{pc:,.0f}/CPU-s" if pc else "n/a/CPU-s"))
else:
    cpu = f"server CPU n/a ({cpu_why})"
if test.startswith("syscalls-"):
    unit = {"echo": "messages", "connect": "cycles", "broadcast": "deliveries"}[kind]
    n = load[unit]
    top = sorted(calls.items(), key=lambda kv: -kv[1])[:4]
    print(f'{n:,} {unit}; per one: all {sum(calls.values()) / n:.2f}, '
          + ", ".join(f"{k} {v / n:.2f}" for k, v in top))
elif test == "echo":
    print(f'{load["msg_per_s"]:,.0f} msg/s  p50 {load["p50_us"]:.0f} us  {cpu}')
elif test == "connect":
    print(f'{load["cycles_per_s"]:,.0f} cycles/s  upgrade p50 {load["upgrade_p50_us"]:.0f} us  {cpu}')
elif test == "broadcast":
    mem = f"  RSS {int(rss) / 1024:.1f} MiB" if rss else ""
    print(f'{load["deliveries_per_s"]:,.0f} deliveries/s  p99 {load["p99_us"]:,.0f} us  '
          f'last p99 {load.get("last_p99_us", 0):,.0f} us  {cpu}{mem}')
else:
    print(f'{load["bytes_per_connection"]:,.0f} B/connection')
EOF
}

FAILED=0

# Label of a run's line: round, server, setting.
line_head() { printf '  round %d  %-25s %-22s ' "$1" "$2" "$3"; }

# One echo round: server id $1, setting connections:size:depth $2, round $3.
run_echo() {
    local id=$1 setting=$2 rnd=$3 conns size depth shown_as
    IFS=: read -r conns size depth <<<"$setting"
    shown_as="$conns x $size"
    if (( depth > 1 )); then shown_as+=" p$depth"; fi
    measure "$ECHO_LIMIT" "${PID[$id]:-}" warmup echo --url "ws://127.0.0.1:$(port_of "$id")/" \
        --connections "$conns" --size "$size" --pipeline "$depth" \
        --duration "$DURATION" --warmup "$WARMUP"
    line_head "$rnd" "$id" "$shown_as"
    record echo "$id" "$setting" "$rnd" "$RC" "$TMP/load.out" "$TMP/load.err" "$CPU" "" "" || FAILED=1
}

# One connect round: server id $1, mode close or abrupt $2, round $3.
run_connect() {
    local id=$1 mode=$2 rnd=$3 abrupt=()
    if [[ $mode == abrupt ]]; then abrupt=(--abrupt); fi
    measure "$ECHO_LIMIT" "${PID[$id]:-}" warmup connect --url "ws://127.0.0.1:$(port_of "$id")/" \
        --connections "$CONNECT_CONNECTIONS" --size "$CONNECT_SIZE" "${abrupt[@]}" \
        --duration "$DURATION" --warmup "$WARMUP"
    line_head "$rnd" "$id" "$CONNECT_CONNECTIONS x $mode"
    record connect "$id" "$CONNECT_CONNECTIONS:$CONNECT_SIZE:$mode" "$rnd" "$RC" \
        "$TMP/load.out" "$TMP/load.err" "$CPU" "" "" || FAILED=1
}

# One broadcast round on a fresh server: id $1, setting subscribers:rate $2,
# round $3. A pubsub server (ps:*) is driven with --topic: every subscriber
# on /topics/bench (one subscription each), subscribing to it again with the
# control message and waiting for the acknowledgement.
run_broadcast() {
    local id=$1 setting=$2 rnd=$3 subs rate path=/ topic=()
    IFS=: read -r subs rate <<<"$setting"
    if [[ $id == ps:* ]]; then path=/topics/bench topic=(--topic bench); fi
    start_server "$id"
    measure "$BC_LIMIT" "${PID[$id]}" sending broadcast --url "ws://127.0.0.1:$(port_of "$id")$path" \
        --connections "$subs" --senders "$BC_SENDERS" --rate "$rate" --size "$BC_SIZE" \
        --duration "$BC_DURATION" "${topic[@]}"
    stop_server "$id" 100
    line_head "$rnd" "$(shown "$id")" "$subs subs x $rate/s"
    record broadcast "$(shown "$id")" "$subs:$rate:$BC_SENDERS:$BC_SIZE" "$rnd" "$RC" \
        "$TMP/load.out" "$TMP/load.err" "$CPU" "$RSS0" "$RSS" || FAILED=1
}

run_idle() {
    local id=$1 rnd=$2 rc=0 port
    port=$(port_of "$id")
    : >"$TMP/load.out"
    timeout -k 5 "$IDLE_LIMIT" taskset -c 1 "$EDGEWS" load idle \
        --url "ws://127.0.0.1:$port/" --connections "$IDLE_CONNECTIONS" \
        --duration "$IDLE_DURATION" --server-pid "${PID[$id]}" >"$TMP/load.out" 2>"$TMP/load.err" || rc=$?
    line_head "$rnd" "$id" "$IDLE_CONNECTIONS idle"
    record idle "$id" "$IDLE_CONNECTIONS" "$rnd" "$rc" "$TMP/load.out" "$TMP/load.err" "" "" "" || FAILED=1
}

# One round with edgews under `strace -f -c`: what $1 (echo, connect or
# broadcast) and the loader arguments after it; the setting $2 as `record`
# takes it. No warm-up: the counts cover the whole run.
run_strace() {
    local what=$1 setting=$2 port trace rc=0 tracee mode=echo limit=$ECHO_LIMIT
    shift 2
    port=$(port_of strace)
    if [[ $what == broadcast ]]; then mode=broadcast limit=$BC_LIMIT; fi
    trace=$OUT_DIR/compare-$STAMP-strace-$what-${setting//:/-}.txt
    listening "$port" && die "port $port is taken already"
    edgews_flags "$EDGEWS"
    EDGEWS_LOG=warn taskset -c 0 strace -f -c -o "$trace" "$EDGEWS" "$mode" \
        --listen "127.0.0.1:$port" "${EDGEWS_FLAGS[@]}" \
        >>"$OUT_DIR/compare-$STAMP-edgews-strace.log" 2>&1 &
    STRACE_PID=$!
    wait_port "$STRACE_PID" "$port" || die "edgews under strace did not come up"
    timeout -k 5 "$limit" taskset -c 1 "$EDGEWS" load "$what" --url "ws://127.0.0.1:$port/" "$@" \
        >"$TMP/load.out" 2>"$TMP/load.err" || rc=$?
    # Stop the traced server (strace's child); strace then writes its summary.
    tracee=$(ps -o pid= --ppid "$STRACE_PID" | tr -d ' ' | head -n1 || true)
    kill -TERM "${tracee:-$STRACE_PID}" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$STRACE_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$STRACE_PID" 2>/dev/null || true
    wait "$STRACE_PID" 2>/dev/null || true
    STRACE_PID=
    line_head 1 "edgews+strace" "$what $setting"
    record "syscalls-$what" edgews "$setting" 1 "$rc" "$TMP/load.out" "$TMP/load.err" "" "" "" "$trace" || FAILED=1
}

# Section timing: section_start NAME, then section_end prints and keeps the
# elapsed time.
declare -A SECTION_TIME=()
section_start() { SECTION=$1 SECTION_T0=$SECONDS; }
section_end() {
    local t=$(( SECONDS - SECTION_T0 ))
    SECTION_TIME[$SECTION]=$t
    printf '== %s: done in %dm%02ds\n' "$SECTION" $(( t / 60 )) $(( t % 60 ))
}

# --- build and check -----------------------------------------------------------

if [[ $SKIP_BUILD != 1 ]]; then
    echo "== building (release)"
    cargo build --release -p edgews-peers
    cargo build --release --bin edgews
fi
[[ -x $EDGEWS ]] || die "no $EDGEWS"
[[ -x $PEERS ]] || die "no $PEERS"

# Everything the chosen sections need must be there: a missing row would
# make the page silently incomplete.
peer_commands=$("$PEERS" --help | awk '/^Commands:/ { on = 1; next } /^[^ ]/ { on = 0 } on { print $1 }')
missing=()
need_peer() { grep -qx -- "$1" <<<"$peer_commands" || missing+=("edgews-peers $1"); }
need_load() { "$EDGEWS" load "$1" --help >/dev/null 2>&1 || missing+=("edgews load $1"); }
for s in "${SECTIONS[@]}"; do
    case $s in
        echo | pipeline) need_load echo; for id in "${ECHO_SERVERS[@]}"; do case $id in edgews*) ;; *) need_peer "$id" ;; esac; done ;;
        connect) need_load connect; for id in "${CONNECT_SERVERS[@]}"; do case $id in edgews*) ;; *) need_peer "$id" ;; esac; done ;;
        broadcast)
            need_load broadcast
            "$EDGEWS" load broadcast --help 2>/dev/null | grep -q -- --topic || missing+=("edgews load broadcast --topic")
            for id in "${BC_SERVERS[@]}"; do case $id in bc:* | ps:*) ;; *) need_peer "$id" ;; esac; done
            ;;
        idle) need_load idle ;;
    esac
done
if [[ -n $BASE_EDGEWS ]]; then
    "$BASE_EDGEWS" echo --help >/dev/null 2>&1 || missing+=("$BASE_EDGEWS echo")
    if has_section broadcast; then
        "$BASE_EDGEWS" broadcast --help >/dev/null 2>&1 || missing+=("$BASE_EDGEWS broadcast")
        "$BASE_EDGEWS" pubsub --help >/dev/null 2>&1 || missing+=("$BASE_EDGEWS pubsub")
    fi
fi
(( ${#missing[@]} == 0 )) || die "not built (or not written yet): ${missing[*]}; choose other SECTIONS or SERVERS"
: >"$RAW"

# --- the machine ---------------------------------------------------------------

REV=$(revision "with local changes")
CPU=$(cpu_model)
LOAD_START=$(load_avg)
top_snapshot "$OUT_DIR/compare-$STAMP-top-start.txt"
versions=$(python3 - "$ROOT/Cargo.lock" <<'EOF'
import re, sys
text = open(sys.argv[1]).read()
found = {}
for block in text.split("[[package]]"):
    m = re.search(r'name = "([^"]+)"\s*\nversion = "([^"]+)"', block)
    if m and m.group(1) in ("tokio-tungstenite", "fastwebsockets", "tokio-websockets", "tokio", "hyper"):
        found.setdefault(m.group(1), []).append(m.group(2))
print(", ".join(f"{k} {'/'.join(v)}" for k, v in sorted(found.items())))
EOF
)
settings_line="rounds $ROUNDS x $DURATION (warm-up $WARMUP); sections: ${SECTIONS[*]}"
details=()
has_section echo && details+=("echo ${ECHO_SETTINGS[*]} (connections:size)")
has_section pipeline && details+=("pipeline ${PIPELINE_SETTINGS[*]} (connections:size:depth)")
has_section connect && details+=("connect $CONNECT_CONNECTIONS connections x $CONNECT_SIZE B, ${CONNECT_MODES[*]}")
has_section broadcast && details+=("broadcast ${BC_SETTINGS[*]} (subscribers:msgs/s), $BC_SENDERS senders, $BC_SIZE B, $BC_DURATION sending")
has_section idle && details+=("idle $IDLE_CONNECTIONS connections, $IDLE_ROUNDS round(s)")
base_line=
[[ -z $BASE_EDGEWS ]] || base_line=$'\n'"baseline: edgews-base = $BASE_EDGEWS (sha256 $(short_sum "$BASE_EDGEWS")); edgews = $EDGEWS (sha256 $(short_sum "$EDGEWS"))"
HEADER=$(cat <<EOF
date:     $(date -u '+%Y-%m-%d %H:%M:%S UTC')
commit:   $REV$base_line
machine:  $(nproc) CPUs, $CPU; kernel $(uname -r)
peers:    $versions
settings: $settings_line
$(printf '          %s\n' "${details[@]}")
pinning:  servers on CPU 0, load generator on CPU 1
EOF
)
echo "$HEADER"
echo "load average at start: $LOAD_START"

# --- echo and pipelined echo ------------------------------------------------------

for section in echo pipeline; do
    has_section "$section" || continue
    section_start "$section"
    if [[ $section == echo ]]; then
        settings=()
        for s in "${ECHO_SETTINGS[@]}"; do settings+=("$s:1"); done
    else
        settings=("${PIPELINE_SETTINGS[@]}")
    fi
    echo "== $section: all servers up, rounds interleaved"
    for s in "${ECHO_SERVERS[@]}"; do start_server "$s"; done
    for rnd in $(seq "$ROUNDS"); do
        for setting in "${settings[@]}"; do
            for s in "${ECHO_SERVERS[@]}"; do run_echo "$s" "$setting" "$rnd"; done
        done
    done
    for s in "${ECHO_SERVERS[@]}"; do stop_server "$s" 100; done
    if [[ $SYSCALLS == 1 ]]; then
        echo "== $section syscalls: edgews under strace -f -c (throughput under strace is meaningless)"
        for setting in "${settings[@]}"; do
            IFS=: read -r conns size depth <<<"$setting"
            run_strace echo "$setting" --connections "$conns" --size "$size" --pipeline "$depth" \
                --duration "$DURATION" --warmup 0
        done
    fi
    section_end
done

# --- connection setup ----------------------------------------------------------------

if has_section connect; then
    section_start connect
    echo "== connect: all servers up, rounds interleaved"
    for s in "${CONNECT_SERVERS[@]}"; do start_server "$s"; done
    for rnd in $(seq "$ROUNDS"); do
        for mode in "${CONNECT_MODES[@]}"; do
            for s in "${CONNECT_SERVERS[@]}"; do run_connect "$s" "$mode" "$rnd"; done
        done
    done
    for s in "${CONNECT_SERVERS[@]}"; do stop_server "$s" 100; done
    if [[ $SYSCALLS == 1 ]]; then
        echo "== connect syscalls: edgews under strace -f -c"
        for mode in "${CONNECT_MODES[@]}"; do
            abrupt=()
            if [[ $mode == abrupt ]]; then abrupt=(--abrupt); fi
            run_strace connect "$CONNECT_CONNECTIONS:$CONNECT_SIZE:$mode" \
                --connections "$CONNECT_CONNECTIONS" --size "$CONNECT_SIZE" "${abrupt[@]}" \
                --duration "$DURATION" --warmup 0
        done
    fi
    section_end
fi

# --- broadcast fan-out ------------------------------------------------------------------

if has_section broadcast; then
    section_start broadcast
    echo "== broadcast: a fresh server each run, rounds interleaved"
    for rnd in $(seq "$ROUNDS"); do
        for setting in "${BC_SETTINGS[@]}"; do
            for s in "${BC_SERVERS[@]}"; do run_broadcast "$s" "$setting" "$rnd"; done
        done
    done
    if [[ $SYSCALLS == 1 ]]; then
        echo "== broadcast syscalls: edgews under strace -f -c"
        for setting in "${BC_SETTINGS[@]}"; do
            IFS=: read -r subs rate <<<"$setting"
            run_strace broadcast "$subs:$rate:$BC_SENDERS:$BC_SIZE" --connections "$subs" \
                --senders "$BC_SENDERS" --rate "$rate" --size "$BC_SIZE" --duration "$BC_DURATION"
        done
    fi
    section_end
fi

# --- memory per idle connection ------------------------------------------------

if has_section idle && (( IDLE_ROUNDS > 0 )); then
    section_start idle
    echo "== idle: $IDLE_CONNECTIONS connections, a fresh server each round"
    for rnd in $(seq "$IDLE_ROUNDS"); do
        for s in "${IDLE_SERVERS[@]}"; do
            start_server "$s"
            run_idle "$s" "$rnd"
            stop_server "$s" 100
        done
    done
    section_end
fi

LOAD_END=$(load_avg)
top_snapshot "$OUT_DIR/compare-$STAMP-top-end.txt"
took=
for s in "${SECTIONS[@]}"; do
    [[ -z ${SECTION_TIME[$s]:-} ]] || took+="${took:+, }$s $(( SECTION_TIME[$s] / 60 ))m$(printf %02d $(( SECTION_TIME[$s] % 60 )))s"
done

# --- the tables -------------------------------------------------------------------

{
    echo
    echo "$HEADER"
    echo "load:     average $LOAD_START at start, $LOAD_END at end (1/5/15 min)"
    echo "took:     $took"
    echo
    python3 - "$RAW" "${ECHO_SERVERS[*]}" "${CONNECT_SERVERS[*]}" "$(for s in "${BC_SERVERS[@]}"; do shown "$s"; done | xargs)" \
        "${IDLE_SERVERS[*]}" <<'EOF'
import json, statistics, sys
raw = sys.argv[1]
echo_servers, connect_servers, bc_servers, idle_servers = (a.split() for a in sys.argv[2:6])
recs = [json.loads(l) for l in open(raw)]
med = statistics.median
PEERS = ("tokio-tungstenite", "fastwebsockets", "tokio-websockets")

def fmt(n):
    return f"{n:,.0f}"

def runs_of(test, server, setting):
    return [r for r in recs if r["test"] == test and r["server"] == server and r["setting"] == setting]

def settings_of(test):
    out = []
    for r in recs:
        if r["test"] == test and r["setting"] not in out:
            out.append(r["setting"])
    return out

def good(runs, key):
    return [r["load"][key] for r in runs if r["ok"]]

def cpu_cells(runs, key):
    """The server-CPU readings `key` of the good rounds that have one."""
    return [r["server_cpu"][key] for r in runs if r["ok"] and r.get("server_cpu")
            and r["server_cpu"].get(key) is not None]

def median_or_none(vals):
    return med(vals) if vals else None

def key_figure(test, server, setting):
    """Median work per server CPU-second over the rounds, None if a round
    failed or none was read."""
    runs = runs_of(test, server, setting)
    if not runs or any(not r["ok"] for r in runs):
        return None
    return median_or_none(cpu_cells(runs, "per_cpu_s"))

def ratio(a, b):
    return f"{a / b:.2f}" if a and b else "n/a"

def user_share(runs):
    """User time as % of the server's CPU time, pooled over the good rounds:
    one round holds only ~20 user ticks, too few to tell 5% from 6%."""
    user, total = 0, 0
    for r in runs:
        c = r.get("server_cpu") if r["ok"] else None
        if c and c.get("user_ticks") is not None and c.get("sys_ticks") is not None:
            user += c["user_ticks"]
            total += c["user_ticks"] + c["sys_ticks"]
    return 100 * user / total if total else None

def notes(runs, n_good, n_cpu):
    bad = len(runs) - n_good
    out = []
    if bad:
        out.append(f"{bad} of {len(runs)} rounds FAILED")
    if n_cpu < n_good:
        out.append(f"CPU read in {n_cpu} of {n_good} rounds")
    return f"  ({'; '.join(out)})" if out else ""

def fail_line(label, server, runs, width, label_width=16):
    bad = sum(1 for r in runs if not r["ok"])
    why = next((r["why"] for r in runs if not r["ok"]), "not run")
    return f'{label:<{label_width}}{server:<26}{"FAIL":>{width}}  ({bad} of {len(runs)} rounds failed: {why})'

def echo_label(setting):
    c, size, depth = setting.split(":")
    return f"{c} x {size}" + (" B" if size.isdigit() else "") + (f" p{depth}" if depth != "1" else "")

# --- echo and pipelined echo
echo_settings = settings_of("echo")
if echo_settings:
    print("echo (pN: --pipeline N, N messages in flight per connection), msg/s: median of the rounds [min..max];")
    print("p50 round trip; ratio = server / edgews (higher: faster than edgews)")
    print("server CPU over the measured window, medians: CPU% = user+sys and usr% = user alone, in % of one core;")
    print("usr/CPU = user time as % of the server's CPU time, pooled over the rounds (ticks summed);")
    print("msg/CPU-s = msg/s / server CPU-seconds per second; ratio = server / edgews (higher: less CPU per message than edgews)")
    print(f'{"setting":<16}{"server":<26}{"msg/s":>11}  {"[min..max]":<21}{"p50 us":>8}{"/ edgews":>10}'
          f'{"CPU%":>7}{"usr%":>6}{"usr/CPU":>9}{"msg/CPU-s":>12}{"/ edgews":>10}')
    for setting in echo_settings:
        label = echo_label(setting)
        eruns = runs_of("echo", "edgews", setting)
        e_good = good(eruns, "msg_per_s")
        base_med = med(e_good) if e_good and len(e_good) == len(eruns) else None
        base_mpc = key_figure("echo", "edgews", setting)
        for s in echo_servers:
            runs = runs_of("echo", s, setting)
            vals = good(runs, "msg_per_s")
            if not vals:
                print(fail_line(label, s, runs, 11))
            else:
                m = med(vals)
                p50 = med(r["load"]["p50_us"] for r in runs if r["ok"])
                span = f"[{fmt(min(vals))}..{fmt(max(vals))}]"
                cpu, usr, mpc = (cpu_cells(runs, k) for k in ("cpu_pct", "user_pct", "per_cpu_s"))
                cpu_s = f"{med(cpu):.0f}" if cpu else "n/a"
                usr_s = f"{med(usr):.0f}" if usr else "n/a"
                share = user_share(runs)
                share_s = f"{share:.1f}%" if share is not None else "n/a"
                mpc_med = median_or_none(mpc)
                mpc_s = fmt(mpc_med) if mpc_med else "n/a"
                print(f"{label:<16}{s:<26}{fmt(m):>11}  {span:<21}{p50:>8.0f}{ratio(m, base_med):>10}"
                      f"{cpu_s:>7}{usr_s:>6}{share_s:>9}{mpc_s:>12}{ratio(mpc_med, base_mpc):>10}"
                      f"{notes(runs, len(vals), len(mpc))}")
            label = ""
        print()

    def per_message_us(runs, key):
        """Median over the good rounds of a server's CPU time per message (us)."""
        vals = [r["server_cpu"][key] * 1e4 / r["load"]["msg_per_s"] for r in runs
                if r["ok"] and r.get("server_cpu") and r["server_cpu"].get(key) is not None
                and r["load"]["msg_per_s"]]
        return median_or_none(vals)

    print("per message: the server's CPU time (us, medians of the rounds) in user space and in the kernel.")
    print("bound = (usr + sys) / sys of the best real peer: how far a server with that peer's kernel work and")
    print("no user-space work at all could lead it; the floor's own lead is that bound measured (see floor.rs)")
    print(f'{"setting":<16}{"server":<26}{"usr us":>8}{"sys us":>8}{"msg/s / best peer":>19}')
    for setting in echo_settings:
        label = echo_label(setting)
        meds, times = {}, {}
        for s in echo_servers:
            runs = runs_of("echo", s, setting)
            vals = good(runs, "msg_per_s")
            if vals and len(vals) == len(runs):
                meds[s] = med(vals)
            times[s] = tuple(per_message_us(runs, key) for key in ("user_pct", "sys_pct"))
        best = max((s for s in PEERS if s in meds), key=lambda s: meds[s], default=None)
        for s in echo_servers:
            lead = f"{meds[s] / meds[best]:>19.2f}" if best and s in meds else f'{"-":>19}'
            cells = "".join(f"{v:>8.2f}" if v is not None else f'{"n/a":>8}' for v in times[s])
            print(f"{label:<16}{s:<26}{cells}{lead}")
            label = ""
        u, k = times.get(best, (None, None))
        if u is not None and k:
            print(f'{"":<16}bound vs {best}: {(u + k) / k:.2f}')
    print()

# --- connection setup
connect_settings = settings_of("connect")
if connect_settings:
    print("connect: each connection in a loop: TCP connect, upgrade, one echo, close (close: the closing handshake;")
    print("abrupt: the client drops TCP after the echo). cycles/s: median of the rounds [min..max]; server CPU% of one")
    print("core over the measured window; cycles/CPU-s = cycles per server CPU-second, the server's cost per connection;")
    print("ratios of cycles/CPU-s (higher: cheaper): / edgews, / best peer (the real peer with the most cycles/CPU-s);")
    print("upgrade p50/p99 = connect to 101 received, cycle p50 = a whole cycle (medians of the rounds), in us")
    print(f'{"setting":<16}{"server":<26}{"cycles/s":>10}  {"[min..max]":<19}{"CPU%":>6}{"cycles/CPU-s":>14}'
          f'{"/ edgews":>10}{"/ best peer":>13}{"upg p50":>9}{"upg p99":>9}{"cyc p50":>9}')
    for setting in connect_settings:
        conns, size, mode = setting.split(":")
        label = f"{conns} x {mode}"
        base = key_figure("connect", "edgews", setting)
        peer_figs = {s: key_figure("connect", s, setting) for s in PEERS if s in connect_servers}
        peer_figs = {s: v for s, v in peer_figs.items() if v}
        best = max(peer_figs, key=peer_figs.get, default=None)
        for s in connect_servers:
            runs = runs_of("connect", s, setting)
            vals = good(runs, "cycles_per_s")
            if not vals:
                print(fail_line(label, s, runs, 10))
            else:
                m = med(vals)
                span = f"[{fmt(min(vals))}..{fmt(max(vals))}]"
                cpu, cpc = cpu_cells(runs, "cpu_pct"), cpu_cells(runs, "per_cpu_s")
                cpc_med = median_or_none(cpc)
                lat = lambda k: med(r["load"][k] for r in runs if r["ok"])
                print(f"{label:<16}{s:<26}{fmt(m):>10}  {span:<19}"
                      f'{(f"{med(cpu):.0f}" if cpu else "n/a"):>6}{(fmt(cpc_med) if cpc_med else "n/a"):>14}'
                      f"{ratio(cpc_med, base):>10}{ratio(cpc_med, peer_figs.get(best)):>13}"
                      f'{lat("upgrade_p50_us"):>9.0f}{lat("upgrade_p99_us"):>9.0f}{lat("cycle_p50_us"):>9.0f}'
                      f"{notes(runs, len(vals), len(cpc))}")
            label = ""
        if best:
            print(f'{"":<16}best peer: {best}')
        print()

# --- broadcast fan-out
bc_settings = settings_of("broadcast")
if bc_settings:
    print("broadcast: senders publish at a fixed rate, the server sends each message to every other connection.")
    print("deliv/s: frames received by the subscribers per second (median of the rounds); CPU% of one core over the")
    print("window; deliv/CPU-s = deliveries per server CPU-second, the server's cost per frame delivered; / edgews (higher:")
    print("cheaper); fan-out latency send -> receipt p50/p99/p99.9 in ms, of every delivery, and last = of each message")
    print("to the last subscriber to receive it (medians of the rounds); RSS/sub = server VmRSS during the run /")
    print("subscribers, grow/sub = its growth since the start / subscribers (bytes, medians); miss/err = missing")
    print("deliveries and loader errors, summed over the rounds. *-pubsub: `edgews pubsub`, one topic that every")
    print("connection subscribes to, published to with {\"op\":\"publish\"} (BC_SIZE bytes of data in pubsub's envelope)")
    print(f'{"setting":<20}{"server":<26}{"deliv/s":>9}{"CPU%":>6}{"deliv/CPU-s":>13}{"/ edgews":>10}'
          f'{"p50 ms":>8}{"p99 ms":>8}{"p99.9 ms":>9}{"last p50":>9}{"last p99":>9}{"last p99.9":>11}'
          f'{"RSS/sub":>9}{"grow/sub":>9}{"miss/err":>10}')
    for setting in bc_settings:
        subs, rate, senders, size = setting.split(":")
        label = f"{int(subs):,} x {rate}/s"
        base = key_figure("broadcast", "edgews", setting)
        for s in bc_servers:
            runs = runs_of("broadcast", s, setting)
            vals = good(runs, "deliveries_per_s")
            miss = sum((r["load"] or {}).get("missing", 0) for r in runs if r["load"])
            errs = sum((r["load"] or {}).get("errors", 0) for r in runs if r["load"])
            if not vals:
                print(fail_line(label, s, runs, 9, 20) + f"  miss/err {miss}/{errs}")
            else:
                cpu, dpc = cpu_cells(runs, "cpu_pct"), cpu_cells(runs, "per_cpu_s")
                dpc_med = median_or_none(dpc)
                lat = lambda k: med(r["load"][k] for r in runs if r["ok"]) / 1000
                # the last-subscriber keys, absent from a loader before them
                last = [med(r["load"][k] for r in runs if r["ok"]) / 1000
                        if all(k in r["load"] for r in runs if r["ok"]) else None
                        for k in ("last_p50_us", "last_p99_us", "last_p999_us")]
                last_cells = "".join(f"{v:>{w}.1f}" if v is not None else f'{"n/a":>{w}}'
                                     for v, w in zip(last, (9, 9, 11)))
                rss = [r["rss_kb"] * 1024 / int(subs) for r in runs if r["ok"] and r.get("rss_kb")]
                grow = [(r["rss_kb"] - r["rss_kb_start"]) * 1024 / int(subs) for r in runs
                        if r["ok"] and r.get("rss_kb") and r.get("rss_kb_start")]
                print(f"{label:<20}{s:<26}{fmt(med(vals)):>9}"
                      f'{(f"{med(cpu):.0f}" if cpu else "n/a"):>6}{(fmt(dpc_med) if dpc_med else "n/a"):>13}'
                      f"{ratio(dpc_med, base):>10}"
                      f'{lat("p50_us"):>8.1f}{lat("p99_us"):>8.1f}{lat("p999_us"):>9.1f}{last_cells}'
                      f'{(fmt(med(rss)) if rss else "n/a"):>9}{(fmt(med(grow)) if grow else "n/a"):>9}'
                      f'{f"{miss}/{errs}":>10}{notes(runs, len(vals), len(dpc))}')
            label = ""
        print()

# --- idle memory
idle = [r for r in recs if r["test"] == "idle"]
if idle:
    n = idle[0]["setting"]
    print(f"memory, {int(n):,} idle connections: server RSS growth per connection (median); ratio = server / edgews (higher: more memory than edgews)")
    print(f'{"server":<26}{"B/connection":>13}{"/ edgews":>10}')
    eruns = runs_of("idle", "edgews", n)
    e_good = good(eruns, "bytes_per_connection")
    base_med = med(e_good) if e_good and len(e_good) == len(eruns) else None
    for s in idle_servers:
        runs = runs_of("idle", s, n)
        vals = good(runs, "bytes_per_connection")
        if not vals:
            why = next((r["why"] for r in runs if not r["ok"]), "not run")
            print(f'{s:<26}{"FAIL":>13}  ({len(runs) - len(vals)} of {len(runs)} rounds failed: {why})')
            continue
        m = med(vals)
        note = f"  ({len(runs) - len(vals)} of {len(runs)} rounds FAILED)" if len(vals) < len(runs) else ""
        print(f"{s:<26}{fmt(m):>13}{ratio(m, base_med):>10}{note}")
    print()

# --- edgews against the baseline build
if "edgews-base" in echo_servers:
    print("edgews against edgews-base (the BASE_EDGEWS build), medians of the same run: the key figure of each row,")
    print("edgews / edgews-base; work per server CPU-second: higher is better (>= 1: no worse than the baseline);")
    print("memory per connection: lower is better (<= 1: no worse)")
    print(f'{"test":<12}{"setting":<22}{"figure":<16}{"edgews":>12}{"edgews-base":>13}{"ratio":>8}')
    rows = []
    for setting in echo_settings:
        rows.append(("echo", "echo", setting, echo_label(setting), "msg/CPU-s"))
    for setting in connect_settings:
        c, _, mode = setting.split(":")
        rows.append(("connect", "connect", setting, f"{c} x {mode}", "cycles/CPU-s"))
    for setting in bc_settings:
        subs, rate = setting.split(":")[:2]
        rows.append(("broadcast", "broadcast", setting, f"{int(subs):,} x {rate}/s", "deliv/CPU-s"))
        if "edgews-base-pubsub" in bc_servers:
            rows.append(("pubsub", "broadcast", setting, f"{int(subs):,} x {rate}/s", "deliv/CPU-s"))
    for test, t, setting, label, figure in rows:
        suffix = "-pubsub" if test == "pubsub" else ""
        a = key_figure(t, "edgews" + suffix, setting)
        b = key_figure(t, "edgews-base" + suffix, setting)
        print(f'{test:<12}{label:<22}{figure:<16}{(fmt(a) if a else "n/a"):>12}{(fmt(b) if b else "n/a"):>13}{ratio(a, b):>8}')
    if idle:
        n = idle[0]["setting"]
        va = [r["load"]["bytes_per_connection"] for r in runs_of("idle", "edgews", n) if r["ok"]]
        vb = [r["load"]["bytes_per_connection"] for r in runs_of("idle", "edgews-base", n) if r["ok"]]
        a, b = median_or_none(va), median_or_none(vb)
        print(f'{"idle":<12}{f"{int(n):,} connections":<22}{"B/connection":<16}{(fmt(a) if a else "n/a"):>12}'
              f'{(fmt(b) if b else "n/a"):>13}{ratio(a, b):>8}')
    print()

# --- syscalls
sc = [r for r in recs if r["test"].startswith("syscalls-")]
if sc:
    print("edgews syscalls (strace -f -c, a separate round, whole run: no warm-up; broadcast counts include the")
    print("subscribers' connects and closes): per echoed message, per connection cycle, per delivered frame")
    print(f'{"test":<10}{"setting":<22}{"per":<10}{"count":>11}{"all":>8}  calls per one, most first')
    for r in sc:
        kind = r["test"][len("syscalls-"):]
        f = r["setting"].split(":")
        label = {"echo": lambda: echo_label(r["setting"]), "connect": lambda: f"{f[0]} x {f[2]}",
                 "broadcast": lambda: f"{int(f[0]):,} x {f[1]}/s"}[kind]()
        unit = {"echo": "messages", "connect": "cycles", "broadcast": "deliveries"}[kind]
        per = {"echo": "message", "connect": "cycle", "broadcast": "delivery"}[kind]
        calls = r.get("syscalls") or {}
        if not r["ok"] or not calls:
            print(f"{kind:<10}{label:<22}{per:<10}{'FAIL':>11}  {r['why'] or 'no strace summary'}")
            continue
        n = r["load"][unit]
        top = sorted(calls.items(), key=lambda kv: -kv[1])[:6]
        print(f"{kind:<10}{label:<22}{per:<10}{n:>11,}{sum(calls.values()) / n:>8.3f}  "
              + ", ".join(f"{k} {v / n:.3f}" for k, v in top))
    print()
EOF
    echo "raw results: $RAW"
} | tee "$TABLE"

exit_if_failed
