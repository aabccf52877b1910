#!/usr/bin/env python3
"""gcp_contract.py - a contract server for the Compute Engine API v1 and
Google's OAuth 2.0 token endpoint, for tests/t-gcp-target.sh.

No emulator of GCE exists.  This server checks every request against
Google's own published model of the API and answers as GCE documents:

* The model: the compute v1 discovery document as Google's generator
  published it in google.golang.org/api/compute/v1/compute-gen.go (Debian's
  golang-google-api-dev; scripts/setup.sh unpacks that one file): every
  method's discovery entry is embedded there verbatim (httpMethod, path,
  parameters with location, pattern, required; request and response
  schema), and every schema is a Go struct whose json tags name its
  properties and whose Go types give theirs.  (python3-googleapi in Debian
  12 is 1.7.12, which ships no discovery documents.)
* Each request must match a method (HTTP method + path template), carry
  the path parameters' patterns, only known query parameters and every
  required one, and a body whose properties all exist in the method's
  request schema with the right JSON types, recursively (an unknown
  property is GCE's "Invalid JSON payload received. Unknown name");
  a bearer token this server issued, with the compute scope.
* POST /token verifies the JWT bearer assertion (RFC 7523) as Google does:
  RS256 signature against the service account's public key (PEM, given
  with --public-key; checked with openssl), iss, aud (this URL), scope,
  iat and exp (at most 1 h apart).  A bad one is 400 invalid_grant.
* Operations go PENDING -> RUNNING -> DONE over --op-seconds (images:
  --image-seconds); operations/wait blocks until DONE or --wait-max.
  requestId makes a retried insert answer its first operation.
* images.insert fetches rawDisk.source (https://storage.googleapis.com/
  BUCKET/OBJECT) from the Swift server (SWIFT_URL, SWIFT_TOKEN in the
  environment) as GCE fetches it from Cloud Storage, and checks it is a
  gzip'd tar whose disk.raw is a whole number of GiB; the digest of
  disk.raw is kept for the test (/_ctl/state).
* /_ctl/faults injects answers (429 with Retry-After, 503) and operation
  errors; /_ctl/log lists every request (method id, status); /_ctl/state
  every resource.  Only the test calls /_ctl.

Binds 127.0.0.1 only.
"""
import argparse
import base64
import gzip
import hashlib
import ipaddress
import json
import os
import re
import secrets
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

NAME_RE = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
GIB = 1 << 30
STANDARD_QUERY = {"alt", "fields", "key", "prettyPrint", "quotaUser", "userIp",
                  "access_token", "oauth_token", "upload_protocol",
                  "uploadType", "callback", "$.xgafv"}
COMPUTE_SCOPES = {"https://www.googleapis.com/auth/compute",
                  "https://www.googleapis.com/auth/cloud-platform"}


# ---- the model ----

def load_model(path):
    """Methods and schemas from compute-gen.go."""
    methods, schemas = {}, {}
    lines = open(path, encoding="utf-8").read().split("\n")
    i, n = 0, len(lines)
    struct_re = re.compile(r"^type (\w+) struct \{$")
    field_re = re.compile(r'^\t(\w+)\s+(\S+)\s+`json:"([^"]*)"`$')
    enum_re = re.compile(r'^\t//   "([A-Za-z0-9_]+)"')
    while i < n:
        line = lines[i]
        if line == "\t// {":
            buf = []
            i += 1
            while i < n and lines[i] != "\t// }":
                buf.append(lines[i][4:] if lines[i].startswith("\t// ") else "")
                i += 1
            try:
                m = json.loads("{" + "\n".join(buf) + "}")
            except ValueError:
                m = None
            if m and "httpMethod" in m and "id" in m:
                methods[m["id"]] = m
        else:
            sm = struct_re.match(line)
            if sm:
                fields, enum = {}, None
                i += 1
                while i < n and lines[i] != "}":
                    fl = lines[i]
                    if fl.startswith("\t// Possible values:"):
                        enum = []
                    elif enum is not None and enum_re.match(fl):
                        enum.append(enum_re.match(fl).group(1))
                    fm = field_re.match(fl)
                    if fm:
                        tag = fm.group(3).split(",")
                        if tag[0] != "-":
                            t = go_type(fm.group(2), "string" in tag[1:])
                            if enum and t == {"type": "string"}:
                                t = {"type": "string", "enum": enum}
                            fields[tag[0]] = t
                        enum = None
                    elif fl.strip() == "":
                        enum = None
                    i += 1
                schemas[sm.group(1)] = fields
        i += 1
    return methods, schemas


