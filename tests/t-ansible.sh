#!/bin/bash
# The Ansible role and playbooks (ansible/) against a real Debian 12 root
# filesystem (debootstrap, cached by tests/debian-root.sh) and a real
# ferry-server:
#  1. through Ansible's chroot connection: deploy.yml installs the .deb
#     packaging/build-deb.sh builds, the config, the token (0600, never in
#     the output), the unit (systemd-analyze verify) enabled; a second run
#     changes nothing; discover.yml posts the root's own inventory;
#     uninstall.yml leaves the root as it found it;
#  2. the same root booted with systemd-nspawn: systemd starts the hardened
#     unit deploy.yml enabled, the agent enrolls; deploy.yml through the
#     container's namespaces finds nothing to change and restarts the agent
#     when its config changes; clone.yml migrates the host's disk
#     byte-identical, attaches to an active migration, reports a bad
#     blueprint; uninstall.yml stops and removes everything;
#  3. the copy install method, through chroot again.
# ferry-test-alone: a container with Ansible and a Debian root; minutes of both cores
. "$(dirname "$0")/lib.sh"
requires ansible-playbook ansible-lint debootstrap systemd-nspawn \
  systemd-analyze nsenter zstd dpkg-deb dpkg-shlibdeps objdump curl jq
[ "$(id -u)" = 0 ] || fail "t-ansible needs root (chroot, systemd-nspawn): run it as root"

A=$TOP/ansible
export ANSIBLE_CONFIG=$A/ansible.cfg ANSIBLE_LOCAL_TEMP=$T/ansible-tmp \
  ANSIBLE_NOCOLOR=1 ANSIBLE_PIPELINING=1
VERSION=$(sed -n 's/^VERSION := //p' "$TOP/Makefile")

# play NAME PLAYBOOK [ansible-playbook args]: run a playbook with -v against
# $INV and the test's settings; output in $T/NAME.out, host recap in RECAP.
play() {
  local name=$1 pb=$2 rc=0; shift 2
  LAST=$T/$name.out
  "${UTS[@]}" ansible-playbook -v -i "$INV" -e "@$T/vars.json" "$@" "$A/$pb" \
    >"$LAST" 2>&1 || rc=$?
  RECAP=$(grep -E '^src01 +: ok=' "$T/$name.out" || true)
  no_secrets "$T/$name.out"
  return $rc
}
# the last playbook must have run without failure and changed N things
# (handlers included), or more than 0 for "some"
expect_recap() {
  local what=$1 want=$2 changed
  [[ $RECAP =~ failed=0 && $RECAP =~ unreachable=0 ]] ||
    fail "$what: $RECAP: $(tail -n 30 "$LAST")"
  changed=$(sed -E 's/.*changed=([0-9]+).*/\1/' <<<"$RECAP")
  if [ "$want" = some ]; then
    [ "$changed" -gt 0 ] || fail "$what changed nothing: $RECAP"
  else
    [ "$changed" = "$want" ] ||
      fail "$what changed $changed things, expected $want: $(grep -B3 '^changed:' "$LAST" | head -n 40)"
  fi
}
no_secrets() {
  local s
  for s in "$ENROLL_TOKEN_FILE" "$OPERATOR_TOKEN_FILE" "$T/root/var/lib/ferry/agent.token" "$T/agent.token"; do
    [ -s "$s" ] || continue
    ! grep -qF "$(cat "$s")" "$1" || fail "a token from $s appears in Ansible's output $1"
  done
}
# A chroot as an admin would set one up: /proc mounted (the sanitizers read
# their options and threads there), the root's own hostname in a UTS
# namespace of the chroot's commands (discovery reads
# /proc/sys/kernel/hostname first).
chroot_on() {
  mountpoint -q "$R/proc" || mount -t proc proc "$R/proc" || fail "cannot mount /proc in the root"
  UTS=(unshare --uts -- sh -c 'hostname ferrysrc01 && exec "$@"' sh)
  INV=$T/chroot.ini
}
chroot_off() { umount "$R/proc" 2>/dev/null || umount -l "$R/proc" 2>/dev/null || true; UTS=(); }
UTS=()
mode() { stat -c '%a %U:%G' "$1" 2>/dev/null || echo "missing"; }
expect_mode() { [ "$(mode "$1")" = "$2" ] || fail "$1: mode $(mode "$1"), expected $2"; }
# a listing of the root that deploy + uninstall must leave unchanged (dpkg's
# and apt's own records and logs excepted)
tree() {
  (cd "$T/root" && find . -xdev \( -path ./var/lib/dpkg -o -path ./var/lib/apt -o -path ./var/log \
     -o -path ./var/cache/apt -o -path ./var/cache/debconf -o -path ./root/.ansible \
     -o -path ./tmp -o -path ./var/tmp \) -prune -o -printf '%p %m %u %l\n' | sort)
}
# the unit as systemd reads it: verify exits non-zero for a missing binary
# and warns (exit 0) for a bad setting, so both count
verify_unit() {
  systemd-analyze --root="$T/root" verify ferry-agent.service >"$T/verify.out" 2>&1 ||
    fail "systemd-analyze verify ferry-agent.service: $(cat "$T/verify.out")"
  [ ! -s "$T/verify.out" ] || fail "systemd-analyze verify warns: $(cat "$T/verify.out")"
}

