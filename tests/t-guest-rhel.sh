#!/bin/bash
# t-guest-rhel: tests/guests/rhel.sh builds the RHEL-shaped unprepared test
# guest of issue 15 as the preparation tests expect it: XFS root on LVM
# (VG rhel, LV root) and XFS /boot on an MBR disk, a host-only dracut
# initrd holding virtio_blk but not nvme/virtio_scsi/ata_piix/hv_*, GRUB
# with root=/dev/mapper/rhel-root and no serial console, fstab by
# device names, a MAC-bound static NetworkManager keyfile (0600),
# open-vm-tools and the marker unit enabled, an empty machine-id.
# The oracle is libguestfs (read-only handle) and the guest's own lsinitrd.
# Cold, the build takes about 8 minutes (debootstrap + guestfish, once per
# cache); warm, this test takes well under a minute.  No boot here: the
# boot proofs are the preparation tests'.
# (a cold build: debootstrap, then libguestfs)
# ferry-test-timeout: 1800
# ferry-test-alone: libguestfs' appliance builds the test guest
. "$(dirname "$0")/lib.sh"
requires guestfish debootstrap
export LIBGUESTFS_BACKEND=direct LIBGUESTFS_BACKEND_SETTINGS=force_tcg

img=$T/rhel.img
bash "$TOP/tests/guests/rhel.sh" "$img" srv-rhel1 || fail "tests/guests/rhel.sh did not build the guest (its message is above)"
[ "$(stat -c %s "$img")" -eq $((2 << 30)) ] || fail "$img is not 2 GiB: $(stat -c %s "$img") bytes"
used=$(du -k "$img" | cut -f1)
[ "$used" -lt $((800 * 1024)) ] || fail "$img holds $used KiB of data, more than 800 MB"
ok "the guest is a sparse 2 GiB disk holding $((used / 1024)) MiB"

guestfish --ro --format=raw -a "$img" >"$T/gf" 2>"$T/gf.err" <<'EOF' || fail "guestfish could not inspect $img: $(tail -n 3 "$T/gf.err")"
run
echo ==PARTS==
part-list /dev/sda
echo ==TYPES==
vfs-type /dev/sda1
vfs-type /dev/rhel/root
echo ==LVS==
lvs
mount /dev/rhel/root /
mount /dev/sda1 /boot
echo ==FSTAB==
cat /etc/fstab
echo ==KEYFILE==
sh "stat -c %a /etc/NetworkManager/system-connections/ens192.nmconnection; cat /etc/NetworkManager/system-connections/ens192.nmconnection"
echo ==ENABLED==
sh "systemctl is-enabled NetworkManager.service NetworkManager-wait-online.service open-vm-tools.service ferry-boot-ok.service; test ! -e /etc/network/interfaces && echo no-ifupdown; test ! -e /etc/selinux/config && echo no-selinux; echo machine-id-bytes=$(stat -c %s /etc/machine-id); cat /etc/hostname"
echo ==GRUB==
sh "grep -E '^[[:space:]]*linux[[:space:]]' /boot/grub/grub.cfg | head -n 1; grep -c -E 'serial|console=ttyS' /boot/grub/grub.cfg || true; grep '^hostonly' /etc/dracut.conf.d/*.conf"
echo ==MODULES==
sh "lsinitrd /boot/initrd.img-$(ls /lib/modules | head -n 1) | grep -o '[^/ ]*[.]ko[.a-z]*' | tr - _ | sort -u"
echo ==END==
EOF
sect() { sed -n "/^==$1==\$/,/^==/p" "$T/gf" | sed '1d;$d'; }

[ "$(sect PARTS | grep -c 'part_num')" -eq 2 ] || fail "the disk does not hold exactly two partitions: $(sect PARTS | tr '\n' ' ')"
[ "$(sect TYPES | paste -sd' ' -)" = "xfs xfs" ] || fail "/boot (sda1) and the root LV are not both XFS: $(sect TYPES | paste -sd' ' -)"
sect LVS | grep -qx /dev/rhel/root || fail "no LV root in VG rhel: $(sect LVS | paste -sd' ' -)"
ok "MBR: /dev/sda1 XFS /boot, /dev/sda2 a PV of VG rhel whose LV root is XFS"

sect FSTAB | grep -Eq '^/dev/mapper/rhel-root[[:space:]]+/[[:space:]]+xfs' || fail "fstab does not mount / from /dev/mapper/rhel-root: $(sect FSTAB | tr '\n' ';')"
sect FSTAB | grep -Eq '^/dev/vda1[[:space:]]+/boot[[:space:]]' || fail "fstab does not mount /boot by the device name /dev/vda1: $(sect FSTAB | tr '\n' ';')"
ok "fstab: / by /dev/mapper/rhel-root, /boot by /dev/vda1 (a name only virtio-blk gives)"

k=$(sect KEYFILE)
[ "$(head -n 1 <<<"$k")" = 600 ] || fail "the keyfile ens192.nmconnection is mode $(head -n 1 <<<"$k"), not 0600 (NetworkManager ignores it otherwise)"
for want in 'interface-name=ens192' 'mac-address=00:50:56:AA:BB:DD' 'method=manual' 'address1=192.168.50.11/24,192.168.50.1'; do
  grep -qx "$want" <<<"$k" || fail "the keyfile lacks '$want': $(tr '\n' ';' <<<"$k")"
done
ok "NetworkManager keyfile ens192 (0600): static 192.168.50.11/24 bound to MAC 00:50:56:aa:bb:dd"

e=$(sect ENABLED | grep . | paste -sd' ' -)
[ "$e" = "enabled enabled enabled enabled no-ifupdown no-selinux machine-id-bytes=0 srv-rhel1" ] ||
  fail "units, ifupdown, SELinux, machine-id or hostname are not as built: $e"
ok "NetworkManager, NM-wait-online, open-vm-tools and ferry-boot-ok enabled; no ifupdown, no SELinux config; empty machine-id; hostname srv-rhel1"

g=$(sect GRUB)
grep -q 'root=/dev/mapper/rhel-root' <<<"$g" && grep -q 'rd.lvm.lv=rhel/root' <<<"$g" ||
  fail "grub.cfg does not boot root=/dev/mapper/rhel-root rd.lvm.lv=rhel/root: $(tr '\n' ';' <<<"$g")"
[ "$(sed -n 2p <<<"$g")" = 0 ] || fail "grub.cfg mentions a serial console or console=ttyS (the unprepared guest must not have one): $(tr '\n' ';' <<<"$g")"
grep -qx 'hostonly="yes"' <<<"$(sed -n '3,$p' <<<"$g" | sed 's/^[^:]*://')" || fail "/etc/dracut.conf.d does not say hostonly=\"yes\": $(tr '\n' ';' <<<"$g")"
ok "GRUB: root=/dev/mapper/rhel-root rd.lvm.lv=rhel/root, no serial console; dracut host-only"

m=$(sect MODULES)
for want in virtio_blk virtio_pci xfs dm_mod; do
  grep -q "^${want}[.]ko" <<<"$m" || fail "the initrd lacks $want: $(paste -sd' ' - <<<"$m")"
done
bad=$(grep -E '^(nvme|nvme_core|virtio_scsi|ata_piix|hv_[a-z_]*)[.]ko' <<<"$m" | paste -sd' ' -) || true
[ -z "$bad" ] || fail "the unprepared initrd holds $bad: it must lack the other targets' disk drivers"
ok "lsinitrd: virtio_blk, virtio_pci, xfs, dm_mod in the initrd; no nvme, virtio_scsi, ata_piix, hv_* ($(grep -c . <<<"$m") modules)"
