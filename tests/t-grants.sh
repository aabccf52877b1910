#!/bin/bash
# Grants: no cloud credentials on source servers.  Agents started with an
# empty environment (env -i: PATH and an empty HOME only) migrate their
# disks through ferry-server into Swift's S3 API and into azurite, every
# object written or read with a short-lived grant the server signed for
# that one key; the server alone holds the keys.  A grant that expired on
# the way is renewed and nothing is sent twice; a grant used for another
# key, another method or another payload is refused by the store; an
# agent gets no grant for another host's task, for a key outside its
# image, or to delete.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/servers.sh"
requires curl jq python3
AZ=$TOP/tests/azcli.py
TOOL=${FERRY_UNIT:-$TOP/build/tests}/store-tool

swift_start
azurite_start
"$AZ" mkcontainer ferry >/dev/null || fail "cannot create container ferry"
mkdir -p "$T/state"
start_server "$T/state/ferry.db" --lease 10

make_disk "$T/web01.img" 24M random
make_disk "$T/db01.img" 20M sparse
make_root "$T/root-web01" web01 sda=$((24 << 20))
make_root "$T/root-db01" db01 sda=$((20 << 20))
start_clean_agent web01 "$(make_agent web01 "$T/root-web01" "sda=$T/web01.img")"
start_clean_agent db01 "$(make_agent db01 "$T/root-db01" "sda=$T/db01.img")"
wait_for 20 eval '[ "$(api GET /v1/hosts | jq ".hosts | length")" = 2 ]' ||
  fail "agents did not enroll and post discovery: $(cat "$T"/agent-*.log)"
no_cloud_credentials web01
no_cloud_credentials db01

cat > "$T/s3.yaml" <<YAML
name: s3wave
provider: local
store: s3://test/g
options:
  chunk_size: 1M
hosts:
  - name: web01
    format: raw
YAML
cat > "$T/az.yaml" <<YAML
name: azwave
provider: local
store: azure://ferry/g
options:
  chunk_size: 1M
hosts:
  - name: db01
    format: raw
YAML
sed 's/^  chunk_size: 1M$/  chunk_size: 1M\n  store_access: bogus/' "$T/s3.yaml" >"$T/bad.yaml"
rc=0; ferry blueprint validate "$T/bad.yaml" >"$T/bad.out" 2>&1 || rc=$?
[ "$rc" != 0 ] && grep -q "options.store_access" "$T/bad.out" ||
  fail "a blueprint with store_access: bogus was not refused: $(cat "$T/bad.out")"
ferry blueprint apply "$T/s3.yaml" >/dev/null || fail "apply s3wave"
ferry blueprint apply "$T/az.yaml" >/dev/null || fail "apply azwave"
ferry migrate web01 --blueprint s3wave >/dev/null || fail "migrate web01"
ferry migrate db01 --blueprint azwave >/dev/null || fail "migrate db01"
timeout 120 ferry job watch 1 >"$T/w1.out" 2>&1 || fail "web01 (S3) did not finish: $(ferry job show 1; tail -5 "$T/agent-web01.log")"
timeout 120 ferry job watch 2 >"$T/w2.out" 2>&1 || fail "db01 (Azure) did not finish: $(ferry job show 2; tail -5 "$T/agent-db01.log")"
api GET /v1/migrations/1 | jq -e '.tasks[] | select(.kind == "clone") | .spec.store_access == "grant"' >/dev/null ||
  fail "the clone task of web01 does not use grants: $(api GET /v1/migrations/1 | jq '.tasks[0].spec')"
"$TOOL" get s3://test/g/web01 sda.raw | cmp - "$T/web01.img" || fail "web01's migrated disk differs"
"$TOOL" get azure://ferry/g/db01 sda.raw | cmp - "$T/db01.img" || fail "db01's migrated disk differs"
# every chunk went in with a presigned URL (X-Amz-Signature in its query),
# none with an Authorization header of the agent's own
n=$(grep -cE 'PUT /test/g/web01/sda/chunks/[0-9a-f]{64}' "$S3_ACCESS_LOG" || true)
[ "$n" -ge 24 ] || fail "only $n chunk PUTs of web01 in the S3 access log"
grep -E 'PUT /test/g/web01/sda/chunks/' "$S3_ACCESS_LOG" | grep -v 'X-Amz-Signature' &&
  fail "a chunk PUT of web01 without a grant"
no_cloud_credentials web01
no_cloud_credentials db01
ok "two agents without any cloud credential migrate a host each through S3 (Swift) and Azure (azurite) with grants: byte-identical"

