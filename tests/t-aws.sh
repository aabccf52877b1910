#!/bin/bash
# The aws target driver against moto's server (EC2: VPCs, subnets, security
# groups, snapshots, images, instances) behind tests/aws_contract.py, which
# checks every request against botocore's own service models, verifies the
# SigV4 signature and answers what moto lacks (the EBS direct APIs as AWS
# documents them; ImportSnapshot).  A two-disk server is cloned to a file
# store; the migration writes each disk as an EBS snapshot straight from
# the chunked image (zero blocks never sent; the blocks received equal the
# source disk), registers the image, creates the blueprint's VPC, subnet
# and security group (exactly its rules) and runs the instance with the
# blueprint's type, subnet and address; /usr/bin/aws, an independent
# client, lists what ferry made.  A server killed with -9 in the middle of
# an upload resumes without making anything twice; a wrong credential
# fails fast naming the variable or the file to check; ferry target
# cleanup removes the instance, image and snapshots and keeps the VPC;
# import: object has EC2 import the converted VMDKs from S3 (moto's).
. "$(dirname "$0")/lib.sh"
requires python3 jq curl /usr/bin/aws
python3 -c 'import moto.server, boto3' 2>/dev/null ||
  { echo "SKIP: moto[server] is not installed (scripts/setup.sh test installs it)"; exit 77; }

MOTO_PORT=${FERRY_AWS_MOTO_PORT:-18610}
CONTRACT_PORT=${FERRY_AWS_CONTRACT_PORT:-18611}
MOTO=http://127.0.0.1:$MOTO_PORT
CONTRACT=http://127.0.0.1:$CONTRACT_PORT
REGION=eu-west-1
# the test's own key: moto's default account; the contract server checks
# every signature with it
export AWS_ACCESS_KEY_ID=AKIAFERRYTEST0000001
export AWS_SECRET_ACCESS_KEY=ferry-test-secret-key-0000000000000001
export AWS_DEFAULT_REGION=$REGION
export AWS_SHARED_CREDENTIALS_FILE=$T/no-credentials AWS_CONFIG_FILE=$T/no-config
unset AWS_SESSION_TOKEN AWS_PROFILE AWS_ENDPOINT_URL_EC2 AWS_ENDPOINT_URL_EBS

python3 -m moto.server -H 127.0.0.1 -p "$MOTO_PORT" >"$T/moto.log" 2>&1 &
MOTO_PID=$!
at_exit "kill $MOTO_PID 2>/dev/null; wait $MOTO_PID 2>/dev/null"
start_contract() {
  python3 "$TOP/tests/aws_contract.py" --port "$CONTRACT_PORT" --moto "$MOTO" \
    --region "$REGION" --log "$T/requests.jsonl" --violations "$T/violations" \
    --blocks "$T/blocks" --hold "$T/hold" >>"$T/contract.log" 2>&1 &
  CONTRACT_PID=$!
  at_exit "kill $CONTRACT_PID 2>/dev/null; wait $CONTRACT_PID 2>/dev/null"
}
start_contract
wait_for 20 curl -s -o /dev/null "$MOTO/moto-api/" || fail "moto_server did not start: $(tail -5 "$T/moto.log")"
wait_for 20 grep -q listening "$T/contract.log" || fail "aws_contract.py did not start: $(tail -5 "$T/contract.log")"
awscli() { /usr/bin/aws --endpoint-url "$MOTO" --region "$REGION" --output json "$@"; }
requests() { jq -c "select(.op == \"$1\")" "$T/requests.jsonl"; }
no_violations() {
  [ ! -s "$T/violations" ] || fail "requests that break botocore's model: $(head -5 "$T/violations")"
}

# two disks: a boot disk with data islands and zero stretches, a data disk
make_disk "$T/sda.img" 24M sparse
make_disk "$T/sdb.img" 3M random
mkdir -p "$T/state"
start_server "$T/state/ferry.db" --lease 3
make_root "$T/root" web01 sda=$((24 << 20)) sdb=$((3 << 20))
start_agent web01 "$(make_agent web01 "$T/root" "sda=$T/sda.img" "sdb=$T/sdb.img")"
wait_for 20 eval 'api GET /v1/hosts | jq -e ".hosts | length == 1" >/dev/null' ||
  fail "the agent did not register: $(cat "$T"/agent-*.log)"

