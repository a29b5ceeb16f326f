#!/usr/bin/env bash
# Installs a real redis-server for the Redis integration tests
# (tests/redis.rs), which start their own redis-server processes on free
# loopback ports: Debian's `redis-server` package (redis-server 7.0; it
# pulls redis-tools, i.e. redis-cli). Does nothing when redis-server is
# already on PATH. Prints the version; fails loudly if it cannot install.
#
# The package's postinst would start a system redis on port 6379: a
# policy-rc.d that refuses to start services is put in place for the
# install (unless one is there already, as in containers), and if a redis
# on 6379 appeared all the same it is stopped (and, under systemd, not
# started at boot). A redis that was listening on 6379 before is left alone.
set -euo pipefail

log() { echo "[install-redis] $*" >&2; }

SUDO=""
if [[ $(id -u) != 0 ]]; then SUDO="sudo"; fi

# whether something listens on 127.0.0.1:6379
port_6379_open() {
    (exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null
}

if ! command -v redis-server > /dev/null 2>&1; then
    log "installing Debian's redis-server"
    had_6379=0
    if port_6379_open; then had_6379=1; fi

    POLICY=/usr/sbin/policy-rc.d
    ours=0
    if [[ ! -e $POLICY ]]; then
        # refuse every service start during the install; removed on exit
        printf '#!/bin/sh\n# edgews scripts/install-redis.sh: no service starts during the install\nexit 101\n' \
            | $SUDO tee "$POLICY" > /dev/null
        $SUDO chmod 755 "$POLICY"
        ours=1
        trap '$SUDO rm -f "$POLICY"' EXIT
    fi

    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
        redis-server redis-tools

    if ((ours)); then
        $SUDO rm -f "$POLICY"
        trap - EXIT
    fi

    # a system redis the postinst started anyway: stop it, keep it off at boot
    if ((had_6379 == 0)); then
        if command -v systemctl > /dev/null 2>&1 && [[ -d /run/systemd/system ]]; then
            $SUDO systemctl disable --now redis-server > /dev/null 2>&1 || true
        fi
        if port_6379_open; then
            $SUDO service redis-server stop > /dev/null 2>&1 || true
        fi
        if port_6379_open; then
            redis-cli -p 6379 shutdown nosave > /dev/null 2>&1 || true
        fi
        for _ in $(seq 50); do
            port_6379_open || break
            sleep 0.1
        done
        if port_6379_open; then
            echo "install-redis: a redis-server still listens on 127.0.0.1:6379 after the install" >&2
            exit 1
        fi
    fi
fi

if ! command -v redis-server > /dev/null 2>&1; then
    echo "install-redis: redis-server is not on PATH after installing Debian's redis-server" >&2
    exit 1
fi
redis-server --version
