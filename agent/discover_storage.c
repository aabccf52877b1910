/* discover_storage.c - disks, partitions, filesystems, mounts, fstab.
 *
 * Sources, all below the root:
 *   sys/block/<disk>/{dev,size,removable,queue/rotational,serial,
 *                     device/{model,vendor,serial}}
 *   sys/block/<disk>/<part>/{partition,start,size,dev}
 *   run/udev/data/b<major>:<minor>  partition table, partition type,
 *     filesystem type, UUID and label, as udev's blkid builtin read them
 *     from the device (the agent itself never opens a device)
 *   proc/1/mountinfo on the live root, else proc/self/mountinfo (else
 *     proc/mounts), proc/swaps, etc/fstab
 * Used and free space come from statvfs(3) of the mountpoint, which only
 * means something on the live root. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "util/cleanup.h"
#include "discover_int.h"
#include "util/error.h"

char *udev_property(const char *text, const char *key)
{
  size_t kl = strlen(key);
  const char *p = text;

  while (p && *p) {
    const char *eol = strchr(p, '\n');
    size_t len = eol ? (size_t)(eol - p) : strlen(p);

    if (len > kl + 3 && p[0] == 'E' && p[1] == ':' &&
        strncmp(p + 2, key, kl) == 0 && p[2 + kl] == '=') {
      const char *v = p + 3 + kl, *end = p + len;
      char *out = malloc((size_t)(end - v) + 1), *w = out;

      if (out == NULL)
        return NULL;
      while (v < end) {
        unsigned int c;

        /* udev_util_encode_string: unsafe bytes become \xNN */
        if (v[0] == '\\' && end - v >= 4 && v[1] == 'x' &&
            isxdigit((unsigned char)v[2]) && isxdigit((unsigned char)v[3]) &&
            sscanf(v + 2, "%2x", &c) == 1) {
          *w++ = (char)c;
          v += 4;
        } else {
          *w++ = *v++;
        }
      }
      *w = '\0';
      return out;
    }
    p = eol ? eol + 1 : NULL;
  }
  return NULL;
}

void unescape_octal(char *s)
{
  char *w = s;

  while (*s) {
    if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' &&
        s[2] <= '7' && s[3] >= '0' && s[3] <= '7') {
      *w++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
      s += 4;
    } else {
      *w++ = *s++;
    }
  }
  *w = '\0';
}

/* A udev property, trimmed; the _ENC form (exact bytes) is preferred to
 * the plain one (spaces replaced by '_').  NULL if absent or empty. */
static char *udev_get(const char *text, const char *key)
{
  CLEANUP_FREE char *enc = NULL;
  char *v;
  size_t n;

  if (text == NULL)
    return NULL;
  if (asprintf(&enc, "%s_ENC", key) == -1) {
    enc = NULL;
    return NULL;
  }
  v = udev_property(text, enc);
  if (v == NULL)
    v = udev_property(text, key);
  if (v == NULL)
    return NULL;
  n = strlen(v);
  while (n > 0 && isspace((unsigned char)v[n - 1]))
    v[--n] = '\0';
  if (n == 0) {
    free(v);
    return NULL;
  }
  return v;
}

char *discover_udev_block(struct discover_ctx *ctx, const char *majmin)
{
  if (majmin == NULL)
    return NULL;
  return rootfs_read(&ctx->root, NULL, "run/udev/data/b%s", majmin);
}

/* Split a line into white-space separated fields in place; the count. */
static size_t split_fields(char *line, char **f, size_t max)
{
  size_t n = 0;

  while (n < max) {
    line += strspn(line, " \t");
    if (*line == '\0')
      break;
    f[n++] = line;
    line += strcspn(line, " \t");
    if (*line)
      *line++ = '\0';
  }
  return n;
}

static int add_mount_row(json_t *rows, const char *source, const char *target,
                         const char *fstype, const char *options,
                         const char *majmin, const char *fsroot)
{
  json_t *row = json_pack("{s:s, s:s, s:s, s:s, s:o, s:o}",
                          "source", source, "target", target,
                          "fstype", fstype, "options", options,
                          "majmin", json_str_or_null(majmin),
                          "fsroot", json_str_or_null(fsroot));

  return row ? json_array_append_new(rows, row) : -1;
}

/* proc/self/mountinfo (proc(5)): "id parent maj:min root mountpoint
 * mount-options [optional...] - fstype source super-options".  Its
 * maj:min ties a mount to its block device even when the source says
 * "/dev/root".  The options are shown as /proc/mounts does: the mount's
 * own, then the superblock's without its leading rw/ro. */
