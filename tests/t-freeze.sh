#!/bin/bash
# The final sync of a warm migration freezes the source's filesystems for
# the read (a consistent disk) and always thaws them: after success, after
# SIGTERM, and after SIGKILL of the agent (its watchdog thaws).
. "$(dirname "$0")/lib.sh"
requires losetup mount mkfs.ext4 jq

[ "$(id -u)" = 0 ] || { echo "SKIP: freezing a filesystem needs root"; exit 77; }
truncate -s 96M "$T/fs.img"
mkfs.ext4 -q -F "$T/fs.img"
dev=$(losetup -f --show "$T/fs.img" 2>/dev/null) || { echo "SKIP: no loop device on this machine"; exit 77; }
at_exit "losetup -d $dev"
mkdir "$T/mnt"
mount "$dev" "$T/mnt" || { echo "SKIP: cannot mount a loop device here"; exit 77; }
at_exit "fsfreeze -u $T/mnt 2>/dev/null; umount $T/mnt"
head -c 60M /dev/urandom > "$T/mnt/data"
sync

# writable: a small write finishes at once
writable() { timeout 3 sh -c "echo x > '$T/mnt/probe' && sync -f '$T/mnt/probe'"; }
writable || fail "the test filesystem is not writable to begin with"

# a slow sync (bandwidth cap): frozen while it reads, thawed after
ferry-agent sync --source "$dev" --to "file://$T/store" --quiesce --max-rate 20M --json \
  >"$T/s.json" 2>"$T/s.err" &
pid=$!
wait_for 10 grep -q "froze $T/mnt" "$T/s.err" || fail "the sync did not freeze $T/mnt: $(cat "$T/s.err")"
! timeout 1 sh -c "echo y > '$T/mnt/probe2'" || fail "a write went through while the sync read the disk"
wait $pid || fail "the quiesced sync failed: $(cat "$T/s.err")"
grep -q "thawed $T/mnt" "$T/s.err" || fail "no thaw reported"
writable || fail "the filesystem is still frozen after the sync"
ok "a --quiesce sync freezes the mounted filesystem while it reads and thaws it after"

# SIGTERM mid-read: the sync stops, the filesystem is thawed
ferry-agent sync --source "$dev" --to "file://$T/store2" --quiesce --max-rate 10M -q >/dev/null 2>"$T/t.err" &
pid=$!
wait_for 10 grep -q "froze" "$T/t.err" || fail "no freeze"
kill -TERM $pid; rc=0; wait $pid || rc=$?
[ "$rc" = 1 ] || fail "SIGTERM: exit $rc"
writable || fail "the filesystem stayed frozen after SIGTERM"
ok "SIGTERM during a quiesced read thaws the filesystem"

# SIGKILL mid-read: the watchdog thaws
ferry-agent sync --source "$dev" --to "file://$T/store3" --quiesce --max-rate 10M -q >/dev/null 2>"$T/k.err" &
pid=$!
wait_for 10 grep -q "froze" "$T/k.err" || fail "no freeze"
kill -KILL $pid; wait $pid 2>/dev/null || true
wait_for 5 writable || fail "the filesystem stayed frozen after SIGKILL of the agent"
ok "SIGKILL of the agent during a quiesced read: its watchdog thaws the filesystem"

# a store on the filesystem to freeze would deadlock: refused up front
expect_fail "which would be frozen: use a store elsewhere" \
  ferry-agent sync --source "$dev" --to "file://$T/mnt/store" --quiesce
writable || fail "frozen after the refusal"
ok "a file:// store on the filesystem to be frozen is refused before freezing"

# the image is a consistent copy: the files read back from it
ferry-convert --from "file://$T/store" --format raw --to "$T/copy.img" -q >/dev/null
e2fsck -fn "$T/copy.img" >/dev/null 2>&1 || fail "the frozen copy is not a clean filesystem"
ok "the quiesced copy is a clean filesystem (e2fsck)"

# a second mount of the filesystem (a bind mount, as systemd's sandboxing
# of ferry-agent.service makes of /) is the same filesystem: frozen once,
# not refused as already frozen
mkdir "$T/mnt/sub" "$T/bind"
mount --bind "$T/mnt/sub" "$T/bind" || fail "cannot bind-mount $T/mnt/sub"
at_exit "umount $T/bind"
ferry-agent sync --source "$dev" --to "file://$T/store4" --quiesce -q >/dev/null 2>"$T/b.err" ||
  fail "a quiesced sync with a bind mount of the filesystem failed: $(cat "$T/b.err")"
[ "$(grep -c 'froze ' "$T/b.err")" = 1 ] || fail "the filesystem was not frozen exactly once: $(cat "$T/b.err")"
writable || fail "frozen after the sync with a bind mount"
ok "a filesystem mounted twice (bind mount) is frozen once and thawed"
