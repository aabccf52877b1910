#!/bin/bash
# ferry-convert on bad input: one clear line, a non-zero exit, and no
# destination left that looks complete.  Memory stays bounded for a large
# sparse disk.
. "$(dirname "$0")/lib.sh"
requires qemu-img jq

FORMATS="raw vhd vhd-dynamic vmdk qcow2 gce"
make_disk "$T/d.img" 16M sparse
ferry-agent clone --source "$T/d.img" --to "file://$T/img" -q >/dev/null
mkdir "$T/dst"

# nothing in DIR but what is named (no output, no temporary file)
only() {  # dir names...
  local d=$1; shift
  [ "$(ls -A "$d" | sort | tr '\n' ' ')" = "$(printf '%s\n' "$@" | sort | grep . | tr '\n' ' ')" ] ||
    fail "$d holds: $(ls -A "$d" | tr '\n' ' ') (expected: $*)"
}

expect_fail "unknown format 'vhdx': use one of raw, vhd, vhd-dynamic, vmdk, qcow2, gce" \
  ferry-convert --from "file://$T/img" --format vhdx --to "$T/dst/o"
[ "$(ferry-convert --from "file://$T/img" --format vhdx --to "$T/dst/o" 2>/dev/null; echo $?)" = 2 ] ||
  fail "an unknown format is not a usage error (exit 2)"
expect_fail "--level must be 1 to 9" ferry-convert --from "file://$T/img" --format vmdk --to "$T/dst/o" --level 0
expect_fail "--threads must be 1 to 64" ferry-convert --from "file://$T/img" --format vmdk --to "$T/dst/o" --threads x
expect_fail "no image at file://$T/none" ferry-convert --from "file://$T/none" --format qcow2 --to "$T/dst/o"
only "$T/dst"
ok "unknown formats, bad options and missing images are refused with one line"

# an existing destination is kept unless --overwrite
for fmt in $FORMATS; do
  echo keep >"$T/dst/exists.$fmt"
  expect_fail "destination $T/dst/exists.$fmt already exists: pass --overwrite to replace it" \
    ferry-convert --from "file://$T/img" --format "$fmt" --to "$T/dst/exists.$fmt"
  [ "$(cat "$T/dst/exists.$fmt")" = keep ] || fail "$fmt: the existing destination was changed"
  ferry-convert --from "file://$T/img" --format "$fmt" --to "$T/dst/exists.$fmt" --overwrite -q >/dev/null ||
    fail "$fmt: --overwrite failed"
  ferry-convert --verify --from "file://$T/img" --format "$fmt" --to "$T/dst/exists.$fmt" -q >/dev/null ||
    fail "$fmt: the overwritten destination does not verify"
  rm "$T/dst/exists.$fmt"
done
only "$T/dst"
ok "an existing destination is refused, and replaced whole with --overwrite"

# a destination this user may not write
if [ "$(id -u)" = 0 ] && id nobody >/dev/null 2>&1; then
  chmod 755 "$T"; chmod -R a+rX "$T/img"; mkdir -m 755 "$T/rootonly"
  for fmt in $FORMATS; do
    expect_fail "check that this user may write the store directory" \
      setpriv --reuid=nobody --regid=nogroup --clear-groups -- \
      "$FERRY_BIN/ferry-convert" --from "file://$T/img" --format "$fmt" --to "$T/rootonly/o.$fmt"
  done
  only "$T/rootonly"
  ok "an unwritable destination names the path and the fix, and leaves nothing"
else
  echo "SKIP: permission cases need root and a 'nobody' user"; exit 77
fi

# a truncated or tampered image: the conversion stops, nothing is left
make_disk "$T/p.img" 16M random
ferry-agent clone --source "$T/p.img" --to "file://$T/plain" --compress none -q >/dev/null
chunk=$(ls "$T/plain/chunks" | head -1)
cp "$T/plain/chunks/$chunk" "$T/chunk.bak"
truncate -s 1000 "$T/plain/chunks/$chunk"
for fmt in $FORMATS; do
  expect_fail "is 1000 bytes, the table says 4194304: the stored chunk is damaged" \
    ferry-convert --from "file://$T/plain" --format "$fmt" --to "$T/dst/t.$fmt"
done
only "$T/dst"
cp "$T/chunk.bak" "$T/plain/chunks/$chunk"
flip_byte "$T/plain/chunks/$chunk" 12345   # inverted: writing a fixed byte was a no-op one time in 256
for fmt in $FORMATS; do
  expect_fail "does not match its digest" \
    ferry-convert --from "file://$T/plain" --format "$fmt" --to "$T/dst/t.$fmt"
done
only "$T/dst"
rm "$T/plain/chunks/$chunk"
expect_fail "is missing from file://$T/plain" ferry-convert --from "file://$T/plain" --format qcow2 --to "$T/dst/t.qcow2"
only "$T/dst"
ok "a truncated, tampered or missing chunk stops every format with one line and leaves no destination"

# --verify of what is not there, or not of that format
expect_fail "$T/dst/none.vmdk does not exist" \
  ferry-convert --verify --from "file://$T/img" --format vmdk --to "$T/dst/none.vmdk"
ferry-convert --from "file://$T/img" --format qcow2 --to "$T/dst/q.qcow2" -q >/dev/null
expect_fail "not a VMDK sparse extent" ferry-convert --verify --from "file://$T/img" --format vmdk --to "$T/dst/q.qcow2"
expect_fail "not a qcow2 image" ferry-convert --verify --from "file://$T/img" --format qcow2 --to "$T/d.img"
rm "$T/dst/q.qcow2"
ok "--verify of a missing output or of another format fails with one line"

# killed in the middle: no destination
make_disk "$T/r.img" 256M random
ferry-agent clone --source "$T/r.img" --to "file://$T/rimg" -q >/dev/null
ferry-convert --from "file://$T/rimg" --format vmdk --to "$T/dst/r.vmdk" --threads 1 --level 9 -q >/dev/null 2>"$T/kill.err" &
pid=$!
sleep 1
kill -TERM "$pid"
rc=0; wait "$pid" || rc=$?
[ "$rc" -ne 0 ] || fail "ferry-convert finished before it could be interrupted (make the disk larger)"
grep -q "interrupted: nothing was written at the destination" "$T/kill.err" || fail "interrupt message: $(cat "$T/kill.err")"
only "$T/dst"
ok "an interrupted conversion leaves no destination"

# memory: a 64 GiB sparse disk converts in bounded memory, to every format
if [ -x /usr/bin/time ]; then
  truncate -s 64G "$T/huge.img"
  for o in 0 1 7 20 33 63; do
    head -c 3000000 /dev/urandom | dd of="$T/huge.img" bs=1M seek=$((o * 1024 + 5)) conv=notrunc status=none
  done
  ferry-agent clone --source "$T/huge.img" --to "file://$T/himg" -q >/dev/null
  for fmt in $FORMATS; do
    /usr/bin/time -f %M -o "$T/rss" ferry-convert --from "file://$T/himg" --format "$fmt" \
      --to "$T/dst/h.$fmt" -q >/dev/null || fail "64 GiB sparse to $fmt failed"
    rss=$(tail -1 "$T/rss")
    [ "$rss" -lt $((256 * 1024)) ] || fail "64 GiB sparse to $fmt: peak RSS $rss KiB"
    [ "$(du -k "$T/dst/h.$fmt" | cut -f1)" -lt $((64 * 1024)) ] ||
      fail "64 GiB sparse to $fmt: $(du -k "$T/dst/h.$fmt" | cut -f1) KiB on disk: zeros were written"
    echo "  $fmt: peak RSS $rss KiB"
    rm "$T/dst/h.$fmt"
  done
  ok "a 64 GiB sparse disk converts to every format under 256 MiB of RSS, holes kept"
else
  echo "SKIP: /usr/bin/time is not installed"; exit 77
fi
