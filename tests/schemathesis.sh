#!/usr/bin/env bash
# Schemathesis against a running Stowage: property-based requests generated from the served
# OpenAPI document (/api/v1/openapi.json), every check on (`--checks all`: no 5xx, only
# documented statuses, bodies and headers as documented, schema-valid requests accepted and
# schema-violating ones refused, 405 with Allow for undocumented methods, auth enforced).
#
#   tests/schemathesis.sh           called by tests/run after cargo test
#
# 1. installs Schemathesis $ST_VERSION into a venv ($STOWAGE_ST_VENV, default
#    /tmp/stowage-venv; on Debian, python3-venv is installed with apt-get if missing);
# 2. builds the debug `stowage` binary and starts `stowage serve` on a free loopback port in a
#    temp data dir (both removed on exit);
# 3. runs Schemathesis twice, bounded ($STOWAGE_ST_MAX_EXAMPLES examples per operation and phase,
#    $STOWAGE_ST_TIMEOUT seconds per run): first with an admin's view-only access token (Bearer),
#    then with the admin's password (Basic), which may also delete and change things: the server
#    is a throwaway one, and refuses to let the admin delete or disable itself.
# Exits non-zero if either run fails (or cannot run); never skips.
#
# Env knobs: STOWAGE_ST_SEED (default fixed, so a failure reproduces; "random" for a new seed
# each run, printed by Schemathesis), STOWAGE_ST_MAX_EXAMPLES (default 25), STOWAGE_ST_TIMEOUT
# (default 240).
set -euo pipefail

cd "$(dirname "$0")/.."

ST_VERSION=4.32.5
VENV="${STOWAGE_ST_VENV:-/tmp/stowage-venv}"
MAX_EXAMPLES="${STOWAGE_ST_MAX_EXAMPLES:-25}"
TIMEOUT="${STOWAGE_ST_TIMEOUT:-240}"
SEED="${STOWAGE_ST_SEED:-20261204}"
ADMIN_PASSWORD="schemathesis-admin-$RANDOM$RANDOM"

log() { echo "tests/schemathesis.sh: $*" >&2; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo -n "$@"; fi
}

ensure_schemathesis() {
    if [ "$("$VENV/bin/st" --version 2>/dev/null)" = "st, version $ST_VERSION" ]; then
        return 0
    fi
    rm -rf "$VENV"
    if ! python3 -m venv "$VENV" >/dev/null 2>&1; then
        # Debian ships venv (ensurepip) as a package of its own.
        log "python3 -m venv failed; installing python3-venv"
        rm -rf "$VENV"
        export DEBIAN_FRONTEND=noninteractive
        as_root apt-get update -q >/tmp/stowage-apt-venv.log 2>&1 || { cat /tmp/stowage-apt-venv.log >&2; return 1; }
        local pyver
        pyver="$(python3 -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
        as_root apt-get install -y -q python3-venv "python$pyver-venv" >>/tmp/stowage-apt-venv.log 2>&1 \
            || as_root apt-get install -y -q python3-venv >>/tmp/stowage-apt-venv.log 2>&1 \
            || { tail -20 /tmp/stowage-apt-venv.log >&2; return 1; }
        python3 -m venv "$VENV"
    fi
    log "installing schemathesis==$ST_VERSION into $VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check "schemathesis==$ST_VERSION"
}

ensure_schemathesis

log "building stowage"
cargo build -q --bin stowage
target_dir="$(cargo metadata --format-version 1 --no-deps \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
BIN="$target_dir/debug/stowage"

TMP="$(mktemp -d /tmp/stowage-st.XXXXXX)"
SERVER_PID=""
cleanup() {
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT

PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
URL="http://127.0.0.1:$PORT"
# Backups the fuzzer asks for may go only into the temp dir (backup.root), never elsewhere.
printf '[backup]\nroot = "%s"\n' "$TMP/backups" >"$TMP/config.toml"
STOWAGE_ADMIN_PASSWORD="$ADMIN_PASSWORD" "$BIN" serve --config "$TMP/config.toml" --listen "127.0.0.1:$PORT" \
    --data-dir "$TMP/data" >"$TMP/server.log" 2>&1 &
SERVER_PID=$!

# Waits for /healthz (60 s), then makes the admin's view-only access token; prints the token.
# Python's standard library only: a fresh Debian has no curl.
TOKEN="$(STOWAGE_URL="$URL" STOWAGE_PW="$ADMIN_PASSWORD" STOWAGE_PID="$SERVER_PID" python3 - <<'EOF'
import base64, json, os, sys, time, urllib.request
url, pw, pid = os.environ["STOWAGE_URL"], os.environ["STOWAGE_PW"], int(os.environ["STOWAGE_PID"])
for _ in range(600):
    try:
        if urllib.request.urlopen(url + "/healthz", timeout=2).status == 200:
            break
    except OSError:
        pass
    try:
        os.kill(pid, 0)
    except OSError:
        sys.exit("stowage exited before it became healthy")
    time.sleep(0.1)
else:
    sys.exit("stowage did not become healthy in 60 s")
body = json.dumps({"name": "st", "scopes": ["view"], "expires_in_days": 1}).encode()
basic = base64.b64encode(b"admin:" + pw.encode()).decode()
req = urllib.request.Request(url + "/api/v1/tokens", data=body, method="POST",
                             headers={"Content-Type": "application/json", "Authorization": "Basic " + basic})
print(json.load(urllib.request.urlopen(req, timeout=30))["token"])
EOF
)" || { log "server did not start; its log:"; tail -30 "$TMP/server.log" >&2; exit 1; }

run_st() {
    local what="$1"
    shift
    local -a seed=()
    if [ "$SEED" != random ]; then seed=(--seed "$SEED"); fi
    log "schemathesis ($what): st run $URL/api/v1/openapi.json --checks all --max-examples $MAX_EXAMPLES ${seed[*]}"
    # From the temp dir, so nothing is written into the source tree.
    (cd "$TMP" && timeout --kill-after=10 "$TIMEOUT" "$VENV/bin/st" run "$URL/api/v1/openapi.json" \
        --checks all --max-examples "$MAX_EXAMPLES" "${seed[@]}" \
        --generation-database none --no-color --request-timeout 30 "$@")
}

status=0
start=$SECONDS
run_st "admin's view-only access token" -H "Authorization: Bearer $TOKEN" || status=1
run_st "admin's password" --auth "admin:$ADMIN_PASSWORD" || status=1
if [ "$status" != 0 ]; then
    log "failed; the server's errors:"
    grep -E 'ERROR|WARN' "$TMP/server.log" | tail -30 >&2 || true
fi
log "done in $((SECONDS - start)) s, exit status $status"
exit "$status"
