/* azure.c - Microsoft Azure.  Rules (checked 2026): uploads are fixed
 * VHDs with a whole number of MiB; a Gen1 VM boots BIOS, from an MBR
 * disk of at most 2040 GiB, a Gen2 VM UEFI (the driver makes the disk
 * hyperVGeneration V2 for a UEFI host); managed data disks up to 32 TiB; the guest
 * needs the Hyper-V drivers (hv_vmbus, hv_storvsc, hv_netvsc) in its
 * initramfs.
 *
 * Driver (docs/TARGETS.md, "azure"): the blueprint's network in resource
 * group ferry-BLUEPRINT (a VNet with its subnets, one NSG holding exactly
 * the blueprint's allow rules, on every subnet), a NIC with the host's
 * static address, a managed disk per converted disk (Upload: Put Page of
 * the fixed VHD's data pages into the disk's write SAS; or Import of the
 * page blob ferry-convert wrote), and the VM attaching them, with boot
 * diagnostics.  Every PUT names its resource after the blueprint, or
 * after the instance for what belongs to the migration, so a re-run finds
 * what an earlier run made (ARM's PUT of the same name is the same
 * resource); a disk is looked for before it is made, and its state says
 * whether its upload is still to do (ReadyToUpload, ActiveUpload) or
 * done. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/cleanup.h"
#include "util/error.h"
#include "store/store.h"
#include "azure_arm.h"
#include "azure_upload.h"
#include "cloud.h"
#include "target.h"
#include "../tasks.h"

#define LRO_NETWORK_SECONDS 900
#define LRO_DISK_SECONDS 3600
#define LRO_VM_SECONDS 1800
#define RUNNING_SECONDS 900
/* the disk's write access lasts this long (beginGetAccess
 * durationInSeconds): long enough for a large upload; endGetAccess ends
 * it as soon as the upload is done */
#define UPLOAD_ACCESS_SECONDS 86400
/* NSG rules: Azure evaluates lower priorities first (100..4096) */
#define NSG_PRIORITY_FIRST 100
#define NSG_PRIORITY_STEP 10

static const char *const formats[] = { "vhd", NULL };
static const char *const storage[] = { "hv_vmbus", "hv_storvsc", NULL };
static const char *const net[] = { "hv_netvsc", NULL };
static const char *const endpoint_keys[] = { "arm", "login", NULL };
static const char *const imports[] = { "upload", "object", NULL };

struct az {
  struct arm arm;
  struct task_ctx *t;
  json_t *plan, *host;
  const char *location, *inst, *mig;
  char *rg;                   /* ferry-BLUEPRINT */
  json_t *tags;               /* the plan's: on what the migration makes */
  json_t *bp_tags;            /* {ferry-blueprint}: on what hosts share */
};

static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...)
{
  va_list ap;
  char *s;
  int n;

  va_start(ap, f);
  n = vasprintf(&s, f, ap);
  va_end(ap);
  if (n == -1) {
    ferry_error("out of memory");
    return NULL;
  }
  return s;
}

/* The ARM path of a resource of az's resource group, with api-version. */
static char *res_path(struct az *z, const char *type, const char *name,
                      const char *api)
{
  return fmt("/subscriptions/%s/resourceGroups/%s/providers/%s/%s"
             "?api-version=%s", z->arm.sub, z->rg, type, name, api);
}

static const char *str_at(json_t *j, const char *a, const char *b)
{
  json_t *v = json_object_get(j, a);

  return json_string_value(b ? json_object_get(v, b) : v);
}

/* A resource found by name belongs to this migration, or is an error
 * naming who made it. */
static int ours(struct az *z, json_t *res, const char *what)
{
  const char *m = str_at(json_object_get(res, "tags"), "ferry-migration",
                         NULL);

  if (m && strcmp(m, z->mig) == 0)
    return 0;
  ferry_error("Azure %s already exists in resource group %s and was not "
              "made by this migration (%s%s): delete it or run "
              "ferry target cleanup on the migration that made it", what,
              z->rg, m ? "ferry-migration " : "no ferry-migration tag",
              m ? m : "");
  return -1;
}