static int load_mountinfo(json_t *rows, char *text)
{
  char *line, *save = NULL;

  for (line = strtok_r(text, "\n", &save); line;
       line = strtok_r(NULL, "\n", &save)) {
    char *f[64], *opts = NULL, *sopts;
    size_t n = split_fields(line, f, 64), dash;
    int r;

    for (dash = 6; dash < n && strcmp(f[dash], "-") != 0; dash++)
      ;
    if (dash + 2 >= n)
      continue;
    unescape_octal(f[3]);
    unescape_octal(f[4]);
    unescape_octal(f[dash + 2]);
    sopts = dash + 3 < n ? f[dash + 3] : "";
    if (strncmp(sopts, "rw", 2) == 0 || strncmp(sopts, "ro", 2) == 0)
      sopts += sopts[2] == ',' ? 3 : 2;
    if (asprintf(&opts, "%s%s%s", f[5], *sopts ? "," : "", sopts) == -1)
      return -1;
    r = add_mount_row(rows, f[dash + 2], f[4], f[dash + 1], opts, f[2],
                      f[3]);
    free(opts);
    if (r == -1)
      return -1;
  }
  return 0;
}

/* proc/mounts (fstab(5) format): no maj:min, so devices match by name. */
static int load_proc_mounts(json_t *rows, char *text)
{
  char *line, *save = NULL;

  for (line = strtok_r(text, "\n", &save); line;
       line = strtok_r(NULL, "\n", &save)) {
    char *f[6];

    if (split_fields(line, f, 6) < 4)
      continue;
    unescape_octal(f[0]);
    unescape_octal(f[1]);
    if (add_mount_row(rows, f[0], f[1], f[2], f[3], NULL, NULL) == -1)
      return -1;
  }
  return 0;
}

int discover_mounts_load(struct discover_ctx *ctx)
{
  /* Live, the mount table init sees: the agent may run in a mount
   * namespace of its own (ferry-agent.service's ProtectSystem=,
   * PrivateTmp=), whose table has / read-only plus private mounts. */
  CLEANUP_FREE char *text = ctx->root.live
    ? rootfs_read(&ctx->root, NULL, "proc/1/mountinfo") : NULL;
  json_t *rows;
  int r;

  if (text == NULL)
    text = rootfs_read(&ctx->root, NULL, "proc/self/mountinfo");
  if (text == NULL) {
    text = rootfs_read(&ctx->root, NULL, "proc/mounts");
    if (text == NULL)
      return 0;                 /* unknown: mount_table stays NULL */
  }
  rows = json_array();
  if (rows == NULL)
    return -1;
  if (strstr(text, " - "))
    r = load_mountinfo(rows, text);
  else
    r = load_proc_mounts(rows, text);
  if (r == -1) {
    json_decref(rows);
    return -1;
  }
  ctx->mount_table = rows;
  return 0;
}

/* Kernel-internal filesystems: not storage a migration moves. */
static int pseudo_fs(const char *fstype)
{
  static const char *const pseudo[] = {
    "autofs", "binfmt_misc", "bpf", "cgroup", "cgroup2", "configfs",
    "debugfs", "devpts", "devtmpfs", "efivarfs", "fusectl", "hugetlbfs",
    "mqueue", "nsfs", "proc", "pstore", "ramfs", "rpc_pipefs",
    "securityfs", "selinuxfs", "sysfs", "tmpfs", "tracefs",
  };

  for (size_t i = 0; i < sizeof pseudo / sizeof pseudo[0]; i++)
    if (strcmp(fstype, pseudo[i]) == 0)
      return 1;
  return 0;
}

json_t *discover_mounts(struct discover_ctx *ctx)
{
  json_t *out, *row;
  size_t i;

  if (ctx->mount_table == NULL)
    return json_null();
  out = json_array();
  json_array_foreach(ctx->mount_table, i, row) {
    const char *fstype = json_string_value(json_object_get(row, "fstype"));
    json_t *m;

    if (pseudo_fs(fstype))
      continue;
    m = json_pack("{s:O, s:O, s:O, s:O}",
                  "source", json_object_get(row, "source"),
                  "target", json_object_get(row, "target"),
                  "fstype", json_object_get(row, "fstype"),
                  "options", json_object_get(row, "options"));
    if (m == NULL || json_array_append_new(out, m) == -1) {
      json_decref(out);
      return NULL;
    }
  }
  return out;
}

