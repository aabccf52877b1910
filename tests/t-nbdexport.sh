#!/bin/bash
# The NBD export of a chunked image (lib/nbd/export.c over lib/image/
# access.c, driven by tests/tools/nbd_serve.c): qemu's client, qemu-img and
# nbdinfo read the source's exact bytes; qemu-io's writes, discards and
# zeroes and libguestfs' ext4 writes come back as generation N+1 (only the
# written chunks new), which ferry-convert turns into the source patched
# the same way, while generation N still converts to the source; protocol
# errors (a malformed handshake, requests past the end or too long,
# unknown commands and options) get their error and the server keeps
# serving; a chunk that fails its digest is EIO to the client and nothing
# is committed.
. "$(dirname "$0")/lib.sh"
requires qemu-img qemu-io nbdinfo guestfish mke2fs debugfs e2fsck jq python3
TOOL=${FERRY_UNIT:-$TOP/build/tests}/nbd-serve
[ -x "$TOOL" ] || fail "$TOOL is not built: run make unit"
export LIBGUESTFS_BACKEND=direct LIBGUESTFS_BACKEND_SETTINGS=force_tcg

# -- the source: an ext4 made from a directory --------------------------------
mkdir -p "$T/root/etc" "$T/root/data"
echo source-host > "$T/root/etc/hostname"
head -c 3000000 /dev/urandom > "$T/root/data/random.bin"
mke2fs -q -t ext4 -d "$T/root" -F "$T/src.raw" 64M || fail "mke2fs -d failed"
src_sha=$(sha256sum < "$T/src.raw")
S=file://$T/store
ferry-agent sync --source "$T/src.raw" --to "$S" --chunk-size 1M --json >"$T/s1.json" 2>"$T/s1.err" ||
  fail "the first sync failed: $(cat "$T/s1.err")"
[ "$(json "$T/s1.json" .generation)" = 1 ] || fail "first sync: $(cat "$T/s1.json")"

sock=$T/nbd.sock
URI="nbd+unix:///?socket=$sock"
serve() {  # serve [--generation N] [STORE]: nbd-serve in the background
  local store=$S
  if [ "${1:-}" = --store ]; then store=$2; shift 2; fi
  "$TOOL" "$store" "$sock" --overlay "$T" "$@" >"$T/serve.json" 2>"$T/serve.err" &
  SPID=$!
  at_exit "kill $SPID 2>/dev/null; wait $SPID 2>/dev/null"
  wait_for 10 test -S "$sock" || fail "nbd-serve did not listen: $(cat "$T/serve.err")"
  [ "$(stat -c %a "$sock")" = 600 ] || fail "the socket is mode $(stat -c %a "$sock"), not 0600"
}
unserve() {  # SIGTERM: the export stops and the writes are committed
  kill -TERM "$SPID"
  SRC=0; wait "$SPID" || SRC=$?
  [ ! -e "$sock" ] || fail "the socket was left behind"
}

# -- reads: qemu-img and nbdinfo ----------------------------------------------
serve
qemu-img compare -q -f raw -F raw "$URI" "$T/src.raw" || fail "qemu-img compare: the export differs from the source"
qemu-img convert -f raw -O raw "$URI" "$T/read.raw" || fail "qemu-img convert from the export failed"
[ "$(sha256sum < "$T/read.raw")" = "$src_sha" ] || fail "qemu-img convert read other bytes than the source's"
nbdinfo --json "$URI" >"$T/info.json" || fail "nbdinfo failed"
[ "$(json "$T/info.json" '.exports[0]."export-size"')" = $((64 << 20)) ] &&
  [ "$(json "$T/info.json" '.exports[0].is_read_only')" = false ] &&
  [ "$(json "$T/info.json" '.exports[0].can_multi_conn')" = true ] &&
  [ "$(json "$T/info.json" '.exports[0].can_zero')" = true ] &&
  [ "$(json "$T/info.json" '.exports[0].can_trim')" = true ] &&
  [ "$(json "$T/info.json" '.exports[0].block_size_maximum')" = $((32 << 20)) ] ||
  fail "nbdinfo: $(cat "$T/info.json")"
