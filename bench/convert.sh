#!/bin/bash
# convert.sh - ferry-convert against the tools users would otherwise run:
# `qemu-img convert` from a raw file of the same disk for raw, vhd,
# vhd-dynamic, vmdk and qcow2, and GNU tar + gzip (GCP's documented
# `tar --format=oldgnu -Sczf`) for gce.  Same machine, same run, warm page
# cache for both; each pair runs RUNS times (alternating) and the fastest
# run of each counts.  Writes the "ferry-convert" section of
# docs/PERFORMANCE.md (between its markers) and prints it.
#
#   FERRY_BIN=bin bash bench/convert.sh        (make bench runs it)
#   RUNS=1 FORMATS="raw qcow2" DISKS=os bash bench/convert.sh
set -euo pipefail
TOP=$(cd "$(dirname "$0")/.." && pwd)
FERRY_BIN=${FERRY_BIN:-$TOP/bin}
RUNS=${RUNS:-2}
FORMATS=${FORMATS:-"raw vhd vhd-dynamic vmdk qcow2 gce"}
DISKS=${DISKS:-"os dense sparse64"}
OUT=${OUT:-$TOP/docs/PERFORMANCE.md}
for c in qemu-img mke2fs tar gzip /usr/bin/time openssl; do
  command -v "$c" >/dev/null || { echo "convert.sh: $c is missing (scripts/setup.sh test)" >&2; exit 1; }
done
W=$(mktemp -d "${FERRY_BENCH_DIR:-/var/tmp}/ferry-bench-XXXXXX")
trap 'rm -rf "$W"' EXIT
GIB=1073741824

# The disks: os = a 4 GiB ext4 holding /usr/share (real files, about 1 GB,
# the rest free); dense = 1 GiB of random bytes (incompressible, every
# chunk allocated); sparse64 = the os filesystem at the start of a 64 GiB
# disk (the peak RSS goal).
make_disks() {
  mke2fs -q -F -t ext4 -d /usr/share "$W/os.img" 4G
  case " $DISKS " in *" dense "*) head -c $GIB /dev/urandom >"$W/dense.img" ;; esac
  case " $DISKS " in *" sparse64 "*)
    truncate -s 64G "$W/sparse64.img"
    dd if="$W/os.img" of="$W/sparse64.img" bs=1M conv=sparse,notrunc status=none ;;
  esac
}

# run LABEL CMD...: time CMD; append "wall user sys maxrss-KiB" to $W/LABEL
run() {
  local label=$1; shift
  /usr/bin/time -f '%e %U %S %M' -o "$W/t" "$@" >/dev/null 2>"$W/err" ||
    { echo "convert.sh: $label failed: $(cat "$W/err")" >&2; exit 1; }
  tail -1 "$W/t" >>"$W/$label"
}

# The peer, then fsync of its output: ferry's file:// store syncs an
# output before it renames it into place, so both results are durable.
peer() {  # format src out
  peer_run "$@" && sync "$3"
}
peer_run() {
  case $1 in
    raw) qemu-img convert -f raw -O raw "$2" "$3" ;;
    vhd) qemu-img convert -f raw -O vpc -o subformat=fixed,force_size=on "$2" "$3" ;;
    vhd-dynamic) qemu-img convert -f raw -O vpc -o subformat=dynamic,force_size=on "$2" "$3" ;;
    vmdk) qemu-img convert -f raw -O vmdk -o subformat=streamOptimized "$2" "$3" ;;
    qcow2) qemu-img convert -f raw -O qcow2 -o compat=1.1 "$2" "$3" ;;
    gce) mkdir -p "$W/gce"; ln -f "$2" "$W/gce/disk.raw"
         tar --format=oldgnu -Sczf "$3" -C "$W/gce" disk.raw; rm "$W/gce/disk.raw" ;;
  esac
}
peer_name() {
  case $1 in
    gce) echo 'tar --format=oldgnu -Sczf (gzip -6)' ;;
    vhd) echo 'qemu-img -O vpc -o subformat=fixed,force_size=on' ;;
    vhd-dynamic) echo 'qemu-img -O vpc -o subformat=dynamic,force_size=on' ;;
    vmdk) echo 'qemu-img -O vmdk -o subformat=streamOptimized' ;;
    qcow2) echo 'qemu-img -O qcow2 -o compat=1.1' ;;
    raw) echo 'qemu-img -O raw' ;;
  esac
}

