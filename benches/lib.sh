# Helpers shared by the benchmark scripts (compare.sh, tls.sh, deflate.sh,
# workers.sh): functions only, nothing runs on sourcing. Each script sources
# it first thing:
#
#   . "$(dirname "$0")/lib.sh"
#
# Some helpers use the calling script's variables, named in their comments
# (OUT_DIR, PID, LOAD_PID, TMP, RAW, FAILED, EDGEWS, ...).

# --- checks and settings ------------------------------------------------------

# Prints "SCRIPT: $*" on stderr (SCRIPT: the running script's file name) and
# exits 1.
die() { echo "${0##*/}: $*" >&2; exit 1; }

# Sets ROOT to the repository's top folder (the one above benches/) and
# makes it the working directory.
cd_root() {
    ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
    cd "$ROOT"
}

# Dies unless every command named is installed.
need_tools() {
    local tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null || die "needs $tool"
    done
}

# Raises the limit on open files to $1 if it is lower; dies if it cannot.
need_fds() {
    if (( $(ulimit -n) < $1 )); then
        ulimit -n "$1" 2>/dev/null || die "ulimit -n is $(ulimit -n); $1 descriptors are needed"
    fi
}

# Milliseconds in a duration given as 500ms, 5s, 2m or 0; dies on others.
msecs() {
    case $1 in
        *ms) echo $(( ${1%ms} )) ;;
        *s) echo $(( ${1%s} * 1000 )) ;;
        *m) echo $(( ${1%m} * 60000 )) ;;
        0) echo 0 ;;
        *) die "cannot read the duration '$1' (give 500ms, 5s or 2m)" ;;
    esac
}

# Seconds in the duration $1. Without $2, $1 is read as msecs reads it
# (500ms, 5s, 2m or 0) and rounded up; with $2 = whole it must be a positive
# whole number of seconds written as 5s.
secs() {
    if [[ ${2:-} == whole ]]; then
        [[ $1 =~ ^([1-9][0-9]*)s$ ]] || die "durations are whole seconds, e.g. 5s (got '$1')"
        echo "${BASH_REMATCH[1]}"
    else
        local ms
        ms=$(msecs "$1") || exit 1
        echo $(( (ms + 999) / 1000 ))
    fi
}

# Seconds with three decimals, for sleep: 1500 -> 1.500.
ms_to_s() { printf '%d.%03d' $(( $1 / 1000 )) $(( $1 % 1000 )); }

# True if edgews binary $1 has the --workers option (builds from before it
# run one reactor, always).
has_workers_option() { grep -q -- '--workers' <<<"$("$1" echo --help 2>/dev/null)"; }

# The first 12 hex digits of file $1's SHA-256.
short_sum() { sha256sum "$1" | cut -c1-12; }

# --- this run's files ------------------------------------------------------------

# Makes OUT_DIR and names this run's files after $1 and the time (STAMP):
# RAW, JSON lines (created empty), TABLE, the summary (.md), and LOGS, a
# folder for the servers' logs (made).
out_files() {
    mkdir -p "$OUT_DIR"
    STAMP=$(date +%Y%m%d-%H%M%S)
    RAW=$OUT_DIR/$1-$STAMP.jsonl
    TABLE=$OUT_DIR/$1-$STAMP.md
    LOGS=$OUT_DIR/$1-$STAMP-logs
    mkdir -p "$LOGS"
    : >"$RAW"
}

# Exits 1, saying so on stderr, if a run failed (FAILED is not 0; RAW holds
# the records).
exit_if_failed() {
    if [[ $FAILED != 0 ]]; then
        echo "${0##*/}: some runs FAILED (see above and $RAW)" >&2
        exit 1
    fi
}

# --- processes we start, stopped on any exit -------------------------------------