ok "qemu-img compare and convert read the source's bytes through the export; nbdinfo: 64 MiB, writable, multi-conn, zero, trim, 32 MiB max"

# -- the protocol's edges, from a client of the test's own ---------------------
python3 - "$sock" "$T/src.raw" >"$T/proto.log" 2>&1 <<'PY' || fail "protocol: $(cat "$T/proto.log")"
import socket, struct, sys
path, srcf = sys.argv[1], sys.argv[2]
src = open(srcf, "rb").read()
SIZE = len(src)

def conn():
    s = socket.socket(socket.AF_UNIX); s.settimeout(10); s.connect(path)
    return s

def recvn(s, n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c: raise EOFError("closed after %d of %d bytes" % (len(b), n))
        b += c
    return b

def closed(s):
    try:
        while s.recv(4096): pass
        return True
    except (ConnectionResetError, EOFError): return True
    except socket.timeout: return False

def greet(s):
    magic, opt, flags = struct.unpack(">QQH", recvn(s, 18))
    assert magic == 0x4e42444d41474943 and opt == 0x49484156454F5054, "bad greeting"
    assert flags & 1, "no fixed newstyle"

# 1. garbage as the client flags: the connection is closed
s = conn(); greet(s); s.sendall(b"garbage!garbage!"); assert closed(s), "garbage: not closed"
# 2. an option without IHAVEOPT: closed
s = conn(); greet(s); s.sendall(struct.pack(">I", 3) + b"x" * 16); assert closed(s), "bad option magic: not closed"
# 3. silence then EOF: closed, no crash
s = conn(); greet(s); s.close()

def opt(s, o, data=b""):
    s.sendall(struct.pack(">QII", 0x49484156454F5054, o, len(data)) + data)
def reply(s):
    magic, o, t, n = struct.unpack(">QIII", recvn(s, 20))
    assert magic == 0x3e889045565a9, "bad reply magic"
    return o, t, recvn(s, n)

s = conn(); greet(s); s.sendall(struct.pack(">I", 3))
opt(s, 8)                                   # STRUCTURED_REPLY: refused
assert reply(s)[1] == 0x80000001, "structured replies not refused"
opt(s, 10, b"\0" * 8)                       # SET_META_CONTEXT: refused
assert reply(s)[1] == 0x80000001, "meta contexts not refused"
opt(s, 3)                                   # LIST: one export, then ACK
o, t, d = reply(s); assert t == 2, "LIST: %x" % t
assert reply(s)[1] == 1, "LIST: no ACK"
opt(s, 7, struct.pack(">I", 0) + struct.pack(">HH", 1, 3))   # GO, block size
infos = {}
while True:
    o, t, d = reply(s)
    if t == 1: break
    assert t == 3, "GO: reply type %x" % t
    infos[struct.unpack(">H", d[:2])[0]] = d[2:]
size, tflags = struct.unpack(">QH", infos[0])
assert size == SIZE, "GO: size %d" % size
assert struct.unpack(">III", infos[3]) == (1, 4096, 32 << 20), "block size %r" % (infos[3],)

def cmd(typ, off, n, data=b"", flags=0, h=[0]):
    h[0] += 1
    s.sendall(struct.pack(">IHHQQI", 0x25609513, flags, typ, h[0], off, n) + data)
    magic, err, handle = struct.unpack(">IIQ", recvn(s, 16))
    assert magic == 0x67446698 and handle == h[0], "bad simple reply"
    return err, (recvn(s, n) if typ == 0 and err == 0 else b"")

assert cmd(0, SIZE - 10, 20)[0] == 22, "a read past the end is not EINVAL"
assert cmd(1, SIZE - 10, 20, b"z" * 20)[0] == 28, "a write past the end is not ENOSPC"
assert cmd(0, 0, 33 << 20)[0] == 22, "a 33 MiB read is not EINVAL"
assert cmd(1, 0, 33 << 20, b"\0" * (33 << 20))[0] == 22, "a 33 MiB write is not EINVAL"
assert cmd(99, 0, 0)[0] == 22, "an unknown command is not EINVAL"
err, data = cmd(0, 1048576 - 7, 100000)       # across a chunk boundary
assert err == 0 and data == src[1048576 - 7:1048576 - 7 + 100000], "read after the errors differs"
assert cmd(3, 0, 0)[0] == 0, "flush failed"
s.sendall(struct.pack(">IHHQQI", 0x25609513, 0, 2, 0, 0, 0))   # DISC
assert closed(s), "DISC: not closed"
print("protocol ok")
PY
qemu-img compare -q -f raw -F raw "$URI" "$T/src.raw" || fail "the server stopped serving after the protocol errors"
ok "a malformed handshake closes that connection only; reads or writes past the end, over 32 MiB or of unknown commands get EINVAL/ENOSPC on a connection that goes on; structured replies and meta contexts refused"

# -- writes: qemu-io, then a commit as generation 2 ----------------------------
qemu-io -f raw "$URI" -c 'write -P 0xab 12345 70000' -c 'discard 5242880 1048576' \
  -c 'write -z 7340032 100000' -c 'write -P 0x5c 67108800 64' >"$T/qio.log" 2>&1 ||
  fail "qemu-io writes failed: $(cat "$T/qio.log")"
unserve
[ "$SRC" = 0 ] || fail "nbd-serve failed: $(cat "$T/serve.err")"
cp "$T/src.raw" "$T/expect.raw"
python3 - "$T/expect.raw" <<'PY'
import sys
with open(sys.argv[1], "r+b") as f:
    for off, data in ((12345, b"\xab" * 70000), (5242880, b"\0" * 1048576),
                      (7340032, b"\0" * 100000), (67108800, b"\x5c" * 64)):
        f.seek(off); f.write(data)
PY
[ "$(json "$T/serve.json" .generation)" = 2 ] && [ "$(json "$T/serve.json" .prepared_from)" = 1 ] &&
  [ "$(json "$T/serve.json" .prepared_for)" = test ] || fail "the commit: $(cat "$T/serve.json")"
grep -q "dirty chunks: 4$" "$T/serve.err" || fail "not 4 dirty chunks (0, 5, 7, 63): $(cat "$T/serve.err")"
cmp -s "$T/store/manifest.json" "$T/store/generations/000002.json" || fail "manifest.json is not generation 2"
ferry-convert --from "$S" --generation 2 --format raw --to "$T/g2.raw" -q >/dev/null 2>"$T/c.err" ||
  fail "ferry-convert --generation 2: $(cat "$T/c.err")"
cmp "$T/g2.raw" "$T/expect.raw" || fail "generation 2 is not the source with qemu-io's writes"
ferry-convert --from "$S" --generation 1 --format raw --to "$T/g1.raw" -q >/dev/null 2>"$T/c.err" ||
  fail "ferry-convert --generation 1: $(cat "$T/c.err")"
[ "$(sha256sum < "$T/g1.raw")" = "$src_sha" ] || fail "generation 1 changed"
[ "$(sha256sum < "$T/src.raw")" = "$src_sha" ] || fail "the source raw changed"
# generation 2's rows are the patched disk's non-zero chunks; those that
# differ from generation 1's are the written chunks whose bytes changed
t1=$(json "$T/store/generations/000001.json" .table.key)
t2=$(json "$T/store/generations/000002.json" .table.key)
python3 - "$T/src.raw" "$T/expect.raw" "$T/store/$t1" "$T/store/$t2" >"$T/rows.log" 2>&1 <<'PY' ||
import hashlib, sys
src, exp = open(sys.argv[1], "rb").read(), open(sys.argv[2], "rb").read()
rows = lambda p: {int(l.split()[0]): l.split()[1] for l in open(p)}
t1, t2, M = rows(sys.argv[3]), rows(sys.argv[4]), 1 << 20
want = {i: hashlib.sha256(exp[i * M:(i + 1) * M]).hexdigest()
        for i in range(len(exp) // M) if exp[i * M:(i + 1) * M].strip(b"\0")}
assert t2 == want, "generation 2's table is not the patched disk's chunks"
changed = sorted(i for i in set(t1) | set(t2) if t1.get(i) != t2.get(i))
assert set(changed) <= {0, 5, 7, 63}, "rows changed outside the written chunks: %r" % changed
assert changed == sorted(i for i in (0, 5, 7, 63) if src[i * M:(i + 1) * M] != exp[i * M:(i + 1) * M]), changed
print("changed rows", changed)
PY
  fail "generation 2's table: $(cat "$T/rows.log")"
ok "qemu-io's write, discard and zero through the export are generation 2 (prepared_from 1): ferry-convert gives the patched source; generation 1 is unchanged"

# -- libguestfs: mount the ext4, write a file --------------------------------
serve --generation 1
timeout 300 guestfish --format=raw -a "nbd://?socket=$sock" >"$T/gf.log" 2>&1 <<'GF' || fail "guestfish over the export: $(tail -5 "$T/gf.log")"
run
mount /dev/sda /
write /prepared.txt "written by libguestfs through ferry's NBD export"
cat /etc/hostname
umount-all
GF
grep -q source-host "$T/gf.log" || fail "guestfish did not read /etc/hostname: $(cat "$T/gf.log")"
unserve
[ "$SRC" = 0 ] || fail "nbd-serve failed after guestfish: $(cat "$T/serve.err")"
[ "$(json "$T/serve.json" .generation)" = 3 ] && [ "$(json "$T/serve.json" .prepared_from)" = 1 ] ||
  fail "guestfish's commit: $(cat "$T/serve.json")"
ferry-convert --from "$S" --generation 3 --format raw --to "$T/g3.raw" -q >/dev/null 2>"$T/c.err" ||
  fail "ferry-convert --generation 3: $(cat "$T/c.err")"
e2fsck -fn "$T/g3.raw" >"$T/fsck.log" 2>&1 || fail "generation 3's ext4 is not clean: $(cat "$T/fsck.log")"
[ "$(debugfs -R 'cat /prepared.txt' "$T/g3.raw" 2>/dev/null)" = "written by libguestfs through ferry's NBD export" ] ||
  fail "generation 3 lacks the file guestfish wrote"
cmp <(debugfs -R 'cat /data/random.bin' "$T/g3.raw" 2>/dev/null) "$T/root/data/random.bin" ||
  fail "generation 3 lost the source's /data/random.bin"
ferry-convert --from "$S" --generation 1 --format raw --to "$T/g1b.raw" -q >/dev/null 2>&1
[ "$(sha256sum < "$T/g1b.raw")" = "$src_sha" ] || fail "generation 1 changed after guestfish"
ok "guestfish mounts the ext4 through the export and writes a file: generation 3 holds it (debugfs), fsck-clean; generation 1 unchanged"

# -- a corrupt chunk: EIO to the client, and nothing committed -----------------
cp -a "$T/store" "$T/bad"
# the last data chunk of generation 1 (the table's last row)
read -r idx hex enc _ < <(tail -n 1 "$T/bad/$t1")
case $enc in zstd) key=chunks/$hex.zst ;; gzip) key=chunks/$hex.gz ;; *) key=chunks/$hex ;; esac
off=$((idx << 20))
flip_byte "$T/bad/$key" 100
serve --store "file://$T/bad" --generation 1
! qemu-io -f raw "$URI" -c "read $off 4096" >"$T/qio.log" 2>&1 || fail "reading a corrupt chunk succeeded"
qemu-io -f raw "$URI" -c 'write -P 1 0 512' >/dev/null 2>&1 || fail "the export stopped serving after an I/O error"
unserve
[ "$SRC" = 1 ] || fail "nbd-serve committed after an I/O error (exit $SRC)"
grep -q "not committed: NBD read of 4096 bytes at offset $off: chunk $idx (offset $off, $key)" "$T/serve.err" ||
  fail "the I/O error is not named: $(cat "$T/serve.err")"
[ "$(ls "$T/bad/generations" | wc -l)" = 3 ] || fail "a generation was written after an I/O error"
ok "a chunk failing its digest is EIO to qemu and named (chunk, offset, key); the export keeps serving; nothing is committed"
