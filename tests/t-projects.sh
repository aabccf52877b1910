#!/bin/bash
# Projects, roles and tokens (docs/SECURITY.md section 3): a database from
# before projects moves into 'default'; two projects each with a viewer,
# an operator and an admin token see only their own hosts, blueprints,
# migrations and events (another project's ids are 404); a viewer reads
# and is refused (403, nothing changed) migrate, cancel, retry, cutover;
# an operator migrates but makes no tokens; revoked, expired and used-up
# tokens are 401 saying why; a revoked agent stops at its next call; an
# agent asked to rotate trades its token (old one 401) and goes on working;
# the CLI takes --project.
. "$(dirname "$0")/lib.sh"
requires curl jq sqlite3

H='Content-Type: application/json'
hdr() { printf 'Authorization: Bearer %s\n' "$(cat "$1")" >"$1.hdr"; chmod 600 "$1.hdr"; }
# as TOKENFILE WANT METHOD PATH [curl args]: one call with that token
as() {
  local tf=$1 want=$2 m=$3 p=$4 got; shift 4
  [ -e "$tf.hdr" ] || hdr "$tf"
  got=$(curl -s -o "$T/body" -w '%{http_code}' -X "$m" -H "@$tf.hdr" -H "$H" "$SERVER_URL$p" "$@")
  [ "$got" = "$want" ] || fail "$m $p with $(basename "$tf"): HTTP $got, expected $want: $(head -c 400 "$T/body")"
}
says() { grep -qF -- "$1" "$T/body" || fail "the answer lacks '$1': $(head -c 400 "$T/body")"; }

# ---- a schema-3 database (made by ferry-server before projects) upgrades
mkdir -p "$T/up"
sqlite3 "$T/up/ferry.db" <"$TOP/tests/fixtures/db/schema3.sql"
start_server "$T/up/ferry.db"
[ "$(sqlite3 "$T/up/ferry.db" 'PRAGMA user_version')" = 5 ] || fail "the schema is not version 5 (the current one)"
api GET /v1/migrations/1 >/dev/null
[ "$HTTP_STATUS" = 200 ] && [ "$(json "$T/api.body" .hostname)/$(json "$T/api.body" .blueprint)" = web01/wave1 ] ||
  fail "the old migration is not in 'default': $(cat "$T/api.body")"
[ "$(api GET /v1/hosts | jq -r '[.hosts[].hostname] | join(",")')" = web01 ] || fail "old host lost"
[ "$(sqlite3 "$T/up/ferry.db" 'SELECT count(*) FROM blueprints WHERE project_id = 1; PRAGMA foreign_key_check')" = 1 ] ||
  fail "blueprints not moved, or a foreign key broken"
kill "$SERVER_PID"; wait "$SERVER_PID" || true
ok "a database from before projects upgrades: its host, blueprint and migration are in 'default'"

# ---- a fresh server, two projects, three roles each
start_server "$T/ferry.db"
ADMIN=$OPERATOR_TOKEN_FILE
ferry project create alpha >/dev/null || fail "project create alpha"
ferry project create beta >/dev/null || fail "project create beta"
expect_fail "a project of that name exists" ferry project create beta
[ "$(ferry project list | awk 'NR > 1 {print $2}' | tr '\n' ,)" = default,alpha,beta, ] ||
  fail "project list: $(ferry project list)"
for p in alpha beta; do
  for role in viewer operator admin; do
    ferry --project "$p" token create --role "$role" --name "$p-$role" --out "$T/$p-$role.token" 2>"$T/err" ||
      fail "token create $p $role: $(cat "$T/err")"
    [ "$(stat -c %a "$T/$p-$role.token")" = 600 ] || fail "the token file is not mode 0600"
  done
  FERRY_PROJECT=$p ferry token create --enroll --out "$T/$p-enroll.token" 2>/dev/null || fail "enroll token $p"
done
grep -qF "operator token 7, role admin in project beta: written to $T/beta-admin.token" "$T/err" ||
  fail "token create does not say what it made: $(cat "$T/err")"
