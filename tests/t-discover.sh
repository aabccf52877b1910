#!/bin/bash
# ferry-agent discover inventories a system from files alone: every
# distribution fixture (tests/fixtures/roots, made by make-roots.py) gives
# its golden inventory, the tricky fields hold what the fixture says, a
# missing or corrupt file gives null instead of a guess or a crash, and
# this machine's inventory agrees with the system's own tools.
. "$(dirname "$0")/lib.sh"
requires jq lsblk ip df

FIX=$TOP/tests/fixtures
DISTROS="rhel7 rhel8 centos7 ubuntu1604 ubuntu1804 ubuntu2004 ubuntu2204 debian12"

# discover ROOT -> $T/<name>.json (fails the test on a non-zero exit)
discover() {
  local root=$1 out=$2 rc=0
  ferry-agent discover --root "$root" >"$out" 2>"$T/err" || rc=$?
  [ "$rc" -eq 0 ] || fail "discover --root $root exited $rc: $(cat "$T/err")"
  jq -e . "$out" >/dev/null || fail "discover --root $root printed no JSON"
}

# expect FILE FILTER WANT: jq -c FILTER on FILE must print WANT
expect() {
  local got
  got=$(jq -c "$2" "$1")
  [ "$got" = "$3" ] || fail "$(basename "$1" .json): $2 is $got, expected $3"
}

# ---- every fixture against its golden inventory ----
for d in $DISTROS; do
  discover "$FIX/roots/$d" "$T/$d.json"
  if ! diff <(jq -S . "$FIX/expected/$d.json") <(jq -S . "$T/$d.json") \
       >"$T/diff"; then
    head -n 40 "$T/diff" >&2
    fail "discover of fixture $d differs from tests/fixtures/expected/$d.json" \
         "(diff above; if the change is intended, regenerate the golden file)"
  fi
done
ok "all 8 distribution fixtures give their golden inventory"

# ---- targeted checks of the fields that are easy to get wrong ----
# LVM: sizes from extents, PV free, dm names with a doubled '-', and the
# mountpoint of an LV that is also bind-mounted elsewhere
expect "$T/rhel7.json" '.lvm.vgs[0] | [.name, .size, .free, .extent_size]' \
  '["rhel",41871736832,247463936,4194304]'
expect "$T/rhel7.json" '.lvm.lvs | map([.name, .size, .dm, .mountpoint])' \
  '[["root",37329305600,"dm-0","/"],["swap",4294967296,"dm-1","[SWAP]"]]'
expect "$T/rhel7.json" '.lvm.pvs[0] | [.device, .vg, .free]' \
  '["/dev/sda2","rhel",247463936]'
expect "$T/rhel8.json" '.lvm.lvs[] | select(.name == "var-log") |
  [.mapper_path, .dm, .mountpoint, .filesystem]' \
  '["/dev/mapper/rhel-var--log","dm-2","/var/log","xfs"]'
expect "$T/rhel8.json" '.lvm.lvs[] | select(.name == "home") | .size' \
  $(( (2000 + 816) * 4194304 ))
ok "LVM: VG, PV and LV sizes, free extents, dm names and LV mountpoints"

expect "$T/rhel7.json" .boot '{"mode":"bios","secure_boot":false}'
expect "$T/rhel8.json" .boot '{"mode":"uefi","secure_boot":false}'
expect "$T/ubuntu2004.json" .boot '{"mode":"uefi","secure_boot":true}'
expect "$T/debian12.json" .boot '{"mode":"uefi","secure_boot":null}'
ok "boot mode from sys/firmware/efi, Secure Boot from efivars (null unread)"

drv() {  # FILE KERNEL-INDEX DRIVER -> "kernel/initramfs"
  jq -r ".drivers.kernels[$2].drivers.$3 | \"\(.kernel)/\(.initramfs)\"" "$1"
}
[ "$(drv "$T/rhel7.json" 0 virtio_blk)" = module/false ] ||
  fail "rhel7: virtio_blk should be a module missing from the initramfs"
[ "$(drv "$T/rhel8.json" 1 virtio_blk)" = module/true ] ||
  fail "rhel8: virtio_blk not found in the xz initramfs behind dracut's early cpio"
[ "$(drv "$T/centos7.json" 0 xen_blkfront)/$(drv "$T/centos7.json" 0 nvme)" = \
  module/true/module/false ] || fail "centos7: gzip initramfs drivers wrong"
[ "$(drv "$T/debian12.json" 0 virtio_scsi)" = module/true ] ||
  fail "debian12: virtio_scsi not found in the zstd initramfs behind the microcode cpio"
[ "$(drv "$T/ubuntu2004.json" 0 gve)" = module/true ] ||
  fail "ubuntu2004: gve not found in the lz4 initramfs"
[ "$(drv "$T/ubuntu1804.json" 0 hv_storvsc)/$(drv "$T/ubuntu1804.json" 0 virtio_blk)" = \
  builtin/true/missing/false ] || fail "ubuntu1804: built-in or missing drivers wrong"
