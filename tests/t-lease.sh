#!/bin/bash
# A server task holds its lease on a timer for as long as it runs: with
# --lease 2, a conversion whose ferry-convert prints to stderr without a
# pause for 5 s, and a boot check that takes 5 s, each run once (no second
# worker takes them over).  Cancel reaches such a chatty child within
# seconds, and SIGTERM of the server stops it within seconds; after the
# restart the conversion runs again and the migration completes.
# ferry-convert is a wrapper here (--convert-bin) that is chatty for
# $T/delay seconds, then runs the real one; qemu-system-x86_64 a stand-in
# (first on the server's PATH) that shows the boot marker after 5 s.
# ferry-test-alone: leases of 2 s that must be renewed in time
. "$(dirname "$0")/lib.sh"
requires curl jq

cat > "$T/convert" <<SH
#!/bin/bash
echo \$\$ >> "$T/convert.runs"
end=\$((SECONDS + \$(cat "$T/delay")))
while [ \$SECONDS -lt \$end ]; do echo "still converting" >&2; sleep 0.05; done
exec "$FERRY_BIN/ferry-convert" "\$@"
SH
mkdir -p "$T/fakebin" "$T/state"
cat > "$T/fakebin/qemu-system-x86_64" <<SH
#!/bin/bash
echo \$\$ >> "$T/qemu.runs"
log=
while [ \$# -gt 0 ]; do [ "\$1" = -serial ] && log=\${2#file:}; shift; done
sleep 5
echo "FERRY-LEASE-BOOTED" >> "\$log"
exec sleep 60
SH
chmod +x "$T/convert" "$T/fakebin/qemu-system-x86_64"
echo 5 > "$T/delay"
export PATH="$T/fakebin:$PATH"
server() { start_server "$T/state/ferry.db" --lease 2 --convert-bin "$T/convert"; }
server

make_disk "$T/a.img" 8M random
make_root "$T/root" web01 sda=$((8 << 20))
start_agent web01 "$(make_agent web01 "$T/root" "sda=$T/a.img")"
wait_for 20 eval 'api GET /v1/hosts | jq -e ".hosts | length == 1" >/dev/null' ||
  fail "the agent did not register: $(cat "$T"/agent-*.log)"
for bp in plain boot; do
  {
    echo "name: $bp"; echo "provider: local"; echo "store: file://$T/store"
    echo "hosts:"; echo "  - name: web01"; echo "    format: raw"
    [ $bp = plain ] || printf '    boot: true\n    boot_marker: FERRY-LEASE-BOOTED\n    boot_timeout: 30\n'
  } > "$T/$bp.yaml"
  ferry blueprint apply "$T/$bp.yaml" >/dev/null || fail "apply $bp"
done
job() { api GET "/v1/migrations/$1"; }
runs() { cat "$T/$1.runs" 2>/dev/null | wc -l; }
alive() { [ -e "/proc/$1" ] && ! grep -q '^[0-9]* ([^)]*) Z' "/proc/$1/stat" 2>/dev/null; }
# once: one run, attempt 1, never offered again
once() {  # MIGRATION KIND RUNS-FILE
  [ "$(runs "$3")" = 1 ] || fail "migration $1: the $2 ran $(runs "$3") times"
  job "$1" | jq -e --arg k "$2" '[.tasks[] | select(.kind == $k)] | length == 1 and all(.attempts == 1)' >/dev/null ||
    fail "migration $1: $2 task attempts: $(job "$1" | jq -c '[.tasks[] | {kind, attempts, state}]')"
  ! job "$1" | jq -e '.events | any(.message | test("offered again"))' >/dev/null ||
    fail "migration $1: a task was offered again: $(job "$1" | jq -c '[.events[] | .message]')"
}

ferry migrate web01 --blueprint plain >/dev/null || fail "migrate 1"
timeout 60 ferry job watch 1 >/dev/null || fail "migration 1 did not complete: $(ferry job show 1)"
once 1 convert convert
cmp "$T/a.img" "$T/store/web01/sda.raw" || fail "migration 1: the output differs"
ok "a conversion chatty on stderr for 5 s with a 2 s lease runs once (attempt 1) and completes"

echo 0 > "$T/delay"
ferry migrate web01 --blueprint boot >/dev/null || fail "migrate 2"
timeout 60 ferry job watch 2 >/dev/null || fail "migration 2 did not complete: $(ferry job show 2)"
once 2 create qemu
ok "a boot check of 5 s with a 2 s lease runs once (attempt 1) and the migration is done"

echo 60 > "$T/delay"; : > "$T/convert.runs"
ferry migrate web01 --blueprint plain >/dev/null || fail "migrate 3"
wait_for 30 eval '[ "$(runs convert)" -ge 1 ]' || fail "migration 3: no conversion started: $(ferry job show 3)"
pid=$(head -n 1 "$T/convert.runs")
alive "$pid" || fail "the chatty convert $pid is not running"
ferry cancel 3 >/dev/null || fail "cancel 3"
wait_for 5 eval '! alive "$pid"' || fail "the chatty convert $pid still runs 5 s after the cancel"
ok "cancel stops a chatty conversion's child within seconds"

: > "$T/convert.runs"
ferry migrate web01 --blueprint plain >/dev/null || fail "migrate 4"
wait_for 30 eval '[ "$(runs convert)" -ge 1 ]' || fail "migration 4: no conversion started: $(ferry job show 4)"
pid=$(head -n 1 "$T/convert.runs")
kill -TERM "$SERVER_PID"
wait_for 8 eval '! kill -0 "$SERVER_PID"' || fail "the server still runs 8 s after SIGTERM: $(tail -n 5 "$T/server.log")"
wait "$SERVER_PID" 2>/dev/null || true
wait_for 2 eval '! alive "$pid"' || fail "the convert $pid outlived the server's SIGTERM"
! pgrep -f "$T/convert" >/dev/null || fail "a conversion outlived the server: $(pgrep -af "$T/convert")"
echo 0 > "$T/delay"
server
timeout 60 ferry job watch 4 >/dev/null || fail "migration 4 did not complete after the restart: $(ferry job show 4)"
cmp "$T/a.img" "$T/store/web01/sda.raw" || fail "migration 4: the output differs after the restart"
job 4 | jq -e '.events | any(.message | test("stopped by the server.s shutdown"))' >/dev/null ||
  fail "the interrupted conversion left no event: $(job 4 | jq -c '[.events[] | .message]')"
ok "SIGTERM of the server stops its conversion within seconds; after the restart it runs again and completes"