for f in "$T"/*-*.token; do
  ! grep -aqF "$(cat "$f")" "$T"/ferry.db* "$T/server.log" || fail "a token is stored or logged in clear"
done
ok "the server admin makes projects and, per project, viewer, operator, admin and enrollment tokens (files of mode 0600, only digests stored)"

# one host in each project, enrolled with that project's enrollment token
for p in alpha beta; do
  h=host${p:0:1}
  make_root "$T/root-$h" "$h" sda=$((4 << 20))
  make_agent "$h" "$T/root-$h" >/dev/null
  install -m 600 "$T/$p-enroll.token" "$T/agent-$h/enroll.token"
  ferry-agent discover --root "$T/root-$h" --config "$T/agent-$h/agent.conf" --post >"$T/$h.post" ||
    fail "discover --post $h"
  cat >"$T/bp-$p.json" <<EOF
{"name": "wave", "provider": "local", "store": "file://$T/store-$p", "hosts": [{"name": "$h"}]}
EOF
  FERRY_TOKEN_FILE=$T/$p-admin.token ferry blueprint apply "$T/bp-$p.json" >/dev/null ||
    fail "the admin of $p cannot apply a blueprint"
done
ha=$(json "$T/hosta.post" .host_id) hb=$(json "$T/hostb.post" .host_id)
[ "$(ferry --project alpha hosts | awk 'NR > 1 {print $2}')" = hosta ] || fail "alpha's hosts: $(ferry --project alpha hosts)"
[ "$(ferry --project beta hosts | awk 'NR > 1 {print $2}')" = hostb ] || fail "beta's hosts"
[ "$(ferry hosts | awk 'NR > 1' | wc -l)" = 0 ] || fail "'default' shows another project's hosts: $(ferry hosts)"
ok "a host joins the project of its enrollment token; both projects hold a blueprint named 'wave'; ferry --project picks one"

FERRY_TOKEN_FILE=$T/beta-operator.token ferry migrate hostb --blueprint wave >/dev/null || fail "beta's operator cannot migrate"
mb=$(FERRY_TOKEN_FILE=$T/beta-viewer.token ferry --json jobs | jq -r '.migrations[0].id')
as "$T/beta-viewer.token" 200 GET /v1/blueprints; bpb=$(jq -r '.blueprints[0].id' "$T/body")
beta_view() {
  as "$T/beta-admin.token" 200 GET "/v1/migrations/$mb"; jq -S 'del(.updated, .tasks, .events)' "$T/body"
  as "$T/beta-admin.token" 200 GET "/v1/hosts/$hb"; jq -S 'del(.last_seen)' "$T/body"
}
beta_view >"$T/beta-before.json"

# ---- one project never sees another's
A=$T/alpha-operator.token
as "$A" 200 GET /v1/hosts; [ "$(jq -r '[.hosts[].hostname] | join(",")' "$T/body")" = hosta ] || fail "alpha lists $(cat "$T/body")"
as "$A" 404 GET "/v1/hosts/$hb"; says "no host with id $hb"
as "$A" 404 GET "/v1/migrations/$mb"
as "$A" 404 GET "/v1/blueprints/$bpb"
as "$A" 200 GET /v1/migrations; [ "$(jq '.migrations | length' "$T/body")" = 0 ] || fail "alpha sees beta's migration"
as "$A" 200 GET /v1/events; ! grep -q hostb "$T/body" || fail "alpha sees beta's events: $(cat "$T/body")"
as "$A" 200 GET "/v1/events?migration=$mb"; [ "$(jq '.events | length' "$T/body")" = 0 ] || fail "alpha reads beta's job events"
as "$A" 200 GET /v1/agents; [ "$(jq -r '[.agents[].hostname] | join(",")' "$T/body")" = hosta ] || fail "agents: $(cat "$T/body")"
as "$A" 404 POST /v1/migrations --data '{"host": "hostb", "blueprint": "wave"}'; says '"field":"host"'
as "$A" 404 POST /v1/migrations --data "{\"host\": $hb, \"blueprint\": \"wave\"}"
as "$A" 404 POST "/v1/migrations/$mb/cancel"
as "$A" 404 POST "/v1/migrations/$mb/cutover"
as "$A" 404 POST "/v1/migrations/$mb/retry"
as "$A" 403 GET /v1/hosts -H "X-Ferry-Project: beta"; says "belongs to another project"
as "$A" 403 GET /v1/hosts -H "X-Ferry-Project: nosuch"; says "belongs to another project"
as "$T/alpha-admin.token" 404 POST /v1/agents/hostb/revoke
as "$T/alpha-admin.token" 200 POST /v1/blueprints/validate --data-binary "@$T/bp-beta.json"
jq -e '.valid == false and (.findings[0].message | test("never discovered"))' "$T/body" >/dev/null ||
  fail "alpha's validation sees beta's host: $(cat "$T/body")"
expect_fail "HTTP 403" env FERRY_TOKEN_FILE="$A" ferry --project beta hosts
beta_view >"$T/beta-after.json"
diff "$T/beta-before.json" "$T/beta-after.json" >"$T/diff" || fail "beta changed: $(cat "$T/diff")"
ok "alpha's operator sees none of beta's hosts, blueprints, migrations, events or agents: ids are 404, the header 403, and beta is unchanged"

# an agent of beta cannot claim alpha's machine
make_agent intruder "$T/root-hosta" >/dev/null
install -m 600 "$T/beta-enroll.token" "$T/agent-intruder/enroll.token"
! ferry-agent discover --root "$T/root-hosta" --config "$T/agent-intruder/agent.conf" --post >/dev/null 2>"$T/err" ||
  fail "beta's agent posted alpha's machine"
grep -q "HTTP 403: this machine is a host of another project" "$T/err" || fail "no clear refusal: $(cat "$T/err")"
as "$T/alpha-viewer.token" 200 GET "/v1/hosts/$ha"
ok "an agent enrolled in beta cannot post the discovery of alpha's machine (403)"

# a host of alpha named like beta's, with a blueprint on beta's store: the
# images there belong to beta, alpha may not write them
make_root "$T/root-twin" hostb sda=$((4 << 20))
echo "another-machine" >"$T/root-twin/etc/machine-id"
make_agent twin "$T/root-twin" >/dev/null
install -m 600 "$T/alpha-enroll.token" "$T/agent-twin/enroll.token"
ferry-agent discover --root "$T/root-twin" --config "$T/agent-twin/agent.conf" --post >/dev/null ||
  fail "alpha's hostb did not post its discovery"
cat >"$T/bp-steal.json" <<EOF
{"name": "steal", "provider": "local", "store": "file://$T/store-beta", "hosts": [{"name": "hostb"}]}
EOF
FERRY_TOKEN_FILE=$T/alpha-admin.token ferry blueprint apply "$T/bp-steal.json" >/dev/null || fail "apply steal"
as "$T/alpha-operator.token" 200 GET /v1/migrations; n0=$(jq '.migrations | length' "$T/body")
as "$T/alpha-operator.token" 409 POST /v1/migrations --data '{"host": "hostb", "blueprint": "steal"}'
says "belong to another project"
as "$T/alpha-operator.token" 200 GET /v1/migrations
[ "$(jq '.migrations | length' "$T/body")" = "$n0" ] || fail "a migration was stored anyway"
ok "a host of alpha named like beta's cannot migrate into the images beta's migration wrote (409, naming nothing of beta)"

# ---- roles
FERRY_TOKEN_FILE=$A ferry migrate hosta --blueprint wave >/dev/null || fail "alpha's operator cannot migrate"
as "$A" 200 GET /v1/migrations; ma=$(jq -r '.migrations[0].id' "$T/body")
V=$T/alpha-viewer.token
as "$V" 200 GET "/v1/migrations/$ma"; jq -S 'del(.updated, .tasks, .events)' "$T/body" >"$T/ma-before.json"
for r in GET:/v1/hosts GET:/v1/hosts/$ha GET:/v1/blueprints GET:/v1/blueprints/wave GET:/v1/migrations \
         GET:/v1/events GET:/v1/agents; do
  as "$V" 200 "${r%%:*}" "${r#*:}"
done
as "$V" 403 POST "/v1/migrations/$ma/cutover"; says "needs the operator role; this token has the viewer role"
as "$V" 403 POST "/v1/migrations/$ma/cancel"; says "needs the operator role"
as "$V" 403 POST "/v1/migrations/$ma/retry"
as "$V" 403 POST /v1/migrations --data '{"host": "hosta", "blueprint": "wave"}'
as "$V" 403 POST /v1/blueprints --data-binary "@$T/bp-alpha.json"; says "needs the admin role"
as "$V" 403 POST /v1/tokens --data '{"role": "admin"}'
as "$V" 403 GET /v1/tokens
expect_fail "needs the operator role; this token has the viewer role" env FERRY_TOKEN_FILE="$V" ferry cutover "$ma"
as "$V" 200 GET "/v1/migrations/$ma"; jq -S 'del(.updated, .tasks, .events)' "$T/body" >"$T/ma-after.json"
diff "$T/ma-before.json" "$T/ma-after.json" >"$T/diff" || fail "the viewer changed the migration: $(cat "$T/diff")"
[ "$(jq -r .state "$T/body")" = active ] || fail "the migration is not active"
ok "a viewer reads everything of its project; migrate, cancel, retry, cutover, blueprint apply and tokens are 403 naming both roles, and nothing changed"

as "$A" 403 POST /v1/tokens --data '{"role": "viewer"}'; says "needs the admin role; this token has the operator role"
as "$A" 403 POST /v1/blueprints --data-binary "@$T/bp-alpha.json"
as "$A" 403 POST /v1/agents/hosta/revoke
as "$A" 200 POST "/v1/migrations/$ma/cancel"
[ "$(FERRY_TOKEN_FILE=$V ferry --json jobs | jq -r '.migrations[0].state')" = canceled ] || fail "cancel did not cancel"
ok "an operator migrates and cancels, and is refused tokens, blueprints and agents (403)"

AD=$T/alpha-admin.token
as "$AD" 403 POST /v1/projects --data '{"name": "gamma"}'; says "server admin"
as "$AD" 200 GET /v1/projects; [ "$(jq -r '[.projects[].name] | join(",")' "$T/body")" = alpha ] || fail "alpha's admin lists $(cat "$T/body")"
as "$AD" 200 GET /v1/tokens
[ "$(jq '.tokens | length' "$T/body")" = 4 ] || fail "alpha's tokens: $(cat "$T/body")"
jq -e '[.tokens[] | keys[]] | (index("token") == null and index("token_hash") == null)' "$T/body" >/dev/null ||
  fail "the token list shows secrets: $(cat "$T/body")"
FERRY_TOKEN_FILE=$AD ferry token list >"$T/tl" || fail "ferry token list"
! grep -qF "$(cat "$V")" "$T/tl" || fail "ferry token list prints a token"
as "$AD" 400 POST /v1/tokens --data '{"role": "root"}'; says '"field":"role"'
as "$AD" 400 POST /v1/tokens --data '{"kind": "enroll", "role": "admin"}'
as "$AD" 400 POST /v1/tokens --data '{"role": "viewer", "ttl": -5}'; says '"field":"ttl"'
as "$AD" 400 POST /v1/tokens --data '{"role": "viewer", "uses": 1}'; says '"field":"uses"'
ok "a project's admin makes and lists its tokens (no secrets listed), cannot make projects, sees only its project"

# ---- revocation, expiry, single use, rotation of operator tokens
vid=$(FERRY_TOKEN_FILE=$AD ferry --json token list | jq -r '.tokens[] | select(.name == "alpha-viewer") | .id')
FERRY_TOKEN_FILE=$AD ferry token revoke "$vid" >/dev/null || fail "token revoke"
as "$V" 401 GET /v1/hosts; says "this token was revoked"
as "$T/beta-admin.token" 404 POST "/v1/tokens/$vid/revoke"
FERRY_TOKEN_FILE=$AD ferry token create --role viewer --ttl 2s --out "$T/short.token" 2>/dev/null || fail "ttl token"
FERRY_TOKEN_FILE=$AD ferry token create --enroll --ttl 2 --out "$T/short-enroll.token" 2>/dev/null || fail "ttl enroll token"
FERRY_TOKEN_FILE=$AD ferry token create --enroll --uses 1 --out "$T/once.token" 2>/dev/null || fail "single-use token"
as "$T/short.token" 200 GET /v1/hosts
as "$T/once.token" 201 POST /v1/agents/enroll --data '{"hostname": "once"}'
as "$T/once.token" 401 POST /v1/agents/enroll --data '{"hostname": "twice"}'; says "used as often as it may"
sleep 2.5
as "$T/short.token" 401 GET /v1/hosts; says "this token expired at"
as "$T/short-enroll.token" 401 POST /v1/agents/enroll --data '{"hostname": "late"}'; says "expired"
FERRY_TOKEN_FILE=$AD ferry token list | grep -E ' enroll .* used up ' >/dev/null || fail "list: $(FERRY_TOKEN_FILE=$AD ferry token list)"
as "$AD" 200 GET /v1/agents; ! jq -e '.agents[] | select(.hostname == "twice" or .hostname == "late")' "$T/body" >/dev/null ||
  fail "a refused enrollment made an agent"
oid=$(FERRY_TOKEN_FILE=$AD ferry --json token list | jq -r '.tokens[] | select(.name == "alpha-operator") | .id')
FERRY_TOKEN_FILE=$AD ferry token rotate "$oid" --out "$T/alpha-operator2.token" 2>/dev/null || fail "token rotate"
as "$A" 401 GET /v1/hosts; says "revoked"
as "$T/alpha-operator2.token" 200 GET /v1/hosts
as "$T/alpha-operator2.token" 403 POST /v1/tokens --data '{"role": "viewer"}'; says "has the operator role"
ok "a revoked token is 401 at once; tokens with --ttl expire, a --uses 1 enrollment token enrolls once (401 saying why); ferry token rotate makes a successor of the same role and revokes the old one"

# ---- agents: revoked at once, rotated on request
make_disk "$T/c.img" 4M random
make_disk "$T/d.img" 4M random
for h in hostc hostd; do
  make_root "$T/root-$h" "$h" sda=$((4 << 20))
  conf=$(make_agent "$h" "$T/root-$h" "sda=$T/${h:4:1}.img")
  install -m 600 "$T/alpha-enroll.token" "$T/agent-$h/enroll.token"
  start_agent "$h" "$conf"
done
for h in hostc hostd; do
  wait_for 20 eval 'as "$AD" 200 GET /v1/hosts; jq -e ".hosts[] | select(.hostname == \"'$h'\")" "$T/body"' ||
    fail "$h did not post its discovery: $(cat "$T/agent-$h.log")"
done
cp "$T/agent-hostc/agent.token" "$T/c-old.token"
FERRY_TOKEN_FILE=$AD ferry agent revoke hostc >/dev/null || fail "agent revoke"
as "$T/c-old.token" 401 GET "/v1/agent/tasks?wait=0"; says "revoked"
wait_for 20 eval '! kill -0 $AGENT_PID_hostc' || fail "the revoked agent still runs: $(cat "$T/agent-hostc.log")"
rc=0; wait "$AGENT_PID_hostc" || rc=$?
[ "$rc" = 1 ] || fail "the revoked agent exited $rc"
grep -q "revoked this agent's token.*does not enroll again" "$T/agent-hostc.log" || fail "no clear message: $(cat "$T/agent-hostc.log")"
cmp -s "$T/c-old.token" "$T/agent-hostc/agent.token" || fail "the revoked agent replaced its token"
ok "ferry agent revoke: the agent's token is 401 at once, and the agent stops (exit 1) saying why, without enrolling again"

cp "$T/agent-hostd/agent.token" "$T/d-old.token"
FERRY_TOKEN_FILE=$AD ferry agent rotate hostd >/dev/null || fail "agent rotate"
wait_for 20 eval '! cmp -s "$T/d-old.token" "$T/agent-hostd/agent.token"' ||
  fail "the agent did not rotate its token: $(cat "$T/agent-hostd.log")"
[ "$(stat -c %a "$T/agent-hostd/agent.token")" = 600 ] || fail "the new token file is not mode 0600"
as "$T/d-old.token" 401 GET "/v1/agent/tasks?wait=0"
grep -q "agent token rotated" "$T/agent-hostd.log" || fail "rotation not logged"
cat >"$T/bp-d.json" <<EOF
{"name": "waved", "provider": "local", "store": "file://$T/store-d", "hosts": [{"name": "hostd"}]}
EOF
FERRY_TOKEN_FILE=$AD ferry blueprint apply "$T/bp-d.json" >/dev/null || fail "blueprint waved"
FERRY_TOKEN_FILE=$T/alpha-operator2.token ferry migrate hostd --blueprint waved >"$T/md.out" || fail "migrate hostd"
md=$(grep -o 'migration [0-9]*' "$T/md.out" | cut -d' ' -f2)
wait_for 60 eval 'as "$AD" 200 GET /v1/migrations/'"$md"'; jq -e "[.tasks[] | select(.kind == \"clone\" and .state == \"succeeded\")] | length == 1" "$T/body"' ||
  fail "the rotated agent did not clone: $(jq -c .tasks "$T/body"; cat "$T/agent-hostd.log")"
ok "ferry agent rotate: the agent trades its token at its next poll (old one 401, new file 0600) and goes on cloning with the new one"
