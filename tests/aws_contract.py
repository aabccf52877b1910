#!/usr/bin/env python3
"""aws_contract.py - the AWS contract server of tests/t-aws.sh.

Sits between ferry-server and moto (moto_server on 127.0.0.1) and checks
EVERY request it receives against botocore's own service models (the JSON
models botocore ships, data/ec2/*/service-2.json and data/ebs/*): the
operation exists, its required members are there, every member is one the
model knows and has the model's type (and enum value).  It verifies the
SigV4 signature with the test's key (moto does not) and answers a wrong
key as AWS does (EC2 AuthFailure, EBS UnrecognizedClientException).

What moto implements goes on to moto (EC2 VPCs, subnets, security groups,
snapshots, images, instances).  What moto lacks or gets wrong is answered
here, as AWS documents it:
  - the EBS direct APIs: StartSnapshot (BlockSize 524288, ClientToken
    idempotency; the snapshot is made in moto so EC2 sees it),
    PutSnapshotBlock (data length and SHA-256 checked, the block kept in
    --blocks DIR/SNAPSHOT/INDEX), CompleteSnapshot (ChangedBlocksCount and
    the linear checksum checked), ListSnapshotBlocks, GetSnapshotBlock;
  - ImportSnapshot / DescribeImportSnapshotTasks (moto: HTTP 500).
A request that breaks the model is answered 400 ContractViolation and
written to --violations FILE; the test fails when that file is not empty.
Every request is logged to --log FILE as one JSON line {service, op,
params}.  While the file --hold exists, PutSnapshotBlock waits (at most
60 s) after touching --hold.held: the test kills ferry-server there.
Credentials: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY of its environment.
"""
import argparse
import base64
import datetime
import hashlib
import hmac
import json
import os
import re
import sys
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import botocore.session

EBS_BLOCK = 524288
SESSION = botocore.session.get_session()
EC2 = SESSION.get_service_model("ec2")
EBS = SESSION.get_service_model("ebs")
LOCK = threading.Lock()
SNAPS = {}          # id -> {size, status, blocks: {index: sha256 bytes}}
TOKENS = {}         # StartSnapshot ClientToken -> id
IMPORTS = {}        # import task id -> {snapshot, token}


class Violation(Exception):
    pass


# ---- validation against the model ----

def check_scalar(shape, value, where):
    t = shape.type_name
    if t in ("integer", "long"):
        if not re.fullmatch(r"-?[0-9]+", str(value)):
            raise Violation(f"{where}: {value!r} is not an {t}")
    elif t == "boolean":
        if str(value).lower() not in ("true", "false"):
            raise Violation(f"{where}: {value!r} is not a boolean")
    elif t in ("double", "float"):
        float(value)
    elif t == "string":
        if shape.enum and value not in shape.enum:
            raise Violation(f"{where}: {value!r} is not one of the model's "
                            f"values ({', '.join(shape.enum[:8])}, ...)")
    elif t == "timestamp":
        pass
    elif t == "blob":
        pass
    else:
        raise Violation(f"{where}: unexpected scalar type {t}")


def ec2_name(name, shape):
    s = shape.serialization
    if "queryName" in s:
        return s["queryName"]
    if "name" in s:
        return s["name"][0].upper() + s["name"][1:]
    return name


def ec2_walk(shape, prefix, params, used):
    """Consume the flat EC2 query params under prefix for shape."""
    t = shape.type_name
    if t == "structure":
        missing = []
        present = False
        for name, ms in shape.members.items():
            key = prefix + ("." if prefix else "") + ec2_name(name, ms)
            if ec2_walk(ms, key, params, used):
                present = True
            elif name in shape.required_members:
                missing.append(f"{key} ({name})")
        # a structure's required members, when it is there at all
        if missing and (present or prefix == ""):
            raise Violation(f"required member {missing[0]} missing")
        return present
    if t == "list":
        n = 0
        while True:
            key = f"{prefix}.{n + 1}"
            if not ec2_walk(shape.member, key, params, used):
                break
            n += 1
        if n == 0 and any(k.startswith(prefix + ".") for k in params):
            raise Violation(f"{prefix}: list members must count from 1")
        return n > 0
    if t == "map":
        raise Violation(f"{prefix}: maps are not used by ferry")
    if prefix in params:
        check_scalar(shape, params[prefix], prefix)
        used.add(prefix)
        return True
    return False


