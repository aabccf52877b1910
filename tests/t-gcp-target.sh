#!/bin/bash
# The gcp target driver, end to end: a host's two disks are cloned by an
# agent without cloud credentials into gs:// (Swift speaking the GCS XML
# API), converted to gce tar.gz, and created in Compute Engine: the
# blueprint's VPC network (custom mode), subnetworks and firewall rules,
# an image per disk imported from the object (GCE fetches it: here the
# contract server reads it from Swift and checks disk.raw and its digest),
# the data disk, the instance with its machine type, subnetwork and IP.
# No emulator of GCE exists: the control calls go to tests/gcp_contract.py,
# which validates every request against Google's compute v1 model and
# verifies the service account's RS256 JWT.  Behaviours: a wrong key fails
# fast naming GOOGLE_APPLICATION_CREDENTIALS; an operation error fails the
# migration with GCE's code and message; 429/503 are retried; ferry-server
# killed (-9) during an image import finds the pending image on restart
# and nothing is created twice; ferry target cleanup removes the instance,
# disk and images of a migration and keeps the blueprint's network.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/servers.sh"
requires jq curl openssl python3 sha256sum
GCE_MODEL=${FERRY_TOOLS_DIR:-/var/cache/ferry}/gce-api/compute-gen.go
[ -s "$GCE_MODEL" ] || { echo "SKIP: the compute v1 model is not in $GCE_MODEL (scripts/setup.sh test fetches it)"; exit 77; }

# this test's ports: 18900-18999
GCP_PORT=
for p in $(seq 18900 18999); do _listening "$p" || { GCP_PORT=$p; break; }; done
[ -n "$GCP_PORT" ] || fail "no free port in 18900-18999 for the GCE contract server"
GCE=http://127.0.0.1:$GCP_PORT
PROJECT=ferry-test
EMAIL=ferry-migrate@$PROJECT.iam.gserviceaccount.com

swift_start auto
export GS_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID GS_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY GS_ENDPOINT_URL=$S3_ENDPOINT

# the service account's key, as the IAM console downloads it (mode 0600)
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$T/sa.pem" 2>/dev/null
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$T/other.pem" 2>/dev/null
openssl pkey -in "$T/sa.pem" -pubout -out "$T/sa.pub"
make_key() {  # PEM: the key file $T/sa.json with that private key
  ( umask 077
    jq -n --rawfile k "$1" --arg e "$EMAIL" --arg p "$PROJECT" --arg u "$GCE/token" \
      '{type: "service_account", project_id: $p, private_key_id: "0123abcd", private_key: $k,
        client_email: $e, client_id: "1234567890", token_uri: $u}' >"$T/sa.json.tmp" )
  mv "$T/sa.json.tmp" "$T/sa.json"
}
make_key "$T/sa.pem"

export SWIFT_URL SWIFT_TOKEN
_spawn gcp-contract python3 "$TOP/tests/gcp_contract.py" --port "$GCP_PORT" --model "$GCE_MODEL" \
  --public-key "$T/sa.pub" --email "$EMAIL" --project "$PROJECT" --op-seconds 0.3 \
  --image-seconds 1 --wait-max 1 --ready-file "$T/gcp.ready"
wait_for 30 test -s "$T/gcp.ready" || fail "the GCE contract server did not start: $(tail -5 "$T/gcp-contract.log")"
ctl() { curl -sf "$GCE/_ctl/$1" "${@:2}"; }
ctl_post() { curl -sf -X POST -H 'Content-Type: application/json' --data "$2" "$GCE/_ctl/$1" >/dev/null; }
echo "  contract server: $(cat "$T/gcp.ready")"

export GOOGLE_APPLICATION_CREDENTIALS=$T/sa.json
unset GOOGLE_CLOUD_PROJECT
mkdir -p "$T/state"
start_server "$T/state/ferry.db" --lease 3 --convert-workers 2

make_disk "$T/sda.img" 48M sparse
make_disk "$T/sdb.img" 16M sparse
make_root "$T/root" gcp01 sda=$((48 << 20)) sdb=$((16 << 20))
mkdir -p "$T/root/sys/firmware/efi"             # booted through UEFI
conf=$(make_agent gcp01 "$T/root" "sda=$T/sda.img" "sdb=$T/sdb.img")
start_clean_agent gcp01 "$conf"
wait_for 20 eval '[ "$(api GET /v1/hosts | jq ".hosts | length")" = 1 ]' || fail "the agent did not register"

cat >"$T/bp.yaml" <<YAML
name: wave-gcp
provider: gcp
region: europe-west1
store: gs://test/gcp
options:
  chunk_size: 1M