static int az_open(struct az *z, struct task_ctx *t, json_t *plan)
{
  const char *bp = cloud_plan_str(plan, "blueprint");

  *z = (struct az){ .t = t, .plan = plan,
                    .host = json_object_get(plan, "host"),
                    .location = cloud_plan_str(plan, "region"),
                    .inst = cloud_plan_str(plan, "instance_name"),
                    .tags = json_object_get(plan, "tags") };
  z->mig = str_at(z->tags, "ferry-migration", NULL);
  if (bp == NULL || z->location == NULL || z->inst == NULL ||
      z->mig == NULL) {
    ferry_error("the migration's plan lacks its blueprint, region, "
                "instance_name or tags: this server's plan is older than "
                "its azure driver");
    return -1;
  }
  if ((z->rg = fmt("ferry-%s", bp)) == NULL ||
      (z->bp_tags = json_pack("{ss}", "ferry-blueprint", bp)) == NULL) {
    ferry_error("out of memory");
    return -1;
  }
  if (arm_open(&z->arm, t, plan) == -1)
    return -1;
  return 0;
}

static void az_close(struct az *z)
{
  arm_close(&z->arm);
  free(z->rg);
  json_decref(z->bp_tags);
}

/* ---- the blueprint's network ---- */

/* The NSG's rules: the blueprint's allow entries, in their order, and
 * nothing else (Azure's default rules deny other inbound traffic from
 * the Internet). */
static json_t *nsg_rules(json_t *network, const char *bp)
{
  json_t *rules = json_array(), *a;
  size_t i;

  json_array_foreach(json_object_get(network, "allow"), i, a) {
    const char *proto = str_at(a, "proto", NULL);
    const char *from = str_at(a, "from", NULL);
    json_t *ports = json_object_get(a, "ports");
    char pbuf[32], desc[160], rname[32];
    const char *p = "*", *azp;

    if (proto == NULL || strcmp(proto, "tcp") == 0)
      azp = "Tcp";
    else if (strcmp(proto, "udp") == 0)
      azp = "Udp";
    else
      azp = "Icmp";
    if (json_is_integer(ports)) {
      snprintf(pbuf, sizeof pbuf, "%" JSON_INTEGER_FORMAT,
               json_integer_value(ports));
      p = pbuf;
    } else if (json_is_string(ports)) {
      p = json_string_value(ports);
    }
    if (strcmp(azp, "Icmp") == 0)
      p = "*";
    snprintf(desc, sizeof desc, "ferry blueprint %s, allow rule %zu", bp,
             i + 1);
    snprintf(rname, sizeof rname, "allow-%zu", i + 1);
    if (json_array_append_new(rules, json_pack(
          "{s:s s:{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:s}}",
          "name", rname,
          "properties", "description", desc, "protocol", azp,
          "sourcePortRange", "*", "destinationPortRange", p,
          "sourceAddressPrefix", from ? from : "*",
          "destinationAddressPrefix", "*", "access", "Allow",
          "priority", (int)(NSG_PRIORITY_FIRST + NSG_PRIORITY_STEP * i),
          "direction", "Inbound")) == -1) {
      json_decref(rules);
      ferry_error("out of memory");
      return NULL;
    }
  }
  return rules;
}

/* Resource group, NSG, VNet with its subnets: *subnet_id is host.subnet's
 * (caller frees). */
