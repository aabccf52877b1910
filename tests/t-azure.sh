#!/bin/bash
# azure:// against azurite, Microsoft's emulator (it verifies Shared Key and
# SAS, block and page blobs), cross-checked with an independent client
# (tests/azcli.py, its own Shared Key signer): round trips, multi-block
# objects, a crashed writer resuming, sparse page blobs, SAS tokens and
# connection strings, a wrong key, tampered chunks.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/servers.sh"
requires jq cmp
TOOL=${FERRY_UNIT:-$TOP/build/tests}/store-tool
[ -x "$TOOL" ] || fail "$TOOL is missing: run make unit"
AZ=$TOP/tests/azcli.py
azurite_start
"$AZ" mkcontainer ferry
requests() { grep -c "RequestURL=" "$T/azurite-debug.log" || true; }
# 4 MiB blocks so that small outputs have several
export FERRY_PART_SIZE_MB=4

# ---- clone -> convert round trip; an output of several blocks
make_disk "$T/d.img" 40M sparse
head -c 10M /dev/urandom | dd of="$T/d.img" bs=1M seek=12 conv=notrunc status=none
ferry-agent clone --source "$T/d.img" --to azure://ferry/h1/sda --chunk-size 1M --json -q >"$T/c1.json" ||
  fail "clone to azure failed"
[ "$("$TOOL" ls azure://ferry/h1/sda chunks/ | wc -l)" -eq "$(json "$T/c1.json" .data_chunks)" ] ||
  fail "chunks listed differ from the clone's data chunks"
ferry-convert --from azure://ferry/h1/sda --format raw --to azure://ferry/out/h1.raw -q >/dev/null ||
  fail "convert azure -> azure failed"
"$AZ" get ferry out/h1.raw | cmp - "$T/d.img" || fail "the independent client reads back another disk"
"$AZ" props ferry out/h1.raw >"$T/props"
grep -qi '^content-md5: ' "$T/props" || fail "the committed block blob has no MD5"
ferry-convert --from azure://ferry/h1/sda --format raw --to "$T/h1.raw" -q >/dev/null
cmp "$T/d.img" "$T/h1.raw" || fail "convert azure -> file differs"
ok "clone -> azure -> convert round trip is byte-identical; the 40 MiB output is a block blob of 10 blocks with its MD5"

# ---- what another client wrote, ferry reads
ferry-agent clone --source "$T/d.img" --to "file://$T/fs/sda" --chunk-size 1M -q >/dev/null
(cd "$T/fs/sda" && find . -type f | sed 's|^\./||') | while read -r f; do
  "$AZ" put ferry "cli/sda/$f" "$T/fs/sda/$f"
done
ferry-convert --from azure://ferry/cli/sda --format raw --to "$T/cli.raw" -q >/dev/null ||
  fail "convert of an image uploaded by another client failed"
cmp "$T/d.img" "$T/cli.raw" || fail "image uploaded by another client rebuilds another disk"
ok "an image uploaded by an independent client is read by ferry"

# ---- a crashed block-blob writer resumes without resending its blocks
head -c 30M /dev/urandom >"$T/r30"
rc=0; "$TOOL" write azure://ferry/out r30 "$T/r30" --die-after 21000000 2>/dev/null || rc=$?
[ "$rc" -eq 9 ] || fail "the writer did not crash as asked (exit $rc)"
"$TOOL" write azure://ferry/out r30 "$T/r30" 2>"$T/resume.err" || fail "resumed write: $(cat "$T/resume.err")"
grep -q "3 blocks sent, 5 already uploaded before" "$T/resume.err" || fail "resume: $(cat "$T/resume.err")"
"$AZ" get ferry out/r30 | cmp - "$T/r30" || fail "resumed blob differs"
ok "a crashed block-blob upload resumes sending only the 3 missing blocks of 8"

