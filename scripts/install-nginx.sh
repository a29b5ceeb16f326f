#!/usr/bin/env bash
# Installs nginx for scripts/check-deploy.sh (`nginx -t` on
# deploy/nginx-edgews.conf) and benches/proxy.sh (nginx as a WebSocket
# reverse proxy, measured against `edgews proxy`): Debian's `nginx`
# package (nginx 1.22 on bookworm). Does nothing when nginx is already on
# PATH (or in /usr/sbin). Prints the version; fails loudly if it cannot
# install.
#
# The package's postinst would start a system nginx on port 80: a
# policy-rc.d that refuses to start services is put in place for the
# install (unless one is there already, as in containers), and if an nginx
# on port 80 appeared all the same it is stopped (and, under systemd, not
# started at boot). Whatever listened on port 80 before is left alone.
# The scripts that use nginx run it with their own configuration and
# prefix, never the system one.
set -euo pipefail

log() { echo "[install-nginx] $*" >&2; }

SUDO=""
if [[ $(id -u) != 0 ]]; then SUDO="sudo"; fi

# nginx lives in /usr/sbin, which is not on every user's PATH
find_nginx() {
    command -v nginx 2>/dev/null || { [[ -x /usr/sbin/nginx ]] && echo /usr/sbin/nginx; } || true
}

# whether something listens on 127.0.0.1:80
port_80_open() {
    (exec 3<>/dev/tcp/127.0.0.1/80) 2>/dev/null
}

if [[ -z $(find_nginx) ]]; then
    log "installing Debian's nginx"
    had_80=0
    if port_80_open; then had_80=1; fi

    POLICY=/usr/sbin/policy-rc.d
    ours=0
    if [[ ! -e $POLICY ]]; then
        # refuse every service start during the install; removed on exit
        printf '#!/bin/sh\n# edgews scripts/install-nginx.sh: no service starts during the install\nexit 101\n' \
            | $SUDO tee "$POLICY" > /dev/null
        $SUDO chmod 755 "$POLICY"
        ours=1
        trap '$SUDO rm -f "$POLICY"' EXIT
    fi

    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends nginx

    if ((ours)); then
        $SUDO rm -f "$POLICY"
        trap - EXIT
    fi

    # a system nginx the postinst started anyway: stop it, keep it off at boot
    if ((had_80 == 0)); then
        if command -v systemctl > /dev/null 2>&1 && [[ -d /run/systemd/system ]]; then
            $SUDO systemctl disable --now nginx > /dev/null 2>&1 || true
        fi
        if port_80_open; then
            $SUDO service nginx stop > /dev/null 2>&1 || true
        fi
        for _ in $(seq 50); do
            port_80_open || break
            sleep 0.1
        done
        if port_80_open; then
            echo "install-nginx: something still listens on 127.0.0.1:80 after the install" >&2
            exit 1
        fi
    fi
fi

NGINX=$(find_nginx)
if [[ -z $NGINX ]]; then
    echo "install-nginx: nginx is not on PATH or in /usr/sbin after installing Debian's nginx" >&2
    exit 1
fi
"$NGINX" -v
