#!/bin/bash
# The boot proof: real bootable server disks (MBR and GPT with a BIOS boot
# partition; GRUB; /boot and / ext4 mounted by UUID; a kernel and
# initramfs; an init that prints FERRY-BOOT-OK <hostname> on the serial
# console) are migrated through ferry-server with a provider: local
# blueprint: cloned into the S3 server, converted to every format, and
# booted by the local target driver in qemu-system-x86_64 (TCG), which
# reports the migration done only when the marker appears.  The agents
# hold no cloud credentials: they write with the server's grants.
# ferry-test-alone: boots guests under TCG within timeouts
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/servers.sh"
requires qemu-system-x86_64 qemu-img sfdisk mke2fs grub-mkimage busybox cpio jq curl
# CI boots the four formats the clouds import (raw and vhd-dynamic are the
# same disk as raw and vhd to the guest); make check-boot-matrix boots all
FORMATS=${FERRY_BOOT_FORMATS:-vhd vmdk qcow2 gce}
export FERRY_QEMU_ACCEL=tcg

LAYOUT=mbr bash "$TOP/scripts/make-boot-disk.sh" "$T/bootmbr.img" 160M bootmbr >"$T/mk1.log" 2>&1 ||
  fail "cannot build the MBR test disk: $(tail -5 "$T/mk1.log")"
LAYOUT=gpt bash "$TOP/scripts/make-boot-disk.sh" "$T/bootgpt.img" 160M bootgpt >"$T/mk2.log" 2>&1 ||
  fail "cannot build the GPT test disk: $(tail -5 "$T/mk2.log")"
sfdisk -d "$T/bootgpt.img" | grep -q "label: gpt" || fail "the GPT disk has no GPT"
ok "built two bootable server disks (MBR and GPT)"

swift_start
mkdir -p "$T/state"
start_server "$T/state/ferry.db" --convert-workers 2
for h in bootmbr bootgpt; do
  make_root "$T/root-$h" "$h" sda=$((160 << 20))
  conf=$(make_agent "$h" "$T/root-$h" "sda=$T/$h.img")
  # as on a real source: no cloud credentials, grants from the server
  start_clean_agent "$h" "$conf"
done
wait_for 20 eval '[ "$(api GET /v1/hosts | jq ".hosts | length")" = 2 ]' || fail "agents did not register"

n=0
for f in $FORMATS; do
  cat > "$T/bp-$f.yaml" <<YAML
name: boot-$f
provider: local
store: s3://test/boot
options:
  chunk_size: 1M
hosts:
  - name: bootmbr
    format: $f
    boot: true
    boot_marker: FERRY-BOOT-OK bootmbr
    boot_timeout: 240
  - name: bootgpt
    format: $f
    boot: true
    boot_marker: FERRY-BOOT-OK bootgpt
    boot_timeout: 240
YAML
  ferry blueprint apply "$T/bp-$f.yaml" >/dev/null || fail "apply boot-$f"
  for h in bootmbr bootgpt; do
    ferry migrate "$h" --blueprint "boot-$f" >/dev/null || fail "migrate $h as $f"
    n=$((n + 1))
    timeout 400 ferry job watch "$n" >"$T/watch-$n.out" 2>&1 ||
      fail "$h as $f did not boot: $(ferry job show "$n")"
    api GET "/v1/migrations/$n" | jq -e '.tasks[] | select(.kind == "create") | .result.boot.marker == "FERRY-BOOT-OK '"$h"'"' >/dev/null ||
      fail "$h as $f: no boot marker in the result: $(api GET /v1/migrations/$n | jq '.tasks[-1]')"
    secs=$(api GET "/v1/migrations/$n" | jq '.tasks[] | select(.kind == "create") | .result.boot.seconds')
    echo "  $h as $f: booted in ${secs}s"
  done
  no_cloud_credentials bootmbr
  no_cloud_credentials bootgpt
  ok "the MBR and the GPT server, migrated as $f through S3 by agents without cloud credentials (grants), boot and print their marker"
done

# /usr/bin/aws reads an output ferry wrote in S3: it is a real object
/usr/bin/aws --endpoint-url "$S3_ENDPOINT" s3 ls s3://test/boot/bootmbr/ >"$T/ls.out" 2>&1 || fail "aws s3 ls: $(cat "$T/ls.out")"
grep -qE "sda\.(raw|vhd|vmdk|qcow2|tar\.gz)$" "$T/ls.out" || fail "no converted disk in S3: $(cat "$T/ls.out")"

# a disk that does not boot is reported as a failure with the console tail
cp "$T/bootmbr.img" "$T/broken.img"
dd if=/dev/zero of="$T/broken.img" bs=446 count=1 conv=notrunc status=none   # no boot code
make_root "$T/root-broken" broken sda=$((160 << 20))
conf=$(make_agent broken "$T/root-broken" "sda=$T/broken.img")
start_clean_agent broken "$conf"
wait_for 20 eval 'api GET /v1/hosts | jq -e ".hosts | any(.hostname == \"broken\")" >/dev/null' || fail "broken host"
sed "s/bootmbr/broken/g; s/boot_timeout: 240/boot_timeout: 20/; s/name: boot-[a-z0-9-]*/name: broken/; s/format: .*/format: raw/" "$T/bp-$f.yaml" |
  sed '/bootgpt/,$d' > "$T/broken.yaml"
ferry blueprint apply "$T/broken.yaml" >/dev/null || fail "apply broken: $(ferry blueprint validate "$T/broken.yaml" 2>&1)"
ferry migrate broken --blueprint broken >/dev/null
n=$((n + 1))
rc=0; timeout 200 ferry job watch "$n" >"$T/wb.out" 2>&1 || rc=$?
[ "$rc" = 1 ] || fail "a disk that cannot boot was not a failure: $(cat "$T/wb.out")"
grep -q "did not show 'FERRY-BOOT-OK broken' on its console within 20 s" "$T/wb.out" ||
  fail "the boot failure is not explained: $(cat "$T/wb.out")"
ok "a migrated disk that does not boot fails the migration in phase creating, with the console's last lines"
