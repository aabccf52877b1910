#!/bin/bash
# GET /metrics: Prometheus' text format, behind an operator token, scoped
# to the token's project.  After a migration of an 8 MiB random disk:
# promtool (the Prometheus project's own checker) passes the exposition;
# the migration is counted by state and phase, the agent's heartbeat age
# is fresh, read bytes are the disk's size and the chunks by outcome add
# up to the disk's, the raw conversion is counted with its duration; API
# requests are counted by route pattern, method and status (a 404 as
# "unmatched", an invented method as "other"); no token is 401; another
# project's viewer sees none of this host; a real Prometheus server
# scrapes the test server with a bearer token and answers a query about it.
# The agent, with metrics_listen set, serves the same clone figures for its
# disk on 127.0.0.1 with its HTTP requests to the store (a real S3: Swift)
# and to the server, by kind, method and status, with latency histograms;
# it refuses a metrics_listen that is not loopback.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/servers.sh"
# prometheus and promtool: Debian's package, unpacked by scripts/setup.sh test
export PATH="${FERRY_TOOLS_DIR:-/var/cache/ferry}/prometheus/usr/bin:$PATH"
requires curl jq promtool prometheus

swift_start
start_server "$T/ferry.db"
make_disk "$T/m.img" 8M random
make_root "$T/root" m01 sda=$((8 << 20))
conf=$(make_agent m01 "$T/root" "sda=$T/m.img")
cp "$conf" "$T/public.conf"
echo "metrics_listen = 0.0.0.0:9" >> "$T/public.conf"
expect_fail "metrics_listen 0.0.0.0 is not a loopback address" ferry-agent run --config "$T/public.conf"
aport=$(free_port)
echo "metrics_listen = 127.0.0.1:$aport" >> "$conf"
start_agent m01 "$conf"
wait_for 20 eval 'api GET /v1/hosts | jq -e ".hosts | any(.hostname == \"m01\")" >/dev/null' ||
  fail "the agent did not register"
printf 'name: m\nprovider: local\nstore: s3://test/m\noptions:\n  chunk_size: 1M\nhosts:\n  - name: m01\n    format: raw\n' > "$T/m.yaml"
ferry blueprint apply "$T/m.yaml" >/dev/null || fail "apply"
ferry migrate m01 --blueprint m >/dev/null || fail "migrate"
timeout 120 ferry job watch 1 >"$T/watch.out" 2>&1 || fail "the migration did not finish: $(tail -5 "$T/watch.out")"

metrics() { curl -sS -H "Authorization: Bearer $(cat "$1")" -o "$T/metrics.txt" -w '%{http_code} %{content_type}' "$SERVER_URL/metrics"; }
for i in 1 2 3; do api GET /v1/hosts >/dev/null; done
curl -s -o /dev/null -H "Authorization: Bearer $(cat "$OPERATOR_TOKEN_FILE")" "$SERVER_URL/v1/nope"
curl -s -o /dev/null -X BREW -H "Authorization: Bearer $(cat "$OPERATOR_TOKEN_FILE")" "$SERVER_URL/v1/hosts"
got=$(metrics "$OPERATOR_TOKEN_FILE")
[ "$got" = "200 text/plain; version=0.0.4; charset=utf-8" ] || fail "GET /metrics answered '$got'"
promtool check metrics < "$T/metrics.txt" >"$T/promtool.out" 2>&1 ||
  fail "promtool check metrics: $(cat "$T/promtool.out")"
ok "GET /metrics is Prometheus' text format and promtool check metrics passes it"

val() { # SERIES (exact, with labels) -> its value
  awk -v s="$1" '$1 == s {print $2; found=1} END {exit !found}' "$T/metrics.txt"
}
[ "$(val 'ferry_migrations{state="done",phase="done"}')" = 1 ] || fail "no done migration counted: $(grep ferry_migrations "$T/metrics.txt")"
age=$(val 'ferry_agent_heartbeat_age_seconds{host="m01",agent="1"}') || fail "no heartbeat age for m01"
awk -v a="$age" 'BEGIN {exit !(a >= 0 && a < 30)}' || fail "the heartbeat age is $age s"
[ "$(val 'ferry_read_bytes_total{host="m01",disk="sda"}')" = $((8 << 20)) ] ||
  fail "read bytes are not the disk's 8 MiB: $(grep 'ferry_read_bytes_total' "$T/metrics.txt")"
sent=$(val 'ferry_sent_bytes_total{host="m01",disk="sda"}') || fail "no sent bytes"
[ "$sent" -gt 0 ] || fail "sent bytes: $sent"
chunks=0
for o in zero sent reused carried; do
  v=$(val "ferry_chunks_total{host=\"m01\",disk=\"sda\",outcome=\"$o\"}") || fail "no $o chunks"; chunks=$((chunks + v))
done
[ "$chunks" = 8 ] || fail "the chunks by outcome add up to $chunks, not the disk's 8: $(grep -E "ferry_chunks|ferry_read" "$T/metrics.txt")"
[ "$(val 'ferry_conversions_total{format="raw",outcome="succeeded"}')" = 1 ] || fail "the conversion is not counted"
[ "$(val 'ferry_conversion_duration_seconds_count{format="raw"}')" = 1 ] || fail "no conversion duration"
[ "$(val 'ferry_conversion_duration_seconds_bucket{format="raw",le="+Inf"}')" = 1 ] || fail "no +Inf bucket"
ok "the migration, the agent's heartbeat, bytes ($((8 << 20)) read, $sent sent), chunks (8) and the conversion are in the metrics"

