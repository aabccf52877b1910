#!/bin/bash
# rhel.sh OUT.img HOSTNAME - build the second UNPREPARED test guest of issue
# 15: a root of the RHEL family's shape built from Debian 12 packages.
#
#   - MBR disk of 2 GiB (raw, sparse): /dev/vda1 /boot (XFS), /dev/vda2 an
#     LVM PV in VG "rhel" with LV "root" (XFS) as /;
#   - the GENERIC kernel linux-image-amd64 (nvme, virtio_blk, virtio_scsi
#     are modules there, unlike the cloud kernel), GRUB 2 (grub-pc) with
#     root=/dev/mapper/rhel-root rd.lvm.lv=rhel/root and NO serial console
#     (GRUB_TERMINAL=console, kernel console on tty0 only);
#   - dracut host-only (hostonly=yes in /etc/dracut.conf.d, as RHEL does),
#     its initrd built "as on virtio-blk": virtio_blk, virtio_pci, xfs and
#     dm/LVM in it, and no nvme, virtio_scsi, ata_piix or hv_* (checked
#     with the guest's own lsinitrd; the build fails otherwise);
#   - /etc/fstab: / as /dev/mapper/rhel-root, /boot as /dev/vda1;
#   - NetworkManager (no ifupdown) with the keyfile
#     system-connections/ens192.nmconnection (0600) bound to MAC
#     00:50:56:aa:bb:dd, static 192.168.50.11/24 via 192.168.50.1;
#   - open-vm-tools installed and enabled (the old platform's tools); no
#     SELinux (Debian's kernel has no policy to enforce);
#   - ferry-boot-ok.service, the tests' instrument: after network-online
#     and multi-user it writes one line straight to /dev/ttyS0 and to
#     /dev/console,
#       FERRY-BOOT-OK <host> kernel=<uname -r> root=<source of />
#         net=<if>:<ipv4/prefix|none>,... console=<console= args|none>
#         failed_units=<n>
#     and powers off;
#   - empty /etc/machine-id, hostname HOSTNAME.
#
# No loop device: the tree comes from tests/debian-root.sh (debootstrap),
# the disk is laid out and filled by libguestfs (guestfish, TCG), and GRUB
# and dracut run inside the guest's own root in the appliance.  The image
# is cached in ${FERRY_TEST_CACHE:-/var/cache/ferry-test} keyed by a hash
# of this script, debian-root.sh and HOSTNAME, under a
# lock, so tests share one build (cold ~8 min, cached: a sparse copy).
set -euo pipefail
if [ $# -ne 2 ]; then
  echo "usage: rhel.sh OUT.img HOSTNAME" >&2
  exit 2
fi
out=$1 host=$2
case $host in
  *[!a-zA-Z0-9-]*|"") echo "rhel.sh: hostname '$host' is not a plain host name (letters, digits, '-')" >&2; exit 2 ;;
esac
tests=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${FERRY_TEST_CACHE:-/var/cache/ferry-test}
export LIBGUESTFS_BACKEND=direct LIBGUESTFS_BACKEND_SETTINGS=force_tcg
for c in guestfish debootstrap apt-get zstd; do
  command -v "$c" >/dev/null || { echo "rhel.sh: $c is not installed (scripts/setup.sh test installs it)" >&2; exit 1; }
done

# debootstrap cannot take linux-image-amd64 together with dracut (its
# resolver follows the first alternative of the kernel's "initramfs-tools |
# linux-initramfs-tool" and dpkg then hits dracut's Conflicts), and its
# crude configure order fails on network-manager.  So debootstrap makes
# the base with dracut, and apt-get in the tree adds the rest.
pkgs=(dracut linux-base lvm2 xfsprogs grub-pc systemd-sysv udev kmod iproute2)
more=(network-manager open-vm-tools linux-image-amd64)
key=$(cat "${BASH_SOURCE[0]}" "$tests/debian-root.sh" <(echo "$host") | sha256sum | cut -c1-12)
img=$cache/rhel-$host-$key.img
mkdir -p "$cache"
exec 8>"$cache/rhel-$key.lock"
flock -w 1200 8 || { echo "rhel.sh: $cache/rhel-$key.lock is held for 20 minutes: is a build stuck?" >&2; exit 1; }

