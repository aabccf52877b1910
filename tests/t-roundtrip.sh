#!/bin/bash
# clone -> convert raw round trips rebuild the disk byte for byte, and zero
# chunks are never stored.
. "$(dirname "$0")/lib.sh"
requires qemu-img jq

roundtrip() {  # name size kind [clone options...]
  local name=$1 size=$2 kind=$3; shift 3
  local disk=$T/$name.img url=file://$T/store/$name/sda out=$T/$name.out.raw
  make_disk "$disk" "$size" "$kind"
  ferry-agent clone --source "$disk" --to "$url" --json "$@" >"$T/$name.json" ||
    fail "$name: clone failed"
  ferry-convert --from "$url" --format raw --to "$out" --json >"$T/$name.conv" ||
    fail "$name: convert failed"
  cmp "$disk" "$out" || fail "$name: rebuilt disk differs from the source"
  qemu-img compare -q -f raw -F raw "$disk" "$out" ||
    fail "$name: qemu-img compare reports a difference"
  [ "$(stat -c %s "$out")" -eq "$(stat -c %s "$disk")" ] || fail "$name: size differs"
  # every stored chunk object is a data chunk: zero chunks are not stored
  local objs data
  objs=$( (find "$T/store/$name/sda/chunks" -type f 2>/dev/null || true) | wc -l)
  data=$(json "$T/$name.json" .data_chunks)
  [ "$objs" -le "$data" ] || fail "$name: $objs chunk objects for $data data chunks"
  [ "$(json "$T/$name.json" .image_digest)" = "$(json "$T/$name.conv" .image_digest)" ] ||
    fail "$name: image digest differs between clone and convert"
  ok "$name ($size, $kind${*:+, $*}) round trip is byte-identical"
}

roundtrip empty 64M zero
[ "$(json "$T/empty.json" .data_chunks)" = 0 ] || fail "all-zero disk stored data chunks"
[ "$(json "$T/empty.json" .sent_bytes)" = 0 ] || fail "all-zero disk sent bytes"
[ "$(json "$T/empty.json" .read_bytes)" = 0 ] || fail "all-zero sparse disk was read (holes must be skipped)"
ok "an all-zero disk stores no chunk and reads nothing"

roundtrip random 24M random
[ "$(json "$T/random.json" .data_chunks)" = 6 ] || fail "24M random disk: expected 6 data chunks"
ok "an all-random disk stores every chunk"

roundtrip sparse 256M sparse
read=$(json "$T/sparse.json" .read_bytes)
[ "$read" -le $((5 * 4 * 1048576)) ] || fail "sparse disk: read $read bytes, holes were read"
[ "$(json "$T/sparse.json" .hole_bytes)" -gt $((200 * 1048576)) ] || fail "sparse disk: holes not skipped"
ok "a sparse disk is read only where it holds data"

# zeros written as data (not holes) are detected on read and not stored
make_disk "$T/dense-zero.img" 16M zero
dd if=/dev/zero of="$T/dense-zero.img" bs=1M count=16 conv=notrunc status=none
ferry-agent clone --source "$T/dense-zero.img" --to "file://$T/store/dz" --json >"$T/dz.json"
[ "$(json "$T/dz.json" .data_chunks)" = 0 ] && [ "$(json "$T/dz.json" .read_bytes)" = 16777216 ] ||
  fail "allocated zeros: $(cat "$T/dz.json")"
ok "allocated all-zero chunks are detected on read and not stored"

roundtrip odd $((10 * 1048576 + 12345)) random --chunk-size 1M
[ "$(json "$T/odd.json" .chunks)" = 11 ] || fail "odd size: expected 11 chunks"
roundtrip sector 512 random
roundtrip gzip 12M sparse --compress gzip
ls "$T/store/gzip/sda/chunks/" | grep -q '\.gz$' || fail "gzip: no .gz chunk stored"
roundtrip plain 12M sparse --compress none --jobs 1
! ls "$T/store/plain/sda/chunks/" | grep -q '\.' || fail "--compress none stored a compressed chunk"
roundtrip wide 40M random --chunk-size 2M --jobs 16

# a repeated chunk is stored once (content addressing)
head -c 1M /dev/urandom > "$T/block"
for i in 1 2 3 4; do cat "$T/block"; done > "$T/repeat.img"
ferry-agent clone --source "$T/repeat.img" --to "file://$T/store/rep" --chunk-size 1M --json >"$T/rep.json"
[ "$(find "$T/store/rep/chunks" -type f | wc -l)" = 1 ] || fail "identical chunks stored more than once"
ferry-convert --from "file://$T/store/rep" --format raw --to "$T/rep.raw" -q >/dev/null
cmp "$T/repeat.img" "$T/rep.raw" || fail "repeated-chunk disk differs"
ok "identical chunks are stored once and rebuilt everywhere they occur"

# cloning an unchanged disk again keeps the manifest; a change makes generation 2
before=$(sha256sum < "$T/store/random/sda/manifest.json")
ferry-agent clone --source "$T/random.img" --to "file://$T/store/random/sda" --json >"$T/again.json"
[ "$(sha256sum < "$T/store/random/sda/manifest.json")" = "$before" ] || fail "re-clone changed the manifest"
[ "$(json "$T/again.json" .sent_bytes)" = 0 ] || fail "re-clone of an unchanged disk sent data"
printf 'changed' | dd of="$T/random.img" bs=1 seek=5000000 conv=notrunc status=none
ferry-agent clone --source "$T/random.img" --to "file://$T/store/random/sda" --json >"$T/gen2.json"
[ "$(json "$T/gen2.json" .generation)" = 2 ] && [ "$(json "$T/gen2.json" .sent_chunks)" = 1 ] ||
  fail "changed disk: $(cat "$T/gen2.json")"
ferry-convert --from "file://$T/store/random/sda" --format raw --to "$T/gen2.raw" -q >/dev/null
cmp "$T/random.img" "$T/gen2.raw" || fail "generation 2 does not rebuild the changed disk"
ok "an unchanged disk keeps its manifest; a changed one becomes generation 2 sending one chunk"

# a block device source (a loop device over a disk image): size from the
# device, zero chunks detected on read since devices report no holes
if [ "$(id -u)" = 0 ] && command -v losetup >/dev/null && dev=$(losetup -f --show -r "$T/sparse.img" 2>/dev/null); then
  at_exit "losetup -d $dev"
  ferry-agent clone --source "$dev" --to "file://$T/store/blk" --json >"$T/blk.json" || fail "clone of $dev failed"
  [ "$(json "$T/blk.json" .disk_size)" = "$(stat -c %s "$T/sparse.img")" ] || fail "block device size: $(cat "$T/blk.json")"
  [ "$(json "$T/blk.json" .image_digest)" = "$(json "$T/sparse.json" .image_digest)" ] ||
    fail "block device image differs from the file's"
  ferry-convert --from "file://$T/store/blk" --format raw --to "$T/blk.raw" -q >/dev/null
  cmp "$T/sparse.img" "$T/blk.raw" || fail "block device round trip differs"
  ok "a block device ($dev) clones to the same image as its backing file"
else
  echo "SKIP: no loop device available for the block-device case"; exit 77
fi
