#!/usr/bin/env python3
"""dropproxy.py PORT UPSTREAM_PORT PATTERN LOG [DELAY]

An HTTP/1.1 proxy on 127.0.0.1:PORT in front of 127.0.0.1:UPSTREAM_PORT
that loses one answer: the first request whose "METHOD /path?query" matches
the regular expression PATTERN is forwarded and answered by the upstream
server in full, then the client's connection is closed without a byte of
that answer, as when a connection drops after the server did the work.
Every other request is relayed unchanged.  Each request is logged to LOG,
one line "METHOD /path?query STATUS" ("DROPPED" for the lost answer).
With DELAY (seconds), the first matching request is not dropped but held
that long before it is forwarded (a slow network), then answered in full
("DELAYED" is logged when it goes on).
"""
import time
import http.client
import http.server
import re
import sys
import threading

PORT, UPSTREAM, PATTERN, LOG = (int(sys.argv[1]), int(sys.argv[2]),
                                re.compile(sys.argv[3]), sys.argv[4])
DELAY = float(sys.argv[5]) if len(sys.argv) > 5 else None
BODY_CAP = 1 << 30             # requests larger than this are refused
HOP = {"connection", "keep-alive", "transfer-encoding", "expect",
       "proxy-connection", "te", "upgrade"}
lock = threading.Lock()
dropped = False


def log(line):
    with lock, open(LOG, "a") as f:
        f.write(line + "\n")


class Proxy(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"      # keep-alive; answers Expect: 100

    def log_message(self, fmt, *args):
        pass

    def relay(self):
        global dropped
        n = int(self.headers.get("Content-Length") or 0)
        if n > BODY_CAP:
            self.send_error(413)
            return
        body = self.rfile.read(n) if n else None
        headers = {k: v for k, v in self.headers.items()
                   if k.lower() not in HOP}
        if DELAY is not None:
            line = "%s %s" % (self.command, self.path)
            with lock:
                hold = not dropped and PATTERN.search(line) is not None
                dropped = dropped or hold
            if hold:
                time.sleep(DELAY)
                log(line + " DELAYED")
        up = http.client.HTTPConnection("127.0.0.1", UPSTREAM, timeout=60)
        up.request(self.command, self.path, body=body, headers=headers)
        resp = up.getresponse()
        data = resp.read()
        up.close()
        line = "%s %s" % (self.command, self.path)
        with lock:
            drop = (DELAY is None and not dropped and
                    PATTERN.search(line) is not None)
            dropped = dropped or drop
        if drop:
            log(line + " DROPPED")
            self.close_connection = True
            return
        log("%s %d" % (line, resp.status))
        out = ["HTTP/1.1 %d %s\r\n" % (resp.status, resp.reason)]
        for k, v in resp.getheaders():
            if k.lower() in HOP or (k.lower() == "content-length" and
                                    self.command != "HEAD"):
                continue
            out.append("%s: %s\r\n" % (k, v))
        if self.command != "HEAD":
            out.append("Content-Length: %d\r\n" % len(data))
        out.append("\r\n")
        self.wfile.write("".join(out).encode("latin-1"))
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = relay


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True


Server(("127.0.0.1", PORT), Proxy).serve_forever()
