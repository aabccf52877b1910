#!/bin/bash
# run.sh [PATTERN...] - every test: C unit tests, then shell tests
# (tests/t-*.sh); with patterns, the tests whose name contains any of them.
# Under CI=true a skipped test counts as a failure: CI installs everything.
# FERRY_TEST_EXCLUDE="t-a t-b" leaves those out (by exact name) and says so:
# the sanitizer pass uses it for the tests whose time is qemu's and
# Ansible's, not ferry's (Makefile, SANITIZE_EXCLUDE).
set -uo pipefail
TOP=$(cd "$(dirname "$0")/.." && pwd)
FERRY_BIN=${FERRY_BIN:-$TOP/bin}
FERRY_UNIT=${FERRY_UNIT:-$TOP/build/tests}
export FERRY_BIN
patterns=("$@")
pass=0 failed=() skipped=()
start=$(date +%s)

selected() {
  local p
  for p in ${FERRY_TEST_EXCLUDE:-}; do
    [[ $name == "$p" ]] && { printf 'OUT  %-28s not in this pass (FERRY_TEST_EXCLUDE)\n' "$name"; return 1; }
  done
  [[ ${#patterns[@]} -eq 0 ]] && return 0
  for p in "${patterns[@]}"; do [[ $name == *"$p"* ]] && return 0; done
  return 1
}

run_one() {  # name cmd...
  local name=$1 rc t0 secs log limit=${FERRY_TEST_TIMEOUT:-900} own; shift
  selected "$name" || return 0
  # a test whose first minutes build a cached fixture (a test guest) may
  # ask for more with a line "# ferry-test-timeout: SECONDS"
  if [[ -z ${FERRY_TEST_TIMEOUT:-} && ${2:-} == *.sh ]]; then
    own=$(sed -n 's/^# ferry-test-timeout: \([0-9]\+\)$/\1/p' "$2" | head -1)
    [[ -z $own ]] || limit=$own
  fi
  log=$(mktemp); t0=$(date +%s)
  timeout --kill-after=10 "$limit" "$@" >"$log" 2>&1; rc=$?
  secs=$(( $(date +%s) - t0 ))
  case $rc in
    0) pass=$((pass + 1)); printf 'PASS %-28s %4ss\n' "$name" "$secs" ;;
    77) skipped+=("$name"); printf 'SKIP %-28s %s\n' "$name" "$(grep -m1 SKIP "$log")" ;;
    *) failed+=("$name"); printf 'FAIL %-28s %4ss (exit %s)\n' "$name" "$secs" "$rc"; sed 's/^/    /' "$log" | tail -n 40 ;;
  esac
  [[ ${FERRY_TEST_VERBOSE:-} ]] && sed 's/^/    /' "$log"
  rm -f "$log"
}

for t in "$FERRY_UNIT"/test_*; do
  [[ -x $t && $t != *.d ]] && run_one "unit/$(basename "$t")" "$t"
done
for t in "$TOP"/tests/t-*.sh; do
  run_one "$(basename "$t" .sh)" bash "$t"
done

echo "---- $pass passed, ${#failed[@]} failed, ${#skipped[@]} skipped in $(( $(date +%s) - start ))s"
[[ ${#failed[@]} -eq 0 ]] || { echo "failed: ${failed[*]}"; exit 1; }
if [[ ${#skipped[@]} -gt 0 && ${CI:-} == true ]]; then
  echo "skipped under CI (counts as failure): ${skipped[*]}"; exit 1
fi
exit 0
