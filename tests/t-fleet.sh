#!/bin/bash
# The control plane under a fleet, small: 200 simulated agents from one
# process (tests/tools/fleet.c) enroll, post their discovery, long-poll and
# post progress every 2 s while 10 migrations run on them, for 20 s
# (bench/fleet.sh, which runs 1,000 agents and 50 migrations for
# docs/PERFORMANCE.md).  Every agent is enrolled and discovered, no request
# fails (none waits on a connection the server does not take), every
# migration's clone task reaches its agent, the server keeps every
# progress it acknowledged, and SQLite never says "database is locked".
# Latency is the benchmark's to measure, not this test's.
. "$(dirname "$0")/lib.sh"
requires curl jq bc
export FERRY_UNIT=${FERRY_UNIT:-$TOP/build/tests}
[ -x "$FERRY_UNIT/fleet" ] || fail "no $FERRY_UNIT/fleet (make unit builds it)"
AGENTS=200 MIGRATIONS=10 SECONDS_RUN=20 RAMP=5 FLEET_NO_DOC=1 FLEET_DIR=$T/fleet \
  bash "$TOP/bench/fleet.sh" > "$T/fleet.out" 2>&1 || fail "$(tail -n 20 "$T/fleet.out")"
grep '^server:' "$T/fleet.out" | sed 's/^/  /'
ok "200 agents and 10 migrations: $(jq -r '"\(.enrolled) enrolled, \(.discovered) discovered, p99 \(.p99_ms | round) ms"' "$T/fleet/report.json"); every request served, no acknowledged progress lost, no lock errors"
