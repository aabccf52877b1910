#!/bin/bash
# Warm migration on the agent side: every sync writes a new generation that
# sends only changed chunks; NBD sources (nbdkit, qemu-nbd) with holes from
# block status and changed blocks from a dirty bitmap; a source failing
# mid-read gives a clear error and the next sync resumes.
. "$(dirname "$0")/lib.sh"
requires qemu-img qemu-io qemu-nbd nbdkit jq

# -- file source: digest comparison ------------------------------------------
make_disk "$T/d.img" 32M random
cp "$T/d.img" "$T/d.gen1"
S=file://$T/store
ferry-agent sync --source "$T/d.img" --to "$S" --chunk-size 1M --json >"$T/s1.json"
[ "$(json "$T/s1.json" .generation)" = 1 ] && [ "$(json "$T/s1.json" .sent_chunks)" = 32 ] ||
  fail "first sync: $(cat "$T/s1.json")"
for off in 2 17 30; do printf 'changed' | dd of="$T/d.img" bs=1 seek=$((off * 1048576 + 99)) conv=notrunc status=none; done
ferry-agent sync --source "$T/d.img" --to "$S" --chunk-size 1M --json >"$T/s2.json"
[ "$(json "$T/s2.json" .generation)" = 2 ] || fail "second sync is not generation 2"
[ "$(json "$T/s2.json" .changed_chunks)" = 3 ] && [ "$(json "$T/s2.json" .sent_chunks)" = 3 ] &&
  [ "$(json "$T/s2.json" .changed_bytes)" = $((3 << 20)) ] || fail "second sync: $(cat "$T/s2.json")"
ferry-agent sync --source "$T/d.img" --to "$S" --chunk-size 1M --json >"$T/s3.json"
[ "$(json "$T/s3.json" .changed_chunks)" = 0 ] && [ "$(json "$T/s3.json" .sent_bytes)" = 0 ] &&
  [ "$(json "$T/s3.json" .generation)" = 2 ] || fail "unchanged sync: $(cat "$T/s3.json")"
ferry-convert --from "$S" --format raw --to "$T/latest.raw" -q >/dev/null
cmp "$T/d.img" "$T/latest.raw" || fail "the latest generation is not the current disk"
ferry-convert --from "$S" --format raw --to "$T/g1.raw" --generation 1 -q >/dev/null
cmp "$T/d.gen1" "$T/g1.raw" || fail "generation 1 is not the original disk"
expect_fail "has no generation 9" ferry-convert --from "$S" --format raw --to "$T/g9.raw" --generation 9
ok "syncs of a file send only the 3 changed chunks as generation 2; an unchanged disk keeps its generation; any generation converts"

# -- nbdkit: holes from NBD block status ---------------------------------------
make_disk "$T/sparse.img" 256M sparse
sock=$T/nbdkit.sock
nbdkit --exit-with-parent -U "$sock" file "$T/sparse.img" &
at_exit "kill $! 2>/dev/null"
wait_for 10 test -S "$sock" || fail "nbdkit did not start"
ferry-agent sync --source "nbd+unix:///?socket=$sock" --to "file://$T/nbd" --json >"$T/n1.json" ||
  fail "sync from nbdkit failed"
[ "$(json "$T/n1.json" .read_bytes)" -le $((5 * 4 << 20)) ] && [ "$(json "$T/n1.json" .hole_bytes)" -gt $((200 << 20)) ] ||
  fail "holes were read over NBD: $(cat "$T/n1.json")"
ferry-convert --from "file://$T/nbd" --format raw --to "$T/nbd.raw" -q >/dev/null
cmp "$T/sparse.img" "$T/nbd.raw" || fail "NBD round trip differs"
ok "an nbdkit export is read only where block status says there is data"

