#!/bin/bash
# The dashboard in a real browser (Debian's chromium, headless, driven by
# puppeteer-core: tests/dashboard/check.cjs), over the server's own TLS,
# against a server with two agents: the sign-in page, an operator starting
# a warm migration from its blueprint's page, the hosts
# page with the inventory, a blueprint's findings beside its lines, a warm
# migration whose progress bar moves and whose events arrive without a
# reload; a viewer sees no cutover button and the API refuses the viewer's
# cutover anyway; an operator's cutover asks first, does nothing when
# declined, and when confirmed is the one that finishes the migration.
# No token in the page's markup, cookies or localStorage; no script error
# and no Content-Security-Policy violation on any page.
# FERRY_DASHBOARD_SHOTS=DIR also saves a screenshot of each page there
# (make dashboard-screenshots: docs/dashboard/).
. "$(dirname "$0")/lib.sh"
TOOLS=${FERRY_TOOLS_DIR:-/var/cache/ferry}
requires curl jq node openssl chromium
[ -d "$TOOLS/puppeteer/node_modules/puppeteer-core" ] ||
  { echo "SKIP: puppeteer-core is not installed (scripts/setup.sh test installs it)"; exit 77; }

mkdir -p "$T/state"
FERRY_TEST_TLS=1 start_server "$T/state/ferry.db"
make_disk "$T/w.img" 64M random
make_disk "$T/s.img" 16M sparse
# two of discovery's fixture systems (a Debian 12 web server, a RHEL 8
# database server on LVM), their disks the size of the test's images
cp -a "$TOP/tests/fixtures/roots/debian12" "$T/root-w"
cp -a "$TOP/tests/fixtures/roots/rhel8" "$T/root-s"
echo $((64 << 11)) > "$T/root-w/sys/block/sda/size"
echo $((16 << 11)) > "$T/root-s/sys/block/vda/size"
echo db01 > "$T/root-s/proc/sys/kernel/hostname"
start_agent web01 "$(make_agent web01 "$T/root-w" "sda=$T/w.img")"
start_agent db01 "$(make_agent db01 "$T/root-s" "vda=$T/s.img")"
wait_for 20 eval 'api GET /v1/hosts | jq -e "[.hosts[].hostname] | sort == [\"db01\", \"web01\"]" >/dev/null' ||
  fail "the agents did not register: $(api GET /v1/hosts)"
# a cold migration that finishes first, and a warm one (started in the
# browser) whose first clone crawls (3 MiB/s: about 20 s for 64 MiB),
# then waits for the cutover
cat > "$T/wave.yaml" <<YAML
name: wave1
provider: local
store: file://$T/store
prepare: false                # the images hold no system to prepare
options:
  chunk_size: 1M
  max_rate: 3M
  sync_interval: 1h
hosts:
  - name: web01
    format: raw
    warm: true
  - name: db01
    format: raw
YAML
# and another, which the browser changes to name a host no agent reported
printf 'name: wave2\nprovider: local\nstore: file://%s/store2\nprepare: false\nhosts:\n  - name: db01\n    format: raw\n' "$T" > "$T/wave2.yaml"
ferry blueprint apply "$T/wave.yaml" >/dev/null || fail "apply wave1"
ferry blueprint apply "$T/wave2.yaml" >/dev/null || fail "apply wave2"
ferry migrate db01 --blueprint wave1 >/dev/null || fail "migrate db01"
timeout 60 ferry job watch 1 >/dev/null || fail "db01's migration did not finish: $(ferry job show 1)"
ferry token create --role viewer --name alice --out "$T/viewer.token" >/dev/null || fail "viewer token"
ferry token create --role operator --name bob --out "$T/operator.token" >/dev/null || fail "operator token"
ferry project create other >/dev/null || fail "project create"

# chromium trusts exactly this server's certificate (its key's SPKI
# digest), not every certificate
spki() { openssl x509 -pubkey -noout | openssl pkey -pubin -outform DER | openssl dgst -sha256 -binary | base64; }
leaf=$(openssl s_client -connect "127.0.0.1:$SERVER_PORT" </dev/null 2>/dev/null | spki)
[ -n "$leaf" ] || fail "cannot read the server's certificate"
export FERRY_URL=$SERVER_URL FERRY_SPKI=$leaf FERRY_MIGRATION=2 \
  FERRY_OPERATOR_TOKEN_FILE=$T/operator.token FERRY_VIEWER_TOKEN_FILE=$T/viewer.token \
  FERRY_ADMIN_TOKEN_FILE=$OPERATOR_TOKEN_FILE \
  NODE_PATH=$TOOLS/puppeteer/node_modules
node "$(dirname "$0")/dashboard/check.cjs" > "$T/check.out" 2>&1 &
node_pid=$!
at_exit "kill $node_pid 2>/dev/null"
# the browser confirms the cutover; the job must then finish on its own
wait $node_pid || fail "the browser test failed: $(cat "$T/check.out")"
grep '^ok - ' "$T/check.out" || true
api GET /v1/migrations/2 | jq -e '.cutover == 1' >/dev/null ||
  fail "the operator's confirmed cutover did not reach the server: $(ferry job show 2)"
timeout 120 ferry job watch 2 >/dev/null || fail "the migration did not finish after the cutover: $(ferry job show 2)"
cmp "$T/w.img" "$T/store/web01/sda.raw" || fail "the migrated disk is not the source's"
api GET '/v1/events?migration=2' | jq -e '[.events[] | select(.kind == "cutover")] | length == 1' >/dev/null ||
  fail "not exactly one cutover request: $(ferry job show 2)"
ok "an operator's cutover confirmed in the browser finishes the warm migration (disk equal to the source)"
