#!/bin/bash
# An agent is confined to its own host: with its token, another host's
# tasks, progress and results are not found, another host's discovery is
# refused, and nothing of the other host changes; the server hands out no
# clone task for a disk the host did not report, and the agent reads no
# disk it neither discovered nor has configured.
. "$(dirname "$0")/lib.sh"
requires curl jq

start_server "$T/ferry.db"
H='Content-Type: application/json'
for h in hosta hostb; do
  make_root "$T/root-$h" "$h" sda=$((4 << 20))
  make_agent "$h" "$T/root-$h" >/dev/null
  ferry-agent discover --root "$T/root-$h" --config "$T/agent-$h/agent.conf" --post >"$T/$h.post" ||
    fail "discover --post $h"
  printf 'Authorization: Bearer %s\n' "$(cat "$T/agent-$h/agent.token")" >"$T/$h.hdr"
done
hb=$(jq -r .host_id "$T/hostb.post")
ferry-agent discover --root "$T/root-hostb" >"$T/inv-b.json"

cat >"$T/bp.json" <<EOF
{"name": "wave", "provider": "local", "store": "file://$T/store",
 "hosts": [{"name": "hosta"}, {"name": "hostb"}]}
EOF
api POST /v1/blueprints --data-binary "@$T/bp.json" >/dev/null
[ "$HTTP_STATUS" = 201 ] || fail "blueprint: $(cat "$T/api.body")"
api POST /v1/migrations --data '{"host": "hostb", "blueprint": "wave"}' >/dev/null
[ "$HTTP_STATUS" = 201 ] || fail "migrate hostb: $(cat "$T/api.body")"
curl -s -o "$T/taskb.json" -w '%{http_code}' -H "@$T/hostb.hdr" "$SERVER_URL/v1/agent/tasks?wait=20" >"$T/st"
[ "$(cat "$T/st")" = 200 ] || fail "hostb got no task: $(cat "$T/st") $(cat "$T/taskb.json")"
tb=$(jq -r .task.id "$T/taskb.json")

# what the operator sees of host B, without the times only B's own calls move
view_b() {
  { api GET "/v1/hosts/$hb" | jq -S 'del(.last_seen)'
    api GET /v1/migrations/1 | jq -S 'del(.updated)'
    api GET /v1/hosts | jq -S '[.hosts[] | del(.last_seen)]'; }
}
view_b >"$T/before.json"

as_a() {  # WANT METHOD PATH [BODY]: agent A's token on host B's ids
  local want=$1 m=$2 p=$3 got
  got=$(curl -s -o "$T/resp" -w '%{http_code}' -X "$m" -H "@$T/hosta.hdr" -H "$H" "$SERVER_URL$p" ${4:+--data-binary "$4"})
  [[ " $want " == *" $got "* ]] || fail "agent A: $m $p: HTTP $got, expected $want: $(head -c 300 "$T/resp")"
}
as_a 404 POST "/v1/agent/tasks/$tb/progress" '{"done_bytes": 1, "total_bytes": 2}'
as_a 404 POST "/v1/agent/tasks/$tb/result" '{"status": "succeeded", "result": {"image_digest": "x"}}'
as_a 404 POST "/v1/agent/tasks/$tb/result" '{"status": "failed", "error": "from A"}'
as_a 204 GET "/v1/agent/tasks?wait=1"
as_a 403 POST /v1/agent/discovery "@$T/inv-b.json"
grep -qF "enrolled as another host" "$T/resp" || fail "the refusal does not say why: $(cat "$T/resp")"
jq '.machine_id = "another-machine" | .hostname = "hosta"' "$T/inv-b.json" >"$T/inv-a2.json"
as_a 403 POST /v1/agent/discovery "@$T/inv-a2.json"
as_a 204 GET "/v1/agent/tasks?wait=1"
as_a 403 GET "/v1/hosts/$hb"
as_a 403 GET /v1/migrations/1
as_a 403 GET /v1/events
view_b >"$T/after.json"
diff "$T/before.json" "$T/after.json" >"$T/diff" || fail "host B's state changed: $(cat "$T/diff")"
ok "agent A's token on host B's tasks gets 404, on B's discovery 403, on operator views 403; B's state is unchanged"

# ---- a clone task for a disk the host did not report is not handed out
api POST /v1/migrations --data '{"host": "hosta", "blueprint": "wave"}' >"$T/ma.json"
[ "$HTTP_STATUS" = 201 ] || fail "migrate hosta: $(cat "$T/api.body")"
ma=$(jq -r .id "$T/ma.json")
wait_for 20 eval '[ "$(api GET /v1/migrations/'"$ma"' | jq ".tasks | length")" -ge 1 ]' ||
  fail "no clone task for hosta: $(api GET "/v1/migrations/$ma")"
# the host now reports another disk than the one the plan names
ferry-agent discover --root "$T/root-hosta" | jq '.disks[0].name = "sdb"' >"$T/inv-a3.json"
as_a 201 POST /v1/agent/discovery "@$T/inv-a3.json"
as_a 204 GET "/v1/agent/tasks?wait=2"
api GET "/v1/migrations/$ma" >"$T/ma-show.json"
jq -e '.tasks[0].error | test("does not report this disk")' "$T/ma-show.json" >/dev/null ||
  fail "the task for sda was not refused: $(jq -c .tasks "$T/ma-show.json")"
