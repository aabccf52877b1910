/* discover_platform.c - boot mode, what the host runs on, guest agents.
 *
 * Sources, all below the root:
 *   sys/firmware/efi, .../efivars/SecureBoot-<EFI global GUID>   boot mode
 *   sys/class/dmi/id/{sys_vendor,product_name,bios_vendor,bios_version,
 *                     chassis_asset_tag}   SMBIOS strings the hypervisor
 *                     or the vendor's firmware sets
 *   sys/hypervisor/type, the "hypervisor" CPU flag in proc/cpuinfo,
 *   sys/devices/system/clocksource/clocksource0/available_clocksource
 *   usr/bin, usr/sbin, systemd unit directories   guest agents */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/cleanup.h"
#include "discover_int.h"
#include "util/error.h"

/* UEFI spec, EFI_GLOBAL_VARIABLE: the SecureBoot variable's GUID.  efivarfs
 * files are the 4-byte attributes then the data (1 byte: 1 = enabled). */
#define SECURE_BOOT_VAR "sys/firmware/efi/efivars/" \
  "SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c"

json_t *discover_boot(struct discover_ctx *ctx)
{
  CLEANUP_FREE char *sb = NULL;
  char **fw;
  size_t n, len = 0;
  const char *mode;
  json_t *secure;

  fw = rootfs_list(&ctx->root, &n, "sys/firmware");
  rootfs_names_free(fw, n);
  /* the kernel makes sys/firmware/efi only when booted through UEFI */
  if (rootfs_exists(&ctx->root, "sys/firmware/efi"))
    mode = "uefi";
  else if (fw != NULL)
    mode = "bios";
  else
    mode = NULL;
  if (mode && strcmp(mode, "bios") == 0) {
    secure = json_false();      /* Secure Boot is a UEFI feature */
  } else if (mode && (sb = rootfs_read(&ctx->root, &len, SECURE_BOOT_VAR))
             != NULL && len == 5) {
    secure = json_boolean(sb[4] == 1);
  } else {
    secure = json_null();
  }
  return json_pack("{s:o, s:o}", "mode", json_str_or_null(mode),
                   "secure_boot", secure);
}

/* SMBIOS identities of hypervisors and clouds: the first row whose field
 * contains the text decides.  The strings are what each platform's
 * firmware reports (as systemd-detect-virt and cloud-init's ds-identify
 * match them). */
static const struct platform_id {
  const char *field;            /* a sys/class/dmi/id attribute */
  const char *text;
  const char *hypervisor;
  const char *cloud;            /* NULL: not a cloud we know */
} platform_ids[] = {
  /* Azure's fixed chassis asset tag on every Hyper-V VM it runs */
  { "chassis_asset_tag", "7783-7084-3265-9085-8269-3286-77", "hyperv",
    "azure" },
  { "sys_vendor", "Amazon EC2", "kvm", "aws" },        /* Nitro */
  { "bios_version", "amazon", "xen", "aws" },          /* Xen-based EC2 */
  { "product_name", "Google Compute Engine", "kvm", "gcp" },
  { "product_name", "OpenStack", "kvm", "openstack" },
  { "sys_vendor", "OpenStack", "kvm", "openstack" },
  { "sys_vendor", "Microsoft Corporation", "hyperv", NULL },
  { "sys_vendor", "VMware", "vmware", NULL },
  { "product_name", "VMware", "vmware", NULL },
  { "sys_vendor", "QEMU", "kvm", NULL },
  { "product_name", "KVM", "kvm", NULL },
  { "sys_vendor", "Nutanix", "kvm", NULL },
  { "sys_vendor", "Xen", "xen", NULL },
  { "product_name", "VirtualBox", "virtualbox", NULL },
  { "sys_vendor", "Parallels", "parallels", NULL },
  { "product_name", "BHYVE", "bhyve", NULL },
};

static const char *const dmi_fields[] = {
  "sys_vendor", "product_name", "bios_vendor", "bios_version",
  "chassis_asset_tag",
};
#define NDMI (sizeof dmi_fields / sizeof dmi_fields[0])
#define DMI_DIR "sys/class/dmi/id/"
static const char *const dmi_paths[NDMI] = {
  DMI_DIR "sys_vendor", DMI_DIR "product_name", DMI_DIR "bios_vendor",
  DMI_DIR "bios_version", DMI_DIR "chassis_asset_tag",
};

