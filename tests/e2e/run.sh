#!/usr/bin/env bash
# Browser end-to-end test of `edgews chat`: headless Chromium (Debian's
# package) driven by playwright-core (pinned in package-lock.json) against
# the release binary. Installs what is missing; fails loudly, never skips.
# Two runs of the same checks (chat.e2e.js): over http:// and ws://, then
# over https:// and wss:// (`edgews chat --tls-cert --tls-key`) with a
# throwaway test CA and localhost certificate that examples/tls_cert writes
# into a temporary directory, removed on exit (never committed). Chromium
# accepts that certificate by its key's hash, in the test only
# (--ignore-certificate-errors-spki-list, see chat.e2e.js); Node checks the
# chain against the test CA.
# Screenshots: target/e2e/*.png (http), target/e2e/https/*.png.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
log() { echo "[e2e/run +${SECONDS}s] $*" >&2; }

if [[ ! -x /usr/bin/chromium ]]; then
    log "installing Debian's chromium"
    SUDO=""
    if [[ $(id -u) != 0 ]]; then SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium fonts-noto-color-emoji
fi

log "npm ci (node $(node --version))"
(cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error)

log "building edgews (release)"
(cd "$ROOT" && cargo build --release --quiet --bin edgews --example tls_cert)

CERTS="$(mktemp -d "${TMPDIR:-/tmp}/edgews-e2e-tls.XXXXXX")"
trap 'rm -rf "$CERTS"' EXIT
"$ROOT/target/release/examples/tls_cert" "$CERTS" > /dev/null

cd "$ROOT"
log "running the browser test over http:// and ws://"
timeout 150 node tests/e2e/chat.e2e.js
log "running the browser test over https:// and wss:// (test certificate in $CERTS)"
timeout 150 node tests/e2e/chat.e2e.js --tls "$CERTS"
log "browser test passed over http and https"
