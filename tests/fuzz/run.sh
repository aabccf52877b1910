#!/bin/bash
# run.sh DIR [HARNESS...] - run each libFuzzer harness built in DIR
# (make fuzz: build-fuzz/fuzz/fuzz_NAME) for FUZZ_SECONDS on a copy of its
# seed corpus tests/fuzz/corpus/NAME/, and print its executions, speed and
# coverage.  A crash, a leak, undefined behaviour, a timeout (-timeout) or
# running out of memory (-rss_limit_mb) fails the run: the input that did
# it is kept in DIR/artifacts/ with the command that replays it.
set -uo pipefail
TOP=$(cd "$(dirname "$0")/../.." && pwd)
dir=${1:?usage: run.sh DIR [HARNESS...]}; shift
secs=${FUZZ_SECONDS:-30}
names=("$@")
if [ ${#names[@]} -eq 0 ]; then
  for f in "$TOP"/tests/fuzz/fuzz_*.c; do n=$(basename "$f" .c); names+=("${n#fuzz_}"); done
fi

# Longest input per harness: room for its largest seed and then some.
max_len() {
  case $1 in
    manifest) echo 4096 ;;
    discovery) echo 16384 ;;
    *) echo 8192 ;;
  esac
}

failed=() total_execs=0 start=$(date +%s)
mkdir -p "$dir/artifacts"
for n in "${names[@]}"; do
  bin=$dir/fuzz_$n seeds=$TOP/tests/fuzz/corpus/$n
  if [ ! -x "$bin" ]; then
    echo "FAIL fuzz_$n: $bin is not built: run make fuzz" >&2; failed+=("$n"); continue
  fi
  if [ ! -d "$seeds" ]; then
    echo "FAIL fuzz_$n: no seed corpus $seeds" >&2; failed+=("$n"); continue
  fi
  work=$(mktemp -d "${TMPDIR:-/tmp}/ferry-fuzz-$n.XXXXXX")
  cp "$seeds"/* "$work/"
  log=$work.log
  # ASAN_OPTIONS: leaks fail the run like crashes (libFuzzer's -detect_leaks)
  ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} \
  UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
  timeout --kill-after=10 $((secs + 60)) \
    "$bin" -max_total_time="$secs" -max_len="$(max_len "$n")" -timeout=10 \
      -rss_limit_mb=2048 -malloc_limit_mb=2048 -detect_leaks=1 \
      -print_final_stats=1 -artifact_prefix="$dir/artifacts/$n-" \
      "$work" >"$log" 2>&1
  rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n1)
  cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -n1)
  corp=$(ls "$work" | wc -l)
  if [ "$rc" -eq 0 ] && [ -n "$execs" ]; then
    printf 'PASS fuzz_%-16s %4ss %10s execs %7s/s  %s  corpus %s\n' \
      "$n" "$secs" "$execs" "$rate" "$cov" "$corp"
    total_execs=$((total_execs + execs))
  else
    failed+=("$n")
    art=$(grep -oE "Test unit written to [^ ]+" "$log" | tail -n1 | cut -d' ' -f5)
    printf 'FAIL fuzz_%-16s exit %s after %s execs\n' "$n" "$rc" "${execs:-?}"
    # the report from its first line (the sanitizer's or libFuzzer's)
    sed -n '/ERROR: \|runtime error/,$p' "$log" | grep -vE '^(#[0-9]+|INFO:)' |
      head -n 40 | sed 's/^/    /'
    grep -q 'ERROR: \|runtime error' "$log" || tail -n 20 "$log" | sed 's/^/    /'
    [ -n "$art" ] && echo "    input kept: $art (replay: $bin $art)"
  fi
  rm -rf "$work" "$log"
done
echo "---- fuzzing: ${#names[@]} harnesses, $total_execs executions, ${#failed[@]} failed in $(( $(date +%s) - start ))s"
[ ${#failed[@]} -eq 0 ] || { echo "failed: ${failed[*]} (see docs/TESTING.md, Fuzzing)"; exit 1; }