# ---- the service did the work, then the connection dropped before its
# answer arrived: the retry finds the blob committed, the write succeeds
# and the request is not sent twice.  (tests/dropproxy.py loses the
# answer to the first request matching a pattern.)
dropproxy() {    # NAME PATTERN: sets DROP_ENDPOINT, logs to $T/NAME.requests
  local port; port=$(free_port)
  _spawn "$1" python3 "$TOP/tests/dropproxy.py" "$port" "$AZ_PORT" "$2" "$T/$1.requests"
  _wait_http "$1" "http://127.0.0.1:$port/"
  DROP_ENDPOINT=http://127.0.0.1:$port/$AZURITE_ACCOUNT
}
head -c 300000 /dev/urandom >"$T/small"
dropproxy drop1 "^PUT /$AZURITE_ACCOUNT/ferry/drop/small\$"
AZURE_STORAGE_BLOB_ENDPOINT=$DROP_ENDPOINT FERRY_LOG=info "$TOOL" put azure://ferry/drop small "$T/small" 2>"$T/drop1.err" ||
  fail "Put Blob whose answer was lost: $(cat "$T/drop1.err")"
grep -q "DROPPED" "$T/drop1.requests" || fail "the proxy lost no answer: $(cat "$T/drop1.requests")"
[ "$(grep -c "^PUT /$AZURITE_ACCOUNT/ferry/drop/small " "$T/drop1.requests")" -eq 1 ] ||
  fail "the Put Blob was sent again: $(cat "$T/drop1.requests")"
"$AZ" get ferry drop/small | cmp - "$T/small" || fail "the blob whose Put Blob answer was lost differs"
head -c 10M /dev/urandom >"$T/r10"
dropproxy drop2 "^PUT /$AZURITE_ACCOUNT/ferry/drop/r10\\?.*comp=blocklist"
AZURE_STORAGE_BLOB_ENDPOINT=$DROP_ENDPOINT "$TOOL" write azure://ferry/drop r10 "$T/r10" 2>"$T/drop2.err" ||
  fail "Put Block List whose answer was lost: $(cat "$T/drop2.err")"
grep -q "^PUT .*comp=blocklist DROPPED" "$T/drop2.requests" || fail "the proxy lost no answer: $(cat "$T/drop2.requests")"
[ "$(grep -c "^PUT .*comp=blocklist" "$T/drop2.requests")" -eq 1 ] ||
  fail "the Put Block List was sent again: $(cat "$T/drop2.requests")"
"$AZ" get ferry drop/r10 | cmp - "$T/r10" || fail "the blob whose Put Block List answer was lost differs"
ok "a Put Blob and a Put Block List whose answers are lost after they landed succeed, found by HEAD and not sent again"

# ---- page blobs: only the non-zero pages are sent, 512-aligned
truncate -s 24M "$T/sp"
head -c 700000 /dev/urandom | dd of="$T/sp" bs=1 seek=5000 conv=notrunc status=none
head -c 100 /dev/urandom | dd of="$T/sp" bs=1 seek=$((15 * 1048576 + 3)) conv=notrunc status=none
head -c 6M /dev/urandom | dd of="$T/sp" bs=1M seek=17 conv=notrunc status=none
"$TOOL" write azure://ferry/out sp.vhd "$T/sp" --page-blob --size "$(stat -c %s "$T/sp")" --block 65536 ||
  fail "page blob write failed"
"$AZ" get ferry out/sp.vhd | cmp - "$T/sp" || fail "page blob bytes differ"
# adjacent ranges merged (the service may list each Put Page apart)
"$AZ" pageranges ferry out/sp.vhd |
  awk -F- 'NR > 1 && $1 == e + 1 {e = $2; next} NR > 1 {print s "-" e} {s = $1; e = $2} END {print s "-" e}' >"$T/ranges"
printf '4608-705023\n15728640-15729151\n17825792-24117247\n' | cmp - "$T/ranges" ||
  fail "page ranges written: $(tr '\n' ' ' <"$T/ranges")"
