#!/bin/bash
# HTTPS on the control plane, with curl and openssl as the oracles:
# ferry-server makes a private CA and a certificate signed by it on first
# start (keys 0600) and reuses them; agents pin the CA's fingerprint and
# run a migration over HTTPS; an agent refuses a server with another CA,
# an impostor that offers the genuine CA, and a wrong pin, with one clear
# message and before any token leaves it; plain HTTP on a non-loopback
# address is refused at start, --insecure-http warns; the operator's own
# certificate is taken and checked against its CA.
. "$(dirname "$0")/lib.sh"
requires curl jq openssl python3
export FERRY_TEST_TLS=1
S=$T/state
mkdir -p "$S"

# sha256:<hex> of a PEM certificate's DER, computed by openssl alone
fp_of() { echo "sha256:$(openssl x509 -in "$1" -outform DER | sha256sum | cut -d' ' -f1)"; }

start_server "$S/ferry.db" --lease 4 --tls-san ferry.test
for f in ca.key server.key; do
  [ "$(stat -c %a "$S/$f")" = 600 ] || fail "$f is mode $(stat -c %a "$S/$f"), not 600"
done
for f in ca.pem server.pem; do
  [ "$(stat -c %a "$S/$f")" = 644 ] || fail "$f is mode $(stat -c %a "$S/$f"), not 644"
done
openssl x509 -in "$S/ca.pem" -noout -text >"$T/ca.txt"
grep -q "CA:TRUE" "$T/ca.txt" && grep -q "Certificate Sign" "$T/ca.txt" && grep -q "prime256v1" "$T/ca.txt" ||
  fail "the CA is not a P-256 CA with keyCertSign: $(cat "$T/ca.txt")"
openssl verify -CAfile "$S/ca.pem" "$S/server.pem" >/dev/null 2>&1 || fail "server.pem does not verify against ca.pem"
openssl x509 -in "$S/server.pem" -noout -ext subjectAltName >"$T/san.txt"
for n in DNS:localhost "IP Address:127.0.0.1" DNS:ferry.test "DNS:$(hostname)"; do
  grep -qF "$n" "$T/san.txt" || fail "the server certificate lacks $n: $(cat "$T/san.txt")"
done
PIN=$(fp_of "$S/ca.pem")
[ "$SERVER_CA_SHA256" = "$PIN" ] || fail "lib.sh and openssl disagree on the pin"
grep -qF "TLS: CA fingerprint $PIN" "$T/server.log" || fail "the server does not log the CA fingerprint $PIN: $(cat "$T/server.log")"
[ "$(ferry ca)" = "server_ca_sha256 = $PIN" ] || fail "ferry ca prints '$(ferry ca)', not the pin $PIN"
ok "first start: a P-256 CA and a server certificate signed by it, keys 0600, SANs; the fingerprint is logged and ferry ca prints it"

# openssl and curl verify the chain and the host name with the CA alone
echo | openssl s_client -connect "127.0.0.1:$SERVER_PORT" -CAfile "$S/ca.pem" -verify_return_error \
  -verify_hostname ferry.test >"$T/sclient.out" 2>&1 || fail "openssl s_client: $(cat "$T/sclient.out")"
grep -q "Verify return code: 0 (ok)" "$T/sclient.out" || fail "s_client did not verify: $(cat "$T/sclient.out")"
grep -Eq "^New, TLSv1\.[23]," "$T/sclient.out" || fail "not TLS 1.2 or 1.3: $(grep "^New" "$T/sclient.out")"
curl -sf --cacert "$S/ca.pem" --resolve "ferry.test:$SERVER_PORT:127.0.0.1" -o /dev/null \
  "https://ferry.test:$SERVER_PORT/v1/ca.pem" || fail "curl does not verify ferry.test with the CA"
rc=0; curl -s --cacert "$S/ca.pem" --resolve "other.test:$SERVER_PORT:127.0.0.1" -o /dev/null \
  "https://other.test:$SERVER_PORT/v1/ca.pem" || rc=$?
[ "$rc" = 60 ] || fail "curl accepted a host name the certificate does not hold (exit $rc)"
rc=0; curl -s --cacert /etc/ssl/certs/ca-certificates.crt -o /dev/null "https://127.0.0.1:$SERVER_PORT/v1/ca.pem" || rc=$?
[ "$rc" = 60 ] || fail "curl trusted the server through the system's CAs (exit $rc)"
rc=0; curl -s -m 5 -o /dev/null "http://127.0.0.1:$SERVER_PORT/v1/hosts" || rc=$?
[ "$rc" != 0 ] || fail "the HTTPS port answered plain HTTP"
ok "openssl s_client and curl verify the chain and the SAN with the CA; other names, the system's CAs and plain HTTP fail"

