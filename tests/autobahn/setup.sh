#!/usr/bin/env bash
# Install the Autobahn testsuite (wstest) into tests/autobahn/venv.
#
# autobahntestsuite only runs on Python 2.7, so we need:
#   1. a Python 2.7 interpreter (pyenv's 2.7.18, present on the dev/CI image),
#   2. a virtualenv release that can still create 2.7 environments
#      (20.21.x is the last one; installed into a small Python 3 venv,
#      tests/autobahn/venv-tools, so the machine's Python is not touched),
#   3. autobahntestsuite with its own pinned dependencies.
# Idempotent: a stamp file records what was installed; a second run that finds
# the same pins and a working wstest does nothing.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="$HERE/venv"
TOOLS="$HERE/venv-tools"
VIRTUALENV_PIN="virtualenv==20.21.1"
SUITE_PIN="autobahntestsuite==25.10.1"
STAMP="$VENV/.edgews-setup"
CONSTRAINTS="$HERE/constraints-py27.txt"
# The stamp includes the constraints' checksum, so editing them re-installs.
STAMP_TEXT="$VIRTUALENV_PIN $SUITE_PIN $(sha256sum "$CONSTRAINTS" | cut -c1-16)"

log() { echo "[autobahn/setup +${SECONDS}s] $*" >&2; }

# Fast path: already installed with the same pins and wstest starts.
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$STAMP_TEXT" ]] \
    && "$VENV/bin/wstest" --help >/dev/null 2>&1; then
    log "already set up ($STAMP_TEXT)"
    exit 0
fi

# 1. Python 2.7 interpreter.
if command -v pyenv >/dev/null 2>&1; then
    PY2="$(pyenv root)/versions/2.7.18/bin/python2.7"
else
    PY2="$HOME/.pyenv/versions/2.7.18/bin/python2.7"
fi
if [[ ! -x "$PY2" ]]; then
    # No network beyond package registries, so we cannot build 2.7 here.
    log "ERROR: Python 2.7 interpreter not found at $PY2"
    exit 1
fi
log "python2: $PY2 ($("$PY2" --version 2>&1))"

# 2. virtualenv in a throwaway Python 3 venv.
if ! "$TOOLS/bin/python" -m virtualenv --version 2>/dev/null | grep -q '^virtualenv 20\.21\.1 '; then
    log "creating $TOOLS with $VIRTUALENV_PIN"
    rm -rf "$TOOLS"
    python3 -m venv "$TOOLS"
    "$TOOLS/bin/python" -m pip install --quiet "$VIRTUALENV_PIN"
fi

# 3. Python 2.7 venv + autobahntestsuite. Start from scratch so a half-done
#    earlier attempt cannot leave mismatched packages behind.
log "creating $VENV"
rm -rf "$VENV"
# --no-periodic-update: use the pip/setuptools wheels bundled with virtualenv,
# never try to refresh them in the background.
"$TOOLS/bin/python" -m virtualenv --quiet --no-periodic-update -p "$PY2" "$VENV"
log "installing $SUITE_PIN"
# autobahntestsuite's setup.py pins its direct deps (Twisted 19.10, autobahn
# 0.10.9, cryptography 3.3.2, ...); constraints-py27.txt pins the rest.
"$VENV/bin/python" -m pip install --quiet --no-cache-dir \
    --disable-pip-version-check -c "$CONSTRAINTS" "$SUITE_PIN"

"$VENV/bin/wstest" --help >/dev/null
# The wss:// run (run.sh, AUTOBAHN_TLS=1) needs Twisted's TLS: pyOpenSSL and
# service_identity (autobahntestsuite requires both; constraints-py27.txt
# pins them, with cryptography, for Python 2.7). Fail here, not mid-run.
"$VENV/bin/python" -W ignore -c 'import OpenSSL, service_identity
from twisted.internet import ssl
ssl.CertificateOptions().getContext()'
echo "$STAMP_TEXT" > "$STAMP"
log "done: $("$VENV/bin/python" -m pip freeze 2>/dev/null | grep -i '^autobahn' | tr '\n' ' ')"