[ "$(drv "$T/ubuntu2204.json" 0 hv_vmbus)" = null/null ] ||
  fail "ubuntu2204: a kernel without modules.builtin must leave unlisted drivers unknown"
ok "drivers: built in, module or missing per kernel; inside gzip, xz, lz4 and zstd initramfs images"

expect "$T/rhel7.json" .network.default_gateway \
  '{"ipv4":{"address":"192.0.2.1","interface":"ens192"},"ipv6":null}'
expect "$T/ubuntu2204.json" .network.default_gateway.ipv6 \
  '{"address":"fe80::85b:6cff:fe00:1","interface":"ens5"}'
expect "$T/ubuntu2204.json" '.network.interfaces[] | select(.name == "ens5") |
  [.driver, .mtu, .ipv6[0]]' \
  '["ena",9001,{"address":"2001:db8:1234:5600::77","prefix":128,"scope":"global"}]'
expect "$T/rhel8.json" '.network.interfaces[0].ipv6[0]' \
  '{"address":"2001:db8:100::23","prefix":64,"scope":"global"}'
expect "$T/ubuntu2004.json" '.network.interfaces[] | select(.name == "ens4") | .ipv4' \
  '[{"address":"198.51.100.7","prefix":32}]'
expect "$T/ubuntu1604.json" '.network.interfaces[0].ipv4 | map(.address)' \
  '["192.0.2.50","192.0.2.51"]'
ok "network: default gateways, IPv6 prefixes (/64, /128), a GCE /32, secondary addresses"

expect "$T/ubuntu1804.json" .network.dns.upstream_nameservers '["168.63.129.16"]'
ok "an absolute symlink (etc/resolv.conf -> /run/...) resolves inside the root"
expect "$T/ubuntu1604.json" '.platform | [.virtual, .hypervisor]' '[false,"none"]'
expect "$T/ubuntu1804.json" '.platform | [.hypervisor, .cloud]' '["hyperv","azure"]'
expect "$T/centos7.json" '.platform | [.hypervisor, .cloud]' '["xen","aws"]'
expect "$T/ubuntu2204.json" '.platform | [.hypervisor, .cloud]' '["kvm","aws"]'
ok "platform: bare metal, Azure, Xen and Nitro EC2 told apart"

# ---- what cannot be read is null, never a guess or a crash ----
cp -a "$FIX/roots/debian12" "$T/partial"
rm -rf "$T/partial/proc/meminfo" "$T/partial/usr/lib/os-release" \
  "$T/partial/proc/net/route" "$T/partial/run/udev" \
  "$T/partial/proc/self" "$T/partial/usr/lib/modules" \
  "$T/partial/sys/class/dmi" "$T/partial/proc/cpuinfo"
discover "$T/partial" "$T/partial.json"
expect "$T/partial.json" '[.memory, .os.pretty_name, .os.id, .cpu.threads,
  .cpu.sockets, .platform.hypervisor, .platform.virtual]' \
  '[null,null,null,null,null,null,null]'
expect "$T/partial.json" '.disks[0] | [.partition_table, .serial,
  .partitions[1].filesystem, .partitions[1].uuid, .partitions[1].mountpoint]' \
  '[null,null,null,null,null]'
expect "$T/partial.json" '[.mounts, .network.default_gateway.ipv4,
  .network.interfaces[0].ipv4, .network.ipv4_unassigned]' '[null,null,null,null]'
expect "$T/partial.json" '.drivers.kernels[0].drivers.virtio_blk' \
  '{"kernel":null,"initramfs":true,"loaded":null}'
expect "$T/partial.json" '[.hostname, .disks[0].size]' '["web01",21474836480]'
ok "missing files give null fields; what is still readable is still reported"

# a corrupt initramfs and malformed LVM metadata: reported, not fatal
cp -a "$FIX/roots/rhel7" "$T/corrupt"
img=$T/corrupt/boot/initramfs-3.10.0-1160.el7.x86_64.img
head -c 700 "$img" >"$T/img" && mv "$T/img" "$img"
printf 'rhel {\n  id = "unterminated\n' >"$T/corrupt/etc/lvm/backup/rhel"
discover "$T/corrupt" "$T/corrupt.json"
expect "$T/corrupt.json" '.drivers.kernels[0] | [(.initramfs_error | type),
  .drivers.virtio_blk.initramfs, .drivers.virtio_blk.kernel]' \
  '["string",null,"module"]'
expect "$T/corrupt.json" '.lvm.lvs | map([.vg, .name, .size, .lv_uuid])' \
  '[["rhel","root",37329305600,"nV3Pcx-o6Gm-Zr1Q-b0Sa-Lk7E-uY2w-hT5dRf"],["rhel","swap",4294967296,"Aq4Zb1-Xy7W-pL2o-Ks9d-Mn3B-Vc6X-zR8eTy"]]'