/* fstab(5): spec file vfstype mntops freq passno; the last two default
 * to 0 when left out, as the format says. */
json_t *discover_fstab(struct discover_ctx *ctx)
{
  CLEANUP_FREE char *text = rootfs_read(&ctx->root, NULL, "etc/fstab");
  char *line, *save = NULL;
  json_t *out;

  if (text == NULL)
    return json_null();
  out = json_array();
  for (line = strtok_r(text, "\n", &save); out && line;
       line = strtok_r(NULL, "\n", &save)) {
    char *f[6];
    size_t n;
    json_t *e;

    line += strspn(line, " \t");
    if (*line == '#')
      continue;
    n = split_fields(line, f, 6);
    if (n < 3)
      continue;
    for (size_t i = 0; i < 2; i++)
      unescape_octal(f[i]);
    e = json_pack("{s:s, s:s, s:s, s:s, s:i, s:i}",
                  "spec", f[0], "file", f[1], "vfstype", f[2],
                  "mntops", n > 3 ? f[3] : "defaults",
                  "freq", n > 4 ? (int)strtol(f[4], NULL, 10) : 0,
                  "passno", n > 5 ? (int)strtol(f[5], NULL, 10) : 0);
    if (e == NULL || json_array_append_new(out, e) == -1) {
      json_decref(out);
      return NULL;
    }
  }
  return out;
}

/* The mount of a block device: by maj:min, else by a source that is one
 * of its paths or names its filesystem UUID.  Of several, the first that
 * mounts the filesystem's root (not a bind mount of a subdirectory). */
static json_t *find_mount(struct discover_ctx *ctx, const char *majmin,
                          const char *const *paths, const char *uuid)
{
  json_t *row, *best = NULL;
  size_t i;

  json_array_foreach(ctx->mount_table, i, row) {
    const char *mm = json_string_value(json_object_get(row, "majmin"));
    const char *src = json_string_value(json_object_get(row, "source"));
    const char *root = json_string_value(json_object_get(row, "fsroot"));
    int match = 0;

    if (majmin && mm && strcmp(mm, majmin) == 0)
      match = 1;
    for (size_t p = 0; !match && paths && paths[p]; p++)
      if (strcmp(src, paths[p]) == 0)
        match = 1;
    if (!match && uuid && strncmp(src, "/dev/disk/by-uuid/", 18) == 0 &&
        strcmp(src + 18, uuid) == 0)
      match = 1;
    if (!match)
      continue;
    if (root == NULL || strcmp(root, "/") == 0)
      return row;
    if (best == NULL)
      best = row;
  }
  return best;
}

/* proc/swaps lists active swap by path ("/dev/dm-1", "/dev/sda5"). */
static int swap_active(struct discover_ctx *ctx, const char *const *paths)
{
  CLEANUP_FREE char *text = rootfs_read(&ctx->root, NULL, "proc/swaps");
  char *line, *save = NULL;

  for (line = text ? strtok_r(text, "\n", &save) : NULL; line;
       line = strtok_r(NULL, "\n", &save)) {
    char *f[1];

    if (split_fields(line, f, 1) < 1)
      continue;
    unescape_octal(f[0]);
    for (size_t p = 0; paths && paths[p]; p++)
      if (strcmp(f[0], paths[p]) == 0)
        return 1;
  }
  return 0;
}