def go_type(t, as_string):
    t = t.lstrip("*")
    if t.startswith("[]"):
        return {"type": "array", "items": go_type(t[2:], as_string)}
    if t.startswith("map[string]"):
        return {"type": "object", "additionalProperties": go_type(t[11:], False)}
    if t in ("int64", "uint64", "int32", "int"):
        return {"type": "string", "format": "int64"} if as_string else {"type": "integer"}
    if t == "string":
        return {"type": "string"}
    if t == "bool":
        return {"type": "boolean"}
    if t in ("float64", "gensupport.JSONFloat64"):
        return {"type": "number"}
    if t.startswith("googleapi."):
        return {"type": "any"}
    return {"$ref": t}


class Invalid(Exception):
    pass


def check_value(schemas, v, t, where):
    if "$ref" in t:
        fields = schemas.get(t["$ref"])
        if fields is None:
            raise Invalid("no schema %s" % t["$ref"])
        if not isinstance(v, dict):
            raise Invalid("Invalid value at '%s' (type.googleapis.com/compute.%s), %s"
                          % (where, t["$ref"], json.dumps(v)))
        for k, sub in v.items():
            if k not in fields:
                raise Invalid("Invalid JSON payload received. Unknown name \"%s\" at '%s': "
                              "Cannot find field." % (k, where))
            check_value(schemas, sub, fields[k], where + "." + k)
        return
    ty = t["type"]
    ok = {
        "string": lambda: isinstance(v, str) or (t.get("format") == "int64" and isinstance(v, int)
                                                 and not isinstance(v, bool)),
        "integer": lambda: isinstance(v, int) and not isinstance(v, bool),
        "boolean": lambda: isinstance(v, bool),
        "number": lambda: isinstance(v, (int, float)) and not isinstance(v, bool),
        "array": lambda: isinstance(v, list),
        "object": lambda: isinstance(v, dict),
        "any": lambda: True,
    }[ty]()
    if not ok:
        raise Invalid("Invalid value at '%s' (%s), %s" % (where, ty, json.dumps(v)))
    if ty == "string" and t.get("format") == "int64" and isinstance(v, str) and \
            not re.match(r"^-?[0-9]+$", v):
        raise Invalid("Invalid value at '%s' (TYPE_INT64), \"%s\"" % (where, v))
    if ty == "string" and "enum" in t and v not in t["enum"]:
        raise Invalid("Invalid value at '%s' (type.googleapis.com/compute.enum), \"%s\"" % (where, v))
    if ty == "array":
        for k, item in enumerate(v):
            check_value(schemas, item, t["items"], "%s[%d]" % (where, k))
    if ty == "object":
        for k, item in v.items():
            check_value(schemas, item, t["additionalProperties"], "%s[%s]" % (where, k))


def template_re(path):
    out = ""
    for part in re.split(r"(\{\+?[A-Za-z0-9_]+\})", path):
        if part.startswith("{+"):
            out += "(?P<%s>.+)" % part[2:-1]
        elif part.startswith("{"):
            out += "(?P<%s>[^/]+)" % part[1:-1]
        else:
            out += re.escape(part)
    return re.compile("^" + out + "$")


# ---- the server ----

class State:
    def __init__(self, args):
        self.args = args
        self.lock = threading.Condition()
        self.methods, self.schemas = load_model(args.model)
        if "compute.instances.insert" not in self.methods or "Instance" not in self.schemas:
            sys.exit("gcp_contract: %s holds no compute v1 model" % args.model)
        self.routes = [(m["httpMethod"], template_re(m["path"]), m) for m in self.methods.values()]
        self.tokens = {}            # token -> (expiry, scopes)
        self.res = {}               # "projects/p/global/images/x" -> resource
        self.ops = {}               # op path -> op record
        self.request_ids = {}       # requestId -> op path
        self.faults = []            # {method, status, count}
        self.op_errors = []         # {method, code, message, count}
        self.log = []
        self.next_id = 1000
        self.pub = args.public_key
        self.email = args.email

    def new_id(self):
        self.next_id += 1
        return str(self.next_id * 7919)


def now_rfc3339():
    return time.strftime("%Y-%m-%dT%H:%M:%S.000-00:00", time.gmtime())


