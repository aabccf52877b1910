#!/usr/bin/python3
"""openstack_contract.py - Neutron and Nova for the openstack driver's
tests, where the real services cannot run (tests/t-openstack.sh says why).

Every request is checked against the services' own published models, the
code the real servers validate with, from Debian's packages:
- Neutron (python3-neutron-lib, python3-neutron): the RESOURCE_ATTRIBUTE_MAP
  of networks, subnets and ports (neutron_lib.api.definitions), of security
  groups and their rules (neutron.extensions.securitygroup, with the ports'
  security_groups extension), the standard-attr-description attribute, and
  the tag validators (neutron.extensions.tagging); a POST body goes through
  the same steps as in neutron.api.v2.base.Controller.prepare_request_body
  (project from the token, unknown attributes, required attributes and
  defaults, converters and validators).
- Nova (python3-nova): the JSON schemas of API 2.1
  (nova.api.openstack.compute.schemas.servers.create, query_params_v21;
  flavors.index_query) with Nova's own validator.
A token is valid when Keystone says so (GET /v3/auth/tokens); imageRef must
be an active image of the real Glance; ports, subnets, fixed IPs and
security groups must exist and agree, as in Neutron.

A wrong request is answered 400 (Nova {"badRequest": ...}, Neutron
{"NeutronError": ...}) and logged as "CONTRACT-VIOLATION ..." in the log
the test reads; every request is logged one line: METHOD PATH STATUS.

Usage: openstack_contract.py PORT KEYSTONE_URL GLANCE_URL LOG
Neutron is served under /network, Nova under /compute/v2.1.
"""
import os
# Nova's modules patch the standard library for eventlet when imported,
# which blocks this threaded server's sockets: not here
os.environ["OS_NOVA_DISABLE_EVENTLET_PATCHING"] = "1"

import copy  # noqa: E402
import ipaddress
import json
import re
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import warnings
warnings.filterwarnings("ignore")

from neutron_lib.api import attributes as n_attributes          # noqa: E402
from neutron_lib.api.definitions import network as n_network    # noqa: E402
from neutron_lib.api.definitions import port as n_port          # noqa: E402
from neutron_lib.api.definitions import subnet as n_subnet      # noqa: E402
from neutron.extensions import securitygroup as n_sg            # noqa: E402
from neutron.extensions import standardattrdescription as n_desc  # noqa
from neutron.extensions import tagging as n_tagging             # noqa: E402
from nova.api.openstack.compute.schemas import flavors as nova_flavors  # noqa
from nova.api.openstack.compute.schemas import servers as nova_servers  # noqa
from nova.api.validation.validators import _SchemaValidator     # noqa: E402

PORT, KEYSTONE, GLANCE, LOG = (int(sys.argv[1]), sys.argv[2], sys.argv[3],
                               sys.argv[4])

# ---- the Neutron model ----
N_ATTRS = {}
for m in (n_network, n_subnet, n_port, n_sg):
    for res, attrs in m.RESOURCE_ATTRIBUTE_MAP.items():
        N_ATTRS[res] = copy.deepcopy(attrs)
for res, attrs in n_sg.EXTENDED_ATTRIBUTES_2_0.items():
    N_ATTRS[res].update(copy.deepcopy(attrs))
for res in ("networks", "subnets", "ports", "security_groups",
            "security_group_rules"):   # standard attributes
    N_ATTRS[res].update(copy.deepcopy(n_desc.DESCRIPTION_BODY))
    # the project-id extension: project_id beside tenant_id
    N_ATTRS[res]["project_id"] = copy.deepcopy(N_ATTRS[res]["tenant_id"])
N_SINGULAR = {"networks": "network", "subnets": "subnet", "ports": "port",
              "security-groups": "security_group",
              "security-group-rules": "security_group_rule"}
N_COLLECTION = {"security-groups": "security_groups",
                "security-group-rules": "security_group_rules"}
# query parameters Neutron takes besides the is_filter attributes
N_QUERY = {"fields", "limit", "marker", "page_reverse", "sort_key",
           "sort_dir", "tags", "tags-any", "not-tags", "not-tags-any"}

