#!/bin/bash
# setup.sh [build|test|all] - install what ferry needs on Debian 12, idempotently.
#   build: compilers and -dev libraries for `make`
#   test:  the real servers and tools the tests and the demo run against
# Quiet and quick when everything is already there (one dpkg-query).
set -euo pipefail
what=${1:-all}

build_pkgs=(build-essential pkg-config libcurl4-openssl-dev libmicrohttpd-dev
  libjansson-dev libssl-dev libarchive-dev zlib1g-dev libnbd-dev
  libsqlite3-dev libyaml-dev libzstd-dev)
demo_pkgs=(qemu-utils e2fsprogs fdisk curl python3 jq)
test_pkgs=("${demo_pkgs[@]}" qemu-system-x86 nbdkit libnbd-bin
  swift swift-proxy swift-object swift-container swift-account awscli
  ansible ansible-lint grub-pc-bin grub-common busybox-static cpio kmod
  debootstrap systemd systemd-container procps iproute2 bc xz-utils gzip zstd
  tar util-linux)

case $what in
  build) want=("${build_pkgs[@]}") ;;
  demo)  want=("${build_pkgs[@]}" "${demo_pkgs[@]}") ;;
  test|all) want=("${build_pkgs[@]}" "${test_pkgs[@]}") ;;
  *) echo "setup.sh: unknown target '$what' (build, demo, test, all)" >&2; exit 2 ;;
esac

# azurite needs node + npm; a machine may already carry NodeSource's nodejs
# (which bundles npm and conflicts with Debian's npm package)
if [[ $what == test || $what == all ]] && ! command -v npm >/dev/null; then
  want+=(nodejs npm)
fi

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' ||
    missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ]; then
  echo "setup.sh: missing packages: ${missing[*]}; run as root (or: sudo $0 $what)" >&2
  exit 1
fi
echo "setup.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt_get() { apt-get -o DPkg::Lock::Timeout=600 -y -q "$@"; }
apt_get install --no-install-recommends "${missing[@]}" >/dev/null 2>&1 ||
  { apt_get update >/dev/null && apt_get install --no-install-recommends "${missing[@]}" >/dev/null; }