def check_ec2(params):
    op = params.get("Action")
    if params.get("Version") != "2016-11-15":
        raise Violation(f"Version is {params.get('Version')!r}, not 2016-11-15")
    if op not in EC2.operation_names:
        raise Violation(f"EC2 has no operation {op!r}")
    model = EC2.operation_model(op)
    used = {"Action", "Version"}
    rest = {k: v for k, v in params.items() if k not in used}
    ec2_walk(model.input_shape, "", rest, used)
    unknown = sorted(set(params) - used)
    if unknown:
        raise Violation(f"{op}: members not in the model: {unknown}")
    return op


def check_json(shape, value, where):
    t = shape.type_name
    if t == "structure":
        if not isinstance(value, dict):
            raise Violation(f"{where}: not an object")
        for k in value:
            if k not in shape.members:
                raise Violation(f"{where}: member {k} not in the model")
            check_json(shape.members[k], value[k], f"{where}.{k}")
        for r in shape.required_members:
            if r not in value:
                raise Violation(f"{where}: required member {r} missing")
    elif t == "list":
        if not isinstance(value, list):
            raise Violation(f"{where}: not a list")
        for i, v in enumerate(value):
            check_json(shape.member, v, f"{where}[{i}]")
    elif t in ("integer", "long"):
        if not isinstance(value, int) or isinstance(value, bool):
            raise Violation(f"{where}: {value!r} is not an {t}")
    elif t == "boolean":
        if not isinstance(value, bool):
            raise Violation(f"{where}: {value!r} is not a boolean")
    elif t == "string":
        if not isinstance(value, str):
            raise Violation(f"{where}: {value!r} is not a string")
        check_scalar(shape, value, where)


def ebs_route(method, path):
    for op in EBS.operation_names:
        m = EBS.operation_model(op)
        if m.http["method"] != method:
            continue
        pat = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", m.http["requestUri"])
        mt = re.fullmatch(pat, path)
        if mt:
            return m, mt.groupdict()
    raise Violation(f"EBS has no operation for {method} {path}")


def check_ebs(method, path, query, headers, body):
    model, uri = ebs_route(method, path)
    shape = model.input_shape
    params = {}
    hdrs = {k.lower(): v for k, v in headers.items()}
    known_headers = set()
    for name, ms in shape.members.items():
        loc = ms.serialization.get("location")
        key = ms.serialization.get("name")
        if loc == "uri":
            if key in uri:
                check_scalar(ms, urllib.parse.unquote(uri[key]), name)
                params[name] = urllib.parse.unquote(uri[key])
        elif loc == "header":
            known_headers.add(key.lower())
            if key.lower() in hdrs:
                check_scalar(ms, hdrs[key.lower()], key)
                params[name] = hdrs[key.lower()]
        elif loc == "querystring":
            if key in query:
                check_scalar(ms, query[key], key)
                params[name] = query[key]
        elif ms.serialization.get("streaming") or ms.type_name == "blob":
            if body:
                params[name] = body
    for k in query:
        if not any(ms.serialization.get("location") == "querystring" and
                   ms.serialization.get("name") == k
                   for ms in shape.members.values()):
            raise Violation(f"{model.name}: query parameter {k} not in the "
                            "model")
    for h in hdrs:
        if h.startswith("x-amz-") and h not in known_headers and h not in (
                "x-amz-date", "x-amz-content-sha256", "x-amz-security-token",
                "x-amz-user-agent"):
            raise Violation(f"{model.name}: header {h} not in the model")
    if shape.members and not any(
            ms.serialization.get("location") or ms.type_name == "blob"
            for ms in shape.members.values()):
        try:
            doc = json.loads(body or b"{}")
        except ValueError:
            raise Violation(f"{model.name}: the body is not JSON")
        check_json(shape, doc, model.name)
        params.update(doc)
    for r in shape.required_members:
        if r not in params:
            raise Violation(f"{model.name}: required member {r} missing")
    return model.name, params


# ---- SigV4 ----