cat > "$T/bp.yaml" <<YAML
name: aws1
provider: aws
region: $REGION
store: file://$T/store
options:
  chunk_size: 1M
endpoints:
  ec2: $CONTRACT
  ebs: $CONTRACT
networks:
  - name: prod
    cidr: 10.20.0.0/16
    allow:
      - {proto: tcp, ports: 22, from: 10.0.0.0/8}
      - {proto: tcp, ports: "8000-8099", from: 0.0.0.0/0}
      - {proto: icmp, from: 10.20.0.0/16}
    subnets:
      - name: web
        cidr: 10.20.1.0/24
      - name: db
        cidr: 10.20.2.0/24
hosts:
  - name: web01
    machine_type: t3.micro
    subnet: web
    ip: 10.20.1.10
    format: raw
YAML
ferry blueprint apply "$T/bp.yaml" >/dev/null || fail "apply: $(ferry blueprint validate "$T/bp.yaml" 2>&1)"

job() { api GET "/v1/migrations/$1"; }
restart() {  # [VAR=value ...]: ferry-server again on its port and database
  local tls=(--http)
  [[ $SERVER_URL == https:* ]] && tls=()
  kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true
  env "$@" ferry-server --listen "127.0.0.1:$SERVER_PORT" --db "$T/state/ferry.db" "${tls[@]}" --lease 3 >>"$T/server.log" 2>&1 &
  SERVER_PID=$!
  at_exit "kill $SERVER_PID 2>/dev/null; wait $SERVER_PID 2>/dev/null"
  wait_for 10 curl -s -o /dev/null "$SERVER_URL/v1/hosts" || fail "ferry-server did not restart: $(tail -5 "$T/server.log")"
}
result() { job "$1" | jq -c '[.tasks[] | select(.kind == "create")][-1].result'; }
# resume: ferry-server killed with -9 while a block upload is in flight
touch "$T/hold"
ferry migrate web01 --blueprint aws1 --test >/dev/null || fail "migrate --test"
wait_for 60 test -e "$T/hold.held" || fail "no block upload of migration 1: $(ferry job show 1)"
kill -9 "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true
rm -f "$T/hold"
restart
timeout 90 ferry job watch 1 >"$T/watch1.out" 2>&1 || fail "migration 1 did not complete after the restart: $(tail -5 "$T/watch1.out")"
awscli ec2 describe-snapshots --owner-ids self --filters Name=tag:ferry-migration,Values=1 | jq -e '.Snapshots | length == 2' >/dev/null ||
  fail "snapshots of migration 1: $(awscli ec2 describe-snapshots --owner-ids self --filters Name=tag:ferry-migration,Values=1)"
[ "$(requests StartSnapshot | jq -s '[.[] | select(.params.ClientToken | startswith("ferry-m1-"))] | length')" -ge 2 ] || fail "StartSnapshot"
awscli ec2 describe-images --owners self --filters Name=name,Values='ferry-m1-*' | jq -e '.Images | length == 1' >/dev/null || fail "images of migration 1"
awscli ec2 describe-instances --filters Name=tag:ferry-migration,Values=1 | jq -e '[.Reservations[].Instances[]] | length == 1' >/dev/null ||
  fail "instances of migration 1"
I2=$(json "$(result 1)" .instance_id)
awscli ec2 describe-instances --instance-ids "$I2" | jq -e '.Reservations[0].Instances[0] | (.Tags | from_entries | .Name == "web01-test") and
  .PrivateIpAddress != "10.20.1.10" and (.PrivateIpAddress | startswith("10.20.1."))' >/dev/null ||
  fail "the test instance's name or address: $(awscli ec2 describe-instances --instance-ids "$I2" | jq -c '.Reservations[0].Instances[0] | {Tags, PrivateIpAddress}')"
no_violations
ok "killed with -9 during a block upload, a restarted server completes the test launch: 2 snapshots, 1 image, 1 instance (web01-test, in subnet web, not on the host's address)"

