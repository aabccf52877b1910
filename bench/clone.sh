#!/bin/bash
# clone.sh - ferry-agent clone against what users run today, into the same
# local S3 server (OpenStack Swift with s3api, tests/servers.sh), in the
# same run, on disks of BENCH_SIZE (default 4G):
#
#   random    every byte random (incompressible, every chunk allocated)
#   halfzero  64 MiB regions alternating random and zeros (allocated zeros,
#             as a disk whose free space was wiped)
#   sparse10  a sparse file, 10% allocated in 4 MiB islands
#   fs        ext4 holding an installed Debian 12 root (tests/debian-root.sh)
#             and, as its data, a copy of this host's /usr/share
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
      fs_root
      truncate -s "$SIZE" "$path"
      mke2fs -q -F -t ext4 -d "$W/fsroot" "$path" >/dev/null ||
        fail "mke2fs -d $W/fsroot into $path failed (BENCH_SIZE too small for the fs disk?)" ;;
  esac
}

# the fs disk's files: an installed Debian 12 root (tests/debian-root.sh,
# cached) plus, as a server's data, a copy of this host's /usr/share under
# /srv when it fits in 60% of the disk
fs_root() {
  [ -d "$W/fsroot" ] && return 0
  local tb used
  tb=$(ls -t "${FERRY_TEST_CACHE:-/var/cache/ferry-test}"/debian12-*.tar.zst 2>/dev/null | head -1)
  mkdir -p "$W/fsroot"
  if [ -n "$tb" ]; then
    zstd -dc "$tb" | tar -C "$W/fsroot" --numeric-owner -xpf -
  else
    bash "$TOP/tests/debian-root.sh" "$W/fsroot" || fail "no Debian 12 root (tests/debian-root.sh)"
  fi
  used=$(du -sb "$W/fsroot" /usr/share | awk '{s += $1} END {print s}')
  if ((used < SIZE * 6 / 10)); then
    cp -a /usr/share "$W/fsroot/srv/share"
  fi
}

# received bytes the S3 endpoint logged (client requests only)
s3_bytes() {
  awk '$2 == "127.0.0.1" && $3 == "127.0.0.1" && $12 ~ /^[0-9]+$/ {s += $12} END {printf "%.0f\n", s}' "$S3_ACCESS_LOG"
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
  if [ -n "${KEEP_BUCKET:-}" ]; then : >"$S3_ACCESS_LOG"; else empty_bucket; fi
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
  echo "Commands (E is the S3 endpoint, DISK the disk image, N its size):"
  echo
  echo '    ferry-agent clone --source DISK --to s3://bench/ferry-DISK --json -q'
  echo '    dd if=DISK bs=4M status=none | aws --endpoint-url E s3 cp - s3://bench/dd-DISK --expected-size N'
  echo '    aws --endpoint-url E s3 cp DISK s3://bench/cp-DISK'
  echo '    dd if=DISK bs=4M status=none | gzip -1 | aws --endpoint-url E s3 cp - s3://bench/gz-DISK --expected-size N'
  echo '    curl -sf -T DISK -o /dev/null PRESIGNED-PUT-URL'
  echo
  echo "aws is Debian's /usr/bin/aws ($("$AWS" --version 2>&1 | cut -d' ' -f1)) at its defaults (8 MiB parts, 10 concurrent requests)."
  echo
} >"$R"

