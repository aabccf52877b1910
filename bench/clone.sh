#!/bin/bash
# clone.sh - ferry-agent clone against what users run today, into the same
# local S3 server (OpenStack Swift with s3api, tests/servers.sh), in the
# same run, on disks of BENCH_SIZE (default 4G):
#
#   random    every byte random (incompressible, every chunk allocated)
#   halfzero  64 MiB regions alternating random and zeros (allocated zeros,
#             as a disk whose free space was wiped)
#   sparse10  a sparse file, 10% allocated in 4 MiB islands
#   fs        ext4 holding an installed system's files (/usr of this host)
#
# Peers: dd bs=4M | aws s3 cp -; aws s3 cp FILE; dd | gzip -1 | aws s3 cp -;
# and the store's single-stream ceiling: one curl -T of a presigned PUT.
# For each: wall time, bytes the S3 endpoint received (its access log),
# CPU seconds (user+sys of the client), peak RSS, and the ratio of the
# peer's wall time to ferry's.  Also: a 1 TiB sparse disk with 2 GiB
# allocated against a 2 GiB dense one (time must follow the allocated
# data), the tuning runs behind the defaults (chunk size, jobs,
# compression), and incremental syncs after changing 1% of a disk.
#
# Writes the "clone" section of docs/PERFORMANCE.md (between markers).
#   make bench                       (all of bench/)
#   BENCH_SIZE=1G DISKS="random" bash bench/clone.sh
set -euo pipefail
TOP=$(cd "$(dirname "$0")/.." && pwd)
export FERRY_BIN=${FERRY_BIN:-$TOP/bin}
. "$TOP/tests/lib.sh"
. "$TOP/tests/servers.sh"
BENCH_SIZE=${BENCH_SIZE:-4G}
DISKS=${DISKS:-"random halfzero sparse10 fs"}
PEERS=${PEERS:-"dd-aws aws-cp dd-gzip-aws curl"}
SECTIONS=${SECTIONS:-"peers sparse tuning sync"}
OUT=${OUT:-$TOP/docs/PERFORMANCE.md}
AWS=/usr/bin/aws
requires qemu-img qemu-nbd qemu-io mke2fs /usr/bin/time openssl jq "$AWS"
TOOL=${FERRY_UNIT:-$TOP/build/tests}/store-tool
[ -x "$TOOL" ] || fail "$TOOL is missing: run make unit"
SIZE=$(numfmt --from=iec "$BENCH_SIZE")
MiB=1048576

# a fast source of incompressible bytes (AES-CTR keystream)
rand() { (set +o pipefail; openssl enc -aes-128-ctr -nosalt -pass pass:"ferry$1" </dev/zero 2>/dev/null | head -c "$2"); }

make_disk_kind() {  # KIND PATH
  local kind=$1 path=$2 i n
  rm -f "$path"
  case $kind in
    random) rand r "$SIZE" >"$path" ;;
    halfzero)
      n=$((SIZE / (64 * MiB)))
      for ((i = 0; i < n; i++)); do
        if ((i % 2 == 0)); then rand "h$i" $((64 * MiB)); else head -c $((64 * MiB)) /dev/zero; fi
      done >"$path" ;;
    sparse10)
      truncate -s "$SIZE" "$path"
      n=$((SIZE / (4 * MiB)))
      for ((i = 0; i < n; i += 10)); do
        rand "s$i" $((4 * MiB)) | dd of="$path" bs=4M seek="$i" conv=notrunc status=none
      done ;;
    fs)
      truncate -s "$SIZE" "$path"
      mke2fs -q -F -t ext4 -d /usr "$path" >/dev/null ;;
  esac
}

# received bytes the S3 endpoint logged (client requests only)
s3_bytes() {
  awk '$2 == "127.0.0.1" && $3 == "127.0.0.1" && $12 ~ /^[0-9]+$/ {s += $12} END {print s + 0}' "$S3_ACCESS_LOG"
}
empty_bucket() {
  "$AWS" --endpoint-url "$S3_ENDPOINT" s3 rm --recursive --quiet s3://bench/ >/dev/null 2>&1 || true
  : >"$S3_ACCESS_LOG"
}

