#!/bin/bash
# ferry-server's log: one line per event naming the job, its host and its
# phase.  --log-format json makes every line one JSON object (time, level,
# prog, msg; job, host, phase, kind for a job's events); under systemd,
# when stderr is the journal's stream (JOURNAL_STREAM names it), every
# line starts with its syslog priority for journald and carries no time of
# its own; a bad --log-format is a usage error.
. "$(dirname "$0")/lib.sh"
requires curl jq

migrate_one() { # HOST: a 4 MiB disk migrated to local raw, to the end
  h=$1
  make_disk "$T/$1.img" 4M random
  make_root "$T/root-$1" "$1" sda=$((4 << 20))
  start_agent "$1" "$(make_agent "$1" "$T/root-$1" "sda=$T/$1.img")"
  wait_for 20 eval 'api GET /v1/hosts | jq -e ".hosts | any(.hostname == \"$h\")" >/dev/null' ||
    fail "the agent $1 did not register"
  printf 'name: %s\nprovider: local\nstore: file://%s/store\nhosts:\n  - name: %s\n    format: raw\n' "$1" "$T" "$1" > "$T/$1.yaml"
  ferry blueprint apply "$T/$1.yaml" >/dev/null || fail "apply"
  ferry migrate "$1" --blueprint "$1" >/dev/null || fail "migrate $1"
  timeout 60 ferry job watch "$(api GET /v1/migrations | jq '[.migrations[].id] | max')" >/dev/null 2>&1 ||
    fail "the migration of $1 did not finish"
}

expect_fail "--log-format is text or json, not 'xml'" ferry-server --log-format xml

start_server "$T/text.db"
migrate_one l01
grep -qE '^[0-9T:.-]+Z ferry-server: job 1 l01 cloning: clone tasks queued' "$T/server.log" ||
  fail "no text line naming job, host and phase: $(grep -m3 'job 1' "$T/server.log")"
ok "a text log line names the job, its host and its phase: $(grep -m1 'job 1 l01 cloning' "$T/server.log" | cut -c1-90)"
kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true
mv "$T/server.log" "$T/text.log"

start_server "$T/json.db" --log-format json
migrate_one j01
while IFS= read -r line; do
  jq -e 'type == "object" and (.time | test("Z$")) and (.level | IN("info", "warning", "error", "debug")) and .prog == "ferry-server" and (.msg | type == "string")' \
    <<<"$line" >/dev/null 2>&1 || fail "a log line is not one JSON object with time, level, prog, msg: $line"
done < "$T/server.log"
jq -se 'map(select(.job == 1 and .host == "j01" and .phase == "cloning" and .kind == "phase")) | length >= 1' "$T/server.log" >/dev/null ||
  fail "no JSON line for job 1's phase cloning on j01: $(grep -m2 '"job":1' "$T/server.log")"
jq -se 'map(select(.job == 1)) | map(.phase) | index("done") != null' "$T/server.log" >/dev/null || fail "no JSON line with phase done"
ok "--log-format json: every line of the server's log is one JSON object; job events carry job, host, phase and kind ($(wc -l < "$T/server.log") lines)"
kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true

# journald: systemd sets JOURNAL_STREAM to the dev:ino of the stream it
# gave the service as stderr; here stderr is a file, and the variable names it
: > "$T/journal.log"
JOURNAL_STREAM=$(stat -c '%d:%i' "$T/journal.log") ferry-server --listen "127.0.0.1:$(free_port)" \
  --db "$T/j.db" --http --operator-token-file "$T/j.op" --enroll-token-file "$T/j.en" 2>>"$T/journal.log" &
jpid=$!; at_exit "kill $jpid 2>/dev/null"
wait_for 10 grep -q . "$T/journal.log" || fail "the server under JOURNAL_STREAM logged nothing"
kill "$jpid"; wait "$jpid" 2>/dev/null || true
grep -q '^<6>ferry-server: ' "$T/journal.log" || fail "no line with journald's priority prefix: $(head -3 "$T/journal.log")"
! grep -vq '^<[3467]>' "$T/journal.log" || fail "a line without a priority prefix: $(grep -v '^<[3467]>' "$T/journal.log" | head -2)"
! grep -qE '^<[0-9]>[0-9]{4}-' "$T/journal.log" || fail "a journal line carries its own time"
ok "with stderr on the journal, every line starts with its syslog priority and no time of its own"
