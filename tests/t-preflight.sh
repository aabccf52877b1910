#!/bin/bash
# Preflight checks each host's real inventory (the distribution fixtures)
# against its target: boot mode, partition table, drivers in the initramfs,
# disk limits.  A host that would not boot fails in phase preflight with
# the cause and the fix; one that would passes on to cloning.
. "$(dirname "$0")/lib.sh"
requires curl jq

start_server "$T/ferry.db"
for fx in rhel7 ubuntu2004 ubuntu1804 ubuntu2204 centos7 ubuntu1604; do
  conf=$(make_agent "$fx" "$TOP/tests/fixtures/roots/$fx")
  ferry-agent discover --root "$TOP/tests/fixtures/roots/$fx" --config "$conf" --post >/dev/null ||
    fail "discover $fx"
done

bp() {  # NAME PROVIDER HOST [FORMAT]; PREP=true|false sets prepare
  cat > "$T/$1.yaml" <<YAML
name: $1
provider: $2
${PREP:+prepare: $PREP}
region: r1
store: file://$T/store
hosts:
  - name: $3
    machine_type: m1
${4:+    format: $4}
YAML
  sed -i '/^region/d' "$T/$1.yaml"
  [ "$2" = local ] || [ "$2" = openstack ] || sed -i 's/^provider: .*/&\nregion: r1/' "$T/$1.yaml"
  [ "$2" != local ] || sed -i '/machine_type/d' "$T/$1.yaml"
  ferry blueprint apply "$T/$1.yaml" >/dev/null || fail "apply $1: $(ferry blueprint validate "$T/$1.yaml" 2>&1)"
}
# expect_preflight HOST BLUEPRINT fail|pass MESSAGE
n=0
expect_preflight() {
  local host=$1 bpn=$2 want=$3 msg=$4 id
  ferry migrate "$host" --blueprint "$bpn" >/dev/null || fail "migrate $host"
  n=$((n + 1)); id=$n
  wait_for 20 eval 'api GET /v1/migrations/'$id' | jq -e ".state != \"active\" or .phase == \"cloning\"" >/dev/null' ||
    fail "migration $id stuck: $(ferry job show $id)"
  api GET "/v1/migrations/$id" > "$T/m$id.json"
  if [ "$want" = fail ]; then
    [ "$(jq -r .state "$T/m$id.json")" = failed ] && [ "$(jq -r .failed_phase "$T/m$id.json")" = preflight ] ||
      fail "$host on $bpn: expected a preflight failure: $(ferry job show $id)"
    jq -r .error "$T/m$id.json" | grep -qF -- "$msg" || fail "$host on $bpn: error lacks '$msg': $(jq -r .error "$T/m$id.json")"
  else
    [ "$(jq -r .phase "$T/m$id.json")" = cloning ] || fail "$host on $bpn: expected to pass preflight: $(ferry job show $id)"
    jq -e '.events | any(.message | test("preflight passed"))' "$T/m$id.json" >/dev/null || fail "no 'preflight passed' event"
    [ -z "$msg" ] || jq -r '.events[].message' "$T/m$id.json" | grep -qF -- "$msg" ||
      fail "$host on $bpn: no event with '$msg': $(ferry job show $id)"
    ferry cancel "$id" >/dev/null
  fi
}

PREP=false bp kvm local app01
expect_preflight app01 kvm fail "kernel 3.10.0-1160.el7.x86_64 has no virtio_blk|virtio_scsi in its initramfs: the disk would not be found at boot on local; install the virtio drivers"
ok "RHEL 7 from VMware without virtio in its initramfs is stopped before KVM (prepare: false), with the dracut fix"

# with guest preparation (the default for a host with a kernel): the
# driver is added then, if the guest has a tool to rebuild its initramfs
bp kvmp local app01
expect_preflight app01 kvmp fail "kernel 3.10.0-1160.el7.x86_64 has no virtio_blk|virtio_scsi in its initramfs and the host has no tool to rebuild it (update-initramfs or dracut)"
cp -a "$TOP/tests/fixtures/roots/rhel7" "$T/rhel7"
mkdir -p "$T/rhel7/usr/bin" && : > "$T/rhel7/usr/bin/dracut"
ferry-agent discover --root "$T/rhel7" --config "$T/agent-rhel7/agent.conf" --post >/dev/null || fail "discover rhel7 with dracut"
jq -e '.drivers.initramfs_tool == "dracut"' <(ferry-agent discover --root "$T/rhel7") >/dev/null ||
  fail "discovery does not report dracut: $(ferry-agent discover --root "$T/rhel7" | jq -c '.drivers.initramfs_tool')"
