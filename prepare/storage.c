/* storage.c - the guest finds its disks on the new hardware: mounts by
 * UUID instead of device names that change with the disk bus, stale
 * device caches removed, and an initramfs that holds the target's storage
 * drivers, rebuilt with the guest's own tool. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kmod.h"
#include "prepare.h"
#include "util/cleanup.h"
#include "util/error.h"

/* The appliance device of a source device name ("/dev/vda1", "/dev/
 * nvme0n1p2", "/dev/xvdb"): *dev set (caller frees) and 1; 0 when the name
 * is not a disk name; -1 when it names a disk that is not migrated. */
static int map_device(struct prep *x, const char *spec, char **dev)
{
  static const char *const disk_names[] = { "sd", "vd", "hd", "xvd",
                                            "nvme", NULL };
  const char *name = spec + 5, *part;
  size_t i, n;
  int disky = 0;

  *dev = NULL;
  if (strncmp(spec, "/dev/", 5) != 0)
    return 0;
  for (i = 0; disk_names[i]; i++)
    if (strncmp(name, disk_names[i], strlen(disk_names[i])) == 0)
      disky = 1;
  if (!disky)
    return 0;
  for (i = 0; i < x->ndisks; i++) {
    n = strlen(x->disks[i].name);
    if (strncmp(name, x->disks[i].name, n) != 0)
      continue;
    part = name + n;
    if (*part == 'p' && isdigit((unsigned char)x->disks[i].name[n - 1]))
      part++;
    if (*part == 0) {
      *dev = strdup(x->disks[i].dev);
      return *dev ? 1 : -1;
    }
    if (strspn(part, "0123456789") != strlen(part))
      continue;                 /* "sda" must not match "sdab1" */
    if (asprintf(dev, "%s%s", x->disks[i].dev, part) == -1)
      return -1;
    return 1;
  }
  return -1;
}

/* Rewrite the device field (field 0 of fstab, 1 of crypttab) of every line
 * naming a disk by its device name to UUID=. */
static int by_uuid(struct prep *x, const char *path, int field)
{
  CLEANUP_FREE char *text = NULL, *out = NULL;
  size_t outlen = 0, lineno = 0;
  char *line, *save = NULL;
  FILE *o;
  int changed = 0, r = -1;

  if (!gf_is_file(x, path))
    return 0;
  if ((text = gf_read(x, path, NULL)) == NULL)
    return -1;
  if ((o = open_memstream(&out, &outlen)) == NULL) {
    ferry_error("out of memory");
    return -1;
  }
  for (line = strtok_r(text, "\n", &save); line;
       line = strtok_r(NULL, "\n", &save)) {
    char spec[256], rest[1024];
    const char *p = line, *start;
    int f;

    lineno++;
    while (*p == ' ' || *p == '\t')
      p++;
    if (*p == '#' || *p == 0) {
      fprintf(o, "%s\n", line);
      continue;
    }
    for (f = 0; f < field; f++) {               /* skip to the field */
      p += strcspn(p, " \t");
      p += strspn(p, " \t");
    }
    start = p;
    snprintf(spec, sizeof spec, "%.*s", (int)strcspn(p, " \t"), p);
    snprintf(rest, sizeof rest, "%s", p + strlen(spec));
    if (strncmp(spec, "/dev/disk/by-id/", 16) == 0 ||
        strncmp(spec, "/dev/disk/by-path/", 18) == 0) {
      if (strstr(rest, "nofail") == NULL && strstr(rest, "noauto") == NULL) {
        ferry_error("%s line %zu names %s, a name bound to the source's "
                    "disk hardware that the target will not have: mount it "
                    "by UUID= or LABEL= on the source and sync again",
                    path, lineno, spec);
        goto out;
      }
      fprintf(o, "%s\n", line);
      continue;
    }
    {
      CLEANUP_FREE char *dev = NULL, *uuid = NULL;
      int m = map_device(x, spec, &dev);

      if (m == 0) {
        fprintf(o, "%s\n", line);
        continue;
      }
      if (m == -1) {
        if (strstr(rest, "nofail") || strstr(rest, "noauto")) {
          fprintf(o, "%s\n", line);
          continue;
        }
        ferry_error("%s line %zu names %s, on a disk that is not part of "
                    "this migration: add the disk to the blueprint's host "
                    "(disks:) or mark the entry nofail on the source", path,
                    lineno, spec);
        goto out;
      }
      uuid = guestfs_vfs_uuid(x->g, dev);
      if (uuid == NULL || uuid[0] == 0) {
        ferry_error("%s line %zu: %s (%s in the migrated copy) has no "
                    "filesystem UUID: give it one on the source (tune2fs "
                    "-U random, xfs_admin -U generate) or mount it by LABEL=",
                    path, lineno, spec, dev);
        goto out;
      }
      fprintf(o, "%.*sUUID=%s%s\n", (int)(start - line), line, uuid, rest);
      prep_change(x, path, "device names change with the disk bus (vd*, sd*, "
                  "nvme*, xvd*); the filesystem UUID does not",
                  "line %zu: %s -> UUID=%s", lineno, spec, uuid);
      changed = 1;
    }
  }
  if (fclose(o) != 0) {
    o = NULL;
    ferry_error("out of memory");
    goto out;
  }
  o = NULL;
  r = changed ? gf_write(x, path, out) : 0;
out:
  if (o)
    fclose(o);
  return r;
}