export -f peer peer_run
export W

best() {  # label -> "wall cpu rss-MiB" of the fastest run, max RSS of all
  sort -n "$W/$1" | head -1 | awk -v rss="$(awk 'm<$4{m=$4}END{print m}' "$W/$1")" \
    '{ printf "%.2f %.2f %d\n", $1, $2 + $3, rss / 1024 }'
}

export PATH="$FERRY_BIN:$PATH"
echo "convert.sh: building the disks in $W" >&2
make_disks
rows=()
for disk in $DISKS; do
  src=$W/$disk.img
  ferry-agent clone --source "$src" --to "file://$W/store/$disk" -q >"$W/clone.json" --json
  data=$(jq -r .data_bytes "$W/clone.json")
  for fmt in $FORMATS; do
    [ "$disk" = dense ] && case $fmt in vmdk|gce) continue ;; esac
    echo "convert.sh: $disk -> $fmt" >&2
    rm -f "$W/ferry.$disk.$fmt" "$W/peer.$disk.$fmt"
    for ((i = 0; i < RUNS; i++)); do
      rm -f "$W/o.ferry" "$W/o.peer"
      run "ferry.$disk.$fmt" ferry-convert --from "file://$W/store/$disk" --format "$fmt" --to "$W/o.ferry" -q
      run "peer.$disk.$fmt" bash -c 'peer "$@"' peer "$fmt" "$src" "$W/o.peer"
    done
    read -r fw fc fr <<<"$(best "ferry.$disk.$fmt")"
    read -r pw pc pr <<<"$(best "peer.$disk.$fmt")"
    fs=$(( $(stat -c %s "$W/o.ferry") / 1048576 ))
    ps=$(( $(stat -c %s "$W/o.peer") / 1048576 ))
    ratio=$(awk -v p="$pw" -v f="$fw" 'BEGIN { printf "%.2f", (f > 0 ? p / f : 0) }')
    rows+=("| $disk | $fmt | $fw | $pw | **$ratio** | $fc | $pc | $fr | $pr | $fs | $ps |")
    rm -f "$W/o.ferry" "$W/o.peer"
  done
  rm -rf "$W/store/$disk"
  echo "$disk $(( $(stat -c %s "$src") / 1048576 )) $(( data / 1048576 ))" >>"$W/disks"
done

sha=$(openssl speed -evp sha256 -bytes 1048576 -seconds 2 2>/dev/null | awk '/^sha256/ { printf "%.0f", $2 / 1000 }')
{
  echo "<!-- convert:begin (bench/convert.sh writes this section) -->"
  echo "## ferry-convert against qemu-img convert"
  echo
  echo "Measured $(date -u '+%Y-%m-%d %H:%M UTC') by \`bench/convert.sh\` (RUNS=$RUNS, fastest run"
  echo "of each; the machine is shared, so wall times carry noise):"
  echo "$(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs, $(free -g | awk '/Mem:/ {print $2}') GiB RAM,"
  echo "Linux $(uname -r), $(qemu-img --version | head -1), GNU tar $(tar --version | head -1 | awk '{print $NF}'),"
  echo "OpenSSL SHA-256 on one core: ${sha} MB/s."
  echo
  echo "ferry-convert reads the disk's chunked image from a \`file://\` store (zstd"
  echo "chunks as \`ferry-agent clone\` wrote them) and verifies every chunk's"
  echo "SHA-256; the peer reads the raw file of the same disk.  Both write to the"
  echo "same filesystem with a warm page cache.  Ratio = peer wall time / ferry"
  echo "wall time (at least 1 means ferry is at least as fast)."
  echo
  echo "| disk | size | data |"
  echo "|---|---|---|"
  while read -r d s a; do echo "| $d | $s MiB | $a MiB |"; done <"$W/disks"
  echo
  echo "Peers: $(for f in $FORMATS; do printf '%s: `%s`; ' "$f" "$(peer_name "$f")"; done)"
  echo
  echo "| disk | format | ferry s | peer s | ratio | ferry CPU s | peer CPU s | ferry RSS MiB | peer RSS MiB | ferry out MiB | peer out MiB |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
  echo "<!-- convert:end -->"
} >"$W/section"

python3 "$TOP/bench/section.py" convert "$OUT" "$W/section"
cat "$W/section"
