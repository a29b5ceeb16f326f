#!/usr/bin/env bash
# Install the interop peers: Python `websockets` into tests/interop/venv and
# Node `ws` into tests/interop/node_modules (from the committed lock file).
# Idempotent: each half is skipped when what is installed matches the pins.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$HERE"

log() { echo "[interop/setup +${SECONDS}s] $*" >&2; }

# --- Python: venv + websockets --------------------------------------------
# Stamp = checksum of requirements.txt, so changing a pin reinstalls.
REQ_SUM="$(sha256sum requirements.txt | cut -c1-16)"
if [[ -f venv/.edgews-setup && "$(cat venv/.edgews-setup)" == "$REQ_SUM" ]] \
    && venv/bin/python -c 'import websockets' 2>/dev/null; then
    log "python venv already set up"
else
    log "creating venv with $(python3 --version)"
    rm -rf venv
    python3 -m venv venv
    venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
    echo "$REQ_SUM" > venv/.edgews-setup
    log "installed $(venv/bin/python -m pip freeze --disable-pip-version-check | tr '\n' ' ')"
fi

# --- Node: ws ---------------------------------------------------------------
# `npm ci` installs exactly package-lock.json (and fails if it disagrees with
# package.json). npm writes node_modules/.package-lock.json; if it equals the
# committed lock's package list, the install is current and we skip.
if [[ -f node_modules/.package-lock.json ]] \
    && node -e '
        const a = require("./package-lock.json").packages, b = require("./node_modules/.package-lock.json").packages;
        const strip = o => JSON.stringify(Object.entries(o).filter(([k]) => k !== "").map(([k, v]) => [k, v.version]).sort());
        process.exit(strip(a) === strip(b) ? 0 : 1);' 2>/dev/null; then
    log "node_modules already set up"
else
    log "npm ci (node $(node --version), npm $(npm --version))"
    npm ci --no-audit --no-fund --loglevel=error
fi
node -e 'require("ws")'
log "done"
