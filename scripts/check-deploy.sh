#!/usr/bin/env bash
# Checks the deployment files (docs/deploy.md) without root and without
# touching the system's nginx or systemd:
#
#   1. deploy/nginx-edgews.conf: `nginx -t` with a throwaway prefix, an
#      nginx.conf that includes it in its http block, and a throwaway
#      certificate (openssl) in place of /etc/nginx/tls/. Any [warn] fails.
#   2. deploy/edgews.service: `systemd-analyze verify` on a copy whose
#      ExecStart names a copy of the release binary (verify wants it to
#      exist), any output fails; `systemd-analyze security --offline` prints
#      its exposure score and fails above 3.0
#      (--threshold counts tenths).
#   3. The unit's command line, run: its ExecStart arguments with --listen
#      and --metrics-listen moved to 127.0.0.1:0 and the certificate paths
#      to the throwaway ones; it must say it listens, then exit 0 on SIGTERM.
#   4. .dockerignore (built from the top folder by deploy/Dockerfile): the
#      context it leaves holds every workspace member, every target's
#      source file and every include_str!/include_bytes! file.
#      CONTEXT_BUILD=1 also runs the Dockerfile's cargo command in that
#      context (a fresh target folder: about 4 minutes on 2 CPUs).
#   5. `bash -n` on scripts/*.sh and benches/*.sh.
#
#   scripts/check-deploy.sh
#   EDGEWS=/path/to/edgews scripts/check-deploy.sh     # that binary, no build
#
# Needs nginx (installed with scripts/install-nginx.sh when missing),
# systemd-analyze, openssl, cargo, python3. Prints a line per check; exits 1
# if any failed.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

TMP=$(mktemp -d)
SERVER_PID=
trap '[[ -z $SERVER_PID ]] || kill -KILL "$SERVER_PID" 2>/dev/null || true; rm -rf "$TMP"' EXIT

FAILED=0
ok() { echo "ok    $*"; }
fail() { echo "FAIL  $*"; FAILED=1; }
# Prints file $1 indented, for a failure's details.
show() { sed 's/^/      /' "$1"; }

for tool in systemd-analyze openssl cargo python3; do
    command -v "$tool" >/dev/null || { echo "check-deploy: needs $tool" >&2; exit 1; }
done
NGINX=$(command -v nginx || { [[ -x /usr/sbin/nginx ]] && echo /usr/sbin/nginx; } || true)
if [[ -z $NGINX ]]; then
    scripts/install-nginx.sh
    NGINX=$(command -v nginx || echo /usr/sbin/nginx)
fi

# a throwaway self-signed certificate for localhost
mkdir -p "$TMP/tls"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
    -subj /CN=localhost -addext subjectAltName=DNS:localhost \
    -keyout "$TMP/tls/key.pem" -out "$TMP/tls/fullchain.pem" 2>/dev/null
chmod 600 "$TMP/tls/key.pem"

# --- 1. nginx -t --------------------------------------------------------------

mkdir -p "$TMP/nginx/logs"
sed "s#/etc/nginx/tls/#$TMP/tls/#" deploy/nginx-edgews.conf >"$TMP/nginx/edgews.conf"
cat >"$TMP/nginx/nginx.conf" <<EOF
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/logs/error.log;
events {}
http {
    access_log $TMP/nginx/logs/access.log;
    client_body_temp_path $TMP/nginx/client_body;
    proxy_temp_path $TMP/nginx/proxy;
    fastcgi_temp_path $TMP/nginx/fastcgi;
    uwsgi_temp_path $TMP/nginx/uwsgi;
    scgi_temp_path $TMP/nginx/scgi;
    include $TMP/nginx/edgews.conf;
}
EOF
rc=0
"$NGINX" -t -p "$TMP/nginx/" -c "$TMP/nginx/nginx.conf" -e "$TMP/nginx/logs/error.log" \
    >"$TMP/nginx.out" 2>&1 || rc=$?
if [[ $rc == 0 ]] && ! grep -qE '\[(warn|error|crit|alert|emerg)\]' "$TMP/nginx.out"; then
    ok "nginx -t: deploy/nginx-edgews.conf ($("$NGINX" -v 2>&1 | sed 's/.*version: //'))"
else
    fail "nginx -t: deploy/nginx-edgews.conf (exit $rc)"
    show "$TMP/nginx.out"
fi

# --- 2. systemd-analyze ----------------------------------------------------------

if [[ -n ${EDGEWS:-} ]]; then
    [[ -x $EDGEWS ]] || { echo "check-deploy: EDGEWS=$EDGEWS is not executable" >&2; exit 1; }
else
    EDGEWS=${CARGO_TARGET_DIR:-$ROOT/target}/release/edgews
    [[ -x $EDGEWS ]] || cargo build --release --locked -p edgews-cli
fi
mkdir -p "$TMP/bin" "$TMP/unit"
cp "$EDGEWS" "$TMP/bin/edgews"
sed "s#/usr/local/bin/edgews#$TMP/bin/edgews#" deploy/edgews.service >"$TMP/unit/edgews.service"
rc=0
systemd-analyze verify "$TMP/unit/edgews.service" >"$TMP/verify.out" 2>&1 || rc=$?
if [[ $rc == 0 && ! -s $TMP/verify.out ]]; then
    ok "systemd-analyze verify: deploy/edgews.service (ExecStart moved to a copy of $EDGEWS)"
else
    fail "systemd-analyze verify: deploy/edgews.service (exit $rc)"
    show "$TMP/verify.out"
fi
rc=0
systemd-analyze security --offline=yes --threshold=30 "$TMP/unit/edgews.service" \
    >"$TMP/security.out" 2>&1 || rc=$?
