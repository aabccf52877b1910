#!/usr/bin/python3
"""azure_contract.py - a contract server for ferry's azure target driver.

Azure's control plane (Microsoft identity platform tokens, Azure Resource
Manager) cannot run here, so this server answers the calls the driver
makes and checks each one against Azure's published REST models, as the
Azure SDK for Python in Debian (python3-azure) defines them:

  * the token endpoint (POST /{tenant}/oauth2/v2.0/token) takes the OAuth2
    client-credentials form only (grant_type, client_id, client_secret,
    scope https://management.azure.com/.default) and answers an unknown
    secret as Entra ID does (401 invalid_client, AADSTS7000215);
  * every ARM call needs a Bearer token it issued, an api-version for
    which the SDK has the resource's models (and, where the SDK splits
    versions by operation group, that group), and a body whose every
    property is in the model's _attribute_map (flattened
    "properties.x" keys included), of its type, within its enum's known
    values, not read-only, with every required property present;
  * long-running operations follow ARM's protocol: 201/202 with
    Azure-AsyncOperation (and Location for POST and DELETE) and
    Retry-After; the operation is InProgress on its first poll;
  * the data path is real: beginGetAccess makes a page blob in azurite and
    answers a SAS URL on this server's /devstoreaccount1/... path, which
    forwards every request to azurite unchanged (azurite checks the SAS);
    endGetAccess records the blob's SHA-256 and written page ranges.

It keeps the state of what was made (GET /_state), and the test drives
faults through POST /_control: {"faults": [{"method", "path" (a regular
expression), "status" (429 or 5xx), "retry_after", "count"}]} and
{"stall_after_pages": N} (the N+1th Put Page waits, so that the test can
kill ferry-server in the middle of an upload; null releases it).

Environment: CONTRACT_PORT, CONTRACT_TENANT, CONTRACT_CLIENT_ID,
CONTRACT_CLIENT_SECRET, CONTRACT_SUBSCRIPTION, AZURITE_PORT,
AZURE_STORAGE_ACCOUNT, AZURE_STORAGE_KEY, CONTRACT_LOG (one line per
request: METHOD PATH STATUS).
"""
import base64, datetime, hashlib, hmac, http.client, importlib, inspect
import ipaddress, json, os, re, secrets, sys, threading, time, uuid
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT = int(os.environ["CONTRACT_PORT"])
TENANT = os.environ["CONTRACT_TENANT"]
CLIENT_ID = os.environ["CONTRACT_CLIENT_ID"]
CLIENT_SECRET = os.environ["CONTRACT_CLIENT_SECRET"]
SUB = os.environ["CONTRACT_SUBSCRIPTION"]
AZ_PORT = int(os.environ["AZURITE_PORT"])
ACCOUNT = os.environ["AZURE_STORAGE_ACCOUNT"]
KEY = base64.b64decode(os.environ["AZURE_STORAGE_KEY"])
LOG = os.environ.get("CONTRACT_LOG")
BLOB_VERSION = "2021-08-06"
SCOPE = "https://management.azure.com/.default"
DISK_CONTAINER = "md-disks"
MiB = 1 << 20
# "Upload a VHD to Azure": uploadSizeBytes is a fixed VHD's size, a whole
# number of MiB plus its 512-byte footer, at least 20 MiB + 512
UPLOAD_MIN = 20 * MiB + 512

lock = threading.RLock()
state = {
    "token_requests": 0, "tokens": {}, "rejected_tokens": 0,
    "resources": {}, "created": [], "updates": [], "deleted": [],
    "violations": [], "faults_hit": [], "pages": {"requests": 0, "bytes": 0},
    "uploads": {}, "stalled": False, "ops": {},
}
control = {"faults": [], "stall_after_pages": None}
stall_release = threading.Event()

# ---- Azure's models, from the SDK ----

# resource type (lower case) -> (SDK package, model, operation group)
TYPES = {
    "microsoft.resources/resourcegroups":
        ("azure.mgmt.resource.resources", "ResourceGroup", "ResourceGroupsOperations"),
    "microsoft.network/networksecuritygroups":
        ("azure.mgmt.network", "NetworkSecurityGroup", "NetworkSecurityGroupsOperations"),
    "microsoft.network/virtualnetworks":
        ("azure.mgmt.network", "VirtualNetwork", "VirtualNetworksOperations"),
    "microsoft.network/networkinterfaces":
        ("azure.mgmt.network", "NetworkInterface", "NetworkInterfacesOperations"),
    "microsoft.compute/disks":
        ("azure.mgmt.compute", "Disk", "DisksOperations"),
    "microsoft.compute/virtualmachines":
        ("azure.mgmt.compute", "VirtualMachine", "VirtualMachinesOperations"),
}
_modules = {}
OPEN_ENUMS = {"VirtualMachineSizeTypes"}


