#!/bin/bash
# run.sh [PATTERN...] - every test: C unit tests, then shell tests
# (tests/t-*.sh); with patterns, the tests whose name contains any of them.
# Under CI=true a skipped test counts as a failure: CI installs everything.
# FERRY_TEST_EXCLUDE="t-a t-b" leaves those out (by exact name) and says so:
# the sanitizer pass uses it for the tests whose time is qemu's and
# Ansible's, not ferry's (Makefile, SANITIZE_EXCLUDE).
# FERRY_TEST_JOBS=N runs up to N shell tests at once (default 1; `make
# check` uses 2).  Every test starts its own servers on free ports in its
# own directory, so they do not meet; a test whose figures or timers
# depend on having the machine to itself (it boots guests, measures
# time, or runs on a short lease) says so with a line
# "# ferry-test-alone: WHY" and runs with nothing beside it.  Unit tests
# always run one at a time.
set -uo pipefail
TOP=$(cd "$(dirname "$0")/.." && pwd)
FERRY_BIN=${FERRY_BIN:-$TOP/bin}
FERRY_UNIT=${FERRY_UNIT:-$TOP/build/tests}
export FERRY_BIN
patterns=("$@")
pass=0 failed=() skipped=()
start=$(date +%s)
jobs_max=${FERRY_TEST_JOBS:-1}
[[ $jobs_max =~ ^[1-9][0-9]*$ ]] || { echo "run.sh: FERRY_TEST_JOBS must be a positive number, not '$jobs_max'" >&2; exit 2; }
R=$(mktemp -d /tmp/ferry-run-XXXXXX)
declare -A running=()   # pid -> test name
# stopped early: each running test's timeout passes the signal on to it
trap 'for p in "${!running[@]}"; do pkill -TERM -P "$p"; done; wait; rm -rf "$R"' EXIT

selected() {
  local p
  for p in ${FERRY_TEST_EXCLUDE:-}; do
    [[ $name == "$p" ]] && { printf 'OUT  %-28s not in this pass (FERRY_TEST_EXCLUDE)\n' "$name"; return 1; }
  done
  [[ ${#patterns[@]} -eq 0 ]] && return 0
  for p in "${patterns[@]}"; do [[ $name == *"$p"* ]] && return 0; done
  return 1
}

# exec_one NAME LIMIT CMD...: runs the test, leaves its output in
# $R/NAME.log and "rc seconds" in $R/NAME.rc
exec_one() {
  local f=$R/${1//\//_} limit=$2 t0 rc; shift 2
  t0=$(date +%s)
  timeout --kill-after=10 "$limit" "$@" >"$f.log" 2>&1; rc=$?
  echo "$rc $(( $(date +%s) - t0 ))" >"$f.rc"
}

report() {  # NAME
  local name=$1 rc secs f=$R/${1//\//_}
  local log=$f.log
  read -r rc secs <"$f.rc" 2>/dev/null || { rc=125 secs=?; }
  case $rc in
    0) pass=$((pass + 1)); printf 'PASS %-28s %4ss\n' "$name" "$secs" ;;
    77) skipped+=("$name"); printf 'SKIP %-28s %s\n' "$name" "$(grep -m1 SKIP "$log")" ;;
    *) failed+=("$name"); printf 'FAIL %-28s %4ss (exit %s)\n' "$name" "$secs" "$rc"; sed 's/^/    /' "$log" | tail -n 40 ;;
  esac
  [[ ${FERRY_TEST_VERBOSE:-} ]] && sed 's/^/    /' "$log"
  rm -f "$log" "$f.rc"
}

reap_one() {  # waits for one running test and reports it
  local pid
  wait -n -p pid "${!running[@]}"
  [[ -n ${pid:-} && -n ${running[$pid]:-} ]] || return 0
  report "${running[$pid]}"
  unset "running[$pid]"
}

run_one() {  # name cmd...
  local name=$1 limit=${FERRY_TEST_TIMEOUT:-900} own alone=; shift
  selected "$name" || return 0
  # a test whose first minutes build a cached fixture (a test guest) may
  # ask for more with a line "# ferry-test-timeout: SECONDS"
  if [[ ${2:-} == *.sh ]]; then
    if [[ -z ${FERRY_TEST_TIMEOUT:-} ]]; then
      own=$(sed -n 's/^# ferry-test-timeout: \([0-9]\+\)$/\1/p' "$2" | head -1)
      [[ -z $own ]] || limit=$own
    fi
    grep -q '^# ferry-test-alone:' "$2" && alone=1
  else
    alone=1   # unit tests
  fi
  if [[ $jobs_max -eq 1 || -n $alone ]]; then
    while [[ ${#running[@]} -gt 0 ]]; do reap_one; done
    exec_one "$name" "$limit" "$@"
    report "$name"
    return 0
  fi
  while [[ ${#running[@]} -ge $jobs_max ]]; do reap_one; done
  exec_one "$name" "$limit" "$@" &
  running[$!]=$name
}

for t in "$FERRY_UNIT"/test_*; do
  [[ -x $t && $t != *.d ]] && run_one "unit/$(basename "$t")" "$t"
done
for t in "$TOP"/tests/t-*.sh; do
  run_one "$(basename "$t" .sh)" bash "$t"
done
while [[ ${#running[@]} -gt 0 ]]; do reap_one; done

echo "---- $pass passed, ${#failed[@]} failed, ${#skipped[@]} skipped in $(( $(date +%s) - start ))s"
[[ ${#failed[@]} -eq 0 ]] || { echo "failed: ${failed[*]}"; exit 1; }
if [[ ${#skipped[@]} -gt 0 && ${CI:-} == true ]]; then
  echo "skipped under CI (counts as failure): ${skipped[*]}"; exit 1
fi
exit 0
