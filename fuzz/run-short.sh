#!/usr/bin/env bash
# Runs every cargo-fuzz target for N seconds each (N = first argument, default 30) and exits
# non-zero as soon as one finds a crash (the reproducer is left in fuzz/artifacts/<target>/).
# Targets: the parsers (digest, manifest, name_reference, ranges), registry_request (the
# registry router with its query parameters: tag, digest-algorithm, mount/from), scope_check (the REST
# credential rule and route matching) and engine_model, the blob
# engine against a model with simulated power loss; the list below must name every target in
# Cargo.toml (checked against `cargo fuzz list`).
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

targets="digest engine_model manifest name_reference ranges registry_request scope_check"
if [ "$(cargo fuzz list | LC_ALL=C sort | tr '\n' ' ')" != "$targets " ]; then
  echo "run-short.sh lists '$targets' but cargo fuzz list says: $(cargo fuzz list | tr '\n' ' ')" >&2
  exit 2
fi
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
