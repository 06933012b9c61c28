#!/usr/bin/env bash
# The write path under load: Stowage against Debian's docker-registry (CNCF Distribution 2.8),
# with benches/writes.rs.
#
#   benches/compare-writes.sh [--quick] [--no-build] [--seconds N] [--rounds N] [--blobs N] [--gc-rate N]
#
# Starts, each on a free 127.0.0.1 port with its own temp dir:
#   * docker-registry (/usr/bin/docker-registry serve CONFIG, filesystem storage, the config of
#     benches/compare.sh);
#   * stowage (STOWAGE_BIN) with a config whose [storage] gc_grace = "0s";
# and runs, --rounds times (default 3, quick 1), one server after the other so that both see the
# same moments of this shared machine: manifest-put (16 clients) and small-push (64 clients,
# POST + PUT ?digest=) on both, and small-push with the monolithic POST on stowage only
# (Distribution 2.8 does not take it). Then gc-get on an empty stowage (fill --blobs blobs, manifest
# GET p99 quiet and under GC), so that the blobs the other modes left do not count: once with 32
# closed-loop clients (the issue's measure), once more on another empty stowage with the same 32
# clients paced at --gc-rate requests/s (default 5000; 0 skips it), where a stall cannot hide
# (see benches/writes.rs).
# Prints every table, then one summary (medians over the rounds, their ratio, the issue's targets)
# and kills the servers and removes the temp dirs (trap). Every run is bounded: writes.rs stops its
# own loops, and each run sits under `timeout`. --quick: 3 s per mode, 20,000 blobs (default 5 s,
# 100,000).
# Env: STOWAGE_BIN (default: $CARGO_TARGET_DIR or target, /release/stowage, built first unless
# --no-build), WRITES_BIN (a prebuilt benches/writes.rs executable; default: built with
# `cargo bench --bench writes --no-run`).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT="$(pwd)"

QUICK=""
BUILD=1
SECS=""
BLOBS=""
ROUNDS=""
GC_RATE=5000
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) QUICK=--quick ;;
        --no-build) BUILD=0 ;;
        --seconds) SECS="$2"; shift ;;
        --blobs) BLOBS="$2"; shift ;;
        --rounds) ROUNDS="$2"; shift ;;
        --gc-rate) GC_RATE="$2"; shift ;;
        *) echo "compare-writes: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
SECS="${SECS:-$([ -n "$QUICK" ] && echo 3 || echo 5)}"
BLOBS="${BLOBS:-$([ -n "$QUICK" ] && echo 20000 || echo 100000)}"
ROUNDS="${ROUNDS:-$([ -n "$QUICK" ] && echo 1 || echo 3)}"
# Longest a collection may run while it is measured; the whole gc-get run gets more on top.
GC_MAX="$([ -n "$QUICK" ] && echo 240 || echo 600)"

log() { echo "compare-writes: $*" >&2; }

WORK="$(mktemp -d /tmp/stowage-writes-XXXXXX)"
. "$ROOT/benches/servers.sh"   # the cleanup trap: servers in PIDS stopped, $WORK removed

WRITES_BIN="${WRITES_BIN:-}"
[ -n "$WRITES_BIN" ] || WRITES_BIN="$(bench_exe writes)"
if [ -z "$WRITES_BIN" ] || ! [ -x "$WRITES_BIN" ]; then log "could not build benches/writes.rs"; exit 1; fi

RESULTS="$WORK/results.tsv"
: > "$RESULTS"

run_writes() { # run_writes LABEL MODE URL BACKSTOP_SECONDS [extra args...]
    local label="$1" mode="$2" url="$3" backstop="$4"; shift 4
    log "$mode against $label ($url)"
    local out="$WORK/writes-$label-$mode.out"
    # writes.rs bounds itself (--timeout-secs); timeout is a backstop.
    if timeout "$backstop" "$WRITES_BIN" $QUICK --mode "$mode" --url "$url" --label "$label" \
        --seconds "$SECS" --timeout-secs $((backstop - 10)) "$@" > "$out"; then
        grep -v '^WRITES_RESULT' "$out"
        grep '^WRITES_RESULT' "$out" >> "$RESULTS" || true
    else
        cat "$out"
        log "$mode against $label FAILED"
    fi
}
RATE_BACKSTOP=$((SECS + 90))