# an agent with the pin enrolls, discovers and clones a disk over HTTPS
make_disk "$T/web01.img" 24M sparse
make_root "$T/root-web01" web01 sda=$((24 << 20))
web_conf=$(make_agent web01 "$T/root-web01" "sda=$T/web01.img")
grep -qx "server_ca_sha256 = $PIN" "$web_conf" || fail "make_agent wrote no pin"
start_agent web01 "$web_conf"
wait_for 20 eval '[ "$(api GET /v1/hosts | jq ".hosts | length")" = 1 ]' ||
  fail "the agent did not enroll over HTTPS: $(cat "$T/agent-web01.log")"
cmp "$S/ca.pem" "$T/agent-web01/server-ca.pem" || fail "the agent kept another CA than the server's"
[ "$(stat -c %a "$T/agent-web01/server-ca.pem")" = 644 ] || fail "server-ca.pem is not mode 644"
grep -qF "is the pinned one ($PIN)" "$T/agent-web01.log" || fail "the agent did not say it checked the pin: $(cat "$T/agent-web01.log")"
cat > "$T/wave1.yaml" <<YAML
name: wave1
provider: local
store: file://$T/store
hosts:
  - name: web01
    format: raw
YAML
ferry blueprint apply "$T/wave1.yaml" >/dev/null || fail "blueprint apply over HTTPS"
ferry migrate web01 --blueprint wave1 >/dev/null || fail "migrate over HTTPS"
timeout 120 ferry job watch 1 >"$T/watch1.out" || fail "job 1 did not finish: $(ferry job show 1)"
cmp "$T/web01.img" "$T/store/web01/sda.raw" || fail "web01's migrated disk differs"
ok "an agent with the pin keeps the CA (0644), enrolls, posts discovery and clones a disk over HTTPS; the output equals the source"

# a second start reuses the CA and the certificate; the agent carries on
sum0=$(sha256sum "$S"/ca.pem "$S"/ca.key "$S"/server.pem "$S"/server.key)
kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true
start_server "$S/ferry.db" --lease 4 --tls-san ferry.test
[ "$(sha256sum "$S"/ca.pem "$S"/ca.key "$S"/server.pem "$S"/server.key)" = "$sum0" ] ||
  fail "the second start changed the CA or the certificate"
[ "$(grep -c "created a private CA" "$T/server.log")" = 1 ] || fail "a second CA was made"
dd if=/dev/urandom of="$T/web01.img" bs=1M count=2 seek=3 conv=notrunc status=none
ferry migrate web01 --blueprint wave1 >/dev/null || fail "second migrate"
timeout 120 ferry job watch 2 >/dev/null || fail "job 2 did not finish after the restart: $(ferry job show 2)"
cmp "$T/web01.img" "$T/store/web01/sda.raw" || fail "web01's disk differs after the restart"
ok "a second start reuses CA, key and certificate byte for byte; the agent migrates again"

# a new --tls-san issues the server certificate again, under the same CA
kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true
start_server "$S/ferry.db" --lease 4 --tls-san ferry.test --tls-san 192.0.2.7
grep -qF "$(sha256sum "$S/server.pem")" <<<"$sum0" && fail "server.pem was not issued again for the new SAN"
[ "$(fp_of "$S/ca.pem")" = "$PIN" ] || fail "the CA changed with a new SAN"
openssl x509 -in "$S/server.pem" -noout -ext subjectAltName | grep -qF "IP Address:192.0.2.7" ||
  fail "the new SAN is not in the certificate"
grep -q "issuing .*server.pem again: it lacks a name asked for" "$T/server.log" || fail "no re-issue logged"
openssl verify -CAfile "$S/ca.pem" "$S/server.pem" >/dev/null 2>&1 || fail "the re-issued certificate does not verify"
ok "a new --tls-san re-issues the server certificate under the same CA (the pin holds)"