endpoints:
  compute: $GCE/compute/v1
networks:
  - name: prod
    cidr: 10.40.0.0/16
    allow:
      - {proto: tcp, ports: 22, from: 10.0.0.0/8}
      - {proto: tcp, ports: "8000-8099", from: 0.0.0.0/0}
      - {proto: icmp, from: 10.40.0.0/16}
      - {proto: udp, ports: 53, from: 10.0.0.0/8}
    subnets:
      - name: web
        cidr: 10.40.1.0/24
      - name: data
        cidr: 10.40.2.0/24
hosts:
  - name: gcp01
    machine_type: e2-standard-2
    subnet: web
    ip: 10.40.1.10
YAML
ferry blueprint apply "$T/bp.yaml" >/dev/null 2>"$T/err" || fail "apply: $(cat "$T/err")"

# migrate --test; watch it: 0 done, 1 failed (its output in $T/watch-N)
run() {
  local n=$1 rc=0
  ferry migrate gcp01 --blueprint wave-gcp --test >/dev/null || fail "migrate $n"
  timeout 120 ferry job watch "$n" >"$T/watch-$n" 2>&1 || rc=$?
  return $rc
}
count() { ctl log | jq "[.[] | select($1)] | length"; }

# 1. a key file others can read is refused before any request
chmod 644 "$T/sa.json"
! run 1 || fail "migration 1 with a world-readable key succeeded"
grep -q "GOOGLE_APPLICATION_CREDENTIALS: .*$T/sa.json.*chmod 600" "$T/watch-1" ||
  fail "the key file's mode is not explained: $(cat "$T/watch-1")"
[ "$(ctl log | jq length)" = 0 ] || fail "a world-readable key was used: $(ctl log | jq -c .)"
ok "a key file the group or others can read is refused, naming GOOGLE_APPLICATION_CREDENTIALS and the fix"

# 2. a key the service account does not have: invalid_grant, at once
make_key "$T/other.pem"
! run 2 || fail "migration 2 with a wrong key succeeded"
grep -q "refused the service-account key (HTTP 400 invalid_grant: Invalid JWT Signature.): check the key file GOOGLE_APPLICATION_CREDENTIALS names ($T/sa.json" "$T/watch-2" ||
  fail "the wrong key is not explained: $(cat "$T/watch-2")"
[ "$(count '.method == "oauth2.token"')" = 1 ] && [ "$(count '.method | startswith("compute.")')" = 0 ] ||
  fail "a refused key was retried or went on: $(ctl log | jq -c .)"
ok "a wrong service-account key fails the migration at its first token request, naming GOOGLE_APPLICATION_CREDENTIALS and Google's invalid_grant"
make_key "$T/sa.pem"

# 3. an operation error: GCE's code and message, then cleanup
ctl_post faults '{"op_errors": [{"method": "compute.instances.insert", "code": "ZONE_RESOURCE_POOL_EXHAUSTED",
  "message": "The zone '"'"'projects/ferry-test/zones/europe-west1-b'"'"' does not have enough resources available to fulfill the request."}]}'
! run 3 || fail "migration 3 succeeded despite the operation error"
grep -q "GCE insert instance gcp01-test failed in project ferry-test: operation operation-[0-9a-f-]*: ZONE_RESOURCE_POOL_EXHAUSTED: The zone 'projects/ferry-test/zones/europe-west1-b' does not have enough resources" "$T/watch-3" ||
  fail "the operation error is not reported: $(cat "$T/watch-3")"
ok "an instance operation that ends in error fails the migration with GCE's code and message"

ctl state >"$T/s3.json"
jq -e '.resources | keys | map(select(test("/images/ferry-m3-gcp01-sd[ab]$"))) | length == 2' "$T/s3.json" >/dev/null ||
  fail "migration 3's images are not there: $(jq -c '.resources | keys' "$T/s3.json")"
ferry target cleanup 3 >"$T/c3.out" 2>&1 || fail "cleanup 3: $(cat "$T/c3.out")"
ctl state >"$T/s3c.json"
[ "$(jq '[.resources | keys[] | select(test("/(images|disks|instances)/"))] | length' "$T/s3c.json")" = 0 ] ||
  fail "cleanup 3 left: $(jq -c '.resources | keys' "$T/s3c.json")"
jq -e '.resources["projects/ferry-test/global/networks/wave-gcp-prod"]' "$T/s3c.json" >/dev/null ||
  fail "cleanup removed the blueprint's network"
ok "ferry target cleanup of the failed migration deletes its images (and the instance GCE never made), and keeps the network"

