/* preflight.c - per-host checks against the target (see preflight.h):
 * disk sizes, boot mode and partition table, drivers in the kernel and
 * initramfs, the provider's guest agent, architecture, free space.  A fact
 * the inventory does not know is a warning saying what could not be
 * checked, never a pass. */
#include "preflight.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "targets/target.h"

#define TiB (UINT64_C(1) << 40)
#define MiB (UINT64_C(1) << 20)

static int add(json_t *findings, const char *severity, const char *code,
               const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Returns 1 for an error, 0 otherwise, so callers can sum errors. */
static int add(json_t *findings, const char *severity, const char *code,
               const char *fmt, ...)
{
  char msg[768];
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  json_array_append_new(findings, json_pack("{s:s, s:s, s:s}", "severity",
                                            severity, "code", code,
                                            "message", msg));
  return strcmp(severity, "error") == 0;
}

static const char *str(json_t *o, const char *k)
{
  return json_string_value(json_object_get(o, k));
}

static json_t *inv_disk(json_t *inv, const char *name)
{
  json_t *disks = json_object_get(inv, "disks"), *d;
  size_t i;

  json_array_foreach(disks, i, d)
    if (str(d, "name") && strcmp(str(d, "name"), name) == 0)
      return d;
  return NULL;
}

/* The disk holding /boot (or /boot/efi, or /) among the plan's disks; the
 * first planned disk when the inventory cannot tell. */
const char *preflight_boot_disk(json_t *plan, json_t *inv)
{
  static const char *const mounts[] = { "/boot/efi", "/boot", "/" };
  json_t *pd = json_object_get(plan, "disks"), *d, *p;
  size_t k, i, j;

  for (k = 0; k < sizeof mounts / sizeof mounts[0]; k++)
    json_array_foreach(pd, i, d) {
      json_t *disk = inv_disk(inv, str(d, "name") ? str(d, "name") : "");

      json_array_foreach(json_object_get(disk, "partitions"), j, p)
        if (str(p, "mountpoint") && strcmp(str(p, "mountpoint"),
                                           mounts[k]) == 0)
          return str(d, "name");
    }
  return str(json_array_get(pd, 0), "name");
}

static int check_disks(const struct target_ops *p, json_t *plan, json_t *inv,
                       const char *boot, json_t *f)
{
  json_t *disks = json_object_get(plan, "disks"), *d;
  size_t i;
  int errors = 0;

  json_array_foreach(disks, i, d) {
    const char *name = str(d, "name");
    json_t *disk = inv_disk(inv, name ? name : "");
    json_t *size = disk ? json_object_get(disk, "size") : NULL;
    int is_boot = boot && name && strcmp(boot, name) == 0;
    uint64_t limit = is_boot && p->rules.max_boot_disk ? p->rules.max_boot_disk
                                                 : p->rules.max_disk;
    uint64_t bytes;

    if (!json_is_integer(size)) {
      add(f, "warning", "disk-size", "size of disk %s is unknown: cannot "
          "check it against %s's limits", name ? name : "?", p->name);
      continue;
    }
    bytes = (uint64_t)json_integer_value(size);
    if (bytes == 0)
      errors += add(f, "error", "disk-size", "disk %s is empty", name);
    else if (limit && bytes > limit)
      errors += add(f, "error", "disk-size", "disk %s is %" PRIu64 " GiB, "
                    "over %s's limit of %" PRIu64 " GiB for a %s disk: "
                    "shrink it or move its data to a data disk", name,
                    bytes >> 30, p->name, limit >> 30,
                    is_boot ? "boot" : "data");
    if (is_boot && str(disk, "partition_table") &&
        strcmp(str(disk, "partition_table"), "dos") == 0 && bytes > 2 * TiB)
      errors += add(f, "error", "mbr-size", "boot disk %s has an MBR "
                    "partition table and is larger than the 2 TiB MBR can "
                    "address: convert it to GPT (UEFI) first", name);
  }
  return errors;
}

static int check_boot(const struct target_ops *p, json_t *inv,
                      const char *boot, json_t *f)
{
  const char *mode = str(json_object_get(inv, "boot"), "mode");
  json_t *disk = boot ? inv_disk(inv, boot) : NULL;
  const char *table = str(disk, "partition_table");
  int errors = 0;

  if (mode == NULL)
    add(f, "warning", "boot-mode", "the boot mode (UEFI or BIOS) is "
        "unknown: cannot check that %s can boot it", p->name);
  else if (strcmp(mode, "uefi") == 0 && !p->rules.uefi_ok)
    errors += add(f, "error", "boot-mode", "the host boots UEFI and %s "
                  "(Gen1 VHD) boots BIOS only: convert the boot disk to "
                  "BIOS boot (MBR and grub-pc) or choose another target",
                  p->name);
  else if (strcmp(mode, "bios") == 0 && !p->rules.bios_ok)
    errors += add(f, "error", "boot-mode", "the host boots BIOS and %s "
                  "boots UEFI only", p->name);
  if (table == NULL) {
    add(f, "warning", "partition-table", "the partition table of boot "
        "disk %s is unknown: cannot check that %s can boot it",
        boot ? boot : "?", p->name);
  } else if (strcmp(table, "gpt") == 0 && mode &&
             strcmp(mode, "bios") == 0 && !p->rules.gpt_bios_ok) {
    errors += add(f, "error", "partition-table", "boot disk %s has a GPT "
                  "partition table and boots BIOS: %s boots a GPT boot "
                  "disk only in UEFI mode; convert it to MBR (gdisk, "
                  "sgdisk -m) or switch the host to UEFI", boot, p->name);
  }
  return errors;
}

/* The running kernel's entry, else the newest. */
static json_t *boot_kernel(json_t *inv)
{
  json_t *ks = json_object_get(json_object_get(inv, "drivers"), "kernels");
  json_t *k, *last = NULL;
  size_t i;

  json_array_foreach(ks, i, k) {
    if (json_is_true(json_object_get(k, "running")))
      return k;
    last = k;
  }
  return last;
}

/* Does one alternative of group ("a|b") satisfy need ("initramfs" or
 * "kernel")?  1 yes, 0 no, -1 unknown. */
static int group_ok(json_t *drivers, const char *group, int in_initramfs)
{
  char buf[128], *save = NULL, *name;
  int unknown = 0;

  snprintf(buf, sizeof buf, "%s", group);
  for (name = strtok_r(buf, "|", &save); name;
       name = strtok_r(NULL, "|", &save)) {
    json_t *d = json_object_get(drivers, name);
    json_t *v = json_object_get(d, in_initramfs ? "initramfs" : "kernel");

    if (in_initramfs ? json_is_true(v)
                     : json_is_string(v) &&
                       strcmp(json_string_value(v), "missing") != 0)
      return 1;
    if (v == NULL || json_is_null(v))
      unknown = 1;
  }
  return unknown ? -1 : 0;
}

/* The drivers the target needs.  With guest preparation on, a driver the
 * kernel has but its initramfs lacks is added by preparation; only a
 * kernel without it, or a guest without a tool to rebuild its initramfs,
 * is an error before any data moves. */
static int check_drivers(const struct target_ops *p, json_t *inv, json_t *f,
                         int prepare)
{
  json_t *dr = json_object_get(inv, "drivers");
  json_t *k = boot_kernel(inv), *drivers = json_object_get(k, "drivers");
  json_t *tool = json_object_get(dr, "initramfs_tool");
  const char *rel = str(k, "release");
  int errors = 0;
  size_t i;

  if (k == NULL || drivers == NULL) {
    add(f, "warning", "drivers", "the inventory lists no kernel modules: "
        "cannot check the drivers %s needs", p->name);
    return 0;
  }
  for (i = 0; p->rules.storage_drivers && p->rules.storage_drivers[i]; i++) {
    int r = group_ok(drivers, p->rules.storage_drivers[i], 1);
    int in_kernel = group_ok(drivers, p->rules.storage_drivers[i], 0);

    if (r == 0 && prepare && in_kernel == 0)
      errors += add(f, "error", "drivers", "kernel %s has no %s at all "
                    "(neither built in nor a module): preparation cannot add "
                    "it, and the disk would not be found at boot on %s; "
                    "install a kernel with it", rel ? rel : "?",
                    p->rules.storage_drivers[i], p->name);
    else if (r == 0 && prepare && json_is_null(tool))
      errors += add(f, "error", "drivers", "kernel %s has no %s in its "
                    "initramfs and the host has no tool to rebuild it "
                    "(update-initramfs or dracut): preparation cannot add "
                    "it; install initramfs-tools or dracut", rel ? rel : "?",
                    p->rules.storage_drivers[i]);
    else if (r == 0 && prepare)
      add(f, "info", "drivers", "kernel %s has no %s in its initramfs: "
          "guest preparation adds it and rebuilds the initramfs with the "
          "guest's %s", rel ? rel : "?", p->rules.storage_drivers[i],
          json_string_value(tool) ? json_string_value(tool) : "tool");
    else if (r == 0 && !prepare)
      errors += add(f, "error", "drivers", "kernel %s has no %s in its "
                    "initramfs: the disk would not be found at boot on %s; "
                    "%s (or let ferry prepare the guest: prepare: true)",
                    rel ? rel : "?", p->rules.storage_drivers[i], p->name,
                    p->rules.driver_hint);
    else if (r < 0)
      add(f, "warning", "drivers", "cannot tell whether %s is in the "
          "initramfs of kernel %s", p->rules.storage_drivers[i], rel ? rel : "?");
  }
  for (i = 0; p->rules.net_drivers && p->rules.net_drivers[i]; i++) {
    int r = group_ok(drivers, p->rules.net_drivers[i], 0);

    if (r == 0)
      errors += add(f, "error", "drivers", "kernel %s has no %s driver: "
                    "the instance would have no network on %s; %s",
                    rel ? rel : "?", p->rules.net_drivers[i], p->name,
                    p->rules.driver_hint);
    else if (r < 0)
      add(f, "warning", "drivers", "cannot tell whether kernel %s has %s",
          rel ? rel : "?", p->rules.net_drivers[i]);
  }
  return errors;
}

static void check_agent(const struct target_ops *p, json_t *inv, json_t *f)
{
  json_t *a;

  if (p->rules.guest_agent == NULL)
    return;
  a = json_object_get(json_object_get(inv, "guest_agents"), p->rules.guest_agent);
  if (a == NULL || json_is_null(json_object_get(a, "installed")))
    add(f, "warning", "guest-agent", "cannot tell whether %s is installed",
        p->rules.guest_agent);
  else if (!json_is_true(json_object_get(a, "installed")))
    add(f, "warning", "guest-agent", "%s is not installed: %s",
        p->rules.guest_agent, p->rules.guest_agent_hint);
}

/* Free space on the root filesystem: guest preparation (drivers, agents,
 * a rebuilt initramfs) needs some. */
static int check_space(json_t *inv, json_t *f)
{
  json_t *disks = json_object_get(inv, "disks"), *d, *part, *lv;
  json_t *lvs = json_object_get(json_object_get(inv, "lvm"), "lvs");
  json_t *root = NULL;
  size_t i, j;

  json_array_foreach(disks, i, d)
    json_array_foreach(json_object_get(d, "partitions"), j, part)
      if (str(part, "mountpoint") && strcmp(str(part, "mountpoint"), "/")
          == 0)
        root = part;
  json_array_foreach(lvs, i, lv)
    if (str(lv, "mountpoint") && strcmp(str(lv, "mountpoint"), "/") == 0)
      root = lv;
  if (root == NULL || !json_is_integer(json_object_get(root, "free"))) {
    add(f, "warning", "free-space", "free space on / is unknown (discovery "
        "reads it only on the live system)");
    return 0;
  }
  if ((uint64_t)json_integer_value(json_object_get(root, "free"))
      < 100 * MiB)
    return add(f, "error", "free-space", "/ has less than 100 MiB free: "
               "preparing the guest (drivers, initramfs) needs room; free "
               "some space");
  if ((uint64_t)json_integer_value(json_object_get(root, "free"))
      < 1024 * MiB)
    add(f, "warning", "free-space", "/ has less than 1 GiB free");
  return 0;
}

/* ---- the root filesystem and the mounts fstab asks for at boot ---- */

#define MAX_HOLDERS 8

/* The inventory disks holding a filesystem: names[] (up to MAX_HOLDERS),
 * the count, 0 when nothing in the inventory is it. */
struct holders {
  const char *names[MAX_HOLDERS];
  size_t n;
};

static void hold(struct holders *h, const char *disk)
{
  size_t i;

  if (disk == NULL)
    return;
  for (i = 0; i < h->n; i++)
    if (strcmp(h->names[i], disk) == 0)
      return;
  if (h->n < MAX_HOLDERS)
    h->names[h->n++] = disk;
}

static int eq(json_t *o, const char *k, const char *v)
{
  return str(o, k) && strcmp(str(o, k), v) == 0;
}

/* Does object o (a disk, partition or LV) answer to spec, an fstab device
 * field?  UUID=, LABEL=, PARTUUID=, PARTLABEL= or a /dev path. */
static int is_spec(json_t *o, const char *spec)
{
  if (strncmp(spec, "UUID=", 5) == 0)
    return eq(o, "uuid", spec + 5);
  if (strncmp(spec, "LABEL=", 6) == 0)
    return eq(o, "label", spec + 6);
  if (strncmp(spec, "PARTUUID=", 9) == 0)
    return eq(o, "part_uuid", spec + 9);
  if (strncmp(spec, "PARTLABEL=", 10) == 0)
    return eq(o, "part_label", spec + 10);
  return spec[0] == '/' && (eq(o, "path", spec) || eq(o, "mapper_path", spec));
}

static void lv_holders(json_t *inv, json_t *lv, struct holders *h);

/* The disks under whatever in the inventory matches: want (a spec, or
 * NULL) or, with mountpoint set, whatever is mounted there. */
static void find_holders(json_t *inv, const char *spec, const char *mountpoint,
                         struct holders *h)
{
  json_t *d, *p, *lv;
  size_t i, j;

  json_array_foreach(json_object_get(inv, "disks"), i, d) {
    if (spec ? is_spec(d, spec) : eq(d, "mountpoint", mountpoint))
      hold(h, str(d, "name"));
    json_array_foreach(json_object_get(d, "partitions"), j, p)
      if (spec ? is_spec(p, spec) : eq(p, "mountpoint", mountpoint))
        hold(h, str(d, "name"));
  }
  json_array_foreach(json_object_get(json_object_get(inv, "lvm"), "lvs"), i,
                     lv)
    if (spec ? is_spec(lv, spec) : eq(lv, "mountpoint", mountpoint))
      lv_holders(inv, lv, h);
}

/* An LV lives on the disks of its volume group's PVs. */
static void lv_holders(json_t *inv, json_t *lv, struct holders *h)
{
  json_t *pv;
  size_t i;

  json_array_foreach(json_object_get(json_object_get(inv, "lvm"), "pvs"), i,
                     pv)
    if (str(lv, "vg") && eq(pv, "vg", str(lv, "vg")) && str(pv, "device")) {
      struct holders sub = { .n = 0 };
      size_t k;

      find_holders(inv, str(pv, "device"), NULL, &sub);
      for (k = 0; k < sub.n; k++)
        hold(h, sub.names[k]);
    }
}

static int planned(json_t *plan, const char *disk)
{
  json_t *d;
  size_t i;

  json_array_foreach(json_object_get(plan, "disks"), i, d)
    if (eq(d, "name", disk))
      return 1;
  return 0;
}

/* A device name that is bound to the source's hardware. */
static int hardware_bound(const char *spec)
{
  return strncmp(spec, "/dev/disk/by-id/", 16) == 0 ||
         strncmp(spec, "/dev/disk/by-path/", 18) == 0;
}

/* A device name (/dev/sdX, vdX, hdX, xvdX, nvmeX) as preparation maps
 * them to the target's disks. */
static int disk_name(const char *spec)
{
  static const char *const names[] = { "sd", "vd", "hd", "xvd", "nvme" };
  size_t i;

  if (strncmp(spec, "/dev/", 5) != 0)
    return 0;
  for (i = 0; i < sizeof names / sizeof names[0]; i++)
    if (strncmp(spec + 5, names[i], strlen(names[i])) == 0)
      return 1;
  return 0;
}

static int check_mounts(json_t *plan, json_t *inv, json_t *f, int prepare)
{
  json_t *fstab = json_object_get(inv, "fstab"), *e;
  struct holders root = { .n = 0 };
  const char *root_spec = NULL;
  int errors = 0;
  size_t i, k;

  /* the root: what is mounted on / (live discovery), else fstab's entry */
  find_holders(inv, NULL, "/", &root);
  json_array_foreach(fstab, i, e)
    if (eq(e, "file", "/") && str(e, "spec"))
      root_spec = str(e, "spec");
  if (root.n == 0 && root_spec)
    find_holders(inv, root_spec, NULL, &root);
  if (root.n == 0 && !json_is_array(fstab) &&
      !json_is_array(json_object_get(inv, "mounts"))) {
    add(f, "warning", "root-fs", "the inventory has neither a mount table "
        "nor /etc/fstab: cannot check that the root filesystem is "
        "migrated%s", prepare ? " (preparation looks for it on the disks "
        "themselves)" : "");
  } else if (root.n == 0) {
    char why[300];

    snprintf(why, sizeof why, root_spec
             ? "/etc/fstab mounts / from %s, which is none of them"
             : "/etc/fstab has no entry for /%s", root_spec ? root_spec : "");
    if (prepare)
      errors += add(f, "error", "root-fs", "cannot find the root "
                    "filesystem: no disk, partition or logical volume in "
                    "the inventory is mounted on /, and %s; guest "
                    "preparation needs it: run discovery on the running "
                    "server (ferry-agent discover --post) or set "
                    "prepare: false", why);
    else
      add(f, "warning", "root-fs", "cannot find the root filesystem in the "
          "inventory (nothing is mounted on /, and %s): cannot check that "
          "it is migrated", why);
  }
  for (k = 0; k < root.n; k++)
    if (!planned(plan, root.names[k]))
      errors += add(f, "error", "root-fs", "the root filesystem%s%s is on "
                    "disk %s, which this migration does not include: the "
                    "server could not boot; add %s to the host's disks: in "
                    "the blueprint", root_spec ? " " : "",
                    root_spec ? root_spec : "", root.names[k], root.names[k]);

  /* every other mount the server waits for at boot */
  json_array_foreach(fstab, i, e) {
    const char *spec = str(e, "spec"), *file = str(e, "file");
    const char *ops = str(e, "mntops") ? str(e, "mntops") : "";
    struct holders h = { .n = 0 };
    int optional = strstr(ops, "nofail") || strstr(ops, "noauto");

    if (spec == NULL || file == NULL || strcmp(file, "/") == 0 || optional)
      continue;
    if (hardware_bound(spec)) {
      if (prepare)
        errors += add(f, "error", "fstab", "/etc/fstab mounts %s from %s, a "
                      "name bound to the source's disk hardware: guest "
                      "preparation cannot map it to the target's disks; "
                      "mount it by UUID= or LABEL= on the source (or mark "
                      "it nofail) and sync again", file, spec);
      else
        add(f, "warning", "fstab", "/etc/fstab mounts %s from %s, a name "
            "bound to the source's disk hardware: the target will not have "
            "it", file, spec);
      continue;
    }
    find_holders(inv, spec, NULL, &h);
    if (h.n == 0 && disk_name(spec) && prepare) {
      errors += add(f, "error", "fstab", "/etc/fstab mounts %s from %s, "
                    "which is on no disk the inventory lists: the server "
                    "would wait for it at boot and preparation cannot map "
                    "it; remove the entry or mark it nofail on the source",
                    file, spec);
      continue;
    }
    for (k = 0; k < h.n; k++)
      if (!planned(plan, h.names[k]))
        errors += add(f, "error", "fstab", "/etc/fstab mounts %s from %s, "
                      "on disk %s, which this migration does not include: "
                      "the server would stop at boot waiting for it; add %s "
                      "to the host's disks: in the blueprint, or mark the "
                      "entry nofail on the source", file, spec, h.names[k],
                      h.names[k]);
  }
  return errors;
}

int preflight_run(json_t *plan, json_t *inv, json_t *findings)
{
  const struct target_ops *p = target_lookup(str(plan, "provider"));
  const char *arch, *boot;
  int errors = 0;

  if (p == NULL)
    return add(findings, "error", "provider", "unknown provider in the "
               "plan");
  if (inv == NULL || !json_is_object(inv))
    return add(findings, "error", "inventory", "the host has no inventory: "
               "run ferry-agent discover on it");
  boot = preflight_boot_disk(plan, inv);
  errors += check_disks(p, plan, inv, boot, findings);
  errors += check_boot(p, inv, boot, findings);
  {
    /* a local boot of a cloud's device model needs that cloud's drivers */
    json_t *prep = json_object_get(plan, "prepare");
    const struct target_ops *dp = json_is_object(prep)
      ? target_lookup(str(prep, "target")) : NULL;

    errors += check_drivers(dp ? dp : p, inv, findings, json_is_object(prep));
    errors += check_mounts(plan, inv, findings, json_is_object(prep));
  }
  check_agent(p, inv, findings);
  errors += check_space(inv, findings);
  arch = str(json_object_get(inv, "kernel"), "arch");
  if (arch && strcmp(arch, "x86_64") != 0)
    add(findings, "warning", "arch", "the host is %s: check that %s offers "
        "%s machine types", arch, p->name, arch);
  return errors;
}
