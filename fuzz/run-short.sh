#!/usr/bin/env bash
# Runs every cargo-fuzz target for N seconds each (N = first argument, default 30) and exits
# non-zero as soon as one finds a crash (the reproducer is left in fuzz/artifacts/<target>/).
# Installs cargo-fuzz if it is missing. cargo-fuzz needs nightly flags (-Zsanitizer); on a stable
# toolchain RUSTC_BOOTSTRAP=1 unlocks them, as the CI image does.
set -euo pipefail

secs="${1:-30}"
case "$secs" in
  '' | *[!0-9]*) echo "usage: $0 [seconds per target, default 30]" >&2; exit 2 ;;
esac

cd "$(dirname "$0")"
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi
export RUSTC_BOOTSTRAP="${RUSTC_BOOTSTRAP:-1}"

targets=$(cargo fuzz list)
cargo fuzz build
for t in $targets; do
  mkdir -p "corpus/$t"
  # New inputs go to the first corpus directory; the checked-in seeds are read only.
  dirs=("corpus/$t")
  if [ -d "seeds/$t" ]; then dirs+=("seeds/$t"); fi
  echo "== fuzzing $t for ${secs}s"
  if ! cargo fuzz run "$t" "${dirs[@]}" -- -max_total_time="$secs"; then
    echo "fuzz target $t crashed; reproduce with: cargo fuzz run $t fuzz/artifacts/$t/<file>" >&2
    exit 1
  fi
done
echo "all fuzz targets ran ${secs}s without a crash"
