#!/bin/bash
# GET /v1/events/stream: a migration's events pushed as Server-Sent Events
# while it runs (curl -N reads the stream; no polling by the client): every
# phase from preflight to done arrives, in order, each with its event id;
# the running clone's progress arrives as "progress" messages whose bytes
# grow; a client that reconnects with Last-Event-ID (as EventSource does)
# gets only what came after; ?migration= narrows the stream; another
# project's viewer gets none of it; no token is 401; a bad Last-Event-ID
# is 400; stopping the server ends every stream.
. "$(dirname "$0")/lib.sh"
requires curl jq

start_server "$T/ferry.db"
make_disk "$T/s.img" 48M random
make_root "$T/root" s01 sda=$((48 << 20))
start_agent s01 "$(make_agent s01 "$T/root" "sda=$T/s.img")"
wait_for 20 eval 'api GET /v1/hosts | jq -e ".hosts | any(.hostname == \"s01\")" >/dev/null' ||
  fail "the agent did not register"
# 8 MiB/s: the clone of 48 MiB takes about 6 s and the agent posts its
# progress every 2 s
printf 'name: s\nprovider: local\nstore: file://%s/store\noptions:\n  chunk_size: 1M\n  max_rate: 8M\nhosts:\n  - name: s01\n    format: raw\n' "$T" > "$T/s.yaml"
ferry blueprint apply "$T/s.yaml" >/dev/null || fail "apply"
tok=$(cat "$OPERATOR_TOKEN_FILE")
stream() { # OUT [curl args...]: the stream into OUT until the server ends it
  local out=$1; shift
  curl -sN -H "Authorization: Bearer $tok" "$@" "$SERVER_URL/v1/events/stream" >"$out" 2>/dev/null &
}
stream "$T/all.sse"; all_pid=$!
sleep 1
ferry migrate s01 --blueprint s >/dev/null || fail "migrate"
wait_for 60 grep -q '"phase":"done"' "$T/all.sse" ||
  fail "the stream never showed phase done: $(tail -c 600 "$T/all.sse")"
# the SSE frames as JSON: {event, id, data}
frames() { awk 'BEGIN {RS=""} {ev=""; id=""; data=""; n=split($0, l, "\n");
  for (i = 1; i <= n; i++) { if (l[i] ~ /^event: /) ev=substr(l[i], 8); else if (l[i] ~ /^id: /) id=substr(l[i], 5);
    else if (l[i] ~ /^data: /) data=substr(l[i], 7) }
  if (ev != "") printf "{\"event\":\"%s\",\"id\":\"%s\",\"data\":%s}\n", ev, id, data}' "$1" | jq -s .; }
frames "$T/all.sse" > "$T/all.json" || fail "the stream is not well-formed SSE: $(head -c 600 "$T/all.sse")"
head -n 1 "$T/all.sse" | grep -qx 'retry: 2000' || fail "the stream does not start with retry:"
phases=$(jq -r '[.[] | select(.event == "event" and .data.kind == "phase") | .data.phase] | join(" ")' "$T/all.json")
[ "$phases" = "discovered preflight prepared cloning cloned converting converted creating done" ] ||
  fail "the phases arrived as: $phases"
jq -e '[.[] | select(.event == "event") | (.id | tonumber) == .data.id] | all' "$T/all.json" >/dev/null ||
  fail "an event's SSE id is not its event id"
jq -e '[.[] | select(.event == "event") | .data.id] | . == sort and . == unique' "$T/all.json" >/dev/null ||
  fail "event ids are not strictly increasing"
nprog=$(jq '[.[] | select(.event == "progress" and .data.kind == "clone")] | length' "$T/all.json")
[ "$nprog" -ge 2 ] || fail "the clone's progress came $nprog times: $(grep -c progress "$T/all.sse")"
jq -e '[.[] | select(.event == "progress" and .data.kind == "clone") | .data.done_bytes] | . == sort and (last > first)' "$T/all.json" >/dev/null ||
  fail "the clone's progress does not grow: $(jq -c '[.[] | select(.event == "progress") | .data.done_bytes]' "$T/all.json")"
api GET "/v1/events?migration=1" | jq -e --slurpfile s "$T/all.json" \
  '[.events[].id] == [$s[0][] | select(.event == "event" and .data.migration_id == 1) | .data.id]' >/dev/null ||
  fail "the stream's events of migration 1 are not GET /v1/events' ones"
ok "a migration's events arrive on the stream as they happen, in order with their ids ($phases), with $nprog growing clone progress messages"

