#!/usr/bin/env bash
# Compare Stowage against Debian's docker-registry (and a bare hyper server,
# the "ceiling") with benches/load.rs, then run the load matrix (benches/matrix.rs:
# monolithic/chunked push and pull of 1/10/100 MB at 1/8/64 clients, 1 GiB push
# and pull, manifest GET and blob HEAD while pushes stream, a mixed workload)
# against both registries in the same run and print one table of both; then the issue-11 targets
# (benches/targets.sh, its own fresh servers) unless --no-targets.
#
#   benches/compare.sh [--quick] [--no-build] [--no-matrix] [--no-targets] [--cell-seconds N (5)]
#                      [--size-mib N] [--seconds N] [--concurrency N]
#
# Starts, each on a free 127.0.0.1 port with its own temp dir:
#   * docker-registry (/usr/bin/docker-registry serve CONFIG, filesystem storage)
#   * stowage (target/release/stowage serve --listen 127.0.0.1:PORT --data-dir DIR),
#     skipped with a note if it cannot be built/started
#   * the hyper ceiling (benches/ceiling.rs), GET only
# runs the load bench against each, prints every table, a combined table and
# stowage/docker-registry ratios, then kills the servers and removes the temp
# dirs (trap). Extra args are passed to the load bench.
# Env: STOWAGE_BIN (default target/release/stowage), LOAD_BIN / CEILING_BIN
# (prebuilt bench executables; default: built with `cargo bench --no-run`).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT="$(pwd)"

QUICK=""
BUILD=1
MATRIX=1
TARGETS=1
MATRIX_ARGS=()
LOAD_ARGS=()
SECONDS_ARG=""
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) QUICK=--quick ;;
        --no-build) BUILD=0 ;;
        --no-matrix) MATRIX=0 ;;
        --no-targets) TARGETS=0 ;;
        --cell-seconds) MATRIX_ARGS+=("$1" "$2"); shift ;;
        --seconds) SECONDS_ARG="$2"; LOAD_ARGS+=("$1" "$2"); shift ;;
        --size-mib|--concurrency|--timeout-secs) LOAD_ARGS+=("$1" "$2"); shift ;;
        *) LOAD_ARGS+=("$1") ;;
    esac
    shift
done
HEY_SECONDS="${SECONDS_ARG:-$([ -n "$QUICK" ] && echo 3 || echo 10)}"
# The full matrix at 5 s cells (matrix.rs defaults to 10): with the load bench and the targets the
# whole run stays near 20 minutes on 2 cores.
if [ -z "$QUICK" ] && [ ${#MATRIX_ARGS[@]} -eq 0 ]; then MATRIX_ARGS=(--cell-seconds 5); fi

log() { echo "compare: $*" >&2; }

WORK="$(mktemp -d /tmp/stowage-compare-XXXXXX)"
. "$ROOT/benches/servers.sh"   # the cleanup trap: servers in PIDS stopped, $WORK removed

LOAD_BIN="${LOAD_BIN:-}"
CEILING_BIN="${CEILING_BIN:-}"
[ -n "$LOAD_BIN" ] || LOAD_BIN="$(bench_exe load)"
if [ -z "$LOAD_BIN" ] || ! [ -x "$LOAD_BIN" ]; then log "could not build benches/load.rs"; exit 1; fi
MATRIX_BIN="${MATRIX_BIN:-}"
if { [ "$MATRIX" = 1 ] || [ "$TARGETS" = 1 ]; } && [ -z "$MATRIX_BIN" ]; then MATRIX_BIN="$(bench_exe matrix || true)"; fi
if [ -z "$CEILING_BIN" ] && [ -f benches/ceiling.rs ]; then
    CEILING_BIN="$(bench_exe ceiling || true)"
fi

RESULTS="$WORK/results.tsv"
: > "$RESULTS"

run_load() { # run_load LABEL URL [extra load args...]
    local label="$1" url="$2"; shift 2
    log "load against $label ($url)"
    local out="$WORK/load-$label.out"
    # load.rs bounds itself (--timeout-secs, default 900); timeout is a backstop.
    if timeout 1200 "$LOAD_BIN" $QUICK --url "$url" --label "$label" "$@" ${LOAD_ARGS[@]+"${LOAD_ARGS[@]}"} \
        > "$out"; then
        grep -v '^LOAD_RESULT' "$out"
        grep '^LOAD_RESULT' "$out" >> "$RESULTS" || true
    else
        cat "$out"
        log "load against $label FAILED"
    fi
}

MATRIX_RESULTS="$WORK/matrix.tsv"
: > "$MATRIX_RESULTS"

# group_need_mib GROUP: free disk (MiB) a matrix group needs: its clients' blobs once each, plus
# 3 GiB for what the cells push in their seconds beyond that and for the server.
group_need_mib() {
    local size="${1%% *}" n="${1#* x}" mib
    n="${n%% *}"
    case "$size" in
        *GiB) mib=$((${size%GiB} * 1024)) ;;
        *MiB) mib=${size%MiB} ;;
        *MB) mib=${size%MB} ;;
        *) echo 3072; return ;;
    esac
    echo $((mib * n + 3072))
}

