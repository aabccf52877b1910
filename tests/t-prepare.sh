#!/bin/bash
# The boot proof on each target's hardware (issue 15): real Debian 12 and
# RHEL-shaped guests built as on-prem servers (tests/guests/: initramfs
# built for virtio-blk only, fstab and root by /dev/vda names, a static
# address bound to the old MAC, VGA console, VMware's tools) are migrated
# through ferry-server onto the local target with boot_model set to a
# cloud: the migration prepares the copy for that cloud (phase preparing,
# one job event per change) and the local target boots the prepared disk
# on qemu's model of that cloud's hardware, where the guest must reach its
# login target with its NIC up on DHCP (qemu's user network) and print its
# marker on the serial console.  The same disk unprepared (prepare: false)
# must not come up on that hardware.  The source images never change.
#
# Guests: debian (BIOS, MBR), uefi (the same Debian server booted through
# UEFI: GPT, an EFI system partition without the removable-media fallback
# loader; booted with OVMF where the model has UEFI), rhel.
# FERRY_PREPARE_CASES picks the cases: GUEST:MODEL[:unprepared] ...
# (default: the CI subset below; `make check-prepare-matrix` runs them all
# and writes the figures into docs/PREPARATION.md).
# ferry-test-timeout: 2400
# ferry-test-alone: libguestfs' appliance and TCG boots, both cores for minutes
. "$(dirname "$0")/lib.sh"
requires ferry-prepare guestfish qemu-system-x86_64 debootstrap zstd jq curl
export FERRY_QEMU_ACCEL=tcg LIBGUESTFS_BACKEND=direct LIBGUESTFS_BACKEND_SETTINGS=force_tcg
CASES=${FERRY_PREPARE_CASES:-uefi:aws uefi:aws:unprepared rhel:gcp}
RESULTS=${FERRY_PREPARE_RESULTS:-}

declare -A built
guest() { # KIND: build (cached) the test guest; sets G_IMG G_HOST G_SUM
  local kind=$1
  local script=$kind.sh fw=
  case $kind in
    debian) G_HOST=srv-deb1 ;;
    uefi) G_HOST=srv-uefi1 script=debian.sh fw=uefi ;;   # the same server, booted through UEFI
    *) G_HOST=srv-${kind}1 ;;
  esac
  G_IMG=$T/$kind.img
  if [ -z "${built[$kind]:-}" ]; then
    local t0=$SECONDS
    bash "$TOP/tests/guests/$script" "$G_IMG" "$G_HOST" $fw >"$T/guest-$kind.log" 2>&1 ||
      fail "cannot build the $kind test guest: $(tail -5 "$T/guest-$kind.log")"
    built[$kind]=$(sha256sum < "$G_IMG")
    echo "    $kind guest ready in $((SECONDS - t0)) s ($(du -h "$G_IMG" | cut -f1) allocated)"
    make_root "$T/root-$G_HOST" "$G_HOST" vda=$(stat -c %s "$G_IMG")
    # discovery's sign of a UEFI boot: the plan's boot_mode, OVMF in the proof
    [ "$fw" != uefi ] || mkdir -p "$T/root-$G_HOST/sys/firmware/efi"
    start_agent "${G_HOST//-/_}" "$(make_agent "$G_HOST" "$T/root-$G_HOST" "vda=$G_IMG")"
    wait_for 30 eval 'api GET /v1/hosts | jq -e ".hosts | any(.hostname == \"$G_HOST\")" >/dev/null' ||
      fail "the agent for $G_HOST did not register"
  fi
  G_SUM=${built[$kind]}
}

start_server "$T/ferry.db" --convert-workers 1
n=0
for c in $CASES; do
  IFS=: read -r kind model mode <<<"$c"
  guest "$kind"
  prep=true timeout=420
  if [ "${mode:-}" = unprepared ]; then prep=false timeout=${FERRY_UNPREPARED_TIMEOUT:-90}; fi
  cat > "$T/bp-$n.yaml" <<YAML
name: p$n-$kind-$model
provider: local
store: file://$T/store
prepare: $prep
hosts:
  - name: $G_HOST
    format: raw
    boot: true
    boot_model: $model
    boot_marker: FERRY-BOOT-OK $G_HOST
    boot_timeout: $timeout
