#!/usr/bin/env bash
# permessage-deflate (RFC 7692): what it costs edgews in memory per
# connection and in CPU per echoed message, beside the ratchet peer
# (benches/peers/src/ratchet.rs, zlib level 6, context takeover).
#
#   bash benches/deflate.sh          # about 14 minutes: echo 3, memory 10
#   ROUNDS=1 DURATION=2s MEM_CONNECTIONS=200 MEM_ROUNDS=1 SENDS=1KiB bash benches/deflate.sh   # a quick try
#   SKIP_BUILD=1 EDGEWS=/tmp/x/edgews PEERS=/tmp/x/edgews-peers bash benches/deflate.sh
#
# Prints three markdown tables:
#
# 1. Memory: server RSS growth per connection, read by `edgews load idle
#    --deflate --connections N --server-pid PID` (WARMUP_CONNECTIONS opened
#    and settled first, not counted), a fresh server per reading, for
#    `--deflate off`, `shared`, and `dedicated` at several window/memLevel
#    pairs (the client window set equal to the server window; the load
#    client offers `client_max_window_bits`, so it applies). Each setting
#    idle and after one message of each of SENDS (`--send SIZE`: each
#    connection sends one JSON-like text message, gets its echo, then
#    idles), with the difference to `off` ("beyond an uncompressed
#    connection"). RSS counts the pages touched: zlib's buffers are
#    allocated whole but fill as data passes, so a message smaller than
#    the window shows less than a connection that has carried more.
# 2. Compressed echo: `edgews load echo --deflate --json` at each of SIZES,
#    CONNECTIONS connections, pipeline 1, against edgews `--deflate
#    dedicated` (defaults: window 12, client window 12, memLevel 5),
#    edgews dedicated with window 15 / client window 15 / memLevel 8
#    (zlib's defaults, as the ratchet peer uses), edgews `shared`, and the
#    ratchet peer: msg/s, the server's CPU-seconds over the measured
#    window (utime+stime from /proc/PID/stat), messages per server
#    CPU-second and its ratio to ratchet. Rounds are interleaved across
#    servers, all servers up at once (an idle one blocks in epoll); the
#    table gives medians over ROUNDS, msg/CPU-s with [min..max]. Mind the
#    payload: `--json` sends the same text every time but for a 16-byte
#    stamp, so a compressor with context takeover and a window at least
#    the message size (edgews 15/15/8 and ratchet at 16 KiB, every
#    dedicated setting at 1 KiB) finds the whole previous message and
#    does far less work than real traffic would ask of it; `shared` and
#    dedicated 12/12/5 at 16 KiB compress each message from scratch.
# 3. Bytes on the wire per echoed message, both directions, from `ss -tin`
#    on the server's sockets: bytes_received (client to server) and
#    bytes_acked (server to client) summed over them at both ends of the
#    measured window, divided by the messages echoed in it: edgews' own
#    counter (edgews_messages_in_total, from --metrics-listen, read at the
#    window's ends; it counts whether or not /metrics is served), for
#    ratchet msg/s x window and a figure derived from the byte ratio of
#    the two directions. TCP payload: WebSocket headers, masks and deflate
#    output, no TCP/IP headers. Ratio = those bytes / message size.
#
# Servers run pinned to CPU 0 (`taskset -c 0`), the load generator to
# CPU 1, loopback only, as in benches/compare.sh. Before each echo server's
# rounds a raw handshake with the load generator's offer
# (`permessage-deflate; client_no_context_takeover; client_max_window_bits`)
# prints the server's Sec-WebSocket-Extensions answer, so a server that
# declines shows as such. A loader run that exits non-zero or reports
# errors is shown as FAIL with its reason (and its numbers, if it printed
# any); the script then exits 1.
#
# Environment:
#   SIZES="1KiB 16KiB"  echo message sizes
#   CONNECTIONS=50      echo connections
#   DURATION=5s         measured time of an echo round (seconds: 5s)
#   WARMUP=1s           unmeasured time before it
#   ROUNDS=3            echo rounds per server and size (medians)
#   MEM_CONNECTIONS=2000, WARMUP_CONNECTIONS=100, MEM_ROUNDS=2
#   SENDS="1KiB 64KiB"  message sizes of the "after one message" readings
#   MEM_PAIRS="9/1 9/4 10/4 12/5 15/8"   dedicated window/memLevel pairs
#   BASE_PORT=19400     servers listen on BASE_PORT, BASE_PORT+1, ...
#   OUT_DIR=target/deflate   raw JSON lines, logs and the tables go here
#   SKIP_BUILD=0        1: use the binaries as they are
#   EDGEWS, PEERS       the binaries (default target/release/edgews and
#                       target/release/edgews-peers; CARGO_TARGET_DIR honoured)
set -euo pipefail
. "$(dirname "$0")/lib.sh"

