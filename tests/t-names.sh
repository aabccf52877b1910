#!/bin/bash
# Host and disk names from agents never become paths or store keys
# unchecked: a host named ../../x gets nothing written outside the store
# prefix (file:// and s3:// against Swift), and every endpoint that takes a
# name (enroll, discovery, blueprints, migrate) answers a traversal or
# injection attempt with one 400 naming the field and what is allowed,
# writing nothing to the database or the store.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/servers.sh"
requires curl jq sqlite3

mkdir -p "$T/state" "$T/a/b/store"
start_server "$T/state/ferry.db" --lease 4
printf 'Authorization: Bearer %s\n' "$(cat "$ENROLL_TOKEN_FILE")" >"$T/enroll.hdr"
H='Content-Type: application/json'

counts() {
  sqlite3 "$T/state/ferry.db" "SELECT (SELECT count(*) FROM agents) || ' ' ||
    (SELECT count(*) FROM hosts) || ' ' || (SELECT count(*) FROM inventories)
    || ' ' || (SELECT count(*) FROM blueprints) || ' ' ||
    (SELECT count(*) FROM migrations) || ' ' || (SELECT count(*) FROM tasks)"
}
# files anywhere under $T/a but inside the store prefix $T/a/b/store
outside_store() { find "$T/a" -path "$T/a/b/store" -prune -o -type f -print; }

# attack STORE HOST NAME: an agent whose system calls itself HOST, and an
# operator blueprint and migration for it; its disk must not land at
# STORE/HOST/sda, outside STORE.  Sets the statuses got on the way.
attack() {
  local store=$1 host=$2 name=$3 i
  make_disk "$T/$name.img" 4M random
  make_root "$T/root-$name" "$host" sda=$((4 << 20))
  start_agent "$name" "$(make_agent "$name" "$T/root-$name" "sda=$T/$name.img")"
  wait_for 5 eval '[ "$(api GET /v1/hosts | jq --arg h "$host" "[.hosts[] | select(.hostname == \$h)] | length")" = 1 ]' || true
  jq -n --arg n "$name" --arg s "$store" --arg h "$host" \
    '{name: $n, provider: "local", store: $s, hosts: [{name: $h}]}' >"$T/$name.json"
  api POST /v1/blueprints --data-binary "@$T/$name.json" >/dev/null
  BP_STATUS=$HTTP_STATUS
  jq -n --arg n "$name" --arg h "$host" '{host: $h, blueprint: $n}' >"$T/$name-m.json"
  api POST /v1/migrations --data-binary "@$T/$name-m.json" >"$T/$name-m.out"
  MIG_STATUS=$HTTP_STATUS
  if [ "$MIG_STATUS" = 201 ]; then   # give the clone its chance
    for ((i = 0; i < 300; i++)); do
      [ -z "$(eval "$4")" ] || break
      [ "$(api GET "/v1/migrations/$(jq -r .id "$T/$name-m.out")" | jq -r .state)" = active ] || break
      sleep 0.2
    done
  fi
}

attack "file://$T/a/b/store" "../../x" evil outside_store
[ -z "$(outside_store)" ] || fail "a file was written outside the store prefix $T/a/b/store: $(outside_store)"
grep -q "HTTP 400: field 'hostname' .*a host name (RFC 1123) is" "$T/agent-evil.log" ||
  fail "the agent was not told why its hostname is refused: $(tail -n 5 "$T/agent-evil.log")"
[ "$BP_STATUS" = 400 ] && [ "$MIG_STATUS" = 400 ] ||
  fail "blueprint $BP_STATUS, migration $MIG_STATUS for host ../../x (expected 400 and 400)"
[ "$(counts)" = "0 0 0 0 0 0" ] || fail "the database changed: $(counts)"
ok "a host named ../../x gets nothing written outside a file:// store's prefix, and nothing into the database"

# ---- every endpoint that takes a name, every kind of bad name
big=$(head -c 65536 /dev/zero | tr '\0' a)
BAD=('"../../x"' '"a/b"' '".."' '"."' '"/etc/shadow"' '"web\u0000x"' '"%2e%2e%2fx"'
     '"web\uff0fx"' '"\u2024\u2024x"' '""' "\"$big\"")
BAD_HOST_EXTRA=('"-web"' '"web."' '"a..b"')
BAD_DISK_EXTRA=('".hidden"' '"sd a"')

# a good agent to post discoveries with
curl -s -H "@$T/enroll.hdr" -H "$H" "$SERVER_URL/v1/agents/enroll" --data '{"hostname": "good01"}' >"$T/enrolled.json"
printf 'Authorization: Bearer %s\n' "$(jq -r .token "$T/enrolled.json")" >"$T/good.hdr"
jq -n '{schema: 2, hostname: "good01", machine_id: "m-good", disks: [{name: "sda", size: 4194304}]}' >"$T/inv.json"
curl -s -o /dev/null -H "@$T/good.hdr" -H "$H" "$SERVER_URL/v1/agent/discovery" --data-binary "@$T/inv.json"
jq -n --arg s "file://$T/a/b/store" '{name: "good", provider: "local", store: $s, hosts: [{name: "good01"}]}' >"$T/good.json"
api POST /v1/blueprints --data-binary "@$T/good.json" >/dev/null
[ "$HTTP_STATUS" = 201 ] || fail "a good blueprint was refused: $(cat "$T/api.body")"
before=$(counts)
[ "$before" = "1 1 1 1 0 0" ] || fail "setup: $before"

