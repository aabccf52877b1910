#!/bin/bash
# debian-root.sh DIR [PACKAGE...] - unpack a Debian 12 root filesystem into
# DIR: debootstrap --variant=minbase plus systemd, python3 and python3-apt
# (what Ansible needs on a host) and PACKAGEs.
#
# debootstrap takes 2-3 minutes and needs the Debian mirror, so its result
# is cached as a tarball in $FERRY_TEST_CACHE (default /var/cache/ferry-test)
# keyed by mirror and package list; later runs unpack it in seconds.  A lock
# lets concurrent tests share one build.
set -euo pipefail
if [ $# -lt 1 ]; then
  echo "usage: debian-root.sh DIR [PACKAGE...]" >&2
  exit 2
fi
dir=$1; shift
cache=${FERRY_TEST_CACHE:-/var/cache/ferry-test}
mirror=${FERRY_DEBIAN_MIRROR:-http://deb.debian.org/debian}
pkgs=$(printf '%s\n' systemd python3 python3-apt "$@" | sort -u | paste -sd, -)
key=$(printf '%s %s\n' "$mirror" "$pkgs" | sha256sum | cut -c1-12)
tarball=$cache/debian12-$key.tar.zst

mkdir -p "$cache"
exec 9>"$cache/debian12-$key.lock"
flock -w 900 9 || { echo "debian-root.sh: $cache/debian12-$key.lock is held for 15 minutes: is a debootstrap stuck?" >&2; exit 1; }
if [ ! -s "$tarball" ]; then
  build=$(mktemp -d "$cache/build-XXXXXX")
  trap 'rm -rf "$build"' EXIT
  echo "debian-root.sh: debootstrap of Debian 12 into the cache (once; 2-3 minutes)" >&2
  if ! debootstrap --variant=minbase --include="$pkgs" bookworm "$build/root" \
       "$mirror" >"$build/log" 2>&1; then
    echo "debian-root.sh: debootstrap from $mirror failed (is the mirror reachable?): $(tail -n 3 "$build/log" | tr '\n' ' ')" >&2
    exit 1
  fi
  chroot "$build/root" apt-get clean
  tar -C "$build/root" --numeric-owner -cf - . | zstd -q -T0 -3 >"$build/root.tar.zst"
  mv "$build/root.tar.zst" "$tarball"
  # drop tarballs of package lists no test asked for in a month
  find "$cache" -maxdepth 1 -name 'debian12-*.tar.zst' -mtime +30 -delete
fi
touch "$tarball"
mkdir -p "$dir"
zstd -dc "$tarball" | tar -C "$dir" --numeric-owner -xpf -
