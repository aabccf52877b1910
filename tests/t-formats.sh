#!/bin/bash
# ferry-convert writes every format (raw, vhd, vhd-dynamic, vmdk, qcow2,
# gce) from the chunked image, and qemu-img and GNU tar -- not ferry --
# judge the result: `qemu-img compare` against the source disk, `qemu-img
# check`, `qemu-img info` (format, subformat, virtual size); the gce
# archive lists exactly disk.raw under GNU tar and unpacks to the disk.
# ferry-convert --verify passes on every output, and the output digest
# matches an independent computation.
. "$(dirname "$0")/lib.sh"
requires qemu-img jq python3 tar

FORMATS="raw vhd vhd-dynamic vmdk qcow2 gce"
MIB=1048576
GIB=1073741824

# output_digest FILE BLOCK: SHA-256 over the SHA-256 of each BLOCK-byte
# piece of FILE (docs/FORMATS.md), computed without ferry.
output_digest() {
  python3 - "$1" "$2" <<'EOF'
import hashlib, sys
root = hashlib.sha256()
with open(sys.argv[1], 'rb') as f:
    while True:
        b = f.read(int(sys.argv[2]))
        if not b:
            break
        root.update(hashlib.sha256(b).digest())
print(root.hexdigest())
EOF
}

# The virtual size each format declares for a disk of SIZE bytes.
expected_size() {  # format size
  case $1 in
    raw) echo "$2" ;;
    vhd) echo $(( ($2 + MIB - 1) / MIB * MIB )) ;;
    gce) echo $(( ($2 + GIB - 1) / GIB * GIB )) ;;
    *) echo $(( ($2 + 511) / 512 * 512 )) ;;
  esac
}

# qemu's view of an output: --image-opts with the driver for FORMAT.  A
# VHD from ferry is sized by its footer's current size (force_size_calc;
# qemu before 10.0 sizes unknown creators by CHS geometry).
qemu_opts() {  # format file
  case $1 in
    raw) echo "driver=raw,file.filename=$2" ;;
    vhd|vhd-dynamic) echo "driver=vpc,force_size_calc=current_size,file.filename=$2" ;;
    vmdk) echo "driver=vmdk,file.filename=$2" ;;
    qcow2) echo "driver=qcow2,file.filename=$2" ;;
  esac
}

check_output() {  # name disk format out conv-json
  local name=$1 disk=$2 fmt=$3 out=$4 conv=$5 size want info got
  size=$(stat -c %s "$disk")
  want=$(expected_size "$fmt" "$size")
  [ "$(json "$conv" .virtual_size)" = "$want" ] ||
    fail "$name/$fmt: --json virtual_size $(json "$conv" .virtual_size), expected $want"
  [ "$(json "$conv" .output_bytes)" = "$(stat -c %s "$out")" ] ||
    fail "$name/$fmt: --json output_bytes differs from the file's size"
  if [ "$fmt" = gce ]; then
    local x=$T/x-$name
    rm -rf "$x"; mkdir "$x"
    [ "$(tar -tzf "$out")" = disk.raw ] || fail "$name/gce: tar lists $(tar -tzf "$out" | head -3)"
    # GNU tar's old format: magic "ustar  \0" at 257 of the first header
    [ "$(gzip -dc "$out" | head -c 265 | tail -c 8 | od -An -c | tr -d ' ')" = 'ustar\0' ] ||
      [ "$(gzip -dc "$out" | head -c 265 | tail -c 8 | od -An -tx1 | tr -d ' ')" = 7573746172202000 ] ||
      fail "$name/gce: the archive is not in GNU (oldgnu) tar format"
    gzip -t "$out" || fail "$name/gce: gzip -t fails"
    tar -C "$x" -xSzf "$out" || fail "$name/gce: GNU tar cannot unpack it"
    [ "$(stat -c %s "$x/disk.raw")" = "$want" ] || fail "$name/gce: disk.raw is $(stat -c %s "$x/disk.raw") bytes, expected $want"
    # the disk, then zeros to the whole GiB (cmp for the small disks;
    # qemu-img compare skips holes and reads the extra area as zeros)
    [ "$size" -gt $((512 * MIB)) ] || cmp -n "$size" "$disk" "$x/disk.raw" ||
      fail "$name/gce: disk.raw differs from the disk"
    qemu-img compare -q -f raw -F raw "$disk" "$x/disk.raw" ||
      fail "$name/gce: disk.raw is not the disk followed by zeros"
    rm -rf "$x"
  else
    qemu-img compare -q --image-opts "$(qemu_opts raw "$disk")" "$(qemu_opts "$fmt" "$out")" ||
      fail "$name/$fmt: qemu-img compare reports a difference from the source disk"
    info=$(qemu-img info --output=json --image-opts "$(qemu_opts "$fmt" "$out")")
    # (qemu counts whole sectors: a raw file of any size reads rounded up)
    [ "$(json "$info" '."virtual-size"')" = $(( (want + 511) / 512 * 512 )) ] ||
      fail "$name/$fmt: qemu-img info says virtual size $(json "$info" '."virtual-size"'), expected $want"
    [ "$fmt" != raw ] || [ "$(stat -c %s "$out")" = "$size" ] || fail "$name/raw: the file is not $size bytes"
    got=$(json "$info" .format)
    case $fmt in
      raw) [ "$got" = raw ] ;;
      vhd) [ "$got" = vpc ] && [ "$(json "$info" '."cluster-size" // "none"')" = none ] &&
             [ "$(tail -c 512 "$out" | head -c 64 | tail -c 4 | od -An -tx1 | tr -d ' ')" = 00000002 ] ;;
      vhd-dynamic) [ "$got" = vpc ] && [ "$(json "$info" '."cluster-size"')" = 2097152 ] &&
             [ "$(tail -c 512 "$out" | head -c 64 | tail -c 4 | od -An -tx1 | tr -d ' ')" = 00000003 ] ;;
      vmdk) [ "$got" = vmdk ] &&
             [ "$(json "$info" '."format-specific".data."create-type"')" = streamOptimized ] &&
             [ "$(json "$info" '."format-specific".data.extents[0].compressed')" = true ] ;;
      qcow2) [ "$got" = qcow2 ] && [ "$(json "$info" '."format-specific".data.compat')" = 1.1 ] ;;
    esac || fail "$name/$fmt: qemu-img info reports format $got / wrong subformat: $info"
    # qemu-img check exists for vmdk and qcow2 ("This image format does not
    # support checks" for raw and vpc: --verify below checks those)
    case $fmt in
      vmdk|qcow2)
        qemu-img check -q "$out" || fail "$name/$fmt: qemu-img check finds errors: $(qemu-img check "$out" 2>&1)" ;;
    esac
  fi
}