NOVA_CREATE = _SchemaValidator(nova_servers.create)
NOVA_LIST_Q = _SchemaValidator(nova_servers.query_params_v21, True, True)
NOVA_FLAVOR_Q = _SchemaValidator(nova_flavors.index_query)
FLAVORS = [{"id": "1", "name": "m1.tiny", "ram": 512, "vcpus": 1,
            "disk": 1},
           {"id": "2", "name": "m1.small", "ram": 2048, "vcpus": 1,
            "disk": 20},
           {"id": "3", "name": "m1.medium", "ram": 4096, "vcpus": 2,
            "disk": 40}]

lock = threading.Lock()
db = {"networks": {}, "subnets": {}, "ports": {}, "security_groups": {},
      "security_group_rules": {}, "servers": {}}
tokens = {}      # token -> project id (validated by Keystone)


def log(line):
    with open(LOG, "a") as f:
        f.write(line + "\n")


class Fail(Exception):
    def __init__(self, status, kind, msg, violation=False):
        super().__init__(msg)
        self.status, self.kind, self.msg = status, kind, msg
        self.violation = violation


def violation(msg):
    return Fail(400, "HTTPBadRequest", msg, violation=True)


def keystone_project(token):
    """The token's project, as Keystone validates it (cached)."""
    if token in tokens:
        return tokens[token]
    req = urllib.request.Request(KEYSTONE + "/v3/auth/tokens")
    req.add_header("X-Auth-Token", token)
    req.add_header("X-Subject-Token", token)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            body = json.loads(r.read())
    except urllib.error.HTTPError:
        return None
    project = body["token"].get("project", {}).get("id")
    tokens[token] = project
    return project


def glance_image(token, image_id):
    req = urllib.request.Request(GLANCE + "/v2/images/" + image_id)
    req.add_header("X-Auth-Token", token)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError:
        return None


def now():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# ---- Neutron ----

def neutron_prepare(collection, body, project):
    """neutron.api.v2.base.Controller.prepare_request_body for a POST."""
    singular = N_SINGULAR[collection]
    res = N_COLLECTION.get(collection, collection)
    if not isinstance(body, dict) or list(body) != [singular]:
        raise violation("Neutron: the body of POST /v2.0/%s must be "
                        "{\"%s\": {...}}, got keys %s"
                        % (collection, singular, list(body or {})))
    item = body[singular]
    if not isinstance(item, dict):
        raise violation("Neutron: %s is not an object" % singular)
    info = n_attributes.AttributeInfo(N_ATTRS[res])
    if "project_id" not in item and "tenant_id" not in item:
        item["project_id"] = item["tenant_id"] = project
    n_attributes.populate_project_info(item)
    try:
        info.verify_attributes(item)
        info.fill_post_defaults(item, exc_cls=violation)
        info.convert_values(item, exc_cls=violation)
    except Fail:
        raise
    except Exception as e:   # webob's HTTPBadRequest, InvalidInput
        raise violation("Neutron %s: %s" % (singular, getattr(
            e, "detail", None) or getattr(e, "msg", None) or e))
    for k, v in list(item.items()):
        if v is n_attributes.constants.ATTR_NOT_SPECIFIED:
            item[k] = None
    return item


def neutron_query(res, query):
    attrs = N_ATTRS[res]
    for k in query:
        if k in N_QUERY:
            continue
        if k not in attrs or not attrs[k].get("is_filter"):
            raise violation("Neutron: %s is not a filter of %s" % (k, res))


def matches(item, query):
    for k, vals in query.items():
        if k in ("fields", "limit", "marker", "sort_key", "sort_dir",
                 "page_reverse"):
            continue
        if k == "tags":
            want = set(",".join(vals).split(","))
            if not want <= set(item.get("tags", [])):
                return False
            continue
        if k in ("tags-any", "not-tags", "not-tags-any"):
            continue
        if str(item.get(k)) not in vals:
            return False
    return True


def neutron_not_found(res, rid):
    kind = {"networks": "NetworkNotFound", "subnets": "SubnetNotFound",
            "ports": "PortNotFound", "security_groups":
            "SecurityGroupNotFound", "security_group_rules":
            "SecurityGroupRuleNotFound"}[res]
    return Fail(404, kind, "%s %s could not be found." % (res[:-1], rid))


