#!/bin/bash
# The azure target driver, end to end: agent clone -> convert (fixed VHD
# page blobs in azurite) -> create.  The data path is real (azurite holds
# the managed disks' page blobs); the control calls go to
# tests/azure_contract.py, which checks each one against the Azure SDK's
# own models (python3-azure) and implements ARM's long-running operations.
# Behaviours: a wrong client secret fails fast naming AZURE_CLIENT_SECRET;
# the VNet, subnets and NSG come from the blueprint; the VM has the
# blueprint's size, subnet, static IP and disks in order; each uploaded
# disk equals the converted VHD byte for byte with only its non-zero pages
# written; a 429 and a 503 are survived; ferry-server killed with SIGKILL
# in the middle of an upload finishes after a restart, creating nothing
# twice and resending no page; ferry target cleanup deletes the VM, NIC
# and disks and keeps the network; import: object makes the disks from the
# converted page blobs without a Put Page.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/servers.sh"
requires jq curl sha256sum
/usr/bin/python3 -c "import azure.mgmt.compute.v2022_08_01.models, azure.mgmt.network.v2022_07_01.models" 2>/dev/null ||
  { echo "SKIP: python3-azure is not installed (scripts/setup.sh test installs it)"; exit 77; }

# this test's ports: 18800-18899 (tests run beside each other's servers)
free_port() {
  local n p i
  for ((i = 0; i < 100; i++)); do
    n=$(cat "$T/.port" 2>/dev/null || echo $((RANDOM % 100)))
    n=$(( (n + 1) % 100 )); echo "$n" >"$T/.port"; p=$((18800 + n))
    _listening "$p" || { echo "$p"; return 0; }
  done
  fail "no free port in 18800-18899"
}

AZ=$TOP/tests/azcli.py
azurite_start
"$AZ" mkcontainer ferry

# the service principal: ferry-server reads it from its environment
export AZURE_TENANT_ID=72f988bf-86f1-41af-91ab-2d7cd011db47
export AZURE_CLIENT_ID=0b5b7f1e-6c1e-4d52-9d4b-3c1f2a9e5d10
export AZURE_SUBSCRIPTION_ID=00000000-1111-2222-3333-444444444444
SECRET=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
CPORT=$(free_port)
CURL=http://127.0.0.1:$CPORT
CONTRACT_PORT=$CPORT CONTRACT_TENANT=$AZURE_TENANT_ID CONTRACT_CLIENT_ID=$AZURE_CLIENT_ID \
  CONTRACT_CLIENT_SECRET=$SECRET CONTRACT_SUBSCRIPTION=$AZURE_SUBSCRIPTION_ID AZURITE_PORT=$AZ_PORT \
  CONTRACT_LOG=$T/contract.requests _spawn contract /usr/bin/python3 "$TOP/tests/azure_contract.py"
_wait_http contract "$CURL/_state"
state() { curl -sf "$CURL/_state" >"$T/state.json" || fail "the contract server does not answer"; }
control() { curl -sf -X POST --data-binary "$1" "$CURL/_control" || fail "control $1"; }

make_disk "$T/sda.img" 48M sparse
make_disk "$T/sdb.img" 24M sparse
mkdir -p "$T/state"
export AZURE_CLIENT_SECRET=wrong-$SECRET
start_server "$T/state/ferry.db" --convert-workers 1
make_root "$T/root" web01 sda=$((48 << 20)) sdb=$((24 << 20))
conf=$(make_agent web01 "$T/root" "sda=$T/sda.img" "sdb=$T/sdb.img")
start_clean_agent web01 "$conf"
wait_for 20 eval '[ "$(api GET /v1/hosts | jq ".hosts | length")" = 1 ]' || fail "the agent did not register"

cat >"$T/bp.yaml" <<YAML
name: az1
provider: azure
region: westeurope
store: azure://ferry/mig
endpoints:
  arm: $CURL
  login: $CURL