# agent_api NAME METHOD PATH [curl args]: a call with agent NAME's token
# (from a header file: never on a command line); prints the body, sets
# HTTP_STATUS
agent_api() {
  local name=$1 m=$2 p=$3; shift 3
  printf 'Authorization: Bearer %s\n' "$(cat "$T/agent-$name/agent.token")" >"$T/agent.hdr"
  chmod 600 "$T/agent.hdr"
  HTTP_STATUS=$(curl -s -o "$T/agent.body" -w '%{http_code}' -X "$m" -H "@$T/agent.hdr" \
    -H 'Content-Type: application/json' "$SERVER_URL$p" "$@")
  cat "$T/agent.body"
}
# put_with NAME-OF-GRANT-FILE METHOD URL FILE: curl with the grant's headers
send() {
  local g=$1 m=$2 url=$3 body=${4:-} h=()
  while IFS= read -r line; do h+=(-H "$line"); done < <(tail -n +2 "$g")
  curl -s -o "$T/send.out" -w '%{http_code}' -X "$m" "${h[@]}" ${body:+--data-binary "@$body"} "$url"
}

# --- an expired grant is renewed, and nothing is sent twice ---------------
# The server restarts with grants of 2 s and its S3 endpoint behind a proxy
# that holds app01's first chunk PUT for 3 s: Swift refuses it as expired,
# the agent asks for a new grant and sends it again, once.
kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true
PROXY_PORT=$(free_port)
python3 "$TOP/tests/dropproxy.py" "$PROXY_PORT" "$S3_PORT" '^PUT /test/g2/app01/sda/chunks/' \
  "$T/proxy.log" 3 >"$T/proxy.out" 2>&1 &
PROXY_PID=$!
at_exit "kill $PROXY_PID 2>/dev/null; wait $PROXY_PID 2>/dev/null"
wait_for 10 curl -s -o /dev/null "http://127.0.0.1:$PROXY_PORT/healthcheck" || fail "proxy did not start"
saved=$AWS_ENDPOINT_URL
export AWS_ENDPOINT_URL=http://127.0.0.1:$PROXY_PORT
start_server "$T/state/ferry.db" --lease 10 --grant-ttl 2
export AWS_ENDPOINT_URL=$saved

make_disk "$T/app01.img" 32M random
make_root "$T/root-app01" app01 sda=$((32 << 20))
start_clean_agent app01 "$(make_agent app01 "$T/root-app01" "sda=$T/app01.img")"
wait_for 20 eval 'api GET /v1/hosts | jq -e ".hosts | any(.hostname == \"app01\")" >/dev/null' ||
  fail "app01 did not appear: $(cat "$T/agent-app01.log")"
cat > "$T/slow.yaml" <<YAML
name: slow
provider: local
store: s3://test/g2
options:
  chunk_size: 1M
  max_rate: 3M
hosts:
  - name: app01
    format: raw
YAML
ferry blueprint apply "$T/slow.yaml" >/dev/null || fail "apply slow"
ferry migrate app01 --blueprint slow >/dev/null || fail "migrate app01"
wait_for 30 eval 'api GET /v1/migrations/3 | jq -e ".tasks | any(.kind == \"clone\" and .state == \"running\")" >/dev/null' ||
  fail "app01's clone does not run: $(ferry job show 3)"
tid=$(api GET /v1/migrations/3 | jq '[.tasks[] | select(.kind == "clone")][0].id')
web_tid=$(api GET /v1/migrations/1 | jq '[.tasks[] | select(.kind == "clone")][0].id')

# --- what an agent may be granted, while its clone runs -------------------
head -c 1048576 /dev/urandom >"$T/A"
head -c 1048576 /dev/urandom >"$T/B"
sha_a=$(sha256sum <"$T/A" | cut -c1-64)
sha_b=$(sha256sum <"$T/B" | cut -c1-64)
req() { jq -nc --arg m "$1" --arg k "$2" --arg s "${3:-}" --argjson n "${4:-0}" \
  '{grants: [{method: $m, key: $k} + (if $s != "" then {sha256: $s, size: $n} else {} end)]}'; }