# --- docker-registry -------------------------------------------------------
DR_PID=""
if ! command -v docker-registry >/dev/null 2>&1; then
    log "docker-registry not installed (apt-get install docker-registry): skipped"
elif ! start_registry "$WORK/docker-registry"; then
    stop_server "$DR_PID"; DR_PID=""
fi

# --- stowage -----------------------------------------------------------------
if [ -z "${STOWAGE_BIN:-}" ]; then
    STOWAGE_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/stowage"
else
    BUILD=0   # a binary named by the caller is used as it is
fi
if [ "$BUILD" = 1 ]; then
    log "cargo build --release --bin stowage"
    cargo build --release --bin stowage >&2 || log "release build of stowage failed"
fi

# start_writes_stowage NAME: a stowage with an empty data dir under $WORK/NAME; sets ST_PID,
# ST_URL, ST_USER, ST_REPO. Without a zero grace window nothing the bench pushes is old enough
# to collect.
start_writes_stowage() {
    start_stowage "$WORK/$1" "$STOWAGE_BIN" $'[storage]\ngc_grace = "0s"' || return 1
    ST_REPO="$ST_PROJECT/bench"
}

ST_PID=""
if ! [ -x "$STOWAGE_BIN" ]; then
    log "no stowage binary at $STOWAGE_BIN: skipped"
elif ! start_writes_stowage stowage; then
    stop_server "$ST_PID"; ST_PID=""
fi

# --- the rate modes, interleaved -------------------------------------------------
for round in $(seq 1 "$ROUNDS"); do
    log "round $round of $ROUNDS"
    for mode in manifest-put small-push; do
        if [ -n "$DR_PID" ]; then
            run_writes docker-registry "$mode" "$DR_URL" "$RATE_BACKSTOP" \
                --pid "$DR_PID" --repo writes/bench
        fi
        if [ -n "$ST_PID" ]; then
            run_writes stowage "$mode" "$ST_URL" "$RATE_BACKSTOP" \
                --pid "$ST_PID" --user "$ST_USER" --repo "$ST_REPO"
        fi
    done
    if [ -n "$ST_PID" ]; then
        run_writes stowage-monolithic small-push "$ST_URL" "$RATE_BACKSTOP" \
            --pid "$ST_PID" --user "$ST_USER" --repo "$ST_REPO" --monolithic
    fi
done
[ -z "$DR_PID" ] || stop_server "$DR_PID"
[ -z "$ST_PID" ] || stop_server "$ST_PID"

# --- GC under load, each on an empty stowage ------------------------------------------
if [ -x "$STOWAGE_BIN" ]; then
    for label in stowage stowage-paced; do
        pace=()
        if [ "$label" = stowage-paced ]; then
            [ "$GC_RATE" != 0 ] || continue
            pace=(--rate "$GC_RATE")
        fi
        if start_writes_stowage "gc-$label"; then
            run_writes "$label" gc-get "$ST_URL" $((GC_MAX + 600)) --blobs "$BLOBS" --gc-max-secs "$GC_MAX" \
                --pid "$ST_PID" --user "$ST_USER" --repo "$ST_REPO" ${pace[@]+"${pace[@]}"}
        fi
        stop_server "$ST_PID"
        rm -rf "$WORK/gc-$label"
    done
fi