/* Paravirtual clock sources name the hypervisor a VM without SMBIOS
 * (Firecracker, plain qemu -kernel) runs on. */
static const struct clock_id {
  const char *clock, *hypervisor;
} clock_ids[] = {
  { "kvm-clock", "kvm" },
  { "hyperv_clocksource", "hyperv" },
  { "xen", "xen" },
};

/* 1 if proc/cpuinfo has the "hypervisor" flag, 0 if its x86 flags lack
 * it, -1 if unknown (unreadable, or an architecture with no such flag). */
static int cpu_hypervisor_flag(struct discover_ctx *ctx)
{
  CLEANUP_FREE char *text = rootfs_read(&ctx->root, NULL, "proc/cpuinfo");
  char *p = text;

  while (p && (p = strstr(p, "flags")) != NULL) {
    char *eol = strchr(p, '\n'), *colon;

    if (p != text && p[-1] != '\n') {
      p += 5;
      continue;
    }
    if (eol)
      *eol = '\0';
    colon = strchr(p, ':');
    if (colon) {
      for (char *f = colon + 1; (f = strstr(f, "hypervisor")) != NULL;
           f += 10)
        if ((f[-1] == ' ' || f[-1] == '\t') &&
            (f[10] == '\0' || f[10] == ' '))
          return 1;
      return 0;                 /* the first CPU's flags decide */
    }
    p = eol ? eol + 1 : NULL;
  }
  return -1;
}

json_t *discover_platform(struct discover_ctx *ctx)
{
  char *dmi[NDMI] = { NULL };
  CLEANUP_FREE char *xen = rootfs_value(&ctx->root, "sys/hypervisor/type");
  CLEANUP_FREE char *clocks = rootfs_value(&ctx->root,
    "sys/devices/system/clocksource/clocksource0/available_clocksource");
  const char *hyp = NULL, *cloud = NULL, *evidence = NULL;
  int flag = cpu_hypervisor_flag(ctx), any_dmi = 0;
  json_t *out = NULL, *virt;
  size_t i, j;

  for (i = 0; i < NDMI; i++) {
    dmi[i] = rootfs_value(&ctx->root, "%s", dmi_paths[i]);
    any_dmi |= dmi[i] != NULL;
  }
  for (i = 0; hyp == NULL && i < sizeof platform_ids / sizeof *platform_ids;
       i++)
    for (j = 0; j < NDMI; j++)
      if (strcmp(platform_ids[i].field, dmi_fields[j]) == 0 && dmi[j] &&
          strstr(dmi[j], platform_ids[i].text)) {
        hyp = platform_ids[i].hypervisor;
        cloud = platform_ids[i].cloud;
        evidence = dmi_paths[j];
        break;
      }
  if (hyp == NULL && xen && strcmp(xen, "xen") == 0) {
    hyp = "xen";
    evidence = "sys/hypervisor/type";
  }
  for (i = 0; hyp == NULL && clocks && flag != 0 &&
       i < sizeof clock_ids / sizeof *clock_ids; i++)
    if (strstr(clocks, clock_ids[i].clock)) {
      hyp = clock_ids[i].hypervisor;
      evidence = "sys/devices/system/clocksource/clocksource0/"
                 "available_clocksource";
    }
  if (hyp == NULL && flag == 0 && any_dmi) {
    /* no hypervisor flag, no virtual firmware: a physical machine */
    hyp = "none";
    evidence = "proc/cpuinfo";
  }
  if (hyp)
    virt = json_boolean(strcmp(hyp, "none") != 0);
  else if (flag == 1)
    virt = json_true();         /* a VM of a hypervisor we cannot name */
  else
    virt = json_null();
  if (hyp == NULL && flag == 1)
    evidence = "proc/cpuinfo";
  out = json_pack("{s:o, s:o, s:o, s:o}", "virtual", virt,
                  "hypervisor", json_str_or_null(hyp),
                  "cloud", json_str_or_null(cloud),
                  "evidence", json_str_or_null(evidence));
  for (i = 0; out && i < NDMI; i++)
    if (json_object_set_new(out, dmi_fields[i], json_str_or_null(dmi[i]))
        == -1) {
      json_decref(out);
      out = NULL;
    }
  if (out && json_object_set_new(out, "hypervisor_type",
                                 json_str_or_null(xen)) == -1) {
    json_decref(out);
    out = NULL;
  }
  for (i = 0; i < NDMI; i++)
    free(dmi[i]);
  return out;
}