expect_preflight app01 kvmp pass "info: kernel 3.10.0-1160.el7.x86_64 has no virtio_blk|virtio_scsi in its initramfs: guest preparation adds it and rebuilds the initramfs with the guest's dracut"
ok "with guest preparation a missing virtio driver is added (the host has dracut) or, without an initramfs tool, stops the migration before any data moves"

PREP=false bp az1 azure gce-app-1
expect_preflight gce-app-1 az1 fail "kernel 5.15.0-1049-gcp has no hv_vmbus in its initramfs"
jq -e '[.plan.preflight[] | select(.code == "boot-mode")] == []' "$T/m$n.json" >/dev/null ||
  fail "the UEFI host got a boot-mode finding on azure: $(jq -c .plan.preflight "$T/m$n.json")"
ok "a UEFI host is not refused by Azure for its boot mode (it becomes a Gen2 VM); a GCE kernel without the Hyper-V drivers is"

bp aws1 aws web-azure-01
expect_preflight web-azure-01 aws1 fail "boot disk sda has a GPT partition table and boots BIOS: aws boots a GPT boot disk only in UEFI mode"
ok "a GPT disk booting BIOS is refused by AWS VM Import"

bp az2 azure web-azure-01
expect_preflight web-azure-01 az2 pass "warning: free space on / is unknown"
ok "Ubuntu 18.04 from Azure passes preflight for Azure (Hyper-V drivers in its initramfs); unknowns are warnings"

bp aws2 aws ip-203-0-113-77 vmdk
expect_preflight ip-203-0-113-77 aws2 pass ""
bp aws3 aws ip-203-0-113-25 raw
expect_preflight ip-203-0-113-25 aws3 pass ""
ok "Ubuntu 22.04 (NVMe, ENA) and CentOS 7 (Xen drivers) pass preflight for AWS"

PREP=false bp gcp1 gcp app01
expect_preflight app01 gcp1 fail "has no virtio_scsi|nvme in its initramfs"
api GET /v1/migrations/$n | jq -r '.events[].message' | grep -q "warning: google-guest-agent is not installed" ||
  fail "the missing guest agent is not reported"
ok "findings name every missing driver and guest agent"

# the root filesystem and the mounts fstab waits for at boot: Ubuntu 16.04
# with / on sda and /srv/data (by UUID) on sdb
disks_bp() {  # NAME DISKS
  printf 'name: %s\nprovider: local\nstore: file://%s/store\nhosts:\n  - name: fileserver\n    disks: [%s]\n' \
    "$1" "$T" "$2" > "$T/$1.yaml"
  ferry blueprint apply "$T/$1.yaml" >/dev/null || fail "apply $1: $(ferry blueprint validate "$T/$1.yaml" 2>&1)"
}
disks_bp fs-sda sda
expect_preflight fileserver fs-sda fail "/etc/fstab mounts /srv/data from UUID=7d2c4e6f-8a0b-4c2d-9e1f-3a5b7c9d1e2f, on disk sdb, which this migration does not include"
disks_bp fs-sdb sdb
expect_preflight fileserver fs-sdb fail "the root filesystem UUID=e3b0c442-98fc-4c14-9af0-1c2a3b4c5d6e is on disk sda, which this migration does not include"
disks_bp fs-both "sda, sdb"
expect_preflight fileserver fs-both pass ""
jq -e '[.plan.preflight[] | select(.code == "root-fs" or .code == "fstab")] == []' "$T/m$n.json" >/dev/null ||
  fail "with both disks there are still root or fstab findings: $(jq -c .plan.preflight "$T/m$n.json")"
ok "a migration without the root's disk, or without a disk fstab mounts at boot, is stopped before any data moves; the noauto USB entry and the NFS and bind mounts are not disks"

# a root preparation cannot find: / in fstab names nothing the inventory
# has and no mount table says where / is
cp -a "$TOP/tests/fixtures/roots/ubuntu1604" "$T/u1604"
rm -f "$T/u1604/proc/self/mountinfo" "$T/u1604/proc/mounts"
sed -i 's|^UUID=e3b0c442-98fc-4c14-9af0-1c2a3b4c5d6e|UUID=00000000-0000-4000-8000-000000000000|' "$T/u1604/etc/fstab"
ferry-agent discover --root "$T/u1604" --config "$T/agent-ubuntu1604/agent.conf" --post >/dev/null || fail "discover the edited root"
expect_preflight fileserver fs-both fail "cannot find the root filesystem: no disk, partition or logical volume in the inventory is mounted on /, and /etc/fstab mounts / from UUID=00000000-0000-4000-8000-000000000000, which is none of them"
PREP=false bp fs-noprep local fileserver
expect_preflight fileserver fs-noprep pass "warning: cannot find the root filesystem in the inventory"
ok "with guest preparation, a root that neither the mount table nor fstab places on a disk stops the migration in preflight; without it, it is a warning"

