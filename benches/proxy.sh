#!/usr/bin/env bash
# WebSocket reverse proxies, nginx against `edgews proxy`: the proxy's CPU
# per relayed message and the latency the hop adds, in one run, beside the
# floor of what any proxy costs here. Loopback only; about 4 minutes at the
# defaults (plus the build, if one is needed).
#
#   bash benches/proxy.sh
#   ROUNDS=1 DURATION=2s bash benches/proxy.sh          # a quick try, about a minute
#   SKIP_BUILD=1 EDGEWS=/tmp/x/edgews bash benches/proxy.sh
#
# What runs, pinned as benches/compare.sh pins a server and its load:
#   upstream  `edgews echo --workers 1`, on CPU 1
#   nginx     worker_processes 1, master and worker on CPU 0, proxying to
#             the upstream with deploy/nginx-edgews.conf's proxy directives
#             (HTTP/1.1, Upgrade and Connection, proxy_buffering off; no
#             TLS). nginx relays an upgraded connection through one buffer
#             of proxy_buffer_size each way, by default a page (4 KiB): a
#             64 KiB message takes 16 reads and writes each way
#             (NGINX_EXTRA below changes it)
#   edgews    `edgews proxy --workers 1 --upstream ws://...`, on CPU 0
#   floor     `edgews-peers relay-floor --upstream ...`, on CPU 0: no proxy
#             but a yardstick (benches/peers/src/relay_floor.rs), as
#             `floor` is in benches/compare.sh. A plain TCP relay on one
#             thread and one edge-triggered epoll loop: one read and one
#             write per chunk of up to 64 KiB, TCP_NODELAY, no parsing (the
#             upgrade and the frames pass as bytes), no timers, no limits.
#             Its µs/msg is what any WebSocket proxy must spend in the
#             kernel on this machine: the bound on nginx and edgews
#   load      `edgews load echo` (pipeline 1, binary), on CPU 1, through
#             nginx, through edgews proxy, through the floor, and straight
#             to the upstream ("direct", the baseline for latency)
# For each of SETTINGS (connections:size), ROUNDS rounds, interleaved:
# nginx, edgews, floor, direct, then the next setting, then the next round.
# The proxies stay up throughout (an idle one blocks in epoll and costs
# nothing).
#
# Per round: the loader's msg/s and round-trip p50/p99 over its measured
# DURATION (after WARMUP), and the proxy's CPU time over that window: time
# on CPU of all its threads (/proc/PID/task/*/schedstat; nginx: master and
# worker added up), read WARMUP after the loader starts and DURATION minus
# 200 ms later. A message is one round trip, so the proxy relays it twice:
# to the upstream, and the echo back.
#
# How to read the table (medians of the rounds):
#   msg/s         round trips per second. The upstream and the loader share
#                 CPU 1, which is often the limit: compare µs/msg, not msg/s.
#   proxy CPU     the proxy's use of CPU 0; near 100%, the proxy was the limit
#   µs/msg        proxy CPU time per message (both directions): its cost
#   edgews/nginx  the ratio of µs/msg: below 1, edgews proxy is cheaper
#   /floor        the ratio of µs/msg to the floor row of the same setting:
#                 1 would be a proxy whose own code cost nothing; what is
#                 over 1 is the proxy's own work (and the kernel work it
#                 adds: more reads, writes and epoll calls than the floor's)
#   p50, p99      round-trip latency in µs; +p50 and +p99: over the direct
#                 row of the same setting, i.e. what the proxy hop adds
#
# `edgews proxy` comes with issue 18: with a binary that lacks it, the
# edgews rows are skipped (said so) and the rest runs; so are the floor rows
# without an edgews-peers binary that has `relay-floor`. A run that fails
# (loader exit status, errors, missing connections, a dead proxy) shows as
# FAILED and the script exits 1. Every process started here is stopped on
# exit. Raw JSON lines, logs and the table go to OUT_DIR (target/proxy).
#
# Environment:
#   SETTINGS="100:20 100:1KiB 10:64KiB"   connections:size
#   ROUNDS=3, DURATION=5s, WARMUP=1s
#   TARGETS="nginx edgews floor direct"   rows, in this order each round
#   PROXY_ARGS=""          more flags for `edgews proxy`
#   NGINX_EXTRA=""         more directives for nginx's location block, e.g.
#                          'proxy_buffer_size 64k; proxy_buffers 4 64k; proxy_busy_buffers_size 128k;'
#   BASE_PORT=19800        ports BASE_PORT..BASE_PORT+3 on 127.0.0.1
#   SKIP_BUILD=0           1: use the binaries as they are
#   EDGEWS                 default target/release/edgews (CARGO_TARGET_DIR
#                          honoured); copied before anything starts
#   PEERS                  the floor's binary, default
#                          target/release/edgews-peers; copied as EDGEWS is
#   NGINX                  default nginx on PATH or /usr/sbin/nginx
#                          (scripts/install-nginx.sh installs Debian's)
set -euo pipefail
. "$(dirname "$0")/lib.sh"