static int network_setup(struct az *z, char **subnet_id)
{
  json_t *network = json_object_get(z->plan, "network");
  const char *nname = str_at(network, "name", NULL);
  const char *cidr = str_at(network, "cidr", NULL);
  const char *want = str_at(z->host, "subnet", NULL);
  const char *bp = cloud_plan_str(z->plan, "blueprint");
  CLEANUP_FREE char *path = NULL, *nsg_name = NULL;
  CLEANUP_JSON json_t *body = NULL, *res = NULL, *subnets = NULL;
  json_t *sn;
  const char *nsg_id, *id;
  size_t i;
  int rc = -1;

  *subnet_id = NULL;
  if (nname == NULL || cidr == NULL || want == NULL) {
    ferry_error("an Azure VM needs a subnet: give host %s a subnet of one "
                "of the blueprint's networks (docs/BLUEPRINTS.md)",
                z->inst);
    return -1;
  }
  cloud_network_lock();
  task_ctx_event(z->t, "Azure: resource group %s, network %s in %s", z->rg,
                 nname, z->location);

  path = fmt("/subscriptions/%s/resourcegroups/%s?api-version="
             ARM_API_RESOURCES, z->arm.sub, z->rg);
  body = json_pack("{ss sO}", "location", z->location, "tags", z->bp_tags);
  if (path == NULL || body == NULL ||
      arm_call(&z->arm, "PUT resource group", "PUT", path, body, 0,
               LRO_NETWORK_SECONDS, &res) == -1)
    goto out;
  if ((id = str_at(res, "id", NULL)) == NULL ||
      cloud_ledger_put(z->t, "resource_group", z->rg, id,
                       CLOUD_BLUEPRINT) == -1)
    goto ledger;

  free(path);
  json_decref(body);
  json_decref(res);
  res = NULL;
  nsg_name = fmt("%s-nsg", nname);
  path = nsg_name ? res_path(z, "Microsoft.Network/networkSecurityGroups",
                             nsg_name, ARM_API_NETWORK) : NULL;
  body = json_pack("{ss sO s{so*}}", "location", z->location, "tags",
                   z->bp_tags, "properties", "securityRules",
                   nsg_rules(network, bp));
  if (path == NULL || body == NULL ||
      arm_call(&z->arm, "PUT networkSecurityGroups", "PUT", path, body, 0,
               LRO_NETWORK_SECONDS, &res) == -1)
    goto out;
  if ((nsg_id = str_at(res, "id", NULL)) == NULL ||
      cloud_ledger_put(z->t, "nsg", nsg_name, nsg_id, CLOUD_BLUEPRINT) == -1)
    goto ledger;

  subnets = json_array();
  json_array_foreach(json_object_get(network, "subnets"), i, sn)
    json_array_append_new(subnets, json_pack(
      "{ss s{ss s{ss}}}", "name", str_at(sn, "name", NULL), "properties",
      "addressPrefix", str_at(sn, "cidr", NULL), "networkSecurityGroup",
      "id", nsg_id));
  free(path);
  json_decref(body);
  path = res_path(z, "Microsoft.Network/virtualNetworks", nname,
                  ARM_API_NETWORK);
  body = json_pack("{ss sO s{s{s[s]} sO}}", "location", z->location, "tags",
                   z->bp_tags, "properties", "addressSpace",
                   "addressPrefixes", cidr, "subnets", subnets);
  json_decref(res);
  res = NULL;
  if (path == NULL || body == NULL ||
      arm_call(&z->arm, "PUT virtualNetworks", "PUT", path, body, 0,
               LRO_NETWORK_SECONDS, &res) == -1)
    goto out;
  if ((id = str_at(res, "id", NULL)) == NULL ||
      cloud_ledger_put(z->t, "vnet", nname, id, CLOUD_BLUEPRINT) == -1)
    goto ledger;
  json_array_foreach(json_object_get(json_object_get(res, "properties"),
                                     "subnets"), i, sn) {
    const char *name = str_at(sn, "name", NULL);
    CLEANUP_FREE char *key = fmt("%s/%s", nname, name ? name : "");

    if (name == NULL || (id = str_at(sn, "id", NULL)) == NULL ||
        key == NULL ||
        cloud_ledger_put(z->t, "subnet", key, id, CLOUD_BLUEPRINT) == -1)
      goto ledger;
    if (strcmp(name, want) == 0 && (*subnet_id = strdup(id)) == NULL)
      goto ledger;
  }
  if (*subnet_id == NULL) {
    ferry_error("Azure VNet %s has no subnet %s after its PUT", nname, want);
    goto out;
  }
  rc = 0;
  goto out;
ledger:
  if (!ferry_error_pending())
    ferry_error("Azure answered a PUT in resource group %s without the "
                "resource's id", z->rg);
out:
  cloud_network_unlock();
  return rc;
}

/* ---- the instance's NIC ---- */