mid=$(jq '[.[] | select(.event == "event") | .data.id] | .[length / 2 | floor]' "$T/all.json")
stream "$T/resume.sse" -H "Last-Event-ID: $mid" --max-time 3; wait $! || true   # curl ends at --max-time
frames "$T/resume.sse" > "$T/resume.json"
jq -e --argjson m "$mid" '[.[] | select(.event == "event") | .data.id] | length > 0 and all(. > $m)' "$T/resume.json" >/dev/null ||
  fail "resuming after $mid gave: $(jq -c '[.[] | .data.id]' "$T/resume.json")"
stream "$T/mig.sse" --max-time 3 --get --data migration=999; wait $! || true
! grep -q '^event: event' "$T/mig.sse" || fail "?migration=999 streamed events: $(head -c 300 "$T/mig.sse")"
ok "Last-Event-ID resumes after that event; ?migration= narrows the stream"

ferry project create other >/dev/null || fail "project create"
ferry --project other token create --role viewer --name v --out "$T/v.token" 2>/dev/null || fail "token create"
curl -sN --max-time 3 -H "Authorization: Bearer $(cat "$T/v.token")" "$SERVER_URL/v1/events/stream" >"$T/other.sse" 2>/dev/null || true
frames "$T/other.sse" > "$T/other.json"
jq -e '[.[] | select(.data.migration_id == 1 or (.data.message // "" | contains("s01")))] == []' "$T/other.json" >/dev/null ||
  fail "another project's viewer got this project's events: $(head -c 400 "$T/other.sse")"
[ "$(curl -s -o /dev/null -w '%{http_code}' "$SERVER_URL/v1/events/stream")" = 401 ] || fail "no token is not 401"
[ "$(curl -s -o "$T/bad.json" -w '%{http_code}' -H "Authorization: Bearer $tok" -H 'Last-Event-ID: x1' "$SERVER_URL/v1/events/stream")" = 400 ] ||
  fail "a bad Last-Event-ID is not 400"
grep -q 'must be a number' "$T/bad.json" || fail "the 400 does not say why: $(cat "$T/bad.json")"
ok "another project's viewer streams nothing of it; no token is 401; a bad Last-Event-ID is 400"

# after=now: only what happens from then on
stream "$T/now.sse" --max-time 2 --get --data after=now; wait $! || true
! grep -q '^event: event' "$T/now.sse" || fail "after=now replayed old events: $(head -c 300 "$T/now.sse")"
# ferry job watch waits on the stream: a warm job sitting in ready costs
# one read of the migration while watched, not one a second
printf 'name: w\nprovider: local\nstore: file://%s/wstore\noptions:\n  sync_interval: 1h\nhosts:\n  - name: s01\n    format: raw\n    warm: true\n' "$T" > "$T/w.yaml"
ferry blueprint apply "$T/w.yaml" >/dev/null || fail "apply w"
wid=$(ferry migrate s01 --blueprint w | grep -o 'migration [0-9]*' | grep -o '[0-9]*' | head -n 1)
wait_for 60 eval 'api GET /v1/migrations/$wid | jq -e ".phase == \"ready\"" >/dev/null' ||
  fail "the warm job did not get ready: $(ferry job show "$wid")"
gets() { api GET /metrics | awk '/^ferry_api_requests_total\{/ && /route="\/v1\/migrations\/\{id\}"/ && /method="GET"/ {n += $2} END {print n + 0}'; }
g0=$(gets)
timeout 8 ferry job watch "$wid" >"$T/watch.out" 2>&1 && fail "the watch of a job in ready ended: $(cat "$T/watch.out")"
g1=$(gets)
[ $((g1 - g0)) -le 2 ] || fail "ferry job watch read the migration $((g1 - g0)) times in 8 s while nothing happened"
stream "$T/cut.sse" --max-time 20 --get --data after=now --data "migration=$wid"; cut_pid=$!
sleep 1
timeout 60 ferry job watch "$wid" >"$T/watch2.out" 2>&1 & watch_pid=$!
sleep 1
ferry cutover "$wid" >/dev/null || fail "cutover"
wait $watch_pid || fail "ferry job watch did not follow the cutover to done: $(cat "$T/watch2.out")"
grep -q "migration $wid done" "$T/watch2.out" || fail "the watch did not say done: $(cat "$T/watch2.out")"
grep -q '"phase":"done"' "$T/cut.sse" || fail "an after=now stream missed the cutover's events"
kill $cut_pid 2>/dev/null || true
ok "after=now streams only new events; ferry job watch waits on the stream (read the idle job $((g1 - g0)) time(s) in 8 s) and follows a cutover to done"

kill "$SERVER_PID"
for i in $(seq 50); do kill -0 "$all_pid" 2>/dev/null || break; sleep 0.1; done
! kill -0 "$all_pid" 2>/dev/null || fail "the stream did not end when the server stopped"
ok "stopping the server ends the open stream"