# refused HDR PATH FIELD NEEDLE BODY: a 400 naming FIELD, saying NEEDLE
refused() {
  local hdr=$1 path=$2 field=$3 needle=$4 got
  # jansson refuses a NUL in any JSON string before a handler sees it
  [[ $5 != *'\u0000'* ]] || { field=null needle='\u0000 is not allowed'; }
  printf '%s' "$5" >"$T/req.json"
  got=$(curl -s -o "$T/resp" -w '%{http_code}' -X POST -H "@$hdr" -H "$H" "$SERVER_URL$path" --data-binary "@$T/req.json")
  [ "$got" = 400 ] || fail "POST $path with ${5:0:80}: HTTP $got, expected 400: $(head -c 300 "$T/resp")"
  [ "$(jq -r .error.field "$T/resp")" = "$field" ] || fail "POST $path: field is not $field: $(head -c 300 "$T/resp")"
  grep -qF -- "$needle" "$T/resp" || fail "POST $path: the message lacks '$needle': $(head -c 300 "$T/resp")"
  [ "$(wc -c <"$T/resp")" -lt 700 ] || fail "POST $path: the error echoes the input ($(wc -c <"$T/resp") bytes)"
}
HOSTRULE="a host name (RFC 1123) is"
DISKRULE="a disk name is 1 to 64 of the characters"
for b in "${BAD[@]}" "${BAD_HOST_EXTRA[@]}"; do
  refused "$T/enroll.hdr" /v1/agents/enroll hostname "$HOSTRULE" "{\"hostname\": $b}"
  refused "$T/good.hdr" /v1/agent/discovery hostname "$HOSTRULE" \
    "{\"schema\": 2, \"hostname\": $b, \"disks\": [{\"name\": \"sda\"}]}"
  refused "$T/operator.hdr" /v1/blueprints 'hosts[0].name' "$HOSTRULE" \
    "{\"name\": \"bad\", \"provider\": \"local\", \"store\": \"file://$T/a/b/store\", \"hosts\": [{\"name\": $b}]}"
  refused "$T/operator.hdr" /v1/blueprints/validate 'hosts[0].name' "$HOSTRULE" \
    "{\"name\": \"bad\", \"provider\": \"local\", \"store\": \"file://$T/a/b/store\", \"hosts\": [{\"name\": $b}]}"
  refused "$T/operator.hdr" /v1/migrations host "$HOSTRULE" "{\"host\": $b, \"blueprint\": \"good\"}"
done
for b in "${BAD[@]}" "${BAD_DISK_EXTRA[@]}"; do
  refused "$T/good.hdr" /v1/agent/discovery disks "$DISKRULE" \
    "{\"schema\": 2, \"hostname\": \"good01\", \"machine_id\": \"m-good\", \"disks\": [{\"name\": \"sda\"}, {\"name\": $b}]}"
  refused "$T/operator.hdr" /v1/blueprints 'hosts[0].disks[0]' "$DISKRULE" \
    "{\"name\": \"bad\", \"provider\": \"local\", \"store\": \"file://$T/a/b/store\", \"hosts\": [{\"name\": \"good01\", \"disks\": [$b]}]}"
done
[ "$(counts)" = "$before" ] || fail "the database changed: $before -> $(counts)"
[ -z "$(find "$T/a" -type f)" ] || fail "something was written to the store: $(find "$T/a" -type f)"
kill -0 "$SERVER_PID" || fail "the server died"
ok "slashes, .., NUL, percent-encoding, look-alikes, 64 KiB and empty names get 400 on enroll, discovery, blueprints and migrate; nothing stored"

# ---- the same against an S3 store (Swift): nothing lands in the bucket
[ -x /usr/bin/aws ] || { echo "SKIP: /usr/bin/aws (Debian's awscli) is not installed (scripts/setup.sh test)"; exit 77; }
swift_start
aws() { /usr/bin/aws --endpoint-url "$S3_ENDPOINT" "$@"; }
in_bucket() { aws s3 ls --recursive s3://test/ || true; }
attack "s3://test/tenant" "../x" evils3 in_bucket
[ -z "$(in_bucket)" ] || fail "objects were written to the bucket: $(in_bucket)"
[ "$BP_STATUS" = 400 ] && [ "$MIG_STATUS" = 400 ] ||
  fail "blueprint $BP_STATUS, migration $MIG_STATUS for host ../x on s3:// (expected 400 and 400)"
[ "$(counts)" = "$before" ] || fail "the database changed: $before -> $(counts)"
ok "a host named ../x gets nothing written into an s3:// bucket (Swift), outside its prefix or in it"
