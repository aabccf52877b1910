# lib.sh - sourced by every shell test: temp dir, cleanup, assertions.
# A test states its behaviours with `ok`, stops at the first `fail`, and
# exits 77 through `requires` when a tool is missing (run.sh turns a skip
# into a failure under CI, which installs everything).
set -euo pipefail
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FERRY_BIN=${FERRY_BIN:-$TOP/bin}
export PATH="$FERRY_BIN:$PATH"
T=$(mktemp -d "${TMPDIR:-/tmp}/ferry-test-XXXXXX")
CLEANUP=()
cleanup() {
  local i
  for ((i = ${#CLEANUP[@]} - 1; i >= 0; i--)); do eval "${CLEANUP[i]}" || true; done
  rm -rf "$T"
}
trap cleanup EXIT
at_exit() { CLEANUP+=("$1"); }

fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok - $*"; }
requires() {
  local c
  for c in "$@"; do
    command -v "$c" >/dev/null 2>&1 || { echo "SKIP: $c is not installed (scripts/setup.sh test installs it)"; exit 77; }
  done
}

# expect_fail NEEDLE CMD...: CMD must exit non-zero (not crash) and print
# exactly one line on stderr that contains NEEDLE.
expect_fail() {
  local needle=$1 rc=0; shift
  "$@" >"$T/out" 2>"$T/err" || rc=$?
  [ "$rc" -ne 0 ] || fail "expected failure from: $* (it succeeded)"
  [ "$rc" -lt 128 ] || fail "crashed (exit $rc): $*; stderr: $(cat "$T/err")"
  grep -qF -- "$needle" "$T/err" || fail "stderr of '$*' lacks '$needle': $(cat "$T/err")"
  [ "$(grep -c . "$T/err")" -eq 1 ] || fail "stderr of '$*' is not one line: $(cat "$T/err")"
}

# json FILE-OR-STRING FILTER: jq -r on a JSON document.
json() { if [ -f "$1" ]; then jq -r "$2" "$1"; else jq -r "$2" <<<"$1"; fi; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# wait_for SECONDS CMD...: poll CMD until it succeeds (bounded).
wait_for() {
  local secs=$1 i; shift
  for ((i = 0; i < secs * 10; i++)); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  return 1
}

# start_server: ferry-server on a free 127.0.0.1 port; sets SERVER_URL.
start_server() {
  local db=${1:-$T/ferry.db} port
  port=$(free_port)
  ferry-server --listen "127.0.0.1:$port" --db "$db" >"$T/server.log" 2>&1 &
  SERVER_PID=$!
  at_exit "kill $SERVER_PID 2>/dev/null; wait $SERVER_PID 2>/dev/null"
  SERVER_URL="http://127.0.0.1:$port"
  wait_for 10 curl -sf "$SERVER_URL/v1/hosts" || fail "ferry-server did not start: $(cat "$T/server.log")"
}

# make_disk PATH SIZE KIND: all-zero | random | sparse (random islands).
make_disk() {
  local path=$1 size=$2 kind=$3
  rm -f "$path"; truncate -s "$size" "$path"
  case $kind in
    zero) ;;
    random) head -c "$size" /dev/urandom | dd of="$path" conv=notrunc status=none ;;
    sparse)
      local mib=$(( $(stat -c %s "$path") / 1048576 )) o
      for o in 1 7 8 $((mib / 2)) $((mib - 2)); do
        [ "$o" -ge 0 ] && [ "$o" -lt "$mib" ] || continue
        head -c 300000 /dev/urandom | dd of="$path" bs=1 seek=$((o * 1048576 + 4096)) conv=notrunc status=none
      done ;;
    *) fail "make_disk: unknown kind $kind" ;;
  esac
}
