#!/usr/bin/env bash
# TLS (wss://): what it costs edgews in CPU per echoed message, per
# connection opened, and in memory per connection, beside a TLS peer
# (benches/peers/src/tls.rs: tokio-websockets behind tokio-rustls, the same
# rustls 0.23 with the ring provider) and beside plain ws://.
#
#   bash benches/tls.sh                 # about 11 minutes (loaded machine)
#   ROUNDS=1 DURATION=2s HS_ROUNDS=1 MEM_CONNECTIONS=300 MEM_ROUNDS=1 bash benches/tls.sh   # a quick try
#   SKIP_BUILD=1 EDGEWS=/tmp/x/edgews PEERS=/tmp/x/edgews-peers TLS_CERT=/tmp/x/tls_cert bash benches/tls.sh
#
# Four servers, each pinned to CPU 0 (`taskset -c 0`), every load tool
# pinned to CPU 1, loopback only, as in benches/compare.sh:
#   edgews-wss  `edgews echo --tls-cert cert.pem --tls-key key.pem`
#   edgews-ws   `edgews echo` (plain: what TLS adds)
#   peer-wss    `edgews-peers tokio-websockets-tls` (same PEM files)
#   peer-ws     `edgews-peers tokio-websockets` (the peer's own plain cost)
# The certificates are made fresh for each run by examples/tls_cert.rs
# (a test CA and an ECDSA P-256 leaf for 127.0.0.1) in a temporary folder.
#
# Prints three markdown tables:
#
# 1. Echo: `edgews load echo --json` (wss:// with --ca-file, binary
#    payloads, pipeline 1) at each of SIZES with CONNECTIONS connections,
#    all four servers up at once, rounds interleaved across servers: msg/s,
#    the server's CPU over the measured window (utime+stime from
#    /proc/PID/task/*/schedstat, nanoseconds), messages per server CPU-second with its ratio to
#    edgews-wss and, per server, wss:// over ws:// (the share of the
#    per-message rate TLS leaves).
# 2. Handshakes: `edgews-peers handshake-load` (benches/peers/src/
#    handshake_load.rs) with HS_PARALLEL threads for HS_DURATION seconds
#    per round: each connection is TCP connect, a full TLS 1.3 handshake
#    (client resumption off; X25519, ECDSA P-256 certificate), the
#    upgrade, a close frame each way, the server's end of the stream, then
#    a reset (SO_LINGER 0, so no TIME_WAIT piles up). The server's CPU is
#    read before the client starts and after it exits (the server is idle
#    otherwise): connections per server CPU-second, and server CPU time
#    per connection.
# 3. Memory: server RSS growth per connection read by `edgews load idle
#    --connections MEM_CONNECTIONS --server-pid PID` (WARMUP_CONNECTIONS
#    opened and settled first, not counted), a fresh server per reading,
#    idle and after one message of each of SENDS (`--send SIZE`: each
#    connection sends one text message, gets its echo, then idles).
#
# A run that exits non-zero or reports errors is shown as FAIL with its
# reason; the script then exits 1. Every tool runs under `timeout`.
#
# Environment:
#   SIZES="20 1KiB 64KiB"  echo message sizes
#   CONNECTIONS=100        echo connections
#   DURATION=5s, WARMUP=1s measured and unmeasured time of an echo round
#   ROUNDS=3               echo rounds per server and size (medians)
#   HS_PARALLEL=4, HS_DURATION=4, HS_ROUNDS=3   handshake load
#   MEM_CONNECTIONS=2000, WARMUP_CONNECTIONS=100, MEM_ROUNDS=2, SENDS="1KiB 64KiB"
#   BASE_PORT=19600        servers listen on BASE_PORT, BASE_PORT+1, ...
#   OUT_DIR=target/tls     raw JSON lines, logs and the tables go here
#   SKIP_BUILD=0           1: use the binaries as they are
#   EDGEWS, PEERS, TLS_CERT  the binaries (default target/release/edgews,
#                          target/release/edgews-peers and
#                          target/release/examples/tls_cert; CARGO_TARGET_DIR
#                          honoured). They are copied before the first
#                          server starts, so a rebuild during the run
#                          changes nothing.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

cd_root