def verify_sigv4(method, raw_path, headers, body, service, key, secret):
    """None when the signature is right, else (code, message)."""
    auth = headers.get("Authorization", "")
    m = re.fullmatch(r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/"
                     r"([^/]+)/aws4_request, ?SignedHeaders=([^,]+), ?"
                     r"Signature=([0-9a-f]{64})", auth)
    if not m:
        return ("IncompleteSignature", "no SigV4 Authorization header")
    akid, day, region, svc, signed, sig = m.groups()
    if akid != key:
        return ("unknown-key", "The security token included in the request "
                "is invalid.")
    if svc != service:
        return ("IncompleteSignature", f"signed for {svc}, not {service}")
    date = headers.get("x-amz-date", "")
    path, _, qs = raw_path.partition("?")
    q = sorted(urllib.parse.parse_qsl(qs, keep_blank_values=True))
    cq = "&".join(f"{urllib.parse.quote(k, safe='-_.~')}="
                  f"{urllib.parse.quote(v, safe='-_.~')}" for k, v in q)
    lower = {k.lower(): " ".join(v.strip().split()) for k, v in
             headers.items()}
    ch = "".join(f"{h}:{lower.get(h, '')}\n" for h in signed.split(";"))
    payload = headers.get("x-amz-content-sha256") or \
        hashlib.sha256(body).hexdigest()
    if payload != "UNSIGNED-PAYLOAD" and \
            payload != hashlib.sha256(body).hexdigest():
        return ("XAmzContentSHA256Mismatch", "x-amz-content-sha256 is not "
                "the body's SHA-256")
    creq = "\n".join([method, path, cq, ch, signed, payload])
    sts = "\n".join(["AWS4-HMAC-SHA256", date, f"{day}/{region}/{svc}/"
                     "aws4_request", hashlib.sha256(creq.encode()).hexdigest()])
    k = ("AWS4" + secret).encode()
    for part in (day, region, svc, "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    want = hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(want, sig):
        return ("SignatureDoesNotMatch", "The request signature we calculated "
                "does not match the signature you provided.")
    return None


# ---- the server ----

def ec2_error(code, msg, status=400):
    body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors>'
            f'<Error><Code>{code}</Code><Message>{msg}</Message></Error>'
            f'</Errors><RequestID>contract</RequestID></Response>')
    return status, {"Content-Type": "text/xml"}, body.encode()


