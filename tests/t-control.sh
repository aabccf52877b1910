#!/bin/bash
# The control plane end to end: a server and two agents on 127.0.0.1
# (fixture roots, disk-image files as their disks) complete migrations to a
# file:// store through the API and the ferry CLI; SIGKILL of the server and
# of an agent mid-job, both restarted, and the jobs still complete; cancel
# and retry work.
. "$(dirname "$0")/lib.sh"
requires curl jq

mkdir -p "$T/state"
start_server "$T/state/ferry.db" --lease 4

make_disk "$T/web01.img" 64M sparse
make_disk "$T/db01.img" 40M random
make_root "$T/root-web01" web01 sda=$((64 << 20))
make_root "$T/root-db01" db01 sda=$((40 << 20))
web_conf=$(make_agent web01 "$T/root-web01" "sda=$T/web01.img")
db_conf=$(make_agent db01 "$T/root-db01" "sda=$T/db01.img")
start_agent web01 "$web_conf"
start_agent db01 "$db_conf"
wait_for 20 eval '[ "$(api GET /v1/hosts | jq ".hosts | length")" = 2 ]' ||
  fail "agents did not enroll and post discovery: $(cat "$T"/agent-*.log)"
ok "two agents enroll and post their discovery"

cat > "$T/wave1.yaml" <<YAML
# the first wave: two hosts onto local KVM
name: wave1
provider: local
store: file://$T/store
networks:
  - name: lan
    cidr: 10.10.0.0/16
    subnets:
      - name: web
        cidr: 10.10.1.0/24
hosts:
  - name: web01
    subnet: web
    ip: 10.10.1.10
    format: raw
  - name: db01
    subnet: web
YAML
ferry blueprint apply "$T/wave1.yaml" >"$T/apply.out" || fail "blueprint apply: $(cat "$T/apply.out")"
grep -q "blueprint wave1 applied" "$T/apply.out" || fail "apply output: $(cat "$T/apply.out")"
ferry migrate web01 --blueprint wave1 >"$T/m1.out" || fail "migrate web01"
ferry migrate db01 --blueprint wave1 >"$T/m2.out" || fail "migrate db01"
expect_fail "already has an active migration" ferry migrate web01 --blueprint wave1
timeout 120 ferry job watch 1 >"$T/watch1.out" || fail "job 1 did not finish: $(cat "$T/watch1.out"; ferry job show 1)"
timeout 120 ferry job watch 2 >"$T/watch2.out" || fail "job 2 did not finish: $(ferry job show 2)"
cmp "$T/web01.img" "$T/store/web01/sda.raw" || fail "web01's migrated disk differs"
cmp "$T/db01.img" "$T/store/db01/sda.raw" || fail "db01's migrated disk differs"
for p in discovered preflight prepared cloning cloned converting converted creating done; do
  grep -q " $p " "$T/watch1.out" || fail "job 1 never showed phase $p: $(cat "$T/watch1.out")"
done
ferry jobs | grep -E '^1 +web01 +wave1 +done +done' >/dev/null || fail "jobs: $(ferry jobs)"
api GET /v1/migrations/1 | jq -e '.events | length > 8 and all(.time | test("^20[0-9-]+T"))' >/dev/null ||
  fail "events lack timestamps"
ok "two hosts migrate through every phase via the CLI; each output equals its source disk"

# a slow clone (bandwidth cap) to kill things in the middle of
make_disk "$T/app01.img" 96M random
make_root "$T/root-app01" app01 sda=$((96 << 20))
app_conf=$(make_agent app01 "$T/root-app01" "sda=$T/app01.img")
start_agent app01 "$app_conf"
wait_for 20 eval 'api GET /v1/hosts | jq -e ".hosts | any(.hostname == \"app01\")" >/dev/null' ||
  fail "app01 did not appear"
cat > "$T/wave2.yaml" <<YAML
name: wave2
provider: local
store: file://$T/store
options:
  max_rate: 12M
  chunk_size: 1M
hosts:
  - name: app01
    format: raw