build_image() {
  local b=$1 root=$1/root
  echo "rhel.sh: building the RHEL-shaped guest '$host' into the cache (once; about 8 minutes)" >&2
  bash "$tests/debian-root.sh" "$root" "${pkgs[@]}"
  cp /etc/resolv.conf "$root/etc/resolv.conf"
  mount -t proc proc "$root/proc"
  # INITRD=No: dracut's kernel hook skips its generic initrd; the real one
  # is built below, in the appliance, the way the guest would build it
  if ! chroot "$root" apt-get -q update >"$b/apt.log" 2>&1 ||
     ! chroot "$root" env INITRD=No DEBIAN_FRONTEND=noninteractive \
         apt-get -q -y --no-install-recommends install "${more[@]}" >>"$b/apt.log" 2>&1; then
    umount "$root/proc"
    echo "rhel.sh: apt-get install ${more[*]} in the tree failed: $(tail -n 3 "$b/apt.log" | tr '\n' ' ')" >&2
    return 1
  fi
  umount "$root/proc"
  chroot "$root" apt-get clean
  local kver
  kver=$(ls "$root/lib/modules")
  [ -n "$kver" ] && [ -e "$root/lib/modules/$kver/modules.builtin" ] ||
    { echo "rhel.sh: apt-get did not install one kernel in the tree (lib/modules: '$kver')" >&2; return 1; }
  # the point of the generic kernel: these drivers are modules, so an
  # initrd without them cannot find a disk on those buses
  if grep -E '/(nvme|nvme-core|virtio_blk|virtio_scsi)\.ko' "$root/lib/modules/$kver/modules.builtin"; then
    echo "rhel.sh: kernel $kver has nvme/virtio_blk/virtio_scsi built in: the guest would not need preparation" >&2
    return 1
  fi
  # size: the generic kernel's GPU, sound, wireless, media and InfiniBand
  # drivers are of no use to a server test guest (about 250 MB)
  rm -rf "$root/lib/modules/$kver/kernel/drivers/"{gpu,media,infiniband,net/wireless,staging,iio,isdn,bluetooth} \
         "$root/lib/modules/$kver/kernel/sound" "$root/lib/modules/$kver/kernel/net/"{bluetooth,mac80211,wireless}
  chroot "$root" depmod -a "$kver"
  rm -rf "$root"/usr/share/{doc,man,info,locale}/* "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin

  echo "$host" >"$root/etc/hostname"
  printf '127.0.0.1\tlocalhost\n127.0.1.1\t%s\n' "$host" >"$root/etc/hosts"
  cat >"$root/etc/fstab" <<'EOF'
# RHEL shape: root on LVM by its mapper name, /boot by device name
/dev/mapper/rhel-root  /      xfs  defaults  0 0
/dev/vda1              /boot  xfs  defaults  0 0
EOF
  cat >"$root/etc/default/grub" <<'EOF'
GRUB_DEFAULT=0
GRUB_TIMEOUT=1
GRUB_DISTRIBUTOR="Red Hat Enterprise Linux (ferry test shape)"
GRUB_CMDLINE_LINUX_DEFAULT=""
GRUB_CMDLINE_LINUX="root=/dev/mapper/rhel-root rd.lvm.lv=rhel/root"
GRUB_TERMINAL=console
GRUB_DISABLE_RECOVERY=true
GRUB_DISABLE_OS_PROBER=true
GRUB_DISABLE_LINUX_UUID=true
EOF
  mkdir -p "$root/etc/dracut.conf.d"
  printf '# as RHEL ships it: an initrd for this machine only\nhostonly="yes"\n' \
    >"$root/etc/dracut.conf.d/01-dist.conf"
  install -d -m 0755 "$root/etc/NetworkManager/system-connections"
  install -m 0600 /dev/stdin "$root/etc/NetworkManager/system-connections/ens192.nmconnection" <<'EOF'
[connection]
id=ens192
uuid=5fb06bd0-0bb0-7ffb-45f1-d6edd65f3e03
type=ethernet
interface-name=ens192
autoconnect=true

[ethernet]
mac-address=00:50:56:AA:BB:DD

[ipv4]
method=manual
address1=192.168.50.11/24,192.168.50.1
dns=192.168.50.1;

[ipv6]
method=ignore
EOF
  install -m 0755 /dev/stdin "$root/usr/local/sbin/ferry-boot-ok" <<'EOF'
#!/bin/sh
# ferry-boot-ok: the test instrument; one line on the serial port and the
# console, then power off.
net=""
for d in /sys/class/net/*; do
  n=${d##*/}
  [ "$n" = lo ] && continue
  a=$(ip -4 -o addr show dev "$n" 2>/dev/null | awk '{ print $4 }' | paste -sd+ -)
  net="$net${net:+,}$n:${a:-none}"
done
cons=$(tr ' ' '\n' </proc/cmdline | sed -n 's/^console=//p' | paste -sd+ -)
failed=$(systemctl list-units --state=failed --no-legend --plain | grep -c .)
line="FERRY-BOOT-OK $(hostname) kernel=$(uname -r) root=$(findmnt -no SOURCE /) net=${net:-none} console=${cons:-none} failed_units=$failed"
stty -F /dev/ttyS0 115200 2>/dev/null
echo "$line" >/dev/ttyS0 2>/dev/null
echo "$line" >/dev/console 2>/dev/null
systemctl list-units --state=failed --no-legend --plain >/dev/ttyS0 2>/dev/null
systemctl --no-block poweroff
EOF
  cat >"$root/etc/systemd/system/ferry-boot-ok.service" <<'EOF'
