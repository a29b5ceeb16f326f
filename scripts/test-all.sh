#!/usr/bin/env bash
# The whole test suite, as README.md gives it and .ci/run calls it:
#   1. cargo test: unit, property, integration (real loopback TCP), abuse,
#      hostile clients against the binary, and the replay of the committed
#      fuzz corpus, in every crate of the workspace; and the benchmark
#      yardstick in benches/peers (its floor server answers as compare.sh
#      needs);
#   2. the Autobahn testsuite against our server and our client;
#   3. interop with Python `websockets` and Node `ws`;
#   4. the chat page end to end in headless Chromium.
# Steps 2 to 4 install what they need themselves (git-ignored virtualenvs and
# node_modules, Debian's chromium) and fail loudly if they cannot: nothing is
# skipped.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

echo "== cargo test"
# the Redis tests (tests/redis.rs) need a real redis-server
scripts/install-redis.sh
# the engine (crates/edgews-protocol), the library (crates/edgews) and the
# binary with the integration tests (the root package); the peers apart
cargo test --workspace --exclude edgews-peers --all-targets --quiet
cargo test --doc -p edgews-protocol -p edgews --quiet
cargo test -p edgews-peers --quiet

echo "== Autobahn testsuite"
tests/autobahn/run.sh

echo "== Autobahn testsuite over TLS (wss://; sections 1-10, 12.1, 13.7)"
tls_start=$SECONDS
tls_rc=0
AUTOBAHN_TLS=1 tests/autobahn/run.sh || tls_rc=$?
echo "Autobahn over TLS: $((SECONDS - tls_start)) s (exit $tls_rc)"
((tls_rc == 0)) || exit "$tls_rc"

echo "== interop"
tests/interop/run.sh

echo "== browser end-to-end"
tests/e2e/run.sh
