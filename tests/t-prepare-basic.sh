#!/bin/bash
# Guest preparation on its own (ferry-prepare, docs/PREPARATION.md), on a
# small busybox server disk whose files look like an on-prem server's:
# fstab by device name, a static ifupdown address for ens192, a udev rule
# binding ens192 to the old MAC address.  Preparing for a target writes
# generation 2 with only the chunks that changed; generation 1 (the
# source's) still converts to the source disk byte for byte; a dry run
# and a change that cannot be made write nothing; a preparation killed
# mid-way commits nothing; the source image is never modified.
. "$(dirname "$0")/lib.sh"
requires ferry-prepare guestfish qemu-img sfdisk mke2fs grub-mkimage busybox cpio jq debugfs
export FERRY_QEMU_ACCEL=tcg LIBGUESTFS_BACKEND=direct LIBGUESTFS_BACKEND_SETTINGS=force_tcg

# the on-prem server's files: fstab by device name, a static address on
# ens192, a udev rule binding ens192 to the old MAC address
mkdir -p "$T/files/etc/network" "$T/files/etc/udev/rules.d"
cat > "$T/files/etc/network/interfaces" <<'TXT'
auto lo
iface lo inet loopback

auto ens192
iface ens192 inet static
    address 192.168.50.10/24
    gateway 192.168.50.1
    dns-nameservers 192.168.50.2
TXT
printf 'SUBSYSTEM=="net", ACTION=="add", ATTR{address}=="00:50:56:aa:bb:cc", NAME="ens192"\n' \
  > "$T/files/etc/udev/rules.d/70-persistent-net.rules"
EXTRA_ROOT=$T/files FSTAB_DEVICE=vda bash "$TOP/scripts/make-boot-disk.sh" "$T/pb.img" 160M pb >"$T/mk.log" 2>&1 ||
  fail "cannot build the test disk: $(tail -5 "$T/mk.log")"
# the same server with a mount on a disk this migration leaves out
EXTRA_ROOT=$T/files FSTAB_DEVICE=vda FSTAB_EXTRA="/dev/vdb1  /data  ext4  defaults  0  2" \
  bash "$TOP/scripts/make-boot-disk.sh" "$T/pc.img" 160M pc >"$T/mk2.log" 2>&1 ||
  fail "cannot build the second test disk: $(tail -5 "$T/mk2.log")"
src_sum=$(sha256sum < "$T/pb.img")
uuids=$(guestfish --ro -a "$T/pb.img" run : vfs-uuid /dev/sda2 : vfs-uuid /dev/sda1)
root_uuid=$(sed -n 1p <<<"$uuids") boot_uuid=$(sed -n 2p <<<"$uuids")
ferry-agent clone --source "$T/pb.img" --to "file://$T/store/pb/vda" --chunk-size 1M >"$T/clone.out" 2>&1 ||
  fail "clone: $(cat "$T/clone.out")"
IMG=file://$T/store/pb/vda
ok "an on-prem-style server disk (fstab by /dev/vda names, static ens192, MAC-bound udev rule) cloned as generation 1"

# a dry run inspects and writes nothing
ferry-prepare --target aws --disk "vda=$IMG" --dry-run --json >"$T/dry.json" 2>"$T/dry.err" ||
  fail "dry run: $(cat "$T/dry.err")"
[ "$(json "$T/dry.json" '.os.root')" = /dev/sda2 ] || fail "inspection found no root: $(cat "$T/dry.json")"
[ "$(json "$T/dry.json" '.changes | length')" = 0 ] || fail "a dry run made changes"
[ ! -e "$T/store/pb/vda/generations/000002.json" ] || fail "a dry run wrote a generation"
ok "a dry run inspects the guest (root /dev/sda2) and writes no generation"

# prepared for OpenStack
ferry-prepare --target openstack --disk "vda=$IMG" --json >"$T/os.json" 2>"$T/os.err" ||
  fail "prepare for openstack: $(cat "$T/os.err")"
changes=$(jq -r '.changes[] | "\(.file): \(.change)"' "$T/os.json")
echo "$changes" | sed 's/^/    /'
grep -q "^/etc/fstab: line 2: /dev/vda2 -> UUID=$root_uuid" <<<"$changes" || fail "fstab's root was not set by UUID"
grep -q "^/etc/fstab: line 3: /dev/vda1 -> UUID=$boot_uuid" <<<"$changes" || fail "fstab's /boot was not set by UUID"
grep -q "^/etc/udev/rules.d/70-persistent-net.rules: removed" <<<"$changes" || fail "the MAC-bound rule was not removed"
grep -q "^/etc/network/interfaces: ens192: DHCP" <<<"$changes" || fail "ens192 was not switched to DHCP"
jq -e '.warnings | any(test("no module lists"))' "$T/os.json" >/dev/null ||
  fail "an initramfs that cannot be checked is not a warning: $(jq .warnings "$T/os.json")"
