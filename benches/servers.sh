# Shell helpers shared by benches/compare.sh and benches/compare-writes.sh (sourced, never run):
# free loopback ports, waiting for a server, and Distribution's config. They start nothing.

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
