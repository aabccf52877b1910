#!/bin/bash
# demo.sh - ferry's main job on embedded defaults, end to end on this
# machine: the agent reports this machine to a local ferry-server, then a
# server-like disk is cloned into a file:// store,
# converted back to raw and proven byte-identical.  Everything it starts
# binds 127.0.0.1 and is stopped before it exits.
set -euo pipefail
TOP=$(cd "$(dirname "$0")/.." && pwd)
BIN=${FERRY_BIN:-$TOP/bin}
DIR=${FERRY_DEMO_DIR:-/tmp/ferry-demo}
SIZE=${FERRY_DEMO_SIZE:-1G}
say() { printf '\n==> %s\n' "$*"; }

rm -rf "$DIR"; mkdir -p "$DIR"
SERVER_PID=
trap '[ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null; wait 2>/dev/null' EXIT

say "building a $SIZE server disk (MBR, /boot and / ext4 with files, mostly free)"
bash "$TOP/scripts/make-demo-disk.sh" "$DIR/web01-sda.img" "$SIZE"
sfdisk -l "$DIR/web01-sda.img" | sed -n '/^Device/,$p'
echo "allocated on disk: $(du -h "$DIR/web01-sda.img" | cut -f1) of $(du -h --apparent-size "$DIR/web01-sda.img" | cut -f1)"

say "starting ferry-server on 127.0.0.1 (state in $DIR/ferry.db)"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$BIN/ferry-server" --listen "127.0.0.1:$PORT" --db "$DIR/ferry.db" 2>"$DIR/server.log" &
SERVER_PID=$!
URL=http://127.0.0.1:$PORT
for _ in $(seq 100); do curl -sf "$URL/v1/hosts" >/dev/null && break; sleep 0.1; done
curl -sf "$URL/v1/hosts" >/dev/null || { cat "$DIR/server.log"; exit 1; }
echo "listening on $URL"

say "discovery of this machine: ferry-agent discover --server $URL"
"$BIN/ferry-agent" discover --server "$URL"
curl -sf "$URL/v1/hosts" | jq -r '.hosts[] | "host \(.id): \(.hostname), \(.os), \(.disks | length) disk(s)"'

STORE=file://$DIR/store/web01/sda
say "clone: ferry-agent clone --source web01-sda.img --to $STORE"
"$BIN/ferry-agent" clone --source "$DIR/web01-sda.img" --to "$STORE" --json > "$DIR/clone.json"
jq . "$DIR/clone.json"

say "convert: ferry-convert --from $STORE --format raw --to restored.raw"
"$BIN/ferry-convert" --from "$STORE" --format raw --to "$DIR/restored.raw" --json > "$DIR/convert.json"
jq . "$DIR/convert.json"

say "proof: the restored disk is the source disk"
cmp "$DIR/web01-sda.img" "$DIR/restored.raw" && echo "cmp: identical"
qemu-img compare -f raw -F raw "$DIR/web01-sda.img" "$DIR/restored.raw"

stored=$(du -sb "$DIR/store" | cut -f1)
size=$(jq .disk_size "$DIR/clone.json")
say "summary"
printf '  disk size      %s bytes (%s)\n' "$size" "$(numfmt --to=iec "$size")"
printf '  data chunks    %s of %s (%s all-zero chunks not stored)\n' \
  "$(jq .data_chunks "$DIR/clone.json")" "$(jq .chunks "$DIR/clone.json")" "$(jq .zero_chunks "$DIR/clone.json")"
printf '  holes skipped  %s, never read\n' "$(numfmt --to=iec "$(jq .hole_bytes "$DIR/clone.json")")"
printf '  bytes read     %s\n' "$(numfmt --to=iec "$(jq .read_bytes "$DIR/clone.json")")"
printf '  bytes stored   %s (%.1f%% of the disk)\n' "$(numfmt --to=iec "$stored")" \
  "$(echo "100 * $stored / $size" | bc -l)"
printf '  clone time     %.2f s\n' "$(jq .seconds "$DIR/clone.json")"
printf '  convert time   %.2f s\n' "$(jq .seconds "$DIR/convert.json")"
printf '  image digest   %s\n' "$(jq -r .image_digest "$DIR/clone.json")"
printf '  files          %s\n' "$DIR"