[Unit]
Description=ferry test marker: report the boot on ttyS0 and the console, then power off
Wants=network-online.target
After=network-online.target multi-user.target

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/ferry-boot-ok

[Install]
WantedBy=multi-user.target
EOF
  chroot "$root" systemctl enable NetworkManager.service NetworkManager-wait-online.service \
    open-vm-tools.service ferry-boot-ok.service >"$b/enable.log" 2>&1 ||
    { echo "rhel.sh: systemctl enable in the tree failed: $(tail -n 2 "$b/enable.log")" >&2; return 1; }
  [ ! -e "$root/etc/network/interfaces" ] || { echo "rhel.sh: ifupdown is in the tree" >&2; return 1; }
  rm -f "$root/etc/resolv.conf"
  : >"$root/etc/machine-id"
  rm -f "$root/var/lib/dbus/machine-id"
  tar -C "$root" --numeric-owner -cf "$b/root.tar" .
  rm -rf "$root"

  truncate -s 2G "$b/disk.img"
  # /boot 512 MiB (XFS's floor is 300 MB), the rest the PV
  guestfish --rw --format=raw -a "$b/disk.img" >"$b/gf.log" 2>&1 <<EOF || { echo "rhel.sh: the guestfish build failed: $(grep -v '^[A-Z=-]' "$b/gf.log" | tail -n 3 | tr '\n' ' ') (log: $b/gf.log)" >&2; return 1; }
set-smp 2
run
part-init /dev/sda mbr
part-add /dev/sda p 2048 1050623
part-add /dev/sda p 1050624 -2048
part-set-bootable /dev/sda 1 true
part-set-mbr-id /dev/sda 2 0x8e
pvcreate /dev/sda2
vgcreate rhel /dev/sda2
lvcreate-free root rhel 100
mkfs xfs /dev/rhel/root
mkfs xfs /dev/sda1
mount /dev/rhel/root /
mkdir /boot
mount /dev/sda1 /boot
tar-in $b/root.tar /
echo ==DRACUT==
sh "dracut -f --hostonly --add-drivers 'virtio_blk virtio_pci xfs dm_mod' --omit-drivers 'nvme nvme_core virtio_scsi ata_piix ata_generic hv_vmbus hv_storvsc hv_netvsc hv_utils' /boot/initrd.img-$kver $kver 2>&1 | tail -n 3"
echo ==LSINITRD==
sh "lsinitrd /boot/initrd.img-$kver | grep -o '[^/ ]*[.]ko[.a-z]*' | sort -u"
echo ==CMDLINE==
sh "lsinitrd -f etc/cmdline.d/90lvm.conf /boot/initrd.img-$kver; lsinitrd -f etc/cmdline.d/95root-dev.conf /boot/initrd.img-$kver; true"
echo ==GRUB==
command "grub-install --target=i386-pc /dev/sda"
command "grub-mkconfig -o /boot/grub/grub.cfg"
sh "grep -m1 'linux[[:space:]]*/vmlinuz' /boot/grub/grub.cfg"
echo ==END==
umount-all
EOF
  # module files spell their names with '-' or '_' (dm-mod.ko): compare in '_'
  sed -n '/==LSINITRD==/,/==CMDLINE==/p' "$b/gf.log" | { grep '[.]ko' || true; } | tr - _ >"$b/modules"
  local m
  for m in virtio_blk virtio_pci xfs dm_mod; do
    grep -qx "$m\.ko.*" "$b/modules" ||
      { echo "rhel.sh: the guest's initrd lacks $m (lsinitrd: $(paste -sd' ' "$b/modules"))" >&2; return 1; }
  done
  if grep -E '^(nvme|nvme_core|virtio_scsi|ata_piix|hv_[a-z_]*)[.]ko' "$b/modules"; then
    echo "rhel.sh: the guest's initrd holds a driver the unprepared guest must lack (above)" >&2
    return 1
  fi
  grep -q 'root=/dev/mapper/rhel-root' "$b/gf.log" ||
    { echo "rhel.sh: grub.cfg does not boot root=/dev/mapper/rhel-root (log: $b/gf.log)" >&2; return 1; }
  sed -n '/==DRACUT==/,/==END==/p' "$b/gf.log" >&2
}

if [ ! -s "$img" ]; then
  b=$(mktemp -d "$cache/rhel-build-XXXXXX")
  trap 'if [ -n "$b" ]; then umount "$b/root/proc" 2>/dev/null || true; echo "rhel.sh: the failed build is kept in $b" >&2; fi' EXIT
  build_image "$b"
  mv "$b/disk.img" "$img"
  rm -rf "$b"
  b=
  find "$cache" -maxdepth 1 -name 'rhel-*.img' -mtime +30 -delete
fi
touch "$img"
cp --sparse=always "$img" "$out"
