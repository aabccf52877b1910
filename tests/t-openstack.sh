#!/bin/bash
# The openstack target driver against real Keystone and Glance (Debian's,
# on 127.0.0.1 with SQLite), and a contract server for Neutron and Nova
# (tests/openstack_contract.py validates every request with Neutron's and
# Nova's own models; the real services cannot run here: Neutron's schema
# migrations refuse SQLite ("No support for ALTER of constraints in SQLite
# dialect"), and Nova needs RabbitMQ, Placement, a scheduler, a conductor
# and a compute service besides, and Neutron to bind its ports).
#
# A source disk is cloned by the agent, converted to qcow2 and created in
# the cloud: the network, subnet and security group (exactly the
# blueprint's allow rules) and a port with the host's IP, a Glance image
# holding the converted bytes (Glance's sha512 against the object), a
# server with the flavor.  1: a wrong password fails fast naming
# OS_PASSWORD; 2: a test launch (credentials from clouds.yaml) whose
# server is killed mid-upload: the restarted one finishes without making
# anything twice; 3: ferry target cleanup deletes its server, port and
# image only; 4: the cutover migration finds the blueprint's network;
# 5: import: object, Glance web-downloading the raw object from Swift's
# S3 API.  The openstack CLI (python3-openstackclient), reading the same
# clouds.yaml, is the independent client.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/servers.sh"
requires jq curl qemu-img keystone-manage keystone-wsgi-public glance-api glance-manage sha512sum
[ -x /usr/bin/openstack ] || { echo "SKIP: /usr/bin/openstack (python3-openstackclient) is not installed (scripts/setup.sh test)"; exit 77; }
/usr/bin/python3 -c 'import neutron.extensions.securitygroup, nova.api.validation' 2>/dev/null ||
  { echo "SKIP: python3-neutron and python3-nova (the contract server's models) are not installed (scripts/setup.sh test)"; exit 77; }
T0=$(date +%s)

# ports of the openstack range (docs: 18700-18799)
KS_PORT=18700 GL_PORT=18701 CT_PORT=18702
KS=http://127.0.0.1:$KS_PORT GL=http://127.0.0.1:$GL_PORT CT=http://127.0.0.1:$CT_PORT
for p in $KS_PORT $GL_PORT $CT_PORT; do
  ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || fail "port $p is taken: another t-openstack run?"
done

os_conf() {  # DIR: keystone.conf and glance-api.conf rooted at DIR
  mkdir -p "$1/log" "$1/images" "$1/staging" "$1/tasks"
  cat >"$1/keystone.conf" <<EOF
[DEFAULT]
log_dir = $1/log
log_file = keystone.log
[database]
connection = sqlite:///$1/keystone.db
[token]
provider = fernet
[fernet_tokens]
key_repository = $1/fernet-keys
[credential]
key_repository = $1/credential-keys
EOF
  cat >"$1/glance-api.conf" <<EOF
[DEFAULT]
bind_host = 127.0.0.1
bind_port = $GL_PORT
workers = 0
log_dir = $1/log
log_file = glance-api.log
enabled_backends = local:file
[database]
connection = sqlite:///$1/glance.db
[glance_store]
default_backend = local
[local]
filesystem_store_datadir = $1/images/
[os_glance_staging_store]
filesystem_store_datadir = $1/staging/
[os_glance_tasks_store]
filesystem_store_datadir = $1/tasks/
[paste_deploy]
flavor = keystone
config_file = /etc/glance/glance-api-paste.ini
[keystone_authtoken]
www_authenticate_uri = $KS
auth_url = $KS
auth_type = password
project_domain_name = Default
user_domain_name = Default
project_name = service
username = glance
password = glancepw
[oslo_policy]
enforce_new_defaults = false
[import_filtering_opts]
# web-download (import: object) fetches from the S3 server's port
allowed_ports = [${S3_PORT:-80}]
# and from 127.0.0.1, which Glance refuses unless allowed (SSRF guard)
allowed_hosts = [127.0.0.1]
EOF
}

