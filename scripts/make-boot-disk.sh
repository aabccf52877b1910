#!/bin/bash
# make-boot-disk.sh OUT.img SIZE HOSTNAME
# (the project's copy of the testbed's make-test-disk.sh: tests must not
# depend on ../shared; the kernel .deb is cached in /var/cache/ferry)
# Builds a bootable "Linux server" raw disk image with NO loop devices, mounts,
# nbd or kernel modules on the build host:
#   LAYOUT=mbr (default): MBR, p1=/boot ext4 (active), p2=/ ext4
#   LAYOUT=gpt          : GPT, p1=BIOS boot (GRUB core), p2=/boot ext4, p3=/ ext4
#   GRUB 2 i386-pc (boot.img in MBR, core.img in gap / BIOS-boot partition),
#   /etc/fstab by UUID, kernel cmdline root=UUID=...
# Root contents: default = busybox + Debian cloud kernel + tiny busybox initramfs,
#   /sbin/init prints the marker and powers off.
#   ROOT_DIR=dir (e.g. a debootstrap tree with systemd, linux-image-*,
#   initramfs-tools): its /boot/vmlinuz-* + initrd.img-* are used and a systemd
#   unit prints the marker once multi-user.target is reached, then powers off.
# Marker on the serial console: "FERRY-BOOT-OK <hostname> ..."
# Output is bit-for-bit reproducible for the same inputs on the same host.
# Env: CACHE (~/.cache/ferry-test-disk), KERNEL_DEB (linux-image .deb; default
#   apt-get download of linux-image-cloud-amd64's dependency), BOOT_MB (64),
#   SOURCE_DATE_EPOCH (1700000000), LAYOUT (mbr|gpt), ROOT_DIR, BUSYBOX,
#   EXTRA_ROOT (a folder copied over the busybox root: a server's files),
#   FSTAB_DEVICE (e.g. sda: /etc/fstab by device name, /dev/sda1..., as an
#   old on-prem install; the kernel command line keeps root=UUID=),
#   FSTAB_EXTRA (more /etc/fstab lines).
# Debian pkgs: e2fsprogs fdisk grub-pc-bin grub-common busybox-static cpio kmod
set -euo pipefail
OUT=${1:?usage: $0 OUT.img SIZE HOSTNAME}; SIZE=${2:?size e.g. 256M}; HOST=${3:?hostname}
[[ $HOST =~ ^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$ ]] || { echo "bad hostname" >&2; exit 2; }
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1700000000}
export E2FSPROGS_FAKE_TIME=$SOURCE_DATE_EPOCH       # superblock/mkfs times
CACHE=${CACHE:-${FERRY_TOOLS_DIR:-/var/cache/ferry}/kernel}
BOOT_MB=${BOOT_MB:-64}; LAYOUT=${LAYOUT:-mbr}; ROOT_DIR=${ROOT_DIR:-}
BUSYBOX=${BUSYBOX:-/bin/busybox}; GRUBDIR=/usr/lib/grub/i386-pc
for t in mke2fs debugfs sfdisk grub-mkimage cpio gzip; do
  command -v $t >/dev/null || { echo "missing $t" >&2; exit 2; }; done
[[ $(LC_ALL=C ldd "$BUSYBOX" 2>&1 || true) == *"not a dynamic"* ]] || { echo "need busybox-static" >&2; exit 2; }

W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
trap 'echo "make-test-disk: failed at line $LINENO: $BASH_COMMAND" >&2' ERR
mkdir -p "$CACHE"

# ---- deterministic ids from hostname ---------------------------------------
h=$(printf 'ferry:%s' "$HOST" | sha256sum | cut -c1-64); h2=$(printf 'ferry2:%s' "$HOST" | sha256sum | cut -c1-64)
uuid() { local x=$1; echo "${x:0:8}-${x:8:4}-4${x:13:3}-a${x:17:3}-${x:20:12}"; }
ROOT_UUID=$(uuid ${h:0:32}); BOOT_UUID=$(uuid ${h:32:32}); DISK_ID=0x${h2:0:8}
GPT_DISK=$(uuid ${h2:8:32}); P1=$(uuid ${h2:32:32}); P2=$(uuid ${h2:16:32}); P3=$(uuid ${h2:24:32})

