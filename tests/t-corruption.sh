#!/bin/bash
# ferry-convert verifies every chunk and the image: corruption, missing
# chunks, tampered tables and bad manifests fail naming what is wrong, and
# leave no output that looks complete.
. "$(dirname "$0")/lib.sh"
requires jq

make_disk "$T/d.img" 20M random
url=file://$T/store/h/sda
ferry-agent clone --source "$T/d.img" --to "$url" --chunk-size 1M --compress none -q >/dev/null
fresh() { rm -rf "$T/s2"; cp -a "$T/store" "$T/s2"; }
url2=file://$T/s2/h/sda
no_output() { [ -z "$(ls -A "$T/outdir")" ] || fail "output left behind: $(ls -A "$T/outdir")"; }
mkdir "$T/outdir"

# one flipped byte in a chunk
fresh
third=$(sed -n 3p "$T/s2/h/sda/"tables/*.tsv)
idx=${third%% *}; hex=$(cut -d' ' -f2 <<<"$third")
flip_byte "$T/s2/h/sda/chunks/$hex" 1000
expect_fail "chunk $idx (offset $((idx * 1048576)), chunks/$hex)" \
  ferry-convert --from "$url2" --format raw --to "$T/outdir/x.raw"
grep -q "does not match its digest" "$T/err" || fail "corruption message: $(cat "$T/err")"
no_output
ok "a corrupted chunk is detected, named by index, offset and key, and no output is left"

# a chunk truncated in the store
fresh
: > "$T/s2/h/sda/chunks/$hex"
expect_fail "chunk $idx" ferry-convert --from "$url2" --format raw --to "$T/outdir/x.raw"
no_output
ok "a truncated chunk is detected"

# a missing chunk
fresh
rm "$T/s2/h/sda/chunks/$hex"
expect_fail "chunk $idx (offset $((idx * 1048576)), chunks/$hex) is missing" \
  ferry-convert --from "$url2" --format raw --to "$T/outdir/x.raw"
no_output
ok "a missing chunk is named and no output is left"

# a table entry swapped for another valid chunk: the table digest catches it
fresh
tbl=$(ls "$T/s2/h/sda/tables/"*.tsv)
l1=$(sed -n 1p "$tbl"); l2=$(sed -n 2p "$tbl")
awk -v a="${l1#* }" -v b="${l2#* }" 'NR==1{sub(/ .*/, " " b)} NR==2{sub(/ .*/, " " a)} {print}' "$tbl" > "$T/tbl" && cat "$T/tbl" > "$tbl"
expect_fail "does not match its digest" ferry-convert --from "$url2" --format raw --to "$T/outdir/x.raw"
grep -q "chunk table" "$T/err" || fail "table tamper message: $(cat "$T/err")"
no_output
ok "a tampered chunk table is detected and no output is left"

# manifests: malformed JSON, unknown version, wrong image digest, missing
fresh
m=$T/s2/h/sda/manifest.json
cp "$m" "$T/m.orig"
printf '{"format": "ferry-chunked-image", "version": ' > "$m"
expect_fail "manifest.json: not valid JSON" ferry-convert --from "$url2" --format raw --to "$T/outdir/x.raw"
jq '.version = 7' "$T/m.orig" > "$m"
expect_fail "version 7 is not one this ferry reads" ferry-convert --from "$url2" --format raw --to "$T/outdir/x.raw"
grep -q "upgrade ferry" "$T/err" || fail "version message lacks the fix"
jq '.image_digest = "'"$(printf '0%.0s' {1..64})"'"' "$T/m.orig" > "$m"
expect_fail "image digest" ferry-convert --from "$url2" --format raw --to "$T/outdir/x.raw"
rm "$m"
expect_fail "manifest.json is missing" ferry-convert --from "$url2" --format raw --to "$T/outdir/x.raw"
no_output
ok "malformed, unknown-version, wrong-digest and missing manifests are refused clearly"

# a partial output is never mistaken for a finished one: an existing file
# stays unless --overwrite, and a failed overwrite keeps the old file whole
echo old > "$T/outdir/keep.raw"
expect_fail "already exists: pass --overwrite" ferry-convert --from "$url" --format raw --to "$T/outdir/keep.raw"
fresh; flip_byte "$T/s2/h/sda/chunks/$hex" 5
expect_fail "chunk $idx" ferry-convert --from "$url2" --format raw --to "$T/outdir/keep.raw" --overwrite
[ "$(cat "$T/outdir/keep.raw")" = old ] || fail "a failed overwrite damaged the existing file"
[ "$(ls -A "$T/outdir")" = keep.raw ] || fail "temporary left: $(ls -A "$T/outdir")"
ferry-convert --from "$url" --format raw --to "$T/outdir/keep.raw" --overwrite -q >/dev/null
cmp "$T/d.img" "$T/outdir/keep.raw" || fail "overwrite did not produce the disk"
ok "an existing destination needs --overwrite, and a failed overwrite keeps the old file"

# killing the converter leaves no complete-looking output
make_disk "$T/big.img" 400M random
ferry-agent clone --source "$T/big.img" --to "file://$T/store/big" --compress gzip -q >/dev/null
ferry-convert --from "file://$T/store/big" --format raw --to "$T/outdir/big.raw" --jobs 1 -q >/dev/null &
pid=$!
wait_for 20 compgen -G "$T/outdir/.tmp-*" || fail "convert never started writing"
kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null || true
[ ! -e "$T/outdir/big.raw" ] || ! cmp -s "$T/big.img" "$T/outdir/big.raw" ||
  fail "a killed convert finished before the kill; make the disk larger"
[ ! -e "$T/outdir/big.raw" ] || fail "a killed convert left big.raw in place"
ok "a converter killed mid-way leaves only a hidden temporary, never the output name"
