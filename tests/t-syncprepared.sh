#!/bin/bash
# A sync into an image whose manifest.json is a prepared generation (guest
# preparation's writes, committed through lib/image/access.c with
# prepared_from) compares with, and carries unchanged chunks from, the
# generation it was prepared from, never the prepared one: afterwards
# manifest.json is the source disk (ferry-convert equals it), with digest
# comparison and with a qemu-nbd dirty bitmap, through a chain of
# preparations too; a converter reads the prepared manifest until then.
. "$(dirname "$0")/lib.sh"
requires qemu-img qemu-io qemu-nbd jq python3
TOOL=${FERRY_UNIT:-$TOP/build/tests}/nbd-serve
[ -x "$TOOL" ] || fail "$TOOL is not built: run make unit"

psock=$T/prep.sock
# prepare STORE [nbd-serve args]: serve, let qemu-io write 0xee into
# chunks 3 and 10 (1 MiB chunks), commit; prints the new generation
prepare() {
  local store=$1 pid; shift
  "$TOOL" "$store" "$psock" --overlay "$T" "$@" >"$T/prep.json" 2>"$T/prep.err" &
  pid=$!
  wait_for 10 test -S "$psock" || fail "nbd-serve did not listen: $(cat "$T/prep.err")"
  qemu-io -f raw "nbd+unix:///?socket=$psock" -c 'write -P 0xee 3146000 5000' \
    -c 'write -P 0xee 10485760 4096' >/dev/null || fail "qemu-io through the export failed"
  kill -TERM "$pid"
  wait "$pid" || fail "nbd-serve failed: $(cat "$T/prep.err")"
  json "$T/prep.json" .generation
}
# convert_is STORE FILE WHAT: manifest.json converts to FILE's bytes
convert_is() {
  rm -f "$T/conv.raw"
  ferry-convert --from "$1" --format raw --to "$T/conv.raw" -q >/dev/null 2>"$T/conv.err" ||
    fail "ferry-convert $1: $(cat "$T/conv.err")"
  cmp -s "$T/conv.raw" "$2" || fail "$3"
}

# -- digest comparison (a file source) ------------------------------------------
make_disk "$T/d.img" 16M random
S=file://$T/store
ferry-agent sync --source "$T/d.img" --to "$S" --chunk-size 1M --json >"$T/s1.json" 2>/dev/null || fail "first sync"
[ "$(prepare "$S")" = 2 ] || fail "the preparation is not generation 2: $(cat "$T/prep.json")"
[ "$(json "$T/store/manifest.json" .prepared_from)" = 1 ] || fail "manifest.json is not the prepared generation"
cp "$T/d.img" "$T/prepared.img"
python3 - "$T/prepared.img" <<'PY'
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(3146000); f.write(b"\xee" * 5000); f.seek(10485760); f.write(b"\xee" * 4096)
PY
convert_is "$S" "$T/prepared.img" "a converter does not read the prepared manifest.json"

ferry-agent sync --source "$T/d.img" --to "$S" --chunk-size 1M --json >"$T/s2.json" 2>"$T/s2.err" ||
  fail "sync over a prepared generation: $(cat "$T/s2.err")"
[ "$(json "$T/s2.json" .unchanged)" = true ] && [ "$(json "$T/s2.json" .generation)" = 1 ] &&
  [ "$(json "$T/s2.json" .changed_chunks)" = 0 ] && [ "$(json "$T/s2.json" .sent_chunks)" = 0 ] ||
  fail "an unchanged source over a prepared generation: $(cat "$T/s2.json")"
cmp -s "$T/store/manifest.json" "$T/store/generations/000001.json" ||
  fail "manifest.json is not generation 1 again after an unchanged sync"
convert_is "$S" "$T/d.img" "after an unchanged sync manifest.json is not the source disk"
ok "an unchanged source over a prepared generation: nothing sent, manifest.json is generation 1 (the source) again"