if [[ " $SECTIONS " == *" peers "* ]]; then
  {
    echo "Wall seconds, MiB/s of disk size, bytes S3 received, client CPU seconds (user+sys), peak RSS MiB, and the peer's wall time over ferry's (above 1: ferry is faster)."
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

# ferry alone: wall, CPU, RSS, sent (from its --json) for one clone
ferry_run() {  # NAME SOURCE URL [clone args]
  local name=$1 src=$2 url=$3; shift 3
  measure "$name" "$FERRY_BIN/ferry-agent" clone --source "$src" --to "$url" --json -q "$@"
}
ferry_row() {  # NAME LABEL
  local wall cpu rss bytes sent
  read -r wall cpu rss bytes sent <"$T/$1.m"
  printf '| %s | %.1f | %s | %.1f | %.0f |\n' "$2" "$wall" "$(numfmt --to=iec "$bytes")" "$cpu" \
    "$(echo "$rss / 1024" | bc -l)"
}

if [[ " $SECTIONS " == *" sparse "* ]]; then
  # 2 GiB of data: alone (dense), and scattered over a 1 TiB sparse file
  rand dense $((2048 * MiB)) >"$W/dense2g.img"
  truncate -s 1T "$W/sparse1t.img"
  for ((i = 0; i < 512; i++)); do
    dd if="$W/dense2g.img" of="$W/sparse1t.img" bs=4M skip=$i seek=$((i * 512 + 7)) count=1 \
      conv=notrunc status=none
  done
  ferry_run sp-dense "$W/dense2g.img" s3://bench/sp-dense
  ferry_run sp-1t "$W/sparse1t.img" s3://bench/sp-1t
  {
    echo "### A 1 TiB sparse disk with 2 GiB allocated"
    echo
    echo "Time follows the allocated data, not the disk's size: holes are found with SEEK_DATA/SEEK_HOLE and never read."
    echo
    echo "| disk | wall s | sent | CPU s | RSS MiB |"
    echo "|---|---|---|---|---|"
    ferry_row sp-dense "2 GiB, all data"
    ferry_row sp-1t "1 TiB sparse, the same 2 GiB in 512 islands"
    echo
  } >>"$R"
  rm -f "$W/dense2g.img" "$W/sparse1t.img"
fi

if [[ " $SECTIONS " == *" tuning "* ]]; then
  # the runs behind the defaults: chunk size, jobs, compression
  make_disk_kind random "$W/t-random.img"
  make_disk_kind fs "$W/t-fs.img"
  {
    echo "### Tuning: what the defaults were chosen from"
    echo
    echo "ferry-agent clone into the same S3 server; wall seconds, bytes sent, client CPU seconds, peak RSS."
    echo
    echo "| disk | settings | wall s | sent | CPU s | RSS MiB |"
    echo "|---|---|---|---|---|---|"
  } >>"$R"
  for d in random fs; do
    for opts in "--chunk-size 1M" "--chunk-size 4M" "--chunk-size 16M" \
                "--jobs 2" "--jobs 4" "--jobs 8" \
                "--compress none" "--compress zstd" "--compress gzip"; do
      name="tune-$d-${opts// /}"
      # shellcheck disable=SC2086 # opts is a list of arguments
      ferry_run "$name" "$W/t-$d.img" "s3://bench/$name" $opts
      printf '| %s ' "$d" >>"$R"
      ferry_row "$name" "$opts" >>"$R"
    done
  done
  echo >>"$R"
  rm -f "$W/t-random.img" "$W/t-fs.img"
fi

if [[ " $SECTIONS " == *" sync "* ]]; then
  # warm migration: change 1% of the disk, then sync: by digest
  # comparison (every chunk read), by dirty bitmap (only changed blocks
  # read), against a full clone of the changed disk
  # the images stay in the bucket from run to run: a sync needs the
  # previous generation
  empty_bucket
  export KEEP_BUCKET=1
  make_disk_kind fs "$W/sync.img"
  qemu-img convert -O qcow2 "$W/sync.img" "$W/sync.qcow2"
  qemu-img bitmap --add "$W/sync.qcow2" cbt0
  qsock=$T/bench-nbd.sock
  qemu-nbd -r -B cbt0 -f qcow2 -k "$qsock" -t "$W/sync.qcow2" >"$T/qnbd.log" 2>&1 &
  qpid=$!
  wait_for 10 test -S "$qsock" || fail "qemu-nbd did not start"
  ferry_run sync-base "nbd+unix:///?socket=$qsock" s3://bench/sync
  ferry_run sync-base2 "$W/sync.img" s3://bench/sync-file
  kill "$qpid"; wait "$qpid" 2>/dev/null || true; rm -f "$qsock"
  # 1% of the disk rewritten, in 1 MiB writes spread over it (files a
  # server rewrote between syncs, random bytes); each touches one 4 MiB chunk
  n=$((SIZE / 100 / MiB))
  cmds=()
  for ((i = 0; i < n; i++)); do
    rand "w$i" "$MiB" >"$W/w$i.bin"      # new random data, no two alike
    cmds+=(-c "write -s $W/w$i.bin $(( (i * 104729 % (SIZE / MiB)) * MiB )) 1M")
  done
  qemu-io "${cmds[@]}" "$W/sync.qcow2" >/dev/null
  rm -f "$W"/w*.bin
  qemu-img convert -O raw "$W/sync.qcow2" "$W/sync.img"
  qemu-nbd -r -B cbt0 -f qcow2 -k "$qsock" -t "$W/sync.qcow2" >>"$T/qnbd.log" 2>&1 &
  qpid=$!
  wait_for 10 test -S "$qsock" || fail "qemu-nbd did not start"
  measure sync-bitmap "$FERRY_BIN/ferry-agent" sync --source "nbd+unix:///?socket=$qsock" \
    --to s3://bench/sync --bitmap cbt0 --json -q
  kill "$qpid"; wait "$qpid" 2>/dev/null || true
  measure sync-digest "$FERRY_BIN/ferry-agent" sync --source "$W/sync.img" --to s3://bench/sync-file --json -q
  ferry_run sync-full "$W/sync.img" s3://bench/sync-full
  {
    echo "### Incremental sync after changing 1% of a $BENCH_SIZE disk"
    echo
    echo "$n writes of 1 MiB spread over the disk (qemu-io), then a sync; the full clone of the changed disk for comparison. Read: bytes read from the source; changed: the data of the chunks that differ from the previous generation; sent: bytes the S3 server received."
    echo
    echo "| sync | wall s | read | changed | sent | CPU s |"
    echo "|---|---|---|---|---|---|"
    for x in sync-digest:"by digest comparison (every chunk read)" sync-bitmap:"by dirty bitmap (qemu-nbd, only dirty chunks read)" sync-full:"full clone of the changed disk"; do
      name=${x%%:*} key=.changed_bytes
      [ "$name" = sync-full ] && key=.data_bytes
      read -r wall cpu rss bytes sent <"$T/$name.m"
      printf '| %s | %.1f | %s | %s | %s | %.1f |\n' "${x#*:}" "$wall" \
        "$(numfmt --to=iec "$(json "$T/$name.out" .read_bytes)")" \
        "$(numfmt --to=iec "$(json "$T/$name.out" "$key")")" \
        "$(numfmt --to=iec "$bytes")" "$cpu"
    done
    echo
  } >>"$R"
  rm -f "$W/sync.img" "$W/sync.qcow2"
  unset KEEP_BUCKET
fi

# the section between its markers in docs/PERFORMANCE.md
{
  echo "<!-- clone:begin (bench/clone.sh writes this section) -->"
  cat "$R"
  echo "<!-- clone:end -->"
} >"$T/section"
python3 "$TOP/bench/section.py" clone "$OUT" "$T/section"
cat "$R"
