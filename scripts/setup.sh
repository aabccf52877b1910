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
  libsqlite3-dev libyaml-dev libzstd-dev libdeflate-dev
  # ferry-prepare: guest preparation through libguestfs' C API
  libguestfs-dev)
demo_pkgs=(qemu-utils e2fsprogs fdisk curl python3 jq bc qemu-system-x86
  grub-pc-bin grub-common busybox-static cpio kmod
  # libguestfs' appliance is built from the server's own kernel in /boot;
  # OVMF boots UEFI guests on the local target
  libguestfs0 libguestfs-xfs linux-image-cloud-amd64 ovmf)
test_pkgs=("${demo_pkgs[@]}" qemu-system-x86 nbdkit libnbd-bin
  swift swift-proxy swift-object swift-container swift-account awscli
  ansible ansible-lint grub-pc-bin grub-common busybox-static cpio kmod
  debootstrap systemd systemd-container procps iproute2 bc xz-utils gzip zstd
  tar util-linux time clang libclang-rt-14-dev
  # the Azure SDK's REST models, by which tests/azure_contract.py checks
  # the azure driver's requests
  python3-azure
  # real Keystone and Glance for t-openstack, the openstack CLI as its
  # independent client, and Neutron's and Nova's own API models for
  # tests/openstack_contract.py
  keystone glance-api python3-openstackclient python3-neutron python3-nova
  # guestfish: t-nbdexport and the test guests (tests/guests/), built with
  # libguestfs (XFS and LVM for the RHEL-shaped one); debootstrap above
  guestfish libguestfs-xfs lvm2 linux-image-cloud-amd64
  # the dashboard's browser test (t-dashboard): headless, driven by
  # puppeteer-core from npm (below)
  chromium)

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
#   azurite, Microsoft's Azure Storage emulator, from npm;
#   prometheus and promtool (Debian's prometheus package), unpacked the
#     same way: t-metrics runs a real Prometheus that scrapes a test server,
#     and no system-wide Prometheus (or its node exporter) starts;
#   puppeteer-core, which drives Debian's chromium in t-dashboard (the
#     library only: it downloads no browser);
#   the Compute Engine v1 API model for tests/gcp_contract.py: the one file
#     compute/v1/compute-gen.go of golang-google-api-dev (Google's generated
#     client, which embeds every method's discovery entry and every schema),
#     unpacked (apt-get download + dpkg -x) without its Go dependencies.
# Each is checked with one test and skipped when present.
TOOLS_DIR=${FERRY_TOOLS_DIR:-/var/cache/ferry}
AZURITE_VERSION=3.37.0
# the last line that runs on Debian 12's node 18
PUPPETEER_VERSION=24.43.1
# fetch_deb PACKAGE DIR: the Debian package unpacked into $TOOLS_DIR/DIR
# (apt-get download and dpkg -x: nothing installed, no daemon started)
fetch_deb() {
  ( cd "$TOOLS_DIR" && rm -f "$1"_*.deb &&
    { apt-get -o APT::Sandbox::User=root download "$1" >/dev/null 2>&1 ||
      { apt-get -q update >/dev/null &&
        apt-get -o APT::Sandbox::User=root download "$1" >/dev/null; }; } &&
    rm -rf "$2" && dpkg -x "$1"_*.deb "$2" && rm -f "$1"_*.deb )
}

test_tools() {
  local mc=$TOOLS_DIR/memcached/usr/bin/memcached
  local az=$TOOLS_DIR/azurite/node_modules/azurite/package.json
  local gce=$TOOLS_DIR/gce-api/compute-gen.go
  local prom=$TOOLS_DIR/prometheus/usr/bin/promtool
  if ! mkdir -p "$TOOLS_DIR" 2>/dev/null || [ ! -w "$TOOLS_DIR" ]; then
    echo "setup.sh: cannot write $TOOLS_DIR (set FERRY_TOOLS_DIR):" \
      "memcached and azurite not installed; their tests will skip" >&2
    return 0
  fi
  if [ ! -x "$mc" ]; then
    echo "setup.sh: fetching memcached into $TOOLS_DIR" >&2
    fetch_deb memcached memcached
  fi
  if [ ! -x "$prom" ]; then
    echo "setup.sh: fetching prometheus into $TOOLS_DIR" >&2
    fetch_deb prometheus prometheus
  fi
  if [ ! -s "$gce" ]; then
    echo "setup.sh: fetching the Compute Engine v1 model into $TOOLS_DIR" >&2
    fetch_deb golang-google-api-dev gce-api.tmp
    mkdir -p "$TOOLS_DIR/gce-api"
    mv "$TOOLS_DIR"/gce-api.tmp/usr/share/gocode/src/google.golang.org/api/compute/v1/compute-gen.go "$gce"
    rm -rf "$TOOLS_DIR/gce-api.tmp"
  fi
  if ! grep -q "\"version\": \"$AZURITE_VERSION\"" "$az" 2>/dev/null; then
    echo "setup.sh: npm install azurite@$AZURITE_VERSION into $TOOLS_DIR" >&2
    mkdir -p "$TOOLS_DIR/azurite"
    npm install --prefix "$TOOLS_DIR/azurite" --no-audit --no-fund \
      --loglevel=error "azurite@$AZURITE_VERSION" >/dev/null
  fi
  local pup=$TOOLS_DIR/puppeteer/node_modules/puppeteer-core/package.json
  if ! grep -q "\"version\": \"$PUPPETEER_VERSION\"" "$pup" 2>/dev/null; then
    echo "setup.sh: npm install puppeteer-core@$PUPPETEER_VERSION into $TOOLS_DIR" >&2
    mkdir -p "$TOOLS_DIR/puppeteer"
    PUPPETEER_SKIP_DOWNLOAD=1 npm install --prefix "$TOOLS_DIR/puppeteer" --no-audit \
      --no-fund --loglevel=error "puppeteer-core@$PUPPETEER_VERSION" >/dev/null
  fi
  # moto's server mode for tests/t-aws.sh, into the python3 on PATH (pip)
  if ! python3 -c 'import moto.server, boto3' 2>/dev/null; then
    echo "setup.sh: pip install moto[server] into $(command -v python3)" >&2
    python3 -m pip install --quiet 'moto[server]' >/dev/null ||
      echo "setup.sh: pip could not install moto[server]; t-aws will skip" >&2
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