# a chain: prepared from 1, then prepared from that one
[ "$(prepare "$S")" = 3 ] || fail "the second preparation is not generation 3"
[ "$(prepare "$S")" = 4 ] && [ "$(json "$T/prep.json" .prepared_from)" = 3 ] ||
  fail "a preparation of the prepared generation: $(cat "$T/prep.json")"
printf 'source changed' | dd of="$T/d.img" bs=1 seek=$((5 << 20)) conv=notrunc status=none
ferry-agent sync --source "$T/d.img" --to "$S" --chunk-size 1M --json >"$T/s3.json" 2>"$T/s3.err" ||
  fail "sync over a chain of preparations: $(cat "$T/s3.err")"
[ "$(json "$T/s3.json" .generation)" = 5 ] && [ "$(json "$T/s3.json" .changed_chunks)" = 1 ] &&
  [ "$(json "$T/s3.json" .sent_chunks)" = 1 ] ||
  fail "a changed source over prepared generations is not generation 5 with 1 chunk changed since 1: $(cat "$T/s3.json")"
[ "$(json "$T/store/manifest.json" .prepared_from)" = null ] || fail "manifest.json still says prepared_from"
convert_is "$S" "$T/d.img" "after a sync over prepared generations manifest.json is not the source disk"
ok "a changed source over a chain of preparations: generation 5, compared with generation 1 (1 chunk changed), equal to the source"

# -- changed-block tracking: unchanged chunks come from the source generation --
qemu-img create -q -f qcow2 "$T/vm.qcow2" 16M
qemu-io -c "write -P 0x11 0 12M" "$T/vm.qcow2" >/dev/null
qemu-img bitmap --add "$T/vm.qcow2" cbt0
qsock=$T/qemu-nbd.sock
serve_vm() {
  qemu-nbd -r -B cbt0 -f qcow2 -k "$qsock" -t "$T/vm.qcow2" >>"$T/qemu-nbd.log" 2>&1 &
  QPID=$!
  at_exit "kill $QPID 2>/dev/null"
  wait_for 10 test -S "$qsock" || fail "qemu-nbd did not start"
}
unserve_vm() { kill "$QPID"; wait "$QPID" 2>/dev/null || true; rm -f "$qsock"; }
Q="nbd+unix:///?socket=$qsock"
C=file://$T/cbt
serve_vm
ferry-agent sync --source "$Q" --to "$C" --chunk-size 1M --json >"$T/c1.json" 2>/dev/null || fail "first CBT sync"
unserve_vm
[ "$(prepare "$C")" = 2 ] || fail "the CBT image's preparation is not generation 2"
qemu-io -c "write -P 0x44 7M 100k" "$T/vm.qcow2" >/dev/null       # the VM writes chunk 7 only
serve_vm
ferry-agent sync --source "$Q" --to "$C" --chunk-size 1M --bitmap cbt0 --json >"$T/c2.json" 2>"$T/c2.err" ||
  fail "CBT sync over a prepared generation: $(cat "$T/c2.err")"
unserve_vm
[ "$(json "$T/c2.json" .read_bytes)" = $((1 << 20)) ] && [ "$(json "$T/c2.json" .carried_chunks)" = 11 ] &&
  [ "$(json "$T/c2.json" .changed_chunks)" = 1 ] && [ "$(json "$T/c2.json" .generation)" = 3 ] ||
  fail "CBT sync over a prepared generation: $(cat "$T/c2.json")"
ferry-convert --from "$C" --format raw --to "$T/cbt.raw" -q >/dev/null 2>"$T/conv.err" || fail "ferry-convert: $(cat "$T/conv.err")"
qemu-img compare -q -f qcow2 -F raw "$T/vm.qcow2" "$T/cbt.raw" ||
  fail "the CBT sync carried chunks from the prepared generation: manifest.json differs from the VM's disk"
ok "with a dirty bitmap the 11 unchanged chunks are carried from generation 1, not the prepared 2; manifest.json equals the VM's disk"