/* Caches that pin devices of the source's hardware. */
static int drop_caches(struct prep *x)
{
  static const struct { const char *path, *why; } caches[] = {
    { "/etc/blkid.tab", "a blkid cache of the source's device names" },
    { "/etc/blkid/blkid.tab", "a blkid cache of the source's device names" },
    { "/etc/lvm/cache/.cache", "LVM's cache of the source's devices" },
    { "/etc/lvm/devices/system.devices",
      "LVM's devices file admits only the source's disks (by WWID or "
      "serial): on new disks LVM would ignore the volume group" },
  };
  size_t i;

  for (i = 0; i < sizeof caches / sizeof caches[0]; i++) {
    if (!gf_is_file(x, caches[i].path))
      continue;
    if (gf_remove(x, caches[i].path) == -1)
      return -1;
    prep_change(x, caches[i].path, caches[i].why, "removed (kept in "
                PREP_ORIG_DIR ")");
  }
  return 0;
}

int prep_storage(struct prep *x)
{
  if (by_uuid(x, "/etc/fstab", 0) == -1 ||
      by_uuid(x, "/etc/crypttab", 1) == -1)
    return -1;
  return drop_caches(x);
}

/* ---- the initramfs ---- */

/* The initramfs file of kernel kver, or NULL. */
static const char *initrd_path(struct prep *x, const char *kver, char *buf,
                               size_t cap)
{
  static const char *const forms[] = { "/boot/initrd.img-%s",
                                       "/boot/initramfs-%s.img",
                                       "/boot/initrd-%s", NULL };

  return gf_first_file(x, forms, kver, buf, cap);
}

/* What the initramfs of kver lists (caller frees), NULL with an error. */
static char *initrd_list(struct prep *x, const char *initrd)
{
  char cmd[600];

  snprintf(cmd, sizeof cmd, strcmp(x->initramfs_tool, "dracut") == 0
           ? "lsinitrd '%s'" : "lsinitramfs '%s'", initrd);
  return gf_sh(x, cmd);
}

enum kstate { K_MISSING, K_MODULE, K_BUILTIN };

struct kernel {
  char kver[256];
  char initrd[300];
  char *dep, *builtin;
  int need;                      /* its initramfs is rebuilt */
};

static enum kstate kstate(struct kernel *k, const char *name)
{
  if (kmod_listed(k->builtin, name, KMOD_FIELD_FIRST))
    return K_BUILTIN;
  if (kmod_listed(k->dep, name, KMOD_FIELD_FIRST))
    return K_MODULE;
  return K_MISSING;
}

static int has_module_tree(struct prep *x, const char *kver)
{
  char path[512];

  snprintf(path, sizeof path, "/lib/modules/%s/modules.dep", kver);
  return gf_is_file(x, path);
}

static int kernel_load(struct prep *x, struct kernel *k, const char *kver)
{
  char path[512];

  if (kver != k->kver)
    snprintf(k->kver, sizeof k->kver, "%s", kver);
  snprintf(path, sizeof path, "/lib/modules/%s/modules.dep", kver);
  if (!gf_is_file(x, path)) {
    ferry_error("kernel %s has no %s: its modules are not installed (or "
                "depmod never ran): ferry cannot tell which drivers it has",
                kver, path);
    return -1;
  }
  if ((k->dep = gf_read(x, path, NULL)) == NULL)
    return -1;
  snprintf(path, sizeof path, "/lib/modules/%s/modules.builtin", kver);
  k->builtin = gf_is_file(x, path) ? gf_read(x, path, NULL) : strdup("");
  return k->builtin ? 0 : -1;
}

/* Is module listed as the first word of a line of an initramfs-tools
 * modules file (comments skipped)? */
static int modules_file_lists(const char *text, const char *module)
{
  size_t n = strlen(module);
  const char *p = text;

  while (p && *p) {
    p += strspn(p, " \t");
    if (strncmp(p, module, n) == 0 && strchr(" \t\n", p[n]))
      return 1;
    p = strchr(p, '\n');
    if (p)
      p++;
  }
  return 0;
}