static int nic_setup(struct az *z, const char *subnet_id, char **nic_id,
                     char **ip)
{
  CLEANUP_FREE char *name = fmt("%s-nic", z->inst), *path = NULL;
  CLEANUP_JSON json_t *res = NULL, *body = NULL;
  const char *want = str_at(z->host, "ip", NULL), *id, *got, *ps;
  json_t *cfg;
  long st;

  if (name == NULL ||
      (path = res_path(z, "Microsoft.Network/networkInterfaces", name,
                       ARM_API_NETWORK)) == NULL)
    return -1;
  st = arm_call(&z->arm, "GET networkInterfaces", "GET", path, NULL, 1, 0,
                &res);
  if (st == -1)
    return -1;
  if (st == 200 && ours(z, res, "NIC") == -1)
    return -1;
  ps = str_at(json_object_get(res, "properties"), "provisioningState",
              NULL);
  if (st == 404 || ps == NULL || strcmp(ps, "Succeeded") != 0) {
    json_decref(res);
    res = NULL;
    body = json_pack("{ss sO s{s[{ss s{s{ss} ss s:s* sb}}]}}",
                     "location", z->location, "tags", z->tags,
                     "properties", "ipConfigurations", "name", "ipconfig1",
                     "properties", "subnet", "id", subnet_id,
                     "privateIPAllocationMethod", want ? "Static" : "Dynamic",
                     "privateIPAddress", want, "primary", 1);
    if (body == NULL) {
      ferry_error("out of memory");
      return -1;
    }
    task_ctx_event(z->t, "Azure: NIC %s%s%s", name, want ? " at " : "",
                   want ? want : "");
    if (arm_call(&z->arm, "PUT networkInterfaces", "PUT", path, body, 0,
                 LRO_NETWORK_SECONDS, &res) == -1)
      return -1;
  }
  if ((id = str_at(res, "id", NULL)) == NULL) {
    ferry_error("Azure answered the NIC %s without its id", name);
    return -1;
  }
  if (cloud_ledger_put(z->t, "nic", name, id, CLOUD_MIGRATION) == -1)
    return -1;
  cfg = json_array_get(json_object_get(json_object_get(res, "properties"),
                                       "ipConfigurations"), 0);
  got = str_at(json_object_get(cfg, "properties"), "privateIPAddress", NULL);
  if (want && (got == NULL || strcmp(got, want) != 0)) {
    ferry_error("Azure NIC %s has address %s, not the blueprint's %s",
                name, got ? got : "(none)", want);
    return -1;
  }
  *nic_id = strdup(id);
  *ip = got ? strdup(got) : NULL;
  if (*nic_id == NULL) {
    ferry_error("out of memory");
    return -1;
  }
  return 0;
}

/* ---- disks ---- */

/* The blob URL ferry-convert's page blob has (azure://CONTAINER/KEY in
 * this server's store account): a presigned URL without its SAS. */
static char *blob_url(const char *out)
{
  const char *slash = strrchr(out, '/');
  CLEANUP_FREE char *parent = NULL;
  struct store *s;
  char *url = NULL, *q;

  if (strncmp(out, "azure://", 8) != 0 || slash == NULL) {
    ferry_error("import: object needs the converted VHD in an azure:// "
                "store, not %s: use import: upload", out);
    return NULL;
  }
  if ((parent = strndup(out, (size_t)(slash - out))) == NULL) {
    ferry_error("out of memory");
    return NULL;
  }
  if ((s = store_open(parent)) == NULL)
    return NULL;
  url = store_presign(s, slash + 1, "GET", 60);
  store_close(s);
  if (url && (q = strchr(url, '?')) != NULL)
    *q = '\0';
  return url;
}

static char *storage_account_id(struct az *z)
{
  const char *id = getenv("AZURE_STORAGE_ACCOUNT_ID");
  const char *acct = getenv("AZURE_STORAGE_ACCOUNT");

  if (id && *id)
    return strdup(id);
  if (acct == NULL || *acct == '\0') {
    ferry_error("import: object needs the store's storage account: set "
                "AZURE_STORAGE_ACCOUNT_ID (its ARM id) or "
                "AZURE_STORAGE_ACCOUNT");
    return NULL;
  }
  return fmt("/subscriptions/%s/resourceGroups/%s/providers/"
             "Microsoft.Storage/storageAccounts/%s", z->arm.sub, z->rg,
             acct);
}