[ "$("$TOOL" ls azure://ferry/out sp | wc -l)" -eq 1 ] || fail "the temporary page blob was left"
rc=0; "$TOOL" write azure://ferry/out odd.vhd "$T/sp" --page-blob --size 1000 2>"$T/err" || rc=$?
[ "$rc" -eq 1 ] && grep -q "multiple of 512" "$T/err" || fail "a page blob of 1000 bytes was accepted"
"$TOOL" write azure://ferry/out ab.vhd "$T/sp" --page-blob --size "$(stat -c %s "$T/sp")" --abort-after 8000000
rc=0; "$TOOL" head azure://ferry/out ab.vhd >/dev/null || rc=$?
[ "$rc" -eq 3 ] && [ -z "$("$AZ" pageranges ferry out/ab.vhd.ferry-partial 2>/dev/null)" ] ||
  fail "an aborted page blob left something behind"
ok "a page blob holds only the data pages (3 ranges of 24 MiB), appears whole on commit, and nothing on abort"

# ---- ferry-convert --format vhd to azure:// is a page blob of only the
# data pages and the footer, even for a disk whose size is not a multiple
# of 512 bytes
truncate -s $((20 * 1048576 + 1000)) "$T/odd.img"
head -c 3M /dev/urandom | dd of="$T/odd.img" bs=1M seek=2 conv=notrunc status=none
printf 'tail' | dd of="$T/odd.img" bs=1 seek=$((20 * 1048576 + 990)) conv=notrunc status=none
ferry-agent clone --source "$T/odd.img" --to azure://ferry/h7/sda --chunk-size 1M -q >/dev/null ||
  fail "clone of the odd-sized disk to azure"
ferry-convert --from azure://ferry/h7/sda --format vhd --to azure://ferry/out/h7.vhd --json >"$T/vhd.json" ||
  fail "convert to an azure page blob failed"
"$AZ" get ferry out/h7.vhd >"$T/h7.vhd" || fail "download of the VHD"
[ $(( $(stat -c %s "$T/h7.vhd") % 1048576 )) = 512 ] || fail "the VHD is not a whole number of MiB plus its footer"
qemu-img compare -q --image-opts driver=vpc,force_size_calc=current_size,file.filename="$T/h7.vhd" "$T/odd.img" 2>/dev/null ||
  qemu-img compare -q -f vpc -F raw "$T/h7.vhd" "$T/odd.img" || fail "the page-blob VHD differs from the disk"
ranges=$("$AZ" pageranges ferry out/h7.vhd | wc -l)
[ "$ranges" -ge 2 ] && [ "$ranges" -le 8 ] || fail "page ranges of the VHD: $("$AZ" pageranges ferry out/h7.vhd | tr '\n' ' ')"
ferry-convert --verify --from azure://ferry/h7/sda --format vhd --to azure://ferry/out/h7.vhd >/dev/null ||
  fail "--verify of the page-blob VHD"
ok "ferry-convert writes a VHD to azure:// as a page blob of only its data pages and footer; qemu-img and --verify agree"