# measure NAME CMD...: wall, user+sys CPU, max RSS of CMD (a pipeline runs
# under one bash, so /usr/bin/time sums its processes' CPU and reports the
# largest RSS), and the bytes S3 received meanwhile
measure() {
  local name=$1; shift
  empty_bucket
  sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
  /usr/bin/time -f "%e %U %S %M" -o "$T/time" "$@" >"$T/$name.out" 2>"$T/$name.err" ||
    fail "$name failed: $(tail -3 "$T/$name.err")"
  sleep 0.5                            # let the UDP log lines land
  read -r wall user sys rss <"$T/time"
  printf '%s %s %s %s %s\n' "$wall" "$(echo "$user + $sys" | bc)" "$rss" "$(s3_bytes)" \
    "$(json "$T/$name.out" .sent_bytes 2>/dev/null || echo -)" >"$T/$name.m"
}

row() {  # DISK PEER LABEL
  local d=$1 p=$2 label=$3 wall cpu rss bytes fw
  read -r wall cpu rss bytes _ <"$T/$d-$p.m"
  read -r fw _ <"$T/$d-ferry.m"
  printf '| %s | %s | %.1f | %.0f | %s | %.1f | %.0f | %s |\n' "$d" "$label" "$wall" \
    "$(echo "$SIZE / $wall / $MiB" | bc -l)" "$(numfmt --to=iec "$bytes")" "$cpu" \
    "$(echo "$rss / 1024" | bc -l)" "$(printf '%.2f' "$(echo "$wall / $fw" | bc -l)")"
}

swift_start
"$AWS" --endpoint-url "$S3_ENDPOINT" s3 mb s3://bench >/dev/null
W=$(mktemp -d "${FERRY_BENCH_DIR:-/var/tmp}/ferry-bench-XXXXXX")
at_exit "rm -rf $W"
R=$T/report.md
{
  echo "## Clone to S3: ferry-agent against the peers"
  echo
  echo "Machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'),"\
    "SHA extensions: $(grep -q sha_ni /proc/cpuinfo && echo yes || echo no)), $(free -g | awk '/Mem:/{print $2}') GiB,"\
    "Debian $(cat /etc/debian_version); $(date -u +%Y-%m-%d); load before: $(cut -d' ' -f1-3 /proc/loadavg)."
  echo "Store: OpenStack Swift $(dpkg-query -W -f='${Version}' swift-proxy) with s3api on 127.0.0.1"\
    "(SigV4, payload SHA-256 verified), one proxy and one object server process."
  echo "Disks: $BENCH_SIZE each; page cache dropped before every run."
  echo
} >"$R"

if [[ " $SECTIONS " == *" peers "* ]]; then
  {
    echo "Wall seconds, MB/s of disk size, bytes S3 received, client CPU seconds (user+sys), peak RSS MiB, and the peer's wall time over ferry's (above 1: ferry is faster)."
    echo
    echo "| disk | tool | wall s | MiB/s | sent | CPU s | RSS MiB | vs ferry |"
    echo "|---|---|---|---|---|---|---|---|"
  } >>"$R"
  for d in $DISKS; do
    make_disk_kind "$d" "$W/$d.img"
    measure "$d-ferry" "$FERRY_BIN/ferry-agent" clone --source "$W/$d.img" --to "s3://bench/ferry-$d" --json -q
    row "$d" ferry "ferry-agent clone" >>"$R"
    for p in $PEERS; do
      case $p in
        dd-aws) measure "$d-$p" bash -c "dd if='$W/$d.img' bs=4M status=none | '$AWS' --endpoint-url '$S3_ENDPOINT' s3 cp - s3://bench/dd-$d --expected-size $SIZE"
                row "$d" "$p" 'dd \| aws s3 cp -' ;;
        aws-cp) measure "$d-$p" "$AWS" --endpoint-url "$S3_ENDPOINT" s3 cp "$W/$d.img" "s3://bench/cp-$d"
                row "$d" "$p" "aws s3 cp" ;;
        dd-gzip-aws) measure "$d-$p" bash -c "dd if='$W/$d.img' bs=4M status=none | gzip -1 | '$AWS' --endpoint-url '$S3_ENDPOINT' s3 cp - s3://bench/gz-$d --expected-size $SIZE"
                row "$d" "$p" 'dd \| gzip -1 \| aws s3 cp -' ;;
        curl) url=$("$TOOL" presign "s3://bench" "curl-$d" PUT 3600)
              measure "$d-$p" curl -sf -T "$W/$d.img" -o /dev/null "$url"
              row "$d" "$p" "curl -T (one stream)" ;;
      esac >>"$R"
    done
    rm -f "$W/$d.img"
  done
  echo >>"$R"
fi
cat "$R"
