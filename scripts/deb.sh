#!/bin/sh
# Builds the Debian package of lyceumd (make deb): $B/lyceumd_VERSION_ARCH.deb from the release
# binary $B/lyceumd, with the systemd unit, a default config (a conffile), the maintainer
# scripts of packaging/, its shared-library dependencies as dpkg-shlibdeps finds them, the
# tools runs need as Depends and what optional backends need as Suggests. Prints its path.
#   B=build DEB_VERSION=0.1.0 sh scripts/deb.sh      (DEB_VERSION: default lyceumd --version)
set -eu
cd "$(dirname "$0")/.."
B=${B:-build}
bin=$B/lyceumd
[ -x "$bin" ] || { echo "deb.sh: $bin is not built (make $bin)" >&2; exit 2; }
version=${DEB_VERSION:-$("$bin" --version | awk '{print $2}')}
arch=$(dpkg --print-architecture)
work=$B/deb
root=$work/root
out=$B/lyceumd_${version}_${arch}.deb

rm -rf "$work"
mkdir -p "$root/DEBIAN" "$work/src/debian"
install -D -m 0755 "$bin" "$root/usr/bin/lyceumd"
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$root/usr/bin/lyceumd"
install -D -m 0644 packaging/lyceumd.service "$root/lib/systemd/system/lyceumd.service"
install -D -m 0644 packaging/config.json "$root/etc/lyceumd/config.json"
doc=$root/usr/share/doc/lyceumd
install -D -m 0644 packaging/copyright "$doc/copyright"
gzip -9n <README.md >"$doc/README.md.gz"
# The manual page is lyceumd --help, as help2man sets it.
mkdir -p "$root/usr/share/man/man8"
help2man --no-info --section=8 --version-string="$version" \
    --name="self-hosted GPU cloud serving the Lyceum Cloud REST API" "$bin" |
    gzip -9n >"$root/usr/share/man/man8/lyceumd.8.gz"
chmod 0644 "$root/usr/share/man/man8/lyceumd.8.gz"
chmod 0644 "$doc/README.md.gz"
{
    echo "lyceumd ($version) unstable; urgency=medium"
    echo
    echo "  * Built from $(git rev-parse --short HEAD 2>/dev/null || echo 'a source tree')."
    echo
    echo " -- lyceumd authors <lyceumd@example.org>  $(date -R -d @"${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}")"
} | gzip -9n >"$doc/changelog.gz"
chmod 0644 "$doc/changelog.gz"
for s in postinst prerm postrm; do
    install -m 0755 "packaging/$s" "$root/DEBIAN/$s"
done
echo /etc/lyceumd/config.json >"$root/DEBIAN/conffiles"

# The libraries the binary links, as Debian names them (dpkg-shlibdeps reads a source tree's
# debian/control, which only has to exist).
printf 'Source: lyceumd\n\nPackage: lyceumd\nArchitecture: any\n' >"$work/src/debian/control"
shlibs=$(cd "$work/src" && dpkg-shlibdeps -O -e "$(realpath "../root/usr/bin/lyceumd")" 2>/dev/null |
    sed -n 's/^shlibs:Depends=//p')
[ -n "$shlibs" ] || { echo "deb.sh: dpkg-shlibdeps found no libraries" >&2; exit 1; }
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat >"$root/DEBIAN/control" <<CONTROL
Package: lyceumd
Version: $version
Architecture: $arch
Maintainer: lyceumd authors <lyceumd@example.org>
Installed-Size: $size
Depends: $shlibs, adduser, init-system-helpers (>= 1.52), bubblewrap, slirp4netns, python3, python3-venv
Suggests: docker.io, docker-compose, slurm-client, qemu-system-x86, qemu-utils
Section: net
Priority: optional
Description: self-hosted GPU cloud serving the Lyceum Cloud REST API
 lyceumd is one binary that gives a team owning GPU machines what a GPU cloud
 gives its users: accounts, API keys and organizations; Python, Docker and
 Compose runs with live output, logs and GPU metrics; storage with an S3 API;
 secrets; model serving with OpenAI-compatible and batch APIs; prepaid
 credits. On one machine it needs nothing but itself (SQLite and local,
 sandboxed processes); it can also hand runs to Slurm.
CONTROL
(cd "$root" && find . -type f ! -path './DEBIAN/*' ! -path './etc/*' -printf '%P\n' | sort |
    xargs md5sum) >"$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/control" "$root/DEBIAN/conffiles" "$root/DEBIAN/md5sums"
dpkg-deb --root-owner-group -Zxz --build "$root" "$out" >/dev/null
echo "$out"
