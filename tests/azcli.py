#!/usr/bin/python3
"""azcli.py - an independent Azure Blob client for the tests (stdlib only).

Signs with Shared Key per Microsoft's "Authorize with Shared Key", written
apart from ferry's C signer so the tests cross-check one against the other.
Reads AZURE_STORAGE_ACCOUNT, AZURE_STORAGE_KEY, AZURE_STORAGE_BLOB_ENDPOINT.

  azcli.py mkcontainer NAME
  azcli.py put CONTAINER BLOB FILE      (block blob)
  azcli.py get CONTAINER BLOB           (to stdout)
  azcli.py pageranges CONTAINER BLOB    ("START-END" lines)
  azcli.py props CONTAINER BLOB         ("Name: value" lines)
  azcli.py accountsas PERMS SECONDS     (an account SAS for blob objects
                                         and containers)
"""
import base64, datetime, hashlib, hmac, os, sys, urllib.parse, urllib.request
import xml.etree.ElementTree as ET

ACCOUNT = os.environ["AZURE_STORAGE_ACCOUNT"]
KEY = base64.b64decode(os.environ["AZURE_STORAGE_KEY"])
ENDPOINT = os.environ["AZURE_STORAGE_BLOB_ENDPOINT"].rstrip("/")
VERSION = "2021-08-06"


def sign(method, path, query, headers):
    std = ["Content-Encoding", "Content-Language", "Content-Length",
           "Content-MD5", "Content-Type", "Date", "If-Modified-Since",
           "If-Match", "If-None-Match", "If-Unmodified-Since", "Range"]
    low = {k.lower(): v for k, v in headers.items()}
    parts = [method]
    for h in std:
        v = low.get(h.lower(), "")
        parts.append("" if h == "Content-Length" and v == "0" else v)
    s = "\n".join(parts) + "\n"
    for k in sorted(k for k in low if k.startswith("x-ms-")):
        s += "%s:%s\n" % (k, low[k])
    s += "/%s%s" % (ACCOUNT, path)
    for k in sorted(query):
        s += "\n%s:%s" % (k.lower(), query[k])
    mac = hmac.new(KEY, s.encode(), hashlib.sha256).digest()
    return "SharedKey %s:%s" % (ACCOUNT, base64.b64encode(mac).decode())


def call(method, container, blob=None, query=None, body=b"", headers=None):
    query = query or {}
    headers = dict(headers or {})
    base = urllib.parse.urlparse(ENDPOINT)
    path = base.path + "/" + container + ("/" + urllib.parse.quote(blob) if blob else "")
    headers["x-ms-date"] = datetime.datetime.utcnow().strftime("%a, %d %b %Y %H:%M:%S GMT")
    headers["x-ms-version"] = VERSION
    if method in ("PUT", "POST", "DELETE"):
        headers["Content-Length"] = str(len(body))
    if method in ("PUT", "POST"):
        # urllib would add its own form Content-Type, unsigned
        headers.setdefault("Content-Type", "application/octet-stream")
    headers["Authorization"] = sign(method, path, query, headers)
    url = base.scheme + "://" + base.netloc + path
    if query:
        url += "?" + urllib.parse.urlencode(query)
    req = urllib.request.Request(url, data=body if method in ("PUT", "POST") else None,
                                 method=method, headers=headers)
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        sys.exit("azcli: %s %s: HTTP %d %s" % (method, url, e.code, e.read()[:300]))


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "mkcontainer":
        call("PUT", args[0], query={"restype": "container"})
    elif cmd == "put":
        with open(args[2], "rb") as f:
            call("PUT", args[0], args[1], body=f.read(), headers={"x-ms-blob-type": "BlockBlob"})
    elif cmd == "get":
        sys.stdout.buffer.write(call("GET", args[0], args[1])[2])
    elif cmd == "pageranges":
        root = ET.fromstring(call("GET", args[0], args[1], query={"comp": "pagelist"})[2])
        for r in root.iter("PageRange"):
            print("%s-%s" % (r.find("Start").text, r.find("End").text))
    elif cmd == "props":
        for k, v in call("HEAD", args[0], args[1])[1].items():
            print("%s: %s" % (k, v))
    elif cmd == "accountsas":
        perms, secs = args[0], int(args[1])
        exp = (datetime.datetime.utcnow() + datetime.timedelta(seconds=secs)).strftime("%Y-%m-%dT%H:%M:%SZ")
        # "Create an account SAS", version 2020-12-06 and later
        sts = "\n".join([ACCOUNT, perms, "b", "co", "", exp, "", "", VERSION, ""]) + "\n"
        sig = base64.b64encode(hmac.new(KEY, sts.encode(), hashlib.sha256).digest()).decode()
        print(urllib.parse.urlencode({"sv": VERSION, "ss": "b", "srt": "co", "sp": perms,
                                      "se": exp, "sig": sig}))
    else:
        sys.exit("azcli: unknown command " + cmd)


main()
