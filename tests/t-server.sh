#!/bin/bash
# ferry-server takes discovery from enrolled agents, stores it in SQLite,
# serves hosts to the operator, refuses missing, bad and wrongly scoped
# tokens, and answers bad input with a 4xx JSON error, never a crash.
. "$(dirname "$0")/lib.sh"
requires curl jq

start_server "$T/ferry.db"
[ "$(stat -c %a "$OPERATOR_TOKEN_FILE")" = 600 ] && [ "$(stat -c %a "$ENROLL_TOKEN_FILE")" = 600 ] ||
  fail "token files are not mode 0600"
ok "the server creates its enrollment and operator tokens with mode 0600"

# discovery of a fixture root, posted by an agent that enrolls first
conf=$(make_agent web "$TOP/tests/fixtures/roots/debian12")
ferry-agent discover --root "$TOP/tests/fixtures/roots/debian12" --config "$conf" --post >"$T/post.json" ||
  fail "discover --post failed"
id=$(json "$T/post.json" .host_id)
[ "$id" -ge 1 ] || fail "no host id in $(cat "$T/post.json")"
[ "$(stat -c %a "$T/agent-web/agent.token")" = 600 ] || fail "agent token file is not mode 0600"
agent_token=$(cat "$T/agent-web/agent.token")
! grep -aqF "$agent_token" "$T"/ferry.db* || fail "the agent token is stored in clear in the database"
ok "an agent enrolls, keeps its token in a 0600 file, and only its hash is stored"

api GET /v1/hosts >"$T/hosts.json"
[ "$(json "$T/hosts.json" '.hosts[0].hostname')" = web01 ] || fail "hosts: $(cat "$T/hosts.json")"
[ "$(json "$T/hosts.json" '.hosts[0].os')" = "Debian GNU/Linux 12 (bookworm)" ] || fail "host os: $(cat "$T/hosts.json")"
api GET "/v1/hosts/$id" >"$T/host.json"
[ "$(json "$T/host.json" .inventory.disks[0].size)" = $((41943040 * 512)) ] || fail "inventory: $(cat "$T/host.json")"
[ "$(json "$T/host.json" .inventory.disks[0].partitions[1].start)" = $((1050624 * 512)) ] || fail "partitions"
ok "discovery is stored and served back to the operator as host and inventory"

# the real machine's discovery too; a second post of the same host updates it
conf2=$(make_agent here /)
ferry-agent discover --config "$conf2" --server "$SERVER_URL" >/dev/null || fail "discover of this machine failed"
ferry-agent discover --root "$TOP/tests/fixtures/roots/debian12" --config "$conf" --post >/dev/null
[ "$(api GET /v1/hosts | jq '.hosts | length')" = 2 ] || fail "expected 2 hosts"
ok "this machine is discovered; rediscovery updates the same host"

# tokens and scopes
printf 'Authorization: Bearer %s\n' "$agent_token" > "$T/agent.hdr"
printf 'Authorization: Bearer %s\n' "$(cat "$ENROLL_TOKEN_FILE")" > "$T/enroll.hdr"
printf 'Authorization: Bearer %s\n' "not-a-token-anyone-issued" > "$T/bad.hdr"
status() {  # WANT NEEDLE METHOD PATH [curl args]
  local want=$1 needle=$2 m=$3 p=$4 got; shift 4
  got=$(curl -s -o "$T/body" -w '%{http_code}' -X "$m" "$SERVER_URL$p" "$@")
  [ "$got" = "$want" ] || fail "$m $p: HTTP $got, expected $want: $(cat "$T/body")"
  [ "$(jq -r .error.status "$T/body")" = "$want" ] || fail "$m $p: not a JSON error: $(cat "$T/body")"
  grep -qF -- "$needle" "$T/body" || fail "$m $p: error lacks '$needle': $(cat "$T/body")"
}
status 401 "needs an operator token" GET /v1/hosts
status 401 "not valid" GET /v1/hosts -H "@$T/bad.hdr"
status 403 "needs an operator token, not an agent token" GET /v1/hosts -H "@$T/agent.hdr"
status 403 "needs an operator token, not an enrollment token" GET /v1/hosts -H "@$T/enroll.hdr"
status 403 "needs an agent token, not an operator token" GET /v1/agent/tasks -H "@$T/operator.hdr"
status 401 "needs an enrollment token" POST /v1/agents/enroll --data '{"hostname": "x"}'
status 403 "needs an enrollment token, not an agent token" POST /v1/agents/enroll -H "@$T/agent.hdr" --data '{"hostname": "x"}'
ok "missing or unknown tokens get 401, tokens of the wrong scope 403"

