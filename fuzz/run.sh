#!/usr/bin/env bash
# Builds the cargo-fuzz targets and runs each for FUZZ_SECONDS, one after
# the other (never in parallel).
#
#   fuzz/run.sh                      # every target, 60 s each
#   FUZZ_SECONDS=30 fuzz/run.sh      # shorter
#   fuzz/run.sh frame_decode roundtrip   # a subset
#
# Each target fuzzes from its committed seeds (fuzz/corpus/<target>/, read
# only) plus a scratch corpus (fuzz/target-corpus/<target>/, git-ignored),
# where libFuzzer writes the new inputs it finds, so a run leaves the tree
# clean. A crash is written to fuzz/artifacts/<target>/ (git-ignored); once
# it is understood, copy it into fuzz/corpus/<target>/ with a descriptive
# name: `cargo test --test fuzz_corpus` replays both directories.
#
# Environment: FUZZ_SECONDS (default 60), FUZZ_RSS_MB (default 2048),
# FUZZ_JOBS is not supported on purpose (the machine's cores are shared).
# The toolchain may be stable: RUSTC_BOOTSTRAP=1 lets cargo-fuzz use the
# nightly-only sanitizer flags. Exits non-zero if any target finds a crash
# (or fails to build).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

seconds="${FUZZ_SECONDS:-60}"
rss_mb="${FUZZ_RSS_MB:-2048}"
export RUSTC_BOOTSTRAP=1

all_targets=(frame_decode handshake_request handshake_response server_connection
    client_connection utf8_incremental roundtrip pubsub_control chat_message deflate tls
    resp_decode redis_envelope forwarded relay_scan)

# the libFuzzer dictionary for each target, if any
dict_for() {
    case "$1" in
        handshake_request | handshake_response) echo "dicts/http.dict" ;;
        frame_decode | server_connection | client_connection | utf8_incremental | deflate | tls | relay_scan) echo "dicts/frames.dict" ;;
        pubsub_control | chat_message) echo "dicts/json.dict" ;;
        resp_decode) echo "dicts/resp.dict" ;;
        *) echo "" ;;
    esac
}

# the longest input worth generating for each target
max_len() {
    case "$1" in
        frame_decode) echo 1024 ;;
        handshake_request | handshake_response) echo 4096 ;;
        server_connection | client_connection) echo 70000 ;;
        utf8_incremental) echo 4096 ;;
        roundtrip) echo 4096 ;;
        pubsub_control | chat_message) echo 4096 ;;
        deflate) echo 16384 ;;
        tls) echo 20480 ;;
        resp_decode | redis_envelope) echo 4096 ;;
        *) echo 4096 ;;
    esac
}

if [ "$#" -gt 0 ]; then
    targets=("$@")
    for t in "${targets[@]}"; do
        if [ ! -f "fuzz_targets/$t.rs" ]; then
            echo "run.sh: unknown target '$t' (have: ${all_targets[*]})" >&2
            exit 2
        fi
    done
else
    targets=("${all_targets[@]}")
fi

if ! command -v cargo-fuzz > /dev/null 2>&1 && [ ! -x "${CARGO_HOME:-$HOME/.cargo}/bin/cargo-fuzz" ]; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

mkdir -p logs
echo "== building ${#targets[@]} target(s)"
build_start=$(date +%s)
if [ "$#" -eq 0 ]; then
    cargo fuzz build
else
    for t in "${targets[@]}"; do
        cargo fuzz build "$t"
    done
fi
build_end=$(date +%s)
echo "== build took $((build_end - build_start)) s"

failed=()
summary=()
for t in "${targets[@]}"; do
    scratch="target-corpus/$t"
    mkdir -p "$scratch" "artifacts/$t"
    log="logs/$t.log"
    echo "== fuzzing $t for ${seconds} s (log: fuzz/$log)"
    status=0
    extra=()
    dict="$(dict_for "$t")"
    if [ -n "$dict" ]; then
        extra+=("-dict=$here/$dict")
    fi
    # the scratch corpus comes first: libFuzzer writes new inputs there
    cargo fuzz run "$t" "$here/$scratch" "$here/corpus/$t" -- \
        "${extra[@]}" \
        -max_total_time="$seconds" \
        -rss_limit_mb="$rss_mb" \
        -max_len="$(max_len "$t")" \
        -timeout=10 \
        -print_final_stats=1 \
        > "$log" 2>&1 || status=$?
    done_line="$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1 || true)"
    execs="$(grep -E '^stat::number_of_executed_units:' "$log" | awk '{print $2}' | tail -1 || true)"
    eps="$(grep -E '^stat::average_exec_per_sec:' "$log" | awk '{print $2}' | tail -1 || true)"
    cov="$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | awk '{print $2}' || true)"
    ft="$(grep -oE 'ft: [0-9]+' "$log" | tail -1 | awk '{print $2}' || true)"
    if [ "$status" -ne 0 ]; then
        failed+=("$t")
        echo "!! $t FAILED (exit $status); last lines of fuzz/$log:"
        tail -40 "$log"
        summary+=("$(printf '%-20s FAILED  execs=%s cov=%s' "$t" "${execs:-?}" "${cov:-?}")")
    else
        echo "   $done_line"
        summary+=("$(printf '%-20s ok      execs=%-10s exec/s=%-7s cov=%-6s ft=%s' \
            "$t" "${execs:-?}" "${eps:-?}" "${cov:-?}" "${ft:-?}")")
    fi
done

echo "== summary (${seconds} s per target, build $((build_end - build_start)) s)"
printf '%s\n' "${summary[@]}"
if [ "${#failed[@]}" -gt 0 ]; then
    echo "== crashes in: ${failed[*]} (reproducers in fuzz/artifacts/)" >&2
    exit 1
fi
