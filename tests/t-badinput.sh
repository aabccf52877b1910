#!/bin/bash
# Bad input gets one clear line on stderr (what, where, what to do) and a
# non-zero exit: never a crash, never a silent success.
. "$(dirname "$0")/lib.sh"

make_disk "$T/d.img" 4M random
expect_fail "unknown store scheme 'ftp'" ferry-agent clone --source "$T/d.img" --to ftp://h/x
grep -q "file://" "$T/err" || fail "scheme message lacks the choices"
expect_fail "not a store URL" ferry-agent clone --source "$T/d.img" --to "$T/plainpath"
expect_fail "cannot open source $T/missing.img: No such file" \
  ferry-agent clone --source "$T/missing.img" --to "file://$T/s"
expect_fail "neither a regular file nor a block device" ferry-agent clone --source "$T" --to "file://$T/s"
expect_fail "unknown format 'vhdx'" ferry-convert --from "file://$T/s" --format vhdx --to "$T/o"
expect_fail "no image at file://$T/nothing" ferry-convert --from "file://$T/nothing" --format raw --to "$T/o"
expect_fail "--source and --to are required" ferry-agent clone --source "$T/d.img"
expect_fail "--chunk-size must be a power of two" ferry-agent clone --source "$T/d.img" --to "file://$T/s" --chunk-size 3M
expect_fail "unknown compression 'lz4'" ferry-agent clone --source "$T/d.img" --to "file://$T/s" --compress lz4
expect_fail "unknown command 'clonee'" ferry-agent clonee
ok "unknown schemes, formats, commands, options and missing sources are refused clearly"

# permissions, checked as an unprivileged user
if [ "$(id -u)" = 0 ] && id nobody >/dev/null 2>&1; then
  as_nobody() { setpriv --reuid=nobody --regid=nogroup --clear-groups -- "$@"; }
  chmod 755 "$T"; mkdir -m 755 "$T/rootonly"; cp "$T/d.img" "$T/secret.img"; chmod 600 "$T/secret.img"
  expect_fail "cannot open source $T/secret.img: Permission denied: run as root" \
    as_nobody "$FERRY_BIN/ferry-agent" clone --source "$T/secret.img" --to "file://$T/rootonly/s"
  chmod 644 "$T/secret.img"
  expect_fail "check that this user may write the store directory" \
    as_nobody "$FERRY_BIN/ferry-agent" clone --source "$T/secret.img" --to "file://$T/rootonly/s"
  ferry-agent clone --source "$T/d.img" --to "file://$T/img" -q >/dev/null
  chmod -R a+rX "$T/img"
  expect_fail "check that this user may write the store directory" \
    as_nobody "$FERRY_BIN/ferry-convert" --from "file://$T/img" --format raw --to "$T/rootonly/out.raw"
  [ -z "$(ls -A "$T/rootonly")" ] || fail "something was left in rootonly: $(ls -A "$T/rootonly")"
  ok "unreadable sources and unwritable stores or destinations name the path and the fix"
else
  echo "SKIP: permission cases need root and a 'nobody' user"; exit 77
fi

# a server that is not there: bounded retries, then one clear line
port=$(free_port)
mkdir -p "$T/agent"; echo 0123456789abcdef0123 > "$T/agent/enroll.token"; chmod 600 "$T/agent/enroll.token"
printf 'enroll_token_file = %s\ntoken_file = %s\n' "$T/agent/enroll.token" "$T/agent/agent.token" > "$T/agent/agent.conf"
expect_fail "cannot enroll with http://127.0.0.1:$port" \
  timeout 120 ferry-agent discover --config "$T/agent/agent.conf" --server "http://127.0.0.1:$port"
grep -q "Couldn't connect" "$T/err" || fail "the cause is not named: $(cat "$T/err")"
ok "posting discovery to a server that is down fails after bounded retries, naming the server"
expect_fail "this agent is not enrolled and the enrollment token file /etc/ferry/enroll.token cannot be read" \
  ferry-agent discover --server "http://127.0.0.1:$port" --config /dev/null
ok "an agent without its enrollment token says which file is missing"