read -r -a SIZES <<<"${SIZES:-20 1KiB 64KiB}"
CONNECTIONS=${CONNECTIONS:-100}
DURATION=${DURATION:-5s}
WARMUP=${WARMUP:-1s}
ROUNDS=${ROUNDS:-3}
HS_PARALLEL=${HS_PARALLEL:-4}
HS_DURATION=${HS_DURATION:-4}
HS_ROUNDS=${HS_ROUNDS:-3}
MEM_CONNECTIONS=${MEM_CONNECTIONS:-2000}
WARMUP_CONNECTIONS=${WARMUP_CONNECTIONS:-100}
MEM_ROUNDS=${MEM_ROUNDS:-2}
read -r -a SENDS <<<"${SENDS:-1KiB 64KiB}"
BASE_PORT=${BASE_PORT:-19600}
SKIP_BUILD=${SKIP_BUILD:-0}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
case $TARGET in /*) ;; *) TARGET=$ROOT/$TARGET ;; esac
EDGEWS=${EDGEWS:-$TARGET/release/edgews}
PEERS=${PEERS:-$TARGET/release/edgews-peers}
TLS_CERT=${TLS_CERT:-$TARGET/release/examples/tls_cert}
OUT_DIR=${OUT_DIR:-$ROOT/target/tls}
MEM_HOLD=2s

DURATION_S=$(secs "$DURATION" whole)
WARMUP_S=$(secs "$WARMUP" whole)
[[ $ROUNDS =~ ^[1-9][0-9]*$ && $HS_ROUNDS =~ ^[0-9]+$ && $MEM_ROUNDS =~ ^[0-9]+$ ]] ||
    die "ROUNDS must be a positive integer, HS_ROUNDS and MEM_ROUNDS integers"
[[ $CONNECTIONS =~ ^[1-9][0-9]*$ && $MEM_CONNECTIONS =~ ^[1-9][0-9]*$ && $WARMUP_CONNECTIONS =~ ^[0-9]+$ ]] ||
    die "CONNECTIONS, MEM_CONNECTIONS and WARMUP_CONNECTIONS must be integers"
[[ $HS_PARALLEL =~ ^[1-9][0-9]*$ && $HS_DURATION =~ ^[1-9][0-9]*$ ]] ||
    die "HS_PARALLEL and HS_DURATION (seconds) must be positive integers"
# The server-CPU window of an echo round: from 300 ms after the loader's
# warm-up to 700 ms before its end; a window that overruns is discarded.
CPU_WINDOW_MS=$(( DURATION_S >= 3 ? DURATION_S * 1000 - 1000 : DURATION_S * 500 ))
CPU_WINDOW=$(ms_to_s "$CPU_WINDOW_MS")
ECHO_LIMIT=$(( WARMUP_S + DURATION_S + 60 ))
HS_LIMIT=$(( HS_DURATION + 60 ))
MEM_LIMIT=$(( $(secs "$MEM_HOLD" whole) + 180 ))
CLK_TCK=$(getconf CLK_TCK)

need_tools taskset python3 ss timeout sha256sum pgrep
(( $(nproc) >= 2 )) || die "needs two CPUs (servers on 0, load on 1)"

need_fds $(( MEM_CONNECTIONS + WARMUP_CONNECTIONS + 1000 ))

if [[ $SKIP_BUILD != 1 ]]; then
    echo "== building (release)"
    cargo build --release -p edgews-peers
    cargo build --release --bin edgews --example tls_cert
fi
for b in "$EDGEWS" "$PEERS" "$TLS_CERT"; do
    [[ -x $b ]] || die "no $b (build it, or set EDGEWS / PEERS / TLS_CERT)"
done

out_files tls

# --- processes we start, stopped on any exit --------------------------------

# PID (the servers) and LOAD_PID; TMP, removed on exit
setup_processes

# Copies of the binaries (others may rebuild target/ meanwhile), and the
# certificates.
mkdir -p "$TMP/bin"
cp "$EDGEWS" "$TMP/bin/edgews"
cp "$PEERS" "$TMP/bin/edgews-peers"
SUM_EDGEWS=$(short_sum "$TMP/bin/edgews")
SUM_PEERS=$(short_sum "$TMP/bin/edgews-peers")
EDGEWS_SRC=$EDGEWS PEERS_SRC=$PEERS
EDGEWS=$TMP/bin/edgews PEERS=$TMP/bin/edgews-peers
# One reactor (--workers 1), so the figures stay comparable with the
# single-threaded peers; builds from before --workers have only the one.
WORKERS_1=()
if has_workers_option "$EDGEWS"; then WORKERS_1=(--workers 1); fi
CERTS=$TMP/certs
"$TLS_CERT" "$CERTS" >/dev/null || die "$TLS_CERT could not write certificates"
CA=$CERTS/ca.pem
KEY_KIND=$(head -n1 "$CERTS/key.pem")

SERVERS=(edgews-wss peer-wss edgews-ws peer-ws)
declare -A SCHEME=([edgews-wss]=wss [peer-wss]=wss [edgews-ws]=ws [peer-ws]=ws)

# Starts server $1 on port $2, pinned to CPU 0.
start_server() {
    local name=$1 port=$2 log=$LOGS/$1.log
    listening "$port" && die "port $port is taken already (set BASE_PORT)"
    case $name in
        edgews-wss)
            EDGEWS_LOG=warn taskset -c 0 "$EDGEWS" echo --listen "127.0.0.1:$port" \
                "${WORKERS_1[@]}" --max-connections 20000 --ping-interval 0 \
                --tls-cert "$CERTS/cert.pem" --tls-key "$CERTS/key.pem" >>"$log" 2>&1 & ;;
        edgews-ws)
            EDGEWS_LOG=warn taskset -c 0 "$EDGEWS" echo --listen "127.0.0.1:$port" \
                "${WORKERS_1[@]}" --max-connections 20000 --ping-interval 0 >>"$log" 2>&1 & ;;
        peer-wss)
            taskset -c 0 "$PEERS" tokio-websockets-tls --listen "127.0.0.1:$port" \
                --tls-cert "$CERTS/cert.pem" --tls-key "$CERTS/key.pem" >>"$log" 2>&1 & ;;
        peer-ws)
            taskset -c 0 "$PEERS" tokio-websockets --listen "127.0.0.1:$port" >>"$log" 2>&1 & ;;
        *) die "unknown server $name" ;;
    esac
    PID[$name]=$!
    wait_port "${PID[$name]}" "$port" || die "$name did not come up on port $port; see $log"
}

url_of() { echo "${SCHEME[$1]}://127.0.0.1:$2/"; }

# CPU readings are `cpu_sample PID ns`: "UTIME STIME NS". The ticks are
# sampled (10 ms steps, and only ~20 of them in a round where the server is
# starved of CPU by other work), so CPU time is taken from schedstat (NS)
# and the ticks give only the user share.

FAILED=0

# One echo round against server $1 on port $2 at size $3, round $4.
run_echo() {
    local name=$1 port=$2 size=$3 rnd=$4 rc=0 spid out cpu0= cpu1= lcpu0= lcpu1= t0= t1= tl lpid
    spid=${PID[$name]}
    out=$TMP/echo.out
    : >"$out"
    timeout -k 5 "$ECHO_LIMIT" taskset -c 1 "$EDGEWS" load echo --json --ca-file "$CA" \
        --url "$(url_of "$name" "$port")" --connections "$CONNECTIONS" --size "$size" \
        --pipeline 1 --duration "$DURATION" --warmup "$WARMUP" >"$out" 2>"$TMP/echo.err" &
    LOAD_PID=$!
    tl=$EPOCHREALTIME
    sleep "$WARMUP_S.3"
    lpid=$(pgrep -P "$LOAD_PID" | head -n1 || true)
    if cpu_sample "$spid" ns; then cpu0=$SAMPLE; fi
    if [[ -n $lpid ]] && cpu_sample "$lpid" ns; then lcpu0=$SAMPLE; fi
    t0=$EPOCHREALTIME
    sleep "$CPU_WINDOW"
    if cpu_sample "$spid" ns; then cpu1=$SAMPLE; fi
    if [[ -n $lpid ]] && cpu_sample "$lpid" ns; then lcpu1=$SAMPLE; fi
    t1=$EPOCHREALTIME
    if ! running "$LOAD_PID" || overran "$tl" "$t1" "$(( WARMUP_S + DURATION_S ))"; then
        echo "    (readings discarded: the window ran past the loader's measured time)"
        cpu0= cpu1=
    fi
    wait "$LOAD_PID" || rc=$?
    LOAD_PID=
    py_run "$RAW" "$name" "$size" "$rnd" "$rc" "$out" "$TMP/echo.err" "$CLK_TCK" \
        "$cpu0" "$cpu1" "$t0" "$t1" "$CONNECTIONS" "$lcpu0" "$lcpu1" <<'EOF' || FAILED=1
(raw, name, size, rnd, rc, out, err, tck, cpu0, cpu1, t0, t1, conns, lcpu0, lcpu1) = sys.argv[1:16]
rc, tck, conns = int(rc), int(tck), int(conns)
load, why = read_load(out, rc)
echo_why(load, why, conns)
errtail = err_tail(err)
window = float(t1.replace(",", ".")) - float(t0.replace(",", "."))
cpu = None
if cpu0 and cpu1 and window > 0:
    u0, s0, n0 = map(int, cpu0.split()); u1, s1, n1 = map(int, cpu1.split())
    cpu = {"window_s": round(window, 3), "cpu_s": (n1 - n0) / 1e9,
           "user_s": (u1 - u0) / tck, "sys_s": (s1 - s0) / tck}
    if lcpu0 and lcpu1:
        u0, s0, n0 = map(int, lcpu0.split()); u1, s1, n1 = map(int, lcpu1.split())
        cpu["load_cpu_s"] = (n1 - n0) / 1e9
append(raw, {"test": "echo", "server": name, "size": size, "round": int(rnd), "exit": rc,
             "ok": not why, "why": "; ".join(why), "load": load, "cpu": cpu, "stderr_tail": errtail})
line = f"  round {rnd}  {name:<11} {size:>6}  "
if load:
    line += f'{load["msg_per_s"]:>8,} msg/s  errors {load["errors"]}'
if cpu:
    c = cpu["cpu_s"]
    line += f'  server CPU {c:.3f} s / {window:.2f} s'
    if "load_cpu_s" in cpu:
        line += f' (loader {cpu["load_cpu_s"]:.3f} s)'
    if load and c > 0:
        line += f'  {load["msg_per_s"] * window / c:,.0f} msg/CPU-s'
else:
    line += "  server CPU n/a (readings discarded)"
finish(line, why, errtail)
EOF
}

# One handshake round against server $1 on port $2, round $3.
run_hs() {
    local name=$1 port=$2 rnd=$3 rc=0 spid out cpu0= cpu1= t0 t1
    spid=${PID[$name]}
    out=$TMP/hs.out
    : >"$out"
    if cpu_sample "$spid" ns; then cpu0=$SAMPLE; fi
    t0=$EPOCHREALTIME
    timeout -k 5 "$HS_LIMIT" taskset -c 1 "$PEERS" handshake-load --url "$(url_of "$name" "$port")" \
        --ca-file "$CA" --parallel "$HS_PARALLEL" --duration "$HS_DURATION" >"$out" 2>"$TMP/hs.err" || rc=$?
    t1=$EPOCHREALTIME
    if cpu_sample "$spid" ns; then cpu1=$SAMPLE; fi
    # Whatever the server still holds open after the client is gone
    # (none expected: every connection was closed both ways).
    local left
    left=$(ss -Htn state established "sport = :$port" | wc -l)
    py_run "$RAW" "$name" "$rnd" "$rc" "$out" "$TMP/hs.err" "$CLK_TCK" "$cpu0" "$cpu1" "$t0" "$t1" "$left" <<'EOF' || FAILED=1
(raw, name, rnd, rc, out, err, tck, cpu0, cpu1, t0, t1, left) = sys.argv[1:13]
rc, tck = int(rc), int(tck)
load, why = read_load(out, rc, who="client")
if load is not None:
    if load.get("errors", 1):
        why.append(f'{load.get("errors")} errors (first: {load.get("first_error")})')
    if load.get("handshakes", 0) <= 0:
        why.append("no connections completed")
errtail = err_tail(err)
window = float(t1.replace(",", ".")) - float(t0.replace(",", "."))
cpu = None
if cpu0 and cpu1:
    u0, s0, n0 = map(int, cpu0.split()); u1, s1, n1 = map(int, cpu1.split())
    cpu = {"window_s": round(window, 3), "cpu_s": (n1 - n0) / 1e9,
           "user_s": (u1 - u0) / tck, "sys_s": (s1 - s0) / tck}
append(raw, {"test": "handshake", "server": name, "round": int(rnd), "exit": rc, "ok": not why,
             "why": "; ".join(why), "load": load, "cpu": cpu, "left_open": int(left), "stderr_tail": errtail})
line = f"  round {rnd}  {name:<11} "
if load:
    line += f'{load["handshakes"]:>7,} connections in {load["elapsed_s"]:.2f} s ({load["per_s"]:,.0f}/s, p50 {load["p50_us"]} us)  errors {load["errors"]}'
if cpu:
    c = cpu["cpu_s"]
    line += f'  server CPU {c:.3f} s'
    if load and c > 0:
        line += f'  {load["handshakes"] / c:,.0f}/CPU-s'
if int(left):
    line += f"  ({left} still open)"
finish(line, why, errtail)
EOF
}

# --- the machine ---------------------------------------------------------------

REV=$(revision "working tree has local changes")
CPU=$(cpu_model)
LOAD_START=$(load_avg)
BUSY_START=$(busy_share)
top_snapshot "$LOGS/top-start.txt"
HEADER=$(cat <<EOF
date:     $(date -u '+%Y-%m-%d %H:%M:%S UTC')
commit:   $REV
binaries: $EDGEWS_SRC ($SUM_EDGEWS), $PEERS_SRC ($SUM_PEERS)
machine:  $(nproc) CPUs, $CPU; kernel $(uname -r)
pinning:  servers on CPU 0, load tools on CPU 1; loopback
certs:    examples/tls_cert.rs: test CA + leaf for 127.0.0.1 (ECDSA P-256; key file "$KEY_KIND")
echo:     ${SIZES[*]} x $CONNECTIONS connections, binary, pipeline 1, $ROUNDS round(s) x $DURATION (warm-up $WARMUP), CPU window ${CPU_WINDOW} s
handshake: edgews-peers handshake-load, $HS_PARALLEL threads x ${HS_DURATION} s, $HS_ROUNDS round(s); full handshakes (no resumption)
memory:   $MEM_CONNECTIONS measured connections after $WARMUP_CONNECTIONS warm-up ones, fresh server each, $MEM_ROUNDS round(s); idle and --send ${SENDS[*]}
EOF
)
echo "$HEADER"
echo "load average at start: $LOAD_START; CPUs busy over the last second: $BUSY_START"

declare -A PORT=()
i=0
for s in "${SERVERS[@]}"; do
    PORT[$s]=$(( BASE_PORT + i ))
    i=$(( i + 1 ))
done
MEM_PORT=$(( BASE_PORT + i ))

# --- echo and handshakes ------------------------------------------------------------

echo "== echo: all servers up, rounds interleaved"
for s in "${SERVERS[@]}"; do start_server "$s" "${PORT[$s]}"; done
for rnd in $(seq "$ROUNDS"); do
    for size in "${SIZES[@]}"; do
        for s in "${SERVERS[@]}"; do
            run_echo "$s" "${PORT[$s]}" "$size" "$rnd"
        done
    done
done
if (( HS_ROUNDS > 0 )); then
    echo "== handshakes: connect, TLS, upgrade, close, rounds interleaved"
    for rnd in $(seq "$HS_ROUNDS"); do
        for s in "${SERVERS[@]}"; do
            run_hs "$s" "${PORT[$s]}" "$rnd"
        done
    done
fi
for s in "${SERVERS[@]}"; do
    # RSS after all that, for the record (a server that kept what it
    # once needed shows here).
    rss=$(awk '/^VmRSS/ { print $2 }' "/proc/${PID[$s]}/status" 2>/dev/null || echo "?")
    echo "  $s: VmRSS ${rss} kB after echo and handshakes"
    python3 -c 'import json,sys; print(json.dumps({"test":"rss_after","server":sys.argv[1],"kB":sys.argv[2]}))' "$s" "$rss" >>"$RAW"
    stop_server "$s"
done

# --- memory per connection ---------------------------------------------------------

if (( MEM_ROUNDS > 0 )); then
    echo "== memory: a fresh server per reading"
    for rnd in $(seq "$MEM_ROUNDS"); do
        for s in "${SERVERS[@]}"; do
            for send in 0 "${SENDS[@]}"; do
                run_mem "$s" "$MEM_PORT" "$send" "$rnd" 11 --ca-file "$CA" --url "$(url_of "$s" "$MEM_PORT")"
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
    python3 - "$RAW" "${SENDS[*]}" "${SERVERS[*]}" <<'EOF'
import json, statistics, sys
raw, sends, servers = sys.argv[1], sys.argv[2].split(), sys.argv[3].split()
recs = [json.loads(l) for l in open(raw)]
fmt = lambda n: f"{n:,.0f}"
med = statistics.median
label = {"edgews-wss": "**edgews** wss://", "peer-wss": "tokio-websockets + tokio-rustls wss://",
         "edgews-ws": "edgews ws://", "peer-ws": "tokio-websockets ws://"}
plain = {"edgews-wss": "edgews-ws", "peer-wss": "peer-ws"}

def span(xs):
    return f" [{fmt(min(xs))}..{fmt(max(xs))}]" if len(xs) > 1 else ""

def failed(rs):
    bad = [r for r in rs if not r["ok"]]
    return "; ".join(f'r{r["round"]}: {r["why"]}' for r in bad) or "0"

echo = [r for r in recs if r["test"] == "echo"]
if echo:
    sizes = []
    for r in echo:
        if r["size"] not in sizes:
            sizes.append(r["size"])
    def mpc(r):
        c = r.get("cpu")
        if not (r["ok"] and r.get("load") and c and c["cpu_s"] > 0):
            return None
        return r["load"]["msg_per_s"] * c["window_s"] / c["cpu_s"]
    def cell(s, size):
        rs = [r for r in echo if r["server"] == s and r["size"] == size]
        m = [x for x in (mpc(r) for r in rs) if x]
        return rs, m
    print("**Echo** (`edgews load echo --json`, binary, pipeline 1): medians of the rounds. "
          "msg / server CPU-s = messages echoed per second of server CPU (time on CPU over the window, from schedstat; "
          "usr share from the utime/stime ticks of all rounds pooled) "
          "[min..max]; ÷ edgews wss = that over edgews wss://'s; wss ÷ ws = a server's wss:// figure over its own "
          "ws:// figure (what share of the plain per-message rate is left with TLS).")
    print()
    print("| size | server | msg/s | server CPU % | usr share | msg / server CPU-s | ÷ edgews wss | wss ÷ ws | loader CPU % | failed rounds |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for size in sizes:
        _, base = cell("edgews-wss", size)
        base_m = med(base) if base else None
        for s in servers:
            rs, m = cell(s, size)
            good = [r for r in rs if r["ok"]]
            if not good:
                print(f"| {size} | {label[s]} | FAIL | | | | | | | {failed(rs)} |")
                continue
            rate = med(r["load"]["msg_per_s"] for r in good)
            cs = [r["cpu"] for r in good if r.get("cpu")]
            pct = [100 * c["cpu_s"] / c["window_s"] for c in cs]
            us, tot = sum(c["user_s"] for c in cs), sum(c["user_s"] + c["sys_s"] for c in cs)
            lp = [100 * c["load_cpu_s"] / c["window_s"] for c in cs if "load_cpu_s" in c]
            mm = med(m) if m else None
            vs = f"{mm / base_m:.2f}" if mm and base_m else "n/a"
            tw = "—"
            if s in plain:
                _, pm = cell(plain[s], size)
                tw = f"{mm / med(pm):.2f}" if mm and pm else "n/a"
            print(f"| {size} | {label[s]} | {fmt(rate)} | {f'{med(pct):.0f}' if pct else 'n/a'} | "
                  f"{(100 * us / tot) if tot else 0:.0f}% | {fmt(mm) + span(m) if mm else 'n/a'} | {vs} | {tw} | "
                  f"{f'{med(lp):.0f}' if lp else 'n/a'} | {failed(rs)} |")
    print()

hs = [r for r in recs if r["test"] == "handshake"]
if hs:
    def per(r):
        c = r.get("cpu")
        if not (r["ok"] and c and c["cpu_s"] > 0):
            return None
        return r["load"]["handshakes"] / c["cpu_s"]
    print("**Connections** (`edgews-peers handshake-load`: TCP connect, full TLS 1.3 handshake for wss://, upgrade, "
          "close both ways, reset; parallel client threads on CPU 1): medians of the rounds. "
          "per server CPU-s = connections completed / server CPU time (schedstat) over the client's whole run "
          "[min..max]; µs = server CPU per connection.")
    print()
    print("| server | connections/s | p50 latency | server CPU % | usr share | connections / server CPU-s | server µs / connection | ÷ edgews wss | wss ÷ ws | failed rounds |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    b = [x for x in (per(r) for r in hs if r["server"] == "edgews-wss") if x]
    bm = med(b) if b else None
    for s in servers:
        rs = [r for r in hs if r["server"] == s]
        good = [r for r in rs if r["ok"] and r.get("cpu")]
        if not good:
            print(f"| {label[s]} | FAIL | | | | | | | | {failed(rs)} |")
            continue
        m = [x for x in (per(r) for r in good) if x]
        mm = med(m)
        cs = [r["cpu"] for r in good]
        us, tot = sum(c["user_s"] for c in cs), sum(c["user_s"] + c["sys_s"] for c in cs)
        tw = "—"
        if s in plain:
            pm = [x for x in (per(r) for r in hs if r["server"] == plain[s]) if x]
            tw = f"{mm / med(pm):.2f}" if pm else "n/a"
        print(f"| {label[s]} | {fmt(med(r['load']['per_s'] for r in good))} | "
              f"{fmt(med(r['load']['p50_us'] for r in good))} µs | "
              f"{med(100 * c['cpu_s'] / c['window_s'] for c in cs):.0f} | {(100 * us / tot) if tot else 0:.0f}% | "
              f"{fmt(mm)}{span(m)} | {1e6 / mm:,.0f} | {f'{mm / bm:.2f}' if bm else 'n/a'} | {tw} | {failed(rs)} |")
    print()

mem = [r for r in recs if r["test"] == "mem"]
if mem:
    def cell(s, sd):
        rs = [r for r in mem if r["server"] == s and r["send"] == sd]
        return rs, [r["load"]["bytes_per_connection"] for r in rs if r["ok"]]
    n = next((r["load"]["connections"] for r in mem if r.get("load")), "?")
    print(f"**Memory per connection**: server RSS growth per connection over {n:,} connections (after the "
          f"warm-up ones), a fresh server per reading, median of the rounds [min..max]; \"TLS adds\" = that minus the "
          f"same server's ws:// figure in the same state. Target for edgews wss:// idle: at most 16 KiB (16,384 B).")
    print()
    print("| server | idle, B/conn | TLS adds | " + " | ".join(f"after one {sd} message, B/conn | TLS adds" for sd in sends) + " |")
    print("|---|" + "---:|---:|" * (1 + len(sends)))
    for s in servers:
        cells = []
        for sd in ["0"] + sends:
            rs, good = cell(s, sd)
            if not rs:
                cells += ["not run", "-"]
                continue
            if not good:
                cells += [f"FAIL: {failed(rs)}", "-"]
                continue
            m = med(good)
            cells.append(f"{fmt(m)}{span(good)}" + (f" ({len(rs) - len(good)} FAILED)" if len(rs) > len(good) else ""))
            if s in plain:
                _, pg = cell(plain[s], sd)
                cells.append(f"{m - med(pg):+,.0f}" if pg else "n/a")
            else:
                cells.append("—")
        print(f"| {label[s]} | " + " | ".join(cells) + " |")
    print()
rss = [r for r in recs if r["test"] == "rss_after"]
if rss:
    print("Server VmRSS after the echo and handshake rounds (all sizes, all connections closed): " +
          ", ".join(f'{label[r["server"]]} {r["kB"]} kB' for r in rss) + ".")
    print()
EOF
    echo "raw results: $RAW; server logs: $LOGS"
} | tee "$TABLE"

exit_if_failed