cd_root

read -r -a SETTINGS <<<"${SETTINGS:-100:20 100:1KiB 10:64KiB}"
read -r -a TARGETS <<<"${TARGETS:-nginx edgews floor direct}"
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5s}
WARMUP=${WARMUP:-1s}
PROXY_ARGS=${PROXY_ARGS:-}
NGINX_EXTRA=${NGINX_EXTRA:-}
BASE_PORT=${BASE_PORT:-19800}
SKIP_BUILD=${SKIP_BUILD:-0}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
case $TARGET in /*) ;; *) TARGET=$ROOT/$TARGET ;; esac
EDGEWS=${EDGEWS:-$TARGET/release/edgews}
PEERS=${PEERS:-$TARGET/release/edgews-peers}
NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
OUT_DIR=${OUT_DIR:-$ROOT/target/proxy}

UP_PORT=$BASE_PORT
NGINX_PORT=$(( BASE_PORT + 1 ))
PROXY_PORT=$(( BASE_PORT + 2 ))
FLOOR_PORT=$(( BASE_PORT + 3 ))

[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer"
[[ $BASE_PORT =~ ^[1-9][0-9]*$ ]] || die "BASE_PORT must be a port number"
for s in "${SETTINGS[@]}"; do
    [[ $s =~ ^[1-9][0-9]*:[0-9]+(B|KiB|MiB)?$ ]] || die "SETTINGS are CONNECTIONS:SIZE (got '$s')"
done
for t in "${TARGETS[@]}"; do
    [[ $t == nginx || $t == edgews || $t == floor || $t == direct ]] ||
        die "TARGETS are nginx, edgews, floor, direct (got '$t')"
done
LIMIT=$(( $(secs "$WARMUP") + $(secs "$DURATION") + 60 ))
WARMUP_S=$(ms_to_s "$(msecs "$WARMUP")")
WINDOW_MS=$(( $(msecs "$DURATION") - 200 ))
(( WINDOW_MS >= 500 )) || die "DURATION must be at least 700ms"
WINDOW_S=$(ms_to_s "$WINDOW_MS")

need_tools taskset python3 ss timeout pgrep sha256sum
(( $(nproc) >= 2 )) || die "needs two CPUs (proxies on 0, upstream and load on 1)"
[[ -x $NGINX ]] || die "no nginx at $NGINX (scripts/install-nginx.sh installs Debian's, or set NGINX)"
need_fds 4096

if [[ $SKIP_BUILD != 1 ]]; then
    echo "== building (release)"
    cargo build --release --bin edgews
    if [[ " ${TARGETS[*]} " == *" floor "* ]]; then cargo build --release -p edgews-peers; fi
fi
[[ -x $EDGEWS ]] || die "no $EDGEWS (cargo build --release, or set EDGEWS)"

out_files proxy

# --- processes we start, stopped on any exit ----------------------------------

# PID: upstream, nginx (its master), edgews; LOAD_PID; TMP, removed on exit
setup_processes

mkdir -p "$TMP/bin"
cp "$EDGEWS" "$TMP/bin/edgews"
SUM_EDGEWS=$(short_sum "$TMP/bin/edgews")
EDGEWS_SRC=$EDGEWS
EDGEWS=$TMP/bin/edgews

# Drops row $1 from TARGETS, adding $2 to SKIPPED.
skip_row() {
    local t kept=()
    for t in "${TARGETS[@]}"; do [[ $t == "$1" ]] || kept+=("$t"); done
    TARGETS=("${kept[@]}")
    SKIPPED+="${SKIPPED:+; }$2"
}

SKIPPED=
if [[ " ${TARGETS[*]} " == *" edgews "* ]] && ! "$EDGEWS" proxy --help >/dev/null 2>&1; then
    skip_row edgews "edgews rows skipped: this binary has no \`edgews proxy\` mode"
fi
FLOOR_DESC="not run"
if [[ " ${TARGETS[*]} " == *" floor "* ]]; then
    if [[ -x $PEERS ]] && "$PEERS" relay-floor --help >/dev/null 2>&1; then
        cp "$PEERS" "$TMP/bin/edgews-peers"
        FLOOR_DESC="$PEERS relay-floor (sha256 $(short_sum "$TMP/bin/edgews-peers"))"
        PEERS=$TMP/bin/edgews-peers
    else
        skip_row floor "floor rows skipped: no $PEERS with \`relay-floor\` (cargo build --release -p edgews-peers, or set PEERS)"
    fi
fi

# Dies if something listens on port $1 already.
port_free() { ! listening "$1" || die "port $1 is taken already (set BASE_PORT)"; }

start_upstream() {
    port_free "$UP_PORT"
    EDGEWS_LOG=warn taskset -c 1 "$EDGEWS" echo --listen "127.0.0.1:$UP_PORT" --workers 1 \
        --max-connections 20000 --ping-interval 0 >>"$LOGS/upstream.log" 2>&1 &
    PID[upstream]=$!
    wait_port "${PID[upstream]}" "$UP_PORT" || die "the upstream did not come up; see $LOGS/upstream.log"
}

# nginx in the foreground (so that its master is our child), one worker,
# everything it writes inside TMP and LOGS.
start_nginx() {
    local d=$TMP/nginx
    mkdir -p "$d"
    cat >"$d/nginx.conf" <<EOF
worker_processes 1;
pid $d/nginx.pid;
error_log $LOGS/nginx-error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $d/client_body;
    proxy_temp_path $d/proxy;
    fastcgi_temp_path $d/fastcgi;
    uwsgi_temp_path $d/uwsgi;
    scgi_temp_path $d/scgi;
    map \$http_upgrade \$connection_upgrade {
        default upgrade;
        ''      close;
    }
    upstream edgews {
        server 127.0.0.1:$UP_PORT;
    }
    server {
        listen 127.0.0.1:$NGINX_PORT;
        location / {
            proxy_pass http://edgews;
            proxy_http_version 1.1;
            proxy_set_header Upgrade \$http_upgrade;
            proxy_set_header Connection \$connection_upgrade;
            proxy_set_header Host \$http_host;
            proxy_set_header X-Forwarded-For \$remote_addr;
            proxy_set_header X-Forwarded-Proto \$scheme;
            proxy_set_header Forwarded "";
            proxy_buffering off;
            proxy_read_timeout 75s;
            proxy_send_timeout 75s;
            $NGINX_EXTRA
        }
    }
}
EOF
    port_free "$NGINX_PORT"
    taskset -c 0 "$NGINX" -p "$d/" -c "$d/nginx.conf" -e "$LOGS/nginx-error.log" -g 'daemon off;' \
        >>"$LOGS/nginx.log" 2>&1 &
    PID[nginx]=$!
    wait_port "${PID[nginx]}" "$NGINX_PORT" || die "nginx did not come up; see $LOGS/nginx-error.log"
    NGINX_WORKERS=$(pgrep -P "${PID[nginx]}" | tr '\n' ' ')
    [[ -n $NGINX_WORKERS ]] || die "nginx has no worker process"
}

start_edgews_proxy() {
    port_free "$PROXY_PORT"
    # shellcheck disable=SC2086 # PROXY_ARGS: words on purpose
    EDGEWS_LOG=warn taskset -c 0 "$EDGEWS" proxy --listen "127.0.0.1:$PROXY_PORT" \
        --upstream "ws://127.0.0.1:$UP_PORT" --workers 1 $PROXY_ARGS >>"$LOGS/edgews-proxy.log" 2>&1 &
    PID[edgews]=$!
    wait_port "${PID[edgews]}" "$PROXY_PORT" || die "edgews proxy did not come up; see $LOGS/edgews-proxy.log"
}

# The floor: a plain TCP relay to the upstream, one thread.
start_floor() {
    port_free "$FLOOR_PORT"
    taskset -c 0 "$PEERS" relay-floor --listen "127.0.0.1:$FLOOR_PORT" \
        --upstream "127.0.0.1:$UP_PORT" >>"$LOGS/relay-floor.log" 2>&1 &
    PID[floor]=$!
    wait_port "${PID[floor]}" "$FLOOR_PORT" || die "the relay floor did not come up; see $LOGS/relay-floor.log"
}

# The pids whose CPU time is the proxy's, for row $1.
pids_of() {
    case $1 in
        nginx) echo "${PID[nginx]} $NGINX_WORKERS" ;;
        edgews) echo "${PID[edgews]}" ;;
        floor) echo "${PID[floor]}" ;;
        direct) ;;
    esac
}

# Sets CPU_NOW to "NS TICKS WALL" for row $1: its processes' time on CPU
# (schedstat ns, and utime+stime ticks, summed) and the wall clock; returns
# 1 if a process cannot be read (it died).
proxy_cpu() {
    local p u s n ns=0 ticks=0
    for p in $(pids_of "$1"); do
        cpu_sample "$p" ns || return 1
        read -r u s n <<<"$SAMPLE"
        ns=$(( ns + n )) ticks=$(( ticks + u + s ))
    done
    CPU_NOW="$ns $ticks $EPOCHREALTIME"
}

FAILED=0

# One round of row $1 at $2 connections of $3-byte messages, round $4:
# appends a record to RAW and prints a line; FAILED=1 if it failed.
run_one() {
    local row=$1 conns=$2 size=$3 rnd=$4 rc=0 url cpu0=n/a cpu1=n/a p dead=
    case $row in
        nginx) url=ws://127.0.0.1:$NGINX_PORT/ ;;
        edgews) url=ws://127.0.0.1:$PROXY_PORT/ ;;
        floor) url=ws://127.0.0.1:$FLOOR_PORT/ ;;
        direct) url=ws://127.0.0.1:$UP_PORT/ ;;
    esac
    for p in "${PID[upstream]}" $(pids_of "$row"); do running "$p" || dead=1; done
    if [[ -n $dead ]]; then
        rc=255
        echo "not running" >"$TMP/load.err"
        : >"$TMP/load.out"
    else
        timeout -k 5 "$LIMIT" taskset -c 1 "$EDGEWS" load echo --url "$url" --connections "$conns" \
            --size "$size" --duration "$DURATION" --warmup "$WARMUP" >"$TMP/load.out" 2>"$TMP/load.err" &
        LOAD_PID=$!
        sleep "$WARMUP_S"
        if [[ $row != direct ]] && running "$LOAD_PID" && proxy_cpu "$row"; then
            cpu0=$CPU_NOW
            sleep "$WINDOW_S"
            if running "$LOAD_PID" && proxy_cpu "$row"; then cpu1=$CPU_NOW; else cpu0=n/a; fi
        fi
        wait "$LOAD_PID" || rc=$?
        LOAD_PID=
    fi
    py_run "$RAW" "$CLK_TCK" "$row" "$conns" "$size" "$rnd" "$rc" "$TMP/load.out" "$TMP/load.err" \
        "$cpu0" "$cpu1" <<'EOF' || FAILED=1
raw, tck, row, conns, size, rnd, rc, out, err, cpu0, cpu1 = sys.argv[1:12]
tck, conns, rc = int(tck), int(conns), int(rc)
load, why = read_load(out, rc, lenient=True)
echo_why(load, why, conns)
errtail = err_tail(err)
cpu = None
if row != "direct":
    if cpu0 == "n/a" or cpu1 == "n/a":
        why.append("no proxy CPU reading")
    else:
        (n0, t0, w0), (n1, t1, w1) = (c.replace(",", ".").split() for c in (cpu0, cpu1))
        window = float(w1) - float(w0)
        ns = int(n1) - int(n0)
        # schedstat's nanoseconds where the kernel keeps them, else ticks
        cpu_s = ns / 1e9 if ns > 0 else (int(t1) - int(t0)) / tck
        rate = (load or {}).get("msg_per_s") or 0
        cpu = {"window_s": round(window, 3), "cpu_s": round(cpu_s, 4),
               "cpu_pct": round(100 * cpu_s / window, 1),
               "us_per_msg": round(1e6 * cpu_s / (rate * window), 3) if rate else None}
append(raw, {"test": "proxy", "row": row, "connections": conns, "size": size, "round": int(rnd),
             "exit": rc, "ok": not why, "why": "; ".join(why), "load": load, "proxy_cpu": cpu,
             "stderr_tail": errtail})
line = f"  round {rnd}  {row:<7} {conns:>4} x {size:<6}"
if load:
    line += f'{load["msg_per_s"]:>9,} msg/s  p50 {load["p50_us"]:>7.0f} us  p99 {load["p99_us"]:>7.0f} us'
if cpu:
    line += f'  proxy {cpu["cpu_pct"]:3.0f}% of CPU 0'
    if cpu["us_per_msg"] is not None:
        line += f'  {cpu["us_per_msg"]:6.2f} us/msg'
finish(line, why, errtail)
EOF
}

# --- the run --------------------------------------------------------------------

CLK_TCK=$(getconf CLK_TCK)
REV=$(revision "with local changes")
LOAD_START=$(load_avg)
HEADER=$(cat <<EOF
date:     $(date -u '+%Y-%m-%d %H:%M:%S UTC')
commit:   $REV
binary:   $EDGEWS_SRC (sha256 $SUM_EDGEWS)
nginx:    $("$NGINX" -v 2>&1 | sed 's/.*version: //') ($NGINX), worker_processes 1
floor:    $FLOOR_DESC
machine:  $(nproc) CPUs, $(cpu_model); kernel $(uname -r)
settings: connections:size ${SETTINGS[*]}; pipeline 1; $ROUNDS rounds of $DURATION (warm-up $WARMUP); rows ${TARGETS[*]}
pinning:  proxies on CPU 0; upstream \`edgews echo --workers 1\` and the load generator on CPU 1
EOF
)
echo "$HEADER"
echo "load average at start: $LOAD_START"
[[ -z $SKIPPED ]] || echo "NOTE: $SKIPPED"

start_upstream
for row in "${TARGETS[@]}"; do
    case $row in
        nginx) start_nginx ;;
        edgews) start_edgews_proxy ;;
        floor) start_floor ;;
    esac
done

echo "== rounds interleaved: ${TARGETS[*]} at each setting, then the next round"
for rnd in $(seq "$ROUNDS"); do
    for setting in "${SETTINGS[@]}"; do
        for row in "${TARGETS[@]}"; do
            run_one "$row" "${setting%%:*}" "${setting#*:}" "$rnd"
        done
    done
done
cleanup

# --- the table --------------------------------------------------------------------

{
    echo
    echo "$HEADER"
    echo "load:     average $LOAD_START at start, $(load_avg) at end (1/5/15 min)"
    [[ -z $SKIPPED ]] || echo "note:     $SKIPPED"
    echo
    python3 - "$RAW" <<'EOF'
import json, statistics, sys
recs = [json.loads(l) for l in open(sys.argv[1])]

def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None

def fmt(x, spec):
    return "n/a" if x is None else format(x, spec)

settings, rows = [], []
for r in recs:
    k = (r["connections"], r["size"])
    if k not in settings:
        settings.append(k)
    if r["row"] not in rows:
        rows.append(r["row"])

print("| setting | row | msg/s | proxy CPU | µs/msg | edgews/nginx | /floor | p50 µs | p99 µs | +p50 µs | +p99 µs | rounds |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for conns, size in settings:
    cell = {}
    for row in rows:
        runs = [r for r in recs if (r["connections"], r["size"], r["row"]) == (conns, size, row)]
        good = [r for r in runs if r["ok"]]
        cpu = [r["proxy_cpu"] for r in good if r.get("proxy_cpu")]
        cell[row] = {
            "rate": med([r["load"]["msg_per_s"] for r in good]),
            "p50": med([r["load"]["p50_us"] for r in good]),
            "p99": med([r["load"]["p99_us"] for r in good]),
            "pct": med([c["cpu_pct"] for c in cpu]),
            "us": med([c["us_per_msg"] for c in cpu]),
            "rounds": f"{len(good)}" + (f" ({len(runs) - len(good)} FAILED)" if len(runs) > len(good) else ""),
        }
    direct = cell.get("direct", {})
    for row in rows:
        c = cell[row]
        ratio = ""
        if row == "edgews" and c["us"] and cell.get("nginx", {}).get("us"):
            ratio = f'{c["us"] / cell["nginx"]["us"]:.2f}'
        floor = ""
        if row in ("nginx", "edgews") and c["us"] and cell.get("floor", {}).get("us"):
            floor = f'{c["us"] / cell["floor"]["us"]:.2f}'
        plus = ["", ""]
        if row != "direct" and direct.get("p50") is not None and c["p50"] is not None:
            plus = [f'{c["p50"] - direct["p50"]:+.0f}', f'{c["p99"] - direct["p99"]:+.0f}']
        pct = "" if row == "direct" else fmt(c["pct"], ".0f") + "%"
        us = "" if row == "direct" else fmt(c["us"], ".2f")
        print(f'| {conns} x {size}{" B" if size.isdigit() else ""} | {row} | {fmt(c["rate"], ",.0f")} | {pct} | {us} | {ratio} | {floor} '
              f'| {fmt(c["p50"], ".0f")} | {fmt(c["p99"], ".0f")} | {plus[0]} | {plus[1]} | {c["rounds"]} |')
EOF
} | tee "$TABLE"
echo
echo "raw: $RAW"
echo "table: $TABLE"
exit_if_failed
