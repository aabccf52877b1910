#!/bin/bash
# A warm migration through the server: a full sync, then incremental syncs
# on the blueprint's interval while the source keeps changing (the job sits
# in ready between them, showing the last delta), then the operator's
# cutover: a final sync, conversion, creation, and a disk equal to the
# source's last state.
# ferry-test-alone: syncs on a 2 s interval and checks their pace
. "$(dirname "$0")/lib.sh"
requires curl jq

mkdir -p "$T/state"
start_server "$T/state/ferry.db" --lease 5
make_disk "$T/app.img" 48M random
make_root "$T/root" app01 sda=$((48 << 20))
conf=$(make_agent app01 "$T/root" "sda=$T/app.img")
start_agent app01 "$conf"
wait_for 20 eval 'api GET /v1/hosts | jq -e ".hosts | any(.hostname == \"app01\")" >/dev/null' ||
  fail "the agent did not register"
cat > "$T/warm.yaml" <<YAML
name: warm1
provider: local
store: file://$T/store
options:
  chunk_size: 1M
  sync_interval: 2s
hosts:
  - name: app01
    format: raw
    warm: true
YAML
ferry blueprint apply "$T/warm.yaml" >/dev/null || fail "apply"
ferry migrate app01 --blueprint warm1 >/dev/null || fail "migrate"
job() { api GET /v1/migrations/1; }
wait_for 60 eval 'job | jq -e ".phase == \"ready\" or .phase == \"syncing\"" >/dev/null' ||
  fail "the warm job never got ready: $(ferry job show 1)"
[ "$(job | jq .warm)" = 1 ] || fail "not a warm job"
job | jq -e '.events | any(.message == "sync 1 done: 50331648 bytes changed" or (.message | startswith("sync 1 done: 50331648 bytes changed")))' >/dev/null ||
  fail "the first sync's delta is not the whole disk: $(ferry job show 1)"
ok "the first sync of a warm job sends the whole disk and the job becomes ready"

# the server changes two chunks' worth while the job is ready
printf 'a' | dd of="$T/app.img" bs=1 seek=$((5 << 20)) conv=notrunc status=none
printf 'b' | dd of="$T/app.img" bs=1 seek=$((40 << 20)) conv=notrunc status=none
wait_for 30 eval 'job | jq -e ".events | any(.message | test(\"^sync [0-9]+ done: 2097152 bytes changed\"))" >/dev/null' ||
  fail "no incremental sync sent the 2 changed chunks: $(ferry job show 1)"
wait_for 30 eval 'job | jq -e ".events | any(.message | test(\"^sync [0-9]+ done: 0 bytes changed\"))" >/dev/null' ||
  fail "no sync found the disk unchanged: $(ferry job show 1)"
ferry job show 1 | grep -qE "^warm: [0-9]+ sync\(s\), last at .*estimated final sync" || fail "job show: $(ferry job show 1)"
[ ! -e "$T/store/app01/sda.raw" ] || fail "an output exists before the cutover"
ok "incremental syncs repeat on the interval, each sending only what changed (2 MiB, then nothing)"

expect_fail "no migration 99" ferry cutover 99
printf 'c' | dd of="$T/app.img" bs=1 seek=$((20 << 20)) conv=notrunc status=none
ferry cutover 1 | grep -q "migration 1" || fail "cutover"
timeout 120 ferry job watch 1 >"$T/watch.out" || fail "the cutover did not finish: $(ferry job show 1)"
grep -q "cutover: the final sync" "$T/watch.out" || fail "no final sync: $(cat "$T/watch.out")"
grep -q "final sync done with the source quiesced" "$T/watch.out" || fail "final sync event"
cmp "$T/app.img" "$T/store/app01/sda.raw" || fail "the migrated disk is not the source's last state"
grep -q "is not a local block device: not freezing" "$T/agent-app01.log" ||
  fail "the agent did not say why it could not freeze a file source"
ok "cutover runs the final sync, converts and creates; the output equals the source's last state"

# cutover only applies to active warm jobs
make_root "$T/root2" cold01 sda=$((8 << 20))
make_disk "$T/cold.img" 8M random
conf2=$(make_agent cold01 "$T/root2" "sda=$T/cold.img")
start_agent cold01 "$conf2"
wait_for 20 eval 'api GET /v1/hosts | jq -e ".hosts | any(.hostname == \"cold01\")" >/dev/null' || fail "cold01"
sed 's/app01/cold01/; /warm: true/d; s/name: warm1/name: cold1/' "$T/warm.yaml" > "$T/cold.yaml"
ferry blueprint apply "$T/cold.yaml" >/dev/null && ferry migrate cold01 --blueprint cold1 >/dev/null || fail "cold migrate"
expect_fail "cutover applies to an active warm migration" ferry cutover 2
timeout 60 ferry job watch 2 >/dev/null || fail "cold job"
expect_fail "cutover applies to an active warm migration" ferry cutover 1
ok "cutover is refused for cold and finished migrations"
