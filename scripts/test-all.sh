#!/usr/bin/env bash
# The whole test suite, as README.md gives it and .ci/run calls it:
#   1. cargo test: unit, property, integration (real loopback TCP), abuse,
#      hostile clients against the binary, and the replay of the committed
#      fuzz corpus, in every crate of the workspace; and the benchmark
#      yardstick in benches/peers (its floor server answers as compare.sh
#      needs);
#   2. the Autobahn testsuite against our server and our client, and
#      against `edgews proxy` in front of our server;
#   3. interop with Python `websockets` and Node `ws`;
#   4. the chat page end to end in headless Chromium;
#   5. the deployment recipes (nginx -t, systemd-analyze verify, the Docker
#      build context).
# Steps 2 to 5 install what they need themselves (git-ignored virtualenvs and
# node_modules, Debian's chromium and nginx) and fail loudly if they cannot: nothing is
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

echo "== Autobahn testsuite through edgews proxy (sections 1-10, 12.1, 13.7)"
# the proxy in front of `edgews echo --deflate dedicated`: every case goes
# through the frame relay, permessage-deflate negotiated end to end; the
# results must be the direct server's (tests/autobahn/proxy-server.sh)
proxy_start=$SECONDS
proxy_rc=0
AUTOBAHN_ROLES=server AUTOBAHN_TIMEOUT=1200 \
    AUTOBAHN_CASES="1.*,2.*,3.*,4.*,5.*,6.*,7.*,9.*,10.*,12.1.*,13.7.*" \
    AUTOBAHN_SERVER_CMD="$PWD/tests/autobahn/proxy-server.sh" \
    tests/autobahn/run.sh || proxy_rc=$?
echo "Autobahn through the proxy: $((SECONDS - proxy_start)) s (exit $proxy_rc)"
((proxy_rc == 0)) || exit "$proxy_rc"

echo "== deployment recipes (docs/deploy.md)"
# nginx -t on deploy/nginx-edgews.conf, systemd-analyze verify on
# deploy/edgews.service and its command line run for real, the Docker build
# context; installs Debian's nginx when missing (scripts/install-nginx.sh)
scripts/check-deploy.sh

echo "== interop"
tests/interop/run.sh

echo "== browser end-to-end"
tests/e2e/run.sh