# 4. throttling, an outage, and ferry-server killed during the image import
ctl_post faults '{"answers": [{"method": "compute.networks.get", "status": 429, "count": 2},
  {"method": "compute.instances.insert", "status": 503, "count": 1}]}'
ctl_post timing '{"image_seconds": 10}'
grep -v "proto: udp" "$T/bp.yaml" >"$T/bp2.yaml"      # a rule taken out
ferry blueprint apply "$T/bp2.yaml" >/dev/null 2>"$T/err" || fail "apply bp2: $(cat "$T/err")"
mark=$(ctl log | jq length)
ferry migrate gcp01 --blueprint wave-gcp --test >/dev/null || fail "migrate 4"
image_inserted() { ctl log | jq -e 'any(.[]; .method == "compute.images.insert" and .name == "ferry-m4-gcp01-sda")' >/dev/null; }
wait_for 60 image_inserted ||
  fail "migration 4 did not insert its boot image: $(ferry job show 4)"
kill -9 "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true
ctl_post timing '{"image_seconds": 1}'
start_server "$T/state/ferry.db" --lease 3 --convert-workers 2
timeout 120 ferry job watch 4 >"$T/watch-4" 2>&1 || fail "migration 4 did not finish after the restart: $(cat "$T/watch-4")"
grep -q "found GCE image ferry-m4-gcp01-sda (PENDING): waiting for it" "$T/watch-4" ||
  { ferry job show 4 | grep -q "found GCE image ferry-m4-gcp01-sda (PENDING)" ||
      fail "the restarted server did not find the pending image: $(ferry job show 4)"; }
ok "ferry-server killed (-9) during the image import: after the restart the driver finds the pending image and finishes"

ctl log >"$T/log.json"
dups=$(jq -r --argjson m "$mark" '[.[$m:][] | select((.method | endswith(".insert")) and .status == 200) | .method + " " + .name] | group_by(.) | map(select(length > 1)) | .[][0]' "$T/log.json")
[ -z "$dups" ] || fail "created twice: $dups"
[ "$(jq '[.[] | select(.status == 409)] | length' "$T/log.json")" = 0 ] || fail "an insert met alreadyExists: a resource was asked for twice"
[ "$(jq '[.[] | select(.method == "compute.networks.insert" and .status == 200)] | length' "$T/log.json")" = 1 ] ||
  fail "the network was inserted more than once across migrations"
[ "$(jq '[.[] | select(.status == 429 or .status == 503)] | length' "$T/log.json")" = 3 ] || fail "the injected 429/503 were not all met"
[ "$(jq '[.[] | select(.method == "oauth2.token" and .status == 200)] | length' "$T/log.json")" -le 3 ] ||
  fail "the access token is not cached: $(jq -c '[.[] | select(.method == "oauth2.token")]' "$T/log.json")"
ok "nothing was inserted twice (no 409), the network once for both migrations; 429 and 503 were retried; the token is cached"