# a wrong pin: one clear message, exit 1, nothing enrolled, no token kept
n_hosts=$(api GET /v1/hosts | jq '.hosts | length')
enrolled=$(grep -c "enrolled from" "$T/server.log")
make_root "$T/root-bad" bad01 sda=$((4 << 20))
bad_conf=$(make_agent bad01 "$T/root-bad")
BAD=sha256:$(printf '%064d' 0 | tr 0 a)
sed -i "s/^server_ca_sha256 = .*/server_ca_sha256 = $BAD/" "$bad_conf"
expect_fail "its CA is $PIN but server_ca_sha256 in $bad_conf is $BAD" timeout 60 ferry-agent run --config "$bad_conf"
grep -q "refusing $SERVER_URL" "$T/err" && grep -q "fix the pin" "$T/err" || fail "the refusal does not name the server and the fix: $(cat "$T/err")"
expect_fail "its CA is $PIN" timeout 60 ferry-agent discover --root "$T/root-bad" --config "$bad_conf" --post
[ ! -e "$T/agent-bad01/agent.token" ] && [ ! -e "$T/agent-bad01/server-ca.pem" ] || fail "the refused agent kept a token or the CA"
[ "$(api GET /v1/hosts | jq '.hosts | length')" = "$n_hosts" ] && [ "$(grep -c "enrolled from" "$T/server.log")" = "$enrolled" ] ||
  fail "the server saw an enrollment from the refused agent"
ok "an agent with a wrong pin refuses the server in one line (server, both fingerprints, the fix), exit 1; nothing is enrolled"

# an impostor ferry-server, its own CA: the agent with the real pin refuses
mkdir -p "$T/imp"
ip=$(free_port)
ferry-server --listen "127.0.0.1:$ip" --db "$T/imp/ferry.db" >"$T/imp.log" 2>&1 &
imp_pid=$!
at_exit "kill $imp_pid 2>/dev/null; wait $imp_pid 2>/dev/null"
wait_for 10 curl -sf --cacert "$T/imp/ca.pem" -o /dev/null "https://127.0.0.1:$ip/v1/ca.pem" || fail "impostor did not start"
IMP=$(fp_of "$T/imp/ca.pem")
make_agent imp01 "$T/root-bad" >/dev/null
sed -i "s|^server = .*|server = https://127.0.0.1:$ip|" "$T/agent-imp01/agent.conf"
expect_fail "refusing https://127.0.0.1:$ip: its CA is $IMP but server_ca_sha256" \
  timeout 60 ferry-agent run --config "$T/agent-imp01/agent.conf"
! grep -q "enrolled from" "$T/imp.log" || fail "the impostor got an enrollment"
# an impostor that offers the genuine CA (it is public) but holds no key
# signed by it: the pin matches, the verified handshake does not
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=localhost \
  -addext subjectAltName=IP:127.0.0.1 -keyout "$T/imp2.key" -out "$T/imp2.pem" 2>/dev/null
ip2=$(free_port)
python3 - "$ip2" "$T/imp2.pem" "$T/imp2.key" "$S/ca.pem" "$T/imp2.requests" <<'PY' &
import http.server, ssl, sys
port, cert, key, ca, log = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
class H(http.server.BaseHTTPRequestHandler):
    def record(self):
        with open(log, "a") as f:
            f.write("%s %s auth=%s\n" % (self.command, self.path, self.headers.get("Authorization") is not None))
    def do_GET(self):
        self.record()
        body = open(ca, "rb").read() if self.path == "/v1/ca.pem" else b"{}"
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def do_POST(self):
        self.record(); self.send_response(500); self.end_headers()
    def log_message(self, *a): pass
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); ctx.load_cert_chain(cert, key)
s = http.server.HTTPServer(("127.0.0.1", port), H)
s.socket = ctx.wrap_socket(s.socket, server_side=True)
s.serve_forever()
PY
imp2_pid=$!
at_exit "kill $imp2_pid 2>/dev/null; wait $imp2_pid 2>/dev/null"
wait_for 10 curl -sk -o /dev/null "https://127.0.0.1:$ip2/v1/ca.pem" || fail "the second impostor did not start"
: >"$T/imp2.requests"
make_agent imp02 "$T/root-bad" >/dev/null
sed -i "s|^server = .*|server = https://127.0.0.1:$ip2|" "$T/agent-imp02/agent.conf"
# (its first line, info, says the CA it was offered is the pinned one)
rc=0; timeout 60 ferry-agent run --config "$T/agent-imp02/agent.conf" >/dev/null 2>"$T/err" || rc=$?
[ "$rc" = 1 ] || fail "the agent did not stop on the impostor (exit $rc): $(cat "$T/err")"
tail -n 1 "$T/err" | grep -q "^ferry-agent: cannot enroll with https://127.0.0.1:$ip2: .*certificate.*must chain to the CA" ||
  fail "the refusal does not say what is wrong: $(cat "$T/err")"