# ---- static checks
for pb in deploy discover clone uninstall; do
  ansible-playbook --syntax-check -i "$A/inventory/hosts.example.ini" "$A/$pb.yml" \
    >"$T/syntax.out" 2>&1 || fail "syntax-check of $pb.yml: $(cat "$T/syntax.out")"
done
(cd "$A" && ansible-lint --offline -q) >"$T/lint.out" 2>&1 ||
  fail "ansible-lint in ansible/: $(cat "$T/lint.out")"
ok "ansible-playbook --syntax-check and ansible-lint (production profile) are clean"

# ---- the package
bash "$TOP/packaging/build-deb.sh" "$FERRY_BIN/ferry-agent" "$T/dist" "$VERSION" >"$T/deb.out" ||
  fail "packaging/build-deb.sh failed"
DEB=$(cat "$T/deb.out")
dpkg-deb -c "$DEB" | awk '{print $1, $6}' >"$T/deb.list"
for f in "-rwxr-xr-x ./usr/bin/ferry-agent" "-rw-r--r-- ./lib/systemd/system/ferry-agent.service" \
         "-rw-r--r-- ./usr/share/doc/ferry-agent/agent.conf.example"; do
  grep -qxF -- "$f" "$T/deb.list" || fail "the package lacks '$f': $(cat "$T/deb.list")"
done
! dpkg-deb -c "$DEB" | grep -q ' ./etc/' || fail "the package ships files under /etc"
depends=$(dpkg-deb -f "$DEB" Depends)
# the package of each library the binary names (NEEDED), found where the
# loader finds it (with and without the /usr merge)
owner() {
  local f
  for f in "$1" "$(readlink -f "$1")" "/usr$1" "${1#/usr}"; do
    dpkg -S "$f" 2>/dev/null | head -n 1 | cut -d: -f1 && return
  done
}
ldd "$FERRY_BIN/ferry-agent" >"$T/ldd.out"
for lib in $(objdump -p "$FERRY_BIN/ferry-agent" | awk '/NEEDED/ {print $2}'); do
  path=$(awk -v l="$lib" '$1 == l && $3 ~ /^\// {print $3}' "$T/ldd.out")
  p=$([ -n "$path" ] && owner "$path")
  [ -n "$p" ] || fail "no package holds $lib ($path)"
  [[ ", $depends" == *", $p "* || ", $depends," == *", $p,"* ]] ||
    fail "ferry-agent needs $lib ($p) but the package depends on: $depends"