PIDS=()
spawn() {  # NAME CMD...: in its own session, logged in $T/NAME.log
  local name=$1; shift
  setsid "$@" >>"$T/$name.log" 2>&1 </dev/null &
  PIDS+=($!)
  at_exit "kill -TERM $! 2>/dev/null; sleep 0.3; kill -KILL $! 2>/dev/null; wait $! 2>/dev/null"
}
wait_http() {  # NAME URL SECONDS
  wait_for "$3" curl -s -o /dev/null --max-time 2 "$2" || fail "$1 did not answer at $2 within $3 s: $(tail -n 20 "$T/$1.log")"
}
keystone_start() {  # DIR
  OS_KEYSTONE_CONFIG_FILES=$1/keystone.conf spawn keystone keystone-wsgi-public --host 127.0.0.1 --port $KS_PORT
}

# Keystone's schema, bootstrap and users take ~50 s on 2 cores: made once
# per package version into FERRY_TOOLS_DIR, then copied (~10 s per run)
VERSIONS=$(dpkg-query -W -f='${Version}' keystone glance-api | md5sum | cut -c1-12)
TOOLS=${FERRY_TOOLS_DIR:-/var/cache/ferry}
TEMPLATE=$TOOLS/openstack-$VERSIONS
if [ ! -f "$TEMPLATE/ready" ]; then
  { mkdir -p "$TOOLS" && [ -w "$TOOLS" ]; } 2>/dev/null || TEMPLATE=$T/os-template
  tmp=$TEMPLATE.tmp.$$
  rm -rf "$tmp"; mkdir -p "$tmp"; os_conf "$tmp"
  at_exit "rm -rf '$tmp'"
  {
    keystone-manage --config-file "$tmp/keystone.conf" db_sync &&
    keystone-manage --config-file "$tmp/keystone.conf" fernet_setup --keystone-user root --keystone-group root &&
    keystone-manage --config-file "$tmp/keystone.conf" credential_setup --keystone-user root --keystone-group root &&
    keystone-manage --config-file "$tmp/keystone.conf" bootstrap --bootstrap-password adminpw \
      --bootstrap-admin-url "$KS/v3/" --bootstrap-internal-url "$KS/v3/" \
      --bootstrap-public-url "$KS/v3/" --bootstrap-region-id RegionOne &&
    glance-manage --config-file "$tmp/glance-api.conf" db_sync
  } >"$T/template.log" 2>&1 || fail "cannot bootstrap Keystone/Glance: $(tail -5 "$T/template.log")"
  # concurrent writes need WAL, else "database is locked" (HTTP 500)
  /usr/bin/python3 -c 'import sqlite3, sys
for db in sys.argv[1:]: sqlite3.connect(db).execute("PRAGMA journal_mode=WAL")' "$tmp/keystone.db" "$tmp/glance.db"
  keystone_start "$tmp"
  wait_http keystone "$KS/v3" 60
  # service users, the migrating user (role member on its project: what
  # docs/TARGETS.md asks for) and the catalog: Glance and the contract
  # server's Neutron and Nova
  /usr/bin/python3 - "$KS" "$GL" "$CT" <<'PY' >>"$T/template.log" 2>&1 || fail "cannot set up Keystone: $(tail -5 "$T/template.log")"
import json, sys, urllib.request
K, G, C = sys.argv[1:4]
def call(method, path, body=None, token=None):
    req = urllib.request.Request(K + path, method=method,
        data=json.dumps(body).encode() if body is not None else None)
    req.add_header("Content-Type", "application/json")
    if token: req.add_header("X-Auth-Token", token)
    with urllib.request.urlopen(req) as r:
        return r.headers.get("X-Subject-Token"), json.loads(r.read() or b"{}")
tok, _ = call("POST", "/v3/auth/tokens", {"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "admin", "domain": {"id": "default"}, "password": "adminpw"}}}, "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}})
def role(name):
    return call("GET", "/v3/roles?name=" + name, None, tok)[1]["roles"][0]["id"]