def neutron_create(res, item):
    rid = str(uuid.uuid4())
    item["id"] = rid
    item.setdefault("tags", [])
    item["created_at"] = item["updated_at"] = now()
    if res == "networks":
        item.update(status="ACTIVE", subnets=[], admin_state_up=True,
                    mtu=1450)
    elif res == "subnets":
        net = db["networks"].get(item["network_id"])
        if net is None:
            raise neutron_not_found("networks", item["network_id"])
        cidr = ipaddress.ip_network(item["cidr"])
        for s in db["subnets"].values():
            if s["network_id"] == net["id"] and \
                    ipaddress.ip_network(s["cidr"]).overlaps(cidr):
                raise Fail(400, "BadRequest", "Invalid input for "
                           "operation: Requested subnet with cidr: %s for "
                           "network: %s overlaps with another subnet."
                           % (cidr, net["id"]))
        if item.get("gateway_ip") in (None,):
            item["gateway_ip"] = str(next(cidr.hosts()))
        net["subnets"].append(rid)
    elif res == "security_groups":
        item["security_group_rules"] = []
        for eth in ("IPv4", "IPv6"):   # Neutron's default egress rules
            rule = {"id": str(uuid.uuid4()), "security_group_id": rid,
                    "direction": "egress", "ethertype": eth,
                    "protocol": None, "port_range_min": None,
                    "port_range_max": None, "remote_ip_prefix": None,
                    "remote_group_id": None, "description": "",
                    "project_id": item["project_id"],
                    "tenant_id": item["project_id"]}
            db["security_group_rules"][rule["id"]] = rule
    elif res == "security_group_rules":
        if item["security_group_id"] not in db["security_groups"]:
            raise neutron_not_found("security_groups",
                                    item["security_group_id"])
        if item.get("port_range_min") is not None and \
                item["protocol"] not in ("tcp", "udp", "6", "17"):
            raise Fail(400, "SecurityGroupInvalidPortRange",
                       "ports given for protocol %s" % item["protocol"])
        for r in db["security_group_rules"].values():
            same = all(r.get(k) == item.get(k) for k in (
                "security_group_id", "direction", "ethertype", "protocol",
                "port_range_min", "port_range_max", "remote_ip_prefix"))
            if same:
                raise Fail(409, "SecurityGroupRuleExists",
                           "Security group rule already exists. Rule id is "
                           "%s." % r["id"])
    elif res == "ports":
        net = db["networks"].get(item["network_id"])
        if net is None:
            raise neutron_not_found("networks", item["network_id"])
        fixed = []
        for f in item.get("fixed_ips") or []:
            sub = db["subnets"].get(f.get("subnet_id"))
            if sub is None or sub["network_id"] != net["id"]:
                raise Fail(400, "InvalidInput", "Invalid input for "
                           "operation: subnet %s is not on network %s"
                           % (f.get("subnet_id"), net["id"]))
            ip = f.get("ip_address")
            taken = {x["ip_address"] for p in db["ports"].values()
                     for x in p["fixed_ips"] if x["subnet_id"] == sub["id"]}
            if ip is None:    # Neutron's IPAM: the first free address
                ip = next(str(a) for a in
                          ipaddress.ip_network(sub["cidr"]).hosts()
                          if str(a) != sub["gateway_ip"] and
                          str(a) not in taken)
            if ipaddress.ip_address(ip) not in \
                    ipaddress.ip_network(sub["cidr"]):
                raise Fail(400, "InvalidIpForSubnet", "IP address %s is "
                           "not a valid IP for the specified subnet." % ip)
            for p in db["ports"].values():
                if any(x["ip_address"] == ip and
                       x["subnet_id"] == sub["id"] for x in p["fixed_ips"]):
                    raise Fail(409, "IpAddressAlreadyAllocated",
                               "IP address %s already allocated in subnet "
                               "%s" % (ip, sub["id"]))
            fixed.append({"subnet_id": sub["id"], "ip_address": ip})
        item["fixed_ips"] = fixed
        for sg in item.get("security_groups") or []:
            if sg not in db["security_groups"]:
                raise neutron_not_found("security_groups", sg)
        item.update(status="DOWN", device_id="", device_owner="",
                    mac_address="fa:16:3e:00:%02x:%02x" % (
                        len(db["ports"]) // 256, len(db["ports"]) % 256))
    db[res][rid] = item
    return item


def neutron(h, method, parts, query, body, project):
    """parts: path after /network/v2.0/"""
    if not parts or parts[0] not in N_SINGULAR:
        raise violation("Neutron: no such resource %s" % "/".join(parts))
    coll = parts[0]
    res = N_COLLECTION.get(coll, coll)
    singular = N_SINGULAR[coll]
    if len(parts) == 1 and method == "GET":
        neutron_query(res, query)
        items = [i for i in db[res].values() if matches(i, query)]
        if res == "security_groups":
            for i in items:
                i["security_group_rules"] = [
                    r for r in db["security_group_rules"].values()
                    if r["security_group_id"] == i["id"]]
        return 200, {res: items}
    if len(parts) == 1 and method == "POST":
        item = neutron_prepare(coll, body, project)
        return 201, {singular: neutron_create(res, item)}
    rid = parts[1]
    if rid not in db[res]:
        raise neutron_not_found(res, rid)
    if len(parts) == 2 and method == "GET":
        return 200, {singular: db[res][rid]}
    if len(parts) == 2 and method == "DELETE":
        if res == "ports" and db[res][rid].get("device_id"):
            srv = db["servers"].get(db[res][rid]["device_id"])
            if srv and srv["status"] != "DELETED":
                raise Fail(409, "PortInUse", "port %s is in use by "
                           "server %s" % (rid, srv["id"]))
        del db[res][rid]
        return 204, None
    if len(parts) == 3 and parts[2] == "tags" and method == "PUT":
        if not isinstance(body, dict) or list(body) != ["tags"]:
            raise violation("Neutron: PUT tags takes {\"tags\": [...]}")
        try:
            n_tagging.validate_tags(body)
        except Exception as e:
            raise violation("Neutron tags: %s" % e)
        db[res][rid]["tags"] = list(body["tags"])
        return 200, {"tags": db[res][rid]["tags"]}
    raise violation("Neutron: %s %s is not an API call"
                    % (method, "/".join(parts)))


# ---- Nova ----

def nova_validate(validator, what, doc):
    try:
        validator.validate(doc)
    except Exception as e:
        raise Fail(400, "badRequest", "Nova %s: %s" % (what, e),
                   violation=True)


def server_view(s):
    v = dict(s)
    if s["status"] == "BUILD":
        s["polls"] += 1
        if s["polls"] >= 2:
            s["status"] = "ACTIVE"
            port = db["ports"].get(s["port"]) if s["port"] else None
            if port:
                port.update(status="ACTIVE", device_id=s["id"],
                            device_owner="compute:nova")
                net = db["networks"][port["network_id"]]
                s["addresses"] = {net["name"]: [
                    {"addr": f["ip_address"], "version": 4,
                     "OS-EXT-IPS:type": "fixed",
                     "OS-EXT-IPS-MAC:mac_addr": port["mac_address"]}
                    for f in port["fixed_ips"]]}
        v = dict(s)
    v.pop("polls", None)
    v.pop("port", None)
    return v


def nova(h, method, parts, query, body, project, token):
    """parts: path after /compute/v2.1/"""
    if parts == ["flavors"] and method == "GET":
        nova_validate(NOVA_FLAVOR_Q, "GET /flavors query", query)
        return 200, {"flavors": [{"id": f["id"], "name": f["name"]}
                                 for f in FLAVORS]}
    if parts in (["servers"], ["servers", "detail"]) and method == "GET":
        nova_validate(NOVA_LIST_Q, "GET /servers query", query)
        pat = query.get("name", [None])[0]
        found = [server_view(s) for s in db["servers"].values()
                 if s["status"] != "DELETED" and
                 (pat is None or re.search(pat, s["name"]))]
        return 200, {"servers": found}
    if parts == ["servers"] and method == "POST":
        nova_validate(NOVA_CREATE, "POST /servers body", body)
        srv = body["server"]
        flavor = [f for f in FLAVORS if f["id"] == srv["flavorRef"]]
        if not flavor:
            raise Fail(400, "badRequest", "Flavor %s could not be found."
                       % srv["flavorRef"])
        img = glance_image(token, srv.get("imageRef", ""))
        if img is None or img["status"] != "active":
            raise Fail(400, "badRequest", "Image %s is not active."
                       % srv.get("imageRef"))
        port = None
        for n in srv.get("networks", []):
            if "port" in n:
                p = db["ports"].get(n["port"])
                if p is None:
                    raise Fail(400, "badRequest", "Port %s could not be "
                               "found." % n["port"])
                if p.get("device_id"):
                    raise Fail(409, "conflict", "Port %s is still in use."
                               % n["port"])
                port = p["id"]
                p["device_id"] = "pending"
        for b in srv.get("block_device_mapping_v2", []):
            if b.get("source_type") == "image" and \
                    glance_image(token, b.get("uuid", "")) is None:
                raise Fail(400, "badRequest", "Image %s could not be found"
                           % b.get("uuid"))
        sid = str(uuid.uuid4())
        s = {"id": sid, "name": srv["name"], "status": "BUILD",
             "flavor": {"id": flavor[0]["id"],
                        "original_name": flavor[0]["name"]},
             "image": {"id": srv.get("imageRef")},
             "metadata": srv.get("metadata", {}), "addresses": {},
             "tenant_id": project, "created": now(), "polls": 0,
             "port": port,
             "block_device_mapping_v2": srv.get("block_device_mapping_v2",
                                                [])}
        db["servers"][sid] = s
        if port:
            db["ports"][port]["device_id"] = sid
        return 202, {"server": {"id": sid, "links": [],
                                "adminPass": "not-used"}}
    if len(parts) == 2 and parts[0] == "servers":
        s = db["servers"].get(parts[1])
        if s is None or s["status"] == "DELETED":
            raise Fail(404, "itemNotFound", "Instance %s could not be "
                       "found." % parts[1])
        if method == "GET":
            return 200, {"server": server_view(s)}
        if method == "DELETE":
            s["status"] = "DELETED"
            if s["port"] and s["port"] in db["ports"]:
                db["ports"][s["port"]].update(device_id="",
                                              device_owner="",
                                              status="DOWN")
            return 204, None
    raise violation("Nova: %s /%s is not an API call this driver should "
                    "make" % (method, "/".join(parts)))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def answer(self, status, doc):
        data = b"" if doc is None else json.dumps(doc).encode()
        self.send_response(status)
        if doc is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def handle_any(self, method):
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query, keep_blank_values=True)
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        status, doc = 500, None
        try:
            body = None
            if raw:
                if not self.headers.get("Content-Type", "").startswith(
                        "application/json"):
                    raise violation("a body without Content-Type: "
                                    "application/json")
                try:
                    body = json.loads(raw)
                except ValueError:
                    raise violation("the body is not JSON")
            token = self.headers.get("X-Auth-Token")
            project = keystone_project(token) if token else None
            if project is None:
                raise Fail(401, "Unauthorized", "The request you have made "
                           "requires authentication.")
            parts = [p for p in url.path.split("/") if p]
            with lock:
                if parts[:2] == ["network", "v2.0"]:
                    status, doc = neutron(self, method, parts[2:], query,
                                          body, project)
                elif parts[:2] == ["compute", "v2.1"]:
                    status, doc = nova(self, method, parts[2:], query,
                                       body, project, token)
                else:
                    raise violation("no such API: %s" % url.path)
        except Fail as f:
            status = f.status
            if url.path.startswith("/network"):
                doc = {"NeutronError": {"type": f.kind, "message": f.msg,
                                        "detail": ""}}
            else:
                doc = {f.kind: {"code": f.status, "message": f.msg}}
            if f.violation:
                log("CONTRACT-VIOLATION %s %s: %s" % (method, url.path,
                                                       f.msg))
        except Exception as e:   # a bug of this server: say so
            status, doc = 500, {"error": repr(e)}
            log("CONTRACT-ERROR %s %s: %r" % (method, url.path, e))
        log("%s %s %d" % (method, url.path, status))
        self.answer(status, doc)

    def do_GET(self):
        self.handle_any("GET")

    def do_POST(self):
        self.handle_any("POST")

    def do_PUT(self):
        self.handle_any("PUT")

    def do_DELETE(self):
        self.handle_any("DELETE")


if __name__ == "__main__":
    srv = ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
    log("READY")
    srv.serve_forever()
