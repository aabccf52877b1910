#!/bin/bash
# debian.sh OUT.img HOSTNAME [bios|uefi] - the UNPREPARED Debian 12 test guest
# of issue 15:
# a 2 GiB raw disk shaped like an on-prem server that ran on VMware with a
# virtio-blk disk, before ferry prepares it for a cloud:
#   MBR, /dev/vda1 ext4 = / (one partition, /boot inside it), BIOS GRUB put
#   there by the guest's own grub-install (grub-pc), grub.cfg from its own
#   update-grub; the GENERIC kernel linux-image-amd64 (nvme, virtio_scsi and
#   virtio_blk are modules there, unlike the cloud kernel where nvme is built
#   in); initramfs-tools with MODULES=dep and an initrd built as on virtio-blk
#   (virtio_blk, virtio_pci, ext4; no nvme, virtio_scsi, ata_piix, hv_*);
#   /etc/fstab and root=/dev/vda1 by device name (GRUB_DISABLE_LINUX_UUID);
#   no serial console (VGA only: console=tty0 default, GRUB_TERMINAL=console);
#   ifupdown with a static address on ens192 and a 70-persistent-net.rules
#   binding MAC 00:50:56:aa:bb:cc to ens192; open-vm-tools enabled.
# uefi: the same server booted through UEFI: GPT, /dev/vda1 the EFI system
#   partition (vfat, /boot/efi), /dev/vda2 ext4 = /; GRUB for x86_64-efi
#   put there by the guest's grub-install as an installer does with an
#   NVRAM boot entry: \EFI\debian\grubx64.efi only, no removable-media
#   fallback \EFI\BOOT\BOOTX64.EFI (a new VM's empty NVRAM finds only that
#   one); fstab by device name for both.  Both kinds are built from one
#   debootstrap tree (grub-pc and grub-efi-amd64-bin, which coexist).
# The test's instrument: ferry-boot-ok.service, after network-online and
# multi-user, writes one line straight to /dev/ttyS0 and to /dev/console,
#   FERRY-BOOT-OK <host> kernel=<r> root=<dev> net=<if>:<a/p|none>,...
#   <the console= args of the command line, or console=none> failed_units=<n>
# and powers off.
#
# No loop device or mount on the build host: tests/debian-root.sh gives the
# debootstrap tree, libguestfs (guestfish) partitions, makes the filesystem,
# unpacks the tree and runs the guest's own grub-install, update-grub and
# update-initramfs in its chroot.  Built once per (script, hostname) into
# ${FERRY_TEST_CACHE:-/var/cache/ferry-test} under a lock; OUT is a sparse
# copy.  Cold: debootstrap (2-3 min) + one guestfish session (about 3 min
# under TCG); cached: the copy (seconds).
set -euo pipefail
if [ $# -lt 2 ] || [ $# -gt 3 ]; then
  echo "usage: debian.sh OUT.img HOSTNAME [bios|uefi]" >&2
  exit 2
fi
out=$1 host=$2 fw=${3:-bios}
case $fw in bios|uefi) ;; *) echo "debian.sh: firmware '$fw' is not bios or uefi" >&2; exit 2 ;; esac
[[ $host =~ ^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$ ]] ||
  { echo "debian.sh: '$host' is not a hostname (lowercase letters, digits, -)" >&2; exit 2; }
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${FERRY_TEST_CACHE:-/var/cache/ferry-test}
for t in guestfish debootstrap zstd; do
  command -v $t >/dev/null ||
    { echo "debian.sh: $t is not installed (scripts/setup.sh test installs it)" >&2; exit 2; }
done
export LIBGUESTFS_BACKEND=${LIBGUESTFS_BACKEND:-direct}
export LIBGUESTFS_BACKEND_SETTINGS=${LIBGUESTFS_BACKEND_SETTINGS:-force_tcg}

# the packages of the guest (debian-root.sh adds systemd python3 python3-apt)
pkgs=(systemd-sysv linux-image-amd64 initramfs-tools grub-pc grub-efi-amd64-bin
      dosfstools udev kmod ifupdown isc-dhcp-client iproute2 open-vm-tools)