static json_t *disk_body(struct az *z, json_t *disk, int boot,
                         const char *import, uint64_t size)
{
  const char *out = str_at(disk, "output", NULL);
  const char *bm = cloud_plan_str(z->plan, "boot_mode");
  json_t *body, *props, *cd;

  if (strcmp(import, "object") == 0) {
    CLEANUP_FREE char *uri = blob_url(out), *acct = NULL;

    if (uri == NULL || (acct = storage_account_id(z)) == NULL)
      return NULL;
    cd = json_pack("{ss ss ss}", "createOption", "Import", "sourceUri", uri,
                   "storageAccountId", acct);
  } else {
    cd = json_pack("{ss sI}", "createOption", "Upload", "uploadSizeBytes",
                   (json_int_t)size);
  }
  props = json_pack("{so}", "creationData", cd);
  if (props && boot) {
    json_object_set_new(props, "osType", json_string("Linux"));
    json_object_set_new(props, "hyperVGeneration",
                        json_string(bm && strcmp(bm, "uefi") == 0 ? "V2"
                                                                  : "V1"));
  }
  body = json_pack("{ss sO so}", "location", z->location, "tags", z->tags,
                   "properties", props);
  if (body == NULL)
    ferry_error("out of memory");
  return body;
}

static int disk_upload(struct az *z, const char *name, const char *path_of,
                       const char *out, uint64_t size, int resume)
{
  CLEANUP_FREE char *begin = NULL, *end = NULL;
  CLEANUP_JSON json_t *body = NULL, *res = NULL;
  struct azure_upload_stats st;
  const char *sas;
  char *sas_copy;
  int rc;

  begin = fmt("%s/beginGetAccess?api-version=" ARM_API_DISKS, path_of);
  end = fmt("%s/endGetAccess?api-version=" ARM_API_DISKS, path_of);
  body = json_pack("{ss si}", "access", "Write", "durationInSeconds",
                   UPLOAD_ACCESS_SECONDS);
  if (begin == NULL || end == NULL || body == NULL)
    return -1;
  if (arm_call(&z->arm, "POST disks beginGetAccess", "POST", begin, body, 0,
               LRO_DISK_SECONDS, &res) == -1)
    return -1;
  if ((sas = str_at(res, "accessSAS", NULL)) == NULL) {
    ferry_error("Azure beginGetAccess of disk %s answered no accessSAS",
                name);
    return -1;
  }
  task_ctx_event(z->t, "Azure: uploading disk %s (%" PRIu64 " MiB fixed "
                 "VHD, its data pages only)%s", name, size >> 20,
                 resume ? ", resuming an earlier upload" : "");
  sas_copy = strdup(sas);
  if (sas_copy == NULL) {
    ferry_error("out of memory");
    return -1;
  }
  rc = azure_upload(z->t, name, sas_copy, out, size, resume, &st);
  explicit_bzero(sas_copy, strlen(sas_copy));
  free(sas_copy);
  if (rc == -1)
    return -1;
  task_ctx_event(z->t, "Azure: disk %s uploaded: %" PRIu64 " MiB of data "
                 "in %" PRIu64 " Put Page calls%s", name, st.sent >> 20,
                 st.requests, st.already ? " (the rest was there from an "
                 "earlier run)" : "");
  if (arm_call(&z->arm, "POST disks endGetAccess", "POST", end, NULL, 0,
               LRO_DISK_SECONDS, NULL) == -1)
    return -1;
  return 0;
}

/* The managed disk for plan disk i: made (or found), written, and its id
 * appended to ids. */