done
bash "$TOP/packaging/build-deb.sh" "$FERRY_BIN/ferry-agent" "$T/dist2" "$VERSION" >/dev/null
cmp -s "$DEB" "$T/dist2/$(basename "$DEB")" || fail "two builds of the package from one binary differ"
ok "the .deb holds the binary and unit, depends on the package of every library the binary needs, and rebuilds byte-identical"

# ---- a Debian 12 root with the package's dependencies (and the sanitizer
# runtimes, so one cached root serves both CI builds).  The fixed list is
# the runtime packages of the Makefile's PKGS: a sanitizer build links all
# of them, a normal one only what it uses; the cache is keyed by the list.
deps=$(tr ',' '\n' <<<"$depends" | sed 's/(.*//; s/[[:space:]]//g; s/|.*//')
t0=$(date +%s)
bash "$TOP/tests/debian-root.sh" "$T/root" $deps libasan8 libubsan1 libarchive13 libcurl4 \
  libdeflate0 libjansson4 libmicrohttpd12 libnbd0 libsqlite3-0 libssl3 libyaml-0-2 \
  libzstd1 zlib1g ||
  fail "no Debian 12 root (tests/debian-root.sh)"
echo "# Debian 12 root ready in $(( $(date +%s) - t0 )) s"
grep -qx 'VERSION_ID="12"' "$T/root/etc/os-release" || fail "the root is not Debian 12"
R=$T/root
echo ferrysrc01 >"$R/etc/hostname"
at_exit chroot_off
mkdir -p "$T/root/srv/ferry-test"
# The file:// store: the agent (in the booted root) and the server (here)
# must see it at one path, bound into the container; not under /tmp, which
# the unit's PrivateTmp= replaces with an empty one.
cache=${FERRY_TEST_CACHE:-/var/cache/ferry-test}
STORE=$(mktemp -d "$cache/store-XXXXXX")
at_exit "rm -rf '$STORE'"
make_disk "$T/root/srv/ferry-test/sda.img" 24M sparse
chroot_on
BEFORE=$(tree)

mkdir -p "$T/state"
start_server "$T/state/ferry.db"
cat >"$T/chroot.ini" <<EOF
[ferry_agents]
src01 ansible_connection=community.general.chroot ansible_host=$T/root ansible_python_interpreter=/usr/bin/python3
EOF
jq -n --arg url "$SERVER_URL" --arg enroll "$ENROLL_TOKEN_FILE" --arg op "$OPERATOR_TOKEN_FILE" \
  --arg deb "$DEB" --arg bin "$FERRY_BIN/ferry-agent" --arg store "$STORE" \
  --arg pin "${SERVER_CA_SHA256:-}" --arg ca "${SERVER_CA:-}" '{
  ferry_agent_server_url: $url, ferry_agent_enroll_token_file: $enroll,
  ferry_agent_deb: $deb, ferry_agent_binary: $bin,
  ferry_agent_disks: {sda: "/srv/ferry-test/sda.img"}, ferry_agent_bitmaps: {sdb: "cbt0"},
  ferry_agent_writable_paths: [$store], ferry_agent_poll_wait: 2,
  ferry_server_url: $url, ferry_operator_token_file: $op,
  ferry_blueprint: "wave1", ferry_clone_poll: 1, ferry_clone_timeout: 120
} + (if $pin == "" then {} else {ferry_agent_server_ca_sha256: $pin, ferry_server_ca_file: $ca} end)' >"$T/vars.json"

# ---- 1. chroot
rc=0; play bad deploy.yml -e "ferry_agent_enroll_token_file=$T/nosuch" || rc=$?
[ "$rc" != 0 ] && grep -q "$T/nosuch is not a file on the controller" "$T/bad.out" ||
  fail "deploy.yml without a token file (rc=$rc): $(tail -n 20 "$T/bad.out")"
[ ! -e "$T/root/etc/ferry" ] && [ ! -e "$T/root/var/cache/ferry-agent" ] || fail "deploy.yml without a token file changed the root"
ok "deploy.yml without its token file stops before touching the host and names the file"