# run_matrix LABEL: the matrix against fresh servers of kind LABEL (stowage or docker-registry):
# with --quick in one run, else one group of cells at a time (matrix --list-groups), each on its
# own server and data dir, removed after it: the full matrix pushes more than the free disk holds.
run_matrix() {
    [ "$MATRIX" = 1 ] && [ -n "$MATRIX_BIN" ] && [ -x "$MATRIX_BIN" ] || return 0
    local label="$1" groups=() g i=0 dir out args
    if [ -n "$QUICK" ]; then groups=(""); else mapfile -t groups < <("$MATRIX_BIN" --list-groups); fi
    for g in "${groups[@]}"; do
        i=$((i + 1))
        dir="$WORK/$label-matrix-$i"
        out="$dir.out"
        mkdir -p "$dir"
        local need avail
        need="$(group_need_mib "${g:-reads}")"
        avail="$(df -Pm "$dir" | awk 'NR == 2 { print $4 }')"
        if [ "$avail" -lt "$need" ]; then
            log "matrix against $label${g:+, group $g} SKIPPED: needs ~$need MiB of disk, $avail MiB free"
            continue
        fi
        if [ "$label" = stowage ]; then
            start_stowage "$dir" "$STOWAGE_BIN" || { stop_server "$ST_PID"; continue; }
            args=(--url "$ST_URL" --pid "$ST_PID" --user "$ST_USER" --repo "$ST_PROJECT/matrix")
        else
            start_registry "$dir" || { stop_server "$DR_PID"; continue; }
            args=(--url "$DR_URL" --pid "$DR_PID")
        fi
        [ -z "$g" ] || args+=(--group "$g")
        log "matrix against $label${g:+, group $g}"
        if ! timeout 1200 "$MATRIX_BIN" $QUICK --tsv --label "$label" "${args[@]}" \
            ${MATRIX_ARGS[@]+"${MATRIX_ARGS[@]}"} > "$out"; then
            grep -v '^MATRIX' "$out" || true
            log "matrix against $label${g:+, group $g} FAILED"
        fi
        grep '^MATRIX' "$out" >> "$MATRIX_RESULTS" || true
        if [ "$label" = stowage ]; then stop_server "$ST_PID"; else stop_server "$DR_PID"; fi
        rm -rf "$dir" "$out"
    done
}

# --- docker-registry -------------------------------------------------------
if ! command -v docker-registry >/dev/null 2>&1; then
    log "docker-registry not installed (apt-get install docker-registry): skipped"
else
    if start_registry "$WORK/docker-registry"; then
        run_load docker-registry "$DR_URL" --pid "$DR_PID"
    fi
    stop_server "$DR_PID"
    rm -rf "$WORK/docker-registry"
    run_matrix docker-registry
fi

# --- stowage -----------------------------------------------------------------
STOWAGE_BIN="${STOWAGE_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/stowage}"
if [ "$BUILD" = 1 ]; then
    log "cargo build --release --bin stowage"
    cargo build --release --bin stowage >&2 || log "release build of stowage failed"
fi
if ! [ -x "$STOWAGE_BIN" ]; then
    log "no stowage binary at $STOWAGE_BIN: skipped"
else
    if start_stowage "$WORK/stowage" "$STOWAGE_BIN"; then
        run_load stowage "$ST_URL" --pid "$ST_PID" --user "$ST_USER" --repo "$ST_PROJECT/bench"
    fi
    stop_server "$ST_PID"
    rm -rf "$WORK/stowage"
    run_matrix stowage
fi