/* Guest agents a migration installs, removes or replaces: the files
 * their packages install and their systemd units. */
static const struct agent_id {
  const char *name;
  const char *files[3];
  const char *units[3];
} agent_ids[] = {
  { "cloud-init", { "usr/bin/cloud-init" },
    { "cloud-init.service", "cloud-init-local.service" } },
  { "waagent", { "usr/sbin/waagent" },
    { "walinuxagent.service", "waagent.service" } },
  { "google-guest-agent", { "usr/bin/google_guest_agent" },
    { "google-guest-agent.service" } },
  { "qemu-guest-agent", { "usr/bin/qemu-ga", "usr/sbin/qemu-ga" },
    { "qemu-guest-agent.service" } },
  { "open-vm-tools", { "usr/bin/vmtoolsd" },
    { "open-vm-tools.service", "vmtoolsd.service" } },
  { "amazon-ssm-agent", { "usr/bin/amazon-ssm-agent",
                          "snap/bin/amazon-ssm-agent" },
    { "amazon-ssm-agent.service",
      "snap.amazon-ssm-agent.amazon-ssm-agent.service" } },
  { "hyperv-daemons", { "usr/sbin/hypervkvpd", "usr/sbin/hv_kvp_daemon" },
    { "hypervkvpd.service", "hv-kvp-daemon.service" } },
};

static const char *const unit_dirs[] = {
  "etc/systemd/system", "usr/lib/systemd/system", "lib/systemd/system",
};

/* 1 if any etc/systemd/system/<target>.wants/ links the unit, 0 if none
 * does, -1 if that directory is unreadable. */
static int unit_enabled(struct discover_ctx *ctx, const char *unit)
{
  size_t n, i;
  char **names = rootfs_list(&ctx->root, &n, "etc/systemd/system");
  int on = 0;

  if (names == NULL)
    return -1;
  for (i = 0; !on && i < n; i++) {
    size_t l = strlen(names[i]);

    if (l > 6 && strcmp(names[i] + l - 6, ".wants") == 0 &&
        rootfs_exists(&ctx->root, "etc/systemd/system/%s/%s", names[i],
                      unit))
      on = 1;
    /* a link whose target is gone still says "enabled" to systemctl */
    else if (l > 6 && strcmp(names[i] + l - 6, ".wants") == 0) {
      char *t = rootfs_link_name(&ctx->root, "etc/systemd/system/%s/%s",
                                 names[i], unit);

      on = t != NULL;
      free(t);
    }
  }
  rootfs_names_free(names, n);
  return on;
}

json_t *discover_guest_agents(struct discover_ctx *ctx)
{
  json_t *out = json_object();

  for (size_t i = 0; out && i < sizeof agent_ids / sizeof *agent_ids; i++) {
    const struct agent_id *a = &agent_ids[i];
    json_t *files = json_array(), *e;
    int enabled = 0;

    for (size_t f = 0; files && f < 3 && a->files[f]; f++)
      if (rootfs_exists(&ctx->root, "%s", a->files[f]))
        json_array_append_new(files, json_sprintf("/%s", a->files[f]));
    for (size_t u = 0; files && u < 3 && a->units[u]; u++) {
      int on;

      for (size_t d = 0; d < sizeof unit_dirs / sizeof *unit_dirs; d++)
        if (rootfs_exists(&ctx->root, "%s/%s", unit_dirs[d], a->units[u])) {
          json_array_append_new(files, json_sprintf("/%s/%s", unit_dirs[d],
                                                    a->units[u]));
          break;
        }
      on = unit_enabled(ctx, a->units[u]);
      if (on == -1 && enabled == 0)
        enabled = -1;
      else if (on == 1)
        enabled = 1;
    }
    e = files ? json_pack("{s:b, s:O, s:o}",
                          "installed", json_array_size(files) > 0,
                          "files", files,
                          "enabled", enabled == -1 ? json_null()
                                                   : json_boolean(enabled))
              : NULL;
    json_decref(files);
    if (e == NULL || json_object_set_new(out, a->name, e) == -1) {
      json_decref(out);
      out = NULL;
    }
  }
  return out;
}