n=$(val 'ferry_api_requests_total{route="/v1/hosts",method="GET",code="200"}') || fail "GET /v1/hosts is not counted"
[ "$n" -ge 3 ] || fail "GET /v1/hosts counted $n times, not at least 3"
[ "$(val 'ferry_api_requests_total{route="unmatched",method="GET",code="404"}')" -ge 1 ] || fail "the 404 is not counted as unmatched"
[ "$(val 'ferry_api_requests_total{route="/v1/hosts",method="other",code="405"}')" -ge 1 ] || fail "the invented method is not 'other'"
c=$(val 'ferry_api_request_duration_seconds_count{route="/v1/hosts",method="GET"}') || fail "no latency histogram"
[ "$c" -ge "$n" ] || fail "the histogram counted $c requests, the counter $n"
ok "API requests are counted by route pattern, method and status, with a latency histogram"

# the agent's own listener
curl -sS -o "$T/agent.txt" -w '%{http_code}' "http://127.0.0.1:$aport/metrics" > "$T/agent.code" ||
  fail "the agent's metrics listener does not answer"
[ "$(cat "$T/agent.code")" = 200 ] || fail "the agent's /metrics answered $(cat "$T/agent.code")"
promtool check metrics < "$T/agent.txt" >"$T/promtool2.out" 2>&1 ||
  fail "promtool check metrics on the agent's: $(cat "$T/promtool2.out")"
aval() { awk -v s="$1" '$1 == s {print $2; found=1} END {exit !found}' "$T/agent.txt"; }
[ "$(aval 'ferry_agent_read_bytes_total{disk="sda"}')" = $((8 << 20)) ] ||
  fail "the agent's read bytes: $(grep ferry_agent_read "$T/agent.txt")"
[ "$(aval 'ferry_agent_sent_bytes_total{disk="sda"}')" = "$sent" ] || fail "the agent's sent bytes differ from the server's $sent"
puts=$(aval 'ferry_http_requests_total{kind="store",method="PUT",code="200"}') ||
  fail "no store PUTs counted: $(grep ferry_http_requests_total "$T/agent.txt")"
[ "$puts" -ge 8 ] || fail "$puts store PUTs for 8 data chunks and a manifest"
n=$(aval 'ferry_http_request_duration_seconds_count{kind="store",method="PUT"}') || fail "no store latency histogram"
[ "$n" = "$(grep -E '^ferry_http_requests_total\{kind="store",method="PUT"' "$T/agent.txt" | awk '{s += $2} END {print s}')" ] ||
  fail "the histogram's count is not the PUTs counted"
aval 'ferry_http_requests_total{kind="api",method="GET",code="200"}' >/dev/null ||
  fail "the agent's calls to the server are not counted"
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$aport/other")" = 404 ] || fail "the agent's listener answers other paths"
ok "the agent's listener (127.0.0.1 only) serves its disk's bytes and its store (S3) and server requests with latency histograms ($puts PUTs); promtool passes it"

[ "$(curl -s -o /dev/null -w '%{http_code}' "$SERVER_URL/metrics")" = 401 ] || fail "GET /metrics without a token is not 401"
ferry project create other >/dev/null || fail "project create"
ferry --project other token create --role viewer --name v --out "$T/other-viewer.token" 2>/dev/null || fail "token create"
[ "$(metrics "$T/other-viewer.token" | cut -d' ' -f1)" = 200 ] || fail "another project's viewer cannot read /metrics"
! grep -q 'm01' "$T/metrics.txt" || fail "another project's viewer sees host m01: $(grep m01 "$T/metrics.txt" | head -3)"
! grep -q '^ferry_migrations{' "$T/metrics.txt" || fail "another project's viewer sees migrations"
ok "no token is 401; another project's viewer reads /metrics without this project's hosts or migrations"

# a real Prometheus scrapes the server with its bearer token
pport=$(free_port)
cat > "$T/prometheus.yml" <<YAML
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: ferry
    scheme: ${SERVER_URL%%:*}
    authorization:
      credentials_file: $OPERATOR_TOKEN_FILE
    static_configs:
      - targets: ['${SERVER_URL#*://}']
YAML
prometheus --config.file="$T/prometheus.yml" --storage.tsdb.path="$T/prom" \
  --web.listen-address="127.0.0.1:$pport" >"$T/prometheus.log" 2>&1 &
ppid=$!; at_exit "kill $ppid 2>/dev/null; wait $ppid 2>/dev/null"
q() { curl -s --get --data-urlencode "query=$1" "http://127.0.0.1:$pport/api/v1/query" | jq -r '.data.result[0].value[1] // empty'; }
wait_for 60 eval '[ "$(q "up{job=\"ferry\"}")" = 1 ]' ||
  fail "Prometheus did not scrape the server: $(tail -5 "$T/prometheus.log")"
[ "$(q 'ferry_read_bytes_total{host="m01",disk="sda"}')" = $((8 << 20)) ] ||
  fail "Prometheus has no ferry_read_bytes_total for m01"
ok "a real Prometheus scrapes the server with a bearer token (up = 1) and answers ferry_read_bytes_total for m01"
