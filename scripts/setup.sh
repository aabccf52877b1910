#!/bin/bash
# setup.sh [build|test|all] - install what ferry needs on Debian 12, idempotently.
#   build: compilers and -dev libraries for `make`
#   test:  the real servers and tools the tests and the demo run against,
#          and clang with libFuzzer for make check-fuzz
# Quiet and quick when everything is already there (one dpkg-query).
set -euo pipefail
what=${1:-all}

build_pkgs=(build-essential pkg-config libcurl4-openssl-dev libmicrohttpd-dev
  libjansson-dev libssl-dev libarchive-dev zlib1g-dev libnbd-dev
  libsqlite3-dev libyaml-dev libzstd-dev libdeflate-dev)
demo_pkgs=(qemu-utils e2fsprogs fdisk curl python3 jq bc qemu-system-x86
  grub-pc-bin grub-common busybox-static cpio kmod)
test_pkgs=("${demo_pkgs[@]}" qemu-system-x86 nbdkit libnbd-bin
  swift swift-proxy swift-object swift-container swift-account awscli
  ansible ansible-lint grub-pc-bin grub-common busybox-static cpio kmod
  debootstrap systemd systemd-container procps iproute2 bc xz-utils gzip zstd
  tar util-linux time clang libclang-rt-14-dev
  keystone glance-api python3-openstackclient python3-neutron python3-nova)

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

# Test servers that are not Debian packages (test|all), into TOOLS_DIR:
#   memcached for Swift, unpacked (apt-get download + dpkg -x) rather than
#     installed, so no system-wide daemon starts;
#   azurite, Microsoft's Azure Storage emulator, from npm.
# Both are checked with one test each and skipped when present.
TOOLS_DIR=${FERRY_TOOLS_DIR:-/var/cache/ferry}
AZURITE_VERSION=3.37.0
test_tools() {
  local mc=$TOOLS_DIR/memcached/usr/bin/memcached
  local az=$TOOLS_DIR/azurite/node_modules/azurite/package.json
  if ! mkdir -p "$TOOLS_DIR" 2>/dev/null || [ ! -w "$TOOLS_DIR" ]; then
    echo "setup.sh: cannot write $TOOLS_DIR (set FERRY_TOOLS_DIR):" \
      "memcached and azurite not installed; their tests will skip" >&2
    return 0
  fi
  if [ ! -x "$mc" ]; then
    echo "setup.sh: fetching memcached into $TOOLS_DIR" >&2
    ( cd "$TOOLS_DIR" && rm -f memcached_*.deb &&
      { apt-get -o APT::Sandbox::User=root download memcached >/dev/null 2>&1 ||
        { apt-get -q update >/dev/null &&
          apt-get -o APT::Sandbox::User=root download memcached >/dev/null; }; } &&
      rm -rf memcached && dpkg -x memcached_*.deb memcached && rm -f memcached_*.deb )
  fi
  if ! grep -q "\"version\": \"$AZURITE_VERSION\"" "$az" 2>/dev/null; then
    echo "setup.sh: npm install azurite@$AZURITE_VERSION into $TOOLS_DIR" >&2
    mkdir -p "$TOOLS_DIR/azurite"
    npm install --prefix "$TOOLS_DIR/azurite" --no-audit --no-fund \
      --loglevel=error "azurite@$AZURITE_VERSION" >/dev/null
  fi
}

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' ||
    missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  [[ $what == test || $what == all ]] && test_tools
  exit 0
fi

if [ "$(id -u)" != 0 ]; then
  echo "setup.sh: missing packages: ${missing[*]}; run as root (or: sudo $0 $what)" >&2
  exit 1
fi
echo "setup.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt_get() { apt-get -o DPkg::Lock::Timeout=600 -y -q "$@"; }
apt_get install --no-install-recommends "${missing[@]}" >/dev/null 2>&1 ||
  { apt_get update >/dev/null && apt_get install --no-install-recommends "${missing[@]}" >/dev/null; }
[[ $what == test || $what == all ]] && test_tools
exit 0
