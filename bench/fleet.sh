#!/bin/bash
# fleet.sh - the control plane under a fleet: AGENTS simulated agents from
# one process (tests/tools/fleet.c: enroll, post discovery, long-poll, post
# progress every 2 s while they hold a task) against one ferry-server on
# 127.0.0.1, while MIGRATIONS migrations run (their clone tasks go to the
# simulated agents, which report progress and never finish).
#
# Measures the API latency the agents see (p50, p99, max; long polls left
# out: their length is the wait for a task), the server's peak RSS and CPU-seconds, and checks that
# every agent was served, no progress the server acknowledged was lost
# (each held task's bytes in the server equal the last progress it
# answered 200 to) and that SQLite never said "database is locked".
#
#   bash bench/fleet.sh                      1,000 agents, 50 migrations, 60 s
#   AGENTS=200 MIGRATIONS=10 SECONDS_RUN=20 bash bench/fleet.sh
#
# Writes its section of docs/PERFORMANCE.md unless FLEET_NO_DOC=1 (the
# test, tests/t-fleet.sh, runs it small and checks the same things); the
# report is left in $FLEET_DIR/report.json.  Exit 1 when a check fails.
set -euo pipefail
TOP=$(cd "$(dirname "$0")/.." && pwd)
BIN=${FERRY_BIN:-$TOP/bin}
UNIT=${FERRY_UNIT:-$TOP/build/tests}
AGENTS=${AGENTS:-1000}
MIGRATIONS=${MIGRATIONS:-50}
SECONDS_RUN=${SECONDS_RUN:-60}
RAMP=${RAMP:-20}
DIR=${FLEET_DIR:-$(mktemp -d /tmp/ferry-fleet.XXXXXX)}
OUT=${PERF_DOC:-$TOP/docs/PERFORMANCE.md}
export PATH="$BIN:$PATH"
mkdir -p "$DIR"
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true' EXIT
fail() { echo "fleet: FAIL: $*" >&2; exit 1; }

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
URL=http://127.0.0.1:$port
ferry-server --listen "127.0.0.1:$port" --db "$DIR/ferry.db" --http --lease 30 >"$DIR/server.log" 2>&1 &
spid=$!
PIDS+=("$spid")
export FERRY_SERVER=$URL FERRY_TOKEN_FILE=$DIR/operator.token
for _ in $(seq 100); do curl -s -o /dev/null "$URL/v1/hosts" && break; sleep 0.1; done
hdr=$DIR/op.hdr
printf 'Authorization: Bearer %s\n' "$(cat "$FERRY_TOKEN_FILE")" > "$hdr"; chmod 600 "$hdr"
api() { curl -sf -H "@$hdr" "$URL$1"; }

# the server's CPU-seconds (utime + stime of /proc/PID/stat) and RSS
clk=$(getconf CLK_TCK)
cpu() { awk -v c="$clk" '{print ($14 + $15) / c}' "/proc/$spid/stat"; }
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$spid/status"; }
cpu0=$(cpu)
( peak=0; while kill -0 "$spid" 2>/dev/null; do
    r=$(rss_kib 2>/dev/null || echo 0); [ "${r:-0}" -gt "$peak" ] && peak=$r && echo "$peak" > "$DIR/peak_rss"
    n=$(ls "/proc/$spid/task" 2>/dev/null | wc -l); echo "$n" >> "$DIR/threads"
    sleep 0.5; done ) &
PIDS+=($!)

"$UNIT/fleet" --server "$URL" --enroll-token-file "$DIR/enroll.token" --agents "$AGENTS" \
  --seconds "$SECONDS_RUN" --ramp "$RAMP" --prefix sim --out "$DIR/report.json" 2>"$DIR/fleet.err" &
fpid=$!
PIDS+=("$fpid")

# the wave: MIGRATIONS of the hosts, once they reported
for _ in $(seq $((RAMP * 10 + 300))); do
  n=$(api /v1/hosts | jq '.hosts | length')
  [ "$n" -ge "$MIGRATIONS" ] && break
  sleep 0.1
done
{
  printf 'name: wave\nprovider: local\nstore: file://%s/store\nprepare: false\nhosts:\n' "$DIR"
  for ((i = 0; i < MIGRATIONS; i++)); do printf '  - name: sim-%04d\n    format: raw\n' "$i"; done
} > "$DIR/wave.yaml"
ferry blueprint apply "$DIR/wave.yaml" >/dev/null || fail "apply the wave's blueprint"
t_wave=$(date +%s.%N)
for ((i = 0; i < MIGRATIONS; i++)); do
  ferry migrate "sim-$(printf %04d "$i")" --blueprint wave >/dev/null || fail "migrate sim-$i"
done
wave_s=$(echo "$(date +%s.%N) - $t_wave" | bc)

wait "$fpid" || fail "the fleet failed: $(cat "$DIR/fleet.err")"
cpu1=$(cpu)
R=$DIR/report.json
M=$(api /v1/migrations)
running=$(jq '[.migrations[] | select(.phase == "cloning")] | length' <<<"$M")
cpu_s=$(echo "$cpu1 - $cpu0" | bc)
peak=$(cat "$DIR/peak_rss")
threads=$(sort -n "$DIR/threads" | tail -n 1)

# no lost progress: each held task's bytes in the server = the last
# progress it acknowledged
lost=0
jq -c '.held[]' "$R" > "$DIR/held"
while read -r h; do
  task=$(jq .task <<<"$h"); want=$(jq .done_bytes <<<"$h")
  mig=$(jq --argjson t "$task" '[.migrations[] | select(.hostname == "'"$(jq -r .agent <<<"$h")"'")][0].id' <<<"$M")
  got=$(api "/v1/migrations/$mig" | jq --argjson t "$task" '.tasks[] | select(.id == $t) | .done_bytes')
  [ "$got" = "$want" ] || { lost=$((lost + 1)); echo "task $task of migration $mig: server has $got, acknowledged $want" >&2; }
