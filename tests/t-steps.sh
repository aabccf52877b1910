#!/bin/bash
# An orchestrator step happens whole or not at all: a database error in
# the middle of one (an SQLite trigger that refuses the second disk's
# clone task) leaves no task behind and the phase where it was, the step
# is logged and tried again, and once the fault is gone the migration
# completes with every disk.  A phase that waits for tasks and finds none
# fails the migration instead of calling it done, and a retry makes them.
. "$(dirname "$0")/lib.sh"
requires curl jq python3

mkdir -p "$T/state"
DB=$T/state/ferry.db
start_server "$DB"
sql() {  # the fault injector: one statement on the server's database (WAL)
  python3 -c 'import sqlite3, sys
c = sqlite3.connect(sys.argv[1], timeout=10)
c.execute(sys.argv[2])
c.commit()' "$DB" "$1"
}

make_disk "$T/a.img" 8M random
make_disk "$T/b.img" 6M random
make_root "$T/root" web01 sda=$((8 << 20)) sdb=$((6 << 20))
start_agent web01 "$(make_agent web01 "$T/root" "sda=$T/a.img" "sdb=$T/b.img")"
wait_for 20 eval 'api GET /v1/hosts | jq -e ".hosts | length == 1" >/dev/null' ||
  fail "the agent did not register: $(cat "$T"/agent-*.log)"
cat > "$T/bp.yaml" <<YAML
name: two
provider: local
store: file://$T/store
hosts:
  - name: web01
    format: raw
YAML
ferry blueprint apply "$T/bp.yaml" >/dev/null || fail "apply"

sql "CREATE TRIGGER fault BEFORE INSERT ON tasks WHEN NEW.kind = 'clone' AND
     (SELECT count(*) FROM tasks WHERE migration_id = NEW.migration_id AND
      kind = 'clone') >= 1
     BEGIN SELECT RAISE(ABORT, 'injected fault: no second clone task'); END"
ferry migrate web01 --blueprint two >/dev/null || fail "migrate"
job() { api GET /v1/migrations/1; }
# bounded: until the step failed twice, or went wrong
wait_for 15 eval '[ "$(grep -c "injected fault" "$T/server.log")" -ge 2 ] ||
  job | jq -e ".tasks != [] or .phase != \"prepared\"" >/dev/null' || true
job | jq -e '.tasks == []' >/dev/null ||
  fail "the failed step left tasks behind: $(job | jq -c '[.tasks[] | {id, kind, spec}]')"
job | jq -e '.phase == "prepared" and .state == "active"' >/dev/null ||
  fail "the failed step moved the migration on: $(ferry job show 1)"
grep -q "migration 1: the step in phase prepared was rolled back .*injected fault" "$T/server.log" ||
  fail "the failed step is not logged: $(tail -n 5 "$T/server.log")"
ok "a step that fails on its second disk's task rolls back whole: no task, phase unchanged, logged"

sql "DROP TRIGGER fault"
timeout 60 ferry job watch 1 >/dev/null || fail "the migration did not complete once the fault was gone: $(ferry job show 1)"
[ "$(job | jq '[.tasks[] | select(.kind == "clone")] | length')" = 2 ] || fail "clone tasks: $(job | jq -c .tasks)"
cmp "$T/a.img" "$T/store/web01/sda.raw" && cmp "$T/b.img" "$T/store/web01/sdb.raw" ||
  fail "a disk differs after the retried step"
ok "once the fault is gone the step runs again and the migration completes with every disk"

# convert tasks that vanish as they are made: the outputs of migration 1
# are still in the store, so a phase that took no tasks for done tasks
# would end in done without converting anything
sql "CREATE TRIGGER vanish AFTER INSERT ON tasks WHEN NEW.kind = 'convert'
     BEGIN DELETE FROM tasks WHERE id = NEW.id; END"
ferry migrate web01 --blueprint two >/dev/null || fail "second migration"
job2() { api GET /v1/migrations/2; }
wait_for 30 eval 'job2 | jq -e ".state != \"active\"" >/dev/null' || fail "migration 2 never ended: $(ferry job show 2)"
job2 | jq -e '.state == "failed" and .phase == "converting"' >/dev/null ||
  fail "a migration without convert tasks was not failed in converting: $(ferry job show 2)"
job2 | jq -e '.error | test("no convert tasks exist")' >/dev/null || fail "error: $(job2 | jq -r .error)"
ok "a phase that waits for tasks and finds none fails the migration (never done)"

sql "DROP TRIGGER vanish"
ferry retry 2 | grep -q "phase cloned" || fail "retry did not go back to the phase that makes the tasks: $(ferry job show 2)"
timeout 60 ferry job watch 2 >/dev/null || fail "the retried migration did not complete: $(ferry job show 2)"
[ "$(job2 | jq '[.tasks[] | select(.kind == "convert" and .state == "succeeded")] | length')" = 2 ] ||
  fail "convert tasks after the retry: $(job2 | jq -c .tasks)"
ok "a retry makes the missing tasks again and the migration completes"
