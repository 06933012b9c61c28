# Shell helpers shared by benches/compare.sh, compare-writes.sh and targets.sh (sourced, never
# run): free loopback ports, waiting for a server, Distribution's config, starting and stopping
# either server, and the cleanup trap. Sourcing it installs the trap: set WORK (a temp dir the
# trap removes) first; every server started goes into PIDS, which the trap stops.

PIDS=()

# bench_cleanup: stops every server in PIDS (SIGTERM, bounded wait, SIGKILL), removes $WORK.
bench_cleanup() {
    local p
    for p in ${PIDS[@]+"${PIDS[@]}"}; do kill "$p" 2>/dev/null || true; done
    for p in ${PIDS[@]+"${PIDS[@]}"}; do
        for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$p" 2>/dev/null || true
    done
    [ -z "${WORK:-}" ] || rm -rf "$WORK"
}
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

# stop_server PID: SIGTERM, bounded wait, SIGKILL; then forgets it, so that the cleanup never
# signals a process that was given the same id later.
stop_server() {
    local p keep=()
    kill "$1" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
    for p in ${PIDS[@]+"${PIDS[@]}"}; do [ "$p" = "$1" ] || keep+=("$p"); done
    PIDS=(${keep[@]+"${keep[@]}"})
}

# free_port: a free TCP port on 127.0.0.1.
free_port() {
    local p
    for _ in $(seq 1 100); do
        p=$((20000 + RANDOM % 20000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return 0; fi
    done
    return 1
}

# wait_http URL PID: until anything answers HTTP on URL (max 30 s) or PID dies.
wait_http() {
    for _ in $(seq 1 150); do
        curl -s -o /dev/null --max-time 2 "$1" && return 0
        kill -0 "$2" 2>/dev/null || return 1
        sleep 0.2
    done
    return 1
}

# registry_config DIR PORT: writes DIR/config.yml for docker-registry (filesystem storage in
# DIR/data, deletes on, no upload purging, quiet logs) listening on 127.0.0.1:PORT.
registry_config() {
    mkdir -p "$1/data"
    cat > "$1/config.yml" <<CONFIG
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: $1/data
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$2
  secret: stowage-compare-not-secret
CONFIG
}

# start_registry DIR: docker-registry with its config and data in DIR on a free port; sets
# DR_PID and DR_URL. Returns 1 (with its log) if it does not come up.
start_registry() {
    local port
    port="$(free_port)"
    registry_config "$1" "$port"
    docker-registry serve "$1/config.yml" > "$1/log" 2>&1 &
    DR_PID=$!
    PIDS+=("$DR_PID")
    DR_URL="http://127.0.0.1:$port"
    if ! wait_http "$DR_URL/v2/" "$DR_PID"; then
        echo "docker-registry did not start:" >&2; cat "$1/log" >&2; return 1
    fi
}

# start_stowage DIR BIN [CONFIG_TOML]: BIN serve with an empty data dir DIR/data on a free port
# (CONFIG_TOML, if given, as its config file), admin bootstrapped with a throwaway password and a
# project created (images are named <project id>/<repo>); sets ST_PID, ST_URL, ST_USER and
# ST_PROJECT. Returns 1 (with its log) if it does not come up.
start_stowage() {
    local dir="$1" bin="$2" port pw config=()
    mkdir -p "$dir/data"
    if [ -n "${3:-}" ]; then
        printf '%s\n' "$3" > "$dir/config.toml"
        config=(--config "$dir/config.toml")
    fi
    port="$(free_port)"
    pw="bench-password-$RANDOM$RANDOM"   # the bootstrap admin password needs 12+ characters
    STOWAGE_ADMIN_PASSWORD="$pw" "$bin" serve ${config[@]+"${config[@]}"} \
        --listen "127.0.0.1:$port" --data-dir "$dir/data" > "$dir/log" 2>&1 &
    ST_PID=$!
    PIDS+=("$ST_PID")
    ST_URL="http://127.0.0.1:$port"
    ST_USER="admin:$pw"
    if ! wait_http "$ST_URL/v2/" "$ST_PID"; then
        echo "stowage did not start:" >&2; tail -30 "$dir/log" >&2; return 1
    fi
    ST_PROJECT="$(curl -s --max-time 10 -u "$ST_USER" -H 'content-type: application/json' \
        -d '{"name":"bench"}' "$ST_URL/api/v1/projects" | sed -n 's/.*"id":"\([^"]*\)".*/\1/p')"
    if [ -z "$ST_PROJECT" ]; then
        echo "could not create a stowage project (POST /api/v1/projects)" >&2; tail -20 "$dir/log" >&2; return 1
    fi
}

# bench_exe NAME: builds benches/NAME.rs (cargo bench --no-run) and prints its executable.
bench_exe() {
    cargo bench --bench "$1" --no-run 2>&1 | tee "$WORK/build-$1.log" >&2
    sed -n 's/.*Executable .*(\(.*\))$/\1/p' "$WORK/build-$1.log" | tail -1
}
