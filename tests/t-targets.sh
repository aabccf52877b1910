#!/bin/bash
# What every cloud target driver stands on (server/targets/cloud.h): the
# blueprint's allow rules, endpoints and import are validated; a migration's
# plan names its boot disk first, its instance, networks and tags; a test
# launch (ferry migrate --test) is named HOST-test and tagged; ferry target
# cleanup refuses an active migration and the migrated server itself, and
# for a canceled one deletes only what the ledger lists for it.
. "$(dirname "$0")/lib.sh"
requires curl jq sqlite3

start_server "$T/ferry.db"
make_root "$T/root" web01 sda=$((64 << 20)) sdb=$((32 << 20))
conf=$(make_agent web01 "$T/root")
ferry-agent discover --root "$T/root" --config "$conf" --post >/dev/null || fail "discover"

bp() {  # FILE NAME PROVIDER EXTRA-TOP-LEVEL ALLOW-RULE
  cat > "$1" <<YAML
name: $2
provider: $3
region: eu-west-1
store: file://$T/store
$4
networks:
  - name: lan
    cidr: 10.10.0.0/16
    allow:
$5
    subnets:
      - name: web
        cidr: 10.10.1.0/24
hosts:
  - name: web01
    machine_type: m6i.large
    subnet: web
    ip: 10.10.1.10
YAML
}
good='      - {proto: tcp, ports: 22, from: 10.0.0.0/8}
      - {proto: tcp, ports: "8000-8099", from: 0.0.0.0/0}
      - {proto: icmp, from: 10.10.0.0/16}'
bp "$T/ok.yaml" wave1 aws "" "$good"
ferry blueprint validate "$T/ok.yaml" >/dev/null 2>"$T/err" || fail "a good blueprint fails: $(cat "$T/err")"
check_bad() {  # NEEDLE PROVIDER EXTRA RULE
  bp "$T/bad.yaml" bad "$2" "$3" "$4"
  ! ferry blueprint validate "$T/bad.yaml" >/dev/null 2>"$T/err" || fail "accepted: $4 $3"
  grep -qF -- "$1" "$T/err" || fail "validation of '$4 $3' lacks '$1': $(cat "$T/err")"
  [ "$(grep -c ': error: ' "$T/err")" = 1 ] || fail "not one finding: $(cat "$T/err")"
  grep -q "bad.yaml:[0-9]*: error:" "$T/err" || fail "no file:line in: $(cat "$T/err")"
}
check_bad "'gre': use tcp, udp or icmp" aws "" '      - {proto: gre, from: 10.0.0.0/8}'
check_bad "tcp needs 'ports'" aws "" '      - {proto: tcp, from: 10.0.0.0/8}'
check_bad "tcp needs 'ports'" aws "" '      - {proto: tcp, ports: "99-10", from: 10.0.0.0/8}'
check_bad "tcp needs 'ports'" aws "" '      - {proto: tcp, ports: 70000, from: 10.0.0.0/8}'
check_bad "icmp has no ports" aws "" '      - {proto: icmp, ports: 22, from: 10.0.0.0/8}'
check_bad "10.0.0.1/8 has host bits set" aws "" '      - {proto: udp, ports: 53, from: 10.0.0.1/8}'
check_bad "unknown field 'to'" aws "" '      - {proto: udp, ports: 53, from: 10.0.0.0/8, to: 10.1.0.0/16}'
check_bad "provider local has no endpoint 'ec2'" local "endpoints: {ec2: 'http://127.0.0.1:1'}" "$good"
check_bad "'import' for local must be one of: none" local "import: upload" "$good"
ok "allow rules, endpoints and import are validated, each finding at its line"

ferry blueprint apply "$T/ok.yaml" >/dev/null || fail "apply"
ferry migrate web01 --blueprint wave1 --test >"$T/m.out" || fail "migrate --test: $(cat "$T/m.out")"
grep -q "its instance is web01-test; remove it with ferry target cleanup 1" "$T/m.out" || fail "migrate --test says: $(cat "$T/m.out")"
api GET /v1/migrations/1 >"$T/m1.json"
p=$(jq -c .plan "$T/m1.json")
[ "$(jq -r .migration <<<"$p")" = 1 ] || fail "plan.migration: $p"
[ "$(jq -c .tags <<<"$p")" = '{"ferry-blueprint":"wave1","ferry-host":"web01","ferry-test":"true","ferry-migration":"1"}' ] ||
  fail "plan.tags: $(jq -c .tags <<<"$p")"
[ "$(jq -r '.instance_name, .test, .blueprint, .network.name, .network.allow[1].ports, (.networks | length), .boot_disk, .disks[0].name, .disks[1].name, .host.ip' <<<"$p" | tr '\n' ' ')" = \
  "web01-test true wave1 lan 8000-8099 1 sda sda sdb 10.10.1.10 " ] || fail "plan: $p"
ok "a test launch's plan names its instance web01-test, its boot disk first, its network and allow rules, and its tags with the migration's id"

expect_fail "migration 1 is active: cleanup removes only what a failed, canceled or test run made (cancel it first)" ferry target cleanup 1
ferry cancel 1 >/dev/null || fail "cancel"
ferry target cleanup 1 >"$T/c.out" 2>"$T/c.err" || fail "cleanup of nothing: $(cat "$T/c.err")"
grep -q "cleanup of 0 resource(s)" "$T/c.out" || fail "cleanup says: $(cat "$T/c.out")"
ok "cleanup refuses an active migration; of a canceled one with nothing made, it deletes nothing"

# a ledger with a shared network and a resource of the migration, on a
# provider without a cloud: the cleanup fails saying what to delete by hand,
# and keeps both rows live
now=$(date -u +%FT%TZ)
sqlite3 "$T/ferry.db" >/dev/null "PRAGMA busy_timeout=5000; UPDATE migrations SET plan = json_set(plan, '\$.provider', 'local') WHERE id = 1;
INSERT INTO target_resources (migration_id, provider, kind, name, cloud_id, scope, state, created, updated)
  VALUES (1, 'local', 'network', 'lan', 'net-1', 'blueprint', 'live', '$now', '$now'),
         (1, 'local', 'instance', 'web01-test', 'i-1', 'migration', 'live', '$now', '$now');"
expect_fail "provider 'local' has no cleanup in this ferry: delete the 1 resource(s) listed by ferry job show by hand" ferry target cleanup 1
[ "$(api GET /v1/migrations/1 | jq -c '[.resources[] | [.kind, .scope, .state]] | sort')" = '[["instance","migration","live"],["network","blueprint","live"]]' ] ||
  fail "resources: $(cat "$T/api.body")"
ferry job show 1 >"$T/show.out" || fail "job show"
grep -q "^resource: network lan net-1 (blueprint, live)$" "$T/show.out" &&
  grep -q "^resource: instance web01-test i-1 (migration, live)$" "$T/show.out" || fail "job show: $(cat "$T/show.out")"
ok "a cleanup that cannot delete fails with one message and keeps the ledger as it was; ferry job show lists it"

sqlite3 "$T/ferry.db" >/dev/null "PRAGMA busy_timeout=5000; UPDATE migrations SET state = 'done', plan = json_set(plan, '\$.test', json('false')) WHERE id = 1;"
expect_fail "migration 1 is done: cleanup removes only what a failed, canceled or test run made (this one is the migrated server)" ferry target cleanup 1
ok "the migrated server of a done migration is never cleaned up"
