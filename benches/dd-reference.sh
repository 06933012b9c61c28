#!/usr/bin/env sh
# Reference for the `upload_commit` bench: what dd reaches writing 1 GiB with one fdatasync at the
# end, in the directory the bench uses (<target>/tmp), so engine overhead can be read off directly.
# Usage: benches/dd-reference.sh [count in MiB, default 1024]
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
dir="${CARGO_TARGET_DIR:-$root/target}/tmp"
mkdir -p "$dir"
f=$(mktemp "$dir/dd-reference.XXXXXX")
trap 'rm -f "$f"' EXIT INT TERM
count="${1:-1024}"
echo "dd if=/dev/zero of=$f bs=1M count=$count conv=fdatasync"
dd if=/dev/zero of="$f" bs=1M count="$count" conv=fdatasync 2>&1 | tail -n 1