/* The target's drivers into the tool's configuration: every one of want
 * not listed yet (lack: those the initramfs lacks today, for the event). */
static int configure_tool(struct prep *x, json_t *want, json_t *lack)
{
  int dracut = strcmp(x->initramfs_tool, "dracut") == 0;
  const char *path = dracut ? "/etc/dracut.conf.d/90-ferry.conf"
                            : "/etc/initramfs-tools/modules";
  CLEANUP_FREE char *text = NULL, *out = NULL, *names = NULL, *missing = NULL;
  size_t outlen = 0, nlen = 0, mlen = 0, i, added = 0;
  char why[700];
  json_t *m;
  FILE *o, *n, *ms;

  if (!dracut && gf_is_file(x, path) && (text = gf_read(x, path, NULL))
      == NULL)
    return -1;
  o = open_memstream(&out, &outlen);
  n = open_memstream(&names, &nlen);
  ms = open_memstream(&missing, &mlen);
  if (o == NULL || n == NULL || ms == NULL) {
    if (o)
      fclose(o);
    if (n)
      fclose(n);
    if (ms)
      fclose(ms);
    ferry_error("out of memory");
    return -1;
  }
  if (text)
    fprintf(o, "%s%s", text, text[0] && text[strlen(text) - 1] != '\n'
            ? "\n" : "");
  fprintf(o, "# ferry: drivers for %s\n", x->p->hardware);
  if (dracut)
    fprintf(o, "add_drivers+=\"");
  json_array_foreach(want, i, m) {
    const char *d = json_string_value(m);

    if (text && modules_file_lists(text, d))
      continue;
    fprintf(o, dracut ? " %s" : "%s\n", d);
    fprintf(n, "%s%s", added++ ? " " : "", d);
  }
  if (dracut)
    fprintf(o, " \"\n");
  json_array_foreach(lack, i, m)
    fprintf(ms, "%s%s", i ? " " : "", json_string_value(m));
  fclose(o);
  fclose(n);
  fclose(ms);
  if (added == 0)
    return 0;
  if (gf_write(x, path, out) == -1)
    return -1;
  snprintf(why, sizeof why, "the initramfs must load the target's drivers "
           "before it can find the root filesystem; the guest's "
           "autodetection would see the preparation's own hardware and drop "
           "what it does not see%s%s", missing[0] ? "; missing today: " : "",
           missing);
  prep_change(x, path, why, "added %s", names);
  return 0;
}

static int rebuild(struct prep *x, struct kernel *k)
{
  CLEANUP_FREE char *out = NULL;
  char cmd[800], sh[820];

  if (strcmp(x->initramfs_tool, "dracut") == 0)
    snprintf(cmd, sizeof cmd, "dracut -f '%s' '%s'", k->initrd, k->kver);
  else
    snprintf(cmd, sizeof cmd, "update-initramfs -u -k '%s'", k->kver);
  snprintf(sh, sizeof sh, "%s 2>&1", cmd);
  if ((out = gf_sh(x, sh)) == NULL) {
    ferry_error_prefix("rebuilding %s for %s: ", k->initrd, x->p->name);
    return -1;
  }
  prep_change(x, k->initrd, "so that it holds the drivers configured "
              "above", "rebuilt with the guest's %s: %s", x->initramfs_tool,
              cmd);
  return 0;
}

static int initrd_lacks(struct prep *x, struct kernel *k, const char *d,
                        const char *listing)
{
  if (kstate(k, d) != K_MODULE || kmod_listed(listing, d, KMOD_FIELD_LAST))
    return 0;
  ferry_error("%s was rebuilt but still lacks %s: check the guest's %s "
              "configuration (a hook or omit_drivers may drop it)",
              k->initrd, d, x->initramfs_tool);
  return 1;
}

/* Append name to the JSON array of strings set unless it is there. */
static void set_add(json_t *set, const char *name)
{
  json_t *v;
  size_t i;

  json_array_foreach(set, i, v)
    if (strcmp(json_string_value(v), name) == 0)
      return;
  json_array_append_new(set, json_string(name));
}

