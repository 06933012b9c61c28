#!/usr/bin/env bash
# The issue-11 targets, Stowage beside Debian's docker-registry (CNCF Distribution 2.8) in the
# same run, as one table "measure | target | Stowage | Distribution | ratio | met?".
#
#   benches/targets.sh [--quick] [--no-build] [--size-mib N] [--clients N] [--blobs N]
#                      [--push-mb N] [--runs N] [--samples N] [--cell-seconds N] [--no-tag-page]
#
# Three phases (benches/matrix.rs --targets, see benches/targets/mod.rs), each on a FRESH server
# of each kind (its own temp data dir, removed after the phase, so the disk holds one phase of one
# server at a time), Distribution then Stowage within each phase:
#   pulls   push --blobs (8) distinct --size-mib (1024) MiB blobs, then --clients (64) concurrent
#           pulls, one each: peak RSS of the server, aggregate MB/s;
#   pushes  --clients concurrent pushes of a distinct --push-mb (100) MB blob each: peak RSS;
#   single  --runs (3) x (push of a --size-mib blob: MB/s and server CPU s/GiB; its pull: MB/s),
#           --samples (5) first-byte times of that blob with its page cache dropped, manifest GET
#           by tag at --clients connections for --cell-seconds (10) while 4 clients push.
# Then the engine's criterion bench tag_page (a page of 100 from 1,000,000 tags; it fills the
# tags first), unless --no-tag-page.
# --quick (for .ci/run): 64 MiB blobs, 8 clients, 4 blobs, 10 MB pushes, 3 samples, 2 s cell,
# tag_page with criterion's --quick. Any option overrides. A phase that would not fit the free
# disk space is skipped with a note. Every run sits under `timeout`; the trap stops the servers
# and removes the temp dirs.
# Env: STOWAGE_BIN (default ${CARGO_TARGET_DIR:-target}/release/stowage, built first unless
# --no-build), MATRIX_BIN (a prebuilt benches/matrix.rs executable).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT="$(pwd)"

QUICK=""
BUILD=1
TAG_PAGE=1
SIZE_MIB="" CLIENTS="" BLOBS="" PUSH_MB="" RUNS="" SAMPLES="" CELL_SECONDS=""
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) QUICK=1 ;;
        --no-build) BUILD=0 ;;
        --no-tag-page) TAG_PAGE=0 ;;
        --size-mib) SIZE_MIB="$2"; shift ;;
        --clients) CLIENTS="$2"; shift ;;
        --blobs) BLOBS="$2"; shift ;;
        --push-mb) PUSH_MB="$2"; shift ;;
        --runs) RUNS="$2"; shift ;;
        --samples) SAMPLES="$2"; shift ;;
        --cell-seconds) CELL_SECONDS="$2"; shift ;;
        *) echo "targets: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
q() { [ -n "$QUICK" ] && echo "$1" || echo "$2"; }
SIZE_MIB="${SIZE_MIB:-$(q 64 1024)}"
CLIENTS="${CLIENTS:-$(q 8 64)}"
BLOBS="${BLOBS:-$(q 4 8)}"
PUSH_MB="${PUSH_MB:-$(q 10 100)}"
RUNS="${RUNS:-3}"
SAMPLES="${SAMPLES:-$(q 3 5)}"
CELL_SECONDS="${CELL_SECONDS:-$(q 2 10)}"

log() { echo "targets: $*" >&2; }
STARTED=$(date +%s)

WORK="$(mktemp -d /tmp/stowage-targets-XXXXXX)"
. "$ROOT/benches/servers.sh"   # the cleanup trap: servers in PIDS stopped, $WORK removed

MATRIX_BIN="${MATRIX_BIN:-}"
[ -n "$MATRIX_BIN" ] || MATRIX_BIN="$(bench_exe matrix)"
if [ -z "$MATRIX_BIN" ] || ! [ -x "$MATRIX_BIN" ]; then log "could not build benches/matrix.rs"; exit 1; fi

if [ -z "${STOWAGE_BIN:-}" ]; then
    STOWAGE_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/stowage"
    if [ "$BUILD" = 1 ]; then
        log "cargo build --release --bin stowage"
        cargo build --release --bin stowage >&2 || log "release build of stowage failed"
    fi
fi
[ -x "$STOWAGE_BIN" ] || { log "no stowage binary at $STOWAGE_BIN"; exit 1; }
command -v docker-registry >/dev/null 2>&1 || log "docker-registry not installed (apt-get install docker-registry): its column stays empty"