agent_api app01 POST "/v1/agent/tasks/$tid/grants" -d "$(req PUT "chunks/$sha_a" "$sha_a" 1048576)" >"$T/gA.json"
[ "$HTTP_STATUS" = 200 ] || fail "app01 got no grant for its own running task: $HTTP_STATUS $(cat "$T/gA.json")"
jq -r '.grants[0].url, .grants[0].headers[]' "$T/gA.json" >"$T/gA"
jq -e '.expires_in == 2' "$T/gA.json" >/dev/null || fail "the grant does not last --grant-ttl: $(jq .expires_in "$T/gA.json")"
agent_api web01 POST "/v1/agent/tasks/$tid/grants" -d "$(req PUT "chunks/$sha_a" "$sha_a" 1048576)" >/dev/null
[ "$HTTP_STATUS" = 404 ] || fail "web01's token got $HTTP_STATUS for app01's task (expected 404)"
agent_api web01 GET "/v1/agent/tasks/$tid/objects?prefix=chunks/" >/dev/null
[ "$HTTP_STATUS" = 404 ] || fail "web01's token listed app01's image: $HTTP_STATUS"
agent_api web01 POST "/v1/agent/tasks/$web_tid/grants" -d "$(req GET manifest.json)" >/dev/null
[ "$HTTP_STATUS" = 409 ] || fail "a grant for a finished task: $HTTP_STATUS (expected 409)"
for bad in "$(req GET ../../web01/sda/manifest.json)" "$(req GET /test/g/web01/sda/manifest.json)" \
           "$(req DELETE manifest.json)" "$(req PUT "chunks/$sha_a" "$sha_b" 1048576)" \
           "$(req PUT "chunks/$sha_a" "$sha_a" 999999999)" "$(req GET web01.raw)"; do
  agent_api app01 POST "/v1/agent/tasks/$tid/grants" -d "$bad" >/dev/null
  [ "$HTTP_STATUS" = 400 ] || fail "grant request $bad: $HTTP_STATUS (expected 400)"
done
for p in "" "../" "..%2F" "chunks/../../"; do
  agent_api app01 GET "/v1/agent/tasks/$tid/objects?prefix=$p" >/dev/null
  [ "$HTTP_STATUS" = 400 ] || fail "listing prefix '$p': $HTTP_STATUS (expected 400)"
done
agent_api app01 GET "/v1/agent/tasks/$tid/objects?prefix=chunks/" >"$T/objs.json"
[ "$HTTP_STATUS" = 200 ] && jq -e '.objects | all(.key | startswith("chunks/"))' "$T/objs.json" >/dev/null ||
  fail "app01 cannot list its own chunks: $HTTP_STATUS $(head -c 300 "$T/objs.json")"
ok "an agent gets grants only for its own running clone and its image's keys (another host's task 404, a finished one 409; '..', absolute keys, DELETE, a wrong digest or size, other prefixes 400)"