# cleanup: the test launch's instance, image and snapshots go, the VPC stays
ferry target cleanup 1 >"$T/cleanup.out" 2>&1 || fail "ferry target cleanup 1: $(cat "$T/cleanup.out")"
awscli ec2 describe-instances --instance-ids "$I2" | jq -e '.Reservations[0].Instances[0].State.Name == "terminated"' >/dev/null ||
  fail "instance $I2 is not terminated"
! awscli ec2 describe-images --owners self --filters Name=name,Values='ferry-m1-*' | jq -e '.Images | length > 0' >/dev/null ||
  fail "the image of migration 1 is still there"
awscli ec2 describe-snapshots --owner-ids self --filters Name=tag:ferry-migration,Values=1 | jq -e '.Snapshots | length == 0' >/dev/null ||
  fail "snapshots of migration 1 are still there"
awscli ec2 describe-vpcs --filters Name=tag:ferry-blueprint,Values=aws1 | jq -e '.Vpcs | length == 1' >/dev/null || fail "cleanup deleted the VPC"
no_violations
ok "ferry target cleanup terminates the test instance, deregisters its image, deletes its snapshots, keeps the VPC"
# a rule added by hand is not the blueprint's: the next run revokes it
SG1=$(awscli ec2 describe-security-groups --filters Name=group-name,Values=ferry-aws1-prod | jq -r '.SecurityGroups[0].GroupId')
awscli ec2 authorize-security-group-ingress --group-id "$SG1" --protocol tcp --port 3389 --cidr 0.0.0.0/0 >/dev/null ||
  fail "aws authorize-security-group-ingress"
ferry migrate web01 --blueprint aws1 >/dev/null || fail "migrate"
timeout 90 ferry job watch 2 >"$T/watch2.out" 2>&1 || fail "migration 2 did not complete: $(tail -5 "$T/watch2.out"; tail -5 "$T/server.log")"
R=$(result 2)
INST=$(json "$R" .instance_id) AMI=$(json "$R" .image_id)
SNAP_A=$(json "$R" '.snapshot_ids[0]') SNAP_B=$(json "$R" '.snapshot_ids[1]')
[ "$(json "$R" .private_ip)" = 10.20.1.10 ] || fail "result: $R"
json "$R" .console_output | grep -q "aws ec2 get-console-output .*--instance-id $INST" || fail "console: $R"
no_violations