t0=$(date +%s)
play deploy1 deploy.yml || fail "deploy.yml into the chroot: $(tail -n 30 "$T/deploy1.out")"
expect_recap deploy.yml some
echo "# first deploy through chroot: $(( $(date +%s) - t0 )) s"
expect_mode "$R/usr/bin/ferry-agent" "755 root:root"
expect_mode "$R/lib/systemd/system/ferry-agent.service" "644 root:root"
expect_mode "$R/etc/ferry/agent.conf" "640 root:root"
expect_mode "$R/etc/ferry/enroll.token" "600 root:root"
expect_mode "$R/var/lib/ferry" "700 root:root"
expect_mode "$R/etc/systemd/system/ferry-agent.service.d/site.conf" "644 root:root"
cmp -s <(tr -d '\n' <"$ENROLL_TOKEN_FILE") <(tr -d '\n' <"$R/etc/ferry/enroll.token") ||
  fail "the root's enroll.token is not the server's"
[ "$(chroot "$R" dpkg-query -W -f '${Status} ${Version}' ferry-agent)" = "install ok installed $VERSION" ] ||
  fail "ferry-agent $VERSION is not installed in the root: $(chroot "$R" dpkg-query -W ferry-agent 2>&1)"
[ "$(readlink "$R/etc/systemd/system/multi-user.target.wants/ferry-agent.service")" = \
  /lib/systemd/system/ferry-agent.service ] || fail "ferry-agent.service is not enabled in the root"
grep -qx "server = $SERVER_URL" "$R/etc/ferry/agent.conf" &&
  grep -qx "disk.sda = /srv/ferry-test/sda.img" "$R/etc/ferry/agent.conf" &&
  grep -qx "bitmap.sdb = cbt0" "$R/etc/ferry/agent.conf" &&
  grep -qx "poll_wait = 2" "$R/etc/ferry/agent.conf" || fail "agent.conf: $(cat "$R/etc/ferry/agent.conf")"
grep -qx "ReadWritePaths=-$STORE" "$R/etc/systemd/system/ferry-agent.service.d/site.conf" ||
  fail "the drop-in lacks the store: $(cat "$R/etc/systemd/system/ferry-agent.service.d/site.conf")"
grep -q "systemd does not run this host" "$T/deploy1.out" || fail "deploy.yml did not say it cannot start the agent in a chroot"
verify_unit
chroot "$R" ferry-agent --version | grep -qx "ferry-agent $VERSION" || fail "the installed agent does not run in the root"
ok "deploy.yml through chroot: package $VERSION, agent.conf 0640, enroll.token 0600 (the server's), /var/lib/ferry 0700, unit enabled and clean under systemd-analyze verify"

mv "$R/usr/bin/ferry-agent" "$T/agent.moved"
rc=0; systemd-analyze --root="$R" verify ferry-agent.service >"$T/verify-neg.out" 2>&1 || rc=$?
mv "$T/agent.moved" "$R/usr/bin/ferry-agent"
[ "$rc" != 0 ] && grep -q "ferry-agent" "$T/verify-neg.out" ||
  fail "systemd-analyze verify did not notice a missing ExecStart binary (rc=$rc): $(cat "$T/verify-neg.out")"
ok "systemd-analyze verify fails the unit when its binary is missing (the check can fail)"

play deploy2 deploy.yml -vvv || fail "second deploy.yml: $(tail -n 30 "$T/deploy2.out")"
expect_recap "second deploy.yml" 0
grep -q 'TASK \[ferry_agent : Write the enrollment token\]' "$T/deploy2.out" &&
  grep -q 'the output has been hidden due to the fact that' "$T/deploy2.out" ||
  fail "the token task did not run censored"
ok "a second deploy.yml reports changed=0; no token in its -vvv output"