key=$(cat "$0" "$here/../debian-root.sh" <(echo "$host $fw") | sha256sum | cut -c1-12)
img=$cache/guest-debian12-$host-$key.img
mkdir -p "$cache"
exec 8>"$cache/guest-debian12-$host-$key.lock"
flock -w 1800 8 || { echo "debian.sh: $cache/guest-debian12-$host-$key.lock is held for 30 minutes: is a build stuck?" >&2; exit 1; }

if [ ! -s "$img" ]; then
  w=$(mktemp -d "$cache/guest-build-XXXXXX")
  trap 'rm -rf "$w"' EXIT
  t0=$(date +%s)
  echo "debian.sh: building the unprepared Debian 12 guest '$host' into the cache (once)" >&2
  r=$w/root
  "$here/../debian-root.sh" "$r" "${pkgs[@]}"
  kver=$(cd "$r/boot" && ls vmlinuz-* | sed 's/^vmlinuz-//' | sort -V | tail -n 1)
  [[ $kver == *-amd64 && $kver != *cloud* ]] ||
    { echo "debian.sh: expected the generic kernel in the tree, found '$kver'" >&2; exit 1; }
  # the point of this guest: its initramfs, not its kernel, decides the disk bus
  for m in nvme virtio_scsi virtio_blk; do
    if grep -q "/$m\.ko" "$r/lib/modules/$kver/modules.builtin"; then
      echo "debian.sh: $m is built into $kver: this guest cannot show a missing driver" >&2; exit 1
    fi
  done

  # ---- the server's configuration (written into the tree) -----------------
  echo "$host" >"$r/etc/hostname"
  printf '127.0.0.1\tlocalhost\n127.0.1.1\t%s\n' "$host" >"$r/etc/hosts"
  : >"$r/etc/machine-id"; rm -f "$r/var/lib/dbus/machine-id"
  if [ "$fw" = uefi ]; then rootpart=2; else rootpart=1; fi
  {
    echo '# /etc/fstab: static file system information.'
    echo '# <file system> <mount point>   <type>  <options>       <dump>  <pass>'
    echo "/dev/vda$rootpart       /               ext4    errors=remount-ro 0     1"
    [ "$fw" = bios ] || echo '/dev/vda1       /boot/efi       vfat    umask=0077      0       1'
  } >"$r/etc/fstab"
  cat >"$r/etc/default/grub" <<'EOF'
# on-prem VMware guest: VGA console only, root by device name
GRUB_DEFAULT=0
GRUB_TIMEOUT=1
GRUB_DISTRIBUTOR=`lsb_release -i -s 2> /dev/null || echo Debian`
GRUB_CMDLINE_LINUX_DEFAULT="quiet"
GRUB_CMDLINE_LINUX=""
GRUB_TERMINAL=console
GRUB_DISABLE_LINUX_UUID=true
GRUB_DISABLE_RECOVERY=true
EOF
  # only while building: the appliance sees the disk as /dev/sda, the
  # server as /dev/vda (grub-mkconfig reads default/grub.d after probing)
  mkdir -p "$r/etc/default/grub.d"
  echo "GRUB_DEVICE=/dev/vda$rootpart" >"$r/etc/default/grub.d/zz-ferry-build.cfg"
  cat >"$r/etc/network/interfaces" <<'EOF'
# This file describes the network interfaces available on your system
# and how to activate them. For more information, see interfaces(5).
source /etc/network/interfaces.d/*

auto lo
iface lo inet loopback

# The primary network interface
auto ens192
iface ens192 inet static
	address 192.168.50.10/24
	gateway 192.168.50.1
EOF
  # the instrument waits for network-online; on a NIC that is not ens192
  # ifupdown-wait-online would wait 300 s for it
  echo 'WAIT_ONLINE_TIMEOUT=60' >>"$r/etc/default/networking"
  mkdir -p "$r/etc/udev/rules.d"
  cat >"$r/etc/udev/rules.d/70-persistent-net.rules" <<'EOF'
# This file was automatically generated by the /lib/udev/write_net_rules
# program, run by the persistent-net-generator.rules rules file.
# PCI device 0x15ad:0x07b0 (vmxnet3)
SUBSYSTEM=="net", ACTION=="add", DRIVERS=="?*", ATTR{address}=="00:50:56:aa:bb:cc", ATTR{dev_id}=="0x0", ATTR{type}=="1", KERNEL=="eth*", NAME="ens192"
EOF
  cat >"$r/usr/local/sbin/ferry-boot-ok" <<'EOF'
#!/bin/sh
# the test's instrument: one line on the serial port and the console
net=
for d in /sys/class/net/*; do
  i=${d##*/}; [ "$i" = lo ] && continue
  a=$(ip -4 -o addr show dev "$i" 2>/dev/null | awk '{print $4}' | paste -sd+ -)
  net="$net${net:+,}$i:${a:-none}"
