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
  local _cleanup_i
  # a name of its own: an at_exit command may use (and clobber) i
  for ((_cleanup_i = ${#CLEANUP[@]} - 1; _cleanup_i >= 0; _cleanup_i--)); do
    eval "${CLEANUP[_cleanup_i]}" || true
  done
  if [ -n "${KEEP_T:-}" ]; then echo "kept $T" >&2; else rm -rf "$T"; fi
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

# flip_byte FILE OFFSET: invert every bit of one byte in place, so the file
# surely changes (writing a fixed byte is a no-op where it was already there).
flip_byte() {
  python3 - "$1" "$2" <<'PY'
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(int(sys.argv[2])); b = f.read(1)
    if len(b) != 1: sys.exit("flip_byte: %s has no byte at %s" % (sys.argv[1], sys.argv[2]))
    f.seek(int(sys.argv[2])); f.write(bytes([b[0] ^ 0xff]))
PY
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

# start_server [DB] [extra ferry-server args...]: ferry-server on a free
# 127.0.0.1 port; sets SERVER_URL, SERVER_PID, OPERATOR_TOKEN_FILE,
# ENROLL_TOKEN_FILE and exports FERRY_SERVER/FERRY_TOKEN_FILE for the CLI.
# Plain HTTP (--http, loopback only) unless FERRY_TEST_TLS=1: then HTTPS
# with the server's own CA, which SERVER_CA names, SERVER_CA_SHA256 pins
# (make_agent writes it into agent.conf) and curl (CURL_CA_BUNDLE) and the
# CLI (FERRY_CA_FILE) trust.
start_server() {
  local db=${1:-$T/ferry.db} port scheme=http tls=(--http); shift || true
  port=${SERVER_PORT:-$(free_port)}
  if [ "${FERRY_TEST_TLS:-0}" = 1 ]; then scheme=https tls=(); fi
  ferry-server --listen "127.0.0.1:$port" --db "$db" "${tls[@]}" "$@" >>"$T/server.log" 2>&1 &
  SERVER_PID=$!
  at_exit "kill $SERVER_PID 2>/dev/null; wait $SERVER_PID 2>/dev/null"
  SERVER_URL="$scheme://127.0.0.1:$port"
  SERVER_PORT=$port
  OPERATOR_TOKEN_FILE=$(dirname "$db")/operator.token
  ENROLL_TOKEN_FILE=$(dirname "$db")/enroll.token
  export FERRY_SERVER=$SERVER_URL FERRY_TOKEN_FILE=$OPERATOR_TOKEN_FILE
  if [ "$scheme" = https ]; then
    SERVER_CA=$(dirname "$db")/ca.pem
    export CURL_CA_BUNDLE=$SERVER_CA FERRY_CA_FILE=$SERVER_CA
  fi
  wait_for 10 curl -s -o /dev/null "$SERVER_URL/v1/hosts" || fail "ferry-server did not start: $(cat "$T/server.log")"
  if [ "$scheme" = https ]; then
    SERVER_CA_SHA256=sha256:$(openssl x509 -in "$SERVER_CA" -outform DER | sha256sum | cut -d' ' -f1)
  fi
  # curl reads the header from a file: tokens never go on a command line
  printf 'Authorization: Bearer %s\n' "$(cat "$OPERATOR_TOKEN_FILE")" > "$T/operator.hdr"
  chmod 600 "$T/operator.hdr"
}

# api METHOD PATH [curl args]: an operator call; prints the body, sets
# HTTP_STATUS.
api() {
  local m=$1 p=$2; shift 2
  HTTP_STATUS=$(curl -s -o "$T/api.body" -w '%{http_code}' -X "$m" -H "@$T/operator.hdr" "$SERVER_URL$p" "$@")
  cat "$T/api.body"
}

# make_agent NAME ROOT [disk=path ...]: an agent config in $T/agent-NAME/
# (enrollment token copied with mode 0600); prints the config path.
make_agent() {
  local name=$1 root=$2 d; shift 2
  local dir=$T/agent-$name
  mkdir -p "$dir"
  install -m 600 "$ENROLL_TOKEN_FILE" "$dir/enroll.token"
  {
    echo "server = $SERVER_URL"
    [ -z "${SERVER_CA_SHA256:-}" ] || echo "server_ca_sha256 = $SERVER_CA_SHA256"
    echo "enroll_token_file = $dir/enroll.token"
    echo "token_file = $dir/agent.token"
    echo "root = $root"
    echo "poll_wait = 2"
    for d in "$@"; do echo "disk.${d%%=*} = ${d#*=}"; done
  } > "$dir/agent.conf"
  echo "$dir/agent.conf"
}

# start_agent NAME CONFIG: ferry-agent run in the background; sets
# AGENT_PID_<NAME>.
start_agent() {
  local name=$1 conf=$2 pid
  ferry-agent run --config "$conf" >>"$T/agent-$name.log" 2>&1 &
  pid=$!
  at_exit "kill $pid 2>/dev/null; wait $pid 2>/dev/null"
  printf -v "AGENT_PID_$name" '%s' "$pid"
}

# start_clean_agent NAME CONFIG: start_agent as a source server runs it
# (Ansible's unit): an empty environment but PATH and an empty HOME, so no
# cloud variable or ~/.aws; the agent uses grants from the server.
start_clean_agent() {
  local name=$1 conf=$2 pid
  mkdir -p "$T/home-$name"
  env -i PATH="$PATH" HOME="$T/home-$name" \
    ferry-agent run --config "$conf" >>"$T/agent-$name.log" 2>&1 &
  pid=$!
  at_exit "kill $pid 2>/dev/null; wait $pid 2>/dev/null"
  printf -v "AGENT_PID_$name" '%s' "$pid"
}

# no_cloud_credentials NAME: fail unless agent NAME (started with
# start_clean_agent) is running with neither a cloud variable nor a cloud
# secret of this test in its environment or its files.
no_cloud_credentials() {
  local name=$1 pid var s
  var="AGENT_PID_$name"; pid=${!var}
  kill -0 "$pid" 2>/dev/null || fail "agent $name is not running: $(tail -5 "$T/agent-$name.log")"
  if tr '\0' '\n' <"/proc/$pid/environ" | grep -E '^(AWS_|AZURE_|GS_|GOOGLE_)'; then
    fail "agent $name has cloud variables in its environment"
  fi
  for s in "${AWS_SECRET_ACCESS_KEY:-}" "${AZURE_STORAGE_KEY:-}" "${GS_SECRET_ACCESS_KEY:-}"; do
    [ -n "$s" ] || continue
    ! tr '\0' '\n' <"/proc/$pid/environ" | grep -qF -- "$s" ||
      fail "agent $name's environment holds a cloud secret"
    ! grep -rqwF -- "$s" "$T/agent-$name" "$T/home-$name" ||
      fail "agent $name's files hold a cloud secret"
  done
  ! grep -rqE 'AWS_|AZURE_|GS_' "$T/agent-$name" "$T/home-$name" ||
    fail "agent $name's files name cloud variables"
}

# make_root DIR HOSTNAME DISK=SIZE...: a minimal system root for discovery.
make_root() {
  local dir=$1 host=$2 d; shift 2
  mkdir -p "$dir/etc" "$dir/proc/sys/kernel"
  echo "$host" > "$dir/proc/sys/kernel/hostname"
  printf 'ID=debian\nVERSION_ID="12"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n' > "$dir/etc/os-release"
  for d in "$@"; do
    mkdir -p "$dir/sys/block/${d%%=*}"
    echo $(( ${d#*=} / 512 )) > "$dir/sys/block/${d%%=*}/size"
  done
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