H='Content-Type: application/json'
A=(-H "@$T/agent.hdr" -H "$H")
status 400 "malformed JSON" POST /v1/agent/discovery "${A[@]}" --data '{"hostname": '
status 400 "JSON object" POST /v1/agent/discovery "${A[@]}" --data '[1,2]'
status 400 "needs a JSON body" POST /v1/agent/discovery "${A[@]}"
status 400 '"field":"hostname"' POST /v1/agent/discovery "${A[@]}" --data '{"schema": 1}'
status 400 '"field":"hostname"' POST /v1/agent/discovery "${A[@]}" --data '{"schema": 1, "hostname": 5}'
status 400 '"field":"schema"' POST /v1/agent/discovery "${A[@]}" --data '{"hostname": "x"}'
status 400 '"field":"machine_id"' POST /v1/agent/discovery "${A[@]}" --data '{"schema": 1, "hostname": "x", "machine_id": []}'
head -c 5M /dev/zero | tr '\0' ' ' > "$T/big"
status 413 "larger than" POST /v1/agent/discovery "${A[@]}" --data-binary "@$T/big"
status 400 '"field":"status"' POST /v1/agent/tasks/1/result "${A[@]}" --data '{"status": "maybe"}'
status 404 '"field":"id"' POST /v1/agent/tasks/999/progress "${A[@]}" --data '{"done_bytes": 1}'
status 400 '"field":"done_bytes"' POST /v1/agent/tasks/1/progress "${A[@]}" --data '{"done_bytes": -1}'
status 404 "no host with id 999" GET /v1/hosts/999 -H "@$T/operator.hdr"
status 400 '"field":"id"' GET /v1/hosts/abc -H "@$T/operator.hdr"
status 404 "no such endpoint" GET /v2/hosts
status 405 "not allowed" DELETE /v1/hosts
status 400 '"field":"host"' POST /v1/migrations -H "@$T/operator.hdr" --data '{"host": [], "blueprint": 1}'
status 404 '"field":"blueprint"' POST /v1/migrations -H "@$T/operator.hdr" --data '{"host": "web01", "blueprint": "nope"}'
status 404 "no migration 7" GET /v1/migrations/7 -H "@$T/operator.hdr"
ok "malformed, wrongly typed, unknown-id and oversized requests get 4xx JSON errors naming the field"

kill -0 "$SERVER_PID" || fail "the server died on bad input"
kill -TERM "$SERVER_PID"; wait "$SERVER_PID" || fail "server exit status on SIGTERM"
start_server "$T/ferry.db"
[ "$(api GET /v1/hosts | jq '.hosts | length')" = 2 ] || fail "hosts lost across a restart"
ferry-agent discover --root "$TOP/tests/fixtures/roots/debian12" --config "$conf" --post >/dev/null ||
  fail "the agent's token no longer works after a restart"
ok "a restart keeps every host and every agent token"

# a loose token file is refused, like ssh refuses a loose private key
chmod 644 "$T/agent-web/agent.token"
expect_fail "chmod 600" ferry-agent discover --root "$TOP/tests/fixtures/roots/debian12" --config "$conf" --post
ok "an agent token file others may read is refused with the fix"