# the blocks the EBS API received are the source disk, zero blocks never sent
python3 - "$T/blocks" "$SNAP_A" "$T/sda.img" "$SNAP_B" "$T/sdb.img" <<'PY' || fail "the snapshots differ from the source disks"
import os, sys
B = 524288
root = sys.argv[1]
for snap, src in zip(sys.argv[2::2], sys.argv[3::2]):
    data = open(src, "rb").read()
    want = {i // B for i in range(0, len(data), B) if data[i:i + B].strip(b"\0")}
    got = {int(n) for n in os.listdir(os.path.join(root, snap))}
    if got != want:
        sys.exit(f"{snap}: blocks {sorted(got)} sent, non-zero blocks of {src}: {sorted(want)}")
    for i in got:
        blk = open(os.path.join(root, snap, str(i)), "rb").read()
        if blk != data[i * B:(i + 1) * B].ljust(B, b"\0"):
            sys.exit(f"{snap}: block {i} differs from {src}")
    print(f"  {snap}: {len(got)} blocks of {-(-len(data) // B)} sent, each equal to {src}")
PY
requests CompleteSnapshot | tail -1 | jq -e 'select(.params.ChecksumAggregationMethod == "LINEAR" and .params.ChecksumAlgorithm == "SHA256")' >/dev/null ||
  fail "CompleteSnapshot without the linear checksum: $(requests CompleteSnapshot)"
ok "each disk became an EBS snapshot through the EBS direct APIs: only non-zero 512 KiB blocks, each with its SHA-256, equal to the source"

# what exists, listed by the aws CLI from moto
awscli ec2 describe-vpcs --filters Name=tag:ferry-blueprint,Values=aws1 >"$T/vpcs.json" || fail "aws describe-vpcs"
[ "$(jq '.Vpcs | length' "$T/vpcs.json")" = 1 ] || fail "VPCs of aws1: $(cat "$T/vpcs.json")"
VPC=$(jq -r '.Vpcs[0].VpcId' "$T/vpcs.json")
jq -e '.Vpcs[0] | .CidrBlock == "10.20.0.0/16" and (.Tags | from_entries | .Name == "prod")' "$T/vpcs.json" >/dev/null ||
  fail "VPC: $(cat "$T/vpcs.json")"
awscli ec2 describe-subnets --filters "Name=vpc-id,Values=$VPC" >"$T/subnets.json"
[ "$(jq -c '[.Subnets[] | .CidrBlock] | sort' "$T/subnets.json")" = '["10.20.1.0/24","10.20.2.0/24"]' ] ||
  fail "subnets: $(cat "$T/subnets.json")"
SUBNET=$(jq -r '.Subnets[] | select(.CidrBlock == "10.20.1.0/24") | .SubnetId' "$T/subnets.json")
awscli ec2 describe-instances --instance-ids "$INST" >"$T/inst.json" || fail "aws describe-instances"
jq -e --arg s "$SUBNET" --arg a "$AMI" '.Reservations[0].Instances[0] | .InstanceType == "t3.micro" and .SubnetId == $s and
  .PrivateIpAddress == "10.20.1.10" and .ImageId == $a and .State.Name == "running" and
  (.Tags | from_entries | .Name == "web01" and .["ferry-migration"] == "2")' "$T/inst.json" >/dev/null ||
  fail "instance: $(jq -c '.Reservations[0].Instances[0] | {InstanceType, SubnetId, PrivateIpAddress, ImageId, State, Tags}' "$T/inst.json")"
SG=$(jq -r '.Reservations[0].Instances[0].SecurityGroups[0].GroupId' "$T/inst.json")
awscli ec2 describe-security-groups --group-ids "$SG" >"$T/sg.json" || fail "aws describe-security-groups $SG"
[ "$(jq -c '[.SecurityGroups[0].IpPermissions[] | [.IpProtocol, .FromPort, .ToPort, .IpRanges[0].CidrIp]] | sort' "$T/sg.json")" = \
  '[["icmp",-1,-1,"10.20.0.0/16"],["tcp",22,22,"10.0.0.0/8"],["tcp",8000,8099,"0.0.0.0/0"]]' ] ||
  fail "security group rules: $(jq -c '.SecurityGroups[0].IpPermissions' "$T/sg.json")"
awscli ec2 describe-images --image-ids "$AMI" | jq -e '.Images | length == 1' >/dev/null || fail "image $AMI"
requests RegisterImage | tail -1 | jq -e --arg a "$SNAP_A" --arg b "$SNAP_B" '.params | .Architecture == "x86_64" and .EnaSupport == "true" and
  .BootMode == "legacy-bios" and .RootDeviceName == "/dev/xvda" and .["BlockDeviceMapping.1.DeviceName"] == "/dev/xvda" and
  .["BlockDeviceMapping.1.Ebs.SnapshotId"] == $a and .["BlockDeviceMapping.2.Ebs.SnapshotId"] == $b' >/dev/null ||
  fail "RegisterImage: $(requests RegisterImage)"
requests RunInstances | tail -1 | jq -e '.params.ClientToken | startswith("ferry-m2-")' >/dev/null || fail "RunInstances without a client token"
no_violations
ok "the VPC (tagged, made once for the blueprint and found again), both subnets, a security group with exactly the blueprint's rules (a hand-added one revoked), the image (x86_64, ENA, BIOS, boot disk then data disk) and the instance (t3.micro, subnet web, 10.20.1.10) exist"

# a wrong credential fails fast, naming what to check
fails_fast() {  # MIGRATION NEEDLE: the migration fails within 30 s, its error holding NEEDLE
  local t0=$SECONDS
  ! timeout 60 ferry job watch "$1" >"$T/watch$1.out" 2>&1 || fail "migration $1 succeeded with a wrong key"
  [ $((SECONDS - t0)) -lt 30 ] || fail "a wrong key took $((SECONDS - t0)) s to fail"
  job "$1" | jq -r .error | grep -qF -- "$2" || fail "the error of migration $1 lacks '$2': $(job "$1" | jq -r .error)"
}
restart AWS_ACCESS_KEY_ID=AKIAWRONGWRONGWRONG1 AWS_SECRET_ACCESS_KEY=wrong
ferry migrate web01 --blueprint aws1 >/dev/null || fail "migrate 3"
fails_fast 3 "check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (environment)"
job 3 | jq -r .error | grep -q AuthFailure || fail "EC2's code is not in the error: $(job 3 | jq -r .error)"
printf '[default]\naws_access_key_id = AKIAWRONGWRONGWRONG2\naws_secret_access_key = wrong\n' >"$T/credentials"
chmod 600 "$T/credentials"
restart -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY AWS_SHARED_CREDENTIALS_FILE="$T/credentials"
ferry migrate web01 --blueprint aws1 >/dev/null || fail "migrate 4"
fails_fast 4 "profile [default] of $T/credentials"
ok "a wrong key fails the migration within seconds with EC2's AuthFailure, naming the variables or the credentials file to check"


# import: object: EC2 imports each converted VMDK from S3 (moto's S3 holds
# them; the contract server answers ImportSnapshot, which moto does not
# implement, after checking the object is there); a blueprint without
# networks lands in the default VPC
restart AWS_ENDPOINT_URL_S3="$MOTO"
awscli s3 mb s3://ferry-obj >/dev/null || fail "aws s3 mb"
cat > "$T/bp-obj.yaml" <<YAML
name: aws-obj
provider: aws
region: $REGION
store: s3://ferry-obj/m
import: object
options:
  chunk_size: 1M
endpoints:
  ec2: $CONTRACT
  ebs: $CONTRACT
hosts:
  - name: web01
    machine_type: t3.small
    format: vmdk
YAML
ferry blueprint apply "$T/bp-obj.yaml" >/dev/null || fail "apply: $(ferry blueprint validate "$T/bp-obj.yaml" 2>&1)"
blocks_before=$(requests PutSnapshotBlock | wc -l)
ferry migrate web01 --blueprint aws-obj >/dev/null || fail "migrate 5"
timeout 90 ferry job watch 5 >"$T/watch5.out" 2>&1 || fail "migration 5 did not complete: $(tail -5 "$T/watch5.out")"
R5=$(result 5)
awscli s3 ls s3://ferry-obj/m/web01/ | grep -q " sda.vmdk$" || fail "no sda.vmdk in S3"
[ "$(requests ImportSnapshot | jq -s -c '[.[].params | [.["DiskContainer.Format"], .["DiskContainer.UserBucket.S3Bucket"], .["DiskContainer.UserBucket.S3Key"]]] | sort')" = \
  '[["VMDK","ferry-obj","m/web01/sda.vmdk"],["VMDK","ferry-obj","m/web01/sdb.vmdk"]]' ] ||
  fail "ImportSnapshot requests: $(requests ImportSnapshot)"
[ "$(requests PutSnapshotBlock | wc -l)" = "$blocks_before" ] || fail "import: object sent blocks"
requests RegisterImage | tail -1 | jq -e --arg a "$(json "$R5" '.snapshot_ids[0]')" '.params["BlockDeviceMapping.1.Ebs.SnapshotId"] == $a' >/dev/null ||
  fail "the image is not on the imported snapshot: $(requests RegisterImage | tail -1)"
requests RunInstances | tail -1 | jq -e '.params | has("SubnetId") | not' >/dev/null || fail "RunInstances named a subnet"
awscli ec2 describe-instances --instance-ids "$(json "$R5" .instance_id)" |
  jq -e '.Reservations[0].Instances[0] | .InstanceType == "t3.small" and .State.Name == "running"' >/dev/null || fail "instance of migration 5"
no_violations
ok "import: object imports each converted VMDK from S3 with ImportSnapshot (no block sent) and boots the image in the default VPC"

# the server signed hundreds of requests with the key: it never logs it
! grep -aqF "$AWS_SECRET_ACCESS_KEY" "$T/server.log" "$T"/watch*.out || fail "the secret key is in a log"
ok "the secret key appears in no log of the server or job output"