# ---- SAS tokens (made by the independent client) and connection strings
sas=$("$AZ" accountsas rwdlc 600)
( unset AZURE_STORAGE_KEY; export AZURE_STORAGE_SAS_TOKEN=$sas
  ferry-agent clone --source "$T/d.img" --to azure://ferry/h2/sda --chunk-size 1M -q >/dev/null &&
  ferry-convert --from azure://ferry/h2/sda --format raw --to "$T/h2.raw" -q >/dev/null ) ||
  fail "clone and convert with a SAS token"
cmp "$T/d.img" "$T/h2.raw" || fail "SAS round trip differs"
ro=$("$AZ" accountsas rl 600)
( unset AZURE_STORAGE_KEY; export AZURE_STORAGE_SAS_TOKEN=$ro
  expect_fail "check that AZURE_STORAGE_SAS_TOKEN grants it" "$TOOL" put azure://ferry/ro x "$T/sp" )
( unset AZURE_STORAGE_KEY AZURE_STORAGE_ACCOUNT AZURE_STORAGE_BLOB_ENDPOINT
  export AZURE_STORAGE_CONNECTION_STRING="DefaultEndpointsProtocol=http;AccountName=$AZURITE_ACCOUNT;AccountKey=$AZURITE_KEY;BlobEndpoint=$AZ_ENDPOINT;"
  ferry-convert --from azure://ferry/h1/sda --format raw --to "$T/cs.raw" -q >/dev/null ) ||
  fail "a connection string"
cmp "$T/d.img" "$T/cs.raw" || fail "connection-string round trip differs"
url=$("$TOOL" presign azure://ferry/out r30 GET 60)
curl -sf "$url" | cmp - "$T/r30" || fail "presigned GET"
url=$("$TOOL" presign azure://ferry/up x.bin PUT 60)
curl -sf -T "$T/r30" -H 'x-ms-blob-type: BlockBlob' "$url" -o /dev/null || fail "presigned PUT"
"$AZ" get ferry up/x.bin | cmp - "$T/r30" || fail "presigned PUT stored other bytes"
( unset AZURE_STORAGE_KEY; export AZURE_STORAGE_SAS_TOKEN=$sas
  expect_fail "needs the account key" "$TOOL" presign azure://ferry/up x.bin GET 60 )
ok "SAS tokens (clone, convert, a read-only one refused), connection strings and presigned SAS URLs"

# ---- a wrong key: one clear line, no retries, no secret shown
n0=$(requests); t0=$(date +%s%N)
bad=$(head -c 64 /dev/urandom | base64 -w0)
AZURE_STORAGE_KEY=$bad expect_fail "signature rejected by 127.0.0.1:$AZ_PORT: check AZURE_STORAGE_KEY" \
  ferry-agent clone --source "$T/d.img" --to azure://ferry/h9/sda
ms=$(( ($(date +%s%N) - t0) / 1000000 )); sleep 0.3
n=$(( $(requests) - n0 ))
[ "$n" -eq 1 ] || fail "a rejected signature was tried $n times"
[ "$ms" -lt 3000 ] || fail "a rejected signature took $ms ms"
! grep -qF -- "$bad" "$T/err" || fail "the key appears in the error"
expect_fail "container nosuch does not exist at 127.0.0.1:$AZ_PORT" \
  ferry-convert --from azure://nosuch/h1 --format raw --to "$T/x.raw"
ok "a wrong key fails at once ($ms ms, $n request) naming the endpoint and AZURE_STORAGE_KEY; a missing container is named"

# ---- chunks tampered with in the store are detected and named
tbl=$("$TOOL" ls azure://ferry/h1/sda tables/ | cut -d' ' -f1)
"$TOOL" get azure://ferry/h1/sda "$tbl" >"$T/tbl"
line=$(sed -n 2p "$T/tbl"); idx=${line%% *}; hex=$(cut -d' ' -f2 <<<"$line")
key=$("$TOOL" ls azure://ferry/h1/sda "chunks/$hex" | cut -d' ' -f1)
"$AZ" get ferry "h1/sda/$key" >"$T/chunk"
flip_byte "$T/chunk" 100
"$AZ" put ferry "h1/sda/$key" "$T/chunk"
expect_fail "chunk $idx (offset $((idx * 1048576)), $key)" \
  ferry-convert --from azure://ferry/h1/sda --format raw --to "$T/t.raw"
grep -Eq "does not match its digest|damaged|corrupt" "$T/err" || fail "tamper message: $(cat "$T/err")"
"$TOOL" rm azure://ferry/h1/sda "$key"
expect_fail "chunk $idx (offset $((idx * 1048576)), $key) is missing" \
  ferry-convert --from azure://ferry/h1/sda --format raw --to "$T/t.raw"
ok "a chunk altered in the container is detected on read and named; a deleted one is named missing"