play discover1 discover.yml || fail "discover.yml: $(tail -n 30 "$T/discover1.out")"
expect_recap discover.yml 1
grep -q "discovery posted: ferry-server host 1" "$T/discover1.out" || fail "discover.yml did not say where it posted: $(tail -n 20 "$T/discover1.out")"
api GET /v1/hosts >"$T/hosts.json"
pretty=$(. "$R/etc/os-release"; echo "$PRETTY_NAME")
[ "$(json "$T/hosts.json" '.hosts | length')" = 1 ] &&
  [ "$(json "$T/hosts.json" '.hosts[0].hostname')" = ferrysrc01 ] &&
  [ "$(json "$T/hosts.json" '.hosts[0].os')" = "$pretty" ] &&
  [ "$(json "$T/hosts.json" '.hosts[0].machine_id')" = "$(cat "$R/etc/machine-id")" ] ||
  fail "the server does not list the root's host: $(cat "$T/hosts.json")"
api GET /v1/hosts/1 | jq -c '.inventory.os' >"$T/os-posted.json"
ferry-agent discover --root "$R" | jq -c .os >"$T/os-outside.json"
cmp -s "$T/os-posted.json" "$T/os-outside.json" ||
  fail "discovery in the root posted os $(cat "$T/os-posted.json"), the root's os-release says $(cat "$T/os-outside.json")"
json "$T/os-posted.json" '.id + " " + .version_id' | grep -qx "debian 12" || fail "posted os: $(cat "$T/os-posted.json")"
expect_mode "$R/var/lib/ferry/agent.token" "600 root:root"
ok "discover.yml runs discovery inside the root: the server lists ferrysrc01 with the root's machine-id and os-release ($pretty)"

play uninstall1 uninstall.yml || fail "uninstall.yml: $(tail -n 30 "$T/uninstall1.out")"
expect_recap uninstall.yml some
diff <(echo "$BEFORE") <(tree) >"$T/tree.diff" || fail "uninstall.yml left the root changed: $(head -n 30 "$T/tree.diff")"
[ -z "$(chroot "$R" dpkg-query -W -f '${Status}' ferry-agent 2>/dev/null | grep installed)" ] ||
  fail "ferry-agent is still installed: $(chroot "$R" dpkg-query -W ferry-agent)"
ok "uninstall.yml removes package, config, token, state and enablement: the root's file list is as before deploy"

# ---- 2. the root booted under systemd: deploy (enabled, not started) first
play deploy3 deploy.yml || fail "deploy.yml before boot: $(tail -n 30 "$T/deploy3.out")"
expect_recap "deploy.yml before boot" some
# the host's disk as a block device (a loop device over the image), so the
# hardened unit is shown to read block devices
LOOP=$(losetup --find --show --read-only "$R/srv/ferry-test/sda.img") ||
  fail "cannot attach a loop device to the test disk (losetup)"
at_exit "losetup -d '$LOOP'"
chroot_off
# A sanitizer build's LeakSanitizer ptraces the agent's threads at exit, a
# call outside the unit's @system-service filter: allow just that here, so
# the daemon under systemd is leak-checked too (its journal, below).
if grep -q 'NEEDED.*libasan' <(objdump -p "$FERRY_BIN/ferry-agent"); then
  printf '[Service]\nSystemCallFilter=ptrace\n' >"$R/etc/systemd/system/ferry-agent.service.d/sanitizer.conf"
fi
machine=ferry-$(basename "$T" | tr -dc 'a-zA-Z0-9' | tail -c 10)
systemd-nspawn --quiet --register=no --keep-unit --machine="$machine" -D "$R" \
  --bind="$STORE" --bind="$LOOP" -b --console=read-only >"$T/nspawn.log" 2>&1 &
