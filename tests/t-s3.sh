#!/bin/bash
# s3:// against a real S3 server (OpenStack Swift + s3api, which verifies
# SigV4, payload digests and multipart rules as AWS does), cross-checked
# with an independent client (Debian's aws CLI): round trips, multipart
# objects, resumed and aborted uploads, presigned URLs, a wrong secret, the
# server stopped mid-clone, and tampered chunks.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/servers.sh"
requires jq cmp
[ -x /usr/bin/aws ] || { echo "SKIP: /usr/bin/aws (Debian's awscli) is not installed (scripts/setup.sh test)"; exit 77; }
TOOL=${FERRY_UNIT:-$TOP/build/tests}/store-tool
[ -x "$TOOL" ] || fail "$TOOL is missing: run make unit"
swift_start
aws() { /usr/bin/aws --endpoint-url "$S3_ENDPOINT" "$@"; }
# client requests to the S3 endpoint from the access log (not Swift's own
# sub-requests): "METHOD PATH STATUS"
requests() {
  awk '$2 == "127.0.0.1" && $3 == "127.0.0.1" {print $5, $6, $8}' "$S3_ACCESS_LOG" |
    sed 's/%3F/?/g; s/%3D/=/g; s/%26/\&/g'
}
uploads() { aws s3api list-multipart-uploads --bucket test | jq -s '(.[0].Uploads // []) | length'; }
# 5 MiB parts (S3's minimum) so that small outputs have several
export FERRY_PART_SIZE_MB=5

# ---- clone -> convert round trip, output larger than one part
make_disk "$T/d.img" 48M sparse
head -c 12M /dev/urandom | dd of="$T/d.img" bs=1M seek=20 conv=notrunc status=none
ferry-agent clone --source "$T/d.img" --to s3://test/h1/sda --chunk-size 1M --json -q >"$T/c1.json" ||
  fail "clone to s3 failed"
data=$(json "$T/c1.json" .data_chunks)
[ "$(aws s3 ls s3://test/h1/sda/chunks/ | wc -l)" -eq "$data" ] ||
  fail "the bucket holds $(aws s3 ls s3://test/h1/sda/chunks/ | wc -l) chunks, the clone made $data"
ferry-convert --from s3://test/h1/sda --format raw --to s3://test/out/h1.raw --json -q >"$T/v1.json" ||
  fail "convert s3 -> s3 failed"