def models_for(rtype, api):
    """The SDK's models module of api-version api for rtype, or None."""
    pkg, model, group = TYPES[rtype]
    key = (pkg, api, group)
    if key in _modules:
        return _modules[key]
    mod = None
    if re.fullmatch(r"\d{4}-\d\d-\d\d(-preview)?", api or ""):
        ver = "v" + api.replace("-", "_")
        try:
            mod = importlib.import_module("%s.%s.models" % (pkg, ver))
            if not hasattr(mod, model):
                mod = None
        except ImportError:
            mod = None
        if mod is not None:
            try:
                ops = importlib.import_module("%s.%s.operations" % (pkg, ver))
                if not hasattr(ops, group):
                    mod = None     # a version of another operation group
            except ImportError:
                pass               # models-only layout (network)
    _modules[key] = mod
    return mod


def enums_of(cls, mod):
    """attr -> known values, from the model's docstring (":vartype x: str
    or ~...models.EnumName")."""
    out = {}
    for k in inspect.getmro(cls):
        doc = k.__doc__ or ""
        for attr, enum in re.findall(r":vartype (\w+): str or ~[\w.]+\.(\w+)", doc):
            e = getattr(mod, enum, None)
            # VM sizes grow faster than the SDK's list, which its own
            # docs call deprecated ("use the List available sizes API")
            if enum in OPEN_ENUMS:
                continue
            if e is not None and attr not in out:
                out[attr] = [m.value for m in e]
    return out


def split_key(key):
    return [p.replace("\\.", ".") for p in re.split(r"(?<!\\)\.", key)]


def validate(cls, mod, data, path, errs):
    if not isinstance(data, dict):
        errs.append("%s: an object (%s) expected, not %s" % (path, cls.__name__, type(data).__name__))
        return
    amap, val = cls._attribute_map, getattr(cls, "_validation", {})
    enums = enums_of(cls, mod)
    tree = {}
    for attr, info in amap.items():
        parts = split_key(info["key"])
        node = tree
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                break
        else:
            node[parts[-1]] = (attr, info["type"])

    def walk(node, obj, p):
        for k, v in obj.items():
            sub = p + "." + k if p else k
            if k not in node:
                errs.append("%s: unknown property '%s' of %s" % (path, sub, cls.__name__))
                continue
            n = node[k]
            if isinstance(n, dict):
                if not isinstance(v, dict):
                    errs.append("%s.%s: an object expected" % (path, sub))
                else:
                    walk(n, v, sub)
                continue
            attr, typ = n
            if val.get(attr, {}).get("readonly"):
                errs.append("%s.%s: read-only property sent (%s)" % (path, sub, cls.__name__))
                continue
            check_type(typ, v, "%s.%s" % (path, sub), mod, errs, enums.get(attr))
    walk(tree, data, "")
    for attr, rules in val.items():
        if not rules.get("required"):
            continue
        obj = data
        for p in split_key(amap[attr]["key"]):
            obj = obj.get(p) if isinstance(obj, dict) else None
        if obj is None:
            errs.append("%s: required property '%s' of %s missing" % (path, amap[attr]["key"], cls.__name__))


def check_type(typ, v, path, mod, errs, enum=None):
    if typ.startswith("[") and typ.endswith("]"):
        if not isinstance(v, list):
            errs.append("%s: a list expected" % path)
            return
        for i, x in enumerate(v):
            check_type(typ[1:-1], x, "%s[%d]" % (path, i), mod, errs)
    elif typ.startswith("{") and typ.endswith("}"):
        if not isinstance(v, dict):
            errs.append("%s: a map expected" % path)
            return
        for k, x in v.items():
            check_type(typ[1:-1], x, "%s[%s]" % (path, k), mod, errs)
    elif typ in ("str", "iso-8601", "rfc-1123", "duration", "base64", "bytearray"):
        if not isinstance(v, str):
            errs.append("%s: a string expected, not %r" % (path, v))
        elif enum and v not in enum:
            errs.append("%s: '%s' is not one of %s" % (path, v, enum))
    elif typ in ("int", "long"):
        if not isinstance(v, int) or isinstance(v, bool):
            errs.append("%s: an integer expected, not %r" % (path, v))
    elif typ == "float":
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            errs.append("%s: a number expected" % path)
    elif typ == "bool":
        if not isinstance(v, bool):
            errs.append("%s: a boolean expected, not %r" % (path, v))
    elif typ == "object":
        pass
    else:
        cls = getattr(mod, typ, None)
        if cls is None:
            errs.append("%s: the SDK has no model %s" % (path, typ))
        else:
            validate(cls, mod, v, path, errs)


# ---- azurite (Shared Key, for the blobs this server makes and reads) ----