# --- hyper ceiling -------------------------------------------------------------
if [ -n "$CEILING_BIN" ] && [ -x "$CEILING_BIN" ]; then
    # A port free a moment ago may be taken by a client's connection (the ephemeral range
    # overlaps free_port's): up to 3 ports.
    for _ in 1 2 3; do
        CE_PORT="$(free_port)"
        "$CEILING_BIN" --port "$CE_PORT" --seconds $((HEY_SECONDS + 60)) > "$WORK/ceiling.log" 2>&1 &
        CE_PID=$!
        PIDS+=("$CE_PID")
        if wait_http "http://127.0.0.1:$CE_PORT/" "$CE_PID"; then CE_UP=1; break; fi
        CE_UP=0
        stop_server "$CE_PID"
    done
    if [ "$CE_UP" = 1 ]; then
        run_load "hyper-ceiling" "http://127.0.0.1:$CE_PORT/v2/x/manifests/load" --get-only
    else
        log "ceiling server did not start"; cat "$WORK/ceiling.log" >&2
    fi
    stop_server "$CE_PID"
fi

# --- summary -------------------------------------------------------------------
echo
echo "## Summary ($(nproc) cores; hey runs on the same machine, ${HEY_SECONDS}s per hey run)"
echo
echo "| target | push MB/s | pull MB/s | manifest GET req/s | p99 ms | HEAD blob req/s | p99 ms | CPU s/GiB |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
awk -F'\t' '{ printf "| %s | %s | %s | %s | %s | %s | %s | %s |\n", $2,$3,$4,$5,$6,$7,$8,$9 }' "$RESULTS"
awk -F'\t' '
    $2 == "docker-registry" { for (i = 3; i <= 9; i++) d[i] = $i; have_d = 1 }
    $2 == "stowage"         { for (i = 3; i <= 9; i++) s[i] = $i; have_s = 1 }
    END {
        if (!(have_d && have_s)) exit
        printf "| **stowage / docker-registry** |"
        for (i = 3; i <= 9; i++) {
            if (s[i] == "-" || d[i] == "-" || d[i] + 0 == 0) printf " - |"
            else printf " %.2fx |", s[i] / d[i]
        }
        printf "\n\n(throughput columns: higher is better; p99 and CPU s/GiB: lower is better)\n"
    }' "$RESULTS"

# --- matrix ----------------------------------------------------------------------
if [ -s "$MATRIX_RESULTS" ]; then
    echo
    echo "## Load matrix (stowage | docker-registry, same run; $(nproc) cores, client on the same machine)"
    echo
    echo "| cell | ops/s | MB/s | x | p50 ms | p99 ms | CPU s/GiB | peak RSS MiB | errors |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    # MATRIX label cell ops mbps p50 p99 cpu rss errors
    awk -F'\t' '
        { key = $3; if (!(key in seen)) { seen[key] = 1; order[++n] = key }
          for (i = 4; i <= 10; i++) v[$2, key, i] = $i }
        function pair(k, i) { return (v["stowage", k, i] == "" ? "-" : v["stowage", k, i]) " \\| " \
                                     (v["docker-registry", k, i] == "" ? "-" : v["docker-registry", k, i]) }
        END {
            for (j = 1; j <= n; j++) {
                k = order[j]
                s = v["stowage", k, 5]; d = v["docker-registry", k, 5]
                if (s == "-" || s == "") { s = v["stowage", k, 4]; d = v["docker-registry", k, 4] }
                ratio = (s != "" && d != "" && s != "-" && d != "-" && d + 0 > 0) ? sprintf("%.2fx", s / d) : "-"
                printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", k, pair(k, 4), pair(k, 5), ratio,
                    pair(k, 6), pair(k, 7), pair(k, 8), pair(k, 9), pair(k, 10)
            }
            printf "\n(each cell: stowage | docker-registry; x = stowage / docker-registry in MB/s, or ops/s where no bytes move;\n"
            printf "CPU s/GiB and peak RSS (VmHWM, reset at the start of the cell) are the server process; lower is better)\n"
        }' "$MATRIX_RESULTS"
fi

# --- targets ---------------------------------------------------------------------
if [ "$TARGETS" = 1 ]; then
    if [ -n "$MATRIX_BIN" ] && [ -x "$STOWAGE_BIN" ]; then
        echo
        STOWAGE_BIN="$STOWAGE_BIN" MATRIX_BIN="$MATRIX_BIN" benches/targets.sh $QUICK --no-build \
            || log "targets FAILED"
    else
        log "targets skipped: no matrix bench or no stowage binary"
    fi
fi