static int disk_setup(struct az *z, json_t *disk, size_t i, size_t n,
                      const char *import, json_t *ids)
{
  const char *dn = str_at(disk, "name", NULL);
  const char *out = str_at(disk, "output", NULL);
  CLEANUP_FREE char *name = NULL, *path = NULL, *base = NULL;
  CLEANUP_JSON json_t *res = NULL, *body = NULL;
  const char *state, *id;
  uint64_t size = 0;
  long st;

  if (dn == NULL || out == NULL) {
    ferry_error("the plan's disk %zu has no name or converted output", i);
    return -1;
  }
  if ((name = fmt("%s-%s", z->inst, dn)) == NULL ||
      (path = res_path(z, "Microsoft.Compute/disks", name,
                       ARM_API_DISKS)) == NULL ||
      (base = strndup(path, strcspn(path, "?"))) == NULL)
    return -1;
  st = arm_call(&z->arm, "GET disks", "GET", path, NULL, 1, 0, &res);
  if (st == -1 || (st == 200 && ours(z, res, "disk") == -1))
    return -1;
  if (strcmp(import, "upload") == 0 &&
      azure_object_size(out, &size) == -1)
    return -1;
  if (st == 404) {
    json_decref(res);
    res = NULL;
    task_ctx_event(z->t, "Azure: disk %zu of %zu: %s (%s)", i + 1, n, name,
                   strcmp(import, "upload") == 0 ? "upload" : "import of "
                   "the converted page blob");
    if ((body = disk_body(z, disk, i == 0, import, size)) == NULL ||
        arm_call(&z->arm, "PUT disks", "PUT", path, body, 0,
                 LRO_DISK_SECONDS, &res) == -1)
      return -1;
  }
  if ((id = str_at(res, "id", NULL)) == NULL) {
    ferry_error("Azure answered disk %s without its id", name);
    return -1;
  }
  if (cloud_ledger_put(z->t, "disk", name, id, CLOUD_MIGRATION) == -1)
    return -1;
  state = str_at(json_object_get(res, "properties"), "diskState", NULL);
  if (state && (strcmp(state, "ReadyToUpload") == 0 ||
                strcmp(state, "ActiveUpload") == 0)) {
    if (strcmp(import, "upload") != 0) {
      ferry_error("Azure disk %s waits for an upload, but the blueprint "
                  "says import: %s: run ferry target cleanup on this "
                  "migration first", name, import);
      return -1;
    }
    if (disk_upload(z, name, base, out, size,
                    strcmp(state, "ActiveUpload") == 0) == -1)
      return -1;
  } else if (st == 200) {
    task_ctx_event(z->t, "Azure: disk %s is there already (%s)", name,
                   state ? state : "no state");
  }
  json_array_append_new(ids, json_string(id));
  return 0;
}

/* ---- the VM ---- */

static json_t *vm_body(struct az *z, json_t *ids, const char *nic_id)
{
  const char *size = str_at(z->host, "machine_type", NULL);
  json_t *data = json_array(), *body;
  size_t i;

  for (i = 1; i < json_array_size(ids); i++)
    json_array_append_new(data, json_pack(
      "{si ss s{sO}}", "lun", (int)(i - 1), "createOption", "Attach",
      "managedDisk", "id", json_array_get(ids, i)));
  body = json_pack(
    "{ss sO s{s{ss} s{s{ss ss s{sO}} so} s{s[{ss s{sb}}]} s{s{sb}}}}",
    "location", z->location, "tags", z->tags, "properties",
    "hardwareProfile", "vmSize", size ? size : "",
    "storageProfile", "osDisk", "osType", "Linux", "createOption", "Attach",
    "managedDisk", "id", json_array_get(ids, 0), "dataDisks", data,
    "networkProfile", "networkInterfaces", "id", nic_id, "properties",
    "primary", 1,
    "diagnosticsProfile", "bootDiagnostics", "enabled", 1);
  if (body == NULL)
    ferry_error("out of memory");
  return body;
}

struct running {
  struct az *z;
  const char *path;
  json_t *view;
};

static int running_check(void *opaque, unsigned *next_ms)
{
  struct running *r = opaque;
  json_t *s;
  size_t i;

  (void)next_ms;
  json_decref(r->view);
  r->view = NULL;
  if (arm_call(&r->z->arm, "GET virtualMachines instanceView", "GET",
               r->path, NULL, 0, 0, &r->view) == -1)
    return -1;
  json_array_foreach(json_object_get(r->view, "statuses"), i, s) {
    const char *code = str_at(s, "code", NULL);

    if (code && strcmp(code, "PowerState/running") == 0)
      return 1;
    if (code && (strcmp(code, "PowerState/stopped") == 0 ||
                 strcmp(code, "PowerState/deallocated") == 0)) {
      ferry_error("Azure VM %s is %s, not running", r->z->inst, code + 11);
      return -1;
    }
  }
  return 0;
}

