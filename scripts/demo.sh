#!/bin/bash
# demo.sh - ferry's main job on embedded defaults, end to end on this
# machine: a ferry-server on 127.0.0.1, an agent for a bootable
# server-like disk, a blueprint for the local target with a file:// store,
# then one migration through every phase (discover, preflight, clone,
# convert to qcow2, create: boot the migrated server in qemu and wait for
# its console), and proof that the migrated disk is the source disk.
# Everything it starts is stopped before it exits.
set -euo pipefail
TOP=$(cd "$(dirname "$0")/.." && pwd)
BIN=${FERRY_BIN:-$TOP/bin}
DIR=${FERRY_DEMO_DIR:-/tmp/ferry-demo}
SIZE=${FERRY_DEMO_SIZE:-1G}
export PATH="$BIN:$PATH"
say() { printf '\n==> %s\n' "$*"; }

rm -rf "$DIR"; mkdir -p "$DIR/state" "$DIR/agent" "$DIR/root"
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true' EXIT

say "building a bootable $SIZE server disk for host web01 (MBR, GRUB, /boot and / ext4 with a kernel, an init and the server's files; mostly free)"
mkdir -p "$DIR/files/var/lib/db" "$DIR/files/var/log" "$DIR/files/etc"
head -c 48M /dev/urandom > "$DIR/files/var/lib/db/table.ibd"
seq 1 400000 | sed 's/^/GET \/index.html 200 /' > "$DIR/files/var/log/access.log"
printf 'LISTEN=0.0.0.0:80\n' > "$DIR/files/etc/web.conf"
# as an old on-prem install: fstab by device name, a static address bound
# to the old NIC's MAC address (what guest preparation changes)
mkdir -p "$DIR/files/etc/network" "$DIR/files/etc/udev/rules.d"
printf 'auto lo\niface lo inet loopback\n\nauto ens192\niface ens192 inet static\n    address 192.168.50.10/24\n    gateway 192.168.50.1\n' \
  > "$DIR/files/etc/network/interfaces"
printf 'SUBSYSTEM=="net", ACTION=="add", ATTR{address}=="00:50:56:aa:bb:cc", NAME="ens192"\n' \
  > "$DIR/files/etc/udev/rules.d/70-persistent-net.rules"
EXTRA_ROOT=$DIR/files FSTAB_DEVICE=sda bash "$TOP/scripts/make-boot-disk.sh" "$DIR/web01-sda.img" "$SIZE" web01 |
  sed 's/^/  /'
rm -rf "$DIR/files"
sfdisk -l "$DIR/web01-sda.img" | sed -n '/^Device/,$p'
echo "allocated: $(du -h "$DIR/web01-sda.img" | cut -f1) of $(du -h --apparent-size "$DIR/web01-sda.img" | cut -f1)"
# what the agent on web01 would read from /proc, /sys and /etc
mkdir -p "$DIR/root/etc" "$DIR/root/proc/sys/kernel" "$DIR/root/sys/block/sda"
echo web01 > "$DIR/root/proc/sys/kernel/hostname"
printf 'ID=debian\nVERSION_ID="12"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n' > "$DIR/root/etc/os-release"
echo $(( $(stat -c %s "$DIR/web01-sda.img") / 512 )) > "$DIR/root/sys/block/sda/size"

say "starting ferry-server on 127.0.0.1 (state in $DIR/state)"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
FERRY_QEMU_ACCEL=${FERRY_QEMU_ACCEL:-tcg} LIBGUESTFS_BACKEND=${LIBGUESTFS_BACKEND:-direct} \
  ferry-server --listen "127.0.0.1:$PORT" --db "$DIR/state/ferry.db" 2>"$DIR/server.log" &
PIDS+=($!)
# HTTPS with the server's own CA (state/ca.pem); the CLI trusts the CA
# beside its token file, the agent pins its fingerprint
export FERRY_SERVER=https://127.0.0.1:$PORT FERRY_TOKEN_FILE=$DIR/state/operator.token
for _ in $(seq 100); do curl -s --cacert "$DIR/state/ca.pem" -o /dev/null "$FERRY_SERVER/v1/hosts" && break; sleep 0.1; done
echo "listening on $FERRY_SERVER; tokens: $DIR/state/enroll.token, $DIR/state/operator.token (mode 0600)"
PIN=$(ferry ca)
echo "the CA agents pin: $PIN"

say "starting the agent for web01 (ferry-agent run): it enrolls and posts its discovery"
install -m 600 "$DIR/state/enroll.token" "$DIR/agent/enroll.token"
cat > "$DIR/agent/agent.conf" <<CONF
server = $FERRY_SERVER
$PIN
enroll_token_file = $DIR/agent/enroll.token
token_file = $DIR/agent/agent.token
root = $DIR/root
disk.sda = $DIR/web01-sda.img
poll_wait = 5
CONF
ferry-agent run --config "$DIR/agent/agent.conf" 2>"$DIR/agent.log" &
PIDS+=($!)
for _ in $(seq 100); do ferry hosts 2>/dev/null | grep -q web01 && break; sleep 0.1; done
ferry hosts

