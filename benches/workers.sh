#!/usr/bin/env bash
# Workers (`--workers N`): what a second reactor thread costs per message,
# and how connections spread over the workers. One run, loopback only,
# about 5 minutes at the defaults (plus the build, if one is needed).
#
#   bash benches/workers.sh
#   ECHO_ROUNDS=1 ECHO_DURATION=3 BC_ROUNDS=1 BC_DURATION=4 SPREAD_REPEATS=2 RAW_TRIALS=5 \
#       bash benches/workers.sh                   # a quick try, about a minute
#   SKIP_BUILD=1 EDGEWS=/tmp/x/edgews bash benches/workers.sh
#
# Four measurements. The first two compare `--workers 1` with `--workers 2`
# in the same run, rounds interleaved (w1, w2, w1, w2, ...) with both
# servers up at once (an idle server blocks in epoll and takes no CPU):
#
# 1. Echo: `edgews load echo` with ECHO_CONNECTIONS connections at each of
#    SIZES, against `edgews echo --workers 1` and `--workers 2`, neither
#    pinned (nor is the load generator): the per-message comparison must not
#    give one reactor a CPU to itself that the other shares. Messages per
#    server CPU-second (utime+stime of the whole process, /proc/PID/stat,
#    over the loader's measured window), and its ratio w2 / w1: the issue
#    asks that the cross-worker plumbing cost at most 5% per message, i.e.
#    a ratio of at least 0.95. Per thread (/proc/PID/task/*/stat utime+stime
#    deltas, names from comm): each worker's share of the server's CPU.
#    Beside them, per message: the server's user and system time, its
#    threads' voluntary context switches (sleeps in epoll_wait) and the
#    loader's involuntary ones (preempted: with two workers and the loader
#    on two CPUs, three threads want to run).
# 2. Broadcast: `edgews load broadcast` (BC_SIZE bytes) at each of BC_SETTINGS
#    (connections:senders:msg/s in all) against `edgews broadcast
#    --workers 1` and `--workers 2`: deliveries/s, fan-out latency
#    percentiles, server CPU, deliveries per server CPU-second, the server's
#    CPU per message sent, and the relays per message read from /metrics
#    (`edgews_relays_in_total`). The rate is fixed, so deliveries/s is the
#    same for both unless one falls behind; what differs is the CPU and the
#    latency. The default settings: 200 connections at 500 msg/s (each
#    message written on its own) and 2000 msg/s (writes start to batch), and
#    4 connections at 2000 msg/s, where a message costs a read and three
#    writes, so that what the relay adds (a push onto the other worker's
#    inbox, its wake-up and drain) is not lost in 199 writes. The CPU per
#    message sent is also given from /proc/PID/task/*/schedstat (time on
#    CPU in ns), finer than the 10 ms ticks when the server is nearly idle.
# 3. Spread: SPREAD_REPEATS times, a fresh `edgews echo --workers 2`,
#    `edgews load idle --connections SPREAD_CONNECTIONS` from 127.0.0.1,
#    then `edgews_worker_connections{worker="i"}` and
#    `edgews_connections_adopted_total` from /metrics; the largest share.
#    (The /metrics scrape is itself a connection, held by worker 0, which
#    serves the --metrics-listen address; it is subtracted.)
# 4. Raw kernel spread, without the hand-over: a python3 script with two
#    SO_REUSEPORT listeners on one port counting which one accepts each of
#    SPREAD_CONNECTIONS connections from 127.0.0.1, RAW_TRIALS trials.
#
# Every tool runs under `timeout`; every process started here is stopped on
# exit. A run that fails (loader exit status, errors, missing or out-of-order
# deliveries, connections not all open) is reported as FAILED and the script
# exits 1 at the end. Raw JSON lines, logs and the summary table go to
# OUT_DIR (default target/workers).
#
# Environment:
#   SIZES="20 1KiB" ECHO_CONNECTIONS=100 ECHO_DURATION=10 ECHO_ROUNDS=3 WARMUP=1
#   BC_SETTINGS="200:4:500 200:4:2000 4:4:2000" BC_SIZE=64 BC_DURATION=6 BC_ROUNDS=3
#   SPREAD_CONNECTIONS=200 SPREAD_REPEATS=5 RAW_TRIALS=20
#   (durations in whole seconds)
#   BASE_PORT=19700        ports BASE_PORT..BASE_PORT+14 on 127.0.0.1
#   SKIP_BUILD=0           1: use the binary as it is
#   EDGEWS                 the binary (default target/release/edgews;
#                          CARGO_TARGET_DIR honoured); copied before the first
#                          server starts, so a rebuild during the run changes
#                          nothing
set -euo pipefail
. "$(dirname "$0")/lib.sh"

cd_root