static json_t *vm_setup(struct az *z, json_t *ids, const char *nic_id,
                        const char *ip)
{
  CLEANUP_FREE char *path = NULL, *view = NULL;
  CLEANUP_JSON json_t *res = NULL, *body = NULL;
  struct running run = { .z = z };
  const char *id, *pstate;
  json_t *result = NULL, *props;
  long st;

  if ((path = res_path(z, "Microsoft.Compute/virtualMachines", z->inst,
                       ARM_API_COMPUTE)) == NULL)
    return NULL;
  st = arm_call(&z->arm, "GET virtualMachines", "GET", path, NULL, 1, 0,
                &res);
  if (st == -1 || (st == 200 && ours(z, res, "VM") == -1))
    return NULL;
  pstate = str_at(json_object_get(res, "properties"), "provisioningState",
                  NULL);
  if (st == 404 || pstate == NULL || strcmp(pstate, "Succeeded") != 0) {
    json_decref(res);
    res = NULL;
    task_ctx_event(z->t, "Azure: VM %s (%s), %zu disk%s", z->inst,
                   str_at(z->host, "machine_type", NULL),
                   json_array_size(ids), json_array_size(ids) == 1 ? ""
                                                                   : "s");
    if ((body = vm_body(z, ids, nic_id)) == NULL ||
        arm_call(&z->arm, "PUT virtualMachines", "PUT", path, body, 0,
                 LRO_VM_SECONDS, &res) == -1)
      return NULL;
  }
  if ((id = str_at(res, "id", NULL)) == NULL) {
    ferry_error("Azure answered the VM %s without its id", z->inst);
    return NULL;
  }
  if (cloud_ledger_put(z->t, "vm", z->inst, id, CLOUD_MIGRATION) == -1)
    return NULL;
  view = fmt("/subscriptions/%s/resourceGroups/%s/providers/"
             "Microsoft.Compute/virtualMachines/%s/instanceView"
             "?api-version=" ARM_API_COMPUTE, z->arm.sub, z->rg, z->inst);
  run.path = view;
  if (view == NULL ||
      cloud_wait(z->t, "the Azure VM to run", RUNNING_SECONDS, 5000,
                 running_check, &run) == -1) {
    json_decref(run.view);
    return NULL;
  }
  props = json_object_get(res, "properties");
  result = json_pack(
    "{ss ss* ss ss ss ss* sO ss ss* s{s[s]}}",
    "instance_id", id, "vm_id", str_at(props, "vmId", NULL),
    "name", z->inst, "resource_group", z->rg, "location", z->location,
    "private_ip", ip, "disk_ids", ids, "nic_id", nic_id,
    "console", str_at(json_object_get(run.view, "bootDiagnostics"),
                      "serialConsoleLogBlobUri", NULL),
    "addresses", "private", ip ? ip : "");
  json_decref(run.view);
  if (result == NULL)
    ferry_error("out of memory");
  return result;
}

static json_t *azure_create(struct task_ctx *t, json_t *plan)
{
  struct az z;
  CLEANUP_FREE char *subnet_id = NULL, *nic_id = NULL, *ip = NULL;
  CLEANUP_JSON json_t *ids = json_array();
  const char *import = cloud_plan_str(plan, "import");
  json_t *disks = json_object_get(plan, "disks"), *d, *result = NULL;
  size_t i;

  if (import == NULL)
    import = imports[0];
  if (az_open(&z, t, plan) == -1)
    goto out;
  if (json_array_size(disks) == 0) {
    ferry_error("the migration's plan has no disks to import");
    goto out;
  }
  if (network_setup(&z, &subnet_id) == -1 ||
      nic_setup(&z, subnet_id, &nic_id, &ip) == -1)
    goto out;
  json_array_foreach(disks, i, d)
    if (disk_setup(&z, d, i, json_array_size(disks), import, ids) == -1)
      goto out;
  result = vm_setup(&z, ids, nic_id, ip);
  if (result)
    task_ctx_event(t, "Azure: VM %s runs at %s", z.inst, ip ? ip : "?");
out:
  az_close(&z);
  return result;
}

/* ---- cleanup ---- */

static const char *api_of(const char *kind)
{
  if (strcmp(kind, "vm") == 0)
    return ARM_API_COMPUTE;
  if (strcmp(kind, "disk") == 0)
    return ARM_API_DISKS;
  if (strcmp(kind, "nic") == 0)
    return ARM_API_NETWORK;
  return NULL;
}

