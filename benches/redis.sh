#!/usr/bin/env bash
# Redis across instances (`--redis URL`): what the hop through Redis costs
# a broadcast in latency and CPU, against one instance alone. One run,
# loopback only, about 5 minutes at the defaults (plus the build, if one is
# needed).
#
#   bash benches/redis.sh
#   ROUNDS=1 SETTINGS="200:4:500:64 8:4:20000:64" bash benches/redis.sh   # a quick try, about a minute
#   SKIP_BUILD=1 EDGEWS=/tmp/x/edgews bash benches/redis.sh
#
# Calls scripts/install-redis.sh first (it does nothing when redis-server
# is installed), then starts, all up at once for the whole run:
#   one      `edgews broadcast --workers 1` (no Redis)
#   A, B     `edgews broadcast --workers 1 --redis redis://127.0.0.1:P`
#   redis    `redis-server --port P --bind 127.0.0.1 --save "" --appendonly no`
# every edgews with --metrics-listen; nothing pinned. An idle server blocks
# in epoll and takes next to no CPU, so the ones a run does not use stay up.
#
# For each of SETTINGS (connections:senders:msg/s in all:message size),
# `edgews load broadcast` in each of LAYOUTS, rounds interleaved (one,
# split, both, one, split, both, ...):
#   one      all connections on the instance without Redis
#   split    senders on A, every other connection on B (`--url ws://A/
#            --receiver-url ws://B/`): all but the senders' own deliveries
#            cross Redis
#   both     senders on A, the others alternately on A and B (`--url ws://A/
#            --receiver-url ws://A/ --receiver-url ws://B/`): half cross
#
# Per run: deliveries/s, the fan-out latency of all deliveries (p50, p99,
# p99.9: what the loader reports for all) and of those that crossed
# instances (p50, p90, p99, max), missing / gaps / duplicates, and CPU over
# a window inside the sending phase: utime+stime (/proc/PID/stat) of every
# edgews, of redis-server and of the loader, and beside it the time on CPU
# from /proc/PID/task/*/schedstat. The loader opens its connections one URL
# after the other and sends once all are open (within 10 ms since
# 247dfc8; a second per URL before), so the window starts 0.5 s after the senders' instance has read
# the first message (its edgews_messages_in_total, polled) and lasts
# DURATION - 1.5 s. Deliveries per CPU-second come from each instance's
# edgews_messages_out_total over the same window; the messages that went
# through Redis from A's edgews_redis_published_total.
#
# A run fails if the loader exits non-zero or reports errors, fewer
# connections, any message missing, a gap, a duplicate or an out-of-order
# delivery, or if an instance counts a Redis loss, reconnect, duplicate or
# invalid message (`edgews_redis_*_total` over the run), or if Redis did
# not pass on every message sent. The script then exits 1 at the end.
# Every tool runs under `timeout`; every process started here is stopped on
# exit. Raw JSON lines, logs and the summary go to OUT_DIR (default
# target/redis).
#
# Environment:
#   SETTINGS="200:4:500:64 200:4:500:4KiB 200:4:2000:64 8:4:50000:64"
#   LAYOUTS="one split both"
#   DURATION=4             seconds of sending per run (whole, at least 3)
#   ROUNDS=3
#   BASE_PORT=19800        one, A, B on BASE_PORT..+2, their /metrics on
#                          +10..+12, redis-server on +20 (127.0.0.1)
#   SKIP_BUILD=0           1: use the binary as it is
#   SKIP_INSTALL=0         1: do not call scripts/install-redis.sh
#   EDGEWS                 the binary (default target/release/edgews;
#                          CARGO_TARGET_DIR honoured); copied before the
#                          first server starts, so a rebuild during the run
#                          changes nothing
set -euo pipefail
. "$(dirname "$0")/lib.sh"

cd_root