expect "$T/corrupt.json" '.lvm.vgs[0] | [.name, .size, .metadata]' \
  '["rhel",null,null]'
ok "a truncated initramfs and unparsable LVM metadata are reported, active LVs still listed from sysfs"

mkdir "$T/empty"
discover "$T/empty" "$T/empty.json"
expect "$T/empty.json" '[.schema, .hostname, .memory, .disks, .lvm, .mounts,
  .fstab, .network.interfaces, .boot.mode, .drivers.kernels]' \
  '[2,null,null,null,null,null,null,null,null,[]]'
expect_fail "no/such/root" ferry-agent discover --root "$T/no/such/root"
ok "an empty root is all unknown; a missing root is one clear error"

# ---- this machine, checked against the system's own tools ----
# df before and after bracket the space discover saw (other jobs may be
# writing to the same filesystem meanwhile)
read -r avail0 used0 < <(df -B1 --output=avail,used / | tail -n 1)
discover / "$T/live.json"
read -r avail1 used1 < <(df -B1 --output=avail,used / | tail -n 1)
expect "$T/live.json" .hostname "\"$(hostname)\""
expect "$T/live.json" .kernel.release "\"$(uname -r)\""
expect "$T/live.json" .kernel.arch "\"$(uname -m)\""
expect "$T/live.json" .memory "$(( $(awk '/^MemTotal:/ {print $2}' /proc/meminfo) * 1024 ))"
expect "$T/live.json" .cpu.threads "$(grep -c '^processor' /proc/cpuinfo)"
expect "$T/live.json" .os.id "\"$(. /etc/os-release && echo "$ID")\""
# disks: lsblk's whole disks less the kinds discover leaves out
lsblk -b -d -n -o NAME,SIZE | awk '$1 !~ /^(loop|ram|zram|sr|dm-|md|nbd|fd)/ {print $1, $2}' |
  sort >"$T/lsblk"
jq -r '.disks[] | "\(.name) \(.size)"' "$T/live.json" | sort >"$T/disks"
diff "$T/lsblk" "$T/disks" >&2 || fail "disks differ from lsblk -b -d (lsblk <, discover >)"
expect "$T/live.json" '[.mounts[] | select(.target == "/")] | length > 0' true
# when / is a block device (not an overlay), that device carries the
# mountpoint, with its space within df's two readings
rootdev=$(awk '$5 == "/" {print $3; exit}' /proc/self/mountinfo)
if [ -e "/sys/dev/block/$rootdev" ]; then
  jq -r '[.disks[], .disks[].partitions[], (.lvm.lvs // [])[]] |
    map(select(.mountpoint == "/"))[0] | "\(.dev) \(.free) \(.used)"' \
    "$T/live.json" >"$T/rootfs"
  read -r ddev dfree dused <"$T/rootfs"
  [ "$ddev" = "$rootdev" ] && [ "$dfree" != null ] && [ "$dused" != null ] ||
    fail "the device $rootdev mounted at / is not in the inventory with its space: $(cat "$T/rootfs")"
  within() {  # VALUE A B: VALUE lies between A and B, 64 MiB slack
    local lo=$2 hi=$3 slack=67108864
    [ "$lo" -le "$hi" ] || { lo=$3; hi=$2; }
    [ "$1" -ge $((lo - slack)) ] && [ "$1" -le $((hi + slack)) ]
  }
  within "$dfree" "$avail0" "$avail1" || fail "free space of / is $dfree, df says $avail0..$avail1"
  within "$dused" "$used0" "$used1" || fail "used space of / is $dused, df says $used0..$used1"
fi
# addresses: ip(8) over netlink is the oracle for the files discover reads
ip -o -4 addr show | awk '{sub(/@.*/, "", $2); print $2, $4}' | sort >"$T/ip4"
jq -r '.network.interfaces[] | .name as $n | .ipv4[]? | "\($n) \(.address)/\(.prefix)"' \
  "$T/live.json" | sort >"$T/d4"
diff "$T/ip4" "$T/d4" >&2 || fail "IPv4 addresses differ from ip -4 addr (ip <, discover >)"
ip -o -6 addr show | awk '{sub(/@.*/, "", $2); print $2, $4}' | sort >"$T/ip6"
jq -r '.network.interfaces[] | .name as $n | .ipv6[]? | "\($n) \(.address)/\(.prefix)"' \
  "$T/live.json" | sort >"$T/d6"
diff "$T/ip6" "$T/d6" >&2 || fail "IPv6 addresses differ from ip -6 addr (ip <, discover >)"
gw=$(ip -4 route show default | awk '{print $3; exit}')
expect "$T/live.json" .network.default_gateway.ipv4.address "$([ -n "$gw" ] && echo "\"$gw\"" || echo null)"
ok "this machine: hostname, kernel, memory, CPUs, disks, / usage, addresses and gateway agree with hostname, uname, lsblk, df and ip"