done < "$DIR/held"
held=$(wc -l < "$DIR/held")
locked=$(grep -c 'database is locked' "$DIR/server.log" || true)
failures=$(jq '[.requests[].failed] | add' "$R")

jq '{agents, enrolled, discovered, p50_ms, p99_ms, max_ms, timed_requests, tasks_taken}' "$R"
echo "server: peak RSS $((peak / 1024)) MiB, $cpu_s CPU-s over ${SECONDS_RUN} s, $threads threads at most; $running migrations cloning; $held tasks held, $lost lost; failures $failures; 'database is locked' $locked times"

checks=()
[ "$(jq .enrolled "$R")" = "$AGENTS" ] || checks+=("only $(jq .enrolled "$R") of $AGENTS agents enrolled")
[ "$(jq .discovered "$R")" = "$AGENTS" ] || checks+=("only $(jq .discovered "$R") of $AGENTS agents posted their discovery")
[ "$failures" = 0 ] || checks+=("$failures requests failed: $(jq -c .failures "$R")")
[ "$running" = "$MIGRATIONS" ] || checks+=("$running of $MIGRATIONS migrations are cloning")
[ "$held" = "$MIGRATIONS" ] || checks+=("$held of $MIGRATIONS clone tasks reached an agent")
[ "$lost" = 0 ] || checks+=("$lost tasks lost acknowledged progress")
[ "$locked" = 0 ] || checks+=("SQLite said 'database is locked' $locked times")

if [ "${FLEET_NO_DOC:-0}" != 1 ]; then
  p99=$(jq .p99_ms "$R"); rss_mib=$((peak / 1024))
  goal() { awk -v v="$1" -v g="$2" 'BEGIN {print (v < g) ? "met" : "**not met**"}'; }
  {
    echo "<!-- fleet:begin (bench/fleet.sh writes this section) -->"
    echo "## The control plane under a fleet"
    echo
    echo "\`bash bench/fleet.sh\` ($(date -u +%Y-%m-%d), $(nproc) cores, commit $(git -C "$TOP" rev-parse --short HEAD 2>/dev/null || echo '?')):"
    echo "$AGENTS simulated agents from one process (\`tests/tools/fleet.c\`, one connection each, started over ${RAMP} s)"
    echo "enroll, post their discovery, long-poll for tasks and post progress every 2 s while they hold one,"
    echo "for ${SECONDS_RUN} s, against one ferry-server (plain HTTP on 127.0.0.1, thread per connection), while"
    echo "$MIGRATIONS migrations run (started in ${wave_s%.*} s; their clone tasks go to the simulated agents)."
    echo
    echo "| measure | figure | goal |"
    echo "|---|---|---|"
    echo "| agents enrolled / discovered | $(jq .enrolled "$R") / $(jq .discovered "$R") of $AGENTS | all |"
    echo "| API latency p50 / p99 / max | $(jq '.p50_ms | . * 10 | round / 10' "$R") / $(jq '.p99_ms | . * 10 | round / 10' "$R") / $(jq '.max_ms | round' "$R") ms over $(jq .timed_requests "$R") requests | p99 < 100 ms: $(goal "$p99" 100) |"
    echo "| long polls | $(jq .requests.poll.sent "$R") sent, $(jq .tasks_taken "$R") answered with a task | |"
    for k in enroll discovery progress; do
      echo "| \`$k\` p50 / p99 | $(jq ".requests.$k | \"\\(.p50_ms * 10 | round / 10) / \\(.p99_ms * 10 | round / 10) ms (\\(.timed) timed of \\(.sent))\"" -r "$R") | |"
    done
    echo "| server peak RSS | $rss_mib MiB ($threads threads at most) | < 256 MiB: $(goal "$rss_mib" 256) |"
    echo "| server CPU | $cpu_s CPU-s in ${SECONDS_RUN} s | |"
    echo "| failed requests | $failures | 0 |"
    echo "| acknowledged progress lost | $lost of $held tasks | 0 |"
    echo "| \"database is locked\" | $locked | 0 |"
    echo
    echo "Long polls are not in the latencies: their length is the wait for a task (25 s when none comes),"
    echo "not the server's speed. The server holds one thread and one descriptor per connection:"
    echo "\`--max-connections\` (default 4096) bounds them and the server raises its open-files limit to fit."
    echo
    echo "What this benchmark changed (2026-12-05): the server took at most 256 connections, so with 300 agents"
    echo "44 never got one (their requests hung, no error anywhere); and every wake-up (each task queued, each"
    echo "result) made every waiting poller re-run its heartbeat writes and its claim, a thousand transactions"
    echo "behind the database lock: at 1,000 agents p99 was 444 ms and the server used 10.6 CPU-s. Now a poller"
    echo "writes its heartbeat once per poll and looks again at most once a second however often it is woken."
    echo "<!-- fleet:end -->"
  } > "$DIR/section"
  python3 "$TOP/bench/section.py" fleet "$OUT" "$DIR/section"
  echo "fleet: wrote its section of $OUT" >&2
fi

if [ ${#checks[@]} -gt 0 ]; then
  printf 'fleet: FAIL: %s\n' "${checks[@]}" >&2
  exit 1
fi
echo "fleet: every agent served, no progress lost, no lock errors"
