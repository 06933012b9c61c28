#!/usr/bin/env bash
# Builds the Debian package (cargo-deb, release build), lists what is in it, checks that the
# binary, the unit, the conffile and the user-making maintainer script are there, unpacks it into
# a temporary root and runs `stowage --version` from there. Used by .ci/run.
#
#   deploy/check-deb.sh            # prints the path of the .deb last
#
# cargo-deb is installed with `cargo install --locked` when missing (a few minutes, once).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { echo "deploy/check-deb.sh: $*" >&2; }

if ! cargo deb --version >/dev/null 2>&1; then
    log "installing cargo-deb"
    cargo install cargo-deb --locked >&2
fi
ctrl=$(mktemp -d)
root=$(mktemp -d)
buildlog=$(mktemp)
trap 'rm -rf "$ctrl" "$root" "$buildlog"' EXIT
log "cargo deb --strip (release build; the release profile keeps debug info, the package does not)"
cargo deb --strip >"$buildlog" 2>&1 || { tail -40 "$buildlog" >&2; exit 1; }
deb=$(tail -1 "$buildlog")
[ -f "$deb" ] || { log "no .deb at '$deb'"; tail -20 "$buildlog" >&2; exit 1; }

dpkg-deb --info "$deb" >&2
contents=$(dpkg-deb --contents "$deb")
echo "$contents" >&2
fail=0
need() { grep -qE "$1" <<<"$2" || { log "missing: $3"; fail=1; }; }
need ' \./usr/bin/stowage$' "$contents" "the binary /usr/bin/stowage"
need ' \./(usr/)?lib/systemd/system/stowage\.service$' "$contents" "the systemd unit"
need ' \./etc/stowage/config\.toml$' "$contents" "/etc/stowage/config.toml"
need ' \./usr/share/doc/stowage/grafana-dashboard\.json$' "$contents" "the Grafana dashboard"

dpkg-deb --control "$deb" "$ctrl"
need '^/etc/stowage/config\.toml$' "$(cat "$ctrl/conffiles")" "config.toml as a conffile"
need 'adduser --system --group' "$(cat "$ctrl/postinst")" "postinst making the stowage user"
need 'deb-systemd-helper' "$(cat "$ctrl/postinst")" "postinst enabling the unit"
need '^Depends:.*adduser' "$(cat "$ctrl/control")" "Depends: adduser"
for script in postinst postrm prerm; do
    [ ! -f "$ctrl/$script" ] || sh -n "$ctrl/$script" || { log "$script is not valid sh"; fail=1; }
done

dpkg -x "$deb" "$root"
version=$("$root/usr/bin/stowage" --version)
log "from the unpacked package: $version"
[ "$version" = "stowage $(sed -n 's/^Version: //p' "$ctrl/control" | sed 's/-[0-9]*$//')" ] \
    || { log "unexpected --version output: $version"; fail=1; }
cmp -s "$root/lib/systemd/system/stowage.service" deploy/stowage.service \
    || cmp -s "$root/usr/lib/systemd/system/stowage.service" deploy/stowage.service \
    || { log "the packaged unit differs from deploy/stowage.service"; fail=1; }
[ "$fail" = 0 ] || exit 1
echo "$deb"
