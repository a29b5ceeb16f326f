#!/usr/bin/env bash
# Side-by-side echo benchmark: edgews against echo servers on other Rust
# WebSocket libraries (benches/peers: tokio-tungstenite, fastwebsockets,
# tokio-websockets), all single-threaded, all driven by `edgews load`.
#
#   bash benches/compare.sh                       # 3 rounds of 5 s each
#   ROUNDS=5 DURATION=10s bash benches/compare.sh
#   SYSCALLS=1 bash benches/compare.sh            # + syscalls/message for edgews (strace)
#
# Environment:
#   ROUNDS=3          echo rounds per server and setting (the table shows medians)
#   DURATION=5s       measured time of each echo round
#   WARMUP=1s         unmeasured time before it
#   IDLE_CONNECTIONS=5000, IDLE_ROUNDS=1 (each idle round uses a fresh server)
#   SERVERS="edgews tokio-tungstenite fastwebsockets tokio-websockets floor"
#   SYSCALLS=0        1: one extra round per setting with edgews under `strace -f -c`
#   BASE_PORT=19300   servers listen on BASE_PORT, BASE_PORT+1, ...
#   SKIP_BUILD=0      1: use the binaries already built
#   CARGO_TARGET_DIR  honoured, as cargo does (default: target/)
#
# Loopback only. Servers run pinned to CPU 0 (`taskset -c 0`), the load
# generator to CPU 1. Echo rounds are interleaved (round 1 of every server
# and setting, then round 2, ...) with all servers up at once, so slow
# drifts in the machine's load spread over all of them; an idle server
# blocks in epoll and takes no CPU. The idle-memory test starts each server
# afresh. Every loader run's exit status and error count is checked: a
# failed run shows as FAIL (or "k failed") in the table and the script exits
# non-zero. Raw results: target/compare/compare-STAMP.jsonl, the table
# beside it in compare-STAMP.txt, server logs in compare-STAMP-*.log.
#
# Server CPU: on two cores the load generator (which masks, copies and
# verifies every byte) can be the bottleneck, so msg/s alone may not show
# which server is cheaper. Each echo round therefore also reads the server's
# utime+stime (/proc/PID/stat) over the measured window, and the table adds
# its CPU use (% of one core: user+sys, and user alone) and the messages
# echoed per server CPU-second, the server's own cost per message, with a
# ratio to edgews ("n/a" where the server's CPU time could not be read).
#
# The floor: `floor` (benches/peers/src/floor.rs) is not a WebSocket server
# but a yardstick that only reads, unmasks in place and writes, validating
# nothing. Its row is what a server whose own code cost (almost) nothing
# reaches in the same run. The per-message table gives each server's user
# and kernel time per message and, per setting, the bound: how far a server
# with the best real peer's kernel work and no user-space work at all could
# lead that peer, (usr + sys) / sys; the floor's lead is that bound measured.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

cd_root

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5s}
WARMUP=${WARMUP:-1s}
IDLE_CONNECTIONS=${IDLE_CONNECTIONS:-5000}
IDLE_ROUNDS=${IDLE_ROUNDS:-1}
IDLE_DURATION=3s
SYSCALLS=${SYSCALLS:-0}
BASE_PORT=${BASE_PORT:-19300}
SKIP_BUILD=${SKIP_BUILD:-0}
read -r -a SERVERS <<<"${SERVERS:-edgews tokio-tungstenite fastwebsockets tokio-websockets floor}"
# connections:size
SETTINGS=("100:20" "100:1KiB" "10:64KiB")

TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
case $TARGET in /*) ;; *) TARGET=$ROOT/$TARGET ;; esac
EDGEWS=$TARGET/release/edgews
PEERS=$TARGET/release/edgews-peers

OUT_DIR=$ROOT/target/compare
mkdir -p "$OUT_DIR"
STAMP=$(date +%Y%m%d-%H%M%S)
RAW=$OUT_DIR/compare-$STAMP.jsonl
TABLE=$OUT_DIR/compare-$STAMP.txt

[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer"
[[ $IDLE_ROUNDS =~ ^[0-9]+$ ]] || die "IDLE_ROUNDS must be an integer"
ECHO_LIMIT=$(( $(secs "$WARMUP") + $(secs "$DURATION") + 60 ))
IDLE_LIMIT=$(( $(secs "$IDLE_DURATION") + 120 ))
# The server-CPU window of an echo round: from WARMUP after the loader
# starts (its warm-up ends then, plus the few ms it takes to connect) to
# DURATION minus a margin later, inside the loader's measured time.
WARMUP_MS=$(msecs "$WARMUP")
DURATION_MS=$(msecs "$DURATION")
CPU_MARGIN_MS=200
(( DURATION_MS > 5 * CPU_MARGIN_MS )) || CPU_MARGIN_MS=$(( DURATION_MS / 5 ))
CPU_WINDOW_MS=$(( DURATION_MS - CPU_MARGIN_MS ))
WARMUP_S=$(ms_to_s "$WARMUP_MS")
CPU_WINDOW_S=$(ms_to_s "$CPU_WINDOW_MS")
CLK_TCK=$(getconf CLK_TCK 2>/dev/null || true)
[[ $CLK_TCK =~ ^[1-9][0-9]*$ ]] || CLK_TCK=

need_tools taskset python3 ss timeout
if [[ $SYSCALLS == 1 ]]; then
    command -v strace >/dev/null || die "SYSCALLS=1 needs strace (apt-get install strace)"
fi
(( $(nproc) >= 2 )) || die "needs two CPUs (server on 0, load on 1)"

# The loader holds IDLE_CONNECTIONS sockets, the server as many.
need_fds $(( IDLE_CONNECTIONS + 1000 ))

# --- processes we start, stopped on any exit --------------------------------

# PID (the servers), LOAD_PID and STRACE_PID (edgews under strace, SYSCALLS=1)
STRACE_PID=
setup_processes STRACE_PID

port_of() {
    local i
    for i in "${!SERVERS[@]}"; do
        [[ ${SERVERS[$i]} == "$1" ]] && { echo $(( BASE_PORT + i )); return; }
    done
    die "unknown server $1"
}

# Starts server $1 pinned to CPU 0 and waits for its port.
start_server() {
    local name=$1 port log
    port=$(port_of "$name")
    log=$OUT_DIR/compare-$STAMP-$name.log
    listening "$port" && die "port $port is taken already (set BASE_PORT)"
    case $name in
        edgews)
            EDGEWS_LOG=warn taskset -c 0 "$EDGEWS" echo --listen "127.0.0.1:$port" \
                --workers 1 --max-connections 20000 --ping-interval 0 >>"$log" 2>&1 &
            ;;
        tokio-tungstenite | fastwebsockets | tokio-websockets | floor)
            taskset -c 0 "$PEERS" "$name" --listen "127.0.0.1:$port" >>"$log" 2>&1 &
            ;;
        *) die "unknown server $name" ;;
    esac
    PID[$name]=$!
    wait_port "${PID[$name]}" "$port" || die "$name did not come up on port $port; see $log"
}

# Checks a loader's output and appends one line to $RAW:
#   record TEST SERVER CONNECTIONS SIZE ROUND EXIT OUTFILE [TRACE [CPU]]
# CPU (echo only): "CLK_TCK UTIME0 STIME0 WALL0 UTIME1 STIME1 WALL1", the
# server's CPU time at both ends of the window, or "n/a: why".
# Prints a short summary; returns 1 if the run failed.
record() {
    py_run "$RAW" "$@" <<'EOF'
raw, test, server, conns, size, rnd, rc, out = sys.argv[1:9]
trace = (sys.argv[9] if len(sys.argv) > 9 else "") or None
cpu_arg = sys.argv[10] if len(sys.argv) > 10 else None
rc, conns = int(rc), int(conns)
load, why = read_load(out, rc, strip=True, lenient=True)
if test in ("echo", "syscalls"):
    echo_why(load, why, conns)
else:
    idle_why(load, why, conns, rss_why="no RSS reading")
calls = {}
if trace:
    # strace -c: "% time  seconds  usecs/call  calls  [errors]  syscall"
    try:
        for line in open(trace):
            f = line.split()
            if len(f) >= 5 and f[0][0].isdigit() and f[-1] != "total":
                calls[f[-1]] = int(f[3])
    except (OSError, ValueError) as e:
        why.append(f"strace summary: {e}")
    if not calls:
        why.append("no strace summary")
# Server CPU over the window: "CLK_TCK U0 S0 T0 U1 S1 T1" or "n/a: why".
# A missing reading shows as n/a; it does not fail the run.
server_cpu, cpu_why = None, None
if cpu_arg is not None:
    try:
        if cpu_arg.startswith("n/a"):
            raise ValueError(cpu_arg[3:].lstrip(": ") or "no reading")
        f = cpu_arg.split()
        if len(f) != 7:
            raise ValueError(f"unreadable sample {cpu_arg!r}")
        tck, u0, s0, u1, s1 = (int(x) for x in (f[0], f[1], f[2], f[4], f[5]))
        t0, t1 = (float(x.replace(",", ".")) for x in (f[3], f[6]))
        window = t1 - t0
        if window <= 0 or u1 < u0 or s1 < s0:
            raise ValueError("samples out of order")
        du, ds = u1 - u0, s1 - s0
        cores = (du + ds) / tck / window  # server CPU-seconds per wall second
        rate = (load or {}).get("msg_per_s")
        server_cpu = {
            "window_s": round(window, 3), "clk_tck": tck,
            "user_ticks": du, "sys_ticks": ds,
            "user_pct": round(100 * du / tck / window, 1),
            "sys_pct": round(100 * ds / tck / window, 1),
            "cpu_pct": round(100 * cores, 1),
            "msg_per_cpu_s": round(rate / cores) if rate and cores > 0 else None,
        }
    except ValueError as e:
        cpu_why = str(e)
ok = not why
rec = {"test": test, "server": server, "connections": conns, "size": size,
       "round": int(rnd), "exit": rc, "ok": ok, "why": "; ".join(why), "load": load}
if trace:
    rec["syscalls"] = calls
if cpu_arg is not None:
    rec["server_cpu"] = server_cpu
    if cpu_why:
        rec["server_cpu_why"] = cpu_why
append(raw, rec)
if not ok:
    print(f"FAILED: {rec['why']}")
    sys.exit(1)
if test == "syscalls":
    m = load["messages"]
    print(f'{m:,} messages; per message: ' + ", ".join(
        f"{k} {calls.get(k, 0) / m:.2f}" for k in ("recvfrom", "sendto", "epoll_wait")))
elif test == "echo":
    if server_cpu:
        mpc = server_cpu["msg_per_cpu_s"]
        cpu = (f'server CPU {server_cpu["cpu_pct"]:.0f}% (user {server_cpu["user_pct"]:.0f}%, '
               f'sys {server_cpu["sys_pct"]:.0f}%)  '
               + (f"{mpc:,.0f} msg/CPU-s" if mpc else "n/a msg/CPU-s"))
    else:
        cpu = f"server CPU n/a ({cpu_why})"
    print(f'{load["msg_per_s"]:,.0f} msg/s  p50 {load["p50_us"]:.0f} us  {cpu}')
else:
    print(f'{load["bytes_per_connection"]:,.0f} B/connection')
EOF
}

FAILED=0

run_echo() {
    local server=$1 conns=$2 size=$3 rnd=$4 rc=0 port out spid cpu="n/a: no reading"
    port=$(port_of "$server")
    out=$TMP/echo.out
    : >"$out"
    spid=${PID[$server]:-}
    if [[ -n $spid ]] && kill -0 "$spid" 2>/dev/null; then
        timeout -k 5 "$ECHO_LIMIT" taskset -c 1 "$EDGEWS" load echo \
            --url "ws://127.0.0.1:$port/" --connections "$conns" --size "$size" \
            --duration "$DURATION" --warmup "$WARMUP" >"$out" 2>"$TMP/echo.err" &
        LOAD_PID=$!
        # The server's CPU time over the loader's measured window: from the
        # end of its warm-up to a margin before its end.
        sleep "$WARMUP_S"
        if [[ -z $CLK_TCK ]]; then
            cpu="n/a: no CLK_TCK"
        elif ! running "$LOAD_PID"; then
            cpu="n/a: loader ended during warm-up"
        elif ! cpu_sample "$spid" wall; then
            cpu="n/a: cannot read /proc/$spid/stat"
        else
            cpu="$CLK_TCK $SAMPLE"
            sleep "$CPU_WINDOW_S"
            if ! running "$LOAD_PID"; then
                cpu="n/a: loader ended inside the window"
            elif ! cpu_sample "$spid" wall; then
                cpu="n/a: cannot read /proc/$spid/stat"
            else
                cpu="$cpu $SAMPLE"
            fi
        fi
        wait "$LOAD_PID" || rc=$?
        LOAD_PID=
        [[ $rc == 0 ]] || tail -n 3 "$TMP/echo.err" | tr '\r' '\n' | grep -v '^\s*$' | sed 's/^/    /' >&2 || true
    else
        echo "    $server is not running (see its log)" >&2
        rc=255
        cpu="n/a: server not running"
    fi
    printf '  round %d  %-18s %4d x %-6s ' "$rnd" "$server" "$conns" "$size"
    record echo "$server" "$conns" "$size" "$rnd" "$rc" "$out" "" "$cpu" || FAILED=1
}

run_idle() {
    local server=$1 rnd=$2 rc=0 port out
    port=$(port_of "$server")
    out=$TMP/idle.out
    : >"$out"
    timeout -k 5 "$IDLE_LIMIT" taskset -c 1 "$EDGEWS" load idle \
        --url "ws://127.0.0.1:$port/" --connections "$IDLE_CONNECTIONS" \
        --duration "$IDLE_DURATION" --server-pid "${PID[$server]}" >"$out" 2>"$TMP/idle.err" || rc=$?
    [[ $rc == 0 ]] || tail -n 3 "$TMP/idle.err" | tr '\r' '\n' | grep -v '^\s*$' | sed 's/^/    /' >&2 || true
    printf '  round %d  %-18s %5d idle  ' "$rnd" "$server" "$IDLE_CONNECTIONS"
    record idle "$server" "$IDLE_CONNECTIONS" 0 "$rnd" "$rc" "$out" || FAILED=1
}

# --- build -------------------------------------------------------------------

if [[ $SKIP_BUILD != 1 ]]; then
    echo "== building (release)"
    cargo build --release -p edgews-peers
    cargo build --release --bin edgews
fi
[[ -x $EDGEWS ]] || die "no $EDGEWS"
[[ -x $PEERS ]] || die "no $PEERS"
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
HEADER=$(cat <<EOF
date:     $(date -u '+%Y-%m-%d %H:%M:%S UTC')
commit:   $REV
machine:  $(nproc) CPUs, $CPU; kernel $(uname -r)
peers:    $versions
settings: rounds $ROUNDS x ${DURATION} (warm-up $WARMUP), pipeline 1; idle: $IDLE_CONNECTIONS connections, $IDLE_ROUNDS round(s)
pinning:  servers on CPU 0, load generator on CPU 1
EOF
)
echo "$HEADER"
echo "load average at start: $LOAD_START"

# --- echo throughput ----------------------------------------------------------

echo "== echo: all servers up, rounds interleaved"
for s in "${SERVERS[@]}"; do start_server "$s"; done
for rnd in $(seq "$ROUNDS"); do
    for setting in "${SETTINGS[@]}"; do
        for s in "${SERVERS[@]}"; do
            run_echo "$s" "${setting%%:*}" "${setting#*:}" "$rnd"
        done
    done
done
for s in "${SERVERS[@]}"; do stop_server "$s" 100; done

# --- memory per idle connection ------------------------------------------------

if (( IDLE_ROUNDS > 0 )); then
    echo "== idle: $IDLE_CONNECTIONS connections, a fresh server each round"
    for rnd in $(seq "$IDLE_ROUNDS"); do
        for s in "${SERVERS[@]}"; do
            [[ $s == floor ]] && continue # a buffer per connection by design
            start_server "$s"
            run_idle "$s" "$rnd"
            stop_server "$s" 100
        done
    done
fi

# --- syscalls per message, edgews only -----------------------------------------

SYSCALL_REPORT=
if [[ $SYSCALLS == 1 ]]; then
    echo "== syscalls: edgews under strace -f -c (throughput under strace is meaningless)"
    port=$(port_of edgews 2>/dev/null || echo "$BASE_PORT")
    for setting in "${SETTINGS[@]}"; do
        conns=${setting%%:*} size=${setting#*:}
        trace=$OUT_DIR/compare-$STAMP-strace-$conns-$size.txt
        listening "$port" && die "port $port is taken already"
        EDGEWS_LOG=warn taskset -c 0 strace -f -c -o "$trace" "$EDGEWS" echo \
            --listen "127.0.0.1:$port" --workers 1 --max-connections 20000 --ping-interval 0 \
            >>"$OUT_DIR/compare-$STAMP-edgews-strace.log" 2>&1 &
        STRACE_PID=$!
        wait_port "$STRACE_PID" "$port" || die "edgews under strace did not come up"
        rc=0
        # No warm-up: the counts cover the whole run, so should the messages.
        timeout -k 5 "$ECHO_LIMIT" taskset -c 1 "$EDGEWS" load echo \
            --url "ws://127.0.0.1:$port/" --connections "$conns" --size "$size" \
            --duration "$DURATION" --warmup 0 >"$TMP/strace.out" 2>"$TMP/strace.err" || rc=$?
        # Stop the traced server (strace's child); strace then writes its summary.
        tracee=$(ps -o pid= --ppid "$STRACE_PID" | tr -d ' ' | head -n1 || true)
        kill -TERM "${tracee:-$STRACE_PID}" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$STRACE_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$STRACE_PID" 2>/dev/null || true
        wait "$STRACE_PID" 2>/dev/null || true
        STRACE_PID=
        printf '  %-18s %4d x %-6s ' "edgews+strace" "$conns" "$size"
        record syscalls edgews "$conns" "$size" 1 "$rc" "$TMP/strace.out" "$trace" || FAILED=1
    done
fi

LOAD_END=$(load_avg)
top_snapshot "$OUT_DIR/compare-$STAMP-top-end.txt"

# --- the table -------------------------------------------------------------------

{
    echo
    echo "$HEADER"
    echo "load:     average $LOAD_START at start, $LOAD_END at end (1/5/15 min)"
    echo
    python3 - "$RAW" "${SERVERS[@]}" <<'EOF'
import json, statistics, sys
raw, servers = sys.argv[1], sys.argv[2:]
recs = [json.loads(l) for l in open(raw)]
base = "edgews" if "edgews" in servers else None

def cell(test, server, conns, size, key):
    runs = [r for r in recs if r["test"] == test and r["server"] == server
            and r["connections"] == conns and r["size"] == size]
    good = [r["load"][key] for r in runs if r["ok"]]
    bad = len(runs) - len(good)
    return runs, good, bad

def fmt(n):
    return f"{n:,.0f}"

settings = []
for r in recs:
    k = (r["connections"], r["size"])
    if r["test"] == "echo" and k not in settings:
        settings.append(k)

def cpu_cells(runs, key):
    """The server-CPU readings `key` of the good rounds that have one."""
    return [r["server_cpu"][key] for r in runs if r["ok"] and r.get("server_cpu")
            and r["server_cpu"].get(key) is not None]

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

print("echo, msg/s: median of the rounds [min..max]; p50 round trip; ratio = server / edgews (higher: faster than edgews)")
print("server CPU over the measured window, medians: CPU% = user+sys and usr% = user alone, in % of one core;")
print("usr/CPU = user time as % of the server's CPU time, pooled over the rounds (ticks summed);")
print("msg/CPU-s = msg/s / server CPU-seconds per second; ratio = server / edgews (higher: less CPU per message than edgews)")
print(f'{"setting":<14}{"server":<19}{"msg/s":>11}  {"[min..max]":<21}{"p50 us":>8}{"/ edgews":>10}'
      f'{"CPU%":>7}{"usr%":>6}{"usr/CPU":>9}{"msg/CPU-s":>12}{"/ edgews":>10}')
for conns, size in settings:
    label = f"{conns} x {size}" + (" B" if size.isdigit() else "")
    base_med = base_mpc = None
    if base:
        runs, good, bad = cell("echo", base, conns, size, "msg_per_s")
        base_med = statistics.median(good) if good and not bad else None
        mpc = cpu_cells(runs, "msg_per_cpu_s")
        base_mpc = statistics.median(mpc) if mpc and not bad else None
    for s in servers:
        runs, good, bad = cell("echo", s, conns, size, "msg_per_s")
        if not good:
            print(f'{label:<14}{s:<19}{"FAIL":>11}  ({bad} of {len(runs)} rounds failed)')
        else:
            med = statistics.median(good)
            p50 = statistics.median(r["load"]["p50_us"] for r in runs if r["ok"])
            span = f"[{fmt(min(good))}..{fmt(max(good))}]"
            ratio = f"{med / base_med:.2f}" if base_med else "-"
            cpu, usr, mpc = (cpu_cells(runs, k) for k in ("cpu_pct", "user_pct", "msg_per_cpu_s"))
            cpu_s = f"{statistics.median(cpu):.0f}" if cpu else "n/a"
            usr_s = f"{statistics.median(usr):.0f}" if usr else "n/a"
            share = user_share(runs)
            share_s = f"{share:.1f}%" if share is not None else "n/a"
            mpc_med = statistics.median(mpc) if mpc else None
            mpc_s = fmt(mpc_med) if mpc_med else "n/a"
            mpc_ratio = f"{mpc_med / base_mpc:.2f}" if mpc_med and base_mpc else ("-" if mpc_med else "n/a")
            notes = []
            if bad:
                notes.append(f"{bad} of {len(runs)} rounds FAILED")
            if mpc and len(mpc) < len(good):
                notes.append(f"CPU read in {len(mpc)} of {len(good)} rounds")
            note = f"  ({'; '.join(notes)})" if notes else ""
            print(f"{label:<14}{s:<19}{fmt(med):>11}  {span:<21}{p50:>8.0f}{ratio:>10}"
                  f"{cpu_s:>7}{usr_s:>6}{share_s:>9}{mpc_s:>12}{mpc_ratio:>10}{note}")
        label = ""
    print()

def per_message_us(runs, key):
    """Median over the good rounds of a server's CPU time per message (us)."""
    vals = [r["server_cpu"][key] * 1e4 / r["load"]["msg_per_s"] for r in runs
            if r["ok"] and r.get("server_cpu") and r["server_cpu"].get(key) is not None
            and r["load"]["msg_per_s"]]
    return statistics.median(vals) if vals else None

real = [s for s in servers if s not in ("edgews", "floor")]
print("per message: the server's CPU time (us, medians of the rounds) in user space and in the kernel.")
print("bound = (usr + sys) / sys of the best real peer: how far a server with that peer's kernel work and")
print("no user-space work at all could lead it; the floor's own lead is that bound measured (see floor.rs)")
print(f'{"setting":<14}{"server":<19}{"usr us":>8}{"sys us":>8}{"msg/s / best peer":>19}')
for conns, size in settings:
    label = f"{conns} x {size}" + (" B" if size.isdigit() else "")
    meds, times = {}, {}
    for s in servers:
        runs, good, bad = cell("echo", s, conns, size, "msg_per_s")
        if good and not bad:
            meds[s] = statistics.median(good)
        times[s] = tuple(per_message_us(runs, key) for key in ("user_pct", "sys_pct"))
    best = max((s for s in real if s in meds), key=lambda s: meds[s], default=None)
    for s in servers:
        lead = f"{meds[s] / meds[best]:>19.2f}" if best and s in meds else f'{"-":>19}'
        cells = "".join(f"{v:>8.2f}" if v is not None else f'{"n/a":>8}' for v in times[s])
        print(f"{label:<14}{s:<19}{cells}{lead}")
        label = ""
    u, k = times.get(best, (None, None))
    if u is not None and k:
        print(f'{"":<14}bound vs {best}: {(u + k) / k:.2f}')
print()

idle = [r for r in recs if r["test"] == "idle"]
if idle:
    n = idle[0]["connections"]
    print(f"memory, {n:,} idle connections: server RSS growth per connection (median); ratio = server / edgews (higher: more memory than edgews)")
    print(f'{"server":<19}{"B/connection":>13}{"/ edgews":>10}')
    base_med = None
    if base:
        _, good, bad = cell("idle", base, n, "0", "bytes_per_connection")
        base_med = statistics.median(good) if good and not bad else None
    for s in servers:
        if s == "floor":
            continue  # not run: a buffer per connection by design
        runs, good, bad = cell("idle", s, n, "0", "bytes_per_connection")
        if not good:
            print(f'{s:<19}{"FAIL":>13}  ({bad} of {len(runs)} rounds failed)')
            continue
        med = statistics.median(good)
        ratio = f"{med / base_med:.2f}" if base_med else "-"
        note = f"  ({bad} of {len(runs)} rounds FAILED)" if bad else ""
        print(f"{s:<19}{fmt(med):>13}{ratio:>10}{note}")
    print()

sc = [r for r in recs if r["test"] == "syscalls"]
if sc:
    print("edgews syscalls per echoed message (strace -f -c, whole run, no warm-up)")
    print(f'{"setting":<14}{"messages":>10}{"recvfrom":>10}{"sendto":>9}{"epoll_wait":>12}{"all":>8}  other calls seen')
    for r in sc:
        label = f'{r["connections"]} x {r["size"]}' + (" B" if r["size"].isdigit() else "")
        calls = r.get("syscalls") or {}
        if not r["ok"] or not calls:
            print(f"{label:<14}{'FAIL':>10}  {r['why'] or 'no strace summary'}")
            continue
        m = r["load"]["messages"]
        per = lambda k: calls.get(k, 0) / m
        others = sorted(((v, k) for k, v in calls.items() if k not in ("recvfrom", "sendto", "epoll_wait")), reverse=True)[:5]
        other = ", ".join(f"{k} {v / m:.3f}" for v, k in others)
        print(f"{label:<14}{m:>10,}{per('recvfrom'):>10.3f}{per('sendto'):>9.3f}{per('epoll_wait'):>12.3f}{sum(calls.values()) / m:>8.3f}  {other}")
    print()
EOF
    echo "raw results: $RAW"
} | tee "$TABLE"

exit_if_failed
