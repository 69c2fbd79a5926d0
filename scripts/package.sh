#!/usr/bin/env bash
# Builds the Debian package of idsync: target/debian/idsync_<version>-1_<arch>.deb
#
#   scripts/package.sh                 a release build (what to install)
#   scripts/package.sh --binary PATH  package an idsync already built (the test suite's)
#
# The package: /usr/bin/idsync; the units under /lib/systemd/system (not enabled, not
# started: configure first); /etc/idsync/idsync.yaml as a conffile (the commented example,
# never overwritten on upgrade) and /etc/idsync/secrets/ (0700); man pages (idsync(1) and
# one per command) and bash, zsh and fish completions, generated from the CLI definition;
# the example configs under /usr/share/doc/idsync/examples. Purge removes /etc/idsync and
# what the package made, never the journal unless IDSYNC_PURGE_JOURNAL=yes is set.
# Needs dpkg-deb (Debian and Ubuntu have it) and dpkg-shlibdeps (dpkg-dev), which computes
# the shared libraries' versions the binary needs (glibc, libgcc_s) for `Depends`.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

bin=
case "${1:-}" in
  --binary) bin=${2:?usage: scripts/package.sh [--binary PATH]} ;;
  "") ;;
  *) echo "usage: scripts/package.sh [--binary PATH]" >&2; exit 2 ;;
esac
command -v dpkg-deb >/dev/null || { echo "package: dpkg-deb is needed (apt-get install dpkg)" >&2; exit 1; }
command -v dpkg-shlibdeps >/dev/null || { echo "package: dpkg-shlibdeps is needed (apt-get install dpkg-dev)" >&2; exit 1; }
if [ -z "$bin" ]; then
  echo "package: building idsync (release)" >&2
  cargo build --release --locked --quiet
  bin=target/release/idsync
fi

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
arch=$(dpkg --print-architecture)
out=target/debian
root=$out/root
rm -rf "$root"
umask 022
install -d "$root/DEBIAN" "$root/usr/bin" "$root/lib/systemd/system" "$root/etc/idsync" \
  "$root/usr/share/man/man1" "$root/usr/share/bash-completion/completions" \
  "$root/usr/share/zsh/vendor-completions" "$root/usr/share/fish/vendor_completions.d" \
  "$root/usr/share/doc/idsync/examples"
install -d -m 0700 "$root/etc/idsync/secrets"

install -m 0755 "$bin" "$root/usr/bin/idsync"
strip --strip-unneeded "$root/usr/bin/idsync" 2>/dev/null || true

# The units, run from where the package puts the binary.
for unit in idsync.service idsync-plan.service idsync-plan.timer idsync-console.service; do
  sed 's|/usr/local/bin/idsync|/usr/bin/idsync|g' "systemd/$unit" >"$root/lib/systemd/system/$unit"
  chmod 0644 "$root/lib/systemd/system/$unit"
done

install -m 0644 config/idsync.example.yaml "$root/etc/idsync/idsync.yaml"
install -m 0644 config/*.example.yaml "$root/usr/share/doc/idsync/examples/"
install -m 0755 config/hooks/offboard.sh "$root/usr/share/doc/idsync/examples/"
install -m 0644 README.md "$root/usr/share/doc/idsync/README.md"
cat >"$root/usr/share/doc/idsync/copyright" <<EOF
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: idsync
Files: *
License: Apache-2.0
 On Debian systems the full text is in /usr/share/common-licenses/Apache-2.0.
EOF

# Man pages and completions, from the CLI definition itself.
"$root/usr/bin/idsync" generate man "$root/usr/share/man/man1"
gzip -9n "$root"/usr/share/man/man1/*.1
"$root/usr/bin/idsync" generate completions bash >"$root/usr/share/bash-completion/completions/idsync"
"$root/usr/bin/idsync" generate completions zsh >"$root/usr/share/zsh/vendor-completions/_idsync"
"$root/usr/bin/idsync" generate completions fish >"$root/usr/share/fish/vendor_completions.d/idsync.fish"
find "$root/usr/share" -type f -exec chmod 0644 {} +

# What the binary links against, with the versions its symbols need (e.g. glibc >= 2.34).
shlibs_dir=$(mktemp -d)
mkdir "$shlibs_dir/debian"
printf 'Source: idsync\n\nPackage: idsync\nArchitecture: any\n' >"$shlibs_dir/debian/control"
depends=$(cd "$shlibs_dir" && dpkg-shlibdeps -O -e"$repo/$root/usr/bin/idsync" 2>/dev/null |
  sed -n 's/^shlibs:Depends=//p')
rm -rf "$shlibs_dir"
[ -n "$depends" ] || { echo "package: dpkg-shlibdeps found no dependencies of the binary" >&2; exit 1; }

cat >"$root/DEBIAN/control" <<EOF
Package: idsync
Version: $version-1
Architecture: $arch
Maintainer: idsync developers <idsync@localhost>
Depends: $depends
Recommends: systemd
Section: admin
Priority: optional
Installed-Size: $(du -sk --exclude=DEBIAN "$root" | cut -f1)
Homepage: https://github.com/idsync/idsync
Description: directory-sync daemon: LDAP / Active Directory / Entra ID to SCIM 2.0 apps
 idsync keeps the accounts of SCIM 2.0 apps true to a directory (OpenLDAP, Active
 Directory, or Microsoft Entra ID through Graph): it plans every change before making
 one, stops a run that would suspend half the company, holds risky actions for approval
 and journals every change in a local SQLite file. It runs as a hardened systemd service.
EOF
echo /etc/idsync/idsync.yaml >"$root/DEBIAN/conffiles"

cat >"$root/DEBIAN/postinst" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = configure ]; then
  chmod 0700 /etc/idsync/secrets
  if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || true
  fi
  if [ -z "$2" ]; then
    echo "idsync: edit /etc/idsync/idsync.yaml, put the secrets in /etc/idsync/secrets/ (ldap, scim),"
    echo "idsync: run 'idsync check --connect', then 'systemctl enable --now idsync'."
  elif [ -d /run/systemd/system ]; then
    # An upgrade: the running daemon and console pick up the new binary.
    systemctl try-restart idsync.service idsync-console.service >/dev/null 2>&1 || true
  fi
fi
exit 0
EOF

cat >"$root/DEBIAN/prerm" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
  systemctl stop idsync.service idsync-plan.timer idsync-plan.service idsync-console.service >/dev/null 2>&1 || true
  systemctl disable idsync.service idsync-plan.timer idsync-console.service >/dev/null 2>&1 || true
fi
exit 0
EOF

cat >"$root/DEBIAN/postrm" <<'EOF'
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload >/dev/null 2>&1 || true
fi
if [ "$1" = purge ]; then
  # The config and secrets go with the package; the journal (who is linked to which
  # account, what was done) only when asked: IDSYNC_PURGE_JOURNAL=yes.
  rm -rf /etc/idsync/secrets
  rmdir /etc/idsync 2>/dev/null || true
  if [ "${IDSYNC_PURGE_JOURNAL:-}" = yes ]; then
    rm -rf /var/lib/idsync /var/lib/private/idsync
  fi
fi
exit 0
EOF
chmod 0755 "$root/DEBIAN/postinst" "$root/DEBIAN/prerm" "$root/DEBIAN/postrm"

deb=$out/idsync_${version}-1_${arch}.deb
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb"
