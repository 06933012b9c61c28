#!/usr/bin/env bash
# Profile one blob push into Stowage: server CPU seconds, and either a perf profile (cpu-clock
# samples, flat) or a callgrind instruction count of just the push (repeatable on a busy machine).
#
#   benches/profile-push.sh [--callgrind] [--mib N] [--bin PATH]
#   benches/profile-push.sh --ab "PATH[:std_fs|:io_uring]|distribution ..." [--runs N] [--mib N]
#
# Starts target/release/stowage (or --bin) on a free 127.0.0.1 port in a temp dir, pushes N MiB
# (default 1024; 64 with --callgrind) of random bytes with curl (POST, then PUT ?digest= with the
# body), prints the server's CPU time for the push and the top of the profile, then stops the
# server and removes the temp dir. Needs perf (linux-perf) or valgrind, and curl.
# --ab pushes the same blob with each listed build in turn, N rounds (default 5), every push into
# a freshly started server with an empty data dir ("distribution": Debian's docker-registry), no
# profiler; prints each push's server CPU and wall time, then the medians per build. PATH:std_fs
# runs that build with storage.io = "std_fs" (default "auto", io_uring here).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
. "$ROOT/benches/servers.sh"

CALLGRIND=0
MIB=""
BIN="$ROOT/target/release/stowage"
AB=""
RUNS=5
while [ $# -gt 0 ]; do
    case "$1" in
        --callgrind) CALLGRIND=1 ;;
        --mib) MIB="$2"; shift ;;
        --bin) BIN="$2"; shift ;;
        --ab) AB="$2"; shift ;;
        --runs) RUNS="$2"; shift ;;
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
cpu() { awk '{ print $14 + $15 }' "/proc/$SRV/stat"; }
# Context switches (voluntary + involuntary) summed over the server's threads.
switches() { cat /proc/"$SRV"/task/*/status 2>/dev/null | awk '/ctxt_switches/ { n += $2 } END { print n }'; }
stop_server() {
    kill "$SRV" 2>/dev/null || true
    wait "$SRV" 2>/dev/null || true
    SRV=""
}

if [ -n "$AB" ]; then
    # One push into a fresh server of build $1; prints "build cpu_s wall_s".
    ab_push() {
        local port loc sep auth=() t0 t1 c0 c1 st x0 x1
        port="$(free_port)"
        rm -rf "$WORK/data" && mkdir -p "$WORK/data"
        if [ "$1" = distribution ]; then
            registry_config "$WORK/data" "$port"
            docker-registry serve "$WORK/data/config.yml" > "$WORK/log" 2>&1 &
            SRV=$!
            wait_http "http://127.0.0.1:$port/v2/" "$SRV" || wait_http "http://127.0.0.1:$port/v2/" "$SRV" \
                || { echo "docker-registry did not start" >&2; exit 1; }
            loc="$(curl -s --max-time 60 -D - -o /dev/null -X POST -H 'content-length: 0' \
                "http://127.0.0.1:$port/v2/profile/blob/blobs/uploads/" | tr -d '\r' | sed -n 's/^[Ll]ocation: //p')"
        else
            local pw="profile-password-$RANDOM$RANDOM" proj io="${1#*:}"
            [ "$io" = "$1" ] && io=auto
            printf '[storage]\nio = "%s"\n' "$io" > "$WORK/config.toml"
            STOWAGE_ADMIN_PASSWORD="$pw" "${1%%:*}" serve --config "$WORK/config.toml" --listen "127.0.0.1:$port" \
                --data-dir "$WORK/data" > "$WORK/log" 2>&1 &
            SRV=$!
            wait_http "http://127.0.0.1:$port/v2/" "$SRV" || wait_http "http://127.0.0.1:$port/v2/" "$SRV" \
                || { echo "stowage did not start" >&2; exit 1; }
            auth=(-u "admin:$pw")
            proj="$(curl -s --max-time 60 "${auth[@]}" -H 'content-type: application/json' \
                -d '{"name":"profile"}' "http://127.0.0.1:$port/api/v1/projects" | sed -n 's/.*"id":"\([^"]*\)".*/\1/p')"
            loc="$(curl -s --max-time 60 -D - -o /dev/null "${auth[@]}" -X POST -H 'content-length: 0' \
                "http://127.0.0.1:$port/v2/$proj/profile/blobs/uploads/" | tr -d '\r' | sed -n 's/^[Ll]ocation: //p')"
        fi
        case "$loc" in http*) ;; *) loc="http://127.0.0.1:$port$loc" ;; esac
        sep='?'; case "$loc" in *\?*) sep='&' ;; esac
        x0="$(switches)"; c0="$(cpu)"; t0="$(date +%s.%N)"
        st="$(curl -s --max-time 900 -o /dev/null -w '%{http_code}' "${auth[@]}" -T "$WORK/blob" \
            -H 'content-type: application/octet-stream' "$loc${sep}digest=$DIG")"
        t1="$(date +%s.%N)"; c1="$(cpu)"; x1="$(switches)"
        stop_server
        [ "$st" = 201 ] || { echo "$1: push answered $st" >&2; exit 1; }
        echo "$1 $(echo "scale=3; ($c1 - $c0) / $(getconf CLK_TCK)" | bc) $(echo "$t1 - $t0" | bc) $((x1 - x0))"
    }
    for r in $(seq 1 "$RUNS"); do
        for b in $AB; do
            line="$(ab_push "$b")"
            echo "round $r: $line (load $(cut -d' ' -f1 /proc/loadavg))"
            echo "$line" >> "$WORK/ab"
        done
    done
    echo "medians over $RUNS pushes of $MIB MiB each (server CPU s, wall s, context switches):"
    for b in $AB; do
        for col in 2 3 4; do
            awk -v b="$b" -v c="$col" '$1 == b { print $c }' "$WORK/ab" | sort -g \
                | awk '{ v[NR] = $1 } END { m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%s ", m }'
        done
        echo " $b"
    done
    exit 0
fi
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
    # PERF_KEEP=FILE keeps the samples for other reports (--sort comm, -G).
    if [ -n "${PERF_KEEP:-}" ]; then cp "$WORK/perf.data" "$PERF_KEEP"; fi
    perf report -i "$WORK/perf.data" --no-children --sort dso,symbol --stdio 2>/dev/null \
        | grep -E '^ +[0-9]' | head -20 | cut -c1-110 || true
fi