[ "$(grep -vc "is the pinned one" "$T/err")" = 1 ] || fail "more than one error line: $(cat "$T/err")"
[ "$(cat "$T/imp2.requests")" = "GET /v1/ca.pem auth=False" ] ||
  fail "the impostor saw more than one tokenless CA fetch: $(cat "$T/imp2.requests")"
ok "an impostor with its own CA is refused by name; one offering the genuine CA fails the verified handshake: it saw only a tokenless GET /v1/ca.pem"

# https without a pin or a CA file: refused; the CLI without the CA: a hint
make_agent nopin "$T/root-bad" >/dev/null
sed -i '/^server_ca_sha256/d' "$T/agent-nopin/agent.conf"
expect_fail "has no server_ca_sha256" timeout 30 ferry-agent run --config "$T/agent-nopin/agent.conf"
cp "$OPERATOR_TOKEN_FILE" "$T/op.token"
expect_fail "FERRY_CA_FILE" env -u FERRY_CA_FILE FERRY_TOKEN_FILE="$T/op.token" ferry hosts
FERRY_TOKEN_FILE="$T/op.token" ferry hosts >/dev/null || fail "the CLI with FERRY_CA_FILE"
env -u FERRY_CA_FILE ferry hosts >/dev/null || fail "the CLI does not trust the ca.pem beside its token file"
ok "https without pin or CA file is refused; the CLI trusts FERRY_CA_FILE or the ca.pem beside its token, and says so when it has neither"

# plain HTTP: refused at start off loopback, allowed on it, warned with
# --insecure-http
for a in 0.0.0.0 192.0.2.1; do
  rc=0; ferry-server --http --listen "$a:18999" --db "$T/plain.db" >"$T/out" 2>"$T/err" || rc=$?
  [ "$rc" = 2 ] || fail "ferry-server --http on $a started or crashed (exit $rc)"
  grep -q "plain HTTP on $a:18999 would send every token in clear text: drop --http to serve HTTPS, or add --insecure-http" "$T/err" &&
    [ "$(grep -c . "$T/err")" = 1 ] || fail "the refusal is not one clear line: $(cat "$T/err")"
done
[ ! -e "$T/plain.db" ] && [ ! -e "$T/enroll.token" ] || fail "the refused server left files behind"
p=$(free_port)
ferry-server --http --listen "127.0.0.1:$p" --db "$T/plain/ferry.db" >"$T/plain.log" 2>&1 &
ppid_=$!
at_exit "kill $ppid_ 2>/dev/null; wait $ppid_ 2>/dev/null"
mkdir -p "$T/plain"
wait_for 10 curl -s -o /dev/null "http://127.0.0.1:$p/v1/hosts" || fail "--http on 127.0.0.1 did not start: $(cat "$T/plain.log")"
! grep -qi "insecure\|warn" "$T/plain.log" || fail "--http on loopback warned: $(cat "$T/plain.log")"
[ ! -e "$T/plain/ca.pem" ] || fail "a plain server made a CA"
kill "$ppid_"; wait "$ppid_" 2>/dev/null || true
p=$(free_port)
ferry-server --insecure-http --listen "127.0.0.2:$p" --db "$T/plain/ferry.db" >"$T/insecure.log" 2>&1 &
ipid=$!
at_exit "kill $ipid 2>/dev/null; wait $ipid 2>/dev/null"
wait_for 10 curl -s -o /dev/null "http://127.0.0.2:$p/v1/hosts" || fail "--insecure-http did not start: $(cat "$T/insecure.log")"
grep -q "insecure-http: plain HTTP, every token crosses the network in clear text" "$T/insecure.log" ||
  fail "--insecure-http gave no warning: $(cat "$T/insecure.log")"
ok "--http off loopback (0.0.0.0, 192.0.2.1) is refused at start in one line, exit 2; --http on loopback serves quietly; --insecure-http warns"

