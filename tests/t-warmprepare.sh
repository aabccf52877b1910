#!/bin/bash
# A warm migration with guest preparation: syncs repeat while the server
# keeps running, and only at cutover, after the final sync, does the
# migration enter phase preparing, on the final sync's generation; the
# prepared disk is converted and boots on the target's device model (aws:
# NVMe on q35).  The change the server made before the cutover is in the
# disk that booted, the final sync's generation is still the source's
# disk byte for byte, and every sync compares with the source's own
# generations, never with a prepared one.
. "$(dirname "$0")/lib.sh"
requires ferry-prepare guestfish qemu-system-x86_64 sfdisk mke2fs grub-mkimage busybox cpio jq curl
export FERRY_QEMU_ACCEL=tcg LIBGUESTFS_BACKEND=direct LIBGUESTFS_BACKEND_SETTINGS=force_tcg

# an on-prem-style busybox server: fstab by device name, static ens192
mkdir -p "$T/files/etc/network"
printf 'auto lo\niface lo inet loopback\n\nauto ens192\niface ens192 inet static\n    address 192.168.50.10/24\n' \
  > "$T/files/etc/network/interfaces"
EXTRA_ROOT=$T/files FSTAB_DEVICE=vda bash "$TOP/scripts/make-boot-disk.sh" "$T/wp.img" 160M wp01 >"$T/mk.log" 2>&1 ||
  fail "cannot build the test disk: $(tail -5 "$T/mk.log")"

start_server "$T/ferry.db" --convert-workers 1
make_root "$T/root" wp01 vda=$(stat -c %s "$T/wp.img")
start_agent wp01 "$(make_agent wp01 "$T/root" "vda=$T/wp.img")"
wait_for 20 eval 'api GET /v1/hosts | jq -e ".hosts | any(.hostname == \"wp01\")" >/dev/null' ||
  fail "the agent did not register"
cat > "$T/wp.yaml" <<YAML
name: wp
provider: local
store: file://$T/store
prepare: true
options:
  chunk_size: 1M
  sync_interval: 1h
hosts:
  - name: wp01
    format: raw
    warm: true
    boot: true
    boot_model: aws
    boot_marker: FERRY-BOOT-OK wp01
    boot_timeout: 300
YAML
ferry blueprint apply "$T/wp.yaml" >/dev/null || fail "apply: $(ferry blueprint validate "$T/wp.yaml" 2>&1)"
ferry migrate wp01 --blueprint wp >/dev/null || fail "migrate"
job() { api GET /v1/migrations/1; }
wait_for 60 eval 'job | jq -e ".phase == \"ready\"" >/dev/null' ||
  fail "the warm job never got ready: $(ferry job show 1)"
! job | jq -e '.events | any(.phase == "preparing")' >/dev/null ||
  fail "the guest was prepared before the cutover: $(ferry job show 1)"
ok "a warm job with preparation syncs and waits for the cutover without preparing"

# the server changes a file while the job is ready (no sync is running:
# the interval is an hour), then the operator cuts over
guestfish --rw -a "$T/wp.img" -i write /etc/cutover-proof "written before the cutover" ||
  fail "cannot change the source disk"
ferry cutover 1 >/dev/null || fail "cutover"
rc=0; timeout 900 ferry job watch 1 >"$T/watch.out" 2>&1 || rc=$?
[ "$rc" = 0 ] || fail "the cutover did not finish: $(tail -n 8 "$T/watch.out")"
job > "$T/m.json"
# the order of phases: cutover (final sync), cloned, preparing, converting
phases=$(jq -r '[.events[] | select(.kind == "phase") | .phase] | join(" ")' "$T/m.json")
[ "$phases" = "discovered preflight prepared cloning ready cutover cloned preparing converting converted creating done" ] ||
  fail "the phases are not ... ready cutover cloned preparing converting ...: $phases"
jq -e '.events | any(.message | startswith("prepared /etc/fstab: line"))' "$T/m.json" >/dev/null ||
  fail "no preparation event for fstab: $(jq -r '.events[].message' "$T/m.json" | grep -i prep)"
ok "the cutover runs the final sync, then prepares the guest, converts and creates: $phases"

# generations: the final sync's, and the prepared one made from it
img=file://$T/store/wp01/vda
jq -e . "$T/store/wp01/vda/manifest.json" >/dev/null 2>&1 || fail "no manifest.json at $img"
gen=$(jq .generation "$T/store/wp01/vda/manifest.json")
from=$(jq '.prepared_from // 0' "$T/store/wp01/vda/manifest.json")
syncs=$(jq '[.tasks[] | select(.kind == "sync" and .state == "succeeded")] | length' "$T/m.json")
[ "$from" -ge 2 ] && [ "$gen" = $((from + 1)) ] ||
  fail "the prepared generation $gen is not made from the final sync's (prepared_from $from, $syncs syncs)"
ferry-convert --from "$img" --generation "$from" --format raw --to "file://$T/final.raw" >/dev/null 2>"$T/c.err" ||
  fail "convert generation $from: $(cat "$T/c.err")"
cmp -s "$T/final.raw" "$T/wp.img" || fail "generation $from (the final sync) is not the source's last state"
ok "the preparation is generation $gen, made from generation $from (the final sync), which is the source disk byte for byte"

line=$(jq -r '.tasks[] | select(.kind == "create") | .result.boot.line' "$T/m.json")
[[ $line == "FERRY-BOOT-OK wp01 "*"root=/dev/nvme0n1p2"* ]] || fail "the boot line does not show the NVMe root: '$line'"
got=$(guestfish --ro -a "$T/store/wp01/vda.raw" -i cat /etc/cutover-proof) || fail "the booted disk has no /etc/cutover-proof"
[ "$got" = "written before the cutover" ] || fail "/etc/cutover-proof is '$got'"
guestfish --ro -a "$T/store/wp01/vda.raw" -i cat /etc/fstab | grep -q '^UUID=' ||
  fail "the booted disk's fstab is not by UUID"
ok "the disk that booted on NVMe holds the change made before the cutover and the preparation's fstab"