# Declares PID (server name -> pid) and LOAD_PID (the loader running, if
# any), makes the temporary folder TMP and sets the traps: on exit, cleanup
# (given this function's arguments: the names of further variables that may
# hold a pid) and TMP removed; INT and TERM end the script (130, 143).
setup_processes() {
    declare -gA PID=()
    LOAD_PID=
    TMP=$(mktemp -d)
    trap "cleanup $*; rm -rf \"\$TMP\"" EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

# Stops the processes $2...: TERM to all of them, then each gets up to $1
# tenths of a second to end before KILL, and is reaped.
stop_pids() {
    local tenths=$1 p
    shift
    for p in "$@"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "$@"; do
        for _ in $(seq "$tenths"); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
}

# Stops every process started and not yet stopped: the servers in PID, the
# pids in the variables named as arguments, then LOAD_PID (stop_pids, 5 s
# each); empties them all.
cleanup() {
    local v pids=("${PID[@]}")
    for v in "$@" LOAD_PID; do
        if [[ -n ${!v:-} ]]; then pids+=("${!v}"); fi
    done
    stop_pids 50 "${pids[@]}"
    PID=()
    for v in "$@" LOAD_PID; do printf -v "$v" '%s' ''; done
}

# Stops server $1 (its pid in PID) and forgets it; it gets $2 tenths of a
# second (default 50) to end before KILL.
stop_server() {
    stop_pids "${2:-50}" "${PID[$1]}"
    unset "PID[$1]"
}

# True if something listens on TCP port $1.
listening() { [[ -n $(ss -Hltn "sport = :$1") ]]; }

# Waits until the server process $1 listens on port $2: false if it exits
# first or 15 s pass.
wait_port() {
    local pid=$1 port=$2
    for _ in $(seq 150); do
        kill -0 "$pid" 2>/dev/null || return 1
        listening "$port" && return 0
        sleep 0.1
    done
    return 1
}

# True while process $1 runs (false once it has exited, zombie or reaped).
running() {
    local line
    read -r line 2>/dev/null <"/proc/$1/stat" || return 1
    line=${line##*) }
    [[ ${line%% *} != Z ]]
}

# Prints the resident memory of process $1 in kB (VmRSS in
# /proc/PID/status); prints nothing if it cannot be read.
vmrss_kb() {
    local st=
    read -r -d '' st 2>/dev/null <"/proc/$1/status" || true
    [[ $st == *$'\n'VmRSS:* ]] || return 0
    st=${st##*$'\n'VmRSS:}
    st=${st%%kB*}
    st=${st//[!0-9]/}
    [[ -z $st ]] || echo "$st"
}

# --- CPU and the machine ------------------------------------------------------------

# Sets SAMPLE to "UTIME STIME" of process $1: user and system time of all its
# threads in clock ticks (/proc/PID/stat fields 14-15); returns 1 if they
# cannot be read or the process is a zombie. With $2 = ns, " NS" follows:
# its time on CPU in nanoseconds summed over its threads
# (/proc/PID/task/*/schedstat, first field), finer than the 10 ms ticks and
# not sampled. With $2 = wall, " WALL" follows: the wall clock in seconds
# ($EPOCHREALTIME), read right after the ticks (no subshell, no fork between).
cpu_sample() {
    local line f t run rest ns=0
    SAMPLE=
    read -r line 2>/dev/null <"/proc/$1/stat" || return 1
    # fields from 3 on: the command name (field 2) may hold spaces
    read -r -a f <<<"${line##*) }"
    [[ ${f[0]:-Z} != Z && ${f[11]:-} =~ ^[0-9]+$ && ${f[12]:-} =~ ^[0-9]+$ ]] || return 1
    case ${2:-} in
        '') SAMPLE="${f[11]} ${f[12]}" ;;
        wall) SAMPLE="${f[11]} ${f[12]} $EPOCHREALTIME" ;;
        ns)
            for t in /proc/"$1"/task/*/schedstat; do
                read -r run rest 2>/dev/null <"$t" || continue
                ns=$(( ns + run ))
            done
            SAMPLE="${f[11]} ${f[12]} $ns"
            ;;
        *) die "cpu_sample: no such reading '$2'" ;;
    esac
}

# True if more than $3 seconds lie between the $EPOCHREALTIME readings $1
# and $2 (a decimal comma, as some locales write it, is read too).
overran() {
    python3 -c 'import sys; a, b, l = (float(x.replace(",", ".")) for x in sys.argv[1:4]); sys.exit(0 if b - a > l else 1)' \
        "$@"
}

# Prints the machine's busy share over one second ("37%"): what else ran.
busy_share() {
    local a b
    read -r -a a < <(head -n1 /proc/stat)
    sleep 1
    read -r -a b < <(head -n1 /proc/stat)
    awk -v u=$(( b[1] + b[2] + b[3] + b[6] + b[7] + b[8] - a[1] - a[2] - a[3] - a[6] - a[7] - a[8] )) \
        -v t=$(( b[1] + b[2] + b[3] + b[4] + b[5] + b[6] + b[7] + b[8] - a[1] - a[2] - a[3] - a[4] - a[5] - a[6] - a[7] - a[8] )) \
        'BEGIN { printf "%.0f%%", t ? 100 * u / t : 0 }'
}

# Writes the first 20 lines of `top` to file $1 (nothing if top fails).
top_snapshot() { top -bn1 -w 200 | head -n 20 >"$1" 2>/dev/null || true; }

# Prints the load average over 1, 5 and 15 minutes.
load_avg() { cut -d' ' -f1-3 /proc/loadavg; }

# Prints the CPU's model name.
cpu_model() { grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//' || true; }

# Prints the short commit of HEAD ("unknown" outside git), then " ($1)" if
# tracked files have local changes.
revision() {
    local rev
    rev=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
    [[ -z $(git status --porcelain --untracked-files=no 2>/dev/null) ]] || rev="$rev ($1)"
    echo "$rev"
}

# --- records -----------------------------------------------------------------------

# Prints the Python definitions that py_run puts before a script:
#   read_load(out, rc, who, strip, lenient) -> (load, why): the JSON line a
#       loader wrote to file out, and why its run failed so far
#   echo_why(load, why, conns), idle_why(load, why, conns, rss_why),
#   connect_why(load, why, conns), broadcast_why(load, why, conns): add what
#       fails an echo, idle, connect (`load connect`) or broadcast run
#   window_cpu(sample, rate): the server's CPU over a measured window, from
#       "CLK_TCK U0 S0 T0 U1 S1 T1" (cpu_sample ... wall at both ends)
#   strace_calls(path): calls per syscall in an `strace -c` summary
#   err_tail(err): the last lines of file err
#   append(raw, rec): appends the record rec to file raw
#   finish(line, why, errtail): prints the run's line and exits 1 if it failed
py_helpers() {
    cat <<'EOF'
import json, sys

def read_load(out, rc, who="loader", strip=False, lenient=False):
    """The last JSON line (one starting {"mode":) in file out, or None, and the
    list of reasons the run failed: the exit status rc of the `who` if not 0,
    no JSON line. strip: lines are stripped first. lenient: a line that is not
    JSON is one more reason (else json.loads raises)."""
    load, why = None, []
    for line in open(out, errors="replace"):
        if strip:
            line = line.strip()
        if not line.startswith('{"mode":'):
            continue
        try:
            load = json.loads(line)
        except ValueError:
            if not lenient:
                raise
            why.append("unreadable JSON line")
    if rc != 0:
        why.append(f"{who} exit status {rc}")
    if load is None:
        why.append("no JSON line")
    return load, why

def echo_why(load, why, conns):
    """Adds to why what fails an echo run: errors, no messages, fewer than
    conns connections (nothing without a JSON line)."""
    if load is None:
        return
    if load.get("errors", 1):
        why.append(f'{load.get("errors")} errors')
    if load.get("messages", 0) <= 0:
        why.append("no messages")
    if load.get("connections") != conns:
        why.append(f'{load.get("connections")} of {conns} connections')

def idle_why(load, why, conns, rss_why="no RSS growth read"):
    """Adds to why what fails an idle run: connections that failed or closed
    early, fewer than conns, no RSS growth read (rss_why)."""
    if load is None:
        return
    if load.get("failed", 1) or load.get("closed_early", 1):
        why.append(f'{load.get("failed")} failed, {load.get("closed_early")} closed early')
    if load.get("connections") != conns:
        why.append(f'{load.get("connections")} of {conns} connections')
    if load.get("bytes_per_connection", 0) <= 0:
        why.append(rss_why)

def connect_why(load, why, conns):
    """Adds to why what fails a `load connect` run: errors, no cycles, fewer
    than conns connections (nothing without a JSON line)."""
    if load is None:
        return
    if load.get("errors", 1):
        why.append(f'{load.get("errors")} errors')
    if load.get("cycles", 0) <= 0:
        why.append("no connection cycles")
    if load.get("connections") != conns:
        why.append(f'{load.get("connections")} of {conns} connections')

def broadcast_why(load, why, conns):
    """Adds to why what fails a `load broadcast` run: errors, missing or
    out-of-order deliveries, none at all, fewer than conns connections."""
    if load is None:
        return
    if load.get("errors", 1):
        why.append(f'{load.get("errors")} errors')
    if load.get("missing", 1) or load.get("out_of_order", 1):
        why.append(f'{load.get("missing")} missing, {load.get("out_of_order")} out of order')
    if load.get("deliveries", 0) <= 0:
        why.append("no deliveries")
    if load.get("connections") != conns:
        why.append(f'{load.get("connections")} of {conns} connections')

def window_cpu(sample, rate):
    """The server's CPU over a measured window from sample, "CLK_TCK U0 S0
    T0 U1 S1 T1" (clock ticks of user and system time and the wall clock in
    seconds at both ends), and rate (what the loader counted per second, or
    None): returns a dict (window_s, clk_tck, user_ticks, sys_ticks,
    user_pct, sys_pct, cpu_pct in % of one core, per_cpu_s = rate per
    server CPU-second) or raises ValueError; sample "n/a: why" raises too."""
    if sample.startswith("n/a"):
        raise ValueError(sample[3:].lstrip(": ") or "no reading")
    f = sample.split()
    if len(f) != 7:
        raise ValueError(f"unreadable sample {sample!r}")
    tck, u0, s0, u1, s1 = (int(x) for x in (f[0], f[1], f[2], f[4], f[5]))
    t0, t1 = (float(x.replace(",", ".")) for x in (f[3], f[6]))
    window = t1 - t0
    if window <= 0 or u1 < u0 or s1 < s0:
        raise ValueError("samples out of order")
    du, ds = u1 - u0, s1 - s0
    cores = (du + ds) / tck / window  # server CPU-seconds per wall second
    return {
        "window_s": round(window, 3), "clk_tck": tck,
        "user_ticks": du, "sys_ticks": ds,
        "user_pct": round(100 * du / tck / window, 1),
        "sys_pct": round(100 * ds / tck / window, 1),
        "cpu_pct": round(100 * cores, 1),
        "per_cpu_s": round(rate / cores) if rate and cores > 0 else None,
    }

def strace_calls(path):
    """Calls per syscall in the `strace -c` summary in file path
    ("% time  seconds  usecs/call  calls  [errors]  syscall"); {} if none."""
    calls = {}
    for line in open(path):
        f = line.split()
        if len(f) >= 5 and f[0][0].isdigit() and f[-1] != "total":
            calls[f[-1]] = int(f[3])
    return calls

def err_tail(err, n=3):
    """The last n non-empty lines of file err (a carriage return ends a line)."""
    text = open(err, errors="replace").read().replace("\r", "\n")
    return [l.strip() for l in text.splitlines() if l.strip()][-n:]

def append(raw, rec):
    with open(raw, "a") as f:
        f.write(json.dumps(rec) + "\n")

def finish(line, why, errtail):
    """Prints a run's line, with why it failed and the stderr lines errtail if
    it did; exits 1 if it failed."""
    if why:
        line += "  FAILED: " + "; ".join(why) + ("  | " + " | ".join(errtail) if errtail else "")
    print(line)
    sys.exit(0 if not why else 1)
EOF
}

# Runs the Python script on stdin, after py_helpers, with the arguments "$@".
py_run() { { py_helpers; cat; } | python3 - "$@"; }

# One memory reading: a fresh server $1 on port $2 (start_server NAME PORT),
# `edgews load idle` with --send $3 (0: none) and the loader options after
# $5 (the URL and what the server asks for), round $4; appends a record to
# RAW, prints a line with the server's name padded to $5 columns, and sets
# FAILED=1 if the reading failed. Uses EDGEWS, MEM_LIMIT, MEM_CONNECTIONS,
# WARMUP_CONNECTIONS and MEM_HOLD.
run_mem() {
    local name=$1 port=$2 send=$3 rnd=$4 width=$5 rc=0 out
    shift 5
    start_server "$name" "$port"
    out=$TMP/idle.out
    : >"$out"
    timeout -k 5 "$MEM_LIMIT" taskset -c 1 "$EDGEWS" load idle "$@" --connections "$MEM_CONNECTIONS" \
        --warmup-connections "$WARMUP_CONNECTIONS" --send "$send" \
        --duration "$MEM_HOLD" --server-pid "${PID[$name]}" >"$out" 2>"$TMP/idle.err" || rc=$?
    stop_server "$name"
    py_run "$RAW" "$name" "$send" "$rnd" "$rc" "$out" "$TMP/idle.err" "$MEM_CONNECTIONS" "$width" <<'EOF' || FAILED=1
raw, name, send, rnd, rc, out, err, conns, width = sys.argv[1:10]
rc, conns = int(rc), int(conns)
load, why = read_load(out, rc)
idle_why(load, why, conns)
errtail = err_tail(err)
append(raw, {"test": "mem", "server": name, "send": send, "round": int(rnd), "exit": rc,
             "ok": not why, "why": "; ".join(why), "load": load, "stderr_tail": errtail})
what = "idle" if send == "0" else f"after {send}"
line = f"  round {rnd}  {name:<{int(width)}} {what:<12}"
if load:
    line += f'{load["bytes_per_connection"]:>9,} B/connection (RSS {load["rss_before"]:,} -> {load["rss_after"]:,})'
finish(line, why, errtail)
EOF
}