options:
  chunk_size: 1M
networks:
  - name: prod-vnet
    cidr: 10.30.0.0/16
    allow:
      - {proto: tcp, ports: 22, from: 10.0.0.0/8}
      - {proto: tcp, ports: "8000-8099", from: 0.0.0.0/0}
      - {proto: icmp, from: 10.30.0.0/16}
    subnets:
      - name: app
        cidr: 10.30.1.0/24
      - name: db
        cidr: 10.30.2.0/24
hosts:
  - name: web01
    machine_type: Standard_D2s_v5
    subnet: app
    ip: 10.30.1.20
    format: vhd
YAML
ferry blueprint apply "$T/bp.yaml" >/dev/null || fail "apply: $(ferry blueprint validate "$T/bp.yaml" 2>&1)"

# ---- a wrong client secret: one token request, the migration fails at
# once naming AZURE_CLIENT_SECRET and Entra ID's own code
ferry migrate web01 --blueprint az1 >/dev/null || fail "migrate 1"
rc=0; timeout 120 ferry job watch 1 >"$T/w1.out" 2>&1 || rc=$?
[ "$rc" = 1 ] || fail "a wrong secret did not fail the migration (exit $rc): $(tail -5 "$T/w1.out")"
grep -q "AADSTS7000215" "$T/w1.out" && grep -q "check AZURE_CLIENT_SECRET" "$T/w1.out" ||
  fail "the failure does not name the variable: $(tail -3 "$T/w1.out")"
state
[ "$(jq .token_requests "$T/state.json")" = 1 ] || fail "the token was asked $(jq .token_requests "$T/state.json") times"
[ "$(jq '.resources | length' "$T/state.json")" = 0 ] || fail "something was made without a token"
! grep -rqF -- "$SECRET" "$T/server.log" "$T/w1.out" || fail "the secret appears in the logs"
ok "a wrong client secret fails the migration at its first token request (AADSTS7000215, check AZURE_CLIENT_SECRET); nothing made, no secret logged"

# ---- the right secret; a 429 and a 503 on the way; ferry-server killed
# with SIGKILL in the middle of the boot disk's upload
kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true
export AZURE_CLIENT_SECRET=$SECRET
start_server "$T/state/ferry.db" --convert-workers 1
control '{"faults": [{"method": "PUT", "path": "/virtualMachines/", "status": 429, "retry_after": 1, "count": 1},
                     {"method": "PUT", "path": "/disks/web01-test-sdb$", "status": 503, "count": 1}],
          "stall_after_pages": 3}'
ferry migrate web01 --blueprint az1 --test >/dev/null || fail "migrate 2 --test"
wait_for 120 eval 'curl -sf "$CURL/_state" | jq -e .stalled' ||
  fail "the upload never reached its fourth Put Page: $(ferry job show 2 | tail -5)"
kill -9 "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true
control '{"stall_after_pages": null}'
start_server "$T/state/ferry.db" --convert-workers 1
timeout 120 ferry job watch 2 >"$T/w2.out" 2>&1 || fail "the resumed migration failed: $(tail -5 "$T/w2.out")"
grep -q "resuming an earlier upload" "$T/w2.out" || fail "the upload did not resume: $(grep -i azure "$T/w2.out")"
ok "ferry-server killed with SIGKILL after 3 Put Pages, restarted: the migration resumes the upload and finishes"

state
jq -e '.violations == []' "$T/state.json" >/dev/null || fail "requests off Azure's models: $(jq -c .violations "$T/state.json")"
[ "$(jq '.created | length' "$T/state.json")" = "$(jq '.created | unique | length' "$T/state.json")" ] ||
  fail "created twice: $(jq -c .created "$T/state.json")"
[ "$(jq -r '[.created[] | split("/") | .[-2]] | sort | join(" ")' "$T/state.json")" = \
  "disks disks networkInterfaces networkSecurityGroups resourceGroups virtualMachines virtualNetworks" ] ||
  fail "made: $(jq -c .created "$T/state.json")"