def project_user(project, user, pw, r):
    _, p = call("POST", "/v3/projects", {"project": {"name": project, "domain_id": "default"}}, tok)
    _, u = call("POST", "/v3/users", {"user": {"name": user, "domain_id": "default", "password": pw}}, tok)
    call("PUT", "/v3/projects/%s/users/%s/roles/%s" % (p["project"]["id"], u["user"]["id"], role(r)), None, tok)
project_user("service", "glance", "glancepw", "admin")
project_user("migrations", "ferry", "ferrypw", "member")
for typ, name, url in (("image", "glance", G), ("network", "neutron", C + "/network"),
                       ("compute", "nova", C + "/compute/v2.1")):
    _, s = call("POST", "/v3/services", {"service": {"type": typ, "name": name}}, tok)
    for iface in ("public", "internal"):
        call("POST", "/v3/endpoints", {"endpoint": {"service_id": s["service"]["id"], "interface": iface,
                                                    "region_id": "RegionOne", "url": url}}, tok)
print("keystone ready")
PY
  kill -TERM "${PIDS[-1]}"; wait "${PIDS[-1]}" 2>/dev/null || true
  rm -rf "$tmp/log"/*
  touch "$tmp/ready"
  rm -rf "$TEMPLATE"; mv "$tmp" "$TEMPLATE" 2>/dev/null || fail "cannot keep the Keystone/Glance template in $TEMPLATE"
  ok "Keystone and Glance bootstrapped once into $TEMPLATE ($(( $(date +%s) - T0 )) s)"
fi

# the S3 server of the import: object run (section 5), before Glance's
# configuration names its port
swift_start
OS=$T/os
mkdir -p "$OS"; cp -a "$TEMPLATE/." "$OS/"; rm -f "$OS/ready"; os_conf "$OS"
keystone_start "$OS"
spawn glance glance-api --config-file "$OS/glance-api.conf"
: >"$T/contract.log"
spawn contract /usr/bin/python3 "$TOP/tests/openstack_contract.py" $CT_PORT "$KS" "$GL" "$T/contract.log"
wait_http keystone "$KS/v3" 60
wait_http glance "$GL/versions" 60
wait_for 30 grep -q READY "$T/contract.log" || fail "the contract server did not start: $(tail "$T/contract.log")"
ok "Keystone, Glance and the Neutron/Nova contract server are up ($(( $(date +%s) - T0 )) s)"

# the credentials, by OpenStack's convention: clouds.yaml in the server's
# home (the CLI below reads the same file)
mkdir -p "$T/home/.config/openstack"
cat >"$T/home/.config/openstack/clouds.yaml" <<EOF
clouds:
  ferrytest:
    auth:
      auth_url: $KS/v3
      username: ferry
      password: ferrypw
      project_name: migrations
      user_domain_name: Default
      project_domain_name: Default
    region_name: RegionOne
    interface: public
    identity_api_version: 3
EOF
chmod 600 "$T/home/.config/openstack/clouds.yaml"
osc() { HOME=$T/home OS_CLOUD=ferrytest /usr/bin/openstack "$@"; }
# a token of the migrating user for curl (in a header file, not argv)
token_header() {
  curl -s -i -H 'Content-Type: application/json' -d @- "$KS/v3/auth/tokens" <<'EOF' |
{"auth":{"identity":{"methods":["password"],"password":{"user":{"name":"ferry","domain":{"id":"default"},"password":"ferrypw"}}},"scope":{"project":{"name":"migrations","domain":{"id":"default"}}}}}
EOF
    awk 'tolower($1) == "x-subject-token:" {sub(/\r$/, ""); print "X-Auth-Token: " $2}' >"$T/token.hdr"
  [ -s "$T/token.hdr" ] || fail "cannot get a Keystone token for the checks"
}
token_header
oscurl() { curl -s -H "@$T/token.hdr" "$@"; }

# ---- the source: one disk of random data (24 MiB, a few seconds of upload
# at the rate limit used below)
make_disk "$T/sda.img" 24M random
make_root "$T/root" web01 sda=$((24 << 20))
mkdir -p "$T/store" "$T/state"

start_server_with() {  # ENV-ASSIGNMENTS...: ferry-server with that environment
  local pid try
  SERVER_PORT=${SERVER_PORT:-$(free_port)}
  # the port of a server just stopped may take a moment to be free
  for ((try = 0; try < 20; try++)); do
    # the server's cloud environment: nothing of the test's but "$@" (env
    # execs ferry-server: SERVER_PID is the server's)
    env -u OS_CLOUD -u OS_AUTH_URL -u OS_USERNAME -u OS_PASSWORD -u OS_PROJECT_NAME \
      "$@" ferry-server --listen "127.0.0.1:$SERVER_PORT" --db "$T/state/ferry.db" --http \
      --lease 3 >>"$T/server.log" 2>&1 &
    SERVER_PID=$!
    pid=$SERVER_PID
    at_exit "kill $pid 2>/dev/null; wait $pid 2>/dev/null"
    sleep 0.5
    kill -0 "$pid" 2>/dev/null && break
  done
  SERVER_URL=http://127.0.0.1:$SERVER_PORT
  export FERRY_SERVER=$SERVER_URL FERRY_TOKEN_FILE=$T/state/operator.token
  wait_for 10 curl -s -o /dev/null "$SERVER_URL/v1/hosts" || fail "ferry-server did not start: $(tail "$T/server.log")"
  printf 'Authorization: Bearer %s\n' "$(cat "$FERRY_TOKEN_FILE")" >"$T/operator.hdr"
  ENROLL_TOKEN_FILE=$T/state/enroll.token
}
api() {
  local m=$1 p=$2; shift 2
  HTTP_STATUS=$(curl -s -o "$T/api.body" -w '%{http_code}' -X "$m" -H "@$T/operator.hdr" "$SERVER_URL$p" "$@")
  cat "$T/api.body"
}

# ---- 1. a wrong password fails fast, naming the variable to check
start_server_with OS_AUTH_URL="$KS/v3" OS_USERNAME=ferry OS_PASSWORD=not-the-password \
  OS_PROJECT_NAME=migrations OS_USER_DOMAIN_NAME=Default OS_PROJECT_DOMAIN_NAME=Default OS_REGION_NAME=RegionOne
conf=$(make_agent web01 "$T/root" "sda=$T/sda.img")
start_agent web01 "$conf"
wait_for 20 eval '[ "$(api GET /v1/hosts | jq ".hosts | length")" = 1 ]' || fail "the agent did not register"

cat >"$T/bp.yaml" <<YAML
name: os-wave
provider: openstack
store: file://$T/store
options:
  chunk_size: 1M
networks:
  - name: tenant
    cidr: 192.168.0.0/16
    allow:
      - {proto: tcp, ports: 22, from: 10.0.0.0/8}
      - {proto: tcp, ports: "8000-8099", from: 0.0.0.0/0}
      - {proto: icmp, from: 10.0.0.0/8}
    subnets:
      - name: web
        cidr: 192.168.10.0/24
hosts:
  - name: web01
    machine_type: m1.small
    subnet: web
    ip: 192.168.10.5
    format: qcow2
YAML
ferry blueprint apply "$T/bp.yaml" >/dev/null || fail "apply: $(ferry blueprint validate "$T/bp.yaml" 2>&1)"
ferry migrate web01 --blueprint os-wave >/dev/null || fail "migrate web01"
rc=0; timeout 120 ferry job watch 1 >"$T/w1.out" 2>&1 || rc=$?
[ "$rc" = 1 ] || fail "a wrong OpenStack password did not fail the migration (exit $rc): $(tail -5 "$T/w1.out")"
api GET /v1/migrations/1 >"$T/m1.json"
grep -q "Keystone refused the credentials" "$T/w1.out" && grep -q "OS_PASSWORD" "$T/w1.out" ||
  fail "the failure does not say which credential to check: $(tail -3 "$T/w1.out")"
grep -q "HTTP 401" "$T/w1.out" || fail "the failure lacks Keystone's own status: $(tail -3 "$T/w1.out")"
# fast: from the create task's start to its failure
secs=$(jq -r '[.events[] | select(.phase == "creating")] | [first.time, last.time] | map(sub("\\.[0-9]+"; "") | sub(" "; "T") | if endswith("Z") then . else . + "Z" end | fromdateiso8601) | .[1] - .[0]' "$T/m1.json" 2>/dev/null || echo 0)
[ "${secs:-0}" -le 10 ] || fail "the wrong password took ${secs}s to fail"
! grep -rqF not-the-password "$T/server.log" "$T/m1.json" "$T/w1.out" || fail "the password is in a log or the job"
ok "a wrong OS_PASSWORD fails the create in ${secs}s with Keystone's 401, naming the OS_* variables to check, and is logged nowhere"

# ---- 2. a test launch (ferry migrate --test) with clouds.yaml, the server
# killed mid-upload
kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true
start_server_with HOME="$T/home" OS_CLOUD=ferrytest FERRY_OPENSTACK_MAX_RATE=3000000
ferry migrate web01 --blueprint os-wave --test >/dev/null || fail "migrate web01 --test (2)"
image_status() {
  oscurl "$GL/v2/images?name=web01-test-sda" | jq -r '.images[0].status // "none"'
}
wait_for 90 eval '[ "$(image_status)" = saving ]' || fail "the upload did not start: $(image_status); $(api GET /v1/migrations/2 | jq -c '.events[-3:]')"
kill -9 "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true
ok "ferry-server killed (SIGKILL) while Glance was receiving the image"
# Glance notices the cut connection and returns the image to queued
wait_for 30 eval '[ "$(image_status)" = queued ]' || echo "  (the image is $(image_status) after the kill)"
start_server_with HOME="$T/home" OS_CLOUD=ferrytest
timeout 120 ferry job watch 2 >"$T/w2.out" 2>&1 || fail "the resumed migration failed: $(tail -5 "$T/w2.out"); $(grep CONTRACT "$T/contract.log")"
api GET /v1/migrations/2 >"$T/m2.json"
result=$(jq -c '.tasks[] | select(.kind == "create") | .result' "$T/m2.json")
! grep -q CONTRACT- "$T/contract.log" || fail "requests that break the Neutron/Nova models: $(grep CONTRACT- "$T/contract.log")"
ok "the restarted server finished the migration; every Neutron and Nova request matched the services' models"

# the image: one (nothing made twice), active, holding the converted bytes
osc image list --name web01-test-sda -f json >"$T/images.json" 2>"$T/osc.err" || fail "openstack image list: $(cat "$T/osc.err")"
[ "$(jq length "$T/images.json")" = 1 ] || fail "not exactly one image web01-test-sda: $(cat "$T/images.json")"
img=$(jq -r '.[0].ID' "$T/images.json")
[ "$(jq -r '.image_ids[0]' <<<"$result")" = "$img" ] || fail "the result names another image: $result"
osc image show "$img" -f json >"$T/image.json" 2>"$T/osc.err" || fail "openstack image show: $(cat "$T/osc.err")"
out=$T/store/web01/sda.qcow2
[ -f "$out" ] || fail "no converted qcow2 at $out: $(ls -R "$T/store" | head)"
want=$(sha512sum "$out" | cut -d' ' -f1)
[ "$(jq -r .status "$T/image.json")" = active ] || fail "the image is not active: $(jq -c . "$T/image.json")"
[ "$(jq -r '.properties.os_hash_value // .os_hash_value' "$T/image.json")" = "$want" ] ||
  fail "Glance's sha512 is not the converted object's: $(jq -c '{os_hash_value, properties}' "$T/image.json")"
[ "$(jq -r .disk_format "$T/image.json")" = qcow2 ] && [ "$(jq -r .container_format "$T/image.json")" = bare ] ||
  fail "wrong formats: $(jq -c '{disk_format, container_format}' "$T/image.json")"
jq -e '.tags | index("ferry-migration=2") and index("ferry-blueprint=os-wave") and index("ferry-test=true")' "$T/image.json" >/dev/null ||
  fail "the image lacks ferry's tags: $(jq -c .tags "$T/image.json")"
ok "one Glance image web01-test-sda (openstack image show): active, qcow2/bare, tagged, os_hash_value = sha512 of the converted object"

# the network: made once, the security group holds exactly the allow rules
count() { grep -c "^$1 $2 $3\$" "$T/contract.log" || true; }
for r in networks subnets security-groups ports; do
  [ "$(count POST /network/v2.0/$r 201)" = 1 ] || fail "POST /v2.0/$r made $(count POST /network/v2.0/$r 201) times"
done
[ "$(count POST /compute/v2.1/servers 202)" = 1 ] || fail "the server was created $(count POST /compute/v2.1/servers 202) times"
sg=$(jq -r .security_group_id <<<"$result")
oscurl "$CT/network/v2.0/security-group-rules?security_group_id=$sg" >"$T/rules.json"
jq -c '[.security_group_rules[] | select(.direction == "ingress") | [.protocol, .port_range_min, .port_range_max, .remote_ip_prefix]] | sort' "$T/rules.json" >"$T/ingress"
[ "$(cat "$T/ingress")" = '[["icmp",null,null,"10.0.0.0/8"],["tcp",22,22,"10.0.0.0/8"],["tcp",8000,8099,"0.0.0.0/0"]]' ] ||
  fail "the ingress rules are not the blueprint's: $(cat "$T/ingress")"
[ "$(jq '[.security_group_rules[] | select(.direction == "egress")] | length' "$T/rules.json")" = 2 ] ||
  fail "Neutron's default egress rules were not kept"
ok "network, subnet, security group and port made once; ingress = the blueprint's 3 allow rules, egress kept"

# the server: flavor, port, IP; the result record
sid=$(jq -r .instance_id <<<"$result")
port=$(jq -r .port_id <<<"$result")
oscurl "$CT/compute/v2.1/servers/$sid" >"$T/server.json"
[ "$(jq -r .server.name "$T/server.json")" = web01-test ] || fail "the test instance's name: $(jq -r .server.name "$T/server.json")"
[ "$(jq -r .server.flavor.original_name "$T/server.json")" = m1.small ] || fail "wrong flavor: $(jq -c .server.flavor "$T/server.json")"
[ "$(jq -r .server.status "$T/server.json")" = ACTIVE ] || fail "the server is not ACTIVE"
jq -e '.server.metadata["ferry-migration"] == "2"' "$T/server.json" >/dev/null || fail "no ferry metadata on the server"
oscurl "$CT/network/v2.0/ports/$port" >"$T/port.json"
# a test launch takes another address of the subnet: the host's stays
# free for the cutover
tip=$(jq -r '.port.fixed_ips[0].ip_address' "$T/port.json")
[[ $tip == 192.168.10.* && $tip != 192.168.10.5 ]] || fail "the test port's IP: $(jq -c .port.fixed_ips "$T/port.json")"
[ "$(jq -r '.port.fixed_ips[0].subnet_id' "$T/port.json")" = "$(jq -r .subnet_id <<<"$result")" ] || fail "the port is not on the host's subnet"
[ "$(jq -r .port.device_id "$T/port.json")" = "$sid" ] || fail "the port is not the server's"
jq -e '.addresses.tenant[0].addr == "'"$tip"'" and .console == "openstack console log show '"$sid"'" and .flavor == "m1.small"' <<<"$result" >/dev/null ||
  fail "the result record: $result"
ok "test server $sid ACTIVE with flavor m1.small on a port of subnet web ($tip, the host's 192.168.10.5 left free); the result records ids, addresses and the console command"

# ---- 3. cleanup: the migration's server, port and image, nothing else
ferry target cleanup 2 >"$T/cleanup.out" 2>&1 || fail "ferry target cleanup 2: $(cat "$T/cleanup.out")"
for k in "server web01-test" "port web01-test" "image sda"; do grep -q "^deleted $k " "$T/cleanup.out" || fail "cleanup did not report the $k: $(cat "$T/cleanup.out")"; done
[ "$(oscurl -o /dev/null -w '%{http_code}' "$CT/compute/v2.1/servers/$sid")" = 404 ] || fail "the server is still there"
[ "$(oscurl -o /dev/null -w '%{http_code}' "$CT/network/v2.0/ports/$port")" = 404 ] || fail "the port is still there"
[ "$(oscurl -o /dev/null -w '%{http_code}' "$GL/v2/images/$img")" = 404 ] || fail "the image is still there"
net=$(jq -r .network_id <<<"$result")
[ "$(oscurl -o /dev/null -w '%{http_code}' "$CT/network/v2.0/networks/$net")" = 200 ] || fail "cleanup deleted the blueprint's network"
[ "$(oscurl -o /dev/null -w '%{http_code}' "$CT/network/v2.0/security-groups/$sg")" = 200 ] || fail "cleanup deleted the blueprint's security group"
ok "ferry target cleanup of the test launch deleted its server, port and image; the blueprint's network and security group stay"

# ---- 4. the cutover: a second migration finds the blueprint's network
ferry migrate web01 --blueprint os-wave >/dev/null || fail "migrate web01 (3)"
timeout 120 ferry job watch 3 >"$T/w3.out" 2>&1 || fail "the third migration failed: $(tail -5 "$T/w3.out")"
api GET /v1/migrations/3 | jq -c '.tasks[] | select(.kind == "create") | .result' >"$T/r3.json"
jq -e '.addresses.tenant[0].addr == "192.168.10.5"' "$T/r3.json" >/dev/null || fail "the cutover instance: $(cat "$T/r3.json")"
[ "$(oscurl "$GL/v2/images?name=web01-sda" | jq -r '.images[0].status')" = active ] || fail "no active image web01-sda"
expect_fail "cleanup removes only" ferry target cleanup 3
for r in networks subnets security-groups; do
  [ "$(count POST /network/v2.0/$r 201)" = 1 ] || fail "the re-run made another of $r"
done
[ "$(count POST /network/v2.0/ports 201)" = 2 ] || fail "the re-run made no port of its own"
! grep -q CONTRACT- "$T/contract.log" || fail "$(grep CONTRACT- "$T/contract.log")"
ok "the cutover migration found the blueprint's network, subnet and security group (tag ferry-blueprint=os-wave), has the host's 192.168.10.5, and is not for cleanup"

# ---- 5. import: object: Glance fetches the converted object from the
# store itself (web-download of a presigned URL); nothing passes through
# ferry-server
cat >"$T/bp-obj.yaml" <<YAML
name: os-obj
provider: openstack
store: s3://test/obj
import: object
options:
  chunk_size: 1M
hosts:
  - name: web01
    machine_type: m1.tiny
    format: raw
YAML
ferry blueprint apply "$T/bp-obj.yaml" >/dev/null || fail "apply: $(ferry blueprint validate "$T/bp-obj.yaml" 2>&1)"
ferry migrate web01 --blueprint os-obj >/dev/null || fail "migrate web01 (4)"
timeout 120 ferry job watch 4 >"$T/w4.out" 2>&1 || fail "the import: object migration failed: $(tail -5 "$T/w4.out")"
api GET /v1/migrations/4 | jq -c '.tasks[] | select(.kind == "create") | .result' >"$T/r4.json"
img4=$(jq -r '.image_ids[0]' "$T/r4.json")
oscurl "$GL/v2/images/$img4" >"$T/image4.json"
want=$(/usr/bin/aws --endpoint-url "$S3_ENDPOINT" s3 cp s3://test/obj/web01/sda.raw - | sha512sum | cut -d' ' -f1)
[ "$(jq -r .os_hash_value "$T/image4.json")" = "$want" ] && [ "$(jq -r .disk_format "$T/image4.json")" = raw ] ||
  fail "the imported image is not the raw object: $(jq -c '{status, disk_format, os_hash_value}' "$T/image4.json")"
grep -q "GET /test/obj/web01/sda.raw" "$S3_ACCESS_LOG" || fail "Glance did not fetch the object from the store"
! grep -q "PUT /v2/images/$img4/file" "$OS/log/glance-api.log" || fail "ferry uploaded the image instead of Glance importing it"
! grep -q "X-Amz-Signature" "$T/server.log" "$T/w4.out" || fail "a presigned URL's signature is in the server's log"
ok "import: object: Glance web-downloaded the raw object from a presigned S3 URL (sha512 matches); no upload through ferry-server"

# ---- 6. a host with a data disk, on a cloud without Cinder: refused
# before anything is made
make_disk "$T/db-sda.img" 8M sparse
make_disk "$T/db-sdb.img" 8M sparse
make_root "$T/root-db" db01 sda=$((8 << 20)) sdb=$((8 << 20))
conf=$(make_agent db01 "$T/root-db" "sda=$T/db-sda.img" "sdb=$T/db-sdb.img")
start_agent db01 "$conf"
wait_for 20 eval 'api GET /v1/hosts | jq -e ".hosts | any(.hostname == \"db01\")" >/dev/null' || fail "db01 did not register"
sed 's/^  - name: web01/  - name: db01/; s/^name: os-obj/name: os-db/' "$T/bp-obj.yaml" >"$T/bp-db.yaml"
ferry blueprint apply "$T/bp-db.yaml" >/dev/null || fail "apply: $(ferry blueprint validate "$T/bp-db.yaml" 2>&1)"
posts=$(grep -c "^POST " "$T/contract.log")
ferry migrate db01 --blueprint os-db >/dev/null || fail "migrate db01"
rc=0; timeout 120 ferry job watch 5 >"$T/w5.out" 2>&1 || rc=$?
[ "$rc" = 1 ] || fail "a two-disk host on a cloud without Cinder did not fail (exit $rc)"
grep -q "has 2 disks: OpenStack attaches data disks as Cinder volumes" "$T/w5.out" ||
  fail "the two-disk failure is not explained: $(tail -3 "$T/w5.out")"
[ "$(grep -c "^POST " "$T/contract.log")" = "$posts" ] && [ "$(oscurl "$GL/v2/images?name=db01-sda" | jq '.images | length')" = 0 ] ||
  fail "the refused two-disk host made something"
ok "a host with a data disk on a cloud without Cinder fails before anything is made, saying why"

# the contract server is no pass-through: a request off Neutron's and
# Nova's models is refused and recorded
code=$(oscurl -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' \
  -d '{"network": {"name": "x", "cidr": "10.0.0.0/8"}}' "$CT/network/v2.0/networks")
code2=$(oscurl -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' \
  -d '{"server": {"name": "x", "flavorRef": "2", "imageRef": "not-a-uuid"}}' "$CT/compute/v2.1/servers")
[ "$code $code2" = "400 400" ] && [ "$(grep -c CONTRACT-VIOLATION "$T/contract.log")" = 2 ] ||
  fail "the contract server let a wrong shape through ($code $code2): $(grep CONTRACT "$T/contract.log")"
ok "the contract server refuses a network with a cidr and a server with a bad imageRef (400)"

! grep -rqF ferrypw "$T/server.log" "$T/state" 2>/dev/null || fail "the password is in the server's log or state"
echo "  t-openstack: $(( $(date +%s) - T0 )) s"