def b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "gcp-contract"

    def log_message(self, fmt, *a):
        pass

    # -- plumbing --
    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def send(self, status, obj, headers=None):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def gerr(self, status, reason, message, what=None, headers=None):
        st = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
              404: "NOT_FOUND", 409: "ALREADY_EXISTS", 429: "RESOURCE_EXHAUSTED",
              503: "UNAVAILABLE"}.get(status, "UNKNOWN")
        self.record(what, status)
        self.send(status, {"error": {"code": status, "message": message, "status": st,
                                     "errors": [{"message": message, "domain": "global",
                                                 "reason": reason}]}}, headers)

    def record(self, what, status, extra=None):
        st = self.server.st
        with st.lock:
            e = {"t": round(time.time(), 3), "method": what or self.command + " " + self.path,
                 "status": status}
            if extra:
                e.update(extra)
            st.log.append(e)

    def do_GET(self):
        self.dispatch()

    def do_POST(self):
        self.dispatch()

    def do_DELETE(self):
        self.dispatch()

    def do_PUT(self):
        self.dispatch()

    def do_PATCH(self):
        self.dispatch()

    def dispatch(self):
        try:
            u = urllib.parse.urlsplit(self.path)
            if u.path == "/token":
                return self.token()
            if u.path.startswith("/_ctl/"):
                return self.ctl(u.path[6:])
            if u.path.startswith("/compute/v1/"):
                return self.compute(u)
            self.gerr(404, "notFound", "no such API: %s" % u.path)
        except BrokenPipeError:
            pass

    # -- control (the test only) --
    def ctl(self, what):
        st = self.server.st
        if what == "faults" and self.command == "POST":
            spec = json.loads(self.body() or b"{}")
            with st.lock:
                st.faults.extend(spec.get("answers", []))
                st.op_errors.extend(spec.get("op_errors", []))
            return self.send(200, {})
        if what == "timing" and self.command == "POST":
            spec = json.loads(self.body() or b"{}")
            for k in ("op_seconds", "image_seconds"):
                if k in spec:
                    setattr(st.args, k, float(spec[k]))
            return self.send(200, {})
        with st.lock:
            self.tick()
            if what == "log":
                return self.send(200, st.log)
            if what == "state":
                return self.send(200, {"resources": st.res,
                                       "operations": {k: v["op"] for k, v in st.ops.items()}})
        self.send(404, {})

    # -- OAuth 2.0 token endpoint (RFC 7523 JWT bearer grant) --
    def token(self):
        st = self.server.st
        form = urllib.parse.parse_qs(self.body().decode(), keep_blank_values=True)

        def bad(err, desc):
            self.record("oauth2.token", 400, {"error": err})
            self.send(400, {"error": err, "error_description": desc})

        if self.command != "POST" or \
                self.headers.get("Content-Type", "").split(";")[0] != "application/x-www-form-urlencoded":
            return bad("invalid_request", "POST application/x-www-form-urlencoded")
        if form.get("grant_type") != ["urn:ietf:params:oauth:grant-type:jwt-bearer"]:
            return bad("unsupported_grant_type", "Invalid grant_type: %s" % form.get("grant_type"))
        parts = (form.get("assertion") or [""])[0].split(".")
        if len(parts) != 3:
            return bad("invalid_grant", "Invalid JWT: Token must be a short-lived token")
        try:
            hdr = json.loads(b64url_decode(parts[0]))
            claims = json.loads(b64url_decode(parts[1]))
            sig = b64url_decode(parts[2])
        except ValueError:
            return bad("invalid_grant", "Invalid JWT: not base64url JSON")
        if hdr.get("alg") != "RS256":
            return bad("invalid_grant", "Invalid JWT: alg %s is not RS256" % hdr.get("alg"))
        with tempfile.TemporaryDirectory() as d:
            open(d + "/data", "wb").write((parts[0] + "." + parts[1]).encode())
            open(d + "/sig", "wb").write(sig)
            r = subprocess.run(["openssl", "dgst", "-sha256", "-verify", st.pub,
                                "-signature", d + "/sig", d + "/data"],
                               capture_output=True)
        if r.returncode != 0:
            return bad("invalid_grant", "Invalid JWT Signature.")
        now = time.time()
        aud = "http://%s:%d/token" % self.server.server_address
        scopes = set(str(claims.get("scope", "")).split())
        problems = []
        if claims.get("iss") != st.email:
            problems.append("iss %s is not the service account" % claims.get("iss"))
        if claims.get("aud") != aud:
            problems.append("aud %s is not %s" % (claims.get("aud"), aud))
        if not scopes & COMPUTE_SCOPES:
            problems.append("no compute scope")
        iat, exp = claims.get("iat"), claims.get("exp")
        if not isinstance(iat, int) or not isinstance(exp, int):
            problems.append("iat/exp not integers")
        elif exp - iat > 3600 or exp <= iat or abs(iat - now) > 300 or exp < now:
            problems.append("Invalid JWT: Token must be a short-lived token (60 minutes) "
                            "and in a reasonable timeframe")
        if problems:
            return bad("invalid_grant", "; ".join(problems))
        tok = "ya29.c." + secrets.token_urlsafe(48)
        with st.lock:
            st.tokens[tok] = (now + 3600, scopes)
        self.record("oauth2.token", 200, {"scopes": sorted(scopes)})
        self.send(200, {"access_token": tok, "expires_in": 3599, "token_type": "Bearer"})

    # -- compute --
    def compute(self, u):
        st = self.server.st
        path = u.path[len("/compute/v1/"):]
        method = None
        for verb, rx, m in st.routes:
            if verb == self.command:
                mm = rx.match(path)
                if mm:
                    method, params = m, mm.groupdict()
                    break
        raw = self.body()
        if method is None:
            return self.gerr(404, "notFound", "no compute v1 method %s %s (discovery)" % (self.command, path))
        mid = method["id"]
        # auth
        auth = self.headers.get("Authorization", "")
        with st.lock:
            tok = st.tokens.get(auth[7:]) if auth.startswith("Bearer ") else None
        if tok is None or tok[0] < time.time():
            return self.gerr(401, "authError", "Request had invalid authentication credentials. "
                             "Expected OAuth 2 access token", mid,
                             {"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'})
        if not tok[1] & COMPUTE_SCOPES:
            return self.gerr(403, "insufficientPermissions",
                             "Request had insufficient authentication scopes.", mid)
        # parameters (discovery: location, pattern, required)
        mparams = method.get("parameters", {})
        for k, v in params.items():
            p = mparams.get(k)
            v = urllib.parse.unquote(v)
            params[k] = v
            if p is None or p.get("location") != "path":
                return self.gerr(400, "invalid", "path parameter %s not in %s" % (k, mid), mid)
            if "pattern" in p and not re.fullmatch(p["pattern"], v):
                return self.gerr(400, "invalidParameter", "Invalid value for %s: %s" % (k, v), mid)
        query = urllib.parse.parse_qs(u.query, keep_blank_values=True)
        for k, vs in query.items():
            p = mparams.get(k)
            if k in STANDARD_QUERY:
                continue
            if p is None or p.get("location") != "query":
                return self.gerr(400, "invalidParameter", "Invalid JSON payload received. Unknown name "
                                 "\"%s\": Cannot bind query parameter. Field '%s' could not be found "
                                 "in request message." % (k, k), mid)
            if p.get("type") == "boolean" and vs[0] not in ("true", "false"):
                return self.gerr(400, "invalidParameter", "Invalid value for %s" % k, mid)
        for k, p in mparams.items():
            if p.get("required") and k not in params and k not in query:
                return self.gerr(400, "required", "Required parameter %s" % k, mid)
        rid = (query.get("requestId") or [None])[0]
        if rid is not None and not UUID_RE.match(rid):
            return self.gerr(400, "invalid", "Invalid value for field 'requestId': '%s'. "
                             "The request id must be a valid UUID." % rid, mid)
        # body against the request schema
        body = None
        if "request" in method:
            if self.headers.get("Content-Type", "").split(";")[0] != "application/json":
                return self.gerr(400, "parseError", "%s needs a JSON body" % mid, mid)
            try:
                body = json.loads(raw)
                check_value(st.schemas, body, method["request"], "resource")
            except ValueError:
                return self.gerr(400, "parseError", "Parse Error", mid)
            except Invalid as e:
                return self.gerr(400, "invalid", str(e), mid)
        elif raw:
            return self.gerr(400, "invalid", "%s takes no body" % mid, mid)
        # injected answers
        with st.lock:
            for f in st.faults:
                if f["method"] == mid and f.get("count", 1) > 0:
                    f["count"] = f.get("count", 1) - 1
                    status = f["status"]
                    hdrs = {"Retry-After": "1"} if status == 429 else {}
                    reason = "rateLimitExceeded" if status == 429 else "backendError"
                    msg = ("Quota exceeded for quota metric 'Queries' (injected)" if status == 429
                           else "The service is currently unavailable (injected)")
                    break
            else:
                status = None
        if status:
            return self.gerr(status, reason, msg, mid, hdrs)
        with st.lock:
            self.tick()
            code, ans = self.semantics(mid, params, query, body, rid)
        if code >= 400:
            return self.gerr(code, ans[0], ans[1], mid)
        self.record(mid, code, {"name": (body or {}).get("name") or path.rsplit("/", 1)[-1]})
        self.send(code, public(ans))

    # -- what GCE does (callers hold st.lock) --
    def base(self):
        return "http://%s:%d/compute/v1/" % self.server.server_address

    def tick(self):
        """Move operations on with time; finish what is due."""
        st = self.server.st
        now = time.time()
        for rec in st.ops.values():
            op = rec["op"]
            if op["status"] == "DONE":
                continue
            if now >= rec["due"]:
                op["status"], op["progress"] = "DONE", 100
                op["endTime"] = now_rfc3339()
                fin = rec.get("finish")
                if rec.get("error"):
                    op["error"] = {"errors": [rec["error"]]}
                    op["httpErrorStatusCode"], op["httpErrorMessage"] = 400, "BAD REQUEST"
                    if rec.get("fail"):
                        rec["fail"]()
                elif fin:
                    fin()
            elif now >= rec["start"] + (rec["due"] - rec["start"]) * 0.2:
                op["status"], op["progress"] = "RUNNING", 50
                op.setdefault("startTime", now_rfc3339())
        st.lock.notify_all()

    def new_op(self, mid, params, target, kind, seconds, finish=None, error=None, fail=None):
        st = self.server.st
        p = params["project"]
        name = "operation-%d-%s" % (int(time.time() * 1000), secrets.token_hex(6))
        if "zone" in params:
            scope = "projects/%s/zones/%s/operations/%s" % (p, params["zone"], name)
        elif "region" in params:
            scope = "projects/%s/regions/%s/operations/%s" % (p, params["region"], name)
        else:
            scope = "projects/%s/global/operations/%s" % (p, name)
        for e in st.op_errors:
            if e["method"] == mid and e.get("count", 1) > 0:
                e["count"] = e.get("count", 1) - 1
                error = {"code": e["code"], "message": e["message"]}
        op = {"kind": "compute#operation", "id": st.new_id(), "name": name,
              "operationType": kind, "targetLink": self.base() + target,
              "targetId": st.res.get(target, {}).get("id", st.new_id()),
              "status": "PENDING", "progress": 0, "user": st.email,
              "insertTime": now_rfc3339(), "selfLink": self.base() + scope}
        if "zone" in params:
            op["zone"] = self.base() + "projects/%s/zones/%s" % (p, params["zone"])
        if "region" in params:
            op["region"] = self.base() + "projects/%s/regions/%s" % (p, params["region"])
        now = time.time()
        st.ops[scope] = {"op": op, "start": now, "due": now + seconds, "finish": finish,
                         "error": error, "fail": fail}
        return op

    def semantics(self, mid, params, query, body, rid):
        st = self.server.st
        a = st.args
        svc, verb = mid.split(".")[1:3]
        p = params.get("project")
        if p != a.project:
            return 403, ("forbidden", "Required 'compute.%s.%s' permission for 'projects/%s'"
                         % (svc, verb, p))
        if svc == "regions" and verb == "get":
            r = params["region"]
            zones = [self.base() + "projects/%s/zones/%s-%s" % (p, r, z) for z in ("c", "b", "d")]
            return 200, {"kind": "compute#region", "name": r, "status": "UP", "zones": zones,
                         "selfLink": self.base() + "projects/%s/regions/%s" % (p, r)}
        if svc in ("zoneOperations", "regionOperations", "globalOperations"):
            scope = ("zones/" + params["zone"] if "zone" in params else
                     "regions/" + params["region"] if "region" in params else "global")
            key = "projects/%s/%s/operations/%s" % (p, scope, params["operation"])
            rec = st.ops.get(key)
            if rec is None:
                return 404, ("notFound", "The resource '%s' was not found" % key)
            if verb == "wait":
                end = time.time() + a.wait_max
                while rec["op"]["status"] != "DONE" and time.time() < end:
                    st.lock.wait(0.1)
                    self.tick()
            return 200, rec["op"]
        coll = {"networks": "global/networks", "firewalls": "global/firewalls",
                "images": "global/images", "subnetworks": "regions/%s/subnetworks",
                "disks": "zones/%s/disks", "instances": "zones/%s/instances"}.get(svc)
        if coll is None:
            return 501, ("notImplemented", "the contract server does not implement %s" % mid)
        coll = "projects/%s/%s" % (p, coll % (params.get("region") or params.get("zone"))
                                   if "%s" in coll else coll)
        single = svc[:-1] if svc != "subnetworks" else "subnetwork"
        if verb == "list":
            # pages of at most --page-size, so a client must follow
            # nextPageToken as GCE may answer fewer than maxResults
            keys = sorted(k for k in st.res if k.startswith(coll + "/") and "/" not in k[len(coll) + 1:])
            start = int((query.get("pageToken") or ["0"])[0])
            size = min(int((query.get("maxResults") or ["500"])[0]), a.page_size)
            ans = {"kind": "compute#%sList" % single, "id": coll, "items": [st.res[k] for k in keys[start:start + size]],
                   "selfLink": self.base() + coll}
            if start + size < len(keys):
                ans["nextPageToken"] = str(start + size)
            return 200, ans
        if verb == "get":
            key = coll + "/" + params[single]
            if key not in st.res:
                return 404, ("notFound", "The resource '%s' was not found" % key)
            return 200, st.res[key]
        if verb == "delete":
            key = coll + "/" + params[single]
            if key not in st.res:
                return 404, ("notFound", "The resource '%s' was not found" % key)
            if svc == "disks" and st.res[key].get("users"):
                return 400, ("resourceInUseByAnotherResource", "The disk resource '%s' is already "
                             "being used by '%s'" % (key, st.res[key]["users"][0]))
            if svc == "networks":
                for k, v in st.res.items():
                    if v.get("network", "").endswith(key):
                        return 400, ("resourceInUseByAnotherResource",
                                     "The network resource '%s' is already being used by '%s'" % (key, k))

            def gone(key=key):
                r = st.res.pop(key, None)
                for d in (r or {}).get("disks", []):
                    src = d.get("source", "").split("/compute/v1/")[-1]
                    if src in st.res:
                        st.res[src]["users"] = []
                        if d.get("autoDelete"):
                            st.res.pop(src, None)
            return 200, self.new_op(mid, params, key, "delete", a.op_seconds, gone)
        if verb != "insert":
            return 501, ("notImplemented", "the contract server does not implement %s" % mid)
        if rid and rid in st.request_ids:
            return 200, st.ops[st.request_ids[rid]]["op"]
        name = body.get("name", "")
        if not NAME_RE.match(name):
            return 400, ("invalid", "Invalid value for field 'resource.name': '%s'. Must be a match "
                         "of regex '(?:[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?)'" % name)
        key = coll + "/" + name
        if key in st.res:
            return 409, ("alreadyExists", "The resource '%s' already exists" % key)
        res = dict(body)
        res.update({"kind": "compute#" + single, "id": st.new_id(),
                    "creationTimestamp": now_rfc3339(), "selfLink": self.base() + key})
        check = getattr(self, "insert_" + svc)(p, params, res)
        if check:
            return 400, check
        seconds = a.image_seconds if svc == "images" else a.op_seconds
        st.res[key] = res

        def done():
            res["status"] = {"images": "READY", "disks": "READY",
                             "instances": "RUNNING"}.get(svc, res.get("status"))

        def failed():
            if svc == "images":
                res["status"] = "FAILED"
                return
            st.res.pop(key, None)
            for d in res.get("disks", []) if svc == "instances" else []:
                src = self.ref(p, d.get("source"))
                if src in st.res:
                    st.res[src]["users"] = []
        err = res.pop("_error", None)
        op = self.new_op(mid, params, key, "insert", seconds, done, err, failed)
        if rid:
            st.request_ids[rid] = op["selfLink"].split("/compute/v1/")[-1]
        return 200, op

    def ref(self, p, url):
        """A partial or full resource URL -> the key in st.res."""
        if url is None:
            return None
        url = url.split("/compute/v1/")[-1]
        return url if url.startswith("projects/") else "projects/%s/%s" % (p, url)

    def insert_networks(self, p, params, res):
        if res.get("autoCreateSubnetworks", True) is not False and "IPv4Range" not in res:
            res["x_auto_mode"] = True
        res.setdefault("subnetworks", [])
        return None

    def insert_subnetworks(self, p, params, res):
        st = self.server.st
        net = self.ref(p, res.get("network"))
        if net not in st.res:
            return ("invalid", "Invalid value for field 'resource.network': '%s'. The referenced "
                    "network resource cannot be found." % res.get("network"))
        try:
            cidr = ipaddress.ip_network(res.get("ipCidrRange", ""))
        except ValueError:
            return ("invalid", "Invalid value for field 'resource.ipCidrRange': '%s'. Invalid IPCidrRange"
                    % res.get("ipCidrRange"))
        for k, v in st.res.items():
            if "/subnetworks/" in k and self.ref(p, v.get("network")) == net and \
                    ipaddress.ip_network(v["ipCidrRange"]).overlaps(cidr):
                return ("invalid", "Invalid IPCidrRange: %s conflicts with existing subnetwork '%s'"
                        % (cidr, k))
        res["region"] = self.base() + "projects/%s/regions/%s" % (p, params["region"])
        res["gatewayAddress"] = str(next(cidr.hosts()))
        st.res[net]["subnetworks"].append(self.base() + "projects/%s/regions/%s/subnetworks/%s"
                                          % (p, params["region"], res["name"]))
        return None

    def insert_firewalls(self, p, params, res):
        if self.ref(p, res.get("network")) not in self.server.st.res:
            return ("invalid", "Invalid value for field 'resource.network': '%s'. The referenced "
                    "network resource cannot be found." % res.get("network"))
        if not res.get("allowed") and not res.get("denied"):
            return ("invalid", "Invalid value for field 'resource': one of allowed or denied")
        return None

    def insert_images(self, p, params, res):
        src = (res.get("rawDisk") or {}).get("source")
        pre = "https://storage.googleapis.com/"
        if not src or not src.startswith(pre):
            if not res.get("sourceDisk") and not res.get("sourceImage"):
                return ("invalid", "Invalid value for field 'resource.rawDisk.source': '%s'." % src)
            return None
        res["status"] = "PENDING"
        res["sourceType"] = "RAW"
        # GCE reads the object from Cloud Storage: here, from Swift
        obj = urllib.parse.unquote(src[len(pre):])
        url = os.environ["SWIFT_URL"] + "/" + urllib.parse.quote(obj)
        req = urllib.request.Request(url, headers={"X-Auth-Token": os.environ["SWIFT_TOKEN"]})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                info = check_gce_tar(r)
        except urllib.error.HTTPError as e:
            res["_error"] = {"code": "INVALID_FIELD_VALUE",
                             "message": "Invalid value for field 'resource.rawDisk.source': '%s'. "
                                        "The object could not be read (%d)." % (src, e.code)}
            return None
        except ValueError as e:
            res["_error"] = {"code": "INVALID_FIELD_VALUE",
                             "message": "Invalid value for field 'resource.rawDisk.source': '%s'. %s"
                                        % (src, e)}
            return None
        res["archiveSizeBytes"] = str(info["archive"])
        res["diskSizeGb"] = str(info["size"] // GIB)
        res["x_disk_sha256"] = info["sha256"]
        return None

    def insert_disks(self, p, params, res):
        st = self.server.st
        img = self.ref(p, res.get("sourceImage"))
        if img not in st.res or st.res[img].get("status") != "READY":
            return ("invalid", "The resource '%s' is not ready or was not found" % img)
        res["status"] = "CREATING"
        res["zone"] = self.base() + "projects/%s/zones/%s" % (p, params["zone"])
        res.setdefault("sizeGb", st.res[img]["diskSizeGb"])
        res["users"] = []
        return None

    def insert_instances(self, p, params, res):
        st = self.server.st
        z = params["zone"]
        mt = self.ref(p, res.get("machineType"))
        if not mt or not re.fullmatch(r"projects/%s/zones/%s/machineTypes/[a-z0-9-]+" % (p, re.escape(z)), mt):
            return ("invalid", "Invalid value for field 'resource.machineType': '%s'." % res.get("machineType"))
        disks = res.get("disks") or []
        if not disks or not disks[0].get("boot"):
            return ("invalid", "Invalid value for field 'resource.disks': a boot disk comes first")
        for i, d in enumerate(disks):
            if "initializeParams" in d:
                img = self.ref(p, d["initializeParams"].get("sourceImage"))
                if img not in st.res or st.res[img].get("status") != "READY":
                    return ("invalid", "Invalid value for field 'resource.disks[%d].initializeParams"
                            ".sourceImage': the image is not READY or does not exist" % i)
            else:
                src = self.ref(p, d.get("source"))
                if src not in st.res or "/zones/%s/disks/" % z not in src:
                    return ("invalid", "Invalid value for field 'resource.disks[%d].source': '%s'."
                            % (i, d.get("source")))
                if st.res[src].get("users"):
                    return ("resourceInUseByAnotherResource", "The disk resource '%s' is already "
                            "being used by '%s'" % (src, st.res[src]["users"][0]))
        nics = res.get("networkInterfaces") or []
        if len(nics) != 1:
            return ("invalid", "one network interface expected")
        sub = self.ref(p, nics[0].get("subnetwork"))
        region = z.rsplit("-", 1)[0]
        if sub not in st.res or "/regions/%s/" % region not in sub:
            return ("invalid", "Invalid value for field 'resource.networkInterfaces[0].subnetwork': "
                    "'%s'. The referenced subnetwork resource cannot be found." % nics[0].get("subnetwork"))
        cidr = ipaddress.ip_network(st.res[sub]["ipCidrRange"])
        ip = nics[0].get("networkIP")
        used = {n.get("networkIP") for k, v in st.res.items() if "/instances/" in k
                for n in v.get("networkInterfaces", [])}
        if ip:
            if ipaddress.ip_address(ip) not in cidr:
                return ("invalid", "Invalid value for field 'resource.networkInterfaces[0].networkIP': "
                        "'%s'. Requested internal IP is outside the subnetwork CIDR range." % ip)
            if ip in used:
                return ("invalid", "IP '%s' is already being used by another resource." % ip)
        else:
            ip = next(str(h) for h in list(cidr.hosts())[1:] if str(h) not in used)
        nics[0].update({"networkIP": ip, "network": st.res[sub]["network"], "name": "nic0",
                        "kind": "compute#networkInterface"})
        for i, d in enumerate(disks):
            src = self.ref(p, d.get("source"))
            if src in st.res:
                st.res[src]["users"] = [self.base() + "projects/%s/zones/%s/instances/%s"
                                        % (p, z, res["name"])]
            d["index"] = i
        res["status"] = "PROVISIONING"
        res["zone"] = self.base() + "projects/%s/zones/%s" % (p, z)
        res["machineType"] = self.base() + mt
        return None


def public(obj):
    """An answer without the server's own x_ fields."""
    if isinstance(obj, dict):
        return {k: public(v) for k, v in obj.items() if not k.startswith(("x_", "_"))}
    if isinstance(obj, list):
        return [public(v) for v in obj]
    return obj


def check_gce_tar(stream):
    """GCE's rules for an imported image: a gzip'd tar with disk.raw, a whole
    number of GiB.  Returns {archive, size, sha256} or raises ValueError."""
    counted = Counting(stream)
    try:
        with tarfile.open(fileobj=gzip.GzipFile(fileobj=counted), mode="r|") as tf:
            for m in tf:
                if m.name != "disk.raw":
                    continue
                if m.size % GIB:
                    raise ValueError("disk.raw is %d bytes, not a multiple of 1 GiB" % m.size)
                h, f, n = hashlib.sha256(), tf.extractfile(m), 0
                while True:
                    b = f.read(1 << 20)
                    if not b:
                        break
                    h.update(b)
                    n += len(b)
                if n != m.size:
                    raise ValueError("disk.raw is short")
                while counted.read(1 << 20):
                    pass
                return {"archive": counted.n, "size": m.size, "sha256": h.hexdigest()}
    except (tarfile.TarError, OSError, EOFError) as e:
        raise ValueError("The image file is not a gzip'd tar: %s" % e)
    raise ValueError("The archive holds no disk.raw")


class Counting:
    def __init__(self, f):
        self.f, self.n = f, 0

    def read(self, n=-1):
        b = self.f.read(n)
        self.n += len(b)
        return b


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--model", required=True, help="compute-gen.go")
    ap.add_argument("--public-key", required=True)
    ap.add_argument("--email", required=True)
    ap.add_argument("--project", required=True)
    ap.add_argument("--op-seconds", type=float, default=0.5)
    ap.add_argument("--image-seconds", type=float, default=1.0)
    ap.add_argument("--wait-max", type=float, default=2.0)
    ap.add_argument("--page-size", type=int, default=2)
    ap.add_argument("--ready-file")
    args = ap.parse_args()
    srv = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    srv.daemon_threads = True
    srv.st = State(args)
    if args.ready_file:
        open(args.ready_file, "w").write("%d methods, %d schemas\n"
                                         % (len(srv.st.methods), len(srv.st.schemas)))
    srv.serve_forever()


if __name__ == "__main__":
    main()
