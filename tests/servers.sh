# servers.sh - sourced by shell tests after lib.sh: real object-store
# servers on free 127.0.0.1 ports, stopped by the test's cleanup trap.
#
#   swift_start [REGION]   OpenStack Swift (Debian) + s3api: verifies SigV4,
#                          payload SHA-256, Content-MD5 and multipart rules
#                          as AWS does.  Sets S3_PORT, S3_ENDPOINT, exports
#                          AWS_* for tempauth user test:tester / testing,
#                          creates bucket "test".  REGION (default
#                          us-east-1) is the one s3api enforces ("auto" for
#                          gs://).  Client requests are logged, one line
#                          each, to $S3_ACCESS_LOG.  SWIFT_URL and
#                          SWIFT_TOKEN reach Swift's own API (bulk loads).
#   swift_stop_proxy / swift_start_proxy
#                          stop / restart the S3 endpoint (the proxy) only.
#   azurite_start          azurite (npm), Microsoft's Azure Storage emulator:
#                          verifies SharedKey and SAS, block and page blobs.
#                          Sets AZ_PORT, AZ_ENDPOINT, exports AZURE_STORAGE_*
#                          for the emulator's well-known account.
#
# Installed by scripts/setup.sh test (Debian packages; memcached and azurite
# into FERRY_TOOLS_DIR, default /var/cache/ferry).  Adapted from the
# project's testbed notes: Swift needs memcached, a one-node ring on a local
# directory, and its part limits raised to AWS's (10,000).

FERRY_TOOLS_DIR=${FERRY_TOOLS_DIR:-/var/cache/ferry}
MEMCACHED=$FERRY_TOOLS_DIR/memcached/usr/bin/memcached
AZURITE=$FERRY_TOOLS_DIR/azurite/node_modules/.bin/azurite-blob
# the emulator's published development account (not a secret)
AZURITE_ACCOUNT=devstoreaccount1
AZURITE_KEY='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='

_listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# _spawn NAME CMD...: start CMD in its own session, log in $T/NAME.log,
# stop it at exit (by the PID recorded here only).
_spawn() {
  local name=$1; shift
  setsid "$@" >>"$T/$name.log" 2>&1 </dev/null &
  eval "_PID_${name//-/_}=$!"
  at_exit "_stop $name"
}

_stop() {
  local var="_PID_${1//-/_}" pid i
  pid=${!var:-}
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  eval "$var="
}

# _wait_http NAME URL: poll until URL answers (bounded: 60 s).
_wait_http() {
  local name=$1 url=$2 var="_PID_${1//-/_}" i
  for ((i = 0; i < 600; i++)); do
    curl -s -o /dev/null --max-time 2 "$url" && return 0
    kill -0 "${!var}" 2>/dev/null || fail "$name died: $(tail -n 20 "$T/$name.log")"
    sleep 0.1
  done
  fail "$name did not answer at $url within 60 s: $(tail -n 20 "$T/$name.log")"
}