ok "the server hands out no clone task for a disk the host's latest discovery does not report"

# ---- the agent reads only a disk it discovered or has configured: its
# daemon discovered sda; the server is told (by the same agent's token)
# about sdz, and hands out a task for it
make_root "$T/root-hostc" hostc sda=$((4 << 20))
make_disk "$T/c.img" 4M random
start_agent hostc "$(make_agent hostc "$T/root-hostc" "sda=$T/c.img")"
wait_for 20 test -s "$T/agent-hostc/agent.token" || fail "hostc did not enroll: $(cat "$T/agent-hostc.log")"
wait_for 20 eval 'api GET /v1/hosts | jq -e ".hosts[] | select(.hostname == \"hostc\")"' ||
  fail "hostc did not post its discovery: $(cat "$T/agent-hostc.log")"
printf 'Authorization: Bearer %s\n' "$(cat "$T/agent-hostc/agent.token")" >"$T/hostc.hdr"
ferry-agent discover --root "$T/root-hostc" | jq '.disks[0].name = "sdz"' >"$T/inv-c.json"
curl -s -o /dev/null -H "@$T/hostc.hdr" -H "$H" "$SERVER_URL/v1/agent/discovery" --data-binary "@$T/inv-c.json"
cat >"$T/bpc.json" <<EOF
{"name": "wavec", "provider": "local", "store": "file://$T/store", "hosts": [{"name": "hostc"}]}
EOF
api POST /v1/blueprints --data-binary "@$T/bpc.json" >/dev/null
api POST /v1/migrations --data '{"host": "hostc", "blueprint": "wavec"}' >"$T/mc.json"
[ "$HTTP_STATUS" = 201 ] || fail "migrate hostc: $(cat "$T/api.body")"
mc=$(jq -r .id "$T/mc.json")
wait_for 60 eval 'api GET /v1/migrations/'"$mc"' | jq -e ".tasks[0].error != null"' ||
  fail "the agent ran no task: $(api GET "/v1/migrations/$mc" | jq -c .tasks)"
api GET "/v1/migrations/$mc" | jq -r '.tasks[0].error' >"$T/mc-error"
grep -qF "the task's disk 'sdz' is not one this agent discovered or has in its configuration" "$T/mc-error" ||
  fail "the agent did not refuse disk sdz: $(cat "$T/mc-error")"
[ ! -e "$T/store/hostc/sdz/manifest.json" ] || fail "an image of sdz was written"
ok "the agent refuses a task for a disk it neither discovered nor has configured"

# ---- two machines of one hostname (a reinstalled server, a clone) map
# to the same <store>/<host>/<disk>: only one migration may write it
for i in 1 2; do
  make_root "$T/root-twin$i" twin sda=$((4 << 20))
  echo "machine-$i" >"$T/root-twin$i/etc/machine-id"
  make_agent "twin$i" "$T/root-twin$i" >/dev/null
  ferry-agent discover --root "$T/root-twin$i" --config "$T/agent-twin$i/agent.conf" --post >"$T/twin$i.post" ||
    fail "discover --post twin$i"
done
t1=$(jq -r .host_id "$T/twin1.post"); t2=$(jq -r .host_id "$T/twin2.post")
[ "$t1" != "$t2" ] || fail "the two machines named twin became one host ($t1)"
cat >"$T/bpt.json" <<EOF
{"name": "twins", "provider": "local", "store": "file://$T/store", "hosts": [{"name": "twin"}]}
EOF
api POST /v1/blueprints --data-binary "@$T/bpt.json" >/dev/null
api POST /v1/migrations --data "{\"host\": $t1, \"blueprint\": \"twins\"}" >"$T/mt1.json"
[ "$HTTP_STATUS" = 201 ] || fail "migrate twin 1: $(cat "$T/api.body")"
n0=$(api GET /v1/migrations | jq '.migrations | length')
api POST /v1/migrations --data "{\"host\": $t2, \"blueprint\": \"twins\"}" >/dev/null
[ "$HTTP_STATUS" = 409 ] || fail "a second writer of twin's images was accepted: HTTP $HTTP_STATUS $(cat "$T/api.body")"
grep -qF "active migration $(jq -r .id "$T/mt1.json") writes the same images" "$T/api.body" ||
  fail "the refusal does not name the migration holding the images: $(cat "$T/api.body")"
[ "$(api GET /v1/migrations | jq '.migrations | length')" = "$n0" ] || fail "a migration was stored anyway"
api POST "/v1/migrations/$(jq -r .id "$T/mt1.json")/cancel" >/dev/null
api POST /v1/migrations --data "{\"host\": $t2, \"blueprint\": \"twins\"}" >/dev/null
[ "$HTTP_STATUS" = 201 ] || fail "twin 2 could not migrate once twin 1's migration was canceled: $(cat "$T/api.body")"
api POST "/v1/migrations/$(jq -r .id "$T/mt1.json")/retry" >/dev/null
[ "$HTTP_STATUS" = 409 ] || fail "twin 1's retry beside twin 2's active migration was accepted: HTTP $HTTP_STATUS $(cat "$T/api.body")"
ok "two machines named twin never have active migrations writing the same images at once"