gen=$(json "$T/store/pb/vda/manifest.json" '.generation')
[ "$gen" = 2 ] || fail "manifest.json is generation $gen, not 2"
[ "$(json "$T/store/pb/vda/manifest.json" '.prepared_from')" = 1 ] || fail "no prepared_from in the manifest"
[ "$(json "$T/store/pb/vda/manifest.json" '.prepared_for')" = openstack ] || fail "no prepared_for in the manifest"
changed=$(json "$T/os.json" '.disks[0].changed_chunks')
total=$(json "$T/store/pb/vda/generations/000001.json" '.data_chunks')
[ "$changed" -gt 0 ] && [ "$changed" -lt "$total" ] || fail "changed chunks $changed of $total"
ok "prepared for openstack: fstab by UUID, MAC rule removed, ens192 on DHCP; generation 2 with $changed of $total chunks changed"

ferry-convert --from "$IMG" --generation 1 --format raw --to "file://$T/gen1.raw" >/dev/null 2>"$T/c1.err" ||
  fail "convert generation 1: $(cat "$T/c1.err")"
[ "$(sha256sum < "$T/gen1.raw")" = "$src_sum" ] || fail "generation 1 is not the source disk any more"
ferry-convert --from "$IMG" --format raw --to "file://$T/gen2.raw" >/dev/null 2>"$T/c2.err" ||
  fail "convert generation 2: $(cat "$T/c2.err")"
guestfish --ro -a "$T/gen2.raw" run : mount /dev/sda2 / : cat /etc/fstab : cat /etc/network/interfaces : ls /etc/udev/rules.d : \
  ls /var/lib/ferry/prepare-orig/etc/udev/rules.d >"$T/files.out" 2>&1 ||
  fail "cannot read the prepared disk: $(cat "$T/files.out")"
grep -q "^UUID=$root_uuid  */ " "$T/files.out" || fail "the prepared disk's fstab: $(cat "$T/files.out")"
grep -q "iface ens192 inet dhcp" "$T/files.out" && ! grep -q "192.168.50.10" "$T/files.out" || fail "the prepared disk's interfaces: $(cat "$T/files.out")"
[ "$(grep -cx "70-persistent-net.rules" "$T/files.out")" = 1 ] ||
  fail "the MAC rule is still active, or its original was not kept in /var/lib/ferry/prepare-orig: $(cat "$T/files.out")"
[ "$(sha256sum < "$T/pb.img")" = "$src_sum" ] || fail "the source disk was modified"
ok "generation 1 converts to the source disk byte for byte; generation 2 holds the changes (read by guestfish); the source is untouched"

# a change that cannot be made: an fstab entry on a disk not migrated
ferry-agent clone --source "$T/pc.img" --to "file://$T/store/pc/vda" --chunk-size 1M >/dev/null 2>&1 || fail "clone pc"
expect_fail "/etc/fstab line 4 names /dev/vdb1, on a disk that is not part of this migration" \
  ferry-prepare --target aws --disk "vda=file://$T/store/pc/vda" --quiet
[ "$(json "$T/store/pc/vda/manifest.json" '.generation')" = 1 ] || fail "a failed preparation changed manifest.json"
ok "an fstab entry on a disk that is not migrated fails the preparation naming the file and line; nothing is written"

# killed mid-way: nothing committed; a rerun for another target starts
# from the source generation
# (SIGKILL once it has written its first change into the guest)
ferry-prepare --target gcp --disk "vda=$IMG" >/dev/null 2>"$T/kill.err" &
pid=$!
wait_for 120 grep -q "ferry-prepare: /etc/fstab: " "$T/kill.err" ||
  { kill -9 "$pid"; fail "the preparation never changed fstab: $(cat "$T/kill.err")"; }
kill -9 "$pid"; wait "$pid" 2>/dev/null || true
[ "$(json "$T/store/pb/vda/manifest.json" '.generation')" = 2 ] || fail "a killed preparation changed manifest.json"
# the next run, for the local target with the blueprint's static address
ferry-prepare --target local --ip 10.9.0.5/24 --gateway 10.9.0.1 --disk "vda=$IMG" --json >"$T/loc.json" 2>"$T/loc.err" ||
  fail "rerun: $(cat "$T/loc.err")"
[ "$(json "$T/loc.json" '.disks[0].base_generation')" = 1 ] || fail "the rerun did not start from the source generation"
[ "$(json "$T/store/pb/vda/manifest.json" '.prepared_for')" = local ] || fail "manifest.json is not the local preparation"
[ "$(json "$T/store/pb/vda/manifest.json" '.generation')" = 3 ] || fail "the local preparation is not generation 3"
jq -e '.changes[] | select(.file == "/etc/network/interfaces" and .change == "ens192: static 10.9.0.5/24")' "$T/loc.json" >/dev/null ||
  fail "ens192 did not get the static address: $(jq -c .changes "$T/loc.json")"
ok "a preparation SIGKILLed mid-way commits nothing; the next one (local, static 10.9.0.5/24) starts from generation 1 and writes generation 3"