say "blueprint: web01 onto the local KVM target as qcow2, disks in file://$DIR/store, prepared for KVM, boot-checked"
cat > "$DIR/wave1.yaml" <<YAML
name: wave1
provider: local
store: file://$DIR/store
prepare: true                           # fit the copy to KVM (docs/PREPARATION.md)
hosts:
  - name: web01
    format: qcow2
    boot: true                          # boot it in qemu before calling it done
    boot_marker: FERRY-BOOT-OK web01    # what its console prints when up
YAML
cat "$DIR/wave1.yaml"
ferry blueprint apply "$DIR/wave1.yaml"

say "migrate: ferry migrate web01 --blueprint wave1; ferry job watch 1"
ferry migrate web01 --blueprint wave1
ferry job watch 1 --timeout 600
ferry jobs

say "what preparation changed in the migrated copy (job events; the source is untouched)"
ferry job show 1 | grep -E "prepar" || true

OUT=$DIR/store/web01/sda.qcow2
say "proof: the migrated disk is the prepared copy of the source disk, and it booted"
qemu-img info "$OUT" | sed -n '1,4p'
qemu-img check -q "$OUT" && echo "qemu-img check: no errors"
ferry-convert --verify --from "file://$DIR/store/web01/sda" --format qcow2 --to "$OUT" | sed 's/^/ferry-convert --verify: /'
say "the source generation back to raw: ferry-convert --from file://$DIR/store/web01/sda --generation 1 --format raw --to restored.raw"
ferry-convert --from "file://$DIR/store/web01/sda" --generation 1 --format raw --to "$DIR/restored.raw"
cmp "$DIR/web01-sda.img" "$DIR/restored.raw" && echo "cmp: generation 1 (what the agent sent) is byte-identical to the source"
qemu-img compare -f raw -F raw "$DIR/web01-sda.img" "$DIR/restored.raw"
echo "manifest.json: generation $(jq .generation "$DIR/store/web01/sda/manifest.json"), prepared from $(jq .prepared_from "$DIR/store/web01/sda/manifest.json") for $(jq -r .prepared_for "$DIR/store/web01/sda/manifest.json")"

R=$(curl -s --cacert "$DIR/state/ca.pem" -H @<(printf 'Authorization: Bearer %s\n' "$(cat "$FERRY_TOKEN_FILE")") "$FERRY_SERVER/v1/migrations/1")
clone=$(jq '.tasks[] | select(.kind == "clone") | .result' <<<"$R")
size=$(jq .disk_size <<<"$clone")
stored=$(du -sb "$DIR/store/web01/sda" | cut -f1)
say "summary"
printf '  disk size      %s bytes (%s)\n' "$size" "$(numfmt --to=iec "$size")"
printf '  bytes read     %s (holes are never read)\n' "$(numfmt --to=iec "$(jq .read_bytes <<<"$clone")")"
printf '  bytes stored   %s (%.1f%% of the disk, zstd where it pays)\n' "$(numfmt --to=iec "$stored")" \
  "$(echo "100 * $stored / $size" | bc -l)"
printf '  clone time     %.2f s\n' "$(jq .seconds <<<"$clone")"
printf '  preparation    %s change(s) in %.1f s (libguestfs)\n' \
  "$(jq '.tasks[] | select(.kind == "prepare") | .result.changes | length' <<<"$R")" \
  "$(jq '.tasks[] | select(.kind == "prepare") | .result.seconds' <<<"$R")"
printf '  boot check     %s after %.1f s (qemu %s)\n' \
  "$(jq -r '.tasks[] | select(.kind == "create") | .result.boot.marker' <<<"$R")" \
  "$(jq '.tasks[] | select(.kind == "create") | .result.boot.seconds' <<<"$R")" \
  "$(jq -r '.tasks[] | select(.kind == "create") | .result.boot.accel' <<<"$R")"
printf '  migration      %s -> %s\n' "$(jq -r .created <<<"$R")" "$(jq -r .updated <<<"$R")"
printf '  image digest   %s\n' "$(jq -r .image_digest <<<"$clone")"
printf '  files          %s\n' "$DIR"

# the dashboard, on the same server and TLS, until the user is done
say "dashboard: $FERRY_SERVER/ui/"
echo "  sign in with the operator token in $DIR/state/operator.token (mode 0600: paste it into the form; it stays in that browser tab)"
echo "  the server's certificate is signed by its own CA: trust $DIR/state/ca.pem in the browser (or accept the certificate once)"
echo "  from another machine: ssh -L $PORT:127.0.0.1:$PORT root@$(hostname), then open the same URL"
if [ "${DEMO_KEEP:-1}" != 0 ] && [ -t 0 ]; then
  read -r -p "  press Enter to stop the server and end the demo (DEMO_KEEP=0 does not wait) " _
fi