# two servers starting at once on a fresh state directory share one CA
mkdir -p "$T/twin"
p1=$(free_port); p2=$(free_port)
# (two databases: two servers creating one fresh database at once is
# another matter, outside TLS)
ferry-server --listen "127.0.0.1:$p1" --db "$T/twin/a.db" >"$T/twin1.log" 2>&1 & t1=$!
ferry-server --listen "127.0.0.1:$p2" --db "$T/twin/b.db" >"$T/twin2.log" 2>&1 & t2=$!
at_exit "kill $t1 $t2 2>/dev/null; wait $t1 $t2 2>/dev/null"
for p in $p1 $p2; do
  wait_for 10 curl -sf --cacert "$T/twin/ca.pem" -o /dev/null "https://127.0.0.1:$p/v1/ca.pem" ||
    fail "a twin on $p does not verify with the one ca.pem: $(cat "$T"/twin*.log)"
done
[ "$(cat "$T"/twin*.log | grep -c "created a private CA")" = 1 ] || fail "twins made two CAs: $(cat "$T"/twin*.log)"
ls "$T/twin" | grep -q '\.tmp$' && fail "a temporary file was left: $(ls "$T/twin")"
ok "two servers starting at once on one state directory make one CA and both serve it"

# the operator's own certificate and CA; mismatches refused at start
mkdir -p "$T/own"
(cd "$T/own" &&
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -subj /CN=own-ca \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign -keyout ca.key -out ca.pem &&
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost -keyout srv.key -out srv.csr &&
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >ext &&
  openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 -extfile ext -out srv.pem &&
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -subj /CN=other-ca \
    -addext basicConstraints=critical,CA:TRUE -keyout other.key -out other.pem) >/dev/null 2>&1 ||
  fail "openssl could not make the operator's certificates"
chmod 600 "$T/own/srv.key"
expect_fail "does not chain to the CA in $T/own/other.pem" \
  ferry-server --listen "127.0.0.1:$(free_port)" --db "$T/own/x.db" --tls-cert "$T/own/srv.pem" --tls-key "$T/own/srv.key" --tls-ca "$T/own/other.pem"
chmod 644 "$T/own/srv.key"
expect_fail "run chmod 600 $T/own/srv.key" \
  ferry-server --listen "127.0.0.1:$(free_port)" --db "$T/own/x.db" --tls-cert "$T/own/srv.pem" --tls-key "$T/own/srv.key"
chmod 600 "$T/own/srv.key"
expect_fail "does not belong to the certificate" \
  ferry-server --listen "127.0.0.1:$(free_port)" --db "$T/own/x.db" --tls-cert "$T/own/srv.pem" --tls-key "$T/own/ca.key" --tls-ca "$T/own/ca.pem"
[ ! -e "$T/own/enroll.token" ] && [ ! -e "$T/own/x.db" ] || fail "a server refused at start left a token or a database"
op=$(free_port)
ferry-server --listen "127.0.0.1:$op" --db "$T/own/ferry.db" --tls-cert "$T/own/srv.pem" --tls-key "$T/own/srv.key" \
  --tls-ca "$T/own/ca.pem" >"$T/own.log" 2>&1 &
opid=$!
at_exit "kill $opid 2>/dev/null; wait $opid 2>/dev/null"
wait_for 10 curl -sf --cacert "$T/own/ca.pem" -o /dev/null "https://127.0.0.1:$op/v1/ca.pem" || fail "own cert: $(cat "$T/own.log")"
OWN=$(fp_of "$T/own/ca.pem")
grep -qF "TLS: CA fingerprint $OWN" "$T/own.log" || fail "the operator's CA fingerprint is not logged: $(cat "$T/own.log")"
[ ! -e "$T/own/server.pem" ] || fail "the server made a certificate though given one"
mkdir -p "$T/agent-own"
install -m 600 "$T/own/enroll.token" "$T/agent-own/enroll.token"
printf 'server = https://127.0.0.1:%s\nserver_ca_sha256 = %s\nenroll_token_file = %s\ntoken_file = %s\nroot = %s\n' \
  "$op" "$OWN" "$T/agent-own/enroll.token" "$T/agent-own/agent.token" "$T/root-bad" >"$T/agent-own/agent.conf"
ferry-agent discover --root "$T/root-bad" --config "$T/agent-own/agent.conf" --post >/dev/null ||
  fail "an agent pinning the operator's CA could not post discovery"
ok "the operator's certificate: served with its CA's pin; a CA that did not sign it, a readable key or a key of another certificate is refused at start, leaving nothing"
