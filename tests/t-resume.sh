#!/bin/bash
# A clone killed with SIGKILL at any moment and run again sends only what
# is missing and produces the same manifest as an uninterrupted clone.
. "$(dirname "$0")/lib.sh"
requires jq

make_disk "$T/d.img" 64M random
# an uninterrupted clone, for reference
ferry-agent clone --source "$T/d.img" --to "file://$T/ref" --chunk-size 1M -q >/dev/null
chunks() { (find "$T/store/chunks" -type f ! -name '.*' 2>/dev/null || true) | wc -l; }
has_chunks() { [ "$(chunks)" -ge "$1" ]; }

for kill_after in 3 30 60; do
  rm -rf "$T/store"
  # slowed down by the bandwidth cap so the kill lands mid-way
  ferry-agent clone --source "$T/d.img" --to "file://$T/store" --chunk-size 1M \
    --max-rate 24M -q >/dev/null 2>&1 &
  pid=$!
  wait_for 30 has_chunks "$kill_after" || fail "clone made no progress"
  kill -9 $pid; wait $pid 2>/dev/null || true
  [ ! -e "$T/store/manifest.json" ] || fail "manifest exists after a kill mid-way"
  had=$(chunks)
  ferry-agent clone --source "$T/d.img" --to "file://$T/store" --chunk-size 1M \
    --json >"$T/resume.json"
  sent=$(json "$T/resume.json" .sent_chunks); reused=$(json "$T/resume.json" .reused_chunks)
  [ "$reused" -eq "$had" ] || fail "kill after $kill_after: $had chunks were stored, $reused reused"
  [ $((sent + reused)) -eq 64 ] && [ "$sent" -eq $((64 - had)) ] ||
    fail "kill after $kill_after: sent $sent + reused $reused, expected $((64 - had)) + $had"
  cmp "$T/store/manifest.json" "$T/ref/manifest.json" ||
    fail "kill after $kill_after: the resumed manifest differs from an uninterrupted clone's"
  ferry-convert --from "file://$T/store" --format raw --to "$T/out.raw" --overwrite -q >/dev/null
  cmp "$T/d.img" "$T/out.raw" || fail "kill after $kill_after: resumed image does not rebuild the disk"
  ok "killed after $kill_after of 64 chunks ($had stored): resume sent only $sent, same manifest"
done

# SIGTERM is a clean stop with a message telling how to resume
rm -rf "$T/store"
ferry-agent clone --source "$T/d.img" --to "file://$T/store" --chunk-size 1M --max-rate 16M \
  -q >/dev/null 2>"$T/term.err" &
pid=$!
wait_for 30 has_chunks 2 || fail "clone made no progress"
kill -TERM $pid; rc=0; wait $pid || rc=$?
[ "$rc" -eq 1 ] || fail "SIGTERM: exit $rc, expected 1"
grep -q "interrupted: run the same command again to resume" "$T/term.err" || fail "SIGTERM message: $(cat "$T/term.err")"
ok "SIGTERM stops the clone with exit 1 and says how to resume"