def ebs_error(code, msg, status=400):
    return status, {"Content-Type": "application/json",
                    "x-amzn-ErrorType": code}, json.dumps(
                        {"Message": msg}).encode()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def do_GET(self):
        self.handle_any()

    def do_POST(self):
        self.handle_any()

    def do_PUT(self):
        self.handle_any()

    def send(self, status, headers, body):
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def violation(self, service, msg):
        with LOCK, open(ARGS.violations, "a") as f:
            f.write(f"{service} {self.command} {self.path}: {msg}\n")
        if service == "ec2":
            return self.send(*ec2_error("ContractViolation", msg))
        return self.send(*ebs_error("ContractViolation", msg))

    def handle_any(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        path = urllib.parse.urlsplit(self.path).path
        service = "ebs" if path.startswith("/snapshots") else "ec2"
        bad = verify_sigv4(self.command, self.path, dict(self.headers), body,
                           service, KEY, SECRET)
        if bad:
            code, msg = bad
            if service == "ec2":
                code = "AuthFailure" if code in ("unknown-key",
                                                 "SignatureDoesNotMatch") \
                    else code
                if code == "AuthFailure" and bad[0] == "unknown-key":
                    msg = ("AWS was not able to validate the provided access "
                           "credentials")
                return self.send(*ec2_error(code, msg, 401))
            code = "UnrecognizedClientException" if code == "unknown-key" \
                else ("InvalidSignatureException"
                      if code == "SignatureDoesNotMatch" else code)
            return self.send(*ebs_error(code, msg, 403))
        try:
            if service == "ec2":
                if self.command != "POST":
                    raise Violation("EC2 Query requests are POSTs here")
                params = dict(urllib.parse.parse_qsl(
                    body.decode(), keep_blank_values=True, strict_parsing=True))
                op = check_ec2(params)
            else:
                query = dict(urllib.parse.parse_qsl(
                    urllib.parse.urlsplit(self.path).query))
                op, params = check_ebs(self.command, path, query,
                                       dict(self.headers), body)
        except Violation as e:
            return self.violation(service, str(e))
        logp = {k: v for k, v in params.items() if k != "BlockData"}
        with LOCK, open(ARGS.log, "a") as f:
            f.write(json.dumps({"service": service, "op": op,
                                "params": logp}) + "\n")
        if service == "ec2":
            if op == "ImportSnapshot":
                return self.send(*import_snapshot(params))
            if op == "DescribeImportSnapshotTasks":
                return self.send(*describe_imports(params))
            return self.send(*forward(self.command, self.path,
                                      dict(self.headers), body))
        return self.send(*ebs(op, params, body))


def forward(method, path, headers, body):
    req = urllib.request.Request(ARGS.moto + path, data=body or None,
                                 method=method)
    for k, v in headers.items():
        if k.lower() not in ("host", "content-length", "connection"):
            req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, {"Content-Type": r.headers.get(
                "Content-Type", "text/xml")}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {"Content-Type": e.headers.get(
            "Content-Type", "text/xml")}, e.read()


def moto(service):
    return boto3.client(service, endpoint_url=ARGS.moto,
                        region_name=ARGS.region, aws_access_key_id=KEY,
                        aws_secret_access_key=SECRET)


def ebs(op, p, body):
    if op == "StartSnapshot":
        with LOCK:
            if p.get("ClientToken") in TOKENS:
                sid = TOKENS[p["ClientToken"]]
                s = SNAPS[sid]
                return 201, {"Content-Type": "application/json"}, json.dumps(
                    s["answer"]).encode()
        r = moto("ebs").start_snapshot(VolumeSize=p["VolumeSize"],
                                       Tags=p.get("Tags", []),
                                       Description=p.get("Description", ""))
        sid = r["SnapshotId"]
        answer = {"SnapshotId": sid, "OwnerId": "123456789012",
                  "Status": "pending", "StartTime": time.time(),
                  "VolumeSize": p["VolumeSize"], "BlockSize": EBS_BLOCK,
                  "Tags": p.get("Tags", []),
                  "Description": p.get("Description", "")}
        with LOCK:
            SNAPS[sid] = {"size": p["VolumeSize"] << 30, "status": "pending",
                          "blocks": {}, "answer": answer}
            if p.get("ClientToken"):
                TOKENS[p["ClientToken"]] = sid
        os.makedirs(os.path.join(ARGS.blocks, sid), exist_ok=True)
        return 201, {"Content-Type": "application/json"}, json.dumps(
            answer).encode()
    sid = p.get("SnapshotId")
    s = SNAPS.get(sid)
    if s is None:
        return ebs_error("ResourceNotFoundException",
                         f"snapshot {sid} does not exist", 404)
    if op == "PutSnapshotBlock":
        idx = int(p["BlockIndex"])
        if s["status"] != "pending":
            return ebs_error("ValidationException",
                             f"snapshot {sid} is {s['status']}, not pending")
        if int(p["DataLength"]) != EBS_BLOCK or len(body) != EBS_BLOCK:
            return ebs_error("ValidationException", "DataLength must be "
                             "524288 and match the body")
        if p["ChecksumAlgorithm"] != "SHA256":
            return ebs_error("ValidationException", "ChecksumAlgorithm")
        d = hashlib.sha256(body).digest()
        if base64.b64decode(p["Checksum"]) != d:
            return ebs_error("ValidationException", "The checksum of the "
                             "data does not match x-amz-Checksum")
        if idx < 0 or idx * EBS_BLOCK >= s["size"]:
            return ebs_error("ValidationException", f"block {idx} is past "
                             "the volume's end")
        if ARGS.hold and os.path.exists(ARGS.hold):
            open(ARGS.hold + ".held", "w").close()
            for _ in range(600):
                if not os.path.exists(ARGS.hold):
                    break
                time.sleep(0.1)
        with open(os.path.join(ARGS.blocks, sid, str(idx)), "wb") as f:
            f.write(body)
        with LOCK:
            s["blocks"][idx] = d
        return 201, {"x-amz-Checksum": p["Checksum"],
                     "x-amz-Checksum-Algorithm": "SHA256"}, b""
    if op == "CompleteSnapshot":
        with LOCK:
            n = len(s["blocks"])
            lin = hashlib.sha256(b"".join(
                s["blocks"][i] for i in sorted(s["blocks"]))).digest()
        if int(p["ChangedBlocksCount"]) != n:
            return ebs_error("ValidationException", f"ChangedBlocksCount is "
                             f"{p['ChangedBlocksCount']}, {n} blocks were "
                             "written")
        if "Checksum" in p and (p.get("ChecksumAggregationMethod") != "LINEAR"
                                or base64.b64decode(p["Checksum"]) != lin):
            return ebs_error("ValidationException", "the linear checksum "
                             "does not match the blocks written")
        s["status"] = "completed"
        moto("ebs").complete_snapshot(SnapshotId=sid, ChangedBlocksCount=n)
        return 202, {"Content-Type": "application/json"}, json.dumps(
            {"Status": "completed"}).encode()
    if op == "ListSnapshotBlocks":
        blocks = [{"BlockIndex": i, "BlockToken": f"{sid}-{i}"}
                  for i in sorted(s["blocks"])]
        return 200, {"Content-Type": "application/json"}, json.dumps(
            {"Blocks": blocks, "VolumeSize": s["size"] >> 30,
             "BlockSize": EBS_BLOCK}).encode()
    if op == "GetSnapshotBlock":
        idx = int(p["BlockIndex"])
        with open(os.path.join(ARGS.blocks, sid, str(idx)), "rb") as f:
            data = f.read()
        return 200, {"x-amz-Data-Length": str(len(data)),
                     "x-amz-Checksum": base64.b64encode(
                         hashlib.sha256(data).digest()).decode(),
                     "x-amz-Checksum-Algorithm": "SHA256"}, data
    return ebs_error("ValidationException", f"{op} is not served here")


def import_snapshot(p):
    tok = p.get("ClientToken")
    bucket = p.get("DiskContainer.UserBucket.S3Bucket")
    key = p.get("DiskContainer.UserBucket.S3Key")
    if p.get("DiskContainer.Format") not in ("VMDK", "VHD", "RAW"):
        return ec2_error("InvalidParameter", "DiskContainer.Format must be "
                         "VMDK, VHD or RAW")
    try:
        moto("s3").head_object(Bucket=bucket, Key=key)
    except Exception as e:
        return ec2_error("InvalidParameter", f"s3://{bucket}/{key}: {e}")
    for tid, t in IMPORTS.items():
        if tok and t["token"] == tok:
            break
    else:
        ec2 = moto("ec2")
        vol = ec2.create_volume(Size=1, AvailabilityZone=ARGS.region + "a")
        snap = ec2.create_snapshot(VolumeId=vol["VolumeId"],
                                   Description="imported by the contract "
                                   "server from " +
                                   p.get("DiskContainer.UserBucket.S3Key", ""))
        tid = "import-snap-%08x" % (len(IMPORTS) + 1)
        IMPORTS[tid] = {"snapshot": snap["SnapshotId"], "token": tok,
                        "format": p.get("DiskContainer.Format")}
    body = (f'<ImportSnapshotResponse xmlns="http://ec2.amazonaws.com/doc/'
            f'2016-11-15/"><requestId>c</requestId><importTaskId>{tid}'
            f'</importTaskId><snapshotTaskDetail><status>active</status>'
            f'</snapshotTaskDetail></ImportSnapshotResponse>')
    return 200, {"Content-Type": "text/xml"}, body.encode()


def describe_imports(p):
    items = ""
    for k, v in p.items():
        if k.startswith("ImportTaskId.") and v in IMPORTS:
            items += (f'<item><importTaskId>{v}</importTaskId>'
                      f'<snapshotTaskDetail><format>{IMPORTS[v]["format"]}'
                      f'</format><snapshotId>{IMPORTS[v]["snapshot"]}'
                      f'</snapshotId><status>completed</status>'
                      f'</snapshotTaskDetail></item>')
    body = (f'<DescribeImportSnapshotTasksResponse xmlns="http://ec2.amazon'
            f'aws.com/doc/2016-11-15/"><requestId>c</requestId>'
            f'<importSnapshotTaskSet>{items}</importSnapshotTaskSet>'
            f'</DescribeImportSnapshotTasksResponse>')
    return 200, {"Content-Type": "text/xml"}, body.encode()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--moto", required=True)
    ap.add_argument("--region", default="eu-west-1")
    ap.add_argument("--log", required=True)
    ap.add_argument("--violations", required=True)
    ap.add_argument("--blocks", required=True)
    ap.add_argument("--hold")
    ARGS = ap.parse_args()
    KEY = os.environ["AWS_ACCESS_KEY_ID"]
    SECRET = os.environ["AWS_SECRET_ACCESS_KEY"]
    os.makedirs(ARGS.blocks, exist_ok=True)
    open(ARGS.violations, "a").close()
    srv = ThreadingHTTPServer(("127.0.0.1", ARGS.port), Handler)
    srv.daemon_threads = True
    print(f"aws_contract: listening on 127.0.0.1:{ARGS.port}", flush=True)
    srv.serve_forever()
