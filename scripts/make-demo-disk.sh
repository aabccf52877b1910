#!/bin/bash
# make-demo-disk.sh OUT SIZE - a disk image that looks like a server's:
# an MBR partition table, /boot and / as ext4 filesystems holding files
# (configuration, programs, a database-like data file, logs), and mostly
# free space.  No root, loop device or mount: mke2fs -d fills each
# filesystem from a folder straight at its partition's offset.
set -euo pipefail
OUT=${1:?usage: $0 OUT SIZE}; SIZE=${2:-1G}
export E2FSPROGS_FAKE_TIME=1700000000
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT

# /boot: a kernel-sized blob and a grub config
mkdir -p "$W/boot/grub" "$W/root"/{etc,usr/bin,var/lib/db,var/log,home/app}
head -c 8M /dev/urandom > "$W/boot/vmlinuz-demo"
printf 'set timeout=1\nmenuentry demo { linux /vmlinuz-demo root=LABEL=root }\n' > "$W/boot/grub/grub.cfg"
# /: configuration, programs (real binaries: compressible), data, logs
printf 'demo-web01\n' > "$W/root/etc/hostname"
printf 'ID=debian\nVERSION_ID="12"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n' > "$W/root/etc/os-release"
printf 'LABEL=root / ext4 defaults 0 1\nLABEL=boot /boot ext4 defaults 0 2\n' > "$W/root/etc/fstab"
for b in /usr/bin/{bash,ls,cp,tar,gzip,find,grep,sed}; do [ -f "$b" ] && cp "$b" "$W/root/usr/bin/"; done
head -c 48M /dev/urandom > "$W/root/var/lib/db/table.ibd"
seq 1 400000 | sed 's/^/GET \/index.html 200 /' > "$W/root/var/log/access.log"
head -c 2M /dev/urandom | base64 > "$W/root/home/app/notes.txt"

rm -f "$OUT"; truncate -s "$SIZE" "$OUT"
total=$(( $(stat -c %s "$OUT") / 512 ))
boot_start=2048 boot_sect=$((128 * 2048))
root_start=$((boot_start + boot_sect)) root_sect=$(( (total - boot_start - boot_sect - 2048) / 2048 * 2048 ))
sfdisk -q --no-reread --no-tell-kernel "$OUT" <<EOF2
label: dos
label-id: 0x5eedf00d
unit: sectors
start=$boot_start, size=$boot_sect, type=83, bootable
start=$root_start, size=$root_sect, type=83
EOF2
mke2fs -q -F -t ext4 -d "$W/boot" -L boot -U 0b007b00-7b00-4b00-8b00-0b007b000001 \
  -E offset=$((boot_start * 512)),nodiscard "$OUT" $((boot_sect / 8))
mke2fs -q -F -t ext4 -d "$W/root" -L root -U 0b007b00-7b00-4b00-8b00-0b007b000002 \
  -E offset=$((root_start * 512)),nodiscard "$OUT" $((root_sect / 8))