NSPAWN_PID=$!
# SIGTERM halts the container (systemd shuts down), bounded; then SIGKILL
stop_container() {
  local n
  kill "$NSPAWN_PID" 2>/dev/null || return 0
  for ((n = 0; n < 100; n++)); do
    kill -0 "$NSPAWN_PID" 2>/dev/null || { wait "$NSPAWN_PID" 2>/dev/null; return 0; }
    sleep 0.2
  done
  kill -9 "$NSPAWN_PID" 2>/dev/null; wait "$NSPAWN_PID" 2>/dev/null
  return 1
}
at_exit stop_container
leader() { pgrep -P "$NSPAWN_PID" -x systemd; }
wait_for 30 leader || fail "systemd-nspawn did not start systemd in the root: $(tail -n 20 "$T/nspawn.log")"
LEADER=$(leader)
inside() { nsenter --target "$LEADER" --mount --uts --ipc --net --pid -- "$@"; }
wait_for 60 eval '[ "$(inside systemctl is-active ferry-agent.service)" = active ]' ||
  fail "systemd did not start ferry-agent.service at boot: $(inside systemctl status ferry-agent.service 2>&1 | tail -n 20)"
wait_for 30 eval 'inside journalctl -u ferry-agent.service | grep -q "discovery posted"' ||
  fail "the agent under systemd did not post its discovery: $(inside journalctl -u ferry-agent.service | tail -n 20)"
[ "$(json "$(api GET /v1/hosts)" '.hosts | length')" = 1 ] || fail "the booted agent made a second host: $(api GET /v1/hosts)"
pgrep --ns "$LEADER" --nslist pid -x ferry-agent >/dev/null || fail "no ferry-agent process in the container"
# the daemon runs in the unit's mount namespace (ProtectSystem=strict,
# PrivateTmp=) yet must report the system's mount table, / read-write
api GET /v1/hosts/1 | jq -S '.inventory.mounts' >"$T/mounts-daemon.json"
inside ferry-agent discover | jq -S '.mounts' >"$T/mounts-system.json"
diff "$T/mounts-system.json" "$T/mounts-daemon.json" >"$T/mounts.diff" ||
  fail "the agent under systemd reports its sandbox's mounts, not the system's: $(head -n 20 "$T/mounts.diff")"
jq -e 'any(.[]; .target == "/" and (.options | split(",") | index("rw")))' "$T/mounts-daemon.json" >/dev/null ||
  fail "the daemon's discovery has no read-write /: $(cat "$T/mounts-daemon.json")"
ok "booted with systemd-nspawn, systemd starts the enabled, hardened ferry-agent.service; the agent enrolls and posts as the same host, with the system's mount table"

INV=$T/nsenter.ini
cat >"$INV" <<EOF
[ferry_agents]
src01 ansible_connection=community.docker.nsenter ansible_nsenter_pid=$LEADER ansible_python_interpreter=/usr/bin/python3
EOF
# The container shares the host's /sys, so the agent discovers the host's
# disks; the loop device stands in for the first of them (disk.NAME = path
# in agent.conf, what the role's ferry_agent_disks sets).
DISK=$(api GET /v1/hosts/1 | jq -r '.inventory.disks[0].name // empty')
[ -n "$DISK" ] || fail "the booted root's discovery lists no disk: $(api GET /v1/hosts/1 | jq -c .inventory.disks)"
pid1=$(inside systemctl show -p MainPID --value ferry-agent.service)
play deploy4 deploy.yml || fail "deploy.yml on the booted root: $(tail -n 30 "$T/deploy4.out")"
expect_recap "deploy.yml on the booted root" 0
grep -A1 'TASK \[ferry_agent : Start or stop ferry-agent.service\]' "$T/deploy4.out" | grep -q '^ok: \[src01\]' ||
  fail "deploy.yml did not check the service state on a running systemd"
