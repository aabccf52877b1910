#!/bin/bash
# gs:// is the S3 backend speaking to Cloud Storage's XML API with HMAC keys
# in region "auto": tested against Swift + s3api enforcing region "auto",
# with GS_* credentials only, cross-checked with the aws CLI.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/servers.sh"
requires jq cmp
[ -x /usr/bin/aws ] || { echo "SKIP: /usr/bin/aws (Debian's awscli) is not installed (scripts/setup.sh test)"; exit 77; }
swift_start auto
aws() { /usr/bin/aws --endpoint-url "$S3_ENDPOINT" "$@"; }
# gs:// reads only its own variables
export GS_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID GS_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY
export GS_ENDPOINT_URL=$S3_ENDPOINT
gs_env() { env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u AWS_REGION -u AWS_DEFAULT_REGION -u AWS_ENDPOINT_URL "$@"; }
export FERRY_PART_SIZE_MB=5

make_disk "$T/d.img" 32M sparse
head -c 9M /dev/urandom | dd of="$T/d.img" bs=1M seek=10 conv=notrunc status=none
gs_env ferry-agent clone --source "$T/d.img" --to gs://test/h1/sda --chunk-size 1M --json -q >"$T/c.json" ||
  fail "clone to gs failed"
gs_env ferry-convert --from gs://test/h1/sda --format raw --to gs://test/out/h1.raw -q >/dev/null ||
  fail "convert gs -> gs failed"
aws s3 cp --quiet s3://test/out/h1.raw "$T/h1.raw"
cmp "$T/d.img" "$T/h1.raw" || fail "the aws CLI reads back another disk"
etag=$(aws s3api head-object --bucket test --key out/h1.raw | jq -r .ETag)
[[ $etag == *-7\" ]] || fail "32 MiB in 5 MiB parts: expected a 7-part ETag, got $etag"
gs_env ferry-convert --from gs://test/h1/sda --format raw --to "$T/h1.local" -q >/dev/null
cmp "$T/d.img" "$T/h1.local" || fail "convert gs -> file differs"
ok "clone -> gs -> convert round trip in region auto with GS_* keys; the output is a 7-part upload"

GS_SECRET_ACCESS_KEY=wrong expect_fail "signature rejected by 127.0.0.1:$S3_PORT: check GS_SECRET_ACCESS_KEY" gs_env \
  ferry-convert --from gs://test/h1/sda --format raw --to "$T/x.raw"
( unset GS_ACCESS_KEY_ID; expect_fail "set GS_ACCESS_KEY_ID and GS_SECRET_ACCESS_KEY" \
    ferry-convert --from gs://test/h1/sda --format raw --to "$T/x.raw" )
# s3:// in the wrong region against the same server is refused, naming it
AWS_REGION=us-east-1 expect_fail "check AWS_REGION" ferry-convert --from s3://test/h1/sda --format raw --to "$T/x.raw"
ok "a wrong GS secret, missing GS keys and an s3:// client in another region fail with one clear line"
