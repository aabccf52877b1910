#!/bin/bash
# The local target's boot check watches each guest's own console: two
# hosts boot-checked at the same time each find their own marker, also
# when the console printed megabytes before it.  The guest here is a
# stand-in for qemu-system-x86_64 (first on the server's PATH) that prints
# 3 MiB of console noise and then the first line of the disk it was given,
# so a check that read another guest's console, or only the first MiB of
# its own, waits for a marker that never comes.  Real boots of migrated
# disks are t-boot's.
# ferry-test-alone: boots guests within seconds-long timeouts
. "$(dirname "$0")/lib.sh"
requires jq curl python3

mkdir -p "$T/fakebin"
cat > "$T/fakebin/qemu-system-x86_64" <<'SH'
#!/bin/bash
# stand-in guest: -serial file:LOG, -drive file=DISK,...
log= disk=
while [ $# -gt 0 ]; do
  case $1 in
    -serial) log=${2#file:}; shift ;;
    -drive) [ -n "$disk" ] || { disk=${2#file=}; disk=${disk%%,*}; }; shift ;;
  esac
  shift
done
[ -n "$log" ] && [ -f "$disk" ] || exit 2
head -c 3145728 /dev/urandom | base64 -w 200 >> "$log"
head -n 1 "$disk" | tr -d '\0' >> "$log"
exec sleep 60
SH
chmod +x "$T/fakebin/qemu-system-x86_64"

export PATH="$T/fakebin:$PATH"
start_server "$T/ferry.db" --convert-workers 2
for h in hosta hostb; do
  truncate -s 4M "$T/$h.img"
  printf 'FERRY-CONSOLE-%s is up\n' "$h" | dd of="$T/$h.img" conv=notrunc status=none
  make_root "$T/root-$h" "$h" sda=$((4 << 20))
  start_agent "$h" "$(make_agent "$h" "$T/root-$h" "sda=$T/$h.img")"
done
wait_for 20 eval '[ "$(api GET /v1/hosts | jq ".hosts | length")" = 2 ]' || fail "agents did not register"

cat > "$T/bp.yaml" <<YAML
name: consoles
provider: local
store: file://$T/store
options:
  chunk_size: 1M
hosts:
  - name: hosta
    format: raw
    boot: true
    boot_marker: FERRY-CONSOLE-hosta is up
    boot_timeout: 30
  - name: hostb
    format: raw
    boot: true
    boot_marker: FERRY-CONSOLE-hostb is up
    boot_timeout: 30
YAML
ferry blueprint apply "$T/bp.yaml" >/dev/null || fail "apply: $(ferry blueprint validate "$T/bp.yaml" 2>&1)"
ferry migrate hosta --blueprint consoles >/dev/null || fail "migrate hosta"
ferry migrate hostb --blueprint consoles >/dev/null || fail "migrate hostb"
for n in 1 2; do
  timeout 120 ferry job watch "$n" >"$T/watch-$n.out" 2>&1 ||
    fail "migration $n did not pass its boot check: $(tail -n 5 "$T/watch-$n.out")"
done
n=0
for h in hosta hostb; do                # migrations 1 and 2, in that order
  n=$((n + 1))
  api GET "/v1/migrations/$n" | jq -e --arg m "FERRY-CONSOLE-$h is up" \
    '.tasks[] | select(.kind == "create") | .result.boot.marker == $m' >/dev/null ||
    fail "migration $n: not its own marker: $(api GET /v1/migrations/$n | jq -c '.tasks[-1].result')"
done
ok "two boot checks at once each see their own guest's marker, after 3 MiB of console output"