read -r -a SETTINGS <<<"${SETTINGS:-200:4:500:64 200:4:500:4KiB 200:4:2000:64 8:4:50000:64}"
read -r -a LAYOUTS <<<"${LAYOUTS:-one split both}"
DURATION=${DURATION:-4}
ROUNDS=${ROUNDS:-3}
BASE_PORT=${BASE_PORT:-19800}
SKIP_BUILD=${SKIP_BUILD:-0}
SKIP_INSTALL=${SKIP_INSTALL:-0}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
case $TARGET in /*) ;; *) TARGET=$ROOT/$TARGET ;; esac
EDGEWS=${EDGEWS:-$TARGET/release/edgews}
OUT_DIR=${OUT_DIR:-$ROOT/target/redis}

for v in DURATION ROUNDS BASE_PORT; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer (got '${!v}')"
done
(( DURATION >= 3 )) || die "DURATION must be at least 3 (seconds)"
(( ${#SETTINGS[@]} > 0 && ${#LAYOUTS[@]} > 0 )) || die "no SETTINGS or no LAYOUTS"
MAX_CONNECTIONS=0
for setting in "${SETTINGS[@]}"; do
    [[ $setting =~ ^([1-9][0-9]*):([1-9][0-9]*):([1-9][0-9]*):([1-9][0-9]*([KM]iB)?)$ ]] ||
        die "SETTINGS are CONNECTIONS:SENDERS:RATE:SIZE, e.g. 200:4:500:4KiB (got '$setting')"
    (( BASH_REMATCH[2] < BASH_REMATCH[1] )) || die "no receiver left in '$setting' (senders >= connections)"
    if (( BASH_REMATCH[1] > MAX_CONNECTIONS )); then MAX_CONNECTIONS=${BASH_REMATCH[1]}; fi
done
for layout in "${LAYOUTS[@]}"; do
    case $layout in one | split | both) ;; *) die "LAYOUTS are one, split and both (got '$layout')" ;; esac
done

if [[ $SKIP_INSTALL != 1 ]]; then
    echo "== redis-server (scripts/install-redis.sh)"
    bash scripts/install-redis.sh
fi
need_tools python3 ss timeout curl pgrep sha256sum redis-server redis-cli
need_fds $(( 2 * MAX_CONNECTIONS + 1000 ))

if [[ $SKIP_BUILD != 1 ]]; then
    echo "== building (release)"
    cargo build --release --bin edgews
fi
[[ -x $EDGEWS ]] || die "no $EDGEWS (cargo build --release, or set EDGEWS)"
grep -q -- '--redis ' <<<"$("$EDGEWS" broadcast --help)" || die "$EDGEWS broadcast has no --redis option"
grep -q -- '--receiver-url' <<<"$("$EDGEWS" load broadcast --help)" || die "$EDGEWS load broadcast has no --receiver-url"

out_files redis

# --- processes we start, stopped on any exit ----------------------------------

# PID (the servers and redis-server) and LOAD_PID; TMP, removed on exit
setup_processes

mkdir -p "$TMP/bin" "$TMP/redis"
cp "$EDGEWS" "$TMP/bin/edgews"
SUM_EDGEWS=$(short_sum "$TMP/bin/edgews")
EDGEWS_SRC=$EDGEWS
EDGEWS=$TMP/bin/edgews

REDIS_PORT=$(( BASE_PORT + 20 ))
REDIS_URL=redis://127.0.0.1:$REDIS_PORT
# name -> "port metrics_port redis"
declare -A SPEC=(
    [one]="$BASE_PORT $(( BASE_PORT + 10 )) no"
    [A]="$(( BASE_PORT + 1 )) $(( BASE_PORT + 11 )) yes"
    [B]="$(( BASE_PORT + 2 )) $(( BASE_PORT + 12 )) yes"
)
SERVERS=(one A B)
port_of() { local s; read -r -a s <<<"${SPEC[$1]}"; echo "${s[0]}"; }
metrics_port_of() { local s; read -r -a s <<<"${SPEC[$1]}"; echo "${s[1]}"; }
url_of() { echo "ws://127.0.0.1:$(port_of "$1")/"; }

start_redis() {
    listening "$REDIS_PORT" && die "port $REDIS_PORT is taken already (set BASE_PORT)"
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
        --daemonize no --dir "$TMP/redis" --logfile "$LOGS/redis.log" </dev/null >/dev/null 2>&1 &
    PID[redis]=$!
    for _ in $(seq 100); do
        [[ $(redis-cli -p "$REDIS_PORT" ping 2>/dev/null) == PONG ]] && return 0
        kill -0 "${PID[redis]}" 2>/dev/null || break
        sleep 0.1
    done
    die "redis-server did not answer PING on port $REDIS_PORT; see $LOGS/redis.log"
}

# Starts server $1 (not pinned, one worker) and waits for its ports; with
# Redis, until both its Redis connections are open.
start_server() {
    local name=$1 s log=$LOGS/$1.log redis=()
    read -r -a s <<<"${SPEC[$name]}"
    listening "${s[0]}" && die "port ${s[0]} is taken already (set BASE_PORT)"
    listening "${s[1]}" && die "port ${s[1]} is taken already (set BASE_PORT)"
    [[ ${s[2]} != yes ]] || redis=(--redis "$REDIS_URL")
    EDGEWS_LOG=warn "$EDGEWS" broadcast --workers 1 "${redis[@]}" --listen "127.0.0.1:${s[0]}" \
        --metrics-listen "127.0.0.1:${s[1]}" --max-connections 20000 --ping-interval 0 \
        >>"$log" 2>&1 &
    PID[$name]=$!
    wait_port "${PID[$name]}" "${s[0]}" || die "$name did not come up on port ${s[0]}; see $log"
    wait_port "${PID[$name]}" "${s[1]}" || die "$name did not serve /metrics on ${s[1]}; see $log"
    if [[ ${s[2]} == yes ]]; then
        for _ in $(seq 150); do
            scrape "$name" "$TMP/up"
            grep -q '^edgews_redis_connected 1$' "$TMP/up" && return 0
            sleep 0.1
        done
        die "$name did not connect to Redis on port $REDIS_PORT; see $log"
    fi
}

# Writes /metrics of server $1 to file $2 (empty if unreadable).
scrape() {
    curl -s --max-time 3 "http://127.0.0.1:$(metrics_port_of "$1")/metrics" >"$2" 2>/dev/null || : >"$2"
}

# Writes the /metrics of every server to files $1.NAME.
scrape_all() {
    local name
    for name in "${SERVERS[@]}"; do scrape "$name" "$1.$name"; done
}

# Writes to file $1 one line per process: NAME UTIME STIME NS WALL (clock
# ticks from /proc/PID/stat, ns on CPU from the threads' schedstat, the wall
# clock right after), for every server, redis-server and, if $2 is given,
# the loader (pid $2); then the machine's line of /proc/stat ("cpu USER
# NICE SYSTEM IDLE IOWAIT IRQ SOFTIRQ STEAL ..."): what else ran, and what
# the host took (steal).
cpu_all() {
    local out=$1 lpid=${2:-} name machine
    {
        for name in "${SERVERS[@]}" redis; do
            if cpu_sample "${PID[$name]}" ns; then echo "$name $SAMPLE $EPOCHREALTIME"; fi
        done
        if [[ -n $lpid ]] && cpu_sample "$lpid" ns; then echo "loader $SAMPLE $EPOCHREALTIME"; fi
        read -r machine </proc/stat
        echo "$machine"
    } >"$out"
}

FAILED=0

# Prints counter $2 of a /metrics file $1 as a whole number (0 if absent).
counter() { awk -v k="$2" '$1 == k { printf "%d", $2; found = 1 } END { if (!found) print 0 }' "$1"; }

# Runs `edgews load broadcast "$@"` (under timeout) with CPU read over a
# window inside the sending phase and /metrics scraped before the start
# (pre), at the window's ends (w0, w1) and after the loader ended (post).
# The loader opens its connections one URL after the other and starts
# sending once all are open, which takes longer with more URLs: the window
# starts SETTLE_S after server $SENDERS_AT has read the first message, and
# is WINDOW_S long. Sets RC and START_S (seconds from the loader's start to
# the first message read); files land in $TMP.
measure() {
    local lpid t_launch before
    rm -f "$TMP"/cpu0 "$TMP"/cpu1 "$TMP"/pre.* "$TMP"/w0.* "$TMP"/w1.* "$TMP"/post.*
    scrape_all "$TMP/pre"
    before=$(counter "$TMP/pre.$SENDERS_AT" edgews_messages_in_total)
    RC=0
    START_S=
    t_launch=$EPOCHREALTIME
    EDGEWS_LOG=warn timeout -k 5 "$LIMIT" "$EDGEWS" load broadcast "$@" \
        >"$TMP/load.out" 2>"$TMP/load.err" &
    LOAD_PID=$!
    # until the senders' instance has read a message, at most 20 s
    for _ in $(seq 400); do
        scrape "$SENDERS_AT" "$TMP/probe"
        if (( $(counter "$TMP/probe" edgews_messages_in_total) > before )); then
            START_S=$(python3 -c 'import sys; print(f"{float(sys.argv[2]) - float(sys.argv[1]):.2f}")' \
                "${t_launch/,/.}" "${EPOCHREALTIME/,/.}")
            break
        fi
        running "$LOAD_PID" || break
        sleep 0.05
    done
    sleep "$SETTLE_S"
    lpid=$(pgrep -P "$LOAD_PID" | head -n1 || true)
    cpu_all "$TMP/cpu0" "$lpid"
    scrape_all "$TMP/w0"
    sleep "$WINDOW_S"
    cpu_all "$TMP/cpu1" "$lpid"
    scrape_all "$TMP/w1"
    if [[ -z $START_S ]]; then
        echo "    (CPU readings discarded: no message was sent within 20 s)"
        rm -f "$TMP/cpu1"
    elif ! running "$LOAD_PID"; then
        echo "    (CPU readings discarded: the loader ended inside the window)"
        rm -f "$TMP/cpu1"
    fi
    wait "$LOAD_PID" || RC=$?
    LOAD_PID=
    scrape_all "$TMP/post"
}

# Appends a record to $RAW and prints a line. Arguments: SETTING LAYOUT
# ROUND EXIT CONNECTIONS SENDERS RATE START_S. Returns 1 if the run failed.
record() {
    py_run "$RAW" "$CLK_TCK" "$TMP" "$@" <<'EOF'
import re
raw, tck, tmp, setting, layout, rnd, rc, conns, senders, rate, start_s = sys.argv[1:12]
tck, rc, conns, senders, rate = int(tck), int(rc), int(conns), int(senders), int(rate)
SERVERS = ("one", "A", "B")
USED = {"one": ("one",), "split": ("A", "B"), "both": ("A", "B")}[layout]

def cpu(path):
    """Per process: ticks (utime+stime), user ticks, ns on CPU, wall clock;
    "machine": /proc/stat's busy (user, nice, system, irq, softirq) and
    steal ticks."""
    s = {}
    try:
        for line in open(path):
            f = line.split()
            if f and f[0] == "cpu" and len(f) >= 9:
                v = [int(x) for x in f[1:9]]
                s["machine"] = {"busy": v[0] + v[1] + v[2] + v[5] + v[6], "steal": v[7]}
            elif len(f) == 5:
                s[f[0]] = {"ticks": int(f[1]) + int(f[2]), "user": int(f[1]), "ns": int(f[3]),
                           "wall": float(f[4].replace(",", "."))}
    except OSError:
        return None
    return s

def metrics(prefix):
    out = {}
    for name in SERVERS:
        vals = {}
        try:
            for line in open(f"{prefix}.{name}"):
                m = re.match(r"^(edgews_[a-z_]+)\s+([0-9.e+]+)$", line.strip())
                if m:
                    vals[m.group(1)] = float(m.group(2))
        except OSError:
            pass
        out[name] = vals
    return out

def delta(a, b, name, key):
    """Counter `key` of server `name` from scrape a to scrape b (None if unread)."""
    if key not in a.get(name, {}) or key not in b.get(name, {}):
        return None
    return int(b[name][key] - a[name][key])

load, why = read_load(f"{tmp}/load.out", rc, lenient=True)
if load is not None:
    if load.get("errors", 1):
        why.append(f'{load.get("errors")} errors')
    if load.get("connections") != conns:
        why.append(f'{load.get("connections")} of {conns} connections')
    bad = {k: load.get(k, 1) for k in ("missing", "gaps", "duplicates", "out_of_order")}
    if any(bad.values()):
        why.append(", ".join(f"{v} {k.replace('_', ' ')}" for k, v in bad.items()))
    if load.get("deliveries", 0) <= 0:
        why.append("no deliveries")
    if layout != "one" and "cross_deliveries" not in load:
        why.append("no cross-instance figures")
errtail = err_tail(f"{tmp}/load.err")

pre, w0, w1, post = (metrics(f"{tmp}/{p}") for p in ("pre", "w0", "w1", "post"))
# over the whole run: what Redis passed on, and what went wrong with it
redis = {}
if layout != "one":
    for name in ("A", "B"):
        for key in ("published", "received", "own", "lost_out", "lost_in", "reconnects",
                    "duplicates", "invalid", "oversize"):
            redis[f"{name}_{key}"] = delta(pre, post, name, f"edgews_redis_{key}_total")
    for k, v in redis.items():
        if k.split("_", 1)[1] in ("lost_out", "lost_in", "reconnects", "duplicates", "invalid", "oversize") and v:
            why.append(f"{k} {v}")
    if None in redis.values():
        why.append("edgews_redis_* not read")
    elif load is not None:
        sent = load.get("sent")
        if redis["A_published"] != sent or redis["B_received"] != sent:
            why.append(f'Redis passed on {redis["A_published"]} (A published) and '
                       f'{redis["B_received"]} (B received) of {sent} messages sent')

a, b = cpu(f"{tmp}/cpu0"), cpu(f"{tmp}/cpu1")
win = None
if a and b and all(n in a and n in b for n in SERVERS + ("redis",)):
    window = b["one"]["wall"] - a["one"]["wall"]
    procs = {}
    if "machine" in a and "machine" in b:
        ours = sum(b[n]["ticks"] - a[n]["ticks"] for n in b if n != "machine" and n in a)
        procs_machine = {"others_s": (b["machine"]["busy"] - a["machine"]["busy"] - ours) / tck,
                         "steal_s": (b["machine"]["steal"] - a["machine"]["steal"]) / tck}
    else:
        procs_machine = None
    for n in a:
        if n in b and n != "machine":
            procs[n] = {"cpu_s": (b[n]["ticks"] - a[n]["ticks"]) / tck,
                        "user_s": (b[n]["user"] - a[n]["user"]) / tck,
                        "sched_s": (b[n]["ns"] - a[n]["ns"]) / 1e9}
    out = {n: delta(w0, w1, n, "edgews_messages_out_total") for n in SERVERS}
    msg_in = {n: delta(w0, w1, n, "edgews_messages_in_total") for n in SERVERS}
    win = {"window_s": round(window, 3), "procs": procs, "machine": procs_machine,
           "messages_out": out, "messages_in": msg_in,
           "published": delta(w0, w1, "A", "edgews_redis_published_total")}
    if any(out[n] is None for n in USED):
        why.append("edgews_messages_out_total not read over the window")
        win = None
elif a and b:
    why.append("CPU not read for every process")

append(raw, {"setting": setting, "layout": layout, "round": int(rnd), "exit": rc, "ok": not why,
             "start_s": float(start_s) if start_s else None,
             "why": "; ".join(why), "load": load, "window": win, "redis": redis, "stderr_tail": errtail})

line = f"  round {rnd}  {setting:<16} {layout:<6}" + (f"sending at {float(start_s):4.2f} s  " if start_s else "")
if load:
    line += (f'{load["deliveries_per_s"]:>9,} deliveries/s  p50 {load["p50_us"] / 1000:6.2f}'
             f' p99 {load["p99_us"] / 1000:6.2f} ms')
    if "cross_p50_us" in load:
        line += f'  cross p50 {load["cross_p50_us"] / 1000:6.2f} p99 {load["cross_p99_us"] / 1000:6.2f} ms'
if win:
    w, p = win["window_s"], win["procs"]
    line += "  CPU % of a core: " + ", ".join(
        f'{n} {100 * p[n]["cpu_s"] / w:.0f}' for n in USED + ("redis", "loader") if n in p)
    if win["machine"]:
        line += f', others {max(0, 100 * win["machine"]["others_s"] / w):.0f}, steal {100 * win["machine"]["steal_s"] / w:.0f}'
    served = sum(win["messages_out"][n] for n in USED)
    used_cpu = sum(p[n]["cpu_s"] for n in USED) + (p["redis"]["cpu_s"] if layout != "one" else 0)
    if used_cpu > 0:
        line += f"  {served / used_cpu:,.0f} deliveries per server CPU-s"
else:
    line += "  CPU n/a"
finish(line, why, errtail)
EOF
}

# --- the run --------------------------------------------------------------------

CLK_TCK=$(getconf CLK_TCK)
REV=$(revision "with local changes")
CPU=$(cpu_model)
REDIS_VERSION=$(redis-server --version | grep -o 'v=[^ ]*' | cut -c3-)
LOAD_START=$(load_avg)
HEADER=$(cat <<EOF
date:     $(date -u '+%Y-%m-%d %H:%M:%S UTC')
commit:   $REV
binary:   $EDGEWS_SRC (sha256 $SUM_EDGEWS)
redis:    redis-server ${REDIS_VERSION:-(version unknown)} on 127.0.0.1:$REDIS_PORT (--save "" --appendonly no)
machine:  $(nproc) CPUs, $CPU; kernel $(uname -r)
settings: connections:senders:msg/s:size ${SETTINGS[*]}; layouts ${LAYOUTS[*]}; $ROUNDS rounds of ${DURATION}s
servers:  edgews broadcast --workers 1 (one: no Redis; A and B: --redis $REDIS_URL)
pinning:  none (servers, redis-server and load generator free on all CPUs)
EOF
)
echo "$HEADER"
echo "load average at start: $LOAD_START"

start_redis
for name in "${SERVERS[@]}"; do start_server "$name"; done

LIMIT=$(( DURATION + 60 ))
# the window: from 0.5 s after the first message to 1 s before the last
SETTLE_S=0.5
WINDOW_S=$(( DURATION - 2 )).5
echo "== broadcast: layouts interleaved, $ROUNDS rounds"
for rnd in $(seq "$ROUNDS"); do
    for setting in "${SETTINGS[@]}"; do
        IFS=: read -r conns senders rate size <<<"$setting"
        for layout in "${LAYOUTS[@]}"; do
            case $layout in
                one) urls=(--url "$(url_of one)"); SENDERS_AT=one ;;
                split) urls=(--url "$(url_of A)" --receiver-url "$(url_of B)"); SENDERS_AT=A ;;
                both) urls=(--url "$(url_of A)" --receiver-url "$(url_of A)" --receiver-url "$(url_of B)")
                    SENDERS_AT=A ;;
            esac
            measure "${urls[@]}" --connections "$conns" --senders "$senders" --rate "$rate" \
                --size "$size" --duration "${DURATION}s"
            record "$setting" "$layout" "$rnd" "$RC" "$conns" "$senders" "$rate" "$START_S" || FAILED=1
        done
    done
done
LOAD_END=$(load_avg)
cleanup

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
USED = {"one": ("one",), "split": ("A", "B"), "both": ("A", "B")}
NAMES = {"one": "1 instance, no Redis", "split": "2 via Redis, receivers on B",
         "both": "2 via Redis, receivers on A and B"}

def fmt(n, d=0):
    return f"{n:,.{d}f}"

def span(v, d=0):
    return f"[{fmt(min(v), d)}..{fmt(max(v), d)}]" if len(v) > 1 else ""

def label(s):
    c, n, r, size = s.split(":")
    return f"{c}, {n}, {fmt(int(r))}, {size if not size.isdigit() else size + ' B'}"

settings, layouts = [], []
for r in recs:
    if r["setting"] not in settings:
        settings.append(r["setting"])
    if r["layout"] not in layouts:
        layouts.append(r["layout"])

def runs(s, l, need_window=False):
    return [r for r in recs if r["setting"] == s and r["layout"] == l and r["ok"]
            and (r["window"] or not need_window)]

def server_cpu(r, with_redis=True):
    p = r["window"]["procs"]
    c = sum(p[n]["cpu_s"] for n in USED[r["layout"]])
    return c + (p["redis"]["cpu_s"] if with_redis and r["layout"] != "one" else 0)

def served(r):
    return sum(r["window"]["messages_out"][n] for n in USED[r["layout"]])

def pct(r, n):
    return 100 * r["window"]["procs"][n]["cpu_s"] / r["window"]["window_s"]

starts = {}
for r in recs:
    if r.get("start_s") is not None:
        starts.setdefault(r["layout"], []).append(r["start_s"])
if starts:
    print("Sending began (the senders' instance read the first message) after, median [min..max] of the runs: "
          + "; ".join(f"{NAMES[l]} {med(v):.2f} s" + (f" {span(v, 2)}" if len(v) > 1 else "")
                     for l, v in starts.items()) + ".")
    print()

print("### Deliveries and latency")
print()
print("Medians of the rounds. \"All\" is every delivery (the loader reports p50, p99 and p99.9 for them);"
      " \"cross\" the deliveries to connections on another instance than the senders' (p50, p90, p99, max).")
print()
print("| connections, senders, msg/s, size | layout | deliveries/s | all p50 / p99 / p99.9, ms"
      " | cross-instance deliveries/s | cross p50 / p90 / p99 / max, ms | missing / gaps / duplicates"
      " | CPU, % of a core: loader · other processes · steal |")
print("|---|---|---:|---:|---:|---:|---:|---:|")
for s in settings:
    for l in layouts:
        rs = runs(s, l)
        bad = [r for r in recs if r["setting"] == s and r["layout"] == l and not r["ok"]]
        if not rs:
            print(f"| {label(s)} | {NAMES[l]} | FAIL | | | | | |")
            continue
        ld = [r["load"] for r in rs]
        d = med(x["deliveries_per_s"] for x in ld)
        allp = " / ".join(f'{med(x[k] for x in ld) / 1000:.2f}' for k in ("p50_us", "p99_us", "p999_us"))
        if "cross_p50_us" in ld[0]:
            cd = fmt(med(x["cross_deliveries_per_s"] for x in ld))
            cross = " / ".join(f'{med(x[k] for x in ld) / 1000:.2f}'
                               for k in ("cross_p50_us", "cross_p90_us", "cross_p99_us", "cross_max_us"))
        else:
            cd = cross = "—"
        mgd = " / ".join(str(sum(x[k] for x in ld)) for k in ("missing", "gaps", "duplicates"))
        lc = [pct(r, "loader") for r in rs if r["window"] and "loader" in r["window"]["procs"]]
        lcs = f"{med(lc):.0f}" if lc else "n/a"
        mach = [r["window"]["machine"] for r in rs if r["window"] and r["window"].get("machine")]
        ws = [r["window"]["window_s"] for r in rs if r["window"] and r["window"].get("machine")]
        if mach:
            lcs += (f' · {max(0, med(100 * m["others_s"] / w for m, w in zip(mach, ws))):.0f}'
                    f' · {med(100 * m["steal_s"] / w for m, w in zip(mach, ws)):.0f}')
        flag = f" ({len(bad)} FAILED)" if bad else ""
        print(f"| {label(s)} | {NAMES[l]}{flag} | {fmt(d)} | {allp} | {cd} | {cross} | {mgd} | {lcs} |")
print()

print("### CPU")
print()
print("Over the window inside each run's sending phase; medians of the rounds [min..max]. CPU from utime+stime"
      " (/proc/PID/stat); µs per message sent also from schedstat, in brackets. Deliveries from each"
      " instance's edgews_messages_out_total over the same window. \"÷ one\": deliveries per CPU-second of"
      " edgews + Redis over those of the instance alone, of the medians and round by round.")
print()
print("| connections, senders, msg/s, size | layout | CPU, % of a core: edgews (A / B) · Redis"
      " | µs per message sent: edgews (A / B) · Redis | deliveries / CPU-s per edgews (A / B)"
      " | deliveries / CPU-s, all edgews | deliveries / CPU-s, edgews + Redis | ÷ one | Redis share of server CPU |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
for s in settings:
    base = runs(s, "one", True)
    base_v = med(served(r) / server_cpu(r) for r in base) if base else None
    base_by_round = {r["round"]: served(r) / server_cpu(r) for r in base}
    for l in layouts:
        rs = runs(s, l, True)
        if not rs:
            print(f"| {label(s)} | {NAMES[l]} | n/a | | | | | | |")
            continue
        names = USED[l]
        cpu_s = " / ".join(f"{med(pct(r, n) for r in rs):.0f}" for n in names)
        if l != "one":
            cpu_s += f" · {med(pct(r, 'redis') for r in rs):.0f}"
        # messages sent in the window: those the senders' instance read
        def sent(r):
            return r["window"]["messages_in"][names[0]] or 0
        def us(r, n, key="cpu_s"):
            return 1e6 * r["window"]["procs"][n][key] / sent(r) if sent(r) else float("nan")
        us_s = " / ".join(f"{med(us(r, n) for r in rs):.1f} ({med(us(r, n, 'sched_s') for r in rs):.1f})"
                          for n in names)
        if l != "one":
            us_s += (f" · {med(us(r, 'redis') for r in rs):.1f}"
                     f" ({med(us(r, 'redis', 'sched_s') for r in rs):.1f})")
        per = " / ".join(fmt(med(r["window"]["messages_out"][n] / r["window"]["procs"][n]["cpu_s"]
                                 for r in rs if r["window"]["procs"][n]["cpu_s"] > 0)) for n in names)
        e = [served(r) / server_cpu(r, False) for r in rs]
        er = [served(r) / server_cpu(r) for r in rs]
        ratio = ""
        if l != "one" and base_v:
            pairs = [served(r) / server_cpu(r) / base_by_round[r["round"]] for r in rs if r["round"] in base_by_round]
            ratio = f"**{med(er) / base_v:.3f}**" + (" (" + ", ".join(f"{x:.3f}" for x in pairs) + ")" if pairs else "")
        share = (f"{med(100 * r['window']['procs']['redis']['cpu_s'] / server_cpu(r) for r in rs):.0f}%"
                 if l != "one" else "—")
        print(f"| {label(s)} | {NAMES[l]} | {cpu_s} | {us_s} | {per} | {fmt(med(e))} {span(e)} | "
              f"{fmt(med(er))} {span(er)} | {ratio} | {share} |")
print()
EOF
    echo "raw results: $RAW"
} | tee "$TABLE"

exit_if_failed