R=$W/root; B=$W/boot; mkdir -p $B/grub/i386-pc
if [[ -z $ROOT_DIR ]]; then
  # ---- kernel from a Debian .deb (not installed on the host) ----------------
  if [[ -z ${KERNEL_DEB:-} ]]; then
    pkg=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-/{print $2; exit}')
    KERNEL_DEB=$(ls "$CACHE"/${pkg}_*.deb 2>/dev/null | head -1 || true)
    if [[ -z $KERNEL_DEB ]]; then (cd "$CACHE" && apt-get download "$pkg" >/dev/null 2>&1)
      KERNEL_DEB=$(ls "$CACHE"/${pkg}_*.deb | head -1); fi
  fi
  mkdir "$W/k"; dpkg-deb -x "$KERNEL_DEB" "$W/k"
  VMLINUZ=$(ls "$W"/k/boot/vmlinuz-* | head -1); KVER=${VMLINUZ##*/vmlinuz-}; KMOD=$W/k/lib/modules/$KVER

  # ---- initramfs: busybox + storage drivers (+deps), mounts root=UUID= -------
  I=$W/initrd; mkdir -p $I/{bin,dev,proc,sys,newroot,lib/modules/$KVER}
  cp "$BUSYBOX" $I/bin/busybox
  for a in sh mount umount sleep cat modprobe findfs switch_root echo reboot; do ln -s busybox $I/bin/$a; done
  MODS="crc32c_generic crc32c-intel ext4 virtio_pci virtio_blk virtio_scsi ata_piix ata_generic ahci sd_mod hv_vmbus hv_storvsc xen-blkfront"
  if command -v depmod >/dev/null; then DEPMOD=depmod; else DEPMOD="$BUSYBOX depmod"; fi
  $DEPMOD -b "$W/k" "$KVER"          # full modules.dep, only to compute the closure
  want=""; for m in $MODS; do want+=" $(grep -E "(^|/)$m\.ko[^:]*:" "$KMOD/modules.dep" | sed 's/://' || true)"; done
  ( cd "$KMOD" && for f in $want; do echo "$f"; done | sort -u | cpio -pdm --quiet "$I/lib/modules/$KVER" )
  cp "$KMOD"/modules.{order,builtin,builtin.modinfo} "$I/lib/modules/$KVER/"
  $DEPMOD -b "$I" "$KVER"; rm -f "$I"/lib/modules/$KVER/*.bin
  echo "$MODS" > $I/modules
  cat > $I/init <<'EOF'
#!/bin/sh
mount -t devtmpfs devtmpfs /dev; mount -t proc proc /proc; mount -t sysfs sysfs /sys
for m in $(cat /modules); do modprobe -q $m 2>/dev/null; done
for a in $(cat /proc/cmdline); do case $a in root=*) ROOT=${a#root=};; esac; done
fail() { echo "initrd: $*"; cat /proc/partitions; sleep 1; reboot -f; }  # fail fast
i=0; dev=
while [ $i -lt 150 ]; do dev=$(findfs "$ROOT" 2>/dev/null) && break; sleep 0.1; i=$((i+1)); done
[ -n "$dev" ] || fail "root $ROOT not found"
mount -t ext4 -o ro "$dev" /newroot || fail "mount $dev failed"
umount /sys /proc; mount --move /dev /newroot/dev 2>/dev/null || umount /dev
exec switch_root /newroot /sbin/init
EOF
  chmod 755 $I/init
  cp "$VMLINUZ" "$W/k/boot/config-$KVER" $B/
  ( cd $I && find . -print0 | xargs -0 touch -h -d @$SOURCE_DATE_EPOCH &&
    find . | LC_ALL=C sort | cpio -o -H newc --reproducible --quiet -R 0:0 ) | gzip -9n > $B/initrd.img-$KVER

  # ---- tiny root: busybox, /sbin/init prints marker -------------------------
  mkdir -p $R/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,run,boot,root,var/log}
  cp "$BUSYBOX" $R/bin/busybox
  "$BUSYBOX" --list-full | while read -r p; do [[ -e $R/$p ]] || ln -s /bin/busybox "$R/$p"; done
  rm -f $R/sbin/init
  printf 'root:x:0:0:root:/root:/bin/sh\n' > $R/etc/passwd; printf 'root:x:0:\n' > $R/etc/group
  printf 'PRETTY_NAME="Ferry test server"\nID=ferrytest\nVERSION_ID=1\n' > $R/etc/os-release
  cat > $R/sbin/init <<'EOF'
#!/bin/sh
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs devtmpfs /dev 2>/dev/null
exec </dev/console >/dev/console 2>&1
mount -o remount,rw / || echo "WARN: remount rw failed"
mount -a -t ext4 || echo "WARN: mount -a failed"
hostname -F /etc/hostname
date -u > /var/log/last-boot
B=no; [ -f /boot/grub/grub.cfg ] && B=yes
echo "FERRY-BOOT-OK $(hostname) kernel=$(uname -r) root=$(findfs $(awk '$2=="/"{print $1}' /etc/fstab)) boot_mounted=$B"
sync; umount /boot; mount -o remount,ro /; poweroff -f
EOF
  chmod 755 $R/sbin/init
  [[ -z ${EXTRA_ROOT:-} ]] || cp -a "$EXTRA_ROOT"/. $R/
  CMDLINE_EXTRA="quiet"
else
  # ---- realistic root from a prepared tree (debootstrap etc.) ---------------
  cp -a "$ROOT_DIR"/. $R/
  VMLINUZ=$(ls $R/boot/vmlinuz-* | sort -V | tail -1); KVER=${VMLINUZ##*/vmlinuz-}
  [[ -f $R/boot/initrd.img-$KVER ]] || { echo "no $ROOT_DIR/boot/initrd.img-$KVER" >&2; exit 2; }
  cp -a $R/boot/. $B/; rm -rf $R/boot; mkdir $R/boot
  rm -f $R/var/cache/apt/archives/*.deb
  : > $R/etc/machine-id                       # "uninitialized": generated on first boot
  mkdir -p $R/etc/systemd/system/multi-user.target.wants
  cat > $R/etc/systemd/system/ferry-boot-ok.service <<'EOF'
[Unit]
Description=Print FERRY-BOOT-OK marker on the console and power off
After=multi-user.target
[Service]
Type=oneshot
ExecStart=/bin/sh -c 'echo "FERRY-BOOT-OK $(hostname) kernel=$(uname -r) root=$(findmnt -no SOURCE /) boot_mounted=$(mountpoint -q /boot && echo yes || echo no) failed_units=$(systemctl --failed --no-legend | wc -l)" > /dev/console'
ExecStartPost=/bin/systemctl --no-block poweroff
[Install]
WantedBy=multi-user.target
EOF
  ln -sf ../ferry-boot-ok.service $R/etc/systemd/system/multi-user.target.wants/ferry-boot-ok.service
  CMDLINE_EXTRA="systemd.show_status=1"
fi
echo "$HOST" > $R/etc/hostname
printf '127.0.0.1 localhost\n127.0.1.1 %s\n' "$HOST" > $R/etc/hosts
ROOT_SPEC=UUID=$ROOT_UUID BOOT_SPEC=UUID=$BOOT_UUID
if [[ -n ${FSTAB_DEVICE:-} ]]; then           # as an old on-prem install
  if [[ $LAYOUT == gpt ]]; then BOOT_SPEC=/dev/${FSTAB_DEVICE}2 ROOT_SPEC=/dev/${FSTAB_DEVICE}3
  else BOOT_SPEC=/dev/${FSTAB_DEVICE}1 ROOT_SPEC=/dev/${FSTAB_DEVICE}2; fi
fi
cat > $R/etc/fstab <<EOF
# <file system>                           <mount> <type> <options>          <dump> <pass>
$ROOT_SPEC  /      ext4   errors=remount-ro  0  1
$BOOT_SPEC  /boot  ext4   defaults           0  2
${FSTAB_EXTRA:-}
EOF

# ---- partition table (sfdisk on the plain file) -----------------------------
rm -f "$OUT"; truncate -s "$SIZE" "$OUT"
TOTAL=$(( $(stat -c %s "$OUT") / 512 ))
if [[ $LAYOUT == gpt ]]; then CORE_LBA=2048; BOOT_START=4096; GPART=gpt2
else CORE_LBA=1; BOOT_START=2048; GPART=msdos1; fi
BOOT_SECT=$((BOOT_MB*2048)); ROOT_START=$((BOOT_START+BOOT_SECT))
ROOT_SECT=$(( (TOTAL-33-ROOT_START) / 2048 * 2048 ))      # keep room for backup GPT
(( ROOT_SECT >= 64*2048 )) || { echo "image too small" >&2; exit 2; }
if [[ $LAYOUT == gpt ]]; then
  sfdisk -q --no-reread --no-tell-kernel "$OUT" <<EOF
label: gpt
label-id: $GPT_DISK
unit: sectors
start=$CORE_LBA, size=2048, type=21686148-6449-6E6F-744E-656564454649, uuid=$P1, name=bios-boot
start=$BOOT_START, size=$BOOT_SECT, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, uuid=$P2, name=boot
start=$ROOT_START, size=$ROOT_SECT, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, uuid=$P3, name=root
EOF
else
  sfdisk -q --no-reread --no-tell-kernel "$OUT" <<EOF
label: dos
label-id: $DISK_ID
unit: sectors
start=$BOOT_START, size=$BOOT_SECT, type=83, bootable
start=$ROOT_START, size=$ROOT_SECT, type=83
EOF
fi

# ---- /boot/grub --------------------------------------------------------------
cp $GRUBDIR/*.mod $GRUBDIR/*.lst $B/grub/i386-pc/
cat > $B/grub/grub.cfg <<EOF
serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
set timeout=1
set default=0
menuentry 'Ferry test server ($KVER)' {
  search --no-floppy --fs-uuid --set=root $BOOT_UUID
  linux /vmlinuz-$KVER root=UUID=$ROOT_UUID ro console=tty0 console=ttyS0,115200n8 panic=-1 $CMDLINE_EXTRA
  initrd /initrd.img-$KVER
}
EOF

# ---- ext4 filesystems written straight into the image at partition offsets --
cat > $W/mke2fs.conf <<'EOF'
[fs_types]
	ext4 = {
		features = has_journal,extent,huge_file,flex_bg,metadata_csum,64bit,dir_nlink,extra_isize,sparse_super,large_file,filetype,resize_inode,dir_index,ext_attr
		blocksize = 4096
		inode_size = 256
		inode_ratio = 16384
	}
	small = {
		inode_ratio = 4096
	}
	floppy = {
		inode_ratio = 8192
	}
EOF
export MKE2FS_CONFIG=$W/mke2fs.conf   # pinned features: host-independent, GRUB-2.06-safe
mkfs() { # dir uuid label start_sector sectors
  find "$1" -print0 | xargs -0 touch -h -d @$SOURCE_DATE_EPOCH
  mke2fs -q -F -t ext4 -d "$1" -U "$2" -L "$3" -b 4096 -m 1 \
    -E "offset=$(( $4*512 )),hash_seed=$2,nodiscard,root_owner=0:0" "$OUT" "$(( $5/8 ))"
  # mke2fs 1.47.0 -d copies each file's host ctime (cannot be faked): pin it
  # (and, for the generated busybox root, force root:root so non-root builds match)
  ( cd "$1" && find . | LC_ALL=C sort | sed 's|^\.||; s|^$|/|' | while read -r p; do
      echo "sif \"$p\" ctime @$SOURCE_DATE_EPOCH"
      [[ -n $ROOT_DIR && $3 == root ]] || printf 'sif "%s" uid 0\nsif "%s" gid 0\n' "$p" "$p"; done ) > "$W/sif.txt"
  debugfs -w -f "$W/sif.txt" "$OUT?offset=$(( $4*512 ))" >/dev/null 2>"$W/debugfs.err" ||
    { cat "$W/debugfs.err" >&2; return 1; }
}
mkfs "$B" "$BOOT_UUID" boot "$BOOT_START" "$BOOT_SECT"
mkfs "$R" "$ROOT_UUID" root "$ROOT_START" "$ROOT_SECT"

# ---- GRUB without grub-install: boot.img -> MBR, core.img -> CORE_LBA --------
cat > $W/early.cfg <<EOF
search.fs_uuid $BOOT_UUID root hd0,$GPART
set prefix=(\$root)/grub
EOF
grub-mkimage -O i386-pc -d $GRUBDIR -c $W/early.cfg -p /grub -o $W/core.img \
  biosdisk part_msdos part_gpt ext2 search_fs_uuid normal linux serial terminal echo test configfile
CORE_SECT=$(( ($(stat -c %s $W/core.img)+511)/512 ))
(( CORE_SECT <= 2047 )) || { echo "core.img too big" >&2; exit 1; }
le64() { local i; for i in 0 1 2 3 4 5 6 7; do printf "\\$(printf %03o $(( ($1>>(8*i)) & 255 )))"; done; }
# grub-mkimage already stored core's length in diskboot's blocklist; patch the LBAs:
le64 $((CORE_LBA+1)) | dd of=$W/core.img bs=1 seek=500 conv=notrunc status=none  # blocklist start
dd if=$GRUBDIR/boot.img of="$OUT" bs=440 count=1 conv=notrunc status=none        # keep table/disk id
le64 $CORE_LBA | dd of="$OUT" bs=1 seek=$((0x5c)) conv=notrunc status=none        # boot.img kernel_sector
dd if=$W/core.img of="$OUT" bs=512 seek=$CORE_LBA conv=notrunc status=none
echo "built $OUT size=$SIZE layout=$LAYOUT host=$HOST kernel=$KVER boot=$BOOT_UUID root=$ROOT_UUID core=${CORE_SECT}s"