# disk name, size, kind; every format; the output digest recomputed for
# the small ones
convert_all() {  # name size kind [clone options]
  local name=$1 size=$2 kind=$3; shift 3
  local disk=$T/$name.img url=file://$T/store/$name fmt out
  make_disk "$disk" "$size" "$kind"
  ferry-agent clone --source "$disk" --to "$url" -q "$@" >/dev/null || fail "$name: clone failed"
  for fmt in $FORMATS; do
    out=$T/o/$name.$fmt
    ferry-convert --from "$url" --format "$fmt" --to "$out" --json -q >"$T/$name.$fmt.json" ||
      fail "$name/$fmt: convert failed"
    check_output "$name" "$disk" "$fmt" "$out" "$T/$name.$fmt.json"
    if [ "$(stat -c %s "$out")" -le $((512 * MIB)) ]; then
      [ "$(output_digest "$out" "$(json "$T/$name.$fmt.json" .output_digest_block)")" = \
        "$(json "$T/$name.$fmt.json" .output_digest)" ] ||
        fail "$name/$fmt: the output digest does not match the file's bytes"
    fi
    case $fmt in
      raw|vhd) [ "$(stat -c %s "$out")" -gt $((512 * MIB)) ] && continue ;;
    esac
    ferry-convert --verify --from "$url" --format "$fmt" --to "$out" -q >/dev/null ||
      fail "$name/$fmt: --verify rejects a good output"
  done
  [ "$(json "$T/$name.raw.json" .output_digest)" = "$(json "$T/$name.raw.json" .image_digest)" ] ||
    fail "$name: the raw output digest is not the image digest"
  ok "$name ($size, $kind${*:+, $*}): every format matches the disk under qemu-img / GNU tar; --verify passes"
  rm -f "$T"/o/"$name".*
}
mkdir -p "$T/o"

convert_all empty 64M zero
convert_all random 24M random
convert_all sparse 256M sparse
convert_all odd $((10 * MIB + 12345)) random --chunk-size 1M
convert_all sector $((9 * MIB + 3 * 512)) sparse --chunk-size 2M
convert_all gzip 48M sparse --compress gzip --chunk-size 8M

# a virtual size above 4 GiB (and above tar's 8 GiB octal limit) with few
# allocated chunks: 32-bit sizes and offsets, base-256 tar numbers
big=$T/big.img
truncate -s $((9 * GIB + 5 * MIB)) "$big"
for o in 0 $((4 * GIB + 3 * MIB)) $((8 * GIB + 100 * MIB)) $((9 * GIB + 4 * MIB)); do
  head -c 700000 /dev/urandom | dd of="$big" bs=4096 seek=$((o / 4096)) conv=notrunc status=none
done
ferry-agent clone --source "$big" --to "file://$T/store/big" -q >/dev/null || fail "big: clone failed"
for fmt in $FORMATS; do
  out=$T/o/big.$fmt
  ferry-convert --from "file://$T/store/big" --format "$fmt" --to "$out" --json -q >"$T/big.$fmt.json" ||
    fail "big/$fmt: convert failed"
  check_output big "$big" "$fmt" "$out" "$T/big.$fmt.json"
  case $fmt in
    raw|vhd) ;;                   # reading 9 GiB of holes back: too slow here
    *) ferry-convert --verify --from "file://$T/store/big" --format "$fmt" --to "$out" -q >/dev/null ||
         fail "big/$fmt: --verify rejects a good output" ;;
  esac
  [ "$(du -k "$out" | cut -f1)" -lt $((64 * 1024)) ] || fail "big/$fmt: $(du -k "$out" | cut -f1) KiB on disk: holes were written"
  rm -f "$out"