[ "$(inside systemctl show -p MainPID --value ferry-agent.service)" = "$pid1" ] || fail "an unchanged deploy restarted the agent"
jq -n --arg d "$DISK" --arg loop "$LOOP" '{ferry_agent_jobs: 2, ferry_agent_disks: {($d): $loop}}' >"$T/vars2.json"
play deploy5 deploy.yml -e "@$T/vars2.json" || fail "deploy.yml with jobs=2 and a disk: $(tail -n 30 "$T/deploy5.out")"
expect_recap "deploy.yml with jobs=2 (config + restart)" 2
grep -q 'RUNNING HANDLER \[ferry_agent : Restart ferry-agent\]' "$T/deploy5.out" || fail "no restart after a config change"
pid2=$(inside systemctl show -p MainPID --value ferry-agent.service)
[ "$pid2" != "$pid1" ] && [ "$pid2" != 0 ] && [ "$(inside systemctl is-active ferry-agent.service)" = active ] ||
  fail "the agent was not restarted (MainPID $pid1 -> $pid2)"
grep -qx "jobs = 2" "$R/etc/ferry/agent.conf" && grep -qx "disk.$DISK = $LOOP" "$R/etc/ferry/agent.conf" ||
  fail "agent.conf lacks jobs = 2 or disk.$DISK: $(cat "$R/etc/ferry/agent.conf")"
ok "deploy.yml through the container's namespaces: changed=0 and the agent untouched on a running systemd; a config change restarts it"

cat >"$T/wave1.yaml" <<YAML
name: wave1
provider: local
store: file://$STORE
prepare: false          # the disk is a data disk: no OS to prepare
hosts:
  - name: ferrysrc01
    disks: [$DISK]
    format: raw
YAML
ferry blueprint apply "$T/wave1.yaml" >"$T/apply.out" 2>&1 || fail "blueprint apply: $(cat "$T/apply.out")"
play clone1 clone.yml -e ferry_clone_wait=done || fail "clone.yml: $(tail -n 30 "$T/clone1.out")"
expect_recap clone.yml 1
grep -q "ferrysrc01: migration 1 is done in phase done" "$T/clone1.out" || fail "clone.yml report: $(grep -A3 'Report the migration' "$T/clone1.out")"
cmp "$R/srv/ferry-test/sda.img" "$STORE/ferrysrc01/$DISK.raw" || fail "the migrated disk differs from the root's"
inside journalctl -u ferry-agent.service | grep -q "cloning $DISK ($LOOP)" ||
  fail "the agent did not clone from $LOOP: $(inside journalctl -u ferry-agent.service | tail -n 5)"
ok "clone.yml starts the migration and waits: the agent under the hardened unit clones a block device, the output equals it byte for byte"

# attach: a migration already active (agent stopped, so it stays so)
inside systemctl stop ferry-agent.service
ferry migrate ferrysrc01 --blueprint wave1 >/dev/null || fail "ferry migrate"
play clone2 clone.yml &
CLONE_PID=$!
wait_for 60 grep -q 'TASK \[Wait until the migration is past cloning' "$T/clone2.out" || fail "clone.yml did not get to waiting: $(cat "$T/clone2.out")"
inside systemctl start ferry-agent.service
wait "$CLONE_PID" || fail "clone.yml attached to migration 2: $(tail -n 30 "$T/clone2.out")"
RECAP=$(grep -E '^src01 +: ok=' "$T/clone2.out") LAST=$T/clone2.out
expect_recap "clone.yml on an active migration" 0
grep -Eq "ferrysrc01: migration 2 is (active|done) in phase (cloned|converting|converted|creating|done)" "$T/clone2.out" ||
  fail "clone.yml did not wait for migration 2: $(grep -A3 'Report the migration' "$T/clone2.out")"
timeout 120 ferry job watch 2 >/dev/null || fail "migration 2 did not finish"
rc=0; play clone3 clone.yml -e ferry_blueprint=nosuch || rc=$?
[ "$rc" != 0 ] && grep -q "POST $SERVER_URL/v1/migrations answered 404" "$T/clone3.out" ||
  fail "clone.yml with an unknown blueprint (rc=$rc): $(tail -n 20 "$T/clone3.out")"
ok "clone.yml watches a host's active migration instead of starting another (changed=0), and names the server's error for a bad blueprint"

