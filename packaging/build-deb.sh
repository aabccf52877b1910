#!/bin/bash
# build-deb.sh BINARY OUTDIR VERSION - build the ferry-agent Debian package
# (what `make deb` runs) and print its path.
#
# The package holds /usr/bin/ferry-agent, its systemd unit (rendered from
# the Ansible role's template, one source for both installs) and an example
# config; /etc/ferry is left to the Ansible role or the admin (it holds the
# site's server URL and enrollment token).  Depends is computed from the
# binary's shared libraries by dpkg-shlibdeps, so a sanitizer build depends
# on libasan too.  Rebuilding the same binary gives the same bytes
# (SOURCE_DATE_EPOCH = the binary's mtime), so Ansible sees no change.
set -euo pipefail
if [ $# -ne 3 ]; then
  echo "usage: build-deb.sh BINARY OUTDIR VERSION" >&2
  exit 2
fi
bin=$1 out=$2 version=$3
here=$(cd "$(dirname "$0")" && pwd)
unit=$here/../ansible/roles/ferry_agent/templates/ferry-agent.service.j2
[ -x "$bin" ] || { echo "build-deb.sh: $bin is not an executable (run make first)" >&2; exit 1; }
for t in dpkg-deb dpkg-shlibdeps strip; do
  command -v "$t" >/dev/null ||
    { echo "build-deb.sh: $t is missing (scripts/setup.sh build installs dpkg-dev and binutils)" >&2; exit 1; }
done
arch=$(dpkg --print-architecture)
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(stat -c %Y "$bin")}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# debhelper's layout: dpkg-shlibdeps wants debian/control and the binary
# under debian/PACKAGE/
pkg=$work/debian/ferry-agent
mkdir -p "$pkg/DEBIAN"
printf 'Source: ferry\n\nPackage: ferry-agent\nArchitecture: any\n' > "$work/debian/control"
install -D -m 0755 "$bin" "$pkg/usr/bin/ferry-agent"
strip --strip-unneeded --remove-section=.comment --remove-section=.note \
  "$pkg/usr/bin/ferry-agent"
mkdir -p "$pkg/lib/systemd/system"
sed 's|{{ ferry_agent_bin_path }}|/usr/bin/ferry-agent|g' "$unit" \
  > "$pkg/lib/systemd/system/ferry-agent.service"
if grep -nE '\{\{|\{%' "$pkg/lib/systemd/system/ferry-agent.service" >&2; then
  echo "build-deb.sh: $unit has template syntax this script does not render" >&2
  exit 1
fi
chmod 0644 "$pkg/lib/systemd/system/ferry-agent.service"
install -D -m 0644 "$here/agent.conf.example" \
  "$pkg/usr/share/doc/ferry-agent/agent.conf.example"
for s in postinst prerm postrm; do
  install -m 0755 "$here/$s" "$pkg/DEBIAN/$s"
done

depends=$(cd "$work" && dpkg-shlibdeps -O debian/ferry-agent/usr/bin/ferry-agent 2>/dev/null |
          sed -n 's/^shlibs:Depends=//p')
[ -n "$depends" ] || { echo "build-deb.sh: dpkg-shlibdeps found no dependencies of $bin" >&2; exit 1; }
size=$(du -sk --exclude=DEBIAN "$pkg" | cut -f1)
cat > "$pkg/DEBIAN/control" <<CONTROL
Package: ferry-agent
Version: $version
Architecture: $arch
Maintainer: ${FERRY_DEB_MAINTAINER:-ferry developers <root@localhost>}
Installed-Size: $size
Depends: $depends
Section: admin
Priority: optional
Description: ferry migration agent (lift and shift of Linux servers)
 Runs on a source server: inventories it for ferry-server and streams its
 disks into object storage as chunked images, on the server's request.
 Configure /etc/ferry/agent.conf (see the example in /usr/share/doc) and
 enable ferry-agent.service, or let the ferry_agent Ansible role do both.
CONTROL
(cd "$pkg" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' |
   LC_ALL=C sort -z | xargs -0 md5sum) > "$pkg/DEBIAN/md5sums"
find "$pkg" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

mkdir -p "$out"
deb=$out/ferry-agent_${version}_${arch}.deb
dpkg-deb --root-owner-group -Zxz --build "$pkg" "$deb" >/dev/null
echo "$deb"