done
ok "a 9 GiB disk with 4 allocated chunks converts to every format, small on disk, identical under qemu-img"

# --verify catches a flipped byte in the data and names its offset, and
# catches structural damage
make_disk "$T/v.img" 32M sparse
url=file://$T/store/v
ferry-agent clone --source "$T/v.img" --to "$url" -q >/dev/null
for fmt in $FORMATS; do
  ferry-convert --from "$url" --format "$fmt" --to "$T/o/v.$fmt" -q >/dev/null
done
flip() {  # file offset: invert one byte in place
  python3 -c 'import sys; f=open(sys.argv[1],"r+b"); o=int(sys.argv[2]); f.seek(o); b=f.read(1); f.seek(o); f.write(bytes([b[0]^0xff]))' "$1" "$2"
}
# disk offset 7 MiB + 5000 holds random data (make_disk sparse); where it
# lies in each output, found by searching for the disk's bytes there
flipped=$((7 * MIB + 4096 + 904))
for fmt in raw vhd vhd-dynamic qcow2; do
  cp "$T/o/v.$fmt" "$T/o/bad.$fmt"
  at=$(python3 -c 'import sys; d=open(sys.argv[1],"rb").read(); s=open(sys.argv[2],"rb").read()[int(sys.argv[3]):int(sys.argv[3])+64]; print(d.find(s))' \
         "$T/o/bad.$fmt" "$T/v.img" "$flipped")
  [ "$at" -ge 0 ] || fail "$fmt: cannot find the disk's bytes in the output"
  flip "$T/o/bad.$fmt" "$at"
  expect_fail "differs from the image at disk offset $flipped (chunk 1)" \
    ferry-convert --verify --from "$url" --format "$fmt" --to "$T/o/bad.$fmt" -q
done
ok "--verify names the disk offset of a byte flipped in raw, vhd, vhd-dynamic and qcow2 data"

# compressed formats: a flipped byte inside the compressed data
for fmt in vmdk gce; do
  cp "$T/o/v.$fmt" "$T/o/bad.$fmt"
  flip "$T/o/bad.$fmt" 140000
  expect_fail "verify $T/o/bad.$fmt" ferry-convert --verify --from "$url" --format "$fmt" --to "$T/o/bad.$fmt" -q
done
ok "--verify detects a byte flipped inside vmdk grains and the gce gzip stream"

# structure: footers, headers, tables, truncation
damage() {  # fmt what offset-expression needle
  local fmt=$1 what=$2 off=$3 needle=$4
  cp "$T/o/v.$fmt" "$T/o/bad.$fmt"
  flip "$T/o/bad.$fmt" "$off"
  expect_fail "$needle" ferry-convert --verify --from "$url" --format "$fmt" --to "$T/o/bad.$fmt" -q
}
sz() { stat -c %s "$T/o/v.$1"; }
damage vhd "footer" $(( $(sz vhd) - 512 + 20 )) "fails its checksum"
damage vhd-dynamic "BAT" $((1536 + 3)) "damaged"
damage vhd-dynamic "end footer" $(( $(sz vhd-dynamic) - 100 )) "fails its checksum"
damage qcow2 "L1 offset" 47 "out of place"
damage qcow2 "refcount" $((65536 * 2 + 1)) "refcount"
damage vmdk "footer" $(( $(sz vmdk) - 1024 + 12 )) "differs from the header"
damage vmdk "GD" $(( $(sz vmdk) - 1536 - 512 + 1 )) "grain"
damage gce "tar header" $((20)) "verify"
damage gce "gzip trailer" $(( $(sz gce) - 6 )) "damaged"
for fmt in $FORMATS; do
  head -c $(( $(sz "$fmt") - 512 )) "$T/o/v.$fmt" >"$T/o/bad.$fmt"
  expect_fail "verify" ferry-convert --verify --from "$url" --format "$fmt" --to "$T/o/bad.$fmt" -q
done
ok "--verify detects damaged footers, headers, tables, checksums and truncation in every format"

# an output checked against another image: another disk of the same size,
# and one of another size
make_disk "$T/w.img" 32M random
ferry-agent clone --source "$T/w.img" --to "file://$T/store/w" -q >/dev/null
expect_fail "differs from the image at disk offset 0 (chunk 0)" \
  ferry-convert --verify --from "file://$T/store/w" --format qcow2 --to "$T/o/v.qcow2" -q
make_disk "$T/s.img" 3M random
ferry-agent clone --source "$T/s.img" --to "file://$T/store/s" -q >/dev/null
expect_fail "was not converted from this image" \
  ferry-convert --verify --from "file://$T/store/s" --format vmdk --to "$T/o/v.vmdk" -q
ok "--verify rejects an output made from another image"