install -m 600 "$R/var/lib/ferry/agent.token" "$T/agent.token"
play uninstall3 uninstall.yml || fail "uninstall.yml on the booted root: $(tail -n 30 "$T/uninstall3.out")"
expect_recap "uninstall.yml on the booted root" some
state=$(inside systemctl show -p LoadState --value ferry-agent.service)
[ "$state" = not-found ] || fail "systemd still knows ferry-agent.service ($state)"
! pgrep --ns "$LEADER" --nslist pid -x ferry-agent >/dev/null || fail "a ferry-agent process survived uninstall"
for f in usr/bin/ferry-agent lib/systemd/system/ferry-agent.service etc/ferry var/lib/ferry \
         var/cache/ferry-agent etc/systemd/system/ferry-agent.service.d \
         etc/systemd/system/multi-user.target.wants/ferry-agent.service; do
  [ ! -e "$R/$f" ] && [ ! -L "$R/$f" ] || fail "uninstall.yml left /$f"
done
# the daemon's whole life under systemd, three starts and stops
inside journalctl -u ferry-agent.service >"$T/journal.out" 2>&1
no_secrets "$T/journal.out"
! grep -E 'Sanitizer|runtime error' "$T/journal.out" ||
  fail "the agent under systemd reported a sanitizer error (above)"
[ "$(grep -c 'ferry-agent: stopping' "$T/journal.out")" -ge 3 ] ||
  fail "the agent did not log three clean stops: $(tail -n 20 "$T/journal.out")"
play uninstall4 uninstall.yml || fail "second uninstall.yml on the booted root: $(tail -n 30 "$T/uninstall4.out")"
expect_recap "second uninstall.yml on the booted root" 0
ok "uninstall.yml on a running systemd stops the agent and removes every file; a second run changes nothing; no token or sanitizer report in the agent's journal"
stop_container || fail "the container did not shut down within 20 s of SIGTERM"

# ---- 3. the copy method, through chroot
chroot_on
rm -rf "$R/var/lib/ferry"
BEFORE=$(tree)
# the token from a variable (as from ansible-vault) instead of a file
jq -n --rawfile t "$ENROLL_TOKEN_FILE" '{ferry_agent_enroll_token: $t}' >"$T/token-var.json"
chmod 600 "$T/token-var.json"
play copy1 deploy.yml -e ferry_agent_install_method=copy -e "@$T/token-var.json" -e ferry_agent_enroll_token_file= || fail "deploy.yml (copy): $(tail -n 30 "$T/copy1.out")"
expect_recap "deploy.yml (copy)" some
expect_mode "$R/usr/local/bin/ferry-agent" "755 root:root"
expect_mode "$R/etc/systemd/system/ferry-agent.service" "644 root:root"
expect_mode "$R/etc/ferry/enroll.token" "600 root:root"
cmp -s "$FERRY_BIN/ferry-agent" "$R/usr/local/bin/ferry-agent" || fail "the copied binary differs"
cmp -s <(tr -d '\n' <"$ENROLL_TOKEN_FILE") <(tr -d '\n' <"$R/etc/ferry/enroll.token") ||
  fail "the token from ferry_agent_enroll_token did not reach the root"
grep -qx "ExecStart=/usr/local/bin/ferry-agent run --config /etc/ferry/agent.conf" "$R/etc/systemd/system/ferry-agent.service" ||
  fail "the copied unit's ExecStart: $(grep ExecStart "$R/etc/systemd/system/ferry-agent.service")"
verify_unit
play copy3 uninstall.yml || fail "uninstall.yml (copy): $(tail -n 30 "$T/copy3.out")"
expect_recap "uninstall.yml (copy)" some
diff <(echo "$BEFORE") <(tree) >"$T/tree.diff" || fail "uninstall.yml (copy) left the root changed: $(head -n 30 "$T/tree.diff")"
ok "the copy method with the token from a variable: /usr/local/bin/ferry-agent 0755, its own unit (verified), removed without a trace"