YAML
ferry blueprint apply "$T/wave2.yaml" >/dev/null || fail "apply wave2"
ferry migrate app01 --blueprint wave2 >/dev/null || fail "migrate app01"
progress() { api GET /v1/migrations/3 | jq -r .done_bytes; }
wait_for 30 eval '[ "$(progress)" -gt 8000000 ]' || fail "no progress on job 3: $(ferry job show 3)"

# SIGKILL the agent mid-clone; its task is offered again after the lease
kill -9 "$AGENT_PID_app01"
sleep 1
start_agent app01 "$app_conf"
# SIGKILL the server mid-job too, then start it again on the same database
wait_for 30 eval '[ "$(progress)" -gt 30000000 ]' || fail "no progress after the agent restart: $(ferry job show 3)"
kill -9 "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true
sleep 2
start_server "$T/state/ferry.db" --lease 4
timeout 180 ferry job watch 3 >"$T/watch3.out" || fail "job 3 did not finish after the kills: $(ferry job show 3)"
cmp "$T/app01.img" "$T/store/app01/sda.raw" || fail "app01's disk differs after the kills"
api GET /v1/migrations/3 | jq -e '.events | any(.message | test("offered again"))' >/dev/null ||
  fail "the killed agent's task was not re-offered: $(ferry job show 3)"
ok "SIGKILL of the agent and of the server mid-job: both restarted, the job completes, byte-identical"

# cancel and retry: 60 MiB changed, 5 s of clone at 12M/s to cancel in
dd if=/dev/urandom of="$T/app01.img" bs=1M count=60 conv=notrunc status=none
ferry migrate app01 --blueprint wave2 >/dev/null || fail "second migration of app01"
wait_for 30 eval 'api GET /v1/migrations/4 | jq -e ".phase == \"cloning\"" >/dev/null' || fail "job 4 not cloning"
# the agent reports progress: it is inside its clone
wait_for 30 eval 'api GET /v1/migrations/4 | jq -e ".tasks | any(.kind == \"clone\" and .done_bytes > 0)" >/dev/null' ||
  fail "job 4's clone reports no progress"
tid=$(api GET /v1/migrations/4 | jq '[.tasks[] | select(.kind == "clone")][0].id')
rchar() { awk '/^rchar:/ {print $2}' "/proc/$AGENT_PID_app01/io"; }
r0=$(rchar); sleep 1; r1=$(rchar)
[ $((r1 - r0)) -gt 4000000 ] || fail "the agent read only $((r1 - r0)) bytes in 1 s of its clone"
ferry cancel 4 | grep -q canceled || fail "cancel"
wait_for 10 eval 'api GET /v1/migrations/4 | jq -e ".tasks | all(.state != \"running\")" >/dev/null' ||
  fail "tasks still running after cancel"
# what only the agent can show: it saw the cancel, its clone ended on it,
# and it reads its disk no more
wait_for 10 grep -q "task $tid failed: .*canceled" "$T/agent-app01.log" ||
  fail "the agent's clone did not stop on the cancel: $(tail -n 5 "$T/agent-app01.log")"
grep -q "task $tid is canceled on the server: stopping it" "$T/agent-app01.log" ||
  fail "the agent did not see the cancel: $(tail -n 5 "$T/agent-app01.log")"
r0=$(rchar); sleep 2; r1=$(rchar)
[ $((r1 - r0)) -lt 1000000 ] || fail "the agent still read $((r1 - r0)) bytes in 2 s after its clone stopped"
rc=0; ferry job watch 4 >/dev/null 2>"$T/w4.err" || rc=$?
[ "$rc" = 1 ] && grep -q "canceled" "$T/w4.err" || fail "watch of a canceled job: rc=$rc $(cat "$T/w4.err")"
ferry cancel 4 | grep -q canceled || fail "a second cancel is not idempotent"
expect_fail "migration 1 is done, not active: nothing to cancel" ferry cancel 1
ferry retry 4 | grep -q "active, phase cloning" || fail "retry"
timeout 180 ferry job watch 4 >/dev/null || fail "retried job 4 did not finish: $(ferry job show 4)"
cmp "$T/app01.img" "$T/store/app01/sda.raw" || fail "app01's disk differs after cancel and retry"
expect_fail "only a failed or canceled migration can be retried" ferry retry 4
ok "a canceled migration stops its tasks and a retry resumes it to done"