def blob_call(method, path, query=None, headers=None, body=b""):
    query, headers = query or {}, dict(headers or {})
    headers["x-ms-date"] = datetime.datetime.utcnow().strftime("%a, %d %b %Y %H:%M:%S GMT")
    headers["x-ms-version"] = BLOB_VERSION
    headers["Content-Length"] = str(len(body))
    std = ["Content-Encoding", "Content-Language", "Content-Length", "Content-MD5",
           "Content-Type", "Date", "If-Modified-Since", "If-Match", "If-None-Match",
           "If-Unmodified-Since", "Range"]
    low = {k.lower(): v for k, v in headers.items()}
    s = method + "\n" + "\n".join("" if h == "Content-Length" and low.get("content-length") == "0"
                                  else low.get(h.lower(), "") for h in std) + "\n"
    for k in sorted(k for k in low if k.startswith("x-ms-")):
        s += "%s:%s\n" % (k, low[k])
    s += "/%s/%s%s" % (ACCOUNT, ACCOUNT, path)
    for k in sorted(query):
        s += "\n%s:%s" % (k.lower(), query[k])
    mac = base64.b64encode(hmac.new(KEY, s.encode(), hashlib.sha256).digest()).decode()
    headers["Authorization"] = "SharedKey %s:%s" % (ACCOUNT, mac)
    c = http.client.HTTPConnection("127.0.0.1", AZ_PORT, timeout=60)
    url = "/%s%s" % (ACCOUNT, path) + ("?" + urllib.parse.urlencode(query) if query else "")
    c.request(method, url, body=body, headers=headers)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, r.headers, data