# -- qemu-nbd with a persistent dirty bitmap: changed-block tracking ------------
qemu-img create -q -f qcow2 "$T/vm.qcow2" 64M
qemu-io -c "write -P 0x11 0 20M" -c "write -P 0x22 40M 4M" "$T/vm.qcow2" >/dev/null
qemu-img bitmap --add "$T/vm.qcow2" cbt0
qsock=$T/qemu-nbd.sock
serve() {
  qemu-nbd -r -B cbt0 -f qcow2 -k "$qsock" -t "$T/vm.qcow2" >>"$T/qemu-nbd.log" 2>&1 &
  QPID=$!
  at_exit "kill $QPID 2>/dev/null"
  wait_for 10 test -S "$qsock" || fail "qemu-nbd did not start"
}
unserve() { kill "$QPID"; wait "$QPID" 2>/dev/null || true; rm -f "$qsock"; }
Q="nbd+unix:///?socket=$qsock"
serve
ferry-agent sync --source "$Q" --to "file://$T/cbt" --chunk-size 1M --json >"$T/c1.json" || fail "first CBT sync"
unserve
# the VM writes 100 KiB inside chunk 3 and 1 MiB at 50M (chunk 50)
qemu-io -c "write -P 0x33 3M 100k" -c "write -P 0x44 50M 1M" "$T/vm.qcow2" >/dev/null
serve
ferry-agent sync --source "$Q" --to "file://$T/cbt" --chunk-size 1M --bitmap cbt0 --json >"$T/c2.json" ||
  fail "CBT sync failed"
unserve
[ "$(json "$T/c2.json" .read_bytes)" = $((2 << 20)) ] || fail "CBT sync read more than the 2 dirty chunks: $(cat "$T/c2.json")"
[ "$(json "$T/c2.json" .changed_chunks)" = 2 ] && [ "$(json "$T/c2.json" .sent_chunks)" = 2 ] &&
  [ "$(json "$T/c2.json" .carried_chunks)" = 23 ] || fail "CBT sync stats: $(cat "$T/c2.json")"
ferry-convert --from "file://$T/cbt" --format raw --to "$T/cbt.raw" -q >/dev/null
qemu-img compare -q -f qcow2 -F raw "$T/vm.qcow2" "$T/cbt.raw" || fail "the CBT image differs from the final disk"
serve
expect_fail "does not export dirty bitmap 'nope'" ferry-agent sync --source "$Q" --to "file://$T/cbt" --chunk-size 1M --bitmap nope
unserve
ok "with a qemu-nbd dirty bitmap only the 2 dirty chunks are read; the final image equals the final disk"

# -- an NBD source failing mid-read ---------------------------------------------
make_disk "$T/f.img" 48M random
esock=$T/err.sock
nbdkit --exit-with-parent -U "$esock" --filter=error file "$T/f.img" error=EIO error-pread-rate=100% error-file="$T/inject" &
at_exit "kill $! 2>/dev/null"
wait_for 10 test -S "$esock" || fail "nbdkit did not start"
E="nbd+unix:///?socket=$esock"
rm -f "$T/inject"
ferry-agent sync --source "$E" --to "file://$T/faulty" --chunk-size 1M --max-rate 12M -q >/dev/null 2>"$T/e.err" &
pid=$!
wait_for 20 eval '[ "$(ls "$T/faulty/chunks" 2>/dev/null | wc -l)" -ge 8 ]' || fail "no progress before the fault"
touch "$T/inject"                      # every read fails from now on
rc=0; wait $pid || rc=$?
[ "$rc" = 1 ] || fail "a failing source did not fail the sync (exit $rc)"
grep -q "read nbd+unix:///" "$T/e.err" && grep -q "Input/output error" "$T/e.err" && grep -q "after 4 tries" "$T/e.err" ||
  fail "the failure is not named: $(cat "$T/e.err")"
had=$(ls "$T/faulty/chunks" | wc -l)
rm -f "$T/inject"
ferry-agent sync --source "$E" --to "file://$T/faulty" --chunk-size 1M --json >"$T/e2.json" || fail "the retried sync failed"
[ "$(json "$T/e2.json" .reused_chunks)" = "$had" ] && [ "$(json "$T/e2.json" .sent_chunks)" = $((48 - had)) ] ||
  fail "resume after the fault: $had were stored, $(cat "$T/e2.json")"
ferry-convert --from "file://$T/faulty" --format raw --to "$T/err.raw" -q >/dev/null
cmp "$T/f.img" "$T/err.raw" || fail "the image after the fault differs"
ok "a source failing mid-read is retried, then named in one error; the next sync resumes, sending only the missing $((48 - had)) chunks"