int discover_fs_fields(struct discover_ctx *ctx, json_t *obj,
                       const char *majmin, const char *const *paths)
{
  CLEANUP_FREE char *udev = discover_udev_block(ctx, majmin);
  CLEANUP_FREE char *fstype = udev_get(udev, "ID_FS_TYPE");
  CLEANUP_FREE char *uuid = udev_get(udev, "ID_FS_UUID");
  CLEANUP_FREE char *label = udev_get(udev, "ID_FS_LABEL");
  json_t *mnt = ctx->mount_table ? find_mount(ctx, majmin, paths, uuid)
                                 : NULL;
  const char *mountpoint = NULL, *mfstype = NULL;
  int have_space = 0, bad = 0;
  uint64_t used = 0, avail = 0;
  struct statvfs sv;

  if (mnt) {
    mountpoint = json_string_value(json_object_get(mnt, "target"));
    mfstype = json_string_value(json_object_get(mnt, "fstype"));
    /* space means something only for the running system's mounts */
    if (ctx->root.live && statvfs(mountpoint, &sv) == 0) {
      used = (uint64_t)(sv.f_blocks - sv.f_bfree) * sv.f_frsize;
      avail = (uint64_t)sv.f_bavail * sv.f_frsize;
      have_space = 1;
    }
  } else if (fstype && strcmp(fstype, "swap") == 0 &&
             swap_active(ctx, paths)) {
    mountpoint = "[SWAP]";
  }
  /* without a udev database the mounted filesystem's type is still
   * known: the kernel's word in the mount table */
  bad |= json_object_set_new(obj, "filesystem",
                             json_str_or_null(fstype ? fstype : mfstype));
  bad |= json_object_set_new(obj, "uuid", json_str_or_null(uuid));
  bad |= json_object_set_new(obj, "label", json_str_or_null(label));
  bad |= json_object_set_new(obj, "mountpoint",
                             json_str_or_null(mountpoint));
  bad |= json_object_set_new(obj, "used", json_u64_or_null(have_space,
                                                           used));
  bad |= json_object_set_new(obj, "free", json_u64_or_null(have_space,
                                                           avail));
  return bad ? -1 : 0;
}

/* A disk is a /sys/block entry that is real hardware or a virtual disk,
 * not a loop, ram, zram, CD, floppy, NBD, MD RAID or device-mapper node
 * (device-mapper volumes are reported under lvm). */
static int is_disk(const char *name)
{
  static const char *const skip[] = { "loop", "ram", "zram", "sr", "dm-",
                                      "md", "nbd", "fd" };
  size_t i;

  for (i = 0; i < sizeof skip / sizeof skip[0]; i++)
    if (strncmp(name, skip[i], strlen(skip[i])) == 0)
      return 0;
  return 1;
}

/* A sector count read from sysfs in bytes: sysfs "size" and "start" are
 * in 512-byte units whatever the device's logical block size. */
static json_t *sectors_bytes(struct discover_ctx *ctx, const char *rel)
{
  uint64_t v;

  if (rootfs_u64(&ctx->root, &v, "%s", rel) == -1 || v > INT64_MAX / 512)
    return json_null();
  return json_integer((json_int_t)(v * 512));
}

static json_t *one_partition(struct discover_ctx *ctx, const char *disk,
                             const char *name)
{
  CLEANUP_FREE char *majmin = rootfs_value(&ctx->root, "sys/block/%s/%s/dev",
                                           disk, name);
  CLEANUP_FREE char *udev = discover_udev_block(ctx, majmin);
  CLEANUP_FREE char *ptype = udev_get(udev, "ID_PART_ENTRY_TYPE");
  CLEANUP_FREE char *puuid = udev_get(udev, "ID_PART_ENTRY_UUID");
  CLEANUP_FREE char *plabel = udev_get(udev, "ID_PART_ENTRY_NAME");
  CLEANUP_FREE char *path = NULL, *rel_start = NULL, *rel_size = NULL;
  uint64_t number;
  int have_number;
  json_t *part;

  have_number = rootfs_u64(&ctx->root, &number, "sys/block/%s/%s/partition",
                           disk, name) == 0;
  if (asprintf(&path, "/dev/%s", name) == -1 ||
      asprintf(&rel_start, "sys/block/%s/%s/start", disk, name) == -1 ||
      asprintf(&rel_size, "sys/block/%s/%s/size", disk, name) == -1)
    return NULL;
  part = json_pack("{s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o}",
                   "name", name, "path", path,
                   "number", json_u64_or_null(have_number, number),
                   "start", sectors_bytes(ctx, rel_start),
                   "size", sectors_bytes(ctx, rel_size),
                   "type", json_str_or_null(ptype),
                   "part_uuid", json_str_or_null(puuid),
                   "part_label", json_str_or_null(plabel),
                   "dev", json_str_or_null(majmin));
  if (part) {
    const char *paths[] = { path, NULL };

    if (discover_fs_fields(ctx, part, majmin, paths) == -1) {
      json_decref(part);
      return NULL;
    }
  }
  return part;
}