done
con=
for a in $(cat /proc/cmdline); do case $a in console=*) con="$con $a";; esac; done
con=${con# }
line="FERRY-BOOT-OK $(hostname) kernel=$(uname -r) root=$(findmnt -no SOURCE /) net=${net:-none} ${con:-console=none} failed_units=$(systemctl --failed --no-legend | wc -l)"
stty -F /dev/ttyS0 115200 2>/dev/null
echo "$line" >/dev/ttyS0 2>/dev/null
echo "$line" >/dev/console
EOF
  chmod 755 "$r/usr/local/sbin/ferry-boot-ok"
  cat >"$r/etc/systemd/system/ferry-boot-ok.service" <<'EOF'
[Unit]
Description=ferry test marker: FERRY-BOOT-OK on ttyS0 and the console, then power off
Wants=network-online.target
After=network-online.target multi-user.target

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/ferry-boot-ok
ExecStartPost=/bin/systemctl --no-block poweroff

[Install]
WantedBy=multi-user.target
EOF
  mods_default=$(cat "$r/etc/initramfs-tools/modules")
  sed -i 's/^MODULES=.*/MODULES=list/' "$r/etc/initramfs-tools/initramfs.conf"
  # what MODULES=dep picks on a virtio-blk server; dep inside the appliance
  # would pick the appliance's virtio_scsi instead
  printf '%s\n' "$mods_default" virtio_pci virtio_blk ext4 crc32c_generic \
    >"$r/etc/initramfs-tools/modules"
  rm -f "$r"/boot/initrd.img-*            # debootstrap's (MODULES=most)
  # a smaller disk: documentation, and the kernel modules no server's disk,
  # NIC or console needs (sound, media, wireless, desktop GPUs)
  find "$r/usr/share/doc" -type f ! -name copyright -delete
  ( cd "$r/lib/modules/$kver/kernel" &&
    rm -rf sound drivers/media drivers/net/wireless drivers/gpu/drm/amd \
      drivers/gpu/drm/nouveau drivers/gpu/drm/i915 drivers/gpu/drm/radeon \
      drivers/infiniband drivers/staging net/mac80211 net/wireless \
      drivers/bluetooth net/bluetooth )
  chroot "$r" depmod "$kver"
  rm -rf "$r"/usr/share/man/* "$r"/usr/share/info/* "$r"/var/lib/apt/lists/*_Packages
  tar -C "$r" --numeric-owner --xattrs -cf "$w/root.tar" .
  rm -rf "$r"
  printf '%s\n' "$mods_default" >"$w/modules.default"

  # ---- the disk: partition, mkfs, unpack, the guest's own tools -----------
  truncate -s 2G "$w/disk.img"
  uuid=$(printf 'ferry-guest:%s' "$host" | sha256sum |
         sed -E 's/^(.{8})(.{4}).(.{3}).(.{3})(.{12}).*/\1-\2-4\3-a\4-\5/')
  # partitions, filesystems, the tree and the boot loader, per firmware
  if [ "$fw" = uefi ]; then
    disk_steps=$(cat <<STEPS
part-init /dev/sda gpt
part-add /dev/sda p 2048 133119
part-add /dev/sda p 133120 -34
part-set-gpt-type /dev/sda 1 C12A7328-F81F-11D2-BA4B-00A0C93EC93B
part-set-name /dev/sda 1 EFI
mkfs vfat /dev/sda1
mkfs ext4 /dev/sda2
set-uuid /dev/sda2 $uuid
mount /dev/sda2 /
mkdir-p /boot/efi
mount /dev/sda1 /boot/efi
tar-in $w/root.tar / xattrs:true
command "grub-install --target=x86_64-efi --efi-directory=/boot/efi --bootloader-id=debian --no-nvram --no-uefi-secure-boot"
STEPS
)
  else
    disk_steps=$(cat <<STEPS
part-init /dev/sda mbr
part-add /dev/sda p 2048 -1
part-set-bootable /dev/sda 1 true
mkfs ext4 /dev/sda1
set-uuid /dev/sda1 $uuid
mount /dev/sda1 /
tar-in $w/root.tar / xattrs:true
sh "echo 'grub-pc grub-pc/install_devices multiselect /dev/vda' | debconf-set-selections"
command "grub-install --target=i386-pc /dev/sda"
STEPS
)
  fi
  t1=$(date +%s)
  guestfish --rw --format=raw -a "$w/disk.img" >"$w/gf.log" 2>&1 <<EOF || { cat "$w/gf.log" >&2; echo "debian.sh: the guestfish session failed (log above)" >&2; exit 1; }
set-smp 2
run
$disk_steps
command "update-initramfs -c -k $kver"
upload $w/modules.default /etc/initramfs-tools/modules
sh "sed -i 's/^MODULES=.*/MODULES=dep/' /etc/initramfs-tools/initramfs.conf"
command "update-grub"
rm /etc/default/grub.d/zz-ferry-build.cfg
sh "systemctl enable ferry-boot-ok.service open-vm-tools.service networking.service >/dev/null 2>&1; if [ -e /lib/systemd/system/ifupdown-wait-online.service ]; then systemctl enable ifupdown-wait-online.service >/dev/null 2>&1; fi; true"
echo ==== checks
sh "grep -c ^ /etc/initramfs-tools/modules; grep ^MODULES= /etc/initramfs-tools/initramfs.conf"
sh "grep -E '^[[:space:]]*linux[[:space:]]' /boot/grub/grub.cfg | head -n 1"
sh "for u in ferry-boot-ok open-vm-tools networking ifupdown-wait-online; do echo \$u=\$(systemctl is-enabled \$u 2>&1); done"
echo ==== initrd
sh "lsinitramfs /boot/initrd.img-$kver | grep '[.]ko' | sed 's|.*/||' | sort"
sh "df -m / | tail -n 1"
echo ==== efi
sh "find /boot/efi -type f 2>/dev/null | sort; true"
EOF
  t2=$(date +%s)
  cp "$w/gf.log" "$cache/guest-debian12-$host-$key.log"
  ko=$(sed -n '/^==== initrd/,$p' "$w/gf.log")
  for m in virtio_blk.ko virtio_pci.ko ext4.ko; do
    grep -q "^$m" <<<"$ko" || { cat "$w/gf.log" >&2; echo "debian.sh: the guest's initrd lacks $m" >&2; exit 1; }
  done
  for m in nvme.ko nvme-core.ko virtio_scsi.ko ata_piix.ko hv_storvsc.ko hv_vmbus.ko; do
    ! grep -q "^$m" <<<"$ko" || { cat "$w/gf.log" >&2; echo "debian.sh: the guest's initrd carries $m (it must look built on virtio-blk)" >&2; exit 1; }
  done
  grep -q "root=/dev/vda$rootpart" "$w/gf.log" ||
    { cat "$w/gf.log" >&2; echo "debian.sh: update-grub did not write root=/dev/vda$rootpart" >&2; exit 1; }
  if [ "$fw" = uefi ]; then
    efi=$(sed -n '/^==== efi/,$p' "$w/gf.log")
    grep -qx /boot/efi/EFI/debian/grubx64.efi <<<"$efi" && ! grep -qi /EFI/BOOT/ <<<"$efi" ||
      { cat "$w/gf.log" >&2; echo "debian.sh: the ESP must hold EFI/debian/grubx64.efi and no EFI/BOOT fallback" >&2; exit 1; }
  fi
  mv "$w/disk.img" "$img"
  echo "debian.sh: built $img in $(( $(date +%s) - t0 )) s (guestfish $(( t2 - t1 )) s; $(du -m "$img" | cut -f1) MB used)" >&2
fi
touch "$img"
find "$cache" -maxdepth 1 -name 'guest-debian12-*' -mtime +30 -delete
cp --sparse=always "$img" "$out"