jq -r '.faults_hit[]' "$T/state.json" >"$T/faults"
grep -q "PUT .*/virtualMachines/web01-test 429" "$T/faults" && grep -q "PUT .*/disks/web01-test-sdb 503" "$T/faults" ||
  fail "faults: $(cat "$T/faults")"
[ "$(jq .rejected_tokens "$T/state.json")" = 0 ] || fail "ARM refused a token"
[ "$(jq .token_requests "$T/state.json")" = 3 ] || fail "tokens asked: $(jq .token_requests "$T/state.json") (1 per server run expected)"
ok "every request matches the SDK's models and api-versions; each resource made once; a 429 and a 503 survived; one token per server run"

# the VM and its network, as the contract server holds them
rg=/subscriptions/$AZURE_SUBSCRIPTION_ID/resourceGroups/ferry-az1
res() { jq --arg id "$(tr 'A-Z' 'a-z' <<<"$rg/providers/$1")" '.resources[$id]' "$T/state.json"; }
vm=$(res Microsoft.Compute/virtualMachines/web01-test)
nic=$(res Microsoft.Network/networkInterfaces/web01-test-nic)
[ "$(jq -r .properties.hardwareProfile.vmSize <<<"$vm")" = Standard_D2s_v5 ] || fail "vm size: $vm"
[ "$(jq -r '.properties.storageProfile | [.osDisk.managedDisk.id, (.dataDisks[] | "\(.lun) \(.managedDisk.id)")] | map(split("/")[-1]) | join(" ")' <<<"$vm")" = \
  "web01-test-sda web01-test-sdb" ] || fail "disks: $(jq -c .properties.storageProfile <<<"$vm")"
[ "$(jq -r '.properties.storageProfile.dataDisks[0].lun' <<<"$vm")" = 0 ] || fail "the data disk is not lun 0"
jq -e '.properties.diagnosticsProfile.bootDiagnostics.enabled == true and .tags["ferry-migration"] == "2" and .tags["ferry-test"] == "true"' <<<"$vm" >/dev/null ||
  fail "vm: $(jq -c '.properties.diagnosticsProfile, .tags' <<<"$vm")"
[ "$(jq -r '.properties.networkProfile.networkInterfaces[0].id' <<<"$vm")" = "$(jq -r .id <<<"$nic")" ] || fail "the VM's NIC"
[ "$(jq -r '.properties.ipConfigurations[0].properties | "\(.privateIPAllocationMethod) \(.privateIPAddress) \(.subnet.id | split("/") | .[-3:] | join("/"))"' <<<"$nic")" = \
  "Static 10.30.1.20 prod-vnet/subnets/app" ] || fail "nic: $(jq -c .properties.ipConfigurations <<<"$nic")"
[ "$(res Microsoft.Network/virtualNetworks/prod-vnet | jq -r '[.properties.addressSpace.addressPrefixes[0]] + [.properties.subnets[] | "\(.name)=\(.properties.addressPrefix)"] | join(" ")')" = \
  "10.30.0.0/16 app=10.30.1.0/24 db=10.30.2.0/24" ] || fail "vnet: $(res Microsoft.Network/virtualNetworks/prod-vnet | jq -c .properties)"
[ "$(res Microsoft.Network/networkSecurityGroups/prod-vnet-nsg | jq -r '[.properties.securityRules[].properties | "\(.priority) \(.direction) \(.access) \(.protocol) \(.sourceAddressPrefix) \(.destinationPortRange)"] | join(", ")')" = \
  "100 Inbound Allow Tcp 10.0.0.0/8 22, 110 Inbound Allow Tcp 0.0.0.0/0 8000-8099, 120 Inbound Allow Icmp 10.30.0.0/16 *" ] ||
  fail "nsg rules: $(res Microsoft.Network/networkSecurityGroups/prod-vnet-nsg | jq -c .properties.securityRules)"