static json_t *discover_partitions(struct discover_ctx *ctx,
                                   const char *disk)
{
  static const char *const number_order[] = { "number", NULL };
  json_t *parts = json_array();
  size_t nnames, i, dl = strlen(disk);
  char **names = rootfs_list(&ctx->root, &nnames, "sys/block/%s", disk);

  if (parts == NULL)
    goto out;
  for (i = 0; i < nnames; i++) {
    json_t *part;

    /* a partition is a subdirectory holding a "partition" attribute */
    if (strncmp(names[i], disk, dl) != 0 ||
        !rootfs_exists(&ctx->root, "sys/block/%s/%s/partition", disk,
                       names[i]))
      continue;
    part = one_partition(ctx, disk, names[i]);
    if (part == NULL || json_array_append_new(parts, part) == -1)
      goto oom;
  }
  /* sda10 sorts before sda2 by name: order by partition number */
  if (json_array_sort(parts, number_order) == -1)
    goto oom;
  goto out;
oom:
  json_decref(parts);
  parts = NULL;
out:
  rootfs_names_free(names, nnames);
  return parts;
}

/* The first readable of several attributes, or NULL. */
static char *first_value(struct discover_ctx *ctx, const char *disk,
                         const char *const *rels)
{
  char *v = NULL;

  for (size_t i = 0; v == NULL && rels[i]; i++)
    v = rootfs_value(&ctx->root, "sys/block/%s/%s", disk, rels[i]);
  return v;
}

static json_t *one_disk(struct discover_ctx *ctx, const char *name)
{
  /* udev's model (ATA IDENTIFY, full length) before sysfs's (the SCSI
   * INQUIRY field, cut at 16 characters) */
  static const char *const model_rels[] = { "device/model", NULL };
  static const char *const vendor_rels[] = { "device/vendor", NULL };
  /* virtio-blk has "serial", NVMe "device/serial"; SCSI disks only
   * udev's VPD-derived ID_SERIAL_SHORT */
  static const char *const serial_rels[] = { "serial", "device/serial",
                                             NULL };
  CLEANUP_FREE char *majmin = rootfs_value(&ctx->root, "sys/block/%s/dev",
                                           name);
  CLEANUP_FREE char *udev = discover_udev_block(ctx, majmin);
  CLEANUP_FREE char *model = udev_get(udev, "ID_MODEL");
  CLEANUP_FREE char *vendor = first_value(ctx, name, vendor_rels);
  CLEANUP_FREE char *serial = first_value(ctx, name, serial_rels);
  CLEANUP_FREE char *ptable = udev_get(udev, "ID_PART_TABLE_TYPE");
  CLEANUP_FREE char *ptuuid = udev_get(udev, "ID_PART_TABLE_UUID");
  CLEANUP_FREE char *path = NULL, *rel_size = NULL;
  uint64_t rot;
  int have_rot;
  json_t *disk;

  if (model == NULL)
    model = first_value(ctx, name, model_rels);
  if (serial == NULL)
    serial = udev_get(udev, "ID_SERIAL_SHORT");
  have_rot = rootfs_u64(&ctx->root, &rot, "sys/block/%s/queue/rotational",
                        name) == 0;
  if (asprintf(&path, "/dev/%s", name) == -1 ||
      asprintf(&rel_size, "sys/block/%s/size", name) == -1)
    return NULL;
  disk = json_pack("{s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}",
                   "name", name, "path", path,
                   "dev", json_str_or_null(majmin),
                   "size", sectors_bytes(ctx, rel_size),
                   "vendor", json_str_or_null(vendor),
                   "model", json_str_or_null(model),
                   "serial", json_str_or_null(serial),
                   "rotational", have_rot ? json_boolean(rot != 0)
                                          : json_null(),
                   "partition_table", json_str_or_null(ptable),
                   "partition_table_uuid", json_str_or_null(ptuuid));
  if (disk) {
    const char *paths[] = { path, NULL };

    if (discover_fs_fields(ctx, disk, majmin, paths) == -1 ||
        json_object_set_new(disk, "partitions",
                            discover_partitions(ctx, name)) == -1) {
      json_decref(disk);
      return NULL;
    }
  }
  return disk;
}

json_t *discover_disks(struct discover_ctx *ctx)
{
  size_t n, i;
  char **names = rootfs_list(&ctx->root, &n, "sys/block");
  json_t *disks;

  if (names == NULL)
    return json_null();
  disks = json_array();
  for (i = 0; disks && i < n; i++) {
    json_t *disk;

    if (!is_disk(names[i]))
      continue;
    disk = one_disk(ctx, names[i]);
    if (disk == NULL || json_array_append_new(disks, disk) == -1) {
      json_decref(disks);
      disks = NULL;
    }
  }
  rootfs_names_free(names, n);
  return disks;
}