aws s3 cp --quiet s3://test/out/h1.raw "$T/h1.raw"
cmp "$T/d.img" "$T/h1.raw" || fail "the aws CLI reads back another disk than the one cloned"
etag=$(aws s3api head-object --bucket test --key out/h1.raw | jq -r .ETag)
[[ $etag == *-10\" ]] || fail "48 MiB in 5 MiB parts: expected a 10-part multipart ETag, got $etag"
ferry-convert --from s3://test/h1/sda --format raw --to "$T/h1.local.raw" -q >/dev/null
cmp "$T/d.img" "$T/h1.local.raw" || fail "convert s3 -> file differs"
ok "clone -> s3 -> convert round trip is byte-identical; the 48 MiB output is a 10-part upload the aws CLI reads"

# ---- what the aws CLI wrote, ferry reads
ferry-agent clone --source "$T/d.img" --to "file://$T/fs/sda" --chunk-size 1M -q >/dev/null
aws s3 cp --quiet --recursive "$T/fs/sda" s3://test/cli/sda
ferry-convert --from s3://test/cli/sda --format raw --to "$T/cli.raw" -q >/dev/null ||
  fail "convert of an image uploaded by the aws CLI failed"
cmp "$T/d.img" "$T/cli.raw" || fail "image uploaded by the aws CLI rebuilds another disk"
head -c 20M /dev/urandom >"$T/r20"
aws s3 cp --quiet "$T/r20" s3://test/cli/r20      # multipart by the CLI (8 MiB threshold)
"$TOOL" get s3://test/cli r20 | cmp - "$T/r20" || fail "ferry misreads an object the aws CLI wrote in parts"
"$TOOL" get s3://test/cli r20 5000000 3000000 | cmp - <(tail -c +5000001 "$T/r20" | head -c 3000000) ||
  fail "range read differs"
[ "$("$TOOL" head s3://test/cli r20)" = 20971520 ] || fail "head size"
ok "an image and a multipart object written by the aws CLI are read by ferry (whole and by range)"

# ---- listing pages (continuation tokens), delete, absent objects
# 1005 small objects in one request: Swift's bulk extract-archive
mkdir -p "$T/many/k" && (cd "$T/many/k" && seq 1 1005 | xargs touch)
tar -C "$T/many" -cf "$T/many.tar" k
curl -sf -o /dev/null -X PUT -H "X-Auth-Token: $SWIFT_TOKEN" -H 'Accept: application/json' \
  -T "$T/many.tar" "$SWIFT_URL/test/many?extract-archive=tar" || fail "bulk upload of 1005 objects"
[ "$("$TOOL" ls s3://test/many k/ | wc -l)" -eq 1005 ] || fail "list of 1005 keys: $("$TOOL" ls s3://test/many k/ | wc -l)"
[ "$(requests | grep -c 'GET /test?.*continuation-token')" -ge 1 ] || fail "the listing never used a continuation token"
"$TOOL" rm s3://test/many k/7 && "$TOOL" rm s3://test/many k/7 || fail "delete is not idempotent"
rc=0; "$TOOL" head s3://test/many k/7 >/dev/null || rc=$?
[ "$rc" -eq 3 ] || fail "head of a deleted key: exit $rc"
ok "listings page with continuation tokens (1005 keys), delete is idempotent, absent keys are absent"

# ---- multipart: a crashed writer resumes without resending its parts;
# an aborted one leaves no upload behind
head -c 30M /dev/urandom >"$T/r30"
rc=0; "$TOOL" write s3://test/out r30 "$T/r30" --die-after 21000000 2>/dev/null || rc=$?
[ "$rc" -eq 9 ] || fail "the writer did not crash as asked (exit $rc)"
[ "$(uploads)" = 1 ] ||
  fail "a crashed writer left no upload to resume"
before=$(requests | grep -c 'PUT /test/out/r30?partNumber' || true)
"$TOOL" write s3://test/out r30 "$T/r30" 2>"$T/resume.err" || fail "resumed write failed: $(cat "$T/resume.err")"
sleep 0.5
after=$(requests | grep -c 'PUT /test/out/r30?partNumber')
grep -q "4 parts are there already" "$T/resume.err" || fail "resume message: $(cat "$T/resume.err")"
[ $((after - before)) -eq 2 ] || fail "the resumed writer sent $((after - before)) parts, expected 2 of 6"
aws s3 cp --quiet s3://test/out/r30 "$T/r30.back" && cmp "$T/r30" "$T/r30.back" || fail "resumed object differs"
"$TOOL" write s3://test/out r30b "$T/r30" --abort-after 15000000
[ "$(uploads)" = 0 ] ||
  fail "an aborted writer left its upload: $(aws s3api list-multipart-uploads --bucket test)"
rc=0; "$TOOL" head s3://test/out r30b >/dev/null || rc=$?
[ "$rc" -eq 3 ] || fail "an aborted writer left an object"
ok "a crashed multipart upload resumes sending only the 2 missing parts of 6; an aborted one is cleaned up"

# ---- presigned URLs work for a plain HTTP client, and expire
url=$("$TOOL" presign s3://test/cli r20 GET 60)
[[ $url != *testing* ]] || fail "a presigned URL carries the secret"
curl -sf "$url" | cmp - "$T/r20" || fail "presigned GET"
url=$("$TOOL" presign s3://test/up x.bin PUT 60)
curl -sf -T "$T/r30" "$url" -o /dev/null || fail "presigned PUT"
"$TOOL" get s3://test/up x.bin | cmp - "$T/r30" || fail "presigned PUT stored other bytes"
url=$("$TOOL" presign s3://test/cli r20 GET 1); sleep 2
[ "$(curl -s -o /dev/null -w '%{http_code}' "$url")" = 403 ] || fail "an expired presigned URL still works"
ok "presigned GET and PUT URLs work with curl and expire"

# ---- credentials from the shared file; virtual-hosted addressing; region
( unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
  printf '[default]\naws_access_key_id = test:tester\naws_secret_access_key = testing\n' >"$AWS_SHARED_CREDENTIALS_FILE"
  "$TOOL" head s3://test/cli r20 >/dev/null ) || fail "credentials from the shared credentials file"
rm -f "$AWS_SHARED_CREDENTIALS_FILE"
AWS_ENDPOINT_URL=http://localhost:$S3_PORT FERRY_S3_ADDRESSING=virtual "$TOOL" get s3://test/cli r20 |
  cmp - "$T/r20" || fail "virtual-hosted addressing"
requests | grep -q "^GET /cli/r20 206" || fail "no virtual-hosted request reached the server"
AWS_REGION=eu-west-1 expect_fail "check AWS_REGION" "$TOOL" head s3://test/cli r20
( unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY; expect_fail "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY" "$TOOL" head s3://test/cli r20 )
expect_fail "bucket nosuch does not exist at 127.0.0.1:$S3_PORT" ferry-convert --from s3://nosuch/x --format raw --to "$T/no.raw"
ok "shared credentials file, virtual-hosted addressing, a wrong region, no credentials and a missing bucket"

# ---- a wrong secret: one clear line, no retries, and the secret shown nowhere
n0=$(requests | wc -l); t0=$(date +%s%N)
AWS_SECRET_ACCESS_KEY=not-the-secret-XYZ expect_fail \
  "signature rejected by 127.0.0.1:$S3_PORT: check AWS_SECRET_ACCESS_KEY" \
  ferry-agent clone --source "$T/d.img" --to s3://test/h9/sda
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
sleep 0.5                          # the access log travels by UDP
n=$(( $(requests | wc -l) - n0 ))
[ "$n" -eq 1 ] || fail "a rejected signature was tried $n times"
[ "$ms" -lt 3000 ] || fail "a rejected signature took $ms ms"
! grep -q "not-the-secret-XYZ" "$T/err" || fail "the secret appears in the error"
AWS_SECRET_ACCESS_KEY=not-the-secret-XYZ expect_fail "check AWS_SECRET_ACCESS_KEY" \
  ferry-convert --from s3://test/h1/sda --format raw --to "$T/x.raw"
ok "a wrong secret fails at once ($ms ms, $n request) with one line naming the endpoint and AWS_SECRET_ACCESS_KEY"

# ---- the S3 server stopped in the middle of a clone and started again
make_disk "$T/e.img" 48M random
n0=$(requests | wc -l)
ferry-agent clone --source "$T/e.img" --to s3://test/h2/sda --chunk-size 1M --compress none \
  --max-rate 8M --json -q >"$T/c2.json" 2>"$T/c2.err" &
pid=$!
puts() { requests | tail -n +$((n0 + 1)) | grep -c "^PUT /test/h2/sda/chunks/.* 200$" || true; }
some_puts() { [ "$(puts)" -ge 8 ]; }
wait_for 30 some_puts || fail "the clone made no progress"
kill -KILL "$_PID_swift_proxy"; wait "$_PID_swift_proxy" 2>/dev/null || true; _PID_swift_proxy=
down_at=$(puts)
sleep 3
swift_start_proxy
wait $pid || fail "the clone did not survive the server's restart: $(cat "$T/c2.err")"
sleep 0.5
[ "$down_at" -lt 48 ] || fail "the clone finished before the server stopped; slow it down"
grep -q "retrying" "$T/c2.err" || fail "no retry was logged: $(cat "$T/c2.err")"
[ "$(json "$T/c2.json" .sent_chunks)" -eq 48 ] || fail "sent_chunks: $(cat "$T/c2.json")"
# no chunk was stored twice; a PUT the dying proxy completed but never
# logged is found by HEAD after the reconnect and not sent again, so the
# log may show fewer successful PUTs than chunks, never more
dups=$(requests | tail -n +$((n0 + 1)) | grep "^PUT /test/h2/sda/chunks/.* 200$" | awk '{print $2}' | sort | uniq -d | wc -l)
[ "$dups" -eq 0 ] || fail "$dups chunks were PUT twice"
[ "$(puts)" -le 48 ] || fail "$(puts) chunk PUTs succeeded for 48 distinct chunks"
[ "$(aws s3 ls s3://test/h2/sda/chunks/ | wc -l)" -eq 48 ] || fail "the bucket does not hold the 48 chunks"
ferry-convert --from s3://test/h2/sda --format raw --to "$T/e.raw" -q >/dev/null && cmp "$T/e.img" "$T/e.raw" ||
  fail "the clone that survived a restart does not rebuild the disk"
ok "Swift stopped after $down_at of 48 chunks and restarted 3 s later: the clone completes, each chunk stored exactly once"

# ---- chunks tampered with in the store are detected and named
tbl=$(aws s3 ls s3://test/h1/sda/tables/ | awk '{print $4}')
aws s3 cp --quiet "s3://test/h1/sda/tables/$tbl" "$T/tbl"
line=$(sed -n 2p "$T/tbl"); idx=${line%% *}; hex=$(cut -d' ' -f2 <<<"$line")
key=$(aws s3 ls "s3://test/h1/sda/chunks/$hex" | awk '{print $4}')
aws s3 cp --quiet "s3://test/h1/sda/chunks/$key" "$T/chunk"
flip_byte "$T/chunk" 100
aws s3 cp --quiet "$T/chunk" "s3://test/h1/sda/chunks/$key"
expect_fail "chunk $idx (offset $((idx * 1048576)), chunks/$key)" \
  ferry-convert --from s3://test/h1/sda --format raw --to "$T/t.raw"
grep -Eq "does not match its digest|damaged|corrupt" "$T/err" || fail "tamper message: $(cat "$T/err")"
[ ! -e "$T/t.raw" ] || fail "a tampered image produced output"
aws s3 rm --quiet "s3://test/h1/sda/chunks/$key"
expect_fail "chunk $idx (offset $((idx * 1048576)), chunks/$key) is missing" \
  ferry-convert --from s3://test/h1/sda --format raw --to "$T/t.raw"
ok "a chunk altered in the bucket is detected on read and named; a deleted one is named missing"