YAML
  ferry blueprint apply "$T/bp-$n.yaml" >/dev/null || fail "apply: $(ferry blueprint validate "$T/bp-$n.yaml" 2>&1)"
  t0=$SECONDS
  ferry migrate "$G_HOST" --blueprint "p$n-$kind-$model" >"$T/mig.out" 2>&1 || fail "migrate $c: $(cat "$T/mig.out")"
  id=$(api GET /v1/migrations | jq '[.migrations[].id] | max')
  n=$((n + 1))
  rc=0; timeout 1200 ferry job watch "$id" >"$T/watch-$id.out" 2>&1 || rc=$?
  secs=$((SECONDS - t0))
  api GET "/v1/migrations/$id" > "$T/m-$id.json"
  if [ "$prep" = false ]; then
    [ "$rc" != 0 ] || fail "$kind unprepared booted on $model's hardware: $(jq -c '.tasks[] | select(.kind == "create") | .result.boot' "$T/m-$id.json")"
    grep -q "did not show 'FERRY-BOOT-OK $G_HOST' on its console within $timeout s" "$T/watch-$id.out" ||
      fail "$kind unprepared on $model failed for another reason: $(tail -5 "$T/watch-$id.out")"
    ! jq -e '.events[] | select(.message | startswith("prepared "))' "$T/m-$id.json" >/dev/null ||
      fail "prepare: false still prepared the guest"
    ok "$kind unprepared does not come up on $model's hardware within $timeout s (no marker on the serial console)"
    [ -z "$RESULTS" ] || echo "$kind $model unprepared no-boot ${timeout}s $secs" >> "$RESULTS"
    continue
  fi
  [ "$rc" = 0 ] || fail "$kind prepared for $model did not boot: $(tail -8 "$T/watch-$id.out")"
  line=$(jq -r '.tasks[] | select(.kind == "create") | .result.boot.line' "$T/m-$id.json")
  echo "    $line"
  [[ $line == *"FERRY-BOOT-OK $G_HOST "* ]] || fail "no marker line"
  [[ $line =~ net=ens192:10\.0\.2\.15/24 ]] || fail "$kind on $model: ens192 did not come up on DHCP: $line"
  [[ $line =~ console=[^\ ]*ttyS0 ]] || fail "$kind on $model: the kernel has no serial console: $line"
  [[ $line =~ failed_units=0 ]] || fail "$kind on $model: failed units: $line"
  jq -r '.events[] | select(.message | startswith("prepared ")) | .message' "$T/m-$id.json" > "$T/ev-$id"
  # each guest's own network stack: ifupdown and a MAC-bound udev rule
  # (debian), a MAC-bound NetworkManager keyfile (rhel)
  case $kind in
    debian) net_events=("prepared /etc/udev/rules.d/70-persistent-net.rules: removed"
                        "prepared /etc/network/interfaces: ens192: DHCP") ;;
    uefi) net_events=("prepared /etc/udev/rules.d/70-persistent-net.rules: removed"
                      "prepared /etc/network/interfaces: ens192: DHCP"
                      "prepared /etc/fstab: line 4: /dev/vda1 -> UUID="
                      "prepared /boot/efi/EFI/BOOT/BOOTX64.EFI") ;;
    *) net_events=("prepared /etc/NetworkManager/system-connections/ens192.nmconnection: interface-name=ens192, no mac-address, ipv4 method=auto") ;;
  esac
  for want in "prepared /etc/fstab: line" "${net_events[@]}" \
              "prepared /etc/systemd/network/10-ferry-primary.link" "open-vm-tools.service disabled" \
              ": rebuilt with the guest's" "prepared /etc/default/grub: kernel arguments"; do
    grep -qF -- "$want" "$T/ev-$id" || fail "$kind for $model: no event '$want': $(cat "$T/ev-$id")"
  done
  # azure: qemu has no VMBus, so the proof of its drivers is the
  # initramfs itself, as the guest's own lsinitramfs/lsinitrd lists it
  if [ "$model" = azure ]; then
    held=$(jq -r '.events[].message | select(startswith("prepare: ") and contains(" holds the drivers azure needs ("))' "$T/m-$id.json")
    for d in hv_vmbus hv_storvsc hv_netvsc; do
      [[ " $held " =~ [\(\ ]$d[\)\ ] ]] || fail "$kind for azure: the rebuilt initramfs is not shown to hold $d: '$held'"
    done
    echo "    $held"
  fi
  jq -e '.events | map(select(.kind == "phase") | .phase) | index("preparing") != null' "$T/m-$id.json" >/dev/null ||
    fail "the migration never was in phase preparing"
  want_fw=bios; [ "$kind" != uefi ] || want_fw=uefi
  fw=$(jq -r '.tasks[] | select(.kind == "create") | .result.boot.firmware' "$T/m-$id.json")
  [ "$fw" = "$want_fw" ] || fail "$kind on $model booted with $fw firmware, not $want_fw"
  psecs=$(jq '.tasks[] | select(.kind == "prepare") | .result.seconds | floor' "$T/m-$id.json")
  bsecs=$(jq '.tasks[] | select(.kind == "create") | .result.boot.seconds | floor' "$T/m-$id.json")
  ok "$kind prepared for $model ($(wc -l < "$T/ev-$id") changes, prepare ${psecs} s) boots on its hardware in ${bsecs} s: $(jq -r '.tasks[] | select(.kind == "create") | .result.boot.devices' "$T/m-$id.json"), ens192 on DHCP, serial console"
  [ -z "$RESULTS" ] || echo "$kind $model prepared boots ${psecs}s ${bsecs}s $(wc -l < "$T/ev-$id")" >> "$RESULTS"
done
for kind in "${!built[@]}"; do
  [ "$(sha256sum < "$T/$kind.img")" = "${built[$kind]}" ] || fail "the $kind source image was modified"
done
ok "the source images are unchanged (SHA-256)"