# --- summary -------------------------------------------------------------------
echo
echo "## Write path summary ($(nproc) cores, client on the same machine; $ROUNDS x ${SECS}s per mode and server, $BLOBS blobs for GC)"
echo
awk -F'\t' -v rounds="$ROUNDS" -v gcrate="$GC_RATE" '
    # put/push lines: label mode clients ok/s p50 p99 errors cpu rss sequence
    $3 != "gc-get" {
        k = $2 SUBSEP $3; n[k]++; rate[k, n[k]] = $5; p99[k, n[k]] = $7; err[k] += $8
        if ($2 == "docker-registry" || $2 == "stowage") per_round[$3, n[k]] = per_round[$3, n[k]] " " $2 " " $5 "/s"
    }
    # gc-get: label gc-get clients blobs fill_s quiet_p99 gc_p99 ratio gc_s deleted cpu rss
    $3 == "gc-get" { g[$2] = 1; gcl[$2] = $4; blobs[$2] = $5; fill[$2] = $6; q99[$2] = $7; g99[$2] = $8; gr[$2] = $9; gs[$2] = $10; del[$2] = $11 }
    # median of the numeric values a[k, 1..n[k]] ("-" if none)
    function median(a, k,   i, j, m, v, t) {
        m = 0
        for (i = 1; i <= n[k]; i++) if (a[k, i] != "-" && a[k, i] != "") v[++m] = a[k, i] + 0
        if (m == 0) return "-"
        for (i = 2; i <= m; i++) { t = v[i]; for (j = i - 1; j >= 1 && v[j] > t; j--) v[j + 1] = v[j]; v[j + 1] = t }
        return (m % 2) ? v[(m + 1) / 2] : (v[m / 2] + v[m / 2 + 1]) / 2
    }
    function ratio(s, d) { return (s == "-" || d == "-" || d + 0 == 0) ? "-" : sprintf("%.2fx", s / d) }
    function verdict(r, want) { return r == "-" ? "not measured" : (substr(r, 1, length(r) - 1) + 0 >= want ? "met" : "NOT met") }
    # "median rate/s (p99 median ms[, E errors])" of one label and mode, or "-"
    function res(k,   r) {
        r = median(rate, k)
        if (r == "-") return "-"
        return sprintf("%.0f/s (p99 %.1f ms%s)", r, median(p99, k), err[k] > 0 ? ", " err[k] " errors" : "")
    }
    function gcrow(l, how,   r) {
        if (!g[l]) {
            if (l == "stowage") print "| manifest GET p99 under GC | - | - | - | <= 2x | not measured |"
            return
        }
        r = gr[l]
        printf "| manifest GET p99, %s clients, %s: quiet -> while GC runs over %s blobs | - | %s -> %s ms | %s (under GC / quiet) | <= 2x | %s |\n", \
            gcl[l], how, blobs[l], q99[l], g99[l], (r == "-" ? "-" : r "x"), (r == "-" ? "not measured" : (r + 0 <= 2 ? "met" : "NOT met"))
        printf "| GC in that run: duration, blobs deleted (the fill took %s s) | - | %s s, %s | | | |\n", fill[l], gs[l], del[l]
    }
    function row(name, mode, want,   d, s, r) {
        d = "docker-registry" SUBSEP mode; s = "stowage" SUBSEP mode; r = ratio(median(rate, s), median(rate, d))
        printf "| %s | %s | %s | %s | >= %dx | %s |\n", name, res(d), res(s), r, want, verdict(r, want)
    }
    END {
        print "| measure | docker-registry | stowage | stowage / docker-registry | target | |"
        print "|---|---:|---:|---:|---|---|"
        row("manifest PUT, 16 clients, same manifest and tag", "manifest-put", 5)
        row("4 KiB blob push, 64 clients, POST + PUT ?digest= on both", "small-push", 5)
        k = "stowage-monolithic" SUBSEP "small-push"
        if (n[k]) printf "| same, monolithic POST ?digest= (Distribution 2.8 answers it with 202) | - | %s | | | |\n", res(k)
        gcrow("stowage", "closed loop")
        gcrow("stowage-paced", "paced at " gcrate " req/s")

        print ""
        print "Rates and p99 are medians over " rounds " round(s); errors are summed. Each round:"
        for (i = 1; i <= rounds; i++)
            for (m = 0; m < 2; m++) {
                mode = m ? "small-push" : "manifest-put"
                if ((mode, i) in per_round) print "  round " i ", " mode ":" per_round[mode, i]
            }
    }' "$RESULTS"
echo
echo "(rates: higher is better. Stowage answers 201 after its index write is flushed to disk. Distribution"
echo " as it is: its filesystem driver writes each link file in place and fsyncs it, never a directory.)"