read -r -a SIZES <<<"${SIZES:-20 1KiB}"
ECHO_CONNECTIONS=${ECHO_CONNECTIONS:-100}
ECHO_DURATION=${ECHO_DURATION:-10}
ECHO_ROUNDS=${ECHO_ROUNDS:-3}
WARMUP=${WARMUP:-1}
read -r -a BC_SETTINGS <<<"${BC_SETTINGS:-200:4:500 200:4:2000 4:4:2000}"
BC_SIZE=${BC_SIZE:-64}
BC_DURATION=${BC_DURATION:-6}
BC_ROUNDS=${BC_ROUNDS:-3}
SPREAD_CONNECTIONS=${SPREAD_CONNECTIONS:-200}
SPREAD_REPEATS=${SPREAD_REPEATS:-5}
RAW_TRIALS=${RAW_TRIALS:-20}
BASE_PORT=${BASE_PORT:-19700}
SKIP_BUILD=${SKIP_BUILD:-0}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
case $TARGET in /*) ;; *) TARGET=$ROOT/$TARGET ;; esac
EDGEWS=${EDGEWS:-$TARGET/release/edgews}
OUT_DIR=${OUT_DIR:-$ROOT/target/workers}

for v in ECHO_CONNECTIONS ECHO_DURATION ECHO_ROUNDS \
    BC_SIZE BC_DURATION BC_ROUNDS SPREAD_CONNECTIONS SPREAD_REPEATS RAW_TRIALS BASE_PORT; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer (got '${!v}')"
done
[[ $WARMUP =~ ^[0-9]+$ ]] || die "WARMUP must be whole seconds"
(( ECHO_DURATION >= 2 && BC_DURATION >= 3 )) || die "ECHO_DURATION >= 2 and BC_DURATION >= 3 (seconds)"
BC_MAX_CONNECTIONS=0
for setting in "${BC_SETTINGS[@]}"; do
    [[ $setting =~ ^([1-9][0-9]*):([1-9][0-9]*):([1-9][0-9]*)$ ]] ||
        die "BC_SETTINGS are CONNECTIONS:SENDERS:RATE (got '$setting')"
    (( BASH_REMATCH[2] <= BASH_REMATCH[1] )) || die "more senders than connections in '$setting'"
    if (( BASH_REMATCH[1] > BC_MAX_CONNECTIONS )); then BC_MAX_CONNECTIONS=${BASH_REMATCH[1]}; fi
done

need_tools python3 ss timeout curl pgrep sha256sum
CLK_TCK=$(getconf CLK_TCK)

need_fds $(( 2 * (BC_MAX_CONNECTIONS + SPREAD_CONNECTIONS + ECHO_CONNECTIONS) + 1000 ))

if [[ $SKIP_BUILD != 1 ]]; then
    echo "== building (release)"
    cargo build --release --bin edgews
fi
[[ -x $EDGEWS ]] || die "no $EDGEWS (cargo build --release, or set EDGEWS)"
has_workers_option "$EDGEWS" || die "$EDGEWS has no --workers option"

out_files workers

# --- processes we start, stopped on any exit ----------------------------------

# PID (the servers) and LOAD_PID; TMP, removed on exit
setup_processes

mkdir -p "$TMP/bin"
cp "$EDGEWS" "$TMP/bin/edgews"
SUM_EDGEWS=$(short_sum "$TMP/bin/edgews")
EDGEWS_SRC=$EDGEWS
EDGEWS=$TMP/bin/edgews

# name -> "mode workers port metrics_port"
declare -A SPEC=(
    [echo-w1]="echo 1 $BASE_PORT $(( BASE_PORT + 10 ))"
    [echo-w2]="echo 2 $(( BASE_PORT + 1 )) $(( BASE_PORT + 11 ))"
    [broadcast-w1]="broadcast 1 $(( BASE_PORT + 2 )) $(( BASE_PORT + 12 ))"
    [broadcast-w2]="broadcast 2 $(( BASE_PORT + 3 )) $(( BASE_PORT + 13 ))"
    [spread-w2]="echo 2 $(( BASE_PORT + 4 )) $(( BASE_PORT + 14 ))"
)
port_of() { local s; read -r -a s <<<"${SPEC[$1]}"; echo "${s[2]}"; }
metrics_port_of() { local s; read -r -a s <<<"${SPEC[$1]}"; echo "${s[3]}"; }

# Starts server $1 (not pinned) and waits for its port.
start_server() {
    local name=$1 s log=$LOGS/$1.log
    read -r -a s <<<"${SPEC[$name]}"
    listening "${s[2]}" && die "port ${s[2]} is taken already (set BASE_PORT)"
    listening "${s[3]}" && die "port ${s[3]} is taken already (set BASE_PORT)"
    EDGEWS_LOG=warn "$EDGEWS" "${s[0]}" --workers "${s[1]}" --listen "127.0.0.1:${s[2]}" \
        --metrics-listen "127.0.0.1:${s[3]}" --max-connections 20000 --ping-interval 0 \
        >>"$log" 2>&1 &
    PID[$name]=$!
    wait_port "${PID[$name]}" "${s[2]}" || die "$name did not come up on port ${s[2]}; see $log"
    wait_port "${PID[$name]}" "${s[3]}" || die "$name did not serve /metrics on ${s[3]}; see $log"
}

# Writes /metrics of server $1 to file $2 (empty if unreadable).
scrape() {
    curl -s --max-time 3 "http://127.0.0.1:$(metrics_port_of "$1")/metrics" >"$2" 2>/dev/null || : >"$2"
}

# Writes to file $2 the CPU time of process $1 and of each of its threads:
#   wall SECONDS
#   process UTIME STIME            (clock ticks, /proc/PID/stat)
#   sched NS                       (time on CPU, all threads: /proc/PID/task/*/schedstat)
#   TID UTIME STIME VOL INVOL COMM (one line per thread: /proc/PID/task/TID/stat,
#                                   context switches from its status, comm)
task_sample() {
    local pid=$1 out=$2 t line name f st vol invol run rest ns=0
    {
        echo "wall $EPOCHREALTIME"
        if read -r line 2>/dev/null <"/proc/$pid/stat"; then
            read -r -a f <<<"${line##*) }"
            echo "process ${f[11]} ${f[12]}"
        fi
        for t in /proc/"$pid"/task/*; do
            read -r line 2>/dev/null <"$t/stat" || continue
            read -r name 2>/dev/null <"$t/comm" || name=unknown
            read -r -a f <<<"${line##*) }"
            # the whole file in one read: line by line, bash seeks back
            # after each line, and the kernel regenerates the file in
            # between, so a line that changed length shifts the rest
            st=
            read -r -d '' st 2>/dev/null <"$t/status" || true
            vol=${st##*$'\n'voluntary_ctxt_switches:} invol=${st##*nonvoluntary_ctxt_switches:}
            vol=${vol%%$'\n'*} invol=${invol%%$'\n'*}
            vol=${vol//[!0-9]/} invol=${invol//[!0-9]/}
            echo "${t##*/} ${f[11]} ${f[12]} ${vol:-0} ${invol:-0} ${name// /_}"
            if read -r run rest 2>/dev/null <"$t/schedstat"; then ns=$(( ns + run )); fi
        done
        echo "sched $ns"
    } >"$out"
}