api GET /v1/migrations/2 >"$T/m2.json"
jq '.tasks[] | select(.kind == "create") | .result' "$T/m2.json" >"$T/result.json"
[ "$(jq -r '"\(.instance_id) \(.private_ip) \(.nic_id) \(.disk_ids | length)"' "$T/result.json")" = \
  "$rg/providers/Microsoft.Compute/virtualMachines/web01-test 10.30.1.20 $rg/providers/Microsoft.Network/networkInterfaces/web01-test-nic 2" ] ||
  fail "result: $(cat "$T/result.json")"
[ "$(jq -r .vm_id "$T/result.json")" = "$(jq -r .properties.vmId <<<"$vm")" ] || fail "vm_id: $(cat "$T/result.json")"
jq -r .console "$T/result.json" | grep -q "serialconsole.log$" || fail "no console URI: $(cat "$T/result.json")"
ok "VM web01-test: Standard_D2s_v5, NIC at 10.30.1.20 on subnet app, sda as OS disk and sdb at lun 0, boot diagnostics; VNet, subnets and the NSG's 3 rules in order as the blueprint says; the result names them"

# each managed disk holds the converted VHD, written with its data pages only
total=0; runs=0
for d in sda sdb; do
  out=$(jq -r --arg d "$d" '.plan.disks[] | select(.name == $d) | .output' "$T/m2.json")
  "$AZ" get ferry "${out#azure://ferry/}" >"$T/$d.vhd" || fail "read $out"
  up=$(jq --arg id "$(tr 'A-Z' 'a-z' <<<"$rg/providers/Microsoft.Compute/disks/web01-test-$d")" '.uploads[$id]' "$T/state.json")
  [ "$(jq -r .sha256 <<<"$up")" = "$(sha256sum <"$T/$d.vhd" | cut -d' ' -f1)" ] ||
    fail "disk $d differs from the converted VHD"
  # the VHD's non-zero 512-byte pages, as ranges, and the Put Page calls
  # they take (runs within 4 MiB windows)
  /usr/bin/python3 - "$T/$d.vhd" >"$T/$d.pages" <<'PY'
import sys
data = open(sys.argv[1], "rb").read()
z = bytes(512); ranges = []; runs = 0; nz = 0; prev = False
for off in range(0, len(data), 512):
    on = data[off:off + 512] != z
    if on:
        nz += 512
        if ranges and ranges[-1][1] + 1 == off: ranges[-1][1] = off + 511
        else: ranges.append([off, off + 511])
        if not prev or off % (4 << 20) == 0: runs += 1
    prev = on
print(nz, runs, ranges)
PY
  read -r nz n ranges <"$T/$d.pages"
  [ "$(jq -c .ranges <<<"$up" | tr -d ' ')" = "$(tr -d ' ' <<<"$ranges")" ] ||
    fail "disk $d: pages written $(jq -c .ranges <<<"$up"), its data pages $ranges"
  total=$((total + nz)); runs=$((runs + n))
done
[ "$(jq -r '.uploads[] | .grants' "$T/state.json" | sort | tr '\n' ' ')" = "1 2 " ] ||
  fail "write access granted: $(jq -c '[.uploads[] | .grants]' "$T/state.json")"
[ "$(jq -r '"\(.pages.bytes) \(.pages.requests)"' "$T/state.json")" = "$total $runs" ] ||
  fail "Put Page sent $(jq -c .pages "$T/state.json"), the data pages are $total bytes in $runs runs"
ok "both disks equal their converted VHD (SHA-256), written with only their data pages: $total bytes in $runs Put Pages, none sent twice across the kill"