def account_sas(perms, seconds):
    exp = (datetime.datetime.utcnow() + datetime.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")
    sts = "\n".join([ACCOUNT, perms, "b", "o", "", exp, "", "", BLOB_VERSION, ""]) + "\n"
    sig = base64.b64encode(hmac.new(KEY, sts.encode(), hashlib.sha256).digest()).decode()
    return urllib.parse.urlencode({"sv": BLOB_VERSION, "ss": "b", "srt": "o", "sp": perms,
                                   "se": exp, "sig": sig})


def blob_digest(path):
    st, hdrs, data = blob_call("GET", path)
    if st != 200:
        return None, None, []
    st2, _, xml = blob_call("GET", path, {"comp": "pagelist"})
    ranges = [[int(a), int(b)] for a, b in
              re.findall(rb"<Start>(\d+)</Start><End>(\d+)</End>", xml)]
    merged = []
    for a, b in sorted(ranges):
        if merged and a == merged[-1][1] + 1:
            merged[-1][1] = b
        else:
            merged.append([a, b])
    return hashlib.sha256(data).hexdigest(), len(data), merged


# ---- ARM ----

class ArmError(Exception):
    def __init__(self, status, code, message):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


RID = re.compile(r"^/subscriptions/([^/]+)/resourceGroups/([^/]+)/providers/"
                 r"(Microsoft\.\w+)/(\w+)/([^/]+)(?:/(\w+))?$", re.I)
RG = re.compile(r"^/subscriptions/([^/]+)/resourcegroups/([^/]+)$", re.I)
OP = re.compile(r"^/subscriptions/([^/]+)/providers/(Microsoft\.\w+)/locations/([^/]+)/"
                r"(operations|operationResults)/([^/]+)$", re.I)


def find(rid):
    return state["resources"].get(rid.lower())


def now():
    return datetime.datetime.utcnow().strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def new_op(ns, location, kind, result=None, then=None):
    """An operation that is InProgress on its first poll, then done."""
    oid = str(uuid.uuid4())
    state["ops"][oid] = {"polls": 0, "result": result, "then": then, "done": False}
    base = "http://127.0.0.1:%d/subscriptions/%s/providers/%s/locations/%s" % (PORT, SUB, ns, location)
    return {"Azure-AsyncOperation": "%s/operations/%s?api-version=%s" % (base, oid, kind),
            "Location": "%s/operationResults/%s?api-version=%s" % (base, oid, kind),
            "Retry-After": "1"}


def op_poll(oid):
    op = state["ops"].get(oid)
    if op is None:
        raise ArmError(404, "OperationNotFound", "no operation %s" % oid)
    op["polls"] += 1
    if op["polls"] >= 2 and not op["done"]:
        op["done"] = True
        if op["then"]:
            op["then"]()
    return op


def in_cidr(ip, cidr):
    return ipaddress.ip_address(ip) in ipaddress.ip_network(cidr)


def arm_put(rtype, rid, api, mod, body, m):
    pkg, model, _ = TYPES[rtype]
    old = find(rid)
    name = rid.rstrip("/").split("/")[-1]
    res = json.loads(json.dumps(body))
    res.update({"id": rid, "name": name, "type": TYPES_CANON[rtype]})
    props = res.setdefault("properties", {})
    props["provisioningState"] = "Succeeded"
    location = body.get("location")
    if rtype != "microsoft.resources/resourcegroups":
        rg = find("/subscriptions/%s/resourceGroups/%s" % (SUB, m.group(2)))
        if rg is None:
            raise ArmError(404, "ResourceGroupNotFound", "Resource group '%s' could not be found." % m.group(2))
    if rtype == "microsoft.network/networksecuritygroups":
        for i, r in enumerate(props.get("securityRules", [])):
            r["id"] = "%s/securityRules/%s" % (rid, r.get("name"))
            rp = r.get("properties", {})
            for req in ("protocol", "access", "direction", "priority"):
                if req not in rp:
                    raise ArmError(400, "SecurityRuleParameterMissing", "rule %s lacks %s" % (r.get("name"), req))
            if not 100 <= rp["priority"] <= 4096:
                raise ArmError(400, "SecurityRuleInvalidPriority", "priority %s" % rp["priority"])
            rp["provisioningState"] = "Succeeded"
        props["defaultSecurityRules"] = [
            {"name": n, "properties": {"access": a, "direction": "Inbound", "priority": p}}
            for n, a, p in (("AllowVnetInBound", "Allow", 65000),
                            ("AllowAzureLoadBalancerInBound", "Allow", 65001),
                            ("DenyAllInBound", "Deny", 65500))]
    elif rtype == "microsoft.network/virtualnetworks":
        space = props.get("addressSpace", {}).get("addressPrefixes", [])
        for s in props.get("subnets", []):
            s["id"] = "%s/subnets/%s" % (rid, s.get("name"))
            sp = s.setdefault("properties", {})
            pre = sp.get("addressPrefix")
            if not pre or not any(ipaddress.ip_network(pre).subnet_of(ipaddress.ip_network(a)) for a in space):
                raise ArmError(400, "NetcfgSubnetRangeOutsideVnet",
                               "Subnet '%s' is not valid because its IP address range is outside the IP address range of virtual network '%s'." % (s.get("name"), name))
            nsg = sp.get("networkSecurityGroup", {}).get("id")
            if nsg and find(nsg) is None:
                raise ArmError(400, "InvalidResourceReference", "Resource %s referenced by resource %s was not found." % (nsg, s["id"]))
            sp["provisioningState"] = "Succeeded"
        if old:
            # subnets that hold NICs cannot go away
            keep = {s["name"] for s in props.get("subnets", [])}
            for s in old["properties"].get("subnets", []):
                if s["name"] not in keep and s["properties"].get("ipConfigurations"):
                    raise ArmError(400, "InUseSubnetCannotBeDeleted", "Subnet %s is in use" % s["name"])
            for s in props.get("subnets", []):
                for o in old["properties"].get("subnets", []):
                    if o["name"] == s["name"] and o["properties"].get("ipConfigurations"):
                        s["properties"]["ipConfigurations"] = o["properties"]["ipConfigurations"]
    elif rtype == "microsoft.network/networkinterfaces":
        for c in props.get("ipConfigurations", []):
            c["id"] = "%s/ipConfigurations/%s" % (rid, c.get("name"))
            cp = c.setdefault("properties", {})
            sid = cp.get("subnet", {}).get("id", "")
            vnet = find(sid.rsplit("/subnets/", 1)[0]) if "/subnets/" in sid else None
            sub = next((s for s in (vnet or {}).get("properties", {}).get("subnets", [])
                        if s["id"].lower() == sid.lower()), None)
            if sub is None:
                raise ArmError(400, "InvalidResourceReference", "Subnet %s was not found." % sid)
            net = ipaddress.ip_network(sub["properties"]["addressPrefix"])
            if cp.get("privateIPAllocationMethod") == "Static":
                ip = cp.get("privateIPAddress")
                if not ip or not in_cidr(ip, str(net)):
                    raise ArmError(400, "PrivateIPAddressNotInSubnet", "%s is not in subnet %s" % (ip, net))
                # Azure reserves the first four addresses and the last
                if int(ipaddress.ip_address(ip)) - int(net.network_address) < 4 or \
                        ipaddress.ip_address(ip) == net.broadcast_address:
                    raise ArmError(400, "PrivateIPAddressInReservedRange", "%s is reserved" % ip)
                for other in state["resources"].values():
                    if other["type"] == "Microsoft.Network/networkInterfaces" and other["id"].lower() != rid.lower():
                        for oc in other["properties"]["ipConfigurations"]:
                            if oc["properties"].get("privateIPAddress") == ip:
                                raise ArmError(400, "PrivateIPAddressInUse", "%s is in use by %s" % (ip, other["id"]))
            else:
                cp["privateIPAddress"] = str(list(net.hosts())[3])
            cp["privateIPAllocationMethod"] = cp.get("privateIPAllocationMethod", "Dynamic")
            cp["provisioningState"] = "Succeeded"
            sub["properties"].setdefault("ipConfigurations", []).append({"id": c["id"]})
        if old and old["properties"].get("virtualMachine"):
            props["virtualMachine"] = old["properties"]["virtualMachine"]
    elif rtype == "microsoft.compute/disks":
        if old is not None:
            raise ArmError(409, "OperationNotAllowed",
                           "Disk '%s' already exists (diskState %s): its creationData cannot change; "
                           "a second PUT of a disk is a disk created twice" % (name, old["properties"]["diskState"]))
        cd = props.get("creationData", {})
        opt = cd.get("createOption")
        if opt == "Upload":
            n = cd.get("uploadSizeBytes")
            if not isinstance(n, int) or n < UPLOAD_MIN or (n - 512) % MiB:
                raise ArmError(400, "InvalidParameter",
                               "uploadSizeBytes %r: a fixed VHD of a whole number of MiB plus 512, at least %d" % (n, UPLOAD_MIN))
            props["diskState"] = "ReadyToUpload"
            props["diskSizeBytes"] = n - 512
        elif opt == "Import":
            uri, acct = cd.get("sourceUri", ""), cd.get("storageAccountId", "")
            if not re.fullmatch(r"/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.Storage/storageAccounts/" + ACCOUNT, acct):
                raise ArmError(400, "InvalidParameter", "storageAccountId %r is not the account of %s" % (acct, uri))
            u = urllib.parse.urlparse(uri)
            if u.port != AZ_PORT or not u.path.startswith("/%s/" % ACCOUNT) or u.query:
                raise ArmError(400, "InvalidParameter", "sourceUri %r is not a blob of the storage account (no SAS)" % uri)
            digest, size, ranges = blob_digest(urllib.parse.unquote(u.path[len(ACCOUNT) + 1:]))
            if digest is None:
                raise ArmError(400, "InvalidParameter", "sourceUri %s: no such blob" % uri)
            if (size - 512) % MiB:
                raise ArmError(400, "InvalidParameter", "the blob is not a fixed VHD of whole MiB")
            props["diskState"] = "Unattached"
            props["diskSizeBytes"] = size - 512
            state["uploads"][rid.lower()] = {"sha256": digest, "size": size, "ranges": ranges, "import": uri}
        else:
            raise ArmError(400, "InvalidParameter", "ferry's contract expects createOption Upload or Import, not %r" % opt)
        props["timeCreated"] = now()
        props["uniqueId"] = str(uuid.uuid4())
    elif rtype == "microsoft.compute/virtualmachines":
        sp = props.get("storageProfile", {})
        disks = [sp.get("osDisk", {})] + sp.get("dataDisks", [])
        luns = [d.get("lun") for d in sp.get("dataDisks", [])]
        if len(set(luns)) != len(luns):
            raise ArmError(400, "InvalidParameter", "data disk luns repeat: %s" % luns)
        if sp.get("osDisk", {}).get("createOption") != "Attach" or sp["osDisk"].get("osType") != "Linux":
            raise ArmError(400, "InvalidParameter", "osDisk: createOption Attach with osType Linux expected")
        for d in disks:
            did = d.get("managedDisk", {}).get("id", "")
            disk = find(did)
            if disk is None:
                raise ArmError(404, "NotFound", "Disk %s was not found." % did)
            ds = disk["properties"]["diskState"]
            mb = disk.get("managedBy")
            if ds in ("ReadyToUpload", "ActiveUpload", "ActiveSAS"):
                raise ArmError(409, "OperationNotAllowed", "Disk %s cannot be attached: it is in state %s" % (disk["name"], ds))
            if mb and mb.lower() != rid.lower():
                raise ArmError(409, "OperationNotAllowed", "Disk %s is attached to %s" % (disk["name"], mb))
        nics = props.get("networkProfile", {}).get("networkInterfaces", [])
        if not nics:
            raise ArmError(400, "InvalidParameter", "a VM needs a network interface")
        for n in nics:
            nic = find(n.get("id", ""))
            if nic is None:
                raise ArmError(404, "NotFound", "Network interface %s was not found." % n.get("id"))
            vm = nic["properties"].get("virtualMachine", {}).get("id")
            if vm and vm.lower() != rid.lower():
                raise ArmError(400, "NicInUse", "%s is attached to %s" % (nic["id"], vm))
        props["vmId"] = old["properties"]["vmId"] if old else str(uuid.uuid4())
        props["timeCreated"] = old["properties"]["timeCreated"] if old else now()
    state_entry = res
    if old is None:
        state["created"].append(rid)
    else:
        state["updates"].append(rid)
    lro = rtype not in ("microsoft.resources/resourcegroups",)
    if lro:
        props["provisioningState"] = "Creating" if old is None else "Updating"

        def done():
            props["provisioningState"] = "Succeeded"
            if rtype == "microsoft.compute/virtualmachines":
                for d in disks:
                    dk = find(d["managedDisk"]["id"])
                    dk["managedBy"] = rid
                    dk["properties"]["diskState"] = "Attached"
                for n in nics:
                    find(n["id"])["properties"]["virtualMachine"] = {"id": rid}
        hdrs = new_op(TYPES_CANON[rtype].split("/")[0], location, api, then=done)
        del hdrs["Location"]
    else:
        hdrs = {}
    state["resources"][rid.lower()] = state_entry
    return (200 if old else 201), res, hdrs


TYPES_CANON = {
    "microsoft.resources/resourcegroups": "Microsoft.Resources/resourceGroups",
    "microsoft.network/networksecuritygroups": "Microsoft.Network/networkSecurityGroups",
    "microsoft.network/virtualnetworks": "Microsoft.Network/virtualNetworks",
    "microsoft.network/networkinterfaces": "Microsoft.Network/networkInterfaces",
    "microsoft.compute/disks": "Microsoft.Compute/disks",
    "microsoft.compute/virtualmachines": "Microsoft.Compute/virtualMachines",
}


def arm_delete(rtype, rid, api):
    res = find(rid)
    if res is None:
        return 204, None, {}
    if rtype == "microsoft.compute/disks":
        if res.get("managedBy"):
            raise ArmError(409, "OperationNotAllowed", "Disk %s is attached to VM %s." % (res["name"], res["managedBy"]))
        if res["properties"]["diskState"] in ("ActiveUpload", "ActiveSAS"):
            raise ArmError(409, "OperationNotAllowed", "Disk %s is in state %s: end its access first." % (res["name"], res["properties"]["diskState"]))
    elif rtype == "microsoft.network/networkinterfaces":
        if res["properties"].get("virtualMachine"):
            raise ArmError(400, "NicInUse", "Network Interface %s is used by existing resource %s." % (rid, res["properties"]["virtualMachine"]["id"]))
    elif rtype not in ("microsoft.compute/virtualmachines",):
        raise ArmError(400, "ContractRefused", "ferry's cleanup deletes VMs, disks and NICs only, not %s" % rtype)

    def done():
        if rtype == "microsoft.compute/virtualmachines":
            for d in state["resources"].values():
                if (d.get("managedBy") or "").lower() == rid.lower():
                    d["managedBy"] = None
                    d["properties"]["diskState"] = "Unattached"
                if (d["properties"].get("virtualMachine") or {}).get("id", "").lower() == rid.lower():
                    del d["properties"]["virtualMachine"]
        if rtype == "microsoft.network/networkinterfaces":
            for v in state["resources"].values():
                for s in v["properties"].get("subnets", []):
                    s["properties"]["ipConfigurations"] = [
                        c for c in s["properties"].get("ipConfigurations", [])
                        if not c["id"].lower().startswith(rid.lower() + "/")]
        state["resources"].pop(rid.lower(), None)
        state["deleted"].append(rid)
    return 202, None, new_op(TYPES_CANON[rtype].split("/")[0], res["location"], api, then=done)


def disk_action(rid, action, api, body):
    disk = find(rid)
    if disk is None:
        raise ArmError(404, "ResourceNotFound", "Disk %s was not found." % rid)
    props = disk["properties"]
    if action == "beginGetAccess":
        if props["diskState"] not in ("ReadyToUpload", "ActiveUpload"):
            raise ArmError(409, "OperationNotAllowed", "Disk %s is %s: not waiting for an upload" % (disk["name"], props["diskState"]))
        if body.get("access") != "Write":
            raise ArmError(400, "InvalidParameter", "an upload needs access Write, not %r" % body.get("access"))
        up = state["uploads"].setdefault(rid.lower(), {})
        if "blob" not in up:
            blob = "/%s/%s-%s" % (DISK_CONTAINER, disk["name"], props["uniqueId"][:8])
            size = props["creationData"]["uploadSizeBytes"]
            st, _, data = blob_call("PUT", blob, headers={"x-ms-blob-type": "PageBlob",
                                                          "x-ms-blob-content-length": str(size)})
            if st != 201:
                raise ArmError(500, "InternalError", "azurite: %s %s" % (st, data[:200]))
            up["blob"] = blob
            up["grants"] = 0
        up["grants"] += 1
        props["diskState"] = "ActiveUpload"
        sas = "http://127.0.0.1:%d/%s%s?%s" % (PORT, ACCOUNT, up["blob"], account_sas("rw", int(body.get("durationInSeconds", 3600))))
        return 202, None, new_op("Microsoft.Compute", disk["location"], api, result={"accessSAS": sas})
    if action == "endGetAccess":
        if props["diskState"] not in ("ActiveUpload", "ActiveSAS"):
            raise ArmError(409, "OperationNotAllowed", "Disk %s has no active access" % disk["name"])
        up = state["uploads"][rid.lower()]
        up["sha256"], up["size"], up["ranges"] = blob_digest(up["blob"])
        props["diskState"] = "Unattached"
        return 202, None, new_op("Microsoft.Compute", disk["location"], api)
    raise ArmError(404, "InvalidResourceType", "no action %s" % action)


def instance_view(rid):
    vm = find(rid)
    if vm is None:
        raise ArmError(404, "ResourceNotFound", "VM %s was not found." % rid)
    ok = vm["properties"]["provisioningState"] == "Succeeded"
    return {"computerName": vm["name"],
            "bootDiagnostics": {"serialConsoleLogBlobUri":
                                "http://127.0.0.1:%d/%s/bootdiagnostics-%s/%s.serialconsole.log" % (
                                    AZ_PORT, ACCOUNT, vm["name"], vm["properties"]["vmId"])},
            "statuses": [{"code": "ProvisioningState/" + ("succeeded" if ok else "creating")}] +
                        ([{"code": "PowerState/running"}] if ok else [])}


# ---- HTTP ----

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def reply(self, status, body=None, headers=None, raw=None, ctype="application/json"):
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else b"")
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if data or status not in (204,):
            self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        if LOG:
            with open(LOG, "a") as f:
                f.write("%s %s %d\n" % (self.command, self.path.split("?")[0], status))

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def do_GET(self): self.handle_any()
    def do_PUT(self): self.handle_any()
    def do_POST(self): self.handle_any()
    def do_DELETE(self): self.handle_any()
    def do_HEAD(self): self.handle_any()

    def handle_any(self):
        u = urllib.parse.urlparse(self.path)
        data = self.body()
        try:
            if u.path.startswith("/%s/" % ACCOUNT):
                return self.blob_proxy(data)
            if u.path == "/_state":
                with lock:
                    return self.reply(200, {k: v for k, v in state.items() if k != "ops"})
            if u.path == "/_control":
                with lock:
                    control.update(json.loads(data))
                    if control.get("stall_after_pages") is None:
                        stall_release.set()
                    else:
                        stall_release.clear()
                return self.reply(204)
            if u.path.endswith("/oauth2/v2.0/token"):
                return self.token(u.path, data)
            with lock:
                return self.arm(u, data)
        except ArmError as e:
            return self.reply(e.status, {"error": {"code": e.code, "message": e.message}})

    def token(self, path, data):
        with lock:
            state["token_requests"] += 1
        if self.command != "POST" or not (self.headers.get("Content-Type") or "").startswith("application/x-www-form-urlencoded"):
            return self.reply(400, {"error": "invalid_request", "error_description": "AADSTS900144: a form POST is expected"})
        form = urllib.parse.parse_qs(data.decode(), keep_blank_values=True, strict_parsing=True)
        form = {k: v[0] for k, v in form.items()}
        expected = {"grant_type", "client_id", "client_secret", "scope"}
        if set(form) != expected:
            return self.reply(400, {"error": "invalid_request", "error_description":
                                    "AADSTS900144: the client-credentials form has %s, not %s" % (sorted(form), sorted(expected))})
        if path != "/%s/oauth2/v2.0/token" % TENANT:
            return self.reply(400, {"error": "invalid_request", "error_description":
                                    "AADSTS90002: Tenant '%s' not found." % path.split("/")[1], "error_codes": [90002]})
        if form["grant_type"] != "client_credentials" or form["scope"] != SCOPE:
            return self.reply(400, {"error": "invalid_scope", "error_description": "AADSTS70011: scope %s" % form["scope"]})
        if form["client_id"] != CLIENT_ID:
            return self.reply(400, {"error": "unauthorized_client", "error_codes": [700016], "error_description":
                                    "AADSTS700016: Application with identifier '%s' was not found in the directory." % form["client_id"]})
        if not hmac.compare_digest(form["client_secret"], CLIENT_SECRET):
            return self.reply(401, {"error": "invalid_client", "error_codes": [7000215], "error_description":
                                    "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request "
                                    "is the client secret value, not the client secret ID, for a secret added to app '%s'.\r\n"
                                    "Trace ID: %s\r\nCorrelation ID: %s" % (CLIENT_ID, uuid.uuid4(), uuid.uuid4())})
        tok = secrets.token_urlsafe(32)
        with lock:
            state["tokens"][hashlib.sha256(tok.encode()).hexdigest()[:16]] = time.time() + 3599
        return self.reply(200, {"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": tok})

    def fault(self, path):
        for f in control["faults"]:
            if f.get("count", 1) > 0 and f.get("method", self.command) == self.command and re.search(f["path"], path):
                f["count"] = f.get("count", 1) - 1
                state["faults_hit"].append("%s %s %d" % (self.command, path, f["status"]))
                hdrs = {"Retry-After": str(f["retry_after"])} if "retry_after" in f else {}
                code = "TooManyRequests" if f["status"] == 429 else "ServiceUnavailable"
                self.reply(f["status"], {"error": {"code": code, "message": "injected by the test"}}, hdrs)
                return True
        return False

    def arm(self, u, data):
        auth = self.headers.get("Authorization") or ""
        tok = auth[7:] if auth.startswith("Bearer ") else ""
        exp = state["tokens"].get(hashlib.sha256(tok.encode()).hexdigest()[:16])
        if exp is None or exp < time.time():
            state["rejected_tokens"] += 1
            raise ArmError(401, "InvalidAuthenticationToken", "The access token is invalid.")
        q = {k: v[0] for k, v in urllib.parse.parse_qs(u.query).items()}
        api = q.get("api-version")
        path = u.path
        if not path.lower().startswith("/subscriptions/%s/" % SUB.lower()):
            raise ArmError(404, "SubscriptionNotFound", "The subscription '%s' could not be found." % path.split("/")[2])
        if self.fault(path):
            return
        m = OP.match(path)
        if m:
            if self.command != "GET":
                raise ArmError(405, "MethodNotAllowed", "operations are read with GET")
            op = op_poll(m.group(5))
            if m.group(4) == "operations":
                return self.reply(200, {"name": m.group(5), "status": "Succeeded" if op["done"] else "InProgress",
                                        "startTime": now()}, {"Retry-After": "1"} if not op["done"] else {})
            if not op["done"]:
                return self.reply(202, None, {"Retry-After": "1", "Location": "http://127.0.0.1:%d%s" % (PORT, self.path)})
            return self.reply(200, op["result"]) if op["result"] is not None else self.reply(204)
        m = RG.match(path)
        action = None
        if m:
            rtype, rid = "microsoft.resources/resourcegroups", "/subscriptions/%s/resourceGroups/%s" % (SUB, m.group(2))
        else:
            m = RID.match(path)
            if m is None:
                raise ArmError(404, "InvalidResourceType", "ferry's contract has no %s" % path)
            rtype = ("%s/%s" % (m.group(3), m.group(4))).lower()
            rid = "/subscriptions/%s/resourceGroups/%s/providers/%s/%s/%s" % (SUB, m.group(2), m.group(3), m.group(4), m.group(5))
            action = m.group(6)
            if rtype not in TYPES:
                raise ArmError(404, "InvalidResourceType", "The resource type '%s' could not be found." % rtype)
        mod = models_for(rtype, api)
        if mod is None:
            state["violations"].append("%s %s: api-version %r has no %s in the SDK" % (self.command, path, api, TYPES[rtype][1]))
            raise ArmError(400, "InvalidApiVersionParameter",
                           "The api-version '%s' is invalid for %s." % (api, TYPES_CANON[rtype]))
        body = None
        if data:
            try:
                body = json.loads(data)
            except ValueError:
                raise ArmError(400, "InvalidRequestContent", "the body is not JSON")
        if action:
            if rtype == "microsoft.compute/virtualmachines" and action == "instanceView" and self.command == "GET":
                return self.reply(200, instance_view(rid))
            if rtype != "microsoft.compute/disks" or self.command != "POST":
                raise ArmError(404, "InvalidResourceType", "no %s %s" % (self.command, path))
            if action == "beginGetAccess":
                errs = []
                validate(mod.GrantAccessData, mod, body or {}, "GrantAccessData", errs)
                if errs:
                    state["violations"].extend(errs)
                    raise ArmError(400, "InvalidRequestContent", "; ".join(errs))
            elif body:
                raise ArmError(400, "InvalidRequestContent", "%s takes no body" % action)
            st, res, hdrs = disk_action(rid, action, api, body or {})
            return self.reply(st, res, hdrs)
        if self.command == "GET":
            res = find(rid)
            if res is None:
                raise ArmError(404, "ResourceNotFound", "The Resource '%s' under resource group '%s' was not found." % (
                    rid.split("/")[-1], rid.split("/")[4]))
            return self.reply(200, res)
        if self.command == "PUT":
            if body is None:
                raise ArmError(400, "InvalidRequestContent", "a PUT needs a body")
            errs = []
            validate(getattr(mod, TYPES[rtype][1]), mod, body, TYPES[rtype][1], errs)
            if errs:
                state["violations"].extend("%s %s: %s" % (self.command, path, e) for e in errs)
                raise ArmError(400, "InvalidRequestContent", "; ".join(errs))
            st, res, hdrs = arm_put(rtype, rid, api, mod, body, m)
            return self.reply(st, res, hdrs)
        if self.command == "DELETE":
            st, res, hdrs = arm_delete(rtype, rid, api)
            return self.reply(st, res, hdrs)
        raise ArmError(405, "MethodNotAllowed", self.command)

    def blob_proxy(self, data):
        """The disk's blob endpoint: azurite, one request at a time, as it
        came (azurite checks the SAS)."""
        q = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
        is_page = self.command == "PUT" and q.get("comp") == ["page"]
        if is_page:
            with lock:
                n = control.get("stall_after_pages")
                stall = n is not None and state["pages"]["requests"] >= n
                if stall:
                    state["stalled"] = True
            if stall:
                stall_release.wait(60)
                return self.reply(503, raw=b"<Error><Code>ServerBusy</Code></Error>", ctype="application/xml")
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
        c = http.client.HTTPConnection("127.0.0.1", AZ_PORT, timeout=60)
        c.request(self.command, self.path, body=data, headers=headers)
        r = c.getresponse()
        out = r.read()
        hdrs = {k: v for k, v in r.getheaders() if k.lower() not in ("content-length", "connection", "transfer-encoding", "content-type")}
        c.close()
        if is_page and r.status == 201:
            with lock:
                state["pages"]["requests"] += 1
                state["pages"]["bytes"] += len(data)
        self.reply(r.status, raw=out, headers=hdrs, ctype=r.getheader("Content-Type") or "application/xml")


def main():
    st, _, data = blob_call("PUT", "/" + DISK_CONTAINER, {"restype": "container"})
    if st not in (201, 409):
        sys.exit("azure_contract: cannot create container %s in azurite: %s %s" % (DISK_CONTAINER, st, data[:200]))
    for pkg in ("azure.mgmt.compute.v2022_08_01.models", "azure.mgmt.compute.v2022_07_02.models",
                "azure.mgmt.network.v2022_07_01.models", "azure.mgmt.resource.resources.v2022_09_01.models"):
        importlib.import_module(pkg)
    srv = ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
    srv.daemon_threads = True
    srv.serve_forever()


main()
