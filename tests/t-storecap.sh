#!/bin/bash
# Answers larger than a store expects are refused, not buffered: a server
# sending more than the cap of a response makes the request fail with one
# line naming the cap, and (under the ASan build, detect_leaks=1) nothing
# of the partial answer is left allocated.
. "$(dirname "$0")/lib.sh"
requires python3
TOOL=${FERRY_UNIT:-$TOP/build/tests}/store-tool
[ -x "$TOOL" ] || fail "$TOOL is missing: run make unit"

# a server that answers every request 200 (206 for a range) with 2 MiB,
# more than the 1 MiB cap of a small answer and than any range asked for
port=$(free_port)
python3 - "$port" >>"$T/big.log" 2>&1 <<'PY' &
import http.server, sys
BODY = b"x" * (2 << 20)
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def answer(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            self.rfile.read(n)
        self.send_response(206 if self.headers.get("Range") else 200)
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)
    do_GET = do_PUT = do_POST = do_DELETE = answer
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
pid=$!
at_exit "kill $pid 2>/dev/null; wait $pid 2>/dev/null"
wait_for 10 curl -s -o /dev/null "http://127.0.0.1:$port/" || fail "the test server did not start"

export AWS_ENDPOINT_URL=http://127.0.0.1:$port AWS_REGION=us-east-1
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test-secret
export AZURE_STORAGE_BLOB_ENDPOINT=http://127.0.0.1:$port/acct AZURE_STORAGE_ACCOUNT=acct
export AZURE_STORAGE_KEY=$(head -c 64 /dev/zero | base64 -w0)
unset AZURE_STORAGE_SAS_TOKEN AZURE_STORAGE_CONNECTION_STRING
expect_fail "response larger than the 1048576 bytes expected" "$TOOL" rm s3://b/p k
expect_fail "response larger than the 1048576 bytes expected" "$TOOL" rm azure://cont/p k
expect_fail "response larger than the 1000 bytes expected" "$TOOL" get s3://b/p k 0 1000
ok "a 2 MiB answer to a DELETE (cap 1 MiB) and to a 1000-byte range fails with one line naming the cap"