ctl state >"$T/s4.json"
I='.resources["projects/ferry-test/zones/europe-west1-b/instances/gcp01-test"]'
[ "$(jq -r "$I | [.status, (.machineType | sub(\".*/compute/v1/\"; \"\")), .networkInterfaces[0].subnetwork, .networkInterfaces[0].networkIP, .labels[\"ferry-migration\"], .labels[\"ferry-test\"], .disks[0].boot, .disks[1].source, .metadata.items[0].key] | map(tostring) | join(\" \")" "$T/s4.json")" = \
  "RUNNING projects/ferry-test/zones/europe-west1-b/machineTypes/e2-standard-2 projects/ferry-test/regions/europe-west1/subnetworks/wave-gcp-web 10.40.1.2 4 true true projects/ferry-test/zones/europe-west1-b/disks/ferry-m4-gcp01-sdb serial-port-enable" ] ||
  fail "the instance is not as planned: $(jq -c "$I" "$T/s4.json")"
jq -e '.resources["projects/ferry-test/global/images/ferry-m4-gcp01-sda"].guestOsFeatures | map(.type) | index("UEFI_COMPATIBLE")' "$T/s4.json" >/dev/null ||
  fail "the UEFI host's image lacks UEFI_COMPATIBLE"
for d in sda sdb; do
  want=$( { cat "$T/$d.img"; head -c $(( (1 << 30) - $(stat -c %s "$T/$d.img") )) /dev/zero; } | sha256sum | cut -d' ' -f1)
  got=$(jq -r ".resources[\"projects/ferry-test/global/images/ferry-m4-gcp01-$d\"].x_disk_sha256" "$T/s4.json")
  [ "$got" = "$want" ] || fail "image of $d: GCE read disk.raw with digest $got, the source padded to 1 GiB is $want"
done
api GET /v1/migrations/4 | jq -e '.tasks[] | select(.kind == "create") | .result |
  (.network_ip == "10.40.1.2") and (.instance_id | length > 0) and (.machine_type == "e2-standard-2") and
  (.console | startswith("gcloud compute instances get-serial-port-output gcp01-test --zone=europe-west1-b --project=ferry-test"))' >/dev/null ||
  fail "the create result: $(api GET /v1/migrations/4 | jq -c '.tasks[] | select(.kind == "create") | .result')"
ok "the test instance runs in europe-west1-b as e2-standard-2 on subnetwork wave-gcp-web at an address of its range (the host's 10.40.1.10 stays free), with its data disk, from images GCE read with the source disks' digests (UEFI_COMPATIBLE)"

N='projects/ferry-test/global/networks/wave-gcp-prod'
jq -e ".resources[\"$N\"].autoCreateSubnetworks == false" "$T/s4.json" >/dev/null || fail "the network is not in custom subnet mode"
[ "$(jq -r '[.resources[] | select(.kind == "compute#subnetwork") | .name + "=" + .ipCidrRange] | sort | join(" ")' "$T/s4.json")" = \
  "wave-gcp-data=10.40.2.0/24 wave-gcp-web=10.40.1.0/24" ] || fail "subnetworks: $(jq -c '[.resources[] | select(.kind == "compute#subnetwork")]' "$T/s4.json")"
[ "$(jq -r '[.resources[] | select(.kind == "compute#firewall") | [.direction, (.network | sub(".*/networks/"; "")), .sourceRanges[0], .allowed[0].IPProtocol, (.allowed[0].ports // [] | join(","))] | join(" ")] | sort | join("; ")' "$T/s4.json")" = \
  "INGRESS wave-gcp-prod 0.0.0.0/0 tcp 8000-8099; INGRESS wave-gcp-prod 10.0.0.0/8 tcp 22; INGRESS wave-gcp-prod 10.40.0.0/16 icmp " ] ||
  fail "firewall rules differ from the blueprint's: $(jq -c '[.resources[] | select(.kind == "compute#firewall")]' "$T/s4.json")"
jq -e '[.[] | select(.method == "compute.firewalls.delete" and (.name | test("^wave-gcp-prod-udp-53-")))] | length == 1' "$T/log.json" >/dev/null ||
  fail "the rule taken out of the blueprint was not deleted once"
ok "the network is custom-mode with the blueprint's two subnetworks, and its firewall holds exactly the blueprint's three allow rules (the one taken out of it was deleted)"

# secrets: neither the key nor a token in the server's log or the job
ferry job show 4 >"$T/show4" 2>&1
for f in "$T/server.log" "$T/show4" "$T/watch-4"; do
  ! grep -q "ya29\.\|PRIVATE KEY\|eyJhbGciOi" "$f" || fail "$f holds a token, a JWT or the key"
done
no_cloud_credentials gcp01

ferry target cleanup 4 >"$T/c4.out" 2>&1 || fail "cleanup 4: $(cat "$T/c4.out")"
ctl state >"$T/s4c.json"
[ "$(jq '[.resources | keys[] | select(test("/(images|disks|instances)/"))] | length' "$T/s4c.json")" = 0 ] ||
  fail "cleanup 4 left: $(jq -c '.resources | keys' "$T/s4c.json")"
[ "$(jq '[.resources[] | select(.kind == "compute#network" or .kind == "compute#subnetwork" or .kind == "compute#firewall")] | length' "$T/s4c.json")" = 6 ] ||
  fail "cleanup touched the blueprint's network: $(jq -c '.resources | keys' "$T/s4c.json")"
ok "ferry target cleanup deletes the test instance, its data disk and both images, and keeps the network, subnetworks and firewall rules"

# 5. the migration itself (not a test launch): the host's own address
ferry migrate gcp01 --blueprint wave-gcp >/dev/null || fail "migrate 5"
timeout 120 ferry job watch 5 >"$T/watch-5" 2>&1 || fail "migration 5: $(cat "$T/watch-5")"
[ "$(ctl state | jq -r '.resources["projects/ferry-test/zones/europe-west1-b/instances/gcp01"] | [.status, .networkInterfaces[0].networkIP, (.labels["ferry-test"] // "no"), (.disks | length)] | map(tostring) | join(" ")')" = "RUNNING 10.40.1.10 no 2" ] ||
  fail "instance gcp01: $(ctl state | jq -c '.resources["projects/ferry-test/zones/europe-west1-b/instances/gcp01"]')"
ok "the cutover instance gcp01 runs at the host's static address 10.40.1.10 with both disks"
