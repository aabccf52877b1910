#!/bin/bash
# The local target's boot models: hosts[].boot_model makes the boot check
# boot the migrated disk on the named cloud's device model (aws: q35 with
# the disk on its own NVMe controller; gcp: virtio-scsi; azure: IDE disks
# and an e1000 NIC), and the result says which model and devices ran and
# the console line the guest printed.  The guest is make-boot-disk.sh's
# busybox server: its initramfs carries virtio_blk, virtio_scsi, ata_piix
# and hv_storvsc and the cloud kernel has nvme built in, and its marker
# line names the root device it found, so the line shows the bus it
# really booted on (/dev/nvme0n1p2, /dev/sda2).  The blueprint refuses an
# unknown model and a model on a cloud provider; a disk that does not
# boot fails with a message naming the model.
# ferry-test-alone: boots guests under TCG within timeouts
. "$(dirname "$0")/lib.sh"
requires qemu-system-x86_64 sfdisk mke2fs grub-mkimage busybox cpio jq curl
export FERRY_QEMU_ACCEL=tcg

LAYOUT=mbr bash "$TOP/scripts/make-boot-disk.sh" "$T/models.img" 160M models >"$T/mk.log" 2>&1 ||
  fail "cannot build the test disk: $(tail -5 "$T/mk.log")"

bp() { # NAME HOST MODEL TIMEOUT [PROVIDER]
  cat <<YAML
name: $1
provider: ${5:-local}
$( [ "${5:-local}" = local ] || printf 'region: r1\n' )
store: file://$T/store
options:
  chunk_size: 1M
hosts:
  - name: $2
    format: raw
    boot: true
    boot_model: $3
    boot_marker: FERRY-BOOT-OK $2
    boot_timeout: $4
YAML
}

FERRY_LOG=debug start_server "$T/ferry.db" --convert-workers 1
bp bad models vmware 60 > "$T/bad.yaml"
rc=0; ferry blueprint validate "$T/bad.yaml" >"$T/v.out" 2>&1 || rc=$?
[ "$rc" = 1 ] && grep -qF "hosts[0].boot_model: 'boot_model' must be one of local, openstack, aws, gcp, azure" "$T/v.out" ||
  fail "an unknown boot_model was not refused as it should be: $(cat "$T/v.out")"
bp bad models aws 60 aws | sed 's/^    boot: true$/    machine_type: m5.large/; /boot_marker/d; /boot_timeout/d' > "$T/bad2.yaml"
rc=0; ferry blueprint validate "$T/bad2.yaml" >"$T/v2.out" 2>&1 || rc=$?
[ "$rc" = 1 ] && grep -qF "the boot check runs on the local target only" "$T/v2.out" ||
  fail "a boot_model on provider aws was not refused: $(cat "$T/v2.out")"
ok "the blueprint refuses an unknown boot_model and a boot_model on a cloud provider"

make_root "$T/root-models" models sda=$((160 << 20))
start_agent models "$(make_agent models "$T/root-models" "sda=$T/models.img")"
wait_for 20 eval 'api GET /v1/hosts | jq -e ".hosts | any(.hostname == \"models\")" >/dev/null' ||
  fail "the agent did not register"

n=0
# model, the devices it must report, the root device the guest must find
while read -r model devices root; do
  bp "bm-$model" models "$model" 120 > "$T/bp-$model.yaml"
  ferry blueprint apply "$T/bp-$model.yaml" >/dev/null ||
    fail "apply bm-$model: $(ferry blueprint validate "$T/bp-$model.yaml" 2>&1)"
  ferry migrate models --blueprint "bm-$model" >/dev/null || fail "migrate on $model"
  n=$((n + 1))
  timeout 300 ferry job watch "$n" >"$T/watch-$n.out" 2>&1 ||
    fail "the guest did not boot on the $model model: $(tail -n 3 "$T/watch-$n.out")"
  r=$(api GET "/v1/migrations/$n" | jq -c '.tasks[] | select(.kind == "create") | .result.boot')
  [ "$(json "$r" .model)" = "$model" ] || fail "$model: result.boot.model is not $model: $r"
  [ "$(json "$r" .devices)" = "$devices" ] || fail "$model: devices are not $devices: $r"
  [ "$(json "$r" .firmware)" = bios ] || fail "$model: a BIOS host booted with $(json "$r" .firmware): $r"
  line=$(json "$r" .line)
  [[ $line == "FERRY-BOOT-OK models kernel="*" root=$root boot_mounted=yes" ]] ||
    fail "$model: the marker line does not show root on $root: '$line'"
  grep -q "boot check: qemu-system-x86_64 .*$(json "$r" '.devices | split(",")[0]')" "$T/server.log" ||
    fail "$model: the server's debug log has no qemu command line with $devices"
  echo "  $model: $devices, booted in $(json "$r" .seconds) s: $line"
done <<'EOF'
aws nvme,virtio-net-pci /dev/nvme0n1p2
gcp virtio-scsi-pci,virtio-net-pci /dev/sda2
azure ide-hd,e1000 /dev/sda2
EOF
grep -q 'boot check: qemu-system-x86_64 -machine q35,accel=tcg .*-device nvme,serial=ferry0,drive=d0,bootindex=0' "$T/server.log" ||
  fail "the aws model's qemu command line is not q35 with an NVMe boot disk: $(grep 'boot check: qemu' "$T/server.log" | head -n 1)"
grep -q 'boot check: qemu-system-x86_64 -machine pc,accel=tcg .*-netdev user,id=n0 -device e1000,netdev=n0 .*-device ide-hd,bus=ide.0,unit=0,drive=d0,bootindex=0' "$T/server.log" ||
  fail "the azure model's qemu command line has no e1000 and IDE disk: $(grep 'boot check: qemu' "$T/server.log" | tail -n 1)"
! grep -q 'boot check: qemu-system-x86_64 .*-nic none' "$T/server.log" || fail "a boot check still has -nic none"
ok "the busybox server boots on the aws (NVMe), gcp (virtio-scsi) and azure (IDE, e1000) models and prints its marker with the root device of that bus"

# a disk that does not boot: the failure names the model and its devices
cp "$T/models.img" "$T/broken.img"
dd if=/dev/zero of="$T/broken.img" bs=446 count=1 conv=notrunc status=none   # no boot code
make_root "$T/root-broken" broken sda=$((160 << 20))
start_agent broken "$(make_agent broken "$T/root-broken" "sda=$T/broken.img")"
wait_for 20 eval 'api GET /v1/hosts | jq -e ".hosts | any(.hostname == \"broken\")" >/dev/null' || fail "broken host"
bp broken broken gcp 10 > "$T/broken.yaml"
ferry blueprint apply "$T/broken.yaml" >/dev/null || fail "apply broken"
ferry migrate broken --blueprint broken >/dev/null || fail "migrate broken"
n=$((n + 1))
rc=0; timeout 200 ferry job watch "$n" >"$T/wb.out" 2>&1 || rc=$?
[ "$rc" = 1 ] || fail "a disk that cannot boot was not a failure: $(cat "$T/wb.out")"
grep -q "did not show 'FERRY-BOOT-OK broken' on its console within 10 s booting on the gcp model (virtio-scsi-pci,virtio-net-pci" "$T/wb.out" ||
  fail "the boot failure does not name the model: $(cat "$T/wb.out")"
ok "a disk that does not boot fails with a message naming the boot model and its devices"