swift_start() {
  local region=${1:-us-east-1} d=$T/swift n s port
  requires swift-proxy-server swift-object-server swift-ring-builder curl python3
  [ -x "$MEMCACHED" ] || { echo "SKIP: memcached is not in $FERRY_TOOLS_DIR (scripts/setup.sh test fetches it)"; exit 77; }
  S3_PORT=$(free_port)
  local obj=$(free_port) cont=$(free_port) acc=$(free_port) mc=$(free_port)
  mkdir -p "$d/etc" "$d/srv/d1" "$d/cache"
  # client requests, logged by the first proxy-logging to a UDP "syslog"
  S3_ACCESS_LOG=$T/s3-access.log
  : >"$S3_ACCESS_LOG"
  _spawn s3log python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
open(sys.argv[2], "w").write(str(s.getsockname()[1]))
f = open(sys.argv[1], "ab", 0)
while True:
    f.write(s.recv(65536).rstrip(b"\0\n") + b"\n")
' "$S3_ACCESS_LOG" "$d/logport"
  wait_for 10 test -s "$d/logport" || fail "the access-log listener did not start"
  local common="[DEFAULT]
swift_dir = $d/etc
devices = $d/srv
mount_check = false
bind_ip = 127.0.0.1
workers = 0
log_level = WARNING
recon_cache_path = $d/cache"
  for s in object:$obj container:$cont account:$acc; do
    n=${s%%:*}; port=${s#*:}
    printf '%s\nbind_port = %s\n[pipeline:main]\npipeline = %s-server\n[app:%s-server]\nuse = egg:swift#%s\n' \
      "$common" "$port" "$n" "$n" "$n" >"$d/etc/$n-server.conf"
  done
  # one-device rings, built in one python process (swift-ring-builder
  # create/add/rebalance would start python nine times)
  /usr/bin/python3 - "$d/etc" "$obj" "$cont" "$acc" <<'PY' || fail "cannot build the swift rings"
import sys
from swift.common.ring import RingBuilder
etc = sys.argv[1]
for name, port in zip(("object", "container", "account"), sys.argv[2:5]):
    b = RingBuilder(8, 1, 1)
    b.add_dev({"region": 1, "zone": 1, "ip": "127.0.0.1", "port": int(port),
               "device": "d1", "weight": 100})
    b.rebalance()
    b.get_ring().save("%s/%s.ring.gz" % (etc, name))
PY
  cat >"$d/etc/proxy-server.conf" <<EOF
$common
bind_port = $S3_PORT
[pipeline:main]
pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats bulk s3api tempauth copy slo dlo proxy-logging proxy-server
[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true
[filter:s3api]
use = egg:swift#s3api
location = $region
allow_multipart_uploads = true
# virtual-hosted requests: BUCKET.localhost (curl resolves *.localhost)
storage_domain = localhost
# AWS's limits (Swift's defaults are 1000)
max_upload_part_num = 10000
[filter:slo]
use = egg:swift#slo
max_manifest_segments = 10000
[filter:tempauth]
use = egg:swift#tempauth
user_test_tester = testing .admin
[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:$mc
[filter:catch_errors]
use = egg:swift#catch_errors
[filter:gatekeeper]
use = egg:swift#gatekeeper
[filter:healthcheck]
use = egg:swift#healthcheck
[filter:proxy-logging]
use = egg:swift#proxy_logging
access_log_level = INFO
access_log_udp_host = 127.0.0.1
access_log_udp_port = $(cat "$d/logport")
[filter:listing_formats]
use = egg:swift#listing_formats
[filter:bulk]
use = egg:swift#bulk
[filter:copy]
use = egg:swift#copy
[filter:dlo]
use = egg:swift#dlo
EOF
  _spawn memcached "$MEMCACHED" -l 127.0.0.1 -p "$mc" -U 0 -m 64 $([ "$(id -u)" = 0 ] && echo "-u root")
  for n in account container object; do
    _spawn "swift-$n" "swift-$n-server" "$d/etc/$n-server.conf" -v
  done
  swift_start_proxy
  _wait_http swift-object "http://127.0.0.1:$obj/"
  _wait_http swift-container "http://127.0.0.1:$cont/"
  _wait_http swift-account "http://127.0.0.1:$acc/"
  S3_ENDPOINT=http://127.0.0.1:$S3_PORT
  export AWS_ACCESS_KEY_ID=test:tester AWS_SECRET_ACCESS_KEY=testing
  export AWS_REGION=$region AWS_DEFAULT_REGION=$region AWS_ENDPOINT_URL=$S3_ENDPOINT
  unset AWS_SESSION_TOKEN AWS_PROFILE AWS_ENDPOINT_URL_S3
  # the aws CLI must not find anyone's own configuration
  export AWS_CONFIG_FILE=$T/aws-config AWS_SHARED_CREDENTIALS_FILE=$T/aws-credentials
  # the bucket, through Swift's own API (a container is a bucket)
  local hdrs tok url
  hdrs=$(curl -sf -D - -o /dev/null -H 'X-Auth-User: test:tester' -H 'X-Auth-Key: testing' \
    "$S3_ENDPOINT/auth/v1.0") || fail "swift tempauth did not answer"
  tok=$(tr -d '\r' <<<"$hdrs" | awk -F': ' 'tolower($1)=="x-auth-token"{print $2}')
  url=$(tr -d '\r' <<<"$hdrs" | awk -F': ' 'tolower($1)=="x-storage-url"{print $2}')
  curl -sf -o /dev/null -X PUT -H "X-Auth-Token: $tok" "$url/test" || fail "cannot create bucket test"
  SWIFT_TOKEN=$tok SWIFT_URL=$url
}

swift_start_proxy() {
  _spawn swift-proxy swift-proxy-server "$T/swift/etc/proxy-server.conf" -v
  _wait_http swift-proxy "http://127.0.0.1:$S3_PORT/healthcheck"
}

swift_stop_proxy() { _stop swift-proxy; }

azurite_start() {
  requires node curl
  [ -x "$AZURITE" ] || { echo "SKIP: azurite is not in $FERRY_TOOLS_DIR (scripts/setup.sh test installs it)"; exit 77; }
  AZ_PORT=$(free_port)
  mkdir -p "$T/azurite"
  _spawn azurite "$AZURITE" --blobHost 127.0.0.1 --blobPort "$AZ_PORT" \
    --location "$T/azurite" --disableTelemetry --skipApiVersionCheck \
    --debug "$T/azurite-debug.log"
  _wait_http azurite "http://127.0.0.1:$AZ_PORT/"
  AZ_ENDPOINT=http://127.0.0.1:$AZ_PORT/$AZURITE_ACCOUNT
  export AZURE_STORAGE_ACCOUNT=$AZURITE_ACCOUNT AZURE_STORAGE_KEY=$AZURITE_KEY
  export AZURE_STORAGE_BLOB_ENDPOINT=$AZ_ENDPOINT
  unset AZURE_STORAGE_SAS_TOKEN AZURE_STORAGE_CONNECTION_STRING
}