int prep_initramfs(struct prep *x)
{
  json_t *kernels = json_object_get(x->os, "kernels"), *kv;
  /* lack: the drivers some initramfs lacks today (so it is rebuilt);
   * want: every driver of the target that is a module of some kernel,
   * all of which go into the tool's configuration when the initramfs is
   * rebuilt: a rebuild in the appliance under MODULES=dep (or dracut's
   * host-only mode) would keep only what the appliance's hardware needs,
   * dropping a driver the old initramfs held */
  json_t *lack = json_array(), *want = json_array();
  struct kernel *ks = NULL;
  size_t nk = json_array_size(kernels), i, j;
  int r = -1, newest_ok = 1, checked = 0;
  char held[512] = "";

  ks = calloc(nk ? nk : 1, sizeof *ks);
  if (ks == NULL || lack == NULL || want == NULL) {
    ferry_error("out of memory");
    goto out;
  }
  /* which drivers each kernel has, and what its initramfs lacks */
  json_array_foreach(kernels, i, kv) {
    struct kernel *k = &ks[i];
    const char *const *lists[] = { x->p->storage, x->p->extra,
                                   x->emulated && x->p->emulated
                                     ? x->p->emulated : x->p->storage };
    CLEANUP_FREE char *listing = NULL;
    int need = 0;

    snprintf(k->kver, sizeof k->kver, "%s", json_string_value(kv));
    if (!has_module_tree(x, k->kver) && x->initramfs_tool == NULL) {
      /* a guest without module lists and without an initramfs tool (an
       * appliance with a hand-built initramfs): nothing here can read or
       * rebuild its initramfs; the boot proof must show it boots */
      json_array_append_new(x->warnings, json_sprintf(
        "kernel %s has no module lists (/lib/modules/%s/modules.dep) and "
        "the guest no initramfs tool: its initramfs is left as it is, "
        "unchecked", k->kver, k->kver));
      continue;
    }
    if (kernel_load(x, k, k->kver) == -1)
      goto out;
    checked++;
    if (initrd_path(x, k->kver, k->initrd, sizeof k->initrd) == NULL) {
      ferry_error("kernel %s has no initramfs in /boot (initrd.img-%s or "
                  "initramfs-%s.img): build one on the source", k->kver,
                  k->kver, k->kver);
      goto out;
    }
    for (j = 0; x->p->storage[j]; j++)
      if (kstate(k, x->p->storage[j]) == K_MISSING) {
        if (i + 1 == nk)
          newest_ok = 0;
        ferry_error("kernel %s has no %s driver (neither built in nor a "
                    "module in /lib/modules/%s): it cannot find its disk on "
                    "%s; install a kernel with it on the source and sync "
                    "again", k->kver, x->p->storage[j], k->kver,
                    x->p->hardware);
        json_array_append_new(x->warnings, json_string(ferry_errmsg()));
      }
    if ((listing = initrd_list(x, k->initrd)) == NULL)
      goto out;
    for (size_t l = 0; l < 3; l++)
      for (j = 0; lists[l][j]; j++) {
        const char *d = lists[l][j];

        if (kstate(k, d) != K_MODULE)
          continue;
        set_add(want, d);
        if (!kmod_listed(listing, d, KMOD_FIELD_LAST)) {
          need = 1;
          set_add(lack, d);
        }
      }
    k->need = need || x->rebuild_initramfs;
  }
  if (!newest_ok) {
    ferry_error("%s", json_string_value(json_array_get(x->warnings,
      json_array_size(x->warnings) - 1)));
    goto out;
  }
  for (i = 0; i < nk; i++)
    if (ks[i].need)
      break;
  if (i == nk) {
    if (checked)
      prep_note(x, "the initramfs of every kernel with module lists already "
                "holds the drivers %s needs: not rebuilt", x->p->hardware);
    r = 0;
    goto out;
  }
  if (x->initramfs_tool == NULL) {
    ferry_error("the initramfs lacks the drivers %s needs and the guest has "
                "no tool to rebuild it (update-initramfs or dracut): "
                "install initramfs-tools or dracut on the source and sync "
                "again", x->p->hardware);
    goto out;
  }
  if (configure_tool(x, want, lack) == -1)
    goto out;
  json_array_foreach(want, j, kv) {
    size_t len = strlen(held);

    snprintf(held + len, sizeof held - len, "%s%s", len ? " " : "",
             json_string_value(kv));
  }
  for (i = 0; i < nk; i++) {
    CLEANUP_FREE char *listing = NULL;

    if (!ks[i].need)
      continue;
    if (rebuild(x, &ks[i]) == -1 ||
        (listing = initrd_list(x, ks[i].initrd)) == NULL)
      goto out;
    /* the rebuilt image must hold every driver configured above, read
     * back with the guest's own lister */
    json_array_foreach(want, j, kv)
      if (initrd_lacks(x, &ks[i], json_string_value(kv), listing))
        goto out;
    prep_note(x, "%s holds the drivers %s needs (%s), as the guest's %s "
              "lists it", ks[i].initrd, x->p->name, held,
              strcmp(x->initramfs_tool, "dracut") == 0 ? "lsinitrd"
                                                       : "lsinitramfs");
  }
  r = 0;
out:
  for (i = 0; ks && i < nk; i++) {
    free(ks[i].dep);
    free(ks[i].builtin);
  }
  free(ks);
  json_decref(lack);
  json_decref(want);
  return r;
}
