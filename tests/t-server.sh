#!/bin/bash
# ferry-server takes discovery on its versioned callback, stores it in
# SQLite, lists hosts and returns an inventory; bad input gets a 4xx with a
# JSON error and never crashes it.
. "$(dirname "$0")/lib.sh"
requires curl jq

start_server "$T/ferry.db"

# discovery of a fixture root, posted by the agent
ferry-agent discover --root "$TOP/tests/fixtures/roots/debian12" --server "$SERVER_URL" >"$T/post.json" ||
  fail "discover --server failed"
id=$(json "$T/post.json" .host_id)
[ "$id" -ge 1 ] || fail "no host id in $(cat "$T/post.json")"
curl -sf "$SERVER_URL/v1/hosts" >"$T/hosts.json"
[ "$(json "$T/hosts.json" '.hosts[0].hostname')" = web01 ] || fail "hosts: $(cat "$T/hosts.json")"
[ "$(json "$T/hosts.json" '.hosts[0].os')" = "Debian GNU/Linux 12 (bookworm)" ] || fail "host os: $(cat "$T/hosts.json")"
curl -sf "$SERVER_URL/v1/hosts/$id" >"$T/host.json"
[ "$(json "$T/host.json" .inventory.disks[0].size)" = $((41943040 * 512)) ] || fail "inventory: $(cat "$T/host.json")"
[ "$(json "$T/host.json" .inventory.disks[0].partitions[1].start)" = $((1050624 * 512)) ] || fail "partitions"
ok "an agent's discovery is stored and served back as host and inventory"

# the real machine's discovery too; a second post of the same host updates it
ferry-agent discover --server "$SERVER_URL" >/dev/null || fail "discover of this machine failed"
ferry-agent discover --root "$TOP/tests/fixtures/roots/debian12" --server "$SERVER_URL" >/dev/null
[ "$(curl -sf "$SERVER_URL/v1/hosts" | jq '.hosts | length')" = 2 ] || fail "expected 2 hosts"
ok "this machine is discovered; rediscovery updates the same host"

code() {  # METHOD PATH [curl args] -> status; body in $T/body
  local m=$1 p=$2; shift 2
  curl -s -o "$T/body" -w '%{http_code}' -X "$m" "$SERVER_URL$p" "$@"
}
expect_status() {  # WANT MESSAGE-SUBSTRING METHOD PATH [curl args]
  local want=$1 needle=$2 got; shift 2
  got=$(code "$@")
  [ "$got" = "$want" ] || fail "$*: HTTP $got, expected $want: $(cat "$T/body")"
  [ "$(jq -r .error.status "$T/body")" = "$want" ] || fail "$*: body is not a JSON error: $(cat "$T/body")"
  grep -qF -- "$needle" "$T/body" || fail "$*: error lacks '$needle': $(cat "$T/body")"
}
H='Content-Type: application/json'
expect_status 400 "malformed JSON" POST /v1/discovery -H "$H" --data '{"hostname": '
expect_status 400 "JSON object" POST /v1/discovery -H "$H" --data '[1,2]'
expect_status 400 "needs a JSON body" POST /v1/discovery -H "$H"
expect_status 400 '"field":"hostname"' POST /v1/discovery -H "$H" --data '{"schema": 1}'
expect_status 400 '"field":"hostname"' POST /v1/discovery -H "$H" --data '{"schema": 1, "hostname": 5}'
expect_status 400 '"field":"schema"' POST /v1/discovery -H "$H" --data '{"hostname": "x"}'
head -c 5M /dev/zero | tr '\0' ' ' > "$T/big"
expect_status 413 "larger than" POST /v1/discovery -H "$H" --data-binary "@$T/big"
expect_status 404 "no host with id 999" GET /v1/hosts/999
expect_status 400 '"field":"id"' GET /v1/hosts/abc
expect_status 404 "no such endpoint" GET /v2/hosts
expect_status 405 "not allowed" DELETE /v1/hosts
ok "malformed, wrongly typed and oversized bodies get 4xx JSON errors naming the field"

kill -0 "$SERVER_PID" || fail "the server died on bad input"
# a restart keeps what was acknowledged
kill -TERM "$SERVER_PID"; wait "$SERVER_PID" || fail "server exit status on SIGTERM"
start_server "$T/ferry.db"
[ "$(curl -sf "$SERVER_URL/v1/hosts" | jq '.hosts | length')" = 2 ] || fail "hosts lost across a restart"
ok "the server survives bad input and a restart keeps every host"