FAILED=0

# Appends a record to $RAW from a loader's output and the CPU samples, and
# prints a line. Arguments: TEST SERVER SIZE ROUND EXIT OUT ERR CPU0 CPU1
# LCPU0 LCPU1 METRICS0 METRICS1 CONNECTIONS. Returns 1 if the run failed.
record() {
    py_run "$RAW" "$CLK_TCK" "$@" <<'EOF'
import re
(raw, tck, test, server, size, rnd, rc, out, err, cpu0, cpu1, lcpu0, lcpu1,
 m0, m1, conns) = sys.argv[1:17]
tck, rc, conns = int(tck), int(rc), int(conns)

def sample(path):
    try:
        lines = open(path).read().split("\n")
    except OSError:
        return None
    s = {"threads": {}}
    for line in lines:
        f = line.split()
        if not f:
            continue
        if f[0] == "wall":
            s["wall"] = float(f[1].replace(",", "."))
        elif f[0] == "sched":
            s["ns"] = int(f[1])
        elif f[0] == "process":
            s["ticks"] = int(f[1]) + int(f[2])
            s["user"] = int(f[1])
        elif len(f) == 6:
            s["threads"][f[0]] = (int(f[1]) + int(f[2]), int(f[3]), int(f[4]), f[5])
    return s if "wall" in s and "ticks" in s else None

def metrics(path):
    vals = {}
    try:
        for line in open(path):
            m = re.match(r'^(edgews_[a-z_]+)(\{[^}]*\})?\s+([0-9.e+]+)$', line.strip())
            if m:
                vals[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    except OSError:
        pass
    return vals

load, why = read_load(out, rc, lenient=True)
if load is not None:
    if load.get("errors", 1):
        why.append(f'{load.get("errors")} errors')
    if load.get("connections") != conns:
        why.append(f'{load.get("connections")} of {conns} connections')
    if test == "echo" and load.get("messages", 0) <= 0:
        why.append("no messages")
    if test == "broadcast":
        if load.get("missing", 1) or load.get("out_of_order", 1):
            why.append(f'{load.get("missing")} missing, {load.get("out_of_order")} out of order')
        if load.get("deliveries", 0) <= 0:
            why.append("no deliveries")
errtail = err_tail(err)

a, b = sample(cpu0), sample(cpu1)
cpu = None
if a and b and b["wall"] > a["wall"]:
    window = b["wall"] - a["wall"]
    threads = []
    def switches(a, b):
        vol = invol = 0
        for tid, (_, v1, n1, _) in b["threads"].items():
            _, v0, n0, _ = a["threads"].get(tid, (0, 0, 0, ""))
            vol, invol = vol + v1 - v0, invol + n1 - n0
        return vol, invol
    for tid, (t1, _, _, name) in sorted(b["threads"].items(), key=lambda kv: kv[1][3]):
        t0 = a["threads"].get(tid, (0, 0, 0, name))[0]
        threads.append({"tid": int(tid), "name": name, "cpu_s": (t1 - t0) / tck})
    vol, invol = switches(a, b)
    cpu = {"window_s": round(window, 3), "cpu_s": (b["ticks"] - a["ticks"]) / tck,
           "user_s": (b["user"] - a["user"]) / tck, "threads": threads,
           "voluntary_switches": vol, "involuntary_switches": invol}
    if "ns" in a and "ns" in b:
        cpu["sched_cpu_s"] = (b["ns"] - a["ns"]) / 1e9
    la, lb = sample(lcpu0), sample(lcpu1)
    if la and lb:
        cpu["load_cpu_s"] = (lb["ticks"] - la["ticks"]) / tck
        cpu["load_voluntary_switches"], cpu["load_involuntary_switches"] = switches(la, lb)
ma, mb = metrics(m0), metrics(m1)
met = {k: v for k, v in mb.items() if k.startswith(("edgews_worker_connections", "edgews_workers"))}
for k in ("edgews_relays_in_total", "edgews_connections_adopted_total", "edgews_messages_in_total",
          "edgews_messages_out_total", "edgews_relays_lost_total"):
    if k in mb:
        met[k.replace("_total", "_delta")] = mb[k] - ma.get(k, 0)

append(raw, {"test": test, "server": server, "size": size, "round": int(rnd), "exit": rc, "ok": not why,
             "why": "; ".join(why), "load": load, "cpu": cpu, "metrics": met, "stderr_tail": errtail})

line = f"  round {rnd}  {server:<13} {size:>10}  "
if load and test == "echo":
    line += f'{load["msg_per_s"]:>8,} msg/s  p50 {load["p50_us"]:>6.0f} us'
elif load:
    line += (f'{load["deliveries_per_s"]:>8,} deliveries/s  p50 {load["p50_us"]:>6.0f}'
             f' p99 {load["p99_us"]:>6.0f} us')
if cpu:
    c, w = cpu["cpu_s"], cpu["window_s"]
    line += f'  server {100 * c / w:4.0f}% of a core'
    if "load_cpu_s" in cpu:
        line += f' (loader {100 * cpu["load_cpu_s"] / w:3.0f}%)'
    rate = (load or {}).get("msg_per_s" if test == "echo" else "deliveries_per_s")
    if rate and c > 0:
        unit = "msg" if test == "echo" else "deliveries"
        line += f'  {rate * w / c:>9,.0f} {unit}/CPU-s'
    if rate:
        line += f'  sleeps/{"msg" if test == "echo" else "delivery"} {cpu["voluntary_switches"] / (rate * w):.3f}'
    busy = [t for t in cpu["threads"] if t["cpu_s"] > 0]
    if len(busy) > 1 and c > 0:
        line += "  threads: " + ", ".join(f'{t["name"]} {100 * t["cpu_s"] / c:.0f}%' for t in busy)
else:
    line += "  server CPU n/a"
if "edgews_relays_in_delta" in met and test == "broadcast" and met.get("edgews_messages_in_delta"):
    line += f'  relays/msg {met["edgews_relays_in_delta"] / met["edgews_messages_in_delta"]:.2f}'
finish(line, why, errtail)
EOF
}

# Runs loader command "$@" (under timeout) against server $SERVER, sampling
# the server's (and the loader's) CPU from $SKIP_S seconds after the start
# for $WINDOW_S seconds, and /metrics before the start and at the window's
# end. Sets RC; samples land in $TMP/{cpu0,cpu1,lcpu0,lcpu1,m0,m1}.
measure() {
    local spid=${PID[$SERVER]} lpid t_start
    rm -f "$TMP"/{cpu0,cpu1,lcpu0,lcpu1,m0,m1}
    scrape "$SERVER" "$TMP/m0"
    RC=0
    t_start=$EPOCHREALTIME
    timeout -k 5 "$LIMIT" "$@" >"$TMP/load.out" 2>"$TMP/load.err" &
    LOAD_PID=$!
    sleep "$SKIP_S"
    lpid=$(pgrep -P "$LOAD_PID" | head -n1 || true)
    task_sample "$spid" "$TMP/cpu0"
    [[ -z $lpid ]] || task_sample "$lpid" "$TMP/lcpu0"
    sleep "$WINDOW_S"
    task_sample "$spid" "$TMP/cpu1"
    [[ -z $lpid ]] || task_sample "$lpid" "$TMP/lcpu1"
    scrape "$SERVER" "$TMP/m1"
    if ! running "$LOAD_PID"; then
        echo "    (CPU readings discarded: the loader ended inside the window)"
        rm -f "$TMP/cpu1"
    fi
    wait "$LOAD_PID" || RC=$?
    LOAD_PID=
}

# --- the run --------------------------------------------------------------------

REV=$(revision "with local changes")
CPU=$(cpu_model)
LOAD_START=$(load_avg)
HEADER=$(cat <<EOF
date:     $(date -u '+%Y-%m-%d %H:%M:%S UTC')
commit:   $REV
binary:   $EDGEWS_SRC (sha256 $SUM_EDGEWS)
machine:  $(nproc) CPUs, $CPU; kernel $(uname -r)
echo:     $ECHO_CONNECTIONS connections x (${SIZES[*]}) B, pipeline 1, $ECHO_ROUNDS rounds of ${ECHO_DURATION}s (warm-up ${WARMUP}s)
broadcast: connections:senders:msg/s ${BC_SETTINGS[*]}, $BC_SIZE B, $BC_ROUNDS rounds of ${BC_DURATION}s
spread:   $SPREAD_CONNECTIONS connections from 127.0.0.1, $SPREAD_REPEATS fresh servers; raw SO_REUSEPORT: $RAW_TRIALS trials
pinning:  none (servers and load generator free on all CPUs)
EOF
)
echo "$HEADER"
echo "load average at start: $LOAD_START"

# 1. echo
echo "== echo: --workers 1 and --workers 2 up at once, rounds interleaved"
start_server echo-w1
start_server echo-w2
LIMIT=$(( WARMUP + ECHO_DURATION + 60 ))
SKIP_S=$WARMUP.3
WINDOW_S=$(( ECHO_DURATION - 1 )).0
for rnd in $(seq "$ECHO_ROUNDS"); do
    for size in "${SIZES[@]}"; do
        for SERVER in echo-w1 echo-w2; do
            measure "$EDGEWS" load echo --url "ws://127.0.0.1:$(port_of "$SERVER")/" \
                --connections "$ECHO_CONNECTIONS" --size "$size" --pipeline 1 \
                --duration "${ECHO_DURATION}s" --warmup "${WARMUP}s"
            record echo "$SERVER" "$size" "$rnd" "$RC" "$TMP/load.out" "$TMP/load.err" \
                "$TMP/cpu0" "$TMP/cpu1" "$TMP/lcpu0" "$TMP/lcpu1" "$TMP/m0" "$TMP/m1" \
                "$ECHO_CONNECTIONS" || FAILED=1
        done
    done
done
stop_server echo-w1
stop_server echo-w2

# 2. broadcast
echo "== broadcast: --workers 1 and --workers 2 up at once, rounds interleaved"
start_server broadcast-w1
start_server broadcast-w2
LIMIT=$(( BC_DURATION + 60 ))
# `load broadcast` has no warm-up: skip the connects and the first second
SKIP_S=1.5
WINDOW_S=$(( BC_DURATION - 2 )).0
for rnd in $(seq "$BC_ROUNDS"); do
    for setting in "${BC_SETTINGS[@]}"; do
        IFS=: read -r conns senders rate <<<"$setting"
        for SERVER in broadcast-w1 broadcast-w2; do
            measure "$EDGEWS" load broadcast --url "ws://127.0.0.1:$(port_of "$SERVER")/" \
                --connections "$conns" --senders "$senders" --rate "$rate" \
                --size "$BC_SIZE" --duration "${BC_DURATION}s"
            # the "size" of a broadcast record is its setting
            record broadcast "$SERVER" "$setting" "$rnd" "$RC" "$TMP/load.out" "$TMP/load.err" \
                "$TMP/cpu0" "$TMP/cpu1" "$TMP/lcpu0" "$TMP/lcpu1" "$TMP/m0" "$TMP/m1" \
                "$conns" || FAILED=1
        done
    done
done
stop_server broadcast-w1
stop_server broadcast-w2

# 3. spread over the workers, with the hand-over
echo "== spread: $SPREAD_CONNECTIONS connections from one address to a fresh --workers 2, $SPREAD_REPEATS times"
for rep in $(seq "$SPREAD_REPEATS"); do
    start_server spread-w2
    port=$(port_of spread-w2)
    timeout -k 5 60 "$EDGEWS" load idle --url "ws://127.0.0.1:$port/" \
        --connections "$SPREAD_CONNECTIONS" --warmup-connections 0 --duration 2s \
        >"$TMP/idle.out" 2>"$TMP/idle.err" &
    LOAD_PID=$!
    # until every connection is open (the server says so), at most 20 s
    for _ in $(seq 200); do
        scrape spread-w2 "$TMP/m1"
        open=$(awk '/^edgews_open_connections /{print $2}' "$TMP/m1")
        [[ ${open:-0} -ge $SPREAD_CONNECTIONS ]] && break
        running "$LOAD_PID" || break
        sleep 0.1
    done
    rc=0
    wait "$LOAD_PID" || rc=$?
    LOAD_PID=
    stop_server spread-w2
    python3 - "$RAW" "$rep" "$rc" "$TMP/idle.out" "$TMP/m1" "$SPREAD_CONNECTIONS" <<'EOF' || FAILED=1
import json, re, sys
raw, rep, rc, out, mpath, conns = sys.argv[1:7]
rc, conns = int(rc), int(conns)
load = None
for line in open(out, errors="replace"):
    if line.startswith('{"mode":'):
        load = json.loads(line)
per, adopted, open_ = {}, None, None
for line in open(mpath):
    m = re.match(r'^edgews_worker_connections\{worker="(\d+)"\}\s+(\d+)', line)
    if m:
        per[int(m.group(1))] = int(m.group(2))
    elif line.startswith("edgews_connections_adopted_total "):
        adopted = int(float(line.split()[1]))
    elif line.startswith("edgews_open_connections "):
        open_ = int(float(line.split()[1]))
why = []
if rc != 0:
    why.append(f"loader exit status {rc}")
if load is None or load.get("failed", 1) or load.get("connections") != conns:
    why.append(f"loader: {load}")
if not per or open_ != conns:
    why.append(f"open connections {open_} of {conns}, per worker {per}")
# the scrape's own connection is held by worker 0 (it serves --metrics-listen)
extra = sum(per.values()) - (open_ or 0)
if per and extra in (0, 1):
    per[0] -= extra
elif per:
    why.append(f"{extra} connections beyond the open ones")
total = sum(per.values())
share = max(per.values()) / total if total else None
rec = {"test": "spread", "round": int(rep), "ok": not why, "why": "; ".join(why),
       "per_worker": per, "adopted": adopted, "open": open_, "max_share": share}
with open(raw, "a") as f:
    f.write(json.dumps(rec) + "\n")
print(f"  repeat {rep}: per worker " + " / ".join(str(per[k]) for k in sorted(per))
      + f", adopted {adopted}, max share {share:.3f}" if share else f"  repeat {rep}: n/a",
      ("FAILED: " + "; ".join(why)) if why else "")
sys.exit(0 if not why else 1)
EOF
done

# 4. the kernel's SO_REUSEPORT spread alone
echo "== raw SO_REUSEPORT: two listeners, $SPREAD_CONNECTIONS connections from 127.0.0.1, $RAW_TRIALS trials"
timeout -k 5 120 python3 - "$RAW" "$SPREAD_CONNECTIONS" "$RAW_TRIALS" <<'EOF' || FAILED=1
import json, select, socket, struct, sys
raw, conns, trials = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

def listener(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s.bind(("127.0.0.1", port))
    s.listen(4096)
    s.setblocking(False)
    return s

shares = []
for trial in range(1, trials + 1):
    a = listener(0)
    b = listener(a.getsockname()[1])
    counts, clients, accepted = [0, 0], [], []
    for _ in range(conns):
        c = socket.create_connection(a.getsockname(), timeout=5)
        # reset on close: no TIME_WAIT left behind
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        clients.append(c)
    while sum(counts) < conns:
        ready, _, _ = select.select([a, b], [], [], 5)
        if not ready:
            break
        for i, s in enumerate((a, b)):
            if s in ready:
                while True:
                    try:
                        conn, _ = s.accept()
                    except BlockingIOError:
                        break
                    accepted.append(conn)
                    counts[i] += 1
    for s in clients + accepted + [a, b]:
        s.close()
    share = max(counts) / sum(counts)
    shares.append(share)
    print(f"  trial {trial:2}: {counts[0]:3} / {counts[1]:3}  max share {share:.3f}")
    with open(raw, "a") as f:
        f.write(json.dumps({"test": "raw_reuseport", "round": trial, "ok": sum(counts) == conns,
                            "counts": counts, "max_share": share}) + "\n")
    if sum(counts) != conns:
        print(f"  trial {trial}: only {sum(counts)} of {conns} accepted")
        sys.exit(1)
EOF

LOAD_END=$(load_avg)

# --- the summary -------------------------------------------------------------------

{
    echo
    echo "$HEADER"
    echo "load:     average $LOAD_START at start, $LOAD_END at end (1/5/15 min)"
    echo
    python3 - "$RAW" <<'EOF'
import json, statistics, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
med = statistics.median

def fmt(n, d=0):
    return f"{n:,.{d}f}"

def span(v, d=0):
    return f"[{fmt(min(v), d)}..{fmt(max(v), d)}]"

def good(test, server, size=None):
    return [r for r in recs if r["test"] == test and r["server"] == server and r["ok"]
            and (size is None or r["size"] == size) and r.get("cpu") and r["cpu"]["cpu_s"] > 0]

def per_cpu_s(r, key):
    return r["load"][key] * r["cpu"]["window_s"] / r["cpu"]["cpu_s"]

echo_sizes = []
for r in recs:
    if r["test"] == "echo" and r["size"] not in echo_sizes:
        echo_sizes.append(r["size"])

print("### Echo: messages per server CPU-second, --workers 2 over --workers 1")
print()
print("Medians of the rounds [min..max]; per-round ratio = round k's w2 over round k's w1. Sleeps = voluntary context"
      " switches of the server's threads (blocking in epoll_wait), preempted = the loader's involuntary ones.")
print()
print("| size | workers | msg/s | server CPU, % of a core | loader CPU % | server usr / sys µs per msg | server sleeps per msg | loader preempted per msg | msg / server CPU-s | w2 / w1 (of the medians) | w2 / w1 round by round |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
for size in echo_sizes:
    w1, w2 = good("echo", "echo-w1", size), good("echo", "echo-w2", size)
    m1 = [per_cpu_s(r, "msg_per_s") for r in w1]
    m2 = [per_cpu_s(r, "msg_per_s") for r in w2]
    by_round = {r["round"]: per_cpu_s(r, "msg_per_s") for r in w1}
    pairs = [per_cpu_s(r, "msg_per_s") / by_round[r["round"]] for r in w2 if r["round"] in by_round]
    for name, rs, m in (("1", w1, m1), ("2", w2, m2)):
        if not rs:
            print(f"| {size} | {name} | FAIL | | | | | | | | |")
            continue
        rate = [r["load"]["msg_per_s"] for r in rs]
        cpu = [100 * r["cpu"]["cpu_s"] / r["cpu"]["window_s"] for r in rs]
        lcpu = [100 * r["cpu"]["load_cpu_s"] / r["cpu"]["window_s"] for r in rs if "load_cpu_s" in r["cpu"]]
        ratio = pr = ""
        if name == "2" and m1 and m2:
            ratio = f"{med(m2) / med(m1):.3f}"
            pr = ", ".join(f"{p:.3f}" for p in pairs) + (f" (median **{med(pairs):.3f}**)" if pairs else "")
        lcpu_s = f"{med(lcpu):.0f}" if lcpu else "n/a"
        msgs = [r["load"]["msg_per_s"] * r["cpu"]["window_s"] for r in rs]
        usr = med(1e6 * r["cpu"]["user_s"] / n for r, n in zip(rs, msgs))
        sys_ = med(1e6 * (r["cpu"]["cpu_s"] - r["cpu"]["user_s"]) / n for r, n in zip(rs, msgs))
        sleeps = med(r["cpu"]["voluntary_switches"] / n for r, n in zip(rs, msgs))
        pre = [r["cpu"]["load_involuntary_switches"] / n for r, n in zip(rs, msgs)
               if "load_involuntary_switches" in r["cpu"]]
        pre_s = f"{med(pre):.3f}" if pre else "n/a"
        print(f"| {size} | {name} | {fmt(med(rate))} | {med(cpu):.0f} | {lcpu_s} | {usr:.2f} / {sys_:.2f} | "
              f"{sleeps:.3f} | {pre_s} | {fmt(med(m))} {span(m)} | {ratio} | {pr} |")
print()

print("### Echo: the server's CPU per thread (share of the process's CPU over the window)")
print()
print("| size | workers | thread | share, median [min..max] |")
print("|---|---:|---|---:|")
for size in echo_sizes:
    for server, n in (("echo-w1", "1"), ("echo-w2", "2")):
        shares = {}
        for r in good("echo", server, size):
            total = sum(t["cpu_s"] for t in r["cpu"]["threads"])
            for t in r["cpu"]["threads"]:
                shares.setdefault(t["name"], []).append(100 * t["cpu_s"] / total if total else 0)
        for name in sorted(shares):
            v = shares[name]
            print(f"| {size} | {n} | {name} | {med(v):.1f}% {span(v, 1)} |")
conns = [r["metrics"] for r in recs if r["test"] == "echo" and r["server"] == "echo-w2" and r["ok"]]
seen = sorted({tuple(int(v) for k, v in sorted(m.items()) if k.startswith("edgews_worker_connections"))
               for m in conns})
if seen:
    print()
    print("Connections per worker during the --workers 2 echo rounds (edgews_worker_connections, "
          "the scrape's own included): " + ", ".join(" / ".join(map(str, s)) for s in seen))
print()

bc_settings = []
for r in recs:
    if r["test"] == "broadcast" and r["size"] not in bc_settings:
        bc_settings.append(r["size"])
if bc_settings:
    print("### Broadcast across workers")
    print()
    print("Medians of the rounds [min..max]. Server µs per message sent = server CPU-seconds per second"
          " / messages sent per second, from utime+stime and (in brackets) from schedstat; sleeps ="
          " voluntary context switches of the server's threads per message sent.")
    print()
    print("| connections, senders, msg/s | workers | deliveries/s | fan-out latency p50 / p99 / p99.9, ms"
          " | server CPU, % of a core | loader CPU % | deliveries / server CPU-s | w2 / w1"
          " | server µs per message sent | server sleeps per message sent | relays in per message |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for setting in bc_settings:
        label = setting.replace(":", ", ")
        res = {}
        for name, server in (("1", "broadcast-w1"), ("2", "broadcast-w2")):
            rs = good("broadcast", server, setting)
            if not rs:
                print(f"| {label} | {name} | FAIL | | | | | | | | |")
                continue
            d = [r["load"]["deliveries_per_s"] for r in rs]
            p50 = med(r["load"]["p50_us"] for r in rs) / 1000
            p99 = med(r["load"]["p99_us"] for r in rs) / 1000
            p999 = med(r["load"]["p999_us"] for r in rs) / 1000
            cpu = [100 * r["cpu"]["cpu_s"] / r["cpu"]["window_s"] for r in rs]
            lcpu = [100 * r["cpu"]["load_cpu_s"] / r["cpu"]["window_s"] for r in rs if "load_cpu_s" in r["cpu"]]
            dpc = [per_cpu_s(r, "deliveries_per_s") for r in rs]
            sent = [r["cpu"]["window_s"] * r["load"]["sent"] * r["load"]["deliveries_per_s"] / r["load"]["deliveries"]
                    for r in rs]  # messages sent in the window
            us_msg = [1e6 * r["cpu"]["cpu_s"] / n for r, n in zip(rs, sent)]
            us_sched = [1e6 * r["cpu"]["sched_cpu_s"] / n for r, n in zip(rs, sent) if "sched_cpu_s" in r["cpu"]]
            sleeps = med(r["cpu"]["voluntary_switches"] / n for r, n in zip(rs, sent))
            relays = [r["metrics"]["edgews_relays_in_delta"] / r["metrics"]["edgews_messages_in_delta"]
                      for r in rs if r["metrics"].get("edgews_messages_in_delta")]
            res[name] = (med(dpc), med(us_msg), med(us_sched) if us_sched else None)
            ratio = f"**{res['2'][0] / res['1'][0]:.3f}**" if name == "2" and "1" in res else ""
            lcpu_s = f"{med(lcpu):.0f}" if lcpu else "n/a"
            relays_s = f"{med(relays):.2f}" if relays else "n/a"
            sched_s = f" ({med(us_sched):.1f})" if us_sched else ""
            print(f"| {label} | {name} | {fmt(med(d))} | {p50:.2f} / {p99:.2f} / {p999:.2f} | "
                  f"{med(cpu):.0f} {span(cpu)} | {lcpu_s} | {fmt(med(dpc))} {span(dpc)} | {ratio} | "
                  f"{med(us_msg):.1f} {span(us_msg, 1)}{sched_s} | {sleeps:.2f} | {relays_s} |")
        if "1" in res and "2" in res:
            sched = (f" ({res['2'][2] - res['1'][2]:+.1f})"
                     if res["1"][2] is not None and res["2"][2] is not None else "")
            print(f"| {label} | w2 - w1 | | | | | | | {res['2'][1] - res['1'][1]:+.1f}{sched} | | |")
    print()
    print("w2 - w1 per message sent: what the second worker adds per message (its relay, its own wake-up,"
          " epoll_wait and sends), or saves; compare it with the rounds' spread.")
    print()

sp = [r for r in recs if r["test"] == "spread"]
if sp:
    ok = [r for r in sp if r["ok"]]
    print("### Connection spread, --workers 2 (hand-over on)")
    print()
    print("| repeat | per worker | adopted | max share |")
    print("|---:|---|---:|---:|")
    for r in sp:
        per = " / ".join(str(r["per_worker"][k]) for k in sorted(r["per_worker"], key=int))
        s = f'{r["max_share"]:.3f}' if r["max_share"] else "n/a"
        print(f'| {r["round"]} | {per} | {r["adopted"]} | {s}{"" if r["ok"] else " FAILED"} |')
    if ok:
        print(f"\nmax share over the repeats: {max(r['max_share'] for r in ok):.3f}")
    print()

rw = [r for r in recs if r["test"] == "raw_reuseport"]
if rw:
    s = [r["max_share"] for r in rw]
    print("### Raw SO_REUSEPORT spread (two listeners, no hand-over)")
    print()
    print(f"{len(rw)} trials of {sum(rw[0]['counts'])} connections: max share median {med(s):.3f}, "
          f"largest {max(s):.3f}, smallest {min(s):.3f}; trials with a share of 0.55 or more: "
          f"{sum(1 for x in s if x >= 0.55)}; splits: "
          + ", ".join(f"{r['counts'][0]}/{r['counts'][1]}" for r in rw))
    print()
EOF
    echo "raw results: $RAW"
} | tee "$TABLE"

exit_if_failed