LINES="$WORK/targets.tsv"
: > "$LINES"
COMMON=(--size-mib "$SIZE_MIB" --clients "$CLIENTS" --blobs "$BLOBS" --push-mb "$PUSH_MB" --runs "$RUNS"
    --samples "$SAMPLES" --cell-seconds "$CELL_SECONDS")

# need_mib PHASE: the disk one server needs for PHASE, in MiB (with 1 GiB to spare).
need_mib() {
    case "$1" in
        pulls) echo $((BLOBS * SIZE_MIB + 1024)) ;;
        pushes) echo $((CLIENTS * PUSH_MB + 1024)) ;;
        # the runs, plus 4 clients pushing 10 MB blobs at up to ~400 MB/s during the cell
        single) echo $(((RUNS + 1) * SIZE_MIB + 400 * CELL_SECONDS + 1024)) ;;
    esac
}

# phase LABEL PHASE: runs one phase against a fresh server of kind LABEL.
phase() {
    local label="$1" phase="$2" dir="$WORK/$1-$2" avail need out
    mkdir -p "$dir"
    avail="$(df -Pm "$dir" | awk 'NR == 2 { print $4 }')"
    need="$(need_mib "$phase")"
    if [ "$avail" -lt "$need" ]; then
        log "$phase on $label SKIPPED: needs ~$need MiB of disk, $avail MiB free"
        return 0
    fi
    local args=()
    if [ "$label" = stowage ]; then
        start_stowage "$dir" "$STOWAGE_BIN" || { stop_server "$ST_PID"; return 0; }
        args=(--url "$ST_URL" --pid "$ST_PID" --user "$ST_USER" --repo "$ST_PROJECT/targets" --data-dir "$dir/data")
    else
        start_registry "$dir" || { stop_server "$DR_PID"; return 0; }
        args=(--url "$DR_URL" --pid "$DR_PID" --repo targets/bench --data-dir "$dir/data")
    fi
    log "$phase against $label ($(( $(date +%s) - STARTED )) s into the run)"
    out="$dir.out"
    # matrix.rs has no overall deadline of its own here: every op has a 600 s client timeout.
    if timeout "$(q 300 1200)" "$MATRIX_BIN" --targets "$phase" --label "$label" "${args[@]}" "${COMMON[@]}" > "$out"; then
        grep '^TARGET' "$out" >> "$LINES" || true
    else
        grep '^TARGET' "$out" >> "$LINES" || true
        log "$phase against $label FAILED"
    fi
    if [ "$label" = stowage ]; then stop_server "$ST_PID"; else stop_server "$DR_PID"; fi
    rm -rf "$dir"
}

for ph in pulls pushes single; do
    if command -v docker-registry >/dev/null 2>&1; then phase docker-registry "$ph"; fi
    phase stowage "$ph"
done

CRITERION_JSON=""
if [ "$TAG_PAGE" = 1 ]; then
    log "cargo bench --bench engine -- tag_page ($(( $(date +%s) - STARTED )) s into the run)"
    # criterion names its results after the group and function; the bench fills 1,000,000 tags
    # before it measures.
    if timeout 900 cargo bench --bench engine -- $(q --quick "") tag_page > "$WORK/tag_page.out" 2>&1; then
        CRITERION_JSON="${CARGO_TARGET_DIR:-$ROOT/target}/criterion/tag_page/page_of_100_from_1M_tags/new/estimates.json"
        grep -A2 'page_of_100' "$WORK/tag_page.out" >&2 || true
    else
        tail -20 "$WORK/tag_page.out" >&2
        log "tag_page bench FAILED"
    fi
fi

echo
echo "## Issue-11 targets ($(nproc) cores, clients on the same machine; one run, $(date -u '+%Y-%m-%d %H:%M UTC'))"
echo
"$MATRIX_BIN" --summarize "$LINES" ${CRITERION_JSON:+--criterion-json "$CRITERION_JSON"}
echo
echo "(benches/targets.sh$([ -n "$QUICK" ] && echo " --quick"): ${SIZE_MIB} MiB blobs, $CLIENTS clients, $BLOBS blobs, ${PUSH_MB} MB pushes, $RUNS runs, $SAMPLES samples, ${CELL_SECONDS} s cell; took $(( $(date +%s) - STARTED )) s)"
