#!/usr/bin/env bash
# Profile one blob push into Stowage: server CPU seconds, and either a perf profile (cpu-clock
# samples, flat) or a callgrind instruction count of just the push (repeatable on a busy machine).
#
#   benches/profile-push.sh [--callgrind] [--mib N] [--bin PATH]
#
# Starts target/release/stowage (or --bin) on a free 127.0.0.1 port in a temp dir, pushes N MiB
# (default 1024; 64 with --callgrind) of random bytes with curl (POST, then PUT ?digest= with the
# body), prints the server's CPU time for the push and the top of the profile, then stops the
# server and removes the temp dir. Needs perf (linux-perf) or valgrind, and curl.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
. "$ROOT/benches/servers.sh"

CALLGRIND=0
MIB=""
BIN="$ROOT/target/release/stowage"
while [ $# -gt 0 ]; do
    case "$1" in
        --callgrind) CALLGRIND=1 ;;
        --mib) MIB="$2"; shift ;;
        --bin) BIN="$2"; shift ;;
        *) echo "profile-push: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
MIB="${MIB:-$([ "$CALLGRIND" = 1 ] && echo 64 || echo 1024)}"

WORK="$(mktemp -d /tmp/stowage-profile-XXXXXX)"
SRV=""
PERF=""
cleanup() {
    [ -n "$PERF" ] && kill -INT "$PERF" 2>/dev/null || true
    [ -n "$SRV" ] && kill "$SRV" 2>/dev/null || true
    for _ in $(seq 1 50); do [ -n "$SRV" ] && kill -0 "$SRV" 2>/dev/null || break; sleep 0.1; done
    [ -n "$SRV" ] && kill -9 "$SRV" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

head -c $((MIB * 1024 * 1024)) /dev/urandom > "$WORK/blob"
DIG="sha256:$(sha256sum "$WORK/blob" | cut -d' ' -f1)"
PORT="$(free_port)"
PW="profile-password-$RANDOM$RANDOM"
mkdir -p "$WORK/data"
if [ "$CALLGRIND" = 1 ]; then
    STOWAGE_ADMIN_PASSWORD="$PW" valgrind --tool=callgrind --instr-atstart=no \
        --callgrind-out-file="$WORK/callgrind.out" "$BIN" serve --listen "127.0.0.1:$PORT" \
        --data-dir "$WORK/data" > "$WORK/log" 2>&1 &
else
    STOWAGE_ADMIN_PASSWORD="$PW" "$BIN" serve --listen "127.0.0.1:$PORT" --data-dir "$WORK/data" \
        > "$WORK/log" 2>&1 &
fi
SRV=$!
wait_http "http://127.0.0.1:$PORT/v2/" "$SRV" || { echo "stowage did not start" >&2; tail "$WORK/log" >&2; exit 1; }
PROJ="$(curl -s --max-time 60 -u "admin:$PW" -H 'content-type: application/json' -d '{"name":"profile"}' \
    "http://127.0.0.1:$PORT/api/v1/projects" | sed -n 's/.*"id":"\([^"]*\)".*/\1/p')"
LOC="$(curl -s --max-time 60 -D - -o /dev/null -u "admin:$PW" -X POST -H 'content-length: 0' \
    "http://127.0.0.1:$PORT/v2/$PROJ/profile/blobs/uploads/" | tr -d '\r' | sed -n 's/^[Ll]ocation: //p')"
case "$LOC" in http*) ;; *) LOC="http://127.0.0.1:$PORT$LOC" ;; esac
SEP='?'; case "$LOC" in *\?*) SEP='&' ;; esac
cpu() { awk '{ print $14 + $15 }' "/proc/$SRV/stat"; }

if [ "$CALLGRIND" = 1 ]; then
    callgrind_control -i on "$SRV" > /dev/null
else
    perf record -e cpu-clock -F 499 -g -p "$SRV" -o "$WORK/perf.data" 2> /dev/null &
    PERF=$!
    sleep 0.5
fi
C0="$(cpu)"
T0="$(date +%s.%N)"
ST="$(curl -s --max-time 900 -o /dev/null -w '%{http_code}' -u "admin:$PW" -T "$WORK/blob" \
    -H 'content-type: application/octet-stream' "$LOC${SEP}digest=$DIG")"
T1="$(date +%s.%N)"
C1="$(cpu)"
[ "$ST" = 201 ] || { echo "push answered $ST" >&2; exit 1; }
echo "push of $MIB MiB: $(echo "$T1 - $T0" | bc) s wall, server CPU $(echo "scale=2; ($C1 - $C0) / $(getconf CLK_TCK)" | bc) s"
if [ "$CALLGRIND" = 1 ]; then
    callgrind_control -i off "$SRV" > /dev/null
    kill "$SRV"; wait "$SRV" 2>/dev/null || true; SRV=""
    callgrind_annotate "$WORK/callgrind.out" 2>/dev/null | awk '/^-- Auto/ { exit } /^Ir/ { on = 1 } on' | head -20
else
    kill -INT "$PERF"; wait "$PERF" 2>/dev/null || true; PERF=""
    perf report -i "$WORK/perf.data" --no-children --sort dso,symbol --stdio 2>/dev/null \
        | grep -E '^ +[0-9]' | head -20 | cut -c1-110
fi