# ---- ferry target cleanup: the VM, its NIC and disks; the network stays
ferry target cleanup 2 >"$T/c.out" 2>"$T/c.err" || fail "cleanup: $(cat "$T/c.err")"
state
[ "$(jq -r '[.deleted[] | split("/")[-1]] | join(" ")' "$T/state.json")" = "web01-test web01-test-sdb web01-test-sda web01-test-nic" ] ||
  fail "deleted: $(jq -c .deleted "$T/state.json"); ferry said: $(cat "$T/c.out")"
[ "$(jq -r '[.resources[] | .type] | sort | join(" ")' "$T/state.json")" = \
  "Microsoft.Network/networkSecurityGroups Microsoft.Network/virtualNetworks Microsoft.Resources/resourceGroups" ] ||
  fail "left: $(jq -c '[.resources[] | .id]' "$T/state.json")"
[ "$(api GET /v1/migrations/2 | jq -r '[.resources[] | select(.scope == "migration" and .state == "live")] | length')" = 0 ] ||
  fail "the ledger still lists: $(cat "$T/api.body")"
jq -e '.violations == []' "$T/state.json" >/dev/null || fail "cleanup requests off the models: $(jq -c .violations "$T/state.json")"
ok "ferry target cleanup deletes the VM, then its disks and NIC (newest first); the resource group, VNet and NSG stay"

# ---- import: object: the disks are imported from the page blobs
# ferry-convert wrote (createOption Import, sourceUri + storageAccountId);
# no Put Page is sent
pages0=$(jq .pages.requests "$T/state.json")
sed 's/^name: az1$/name: az2/; s/^store: .*/&\nimport: object/' "$T/bp.yaml" >"$T/bp2.yaml"
ferry blueprint apply "$T/bp2.yaml" >/dev/null || fail "apply az2: $(ferry blueprint validate "$T/bp2.yaml" 2>&1)"
ferry migrate web01 --blueprint az2 --test >/dev/null || fail "migrate 3"
timeout 120 ferry job watch 3 >"$T/w3.out" 2>&1 || fail "the import migration failed: $(tail -5 "$T/w3.out")"
state
jq -e '.violations == []' "$T/state.json" >/dev/null || fail "import requests off the models: $(jq -c .violations "$T/state.json")"
rg2=/subscriptions/$AZURE_SUBSCRIPTION_ID/resourceGroups/ferry-az2
for d in sda sdb; do
  up=$(jq --arg id "$(tr 'A-Z' 'a-z' <<<"$rg2/providers/Microsoft.Compute/disks/web01-test-$d")" '.uploads[$id]' "$T/state.json")
  [ "$(jq -r .import <<<"$up")" = "$AZ_ENDPOINT/ferry/mig/web01/$d.vhd" ] || fail "disk $d imported from: $up"
  # converted again for this migration (a VHD footer has its own time and id)
  "$AZ" get ferry "mig/web01/$d.vhd" >"$T/$d-3.vhd" || fail "read $d.vhd"
  [ "$(jq -r .sha256 <<<"$up")" = "$(sha256sum <"$T/$d-3.vhd" | cut -d' ' -f1)" ] || fail "disk $d: another blob imported"
done
[ "$(jq .pages.requests "$T/state.json")" = "$pages0" ] || fail "Put Page sent for an import"
[ "$(jq -r --arg id "$(tr 'A-Z' 'a-z' <<<"$rg2/providers/Microsoft.Compute/virtualMachines/web01-test")" '.resources[$id].properties.provisioningState' "$T/state.json")" = Succeeded ] ||
  fail "no VM in ferry-az2"
ok "import: object makes each disk from its converted page blob (Import with sourceUri and storageAccountId), no Put Page, and the VM"

# nothing secret in what ferry-server logged or the CLI showed
! grep -qF -- "$SECRET" "$T/server.log" "$T"/w*.out || fail "the client secret appears in a log"
! grep -q "sig=" "$T/server.log" "$T"/w*.out || fail "a disk's SAS appears in a log: $(grep -m1 -o '.\{60\}sig=' "$T/server.log")"
ok "neither the client secret nor a SAS appears in ferry-server's log or the CLI's output"
