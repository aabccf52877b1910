#!/bin/bash
# Grants: no cloud credentials on source servers.  Agents started with an
# empty environment (env -i: PATH and an empty HOME only) migrate their
# disks through ferry-server into Swift's S3 API and into azurite, every
# object written or read with a short-lived grant the server signed for
# that one key; the server alone holds the keys.  A grant that expired on
# the way is renewed and nothing is sent twice; a grant used for another
# key, another method or another payload is refused by the store; an
# agent gets no grant for another host's task, for a key outside its
# image, or to delete.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/servers.sh"
requires curl jq python3
AZ=$TOP/tests/azcli.py
TOOL=${FERRY_UNIT:-$TOP/build/tests}/store-tool

swift_start
azurite_start
"$AZ" mkcontainer ferry >/dev/null || fail "cannot create container ferry"
mkdir -p "$T/state"
start_server "$T/state/ferry.db" --lease 10

# an agent as a source server runs it under Ansible's unit: no cloud
# variables, a HOME without ~/.aws
start_clean_agent() {
  local name=$1 conf=$2 pid
  mkdir -p "$T/home-$name"
  env -i PATH="$PATH" HOME="$T/home-$name" \
    ferry-agent run --config "$conf" >>"$T/agent-$name.log" 2>&1 &
  pid=$!
  at_exit "kill $pid 2>/dev/null; wait $pid 2>/dev/null"
  printf -v "AGENT_PID_$name" '%s' "$pid"
}

# no_credentials NAME: neither the agent's environment nor its files hold
# a cloud variable or secret
no_credentials() {
  local name=$1 pid var
  var="AGENT_PID_$name"; pid=${!var}
  kill -0 "$pid" || fail "agent $name is not running: $(tail -5 "$T/agent-$name.log")"
  if tr '\0' '\n' <"/proc/$pid/environ" | grep -E '^(AWS_|AZURE_|GS_|GOOGLE_)'; then
    fail "agent $name has cloud variables in its environment"
  fi
  for s in "$AWS_SECRET_ACCESS_KEY" "$AZURE_STORAGE_KEY"; do
    ! tr '\0' '\n' <"/proc/$pid/environ" | grep -qF -- "$s" ||
      fail "agent $name's environment holds a cloud secret"
    ! grep -rqwF -- "$s" "$T/agent-$name" "$T/home-$name" ||
      fail "agent $name's files hold a cloud secret"
  done
  ! grep -rqE 'AWS_|AZURE_|GS_' "$T/agent-$name" "$T/home-$name" ||
    fail "agent $name's files name cloud variables"
}

make_disk "$T/web01.img" 24M random
make_disk "$T/db01.img" 20M sparse
make_root "$T/root-web01" web01 sda=$((24 << 20))
make_root "$T/root-db01" db01 sda=$((20 << 20))
start_clean_agent web01 "$(make_agent web01 "$T/root-web01" "sda=$T/web01.img")"
start_clean_agent db01 "$(make_agent db01 "$T/root-db01" "sda=$T/db01.img")"
wait_for 20 eval '[ "$(api GET /v1/hosts | jq ".hosts | length")" = 2 ]' ||
  fail "agents did not enroll and post discovery: $(cat "$T"/agent-*.log)"
no_credentials web01
no_credentials db01

cat > "$T/s3.yaml" <<YAML
name: s3wave
provider: local
store: s3://test/g
options:
  chunk_size: 1M
hosts:
  - name: web01
    format: raw
YAML
cat > "$T/az.yaml" <<YAML
name: azwave
provider: local
store: azure://ferry/g
options:
  chunk_size: 1M
hosts:
  - name: db01
    format: raw
YAML
ferry blueprint apply "$T/s3.yaml" >/dev/null || fail "apply s3wave"
ferry blueprint apply "$T/az.yaml" >/dev/null || fail "apply azwave"
ferry migrate web01 --blueprint s3wave >/dev/null || fail "migrate web01"
ferry migrate db01 --blueprint azwave >/dev/null || fail "migrate db01"
timeout 120 ferry job watch 1 >"$T/w1.out" 2>&1 || fail "web01 (S3) did not finish: $(ferry job show 1; tail -5 "$T/agent-web01.log")"
timeout 120 ferry job watch 2 >"$T/w2.out" 2>&1 || fail "db01 (Azure) did not finish: $(ferry job show 2; tail -5 "$T/agent-db01.log")"
api GET /v1/migrations/1 | jq -e '.tasks[] | select(.kind == "clone") | .spec.store_access == "grant"' >/dev/null ||
  fail "the clone task of web01 does not use grants: $(api GET /v1/migrations/1 | jq '.tasks[0].spec')"
"$TOOL" get s3://test/g/web01 sda.raw | cmp - "$T/web01.img" || fail "web01's migrated disk differs"
"$TOOL" get azure://ferry/g/db01 sda.raw | cmp - "$T/db01.img" || fail "db01's migrated disk differs"
# every chunk went in with a presigned URL (X-Amz-Signature in its query),
# none with an Authorization header of the agent's own
n=$(grep -cE 'PUT /test/g/web01/sda/chunks/[0-9a-f]{64}' "$S3_ACCESS_LOG" || true)
[ "$n" -ge 24 ] || fail "only $n chunk PUTs of web01 in the S3 access log"
grep -E 'PUT /test/g/web01/sda/chunks/' "$S3_ACCESS_LOG" | grep -v 'X-Amz-Signature' &&
  fail "a chunk PUT of web01 without a grant"
no_credentials web01
no_credentials db01
ok "two agents without any cloud credential migrate a host each through S3 (Swift) and Azure (azurite) with grants: byte-identical"