cd_root

read -r -a SIZES <<<"${SIZES:-1KiB 16KiB}"
CONNECTIONS=${CONNECTIONS:-50}
DURATION=${DURATION:-5s}
WARMUP=${WARMUP:-1s}
ROUNDS=${ROUNDS:-3}
MEM_CONNECTIONS=${MEM_CONNECTIONS:-2000}
WARMUP_CONNECTIONS=${WARMUP_CONNECTIONS:-100}
read -r -a SENDS <<<"${SENDS:-1KiB 64KiB}"
MEM_ROUNDS=${MEM_ROUNDS:-2}
read -r -a MEM_PAIRS <<<"${MEM_PAIRS:-9/1 9/4 10/4 12/5 15/8}"
BASE_PORT=${BASE_PORT:-19400}
SKIP_BUILD=${SKIP_BUILD:-0}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
case $TARGET in /*) ;; *) TARGET=$ROOT/$TARGET ;; esac
EDGEWS=${EDGEWS:-$TARGET/release/edgews}
PEERS=${PEERS:-$TARGET/release/edgews-peers}
OUT_DIR=${OUT_DIR:-$ROOT/target/deflate}
MEM_HOLD=2s

DURATION_S=$(secs "$DURATION" whole)
WARMUP_S=$(secs "$WARMUP" whole)
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer"
[[ $MEM_ROUNDS =~ ^[0-9]+$ ]] || die "MEM_ROUNDS must be an integer"
[[ $CONNECTIONS =~ ^[1-9][0-9]*$ && $MEM_CONNECTIONS =~ ^[1-9][0-9]*$ ]] ||
    die "CONNECTIONS and MEM_CONNECTIONS must be positive integers"
[[ $WARMUP_CONNECTIONS =~ ^[0-9]+$ ]] || die "WARMUP_CONNECTIONS must be an integer"
# The server-CPU window: from 300 ms after the end of the loader's warm-up
# (its connections take a few ms to open) to 700 ms before the end of its
# measured time (the samples at each end, ss and curl, take time of their
# own on a busy machine); a window that still overruns is discarded.
CPU_WINDOW_MS=$(( DURATION_S >= 3 ? DURATION_S * 1000 - 1000 : DURATION_S * 500 ))
CPU_WINDOW=$(ms_to_s "$CPU_WINDOW_MS")
ECHO_LIMIT=$(( WARMUP_S + DURATION_S + 60 ))
MEM_LIMIT=$(( $(secs "$MEM_HOLD" whole) + 120 ))
CLK_TCK=$(getconf CLK_TCK)

need_tools taskset python3 ss timeout sha256sum curl pgrep awk
(( $(nproc) >= 2 )) || die "needs two CPUs (servers on 0, load on 1)"

# The loader and the server each hold one descriptor per connection.
need_fds $(( MEM_CONNECTIONS + WARMUP_CONNECTIONS + 1000 ))

if [[ $SKIP_BUILD != 1 ]]; then
    echo "== building (release)"
    cargo build --release -p edgews-peers
    cargo build --release --bin edgews
fi
[[ -x $EDGEWS ]] || die "no $EDGEWS (cargo build --release)"
[[ -x $PEERS ]] || die "no $PEERS (cargo build --release -p edgews-peers)"
# One reactor (--workers 1), so the figures stay comparable with the
# single-threaded peers; builds from before --workers have only the one.
WORKERS_1=()
if has_workers_option "$EDGEWS"; then WORKERS_1=(--workers 1); fi

out_files deflate

# --- processes we start, stopped on any exit --------------------------------

# PID (the servers) and LOAD_PID; TMP, removed on exit
setup_processes

# The servers: name -> arguments (edgews) or "ratchet".
declare -A ARGS=()
ARGS[off]="--deflate off"
ARGS[shared]="--deflate shared"
for pair in "${MEM_PAIRS[@]}"; do
    [[ $pair =~ ^([0-9]+)/([0-9])$ ]] || die "MEM_PAIRS holds window/memLevel pairs such as 12/5 (got '$pair')"
    ARGS[dedicated-$pair]="--deflate dedicated --deflate-window-bits ${BASH_REMATCH[1]} --deflate-client-window-bits ${BASH_REMATCH[1]} --deflate-mem-level ${BASH_REMATCH[2]}"
done
ARGS[dedicated]="--deflate dedicated"
ARGS[dedicated-15/8]="--deflate dedicated --deflate-window-bits 15 --deflate-client-window-bits 15 --deflate-mem-level 8"
ARGS[ratchet]=ratchet
ECHO_SERVERS=(dedicated dedicated-15/8 shared ratchet)

# Starts server $1 on port $2, pinned to CPU 0; edgews with its /metrics
# on port $3 if given (its counters run either way).
start_server() {
    local name=$1 port=$2 mport=${3:-} log
    log=$LOGS/${name//\//-}.log
    listening "$port" && die "port $port is taken already (set BASE_PORT)"
    if [[ ${ARGS[$name]} == ratchet ]]; then
        taskset -c 0 "$PEERS" ratchet --listen "127.0.0.1:$port" >>"$log" 2>&1 &
    else
        # shellcheck disable=SC2086 # ARGS holds words
        EDGEWS_LOG=warn taskset -c 0 "$EDGEWS" echo --listen "127.0.0.1:$port" \
            "${WORKERS_1[@]}" --max-connections 20000 --ping-interval 0 ${ARGS[$name]} \
            ${mport:+--metrics-listen "127.0.0.1:$mport"} >>"$log" 2>&1 &
    fi
    PID[$name]=$!
    wait_port "${PID[$name]}" "$port" || die "$name did not come up on port $port; see $log"
}

# Prints the Sec-WebSocket-Extensions answer of the server on port $1 to
# the load generator's offer, "(none)" without one.
extensions_answer() {
    python3 - "$1" <<'EOF'
import base64, os, socket, sys
port = int(sys.argv[1])
key = base64.b64encode(os.urandom(16)).decode()
s = socket.create_connection(("127.0.0.1", port), timeout=5)
s.sendall((f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
           "Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover; "
           "client_max_window_bits\r\n\r\n").encode())
data = b""
while b"\r\n\r\n" not in data and len(data) < 65536:
    chunk = s.recv(4096)
    if not chunk:
        break
    data += chunk
head = data.split(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
status = head[0] if head else "no answer"
ext = [l.split(":", 1)[1].strip() for l in head[1:] if l.lower().startswith("sec-websocket-extensions:")]
# close properly: a masked close frame, code 1000
s.sendall(bytes([0x88, 0x82, 0, 0, 0, 0, 0x03, 0xE8]))
s.close()
print(("; ".join(ext) or "(none)") if " 101 " in status + " " else f"refused: {status}")
EOF
}

# Prints "RECEIVED ACKED" summed over the established sockets whose local
# port is $1 (the server's side of every connection).
wire_sample() {
    taskset -c 1 ss -Htin state established "sport = :$1" | taskset -c 1 awk '
        { for (i = 1; i <= NF; i++) {
              if ($i ~ /^bytes_received:/) { split($i, v, ":"); r += v[2] }
              if ($i ~ /^bytes_acked:/) { split($i, v, ":"); a += v[2]; n++ } } }
        END { printf "%.0f %.0f %d\n", r, a, n }'
}

# Prints edgews_messages_in_total of the edgews whose /metrics is on port
# $1 (empty without one).
messages_in() {
    [[ -n $1 ]] || return 0
    taskset -c 1 curl -s --max-time 2 "http://127.0.0.1:$1/metrics" |
        awk '$1 == "edgews_messages_in_total" { print $2 }'
}

FAILED=0

# One echo round against server $1 on port $2 at size $3, round $4.
run_echo() {
    local name=$1 port=$2 size=$3 rnd=$4 rc=0 spid out cpu0 cpu1 lcpu0 lcpu1 t0 t1 tl w0 w1 m0 m1 lpid
    local mport=${MPORT[$name]:-}
    spid=${PID[$name]}
    out=$TMP/echo.out
    : >"$out"
    timeout -k 5 "$ECHO_LIMIT" taskset -c 1 "$EDGEWS" load echo --deflate --json \
        --url "ws://127.0.0.1:$port/" --connections "$CONNECTIONS" --size "$size" \
        --pipeline 1 --duration "$DURATION" --warmup "$WARMUP" >"$out" 2>"$TMP/echo.err" &
    LOAD_PID=$!
    tl=$EPOCHREALTIME
    sleep "$WARMUP_S.3"
    cpu0= cpu1= lcpu0= lcpu1= w0= w1= t0= t1= m0= m1=
    # LOAD_PID is `timeout`; its child (taskset, which execs) is the loader
    lpid=$(pgrep -P "$LOAD_PID" | head -n1 || true)
    if cpu_sample "$spid"; then cpu0=$SAMPLE; fi
    if [[ -n $lpid ]] && cpu_sample "$lpid"; then lcpu0=$SAMPLE; fi
    t0=$EPOCHREALTIME
    w0=$(wire_sample "$port" || true)
    m0=$(messages_in "$mport" || true)
    sleep "$CPU_WINDOW"
    m1=$(messages_in "$mport" || true)
    w1=$(wire_sample "$port" || true)
    if cpu_sample "$spid"; then cpu1=$SAMPLE; fi
    if [[ -n $lpid ]] && cpu_sample "$lpid"; then lcpu1=$SAMPLE; fi
    t1=$EPOCHREALTIME
    # Readings taken after the loader's measured time are no readings: it
    # measures from (connections open +) WARMUP to DURATION later, so a
    # window ending past WARMUP + DURATION after its start overran (the
    # samples themselves can stall on a busy machine).
    if ! running "$LOAD_PID" || overran "$tl" "$t1" "$(( WARMUP_S + DURATION_S ))"; then
        echo "    (readings discarded: the window ran past the loader's measured time)"
        cpu0= cpu1= w0= w1= m0= m1=
    fi
    wait "$LOAD_PID" || rc=$?
    LOAD_PID=
    py_run "$RAW" "$name" "$size" "$rnd" "$rc" "$out" "$TMP/echo.err" "$CLK_TCK" \
        "$cpu0" "$cpu1" "$t0" "$t1" "$w0" "$w1" "$CONNECTIONS" "$lcpu0" "$lcpu1" "$m0" "$m1" <<'EOF' || FAILED=1
(raw, name, size, rnd, rc, out, err, tck, cpu0, cpu1, t0, t1, w0, w1, conns, lcpu0, lcpu1, m0, m1) = sys.argv[1:20]
rc, tck, conns = int(rc), int(tck), int(conns)
load, why = read_load(out, rc)
echo_why(load, why, conns)
errtail = err_tail(err)
window = float(t1.replace(",", ".")) - float(t0.replace(",", "."))
cpu = None
if cpu0 and cpu1 and window > 0:
    u0, s0 = map(int, cpu0.split()); u1, s1 = map(int, cpu1.split())
    cpu = {"window_s": round(window, 3), "user_s": (u1 - u0) / tck, "sys_s": (s1 - s0) / tck}
    if lcpu0 and lcpu1:
        u0, s0 = map(int, lcpu0.split()); u1, s1 = map(int, lcpu1.split())
        cpu["load_user_s"], cpu["load_sys_s"] = (u1 - u0) / tck, (s1 - s0) / tck
wire = None
if w0 and w1 and load and load.get("msg_per_s"):
    r0, a0, n0 = map(int, w0.split()); r1, a1, n1 = map(int, w1.split())
    # messages echoed in the window: edgews' own counter when it has one,
    # else the loader's rate times the window
    exact = m0.isdigit() and m1.isdigit() and int(m1) > int(m0)
    msgs = int(m1) - int(m0) if exact else load["msg_per_s"] * window
    if n0 == n1 == conns and msgs > 0:
        wire = {"in_per_msg": (r1 - r0) / msgs, "out_per_msg": (a1 - a0) / msgs, "sockets": n1,
                "in_bytes": r1 - r0, "out_bytes": a1 - a0, "messages": msgs,
                "count": "exact" if exact else "rate",
                "rate_messages": load["msg_per_s"] * window}
    else:
        wire = {"why": f"{n0}/{n1} sockets seen, {conns} expected"}
append(raw, {"test": "echo", "server": name, "size": size, "round": int(rnd), "exit": rc,
             "ok": not why, "why": "; ".join(why), "load": load, "cpu": cpu, "wire": wire,
             "stderr_tail": errtail})
line = f"  round {rnd}  {name:<16} {size:>6}  "
if load:
    line += f'{load["msg_per_s"]:>8,} msg/s  errors {load["errors"]}'
if cpu:
    c = cpu["user_s"] + cpu["sys_s"]
    line += f'  server CPU {c:.2f} s / {window:.2f} s'
    if "load_user_s" in cpu:
        line += f' (loader {cpu["load_user_s"] + cpu["load_sys_s"]:.2f} s)'
    if load and c > 0:
        line += f'  {load["msg_per_s"] * window / c:,.0f} msg/CPU-s'
if not cpu:
    line += "  server CPU n/a (readings discarded)"
if wire and "in_per_msg" in wire:
    line += f'  wire in {wire["in_per_msg"]:.0f} B out {wire["out_per_msg"]:.0f} B per msg'
finish(line, why, errtail)
EOF
}

# --- the machine ---------------------------------------------------------------

REV=$(revision "working tree has local changes")
CPU=$(cpu_model)
LOAD_START=$(load_avg)
# What else ran: the machine's busy share over one second before starting.
BUSY_START=$(busy_share)
top_snapshot "$LOGS/top-start.txt"
HEADER=$(cat <<EOF
date:     $(date -u '+%Y-%m-%d %H:%M:%S UTC')
commit:   $REV
binaries: $EDGEWS ($(short_sum "$EDGEWS")), $PEERS ($(short_sum "$PEERS"))
machine:  $(nproc) CPUs, $CPU; kernel $(uname -r)
pinning:  servers on CPU 0, load generator on CPU 1; loopback
memory:   $MEM_CONNECTIONS measured connections after $WARMUP_CONNECTIONS warm-up ones, fresh server each, $MEM_ROUNDS round(s); idle and --send ${SENDS[*]}
echo:     ${SIZES[*]} x $CONNECTIONS connections, pipeline 1, --json --deflate, $ROUNDS round(s) x $DURATION (warm-up $WARMUP), CPU window ${CPU_WINDOW} s
EOF
)
echo "$HEADER"
echo "load average at start: $LOAD_START; CPUs busy over the last second: $BUSY_START"

# --- compressed echo -------------------------------------------------------------

declare -A PORT=() MPORT=()
i=0
for s in "${ECHO_SERVERS[@]}"; do
    PORT[$s]=$(( BASE_PORT + i ))
    [[ ${ARGS[$s]} == ratchet ]] || MPORT[$s]=$(( BASE_PORT + 50 + i ))
    i=$(( i + 1 ))
done
MEM_PORT=$(( BASE_PORT + i ))

echo "== echo: all servers up, rounds interleaved"
for s in "${ECHO_SERVERS[@]}"; do
    start_server "$s" "${PORT[$s]}" "${MPORT[$s]:-}"
    answer=$(extensions_answer "${PORT[$s]}" 2>&1 || echo "handshake failed")
    echo "  $s (port ${PORT[$s]}): ${ARGS[$s]}; answers: $answer"
    python3 -c 'import json,sys; print(json.dumps({"test":"handshake","server":sys.argv[1],"args":sys.argv[2],"answer":sys.argv[3]}))' \
        "$s" "${ARGS[$s]}" "$answer" >>"$RAW"
done
for rnd in $(seq "$ROUNDS"); do
    for size in "${SIZES[@]}"; do
        for s in "${ECHO_SERVERS[@]}"; do
            run_echo "$s" "${PORT[$s]}" "$size" "$rnd"
        done
    done
done
for s in "${ECHO_SERVERS[@]}"; do stop_server "$s"; done

# --- memory per connection ---------------------------------------------------------

MEM_SERVERS=(off shared)
for pair in "${MEM_PAIRS[@]}"; do MEM_SERVERS+=("dedicated-$pair"); done
if (( MEM_ROUNDS > 0 )); then
    echo "== memory: a fresh server per reading"
    for rnd in $(seq "$MEM_ROUNDS"); do
        for s in "${MEM_SERVERS[@]}"; do
            for send in 0 "${SENDS[@]}"; do
                run_mem "$s" "$MEM_PORT" "$send" "$rnd" 16 --deflate --url "ws://127.0.0.1:$MEM_PORT/"
            done
        done
    done
fi

LOAD_END=$(load_avg)
BUSY_END=$(busy_share)
top_snapshot "$LOGS/top-end.txt"

# --- the tables -------------------------------------------------------------------

{
    echo
    echo '```'
    echo "$HEADER"
    echo "load:     average $LOAD_START at start, $LOAD_END at end (1/5/15 min); both CPUs busy $BUSY_START in the second before, $BUSY_END in the second after"
    echo '```'
    echo
    python3 - "$RAW" "${SENDS[*]}" "${MEM_SERVERS[*]}" "${ECHO_SERVERS[*]}" <<'EOF'
import json, statistics, sys
raw, sends, mem_servers, echo_servers = sys.argv[1], sys.argv[2].split(), sys.argv[3].split(), sys.argv[4].split()
recs = [json.loads(l) for l in open(raw)]
fmt = lambda n: f"{n:,.0f}"
med = statistics.median

def label(s):
    if s == "off": return "`--deflate off`"
    if s == "shared": return "`shared`"
    if s == "dedicated": return "edgews `dedicated` (12/12/5, default)"
    if s == "ratchet": return "ratchet peer (15/15/8, level 6)"
    if s == "dedicated-15/8" and echo_table: return "edgews `dedicated` 15/15/8"
    w, m = s.split("-", 1)[1].split("/")
    dflt = " (default)" if (w, m) == ("12", "5") else ""
    return f"`dedicated` {w}/{m}{dflt}"

echo_table = False
mem = [r for r in recs if r["test"] == "mem"]
if mem:
    def cell(s, sd):
        rs = [r for r in mem if r["server"] == s and r["send"] == sd]
        good = [r["load"]["bytes_per_connection"] for r in rs if r["ok"]]
        return good, len(rs) - len(good)
    base = {}
    for sd in ["0"] + sends:
        good, bad = cell("off", sd)
        base[sd] = med(good) if good else None
    n = mem[0]["load"]["connections"] if mem[0].get("load") else "?"
    print(f"**Memory per connection**: server RSS growth per connection over {n:,} connections "
          f"(after the warm-up ones), median of the rounds [min..max]; \"beyond off\" = that minus "
          f"`--deflate off` in the same state. dedicated W/M = server window bits = client window bits W, memLevel M.")
    print()
    print("| server | idle, B/conn | beyond off | " + " | ".join(f"after one {sd} message, B/conn | beyond off" for sd in sends) + " |")
    print("|---|" + "---:|---:|" * (1 + len(sends)))
    for s in mem_servers:
        cells = []
        for sd in ["0"] + sends:
            good, bad = cell(s, sd)
            if not good:
                cells += [f"FAIL ({bad} runs)", "-"]
                continue
            m = med(good)
            span = f" [{fmt(min(good))}..{fmt(max(good))}]" if len(good) > 1 else ""
            note = f" ({bad} FAILED)" if bad else ""
            cells.append(f"{fmt(m)}{span}{note}")
            cells.append("—" if s == "off" else (f"{m - base[sd]:+,.0f}" if base[sd] is not None else "n/a"))
        print(f"| {label(s)} | " + " | ".join(cells) + " |")
    print()

echo = [r for r in recs if r["test"] == "echo"]
hand = {r["server"]: r["answer"] for r in recs if r["test"] == "handshake"}
echo_table = True
if echo:
    sizes = []
    for r in echo:
        if r["size"] not in sizes:
            sizes.append(r["size"])
    def runs(s, size):
        return [r for r in echo if r["server"] == s and r["size"] == size]
    def mpc(r):
        c = r.get("cpu")
        if not (r.get("load") and c and c["user_s"] + c["sys_s"] > 0):
            return None
        return r["load"]["msg_per_s"] * c["window_s"] / (c["user_s"] + c["sys_s"])
    print("**Compressed echo** (`edgews load echo --deflate --json`, pipeline 1): medians of the rounds. "
          "Server CPU-s = utime+stime over the measured window (window length in the header); "
          "usr share = user time / CPU time, rounds pooled. msg/CPU-s = messages echoed per server CPU-second "
          "[min..max]; ÷ ratchet = that over ratchet's (higher: less CPU per message). "
          "Rounds with loader errors are counted as FAIL and left out of the medians.")
    print()
    print("| size | server | msg/s | server CPU-s | server CPU % | usr share | msg / server CPU-s | ÷ ratchet | loader CPU % | failed rounds |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for size in sizes:
        rat = [mpc(r) for r in runs("ratchet", size) if r["ok"] and mpc(r)]
        rat_m = med(rat) if rat else None
        for s in echo_servers:
            rs = runs(s, size)
            good = [r for r in rs if r["ok"]]
            bad = [r for r in rs if not r["ok"]]
            badtxt = "; ".join(f'r{r["round"]}: {r["why"]}' for r in bad) or "0"
            if not good:
                seen = [r["load"]["msg_per_s"] for r in bad if r.get("load")]
                print(f"| {size} | {label(s)} | FAIL{(' (' + fmt(med(seen)) + ' msg/s seen)') if seen else ''} | | | | | | {badtxt} |")
                continue
            rate = med(r["load"]["msg_per_s"] for r in good)
            cpus = [r["cpu"]["user_s"] + r["cpu"]["sys_s"] for r in good if r.get("cpu")]
            pct = [100 * (r["cpu"]["user_s"] + r["cpu"]["sys_s"]) / r["cpu"]["window_s"] for r in good if r.get("cpu")]
            us = sum(r["cpu"]["user_s"] for r in good if r.get("cpu"))
            tot = sum(r["cpu"]["user_s"] + r["cpu"]["sys_s"] for r in good if r.get("cpu"))
            m = [mpc(r) for r in good if mpc(r)]
            mm = med(m) if m else None
            span = f" [{fmt(min(m))}..{fmt(max(m))}]" if len(m) > 1 else ""
            ratio = f"{mm / rat_m:.2f}" if mm and rat_m else "n/a"
            lp = [100 * (r["cpu"]["load_user_s"] + r["cpu"]["load_sys_s"]) / r["cpu"]["window_s"]
                  for r in good if r.get("cpu") and "load_user_s" in r["cpu"]]
            print(f"| {size} | {label(s)} | {fmt(rate)} | {f'{med(cpus):.2f}' if cpus else 'n/a'} | "
                  f"{f'{med(pct):.0f}' if pct else 'n/a'} | "
                  f"{(100 * us / tot) if tot else 0:.0f}% | {fmt(mm) if mm else 'n/a'}{span} | {ratio} | "
                  f"{f'{med(lp):.0f}' if lp else 'n/a'} | {badtxt} |")
    print()
    print("**Bytes on the wire per echoed message**: TCP payload (WebSocket framing included, TCP/IP headers not) "
          "from `ss -tin` on the server's sockets, bytes_received = client to server and bytes_acked = server to client, "
          "summed over the measured window and divided by the messages echoed in it: for edgews its own "
          "edgews_messages_in_total over the same window (exact); for ratchet, which has no counter, the loader's "
          "msg/s x window (approximate), and beside it the server→client bytes derived without a message count: "
          "(server→client / client→server bytes) x edgews 15/15/8's client→server bytes per message (the load generator "
          "compresses the same way for both: window 15, no context takeover). ratio = bytes / message size; medians of the rounds. "
          "The load generator compresses without context takeover (it offers client_no_context_takeover); "
          "a server with context takeover compresses each message against the ones before, and every message "
          "here is the same JSON text but for a 16-byte stamp, so its server→client figure is a best case.")
    print()
    print("| size | server | negotiated (answer to the load generator's offer) | client→server B/msg | ratio | server→client B/msg | ratio | messages counted by |")
    print("|---|---|---|---:|---:|---:|---:|---|")
    def nbytes_of(size):
        num = size.rstrip("KiBM") or "0"
        return int(num) * {"KiB": 1024, "MiB": 1 << 20}.get(size[len(num):], 1)
    def wires(s, size):
        return [r["wire"] for r in runs(s, size) if r["ok"] and r.get("wire") and "in_per_msg" in r["wire"]]
    for size in sizes:
        nb = nbytes_of(size)
        ref = [x["in_per_msg"] for x in wires("dedicated-15/8", size) if x.get("count") == "exact"]
        ref_in = med(ref) if ref else None
        for s in echo_servers:
            w = wires(s, size)
            if not w:
                print(f"| {size} | {label(s)} | `{hand.get(s, '?')}` | n/a | | n/a | | |")
                continue
            i, o = med(x["in_per_msg"] for x in w), med(x["out_per_msg"] for x in w)
            how = sorted({x.get("count", "rate") for x in w})
            how_s = {"exact": "edgews counter", "rate": "msg/s x window"}
            extra = ""
            if how == ["rate"] and ref_in:
                d = med(x["out_bytes"] / x["in_bytes"] * ref_in for x in w if x["in_bytes"] > 0)
                extra = f" (derived: {d:,.0f} B, ratio {d / nb:.3f})"
            print(f"| {size} | {label(s)} | `{hand.get(s, '?')}` | {i:,.0f} | {i / nb:.3f} | {o:,.0f} | {o / nb:.3f} | "
                  f"{', '.join(how_s.get(h, h) for h in how)}{extra} |")
    print()
EOF
    echo "raw results: $RAW; server logs: $LOGS"
} | tee "$TABLE"

exit_if_failed