/* The order deletes must go in, whatever order the ledger lists them:
 * a VM holds its disks and NIC until it is gone. */
static const char *const cleanup_order[] = { "vm", "disk", "nic", NULL };

/* Delete the ledger's resource r (one already gone counts) and mark it
 * gone.  0 or -1. */
static int delete_one(struct arm *a, struct task_ctx *t, json_t *r)
{
  const char *kind = str_at(r, "kind", NULL);
  const char *name = str_at(r, "name", NULL);
  const char *id = str_at(r, "id", NULL);
  const char *api = api_of(kind);
  CLEANUP_FREE char *path = fmt("%s?api-version=%s", id, api);
  CLEANUP_FREE char *what = fmt("DELETE %s %s", kind, name);

  if (path == NULL || what == NULL)
    return -1;
  if (strcmp(kind, "disk") == 0) {
    CLEANUP_JSON json_t *disk = NULL;
    CLEANUP_FREE char *end = fmt("%s/endGetAccess?api-version=%s", id, api);
    long st = arm_call(a, "GET disks", "GET", path, NULL, 1, 0, &disk);
    const char *ds = str_at(json_object_get(disk, "properties"),
                            "diskState", NULL);

    if (st == -1 || end == NULL)
      return -1;
    /* a disk still open for upload cannot be deleted */
    if (ds && (strcmp(ds, "ActiveUpload") == 0 ||
               strcmp(ds, "ActiveSAS") == 0) &&
        arm_call(a, "POST disks endGetAccess", "POST", end, NULL, 0,
                 LRO_DISK_SECONDS, NULL) == -1)
      return -1;
  }
  task_ctx_event(t, "Azure: deleting %s %s", kind, name);
  if (arm_call(a, what, "DELETE", path, NULL, 1, LRO_VM_SECONDS,
               NULL) == -1)
    return -1;
  return cloud_ledger_gone(t, kind, name);
}

static json_t *azure_cleanup(struct task_ctx *t, json_t *plan,
                             json_t *resources)
{
  struct arm a;
  json_t *deleted = json_array(), *r, *result = NULL;
  size_t i, k;

  json_array_foreach(resources, i, r) {
    const char *kind = str_at(r, "kind", NULL);
    const char *name = str_at(r, "name", NULL);
    const char *id = str_at(r, "id", NULL);

    if (kind == NULL || name == NULL || id == NULL ||
        api_of(kind) == NULL || id[0] != '/') {
      ferry_error("the ledger holds a %s resource %s that the azure "
                  "driver did not make: delete it by hand",
                  kind ? kind : "(no kind)", name ? name : "(no name)");
      json_decref(deleted);
      return NULL;
    }
  }
  if (arm_open(&a, t, plan) == -1) {
    json_decref(deleted);
    return NULL;
  }
  for (k = 0; cleanup_order[k]; k++) {
    json_array_foreach(resources, i, r) {
      if (strcmp(str_at(r, "kind", NULL), cleanup_order[k]) != 0)
        continue;
      if (delete_one(&a, t, r) == -1)
        goto out;
      json_array_append(deleted, r);
    }
  }
  result = json_pack("{sO}", "deleted", deleted);
out:
  json_decref(deleted);
  arm_close(&a);
  return result;
}

const struct target_ops target_azure = {
  .name = "azure",
  .rules = {
    .needs_region = 1, .needs_machine_type = 1, .formats = formats,
    .bios_ok = 1, .uefi_ok = 1, .gpt_bios_ok = 1,
    .max_boot_disk = 2040 * GiB,
    .max_disk = 32 * TiB, .storage_drivers = storage, .net_drivers = net,
    .driver_hint = "add hv_vmbus hv_storvsc hv_netvsc to the initramfs "
                   "(dracut -f --add-drivers, or /etc/initramfs-tools/"
                   "modules and update-initramfs -u)",
    .guest_agent = "waagent",
    .guest_agent_hint = "install the Azure Linux Agent (WALinuxAgent) for "
                        "provisioning and extensions",
    .endpoint_keys = endpoint_keys,
    .imports = imports,
  },
  .create = azure_create,
  .cleanup = azure_cleanup,
};