# --- the store refuses a grant used for anything else ---------------------
# grants of 60 s from the server's signing code (store-tool grant runs
# store_grant, as api_grants.c does), so that a refusal is the store's
# judgement of the misuse, not of an expired grant
s3=s3://test/misuse
"$TOOL" grant "$s3" "chunks/$sha_a" PUT 60 "$sha_a" 1048576 >"$T/gA" || fail "s3 grant"
url=$(head -1 "$T/gA")
base=${url%%\?*}; query=${url#*\?}
[ "$(send "$T/gA" PUT "${base%/*}/$sha_b?$query" "$T/B")" = 403 ] || fail "S3: a PUT grant for key A wrote key B"
[ "$(send "$T/gA" GET "$url")" = 403 ] || fail "S3: a PUT grant was good for a GET"
[ "$(send "$T/gA" DELETE "$url")" = 403 ] || fail "S3: a PUT grant was good for a DELETE"
head -c 1048577 /dev/urandom >"$T/A1"
[ "$(send "$T/gA" PUT "$url" "$T/A1")" = 403 ] || fail "S3: a PUT grant took a payload of another size"
sed "s/^x-amz-content-sha256: .*/x-amz-content-sha256: $sha_b/" "$T/gA" >"$T/gA-other"
[ "$(send "$T/gA-other" PUT "$url" "$T/B")" = 403 ] || fail "S3: a PUT grant took another payload digest"
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$S3_PORT/test?list-type=2&prefix=misuse/&$query")" = 403 ] ||
  fail "S3: a PUT grant listed the bucket"
code=$(send "$T/gA" PUT "$url" "$T/A")
[ "$code" = 200 ] || fail "S3: the grant was not good for its own key and payload: $code $(cat "$T/send.out")"
"$TOOL" grant "$s3" "chunks/$sha_a" GET 60 >"$T/gR" || fail "s3 read grant"
[ "$(send "$T/gR" GET "$(head -1 "$T/gR")")" = 200 ] && cmp -s "$T/send.out" "$T/A" || fail "S3: a read grant did not read its object"
[ "$(send "$T/gR" PUT "$(head -1 "$T/gR")" "$T/B")" = 403 ] || fail "S3: a read grant was good for a PUT"
"$TOOL" head "$s3" "chunks/$sha_a" >/dev/null || fail "S3: the object went away"
"$TOOL" grant "$s3" "chunks/$sha_b" PUT 1 "$sha_b" 1048576 >"$T/gE"
sleep 2.5
[ "$(send "$T/gE" PUT "$(head -1 "$T/gE")" "$T/B")" = 403 ] || fail "S3: an expired grant was accepted"

# Azure: the server's signing code (store-tool grant is store_grant, what
# the server runs) against azurite
az=azure://ferry/g/db01/sda
"$TOOL" grant "$az" "chunks/$sha_a" PUT 60 "$sha_a" 1048576 >"$T/zA" || fail "azure grant"
grep -q 'sp=cw&' "$T/zA" && ! grep -qE 'sp=[a-z]*[rd]' "$T/zA" || fail "an Azure PUT grant is not write-only: $(head -1 "$T/zA" | sed 's/sig=.*/sig=.../')"
url=$(head -1 "$T/zA"); base=${url%%\?*}; query=${url#*\?}
[ "$(send "$T/zA" PUT "${base%/*}/$sha_b?$query" "$T/B")" = 403 ] || fail "Azure: a SAS for blob A wrote blob B"
[ "$(send "$T/zA" GET "$url")" = 403 ] || fail "Azure: a write SAS was good for a GET"
[ "$(send "$T/zA" DELETE "$url")" = 403 ] || fail "Azure: a write SAS was good for a DELETE"
[ "$(send "$T/zA" PUT "$url" "$T/A")" = 201 ] || fail "Azure: the SAS was not good for its own blob: $(cat "$T/send.out")"
"$TOOL" grant "$az" "chunks/$sha_a" GET 60 >"$T/zR" || fail "azure read grant"
[ "$(send "$T/zR" GET "$(head -1 "$T/zR")")" = 200 ] && cmp -s "$T/send.out" "$T/A" || fail "Azure: a read SAS did not read its blob"
{ cat "$T/zR"; echo "x-ms-blob-type: BlockBlob"; } >"$T/zRw"
[ "$(send "$T/zRw" PUT "$(head -1 "$T/zR")" "$T/B")" = 403 ] || fail "Azure: a read SAS was good for a PUT"
[ "$(send "$T/zR" DELETE "$(head -1 "$T/zR")")" = 403 ] || fail "Azure: a read SAS was good for a DELETE"
"$TOOL" grant "$az" "chunks/$sha_b" PUT 1 "$sha_b" 1048576 >"$T/zE"
sleep 2.5
[ "$(send "$T/zE" PUT "$(head -1 "$T/zE")" "$T/B")" = 403 ] || fail "Azure: an expired SAS was accepted"
ok "a grant used for another key, another method, another payload or after its end is refused by Swift (S3) and azurite (403)"

# --- back to app01: its clone outlived many grants ------------------------
timeout 180 ferry job watch 3 >"$T/w3.out" 2>&1 || fail "app01 did not finish: $(ferry job show 3; tail -5 "$T/agent-app01.log")"
"$TOOL" get s3://test/g2/app01 sda.raw | cmp - "$T/app01.img" || fail "app01's migrated disk differs"
grep -q "DELAYED" "$T/proxy.log" || fail "the proxy held no chunk PUT: $(head -3 "$T/proxy.log")"
grep -q "the store refused the grant (AccessDenied): asking the server for a new one" "$T/agent-app01.log" ||
  fail "the agent did not renew an expired grant: $(grep -i grant "$T/agent-app01.log" | head -3)"
# each chunk of the image was stored by exactly one successful PUT
awk '$0 ~ /PUT \/test\/g2\/app01\/sda\/chunks\// {
       match($0, /chunks\/[0-9a-f]+/); k = substr($0, RSTART + 7, RLENGTH - 7)
       for (i = 1; i <= NF; i++) if ($i ~ /^HTTP\//) s = $(i + 1)
       print k, s }' "$S3_ACCESS_LOG" | grep -v "^$sha_a " | sort >"$T/puts"
n_ok=$(awk '$2 ~ /^2/' "$T/puts" | wc -l)
n_keys=$(awk '$2 ~ /^2/ {print $1}' "$T/puts" | sort -u | wc -l)
n_403=$(awk '$2 == 403' "$T/puts" | wc -l)
[ "$n_keys" = 32 ] || fail "$n_keys distinct chunks stored for app01, expected 32: $(cat "$T/puts" | head)"
[ "$n_ok" = 32 ] || fail "$n_ok successful chunk PUTs for 32 chunks: something was sent twice"
[ "$n_403" -ge 1 ] || fail "no chunk PUT was refused as expired: the test proved nothing"
secs=$(api GET /v1/migrations/3 | jq '[.tasks[] | select(.kind == "clone")][0].result.seconds')
no_cloud_credentials app01
ok "a clone of ${secs}s on grants of 2 s: the expired grant ($n_403 refused PUT) was renewed, 32 chunks each stored once"