score=$(grep -o 'exposure level for edgews.service: .*' "$TMP/security.out" || echo "no score")
if [[ $rc == 0 ]]; then
    ok "systemd-analyze security: ${score#exposure level for }"
else
    fail "systemd-analyze security (exit $rc): ${score#exposure level for }"
    grep '✗' "$TMP/security.out" | sed 's/^/      /' || true
fi

# --- 3. the unit's command line -----------------------------------------------------

# ExecStart's words, continuation lines joined, the binary dropped
read -r -a ARGS < <(awk '/^ExecStart=/ { on = 1; sub(/^ExecStart=/, "") }
    on { line = $0; sub(/\\$/, "", line); printf "%s ", line; if ($0 !~ /\\$/) { print ""; exit } }' deploy/edgews.service)
ARGS=("${ARGS[@]:1}")
for i in "${!ARGS[@]}"; do
    case ${ARGS[$i]} in
        --listen | --metrics-listen) ARGS[i + 1]=127.0.0.1:0 ;;
        --tls-cert) ARGS[i + 1]=$TMP/tls/fullchain.pem ;;
        --tls-key) ARGS[i + 1]=$TMP/tls/key.pem ;;
    esac
done
"$TMP/bin/edgews" "${ARGS[@]}" >"$TMP/run.out" 2>"$TMP/run.err" &
SERVER_PID=$!
for _ in $(seq 100); do
    grep -q 'listening on' "$TMP/run.out" && break
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
done
listening=$(grep -o 'listening on .*' "$TMP/run.out" || true)
kill -TERM "$SERVER_PID" 2>/dev/null || true
rc=0
wait "$SERVER_PID" || rc=$?
SERVER_PID=
if [[ -n $listening && $rc == 0 ]]; then
    ok "the unit's command line runs (edgews ${ARGS[0]}: $listening; exit 0 on SIGTERM)"
else
    fail "the unit's command line: edgews ${ARGS[*]} (exit $rc${listening:+, $listening})"
    show "$TMP/run.out"
    tail -n 5 "$TMP/run.err" | sed 's/^/      /'
fi

# --- 4. the Docker build context ----------------------------------------------------

# .dockerignore is an allow-list: `*`, then `!PATH` lines
mapfile -t KEEP < <(grep -v '^\s*\(#\|$\)' .dockerignore)
if [[ ${KEEP[0]:-} != '*' ]]; then
    fail ".dockerignore: expected '*' and then '!PATH' lines (the form this check reads)"
else
    mkdir -p "$TMP/ctx"
    for p in "${KEEP[@]:1}"; do
        p=${p#!}
        p=${p%/}
        [[ -e $p ]] && cp -r --parents "$p" "$TMP/ctx/"
    done
    rc=0
    (cd "$TMP/ctx" && cargo metadata --format-version 1 --locked --offline --no-deps) \
        >"$TMP/metadata.json" 2>"$TMP/metadata.err" || rc=$?
    if [[ $rc != 0 ]]; then
        fail ".dockerignore: cargo metadata in the context it leaves (exit $rc)"
        show "$TMP/metadata.err"
    elif python3 - "$TMP/metadata.json" "$TMP/ctx" >"$TMP/ctx.out" <<'EOF'
import json, os, re, sys
meta, ctx = json.load(open(sys.argv[1])), sys.argv[2]
missing, files = [], 0
for pkg in meta["packages"]:
    for t in pkg["targets"]:
        if not os.path.exists(t["src_path"]):
            missing.append(f'{pkg["name"]} target {t["name"]}: {os.path.relpath(t["src_path"], ctx)}')
for top, _, names in os.walk(ctx):
    for n in names:
        if not n.endswith(".rs"):
            continue
        files += 1
        path = os.path.join(top, n)
        for m in re.finditer(r'include_(?:str|bytes)!\(\s*"([^"]+)"', open(path, errors="replace").read()):
            if not os.path.exists(os.path.join(top, m.group(1))):
                missing.append(f'{os.path.relpath(path, ctx)}: include {m.group(1)}')
print(f'{len(meta["packages"])} packages, {files} .rs files')
for m in missing:
    print("missing", m)
sys.exit(1 if missing else 0)
EOF
    then
        ok ".dockerignore: the context holds every member, target and included file ($(cat "$TMP/ctx.out"))"
    else
        fail ".dockerignore: the context misses files deploy/Dockerfile's build needs"
        show "$TMP/ctx.out"
    fi
    if [[ ${CONTEXT_BUILD:-0} == 1 ]]; then
        rc=0
        (cd "$TMP/ctx" && CARGO_TARGET_DIR=$TMP/ctx-target cargo build --release --locked -p edgews-cli) \
            >"$TMP/build.out" 2>&1 || rc=$?
        if [[ $rc == 0 ]]; then
            ok "cargo build --release --locked -p edgews-cli in that context: $(stat -c %s "$TMP/ctx-target/release/edgews") bytes"
        else
            fail "cargo build --release --locked -p edgews-cli in that context (exit $rc)"
            tail -n 10 "$TMP/build.out" | sed 's/^/      /'
        fi
    fi
fi

# --- 5. bash -n -----------------------------------------------------------------------

for f in scripts/*.sh benches/*.sh; do
    if bash -n "$f" 2>"$TMP/bashn.err"; then
        ok "bash -n $f"
    else
        fail "bash -n $f"
        show "$TMP/bashn.err"
    fi
done

if [[ $FAILED != 0 ]]; then
    echo "check-deploy: some checks FAILED" >&2
    exit 1
fi
echo "check-deploy: all checks passed"
