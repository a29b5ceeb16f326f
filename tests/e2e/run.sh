#!/usr/bin/env bash
# Browser end-to-end test of `edgews chat`: headless Chromium (Debian's
# package) driven by playwright-core (pinned in package-lock.json) against
# the release binary. Installs what is missing; fails loudly, never skips.
# Screenshots: target/e2e/*.png.
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
(cd "$ROOT" && cargo build --release --quiet --bin edgews)

log "running the browser test"
cd "$ROOT"
timeout 150 node tests/e2e/chat.e2e.js
