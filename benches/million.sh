#!/usr/bin/env bash
# A million connections: by simulation, and for real as far as this machine
# allows (a process may hold 20,000 descriptors here).
#
#   bash benches/million.sh                  # everything, ~2.5 min
#   PARTS=real bash benches/million.sh       # the real idle test only, ~40 s
#   SKIP_BUILD=1 bash benches/million.sh     # the binaries as they are
#
# Parts (PARTS, default "sim real"):
#   sim    `cargo bench -p edgews --bench million`: the reactor's
#          per-connection state (slab slots, timers, clock, engine) for
#          10,000, 100,000 and 1,000,000 simulated connections without
#          sockets: bytes per connection, and CPU per connection per
#          heartbeat interval with its ratio to the 10,000 figure, for the
#          old timer heap and the timer wheel (benches/million.rs says how).
#   real   IDLE_CONNECTIONS (19,000) real idle connections over loopback:
#          `edgews echo --workers 1 --max-connections 20000 --ping-interval
#          PING_INTERVAL` pinned to CPU 0, `edgews load idle` pinned to CPU 1
#          (which answers every ping). Reports:
#          - the server's memory per connection (its VmRSS growth over the
#            connections, as `load idle` reads it);
#          - its CPU (utime + stime, /proc/PID/stat, and its time on CPU from
#            /proc/PID/task/*/schedstat) over CPU_WINDOW with every
#            connection open and nothing but heartbeats going on, as
#            microseconds per connection per ping interval;
#          - the kernel's side: /proc/net/sockstat (TCP inuse, mem in pages)
#            and the Slab line of /proc/meminfo before the connections and
#            with them all open, the slab caches a socket lives in
#            (/proc/slabinfo, when readable), and one server-side socket's
#            skmem (`ss -tm`). Both ends are on this machine: the loopback
#            client's sockets are counted too, so per connection the kernel
#            figures cover two sockets (the tables say so).
#
# Environment:
#   PARTS="sim real"  IDLE_CONNECTIONS=19000  PING_INTERVAL=1s
#   CPU_WINDOW=20s    PORT=19400              SKIP_BUILD=0
# Output: the tables on stdout, and target/million/million-STAMP.{txt,jsonl}
# (the JSON records: the simulation's line, then the real test's).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

cd_root

read -r -a PARTS <<<"${PARTS:-sim real}"
IDLE_CONNECTIONS=${IDLE_CONNECTIONS:-19000}
PING_INTERVAL=${PING_INTERVAL:-1s}
CPU_WINDOW=${CPU_WINDOW:-20s}
PORT=${PORT:-19400}
SKIP_BUILD=${SKIP_BUILD:-0}
WARMUP_CONNECTIONS=100

for p in "${PARTS[@]}"; do
    case $p in sim | real) ;; *) die "unknown part '$p' (PARTS: sim real)" ;; esac
done
has_part() { [[ " ${PARTS[*]} " == *" $1 "* ]]; }
[[ $IDLE_CONNECTIONS =~ ^[1-9][0-9]*$ ]] || die "IDLE_CONNECTIONS must be a positive integer"
PING_MS=$(msecs "$PING_INTERVAL")
(( PING_MS > 0 )) || die "PING_INTERVAL must be positive"
CPU_WINDOW_S=$(secs "$CPU_WINDOW" whole)
# the loader's hold: its 1 s settling, ours (2 s), the window, a margin
HOLD_S=$(( CPU_WINDOW_S + 8 ))
LOAD_LIMIT=$(( HOLD_S + 120 ))

TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
case $TARGET in /*) ;; *) TARGET=$ROOT/$TARGET ;; esac
EDGEWS=$TARGET/release/edgews
OUT_DIR=$ROOT/target/million
mkdir -p "$OUT_DIR"
STAMP=$(date +%Y%m%d-%H%M%S)
TABLE=$OUT_DIR/million-$STAMP.txt
RAW=$OUT_DIR/million-$STAMP.jsonl
: >"$RAW"

need_tools python3 timeout
if has_part real; then
    need_tools taskset ss
    (( $(nproc) >= 2 )) || die "the real test needs two CPUs (server on 0, load on 1)"
    # each process holds the connections' descriptors, and a few more
    need_fds $(( IDLE_CONNECTIONS + WARMUP_CONNECTIONS + 200 ))
fi

setup_processes
FAILED=0

{
    echo "# million: $(date -u +%Y-%m-%dT%H:%MZ), $(revision 'local changes'), $(cpu_model), $(nproc) CPUs"
    echo "# load average $(load_avg), busy $(busy_share) before the run"
} | tee "$TABLE"

# --- (a) the simulation ---------------------------------------------------------

if has_part sim; then
    echo "== sim: the reactor's per-connection state, simulated (cargo bench --bench million)" | tee -a "$TABLE"
    cargo bench -p edgews --bench million 2>"$TMP/bench.err" | tee "$TMP/bench.out" | tee -a "$TABLE" \
        || { tail -n 20 "$TMP/bench.err" >&2; die "the simulation benchmark failed"; }
    grep '^{"bench":"million"' "$TMP/bench.out" >>"$RAW" || die "the benchmark printed no JSON line"
fi

# --- (b) and (c): real idle connections -------------------------------------------

# The selected slab caches as "name active_objs objsize" lines (nothing if
# /proc/slabinfo cannot be read).
slab_caches() {
    awk '$1 ~ /^(TCP|TCPv6|tcp_bind_bucket|tcp_bind2_bucket|request_sock_TCP|sock_inode_cache|filp|dentry|eventpoll_epi|eventpoll_pwq|skbuff_head_cache|kmalloc-[0-9k]+)$/ { print $1, $2, $4 }' \
        /proc/slabinfo 2>/dev/null || true
}

# Writes the kernel's socket figures to file $1: sockstat's TCP line, the
# Slab line of meminfo, the slab caches.
kernel_reading() {
    {
        grep '^TCP:' /proc/net/sockstat
        grep '^Slab:' /proc/meminfo
        slab_caches
    } >"$1"
}

# The number of descriptors process $1 holds.
fd_count() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }

if has_part real; then
    if [[ $SKIP_BUILD != 1 ]]; then
        echo "building the release binary (cargo build --release --bin edgews)" >&2
        cargo build --release --bin edgews >&2
    fi
    [[ -x $EDGEWS ]] || die "no $EDGEWS (build it, or unset SKIP_BUILD)"
    listening "$PORT" && die "port $PORT is taken already (set PORT)"
    echo "== real: $IDLE_CONNECTIONS idle connections, ping every $PING_INTERVAL, server on CPU 0, loader on CPU 1" | tee -a "$TABLE"
    LOG=$OUT_DIR/million-$STAMP-server.log
    kernel_reading "$TMP/kernel.before"
    EDGEWS_LOG=warn taskset -c 0 "$EDGEWS" echo --listen "127.0.0.1:$PORT" --workers 1 \
        --max-connections 20000 --ping-interval "$PING_INTERVAL" >"$LOG" 2>&1 &
    PID[edgews]=$!
    wait_port "${PID[edgews]}" "$PORT" || die "the server did not come up on port $PORT; see $LOG"
    SERVER=${PID[edgews]}
    timeout -k 5 "$LOAD_LIMIT" taskset -c 1 "$EDGEWS" load idle --url "ws://127.0.0.1:$PORT/" \
        --connections "$IDLE_CONNECTIONS" --warmup-connections "$WARMUP_CONNECTIONS" \
        --duration "${HOLD_S}s" --server-pid "$SERVER" >"$TMP/load.out" 2>"$TMP/load.err" &
    LOAD_PID=$!
    # every connection open: the server holds their descriptors (and its own)
    want=$(( IDLE_CONNECTIONS + WARMUP_CONNECTIONS ))
    for _ in $(seq 600); do
        (( $(fd_count "$SERVER") >= want )) && break
        running "$LOAD_PID" || break
        sleep 0.1
    done
    (( $(fd_count "$SERVER") >= want )) || die "the server never held $want connections (see $TMP/load.err)"
    sleep 2 # the last handshakes' work done; from here on only heartbeats
    CLK_TCK=$(getconf CLK_TCK)
    cpu_sample "$SERVER" ns || die "cannot read the server's CPU time"
    CPU0="$SAMPLE $EPOCHREALTIME"
    kernel_reading "$TMP/kernel.after"
    ss -Htmn state established "sport = :$PORT" | head -n 2 >"$TMP/skmem" || true
    ss -Htn state established "sport = :$PORT" | wc -l >"$TMP/established"
    sleep "$CPU_WINDOW_S"
    cpu_sample "$SERVER" ns || die "cannot read the server's CPU time"
    CPU1="$SAMPLE $EPOCHREALTIME"
    RSS_KB=$(vmrss_kb "$SERVER")
    RC=0
    wait "$LOAD_PID" || RC=$?
    LOAD_PID=
    stop_server edgews
    py_run "$RAW" "$RC" "$TMP/load.out" "$TMP/load.err" "$IDLE_CONNECTIONS" "$PING_MS" \
        "$CLK_TCK" "$CPU0" "$CPU1" "$TMP/kernel.before" "$TMP/kernel.after" "$TMP/skmem" \
        "$(cat "$TMP/established")" "$RSS_KB" <<'EOF' | tee -a "$TABLE" || FAILED=1
raw, rc, out, err, conns, ping_ms, tck = sys.argv[1:8]
cpu0, cpu1, kb, ka, skmem, established, rss_kb = sys.argv[8:15]
rc, conns, ping_ms, tck = int(rc), int(conns), int(ping_ms), int(tck)
load, why = read_load(out, rc)
idle_why(load, why, conns)

u0, s0, n0, t0 = cpu0.split()
u1, s1, n1, t1 = cpu1.split()
window = float(t1.replace(",", ".")) - float(t0.replace(",", "."))
user = (int(u1) - int(u0)) / tck
system = (int(s1) - int(s0)) / tck
oncpu = (int(n1) - int(n0)) / 1e9
intervals = window * 1000 / ping_ms  # the period is the interval plus a loopback round trip
per = lambda secs: secs * 1e6 / (conns * intervals)

def reading(path):
    tcp, slab, caches = {}, None, {}
    for line in open(path):
        f = line.split()
        if f[0] == "TCP:":
            tcp = {f[i]: int(f[i + 1]) for i in range(1, len(f) - 1, 2)}
        elif f[0] == "Slab:":
            slab = int(f[1])
        elif len(f) == 3:
            caches[f[0]] = (int(f[1]), int(f[2]))
    return tcp, slab, caches

(tb, sb, cb), (ta, sa, ca) = reading(kb), reading(ka)
page = 4096
sockets = ta.get("inuse", 0) - tb.get("inuse", 0)
mem_pages = ta.get("mem", 0) - tb.get("mem", 0)
slab_bytes = (sa - sb) * 1024 if sa is not None and sb is not None else None
cache_rows = []
for name in sorted(ca):
    n1_, size = ca[name]
    grown = n1_ - cb.get(name, (0, size))[0]
    if grown > conns // 2:
        cache_rows.append((name, grown, size, grown * size))
cache_total = sum(r[3] for r in cache_rows)
sk = open(skmem).read().split("\n")

rec = {"test": "real-idle", "exit": rc, "ok": not why, "why": "; ".join(why),
       "connections": conns, "ping_interval_ms": ping_ms, "window_s": round(window, 3),
       "server_user_s": round(user, 3), "server_sys_s": round(system, 3), "server_oncpu_s": round(oncpu, 3),
       "us_per_conn_per_interval": round(per(user + system), 3),
       "us_per_conn_per_interval_oncpu": round(per(oncpu), 3),
       "server_rss_kb": int(rss_kb) if rss_kb.isdigit() else None,
       "server_bytes_per_conn": load and load.get("bytes_per_connection"),
       "established_server_side": int(established),
       "tcp_sockets_grown": sockets, "tcp_mem_pages_grown": mem_pages,
       "slab_bytes_grown": slab_bytes, "slab_caches": cache_rows,
       "skmem": [l.strip() for l in sk if l.strip()], "load": load}
append(raw, rec)

rss = f"; VmRSS {int(rss_kb):,} kB with them open" if rss_kb.isdigit() else ""
print(f"server memory: {rec['server_bytes_per_conn']:,} B per connection (VmRSS growth over {conns:,}, read by `load idle`){rss}" if load else "server memory: n/a")
print(f"server CPU over {window:.1f} s, {conns:,} connections pinged every {ping_ms} ms (~{intervals:.0f} intervals):")
print(f"  utime {user:.2f} s + stime {system:.2f} s = {100 * (user + system) / window:.1f}% of a core"
      f"; on CPU (schedstat) {oncpu:.3f} s")
print(f"  heartbeat: {per(user + system):.2f} us per connection per interval"
      f" (user {per(user):.2f}, kernel {per(system):.2f}; schedstat {per(oncpu):.2f})")
print(f"kernel, {conns:,} loopback connections = {sockets:,} TCP sockets (both ends; {int(established):,} server-side established):")
print(f"  sockstat TCP mem: {mem_pages:+,} pages ({mem_pages * page / 1024:+,.0f} KiB): buffer memory charged to TCP"
      f" = {mem_pages * page / max(sockets, 1):.0f} B per socket")
if slab_bytes is not None:
    print(f"  meminfo Slab: {slab_bytes / 1024:+,.0f} KiB = {slab_bytes / max(sockets, 1):,.0f} B per socket (the whole machine's slab: other activity counts)")
if cache_rows:
    print(f"  slab caches that grew by more than {conns // 2:,} objects (active objects x object size):")
    for name, grown, size, total in cache_rows:
        print(f"    {name:<20}{grown:>+9,} x {size:>5} B = {total / 1024:>9,.0f} KiB = {total / max(sockets, 1):>6,.0f} B per socket")
    print(f"    {'together':<20}{'':>21}{cache_total / 1024:>9,.0f} KiB = {cache_total / max(sockets, 1):>6,.0f} B per socket"
          f" = {cache_total / conns:,.0f} B per connection (both ends)")
for l in rec["skmem"]:
    print(f"  one server-side socket (ss -tm): {l}")
finish("real idle test done", why, err_tail(err))
EOF
fi

echo "tables: $TABLE; records: $RAW"
exit_if_failed
