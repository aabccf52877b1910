/* discover_drivers.c - are the drivers each target needs there, in the
 * kernel and in the initramfs that has to find the root disk?
 *
 * For every kernel under lib/modules/ (and the running one):
 *   lib/modules/<ver>/modules.builtin   built into the kernel image
 *   lib/modules/<ver>/modules.dep       shipped as a loadable module
 *   boot/initrd.img-<ver> (Debian, Ubuntu), boot/initramfs-<ver>.img
 *   (RHEL, CentOS, Fedora), boot/initrd-<ver> (SUSE): the cpio archives
 *   the boot loader hands the kernel; a driver is there when its .ko is
 *   a member, or when it is built in.
 * For the running kernel also proc/modules (loaded modules) and
 * sys/module/<name> (loaded or built in): they tell what the kernel has
 * when its module lists are gone, and what it uses now. */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "discover_int.h"
#include "util/error.h"

/* The drivers a target's disks and NICs need (module names as the kernel
 * spells them, '-' read as '_'):
 *   KVM, OpenStack, GCP (older types)  virtio_pci, virtio_blk or
 *                                      virtio_scsi, virtio_net
 *   Azure, Hyper-V                     hv_vmbus, hv_storvsc, hv_netvsc
 *   AWS Xen instances                  xen_blkfront, xen_netfront
 *   AWS Nitro                          nvme (+ nvme_core), ena
 *   GCP third generation               nvme, gve (gVNIC) */
static const char *const drivers[] = {
  "virtio_pci", "virtio_blk", "virtio_scsi", "virtio_net",
  "hv_vmbus", "hv_storvsc", "hv_netvsc",
  "xen_blkfront", "xen_netfront",
  "nvme", "nvme_core", "ena", "gve",
};
#define NDRIVERS (sizeof drivers / sizeof drivers[0])

/* Index in drivers[] of the module a path names ("kernel/drivers/block/
 * xen-blkfront.ko.xz" -> xen_blkfront), or -1. */
static int driver_index(const char *path, size_t len)
{
  const char *base = path, *ko;
  char name[64];
  size_t n;

  for (size_t i = 0; i < len; i++)
    if (path[i] == '/')
      base = path + i + 1;
  n = (size_t)(path + len - base);
  ko = memmem(base, n, ".ko", 3);
  /* ".ko" ends the name or starts a compression suffix (.ko.xz) */
  if (ko == NULL || (ko + 3 != path + len && ko[3] != '.'))
    return -1;
  n = (size_t)(ko - base);
  if (n == 0 || n >= sizeof name)
    return -1;
  for (size_t i = 0; i < n; i++)
    name[i] = base[i] == '-' ? '_' : base[i];
  name[n] = '\0';
  for (size_t i = 0; i < NDRIVERS; i++)
    if (strcmp(name, drivers[i]) == 0)
      return (int)i;
  return -1;
}

/* ---- initramfs: concatenated cpio archives ---- */

/* cpio(5) "new ASCII" header: magic 070701 (070702 with checksums), then
 * 13 fields of 8 hex digits; the name follows, NUL included, and name and
 * data are each padded to 4 bytes.  Linux's initramfs uses only this
 * format (Documentation/driver-api/early-userspace/buffer-format.rst). */
#define NEWC_HDR 110
#define NEWC_NAME_MAX 4096

static int hex8(const char *s, uint32_t *out)
{
  uint32_t v = 0;

  for (int i = 0; i < 8; i++) {
    int c = s[i], d;

    if (c >= '0' && c <= '9')
      d = c - '0';
    else if (c >= 'a' && c <= 'f')
      d = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F')
      d = c - 'A' + 10;
    else
      return -1;
    v = v << 4 | (uint32_t)d;
  }
  *out = v;
  return 0;
}

static int pread_full(int fd, void *buf, size_t len, off_t off)
{
  size_t got = 0;

  while (got < len) {
    ssize_t r = pread(fd, (char *)buf + got, len - got,
                      off + (off_t)got);

    if (r == -1 && errno == EINTR)
      continue;
    if (r <= 0)
      return -1;
    got += (size_t)r;
  }
  return 0;
}

/* Walk one uncompressed newc archive at *off up to its trailer; *off ends
 * past it.  -1 if it is malformed. */
static int newc_walk(int fd, off_t size, off_t *off,
                     void (*fn)(const char *, void *), void *opaque)
{
  char hdr[NEWC_HDR], name[NEWC_NAME_MAX];

  for (;;) {
    uint32_t filesize, namesize;
    off_t next;

    if (*off + NEWC_HDR > size || pread_full(fd, hdr, NEWC_HDR, *off) == -1 ||
        (memcmp(hdr, "070701", 6) != 0 && memcmp(hdr, "070702", 6) != 0) ||
        hex8(hdr + 54, &filesize) == -1 || hex8(hdr + 94, &namesize) == -1 ||
        namesize == 0 || namesize > NEWC_NAME_MAX) {
      ferry_error("malformed cpio header at offset %jd", (intmax_t)*off);
      return -1;
    }
    if (*off + NEWC_HDR + (off_t)namesize > size ||
        pread_full(fd, name, namesize, *off + NEWC_HDR) == -1) {
      ferry_error("truncated cpio member at offset %jd", (intmax_t)*off);
      return -1;
    }
    name[namesize - 1] = '\0';
    next = *off + ((NEWC_HDR + (off_t)namesize + 3) & ~(off_t)3);
    next += ((off_t)filesize + 3) & ~(off_t)3;
    if (next > size + 3) {
      ferry_error("cpio member '%s' runs past the end", name);
      return -1;
    }
    *off = next;
    if (strcmp(name, "TRAILER!!!") == 0)
      return 0;
    fn(name, opaque);
  }
}

struct fd_source {
  int fd;
  off_t off;
  char buf[65536];
};

static la_ssize_t fd_source_read(struct archive *a, void *opaque,
                                 const void **out)
{
  struct fd_source *s = opaque;
  ssize_t r;

  do
    r = pread(s->fd, s->buf, sizeof s->buf, s->off);
  while (r == -1 && errno == EINTR);
  if (r == -1) {
    archive_set_error(a, errno, "read: %s", strerror(errno));
    return -1;
  }
  s->off += r;
  *out = s->buf;
  return r;
}

/* The compressed remainder from off: one archive through libarchive. */
static int archive_walk(int fd, off_t off, void (*fn)(const char *, void *),
                        void *opaque)
{
  struct archive *a = archive_read_new();
  struct archive_entry *ent;
  struct fd_source *src = malloc(sizeof *src);
  int r = -1, st;

  if (a == NULL || src == NULL) {
    ferry_error("out of memory reading an initramfs");
    goto out;
  }
  src->fd = fd;
  src->off = off;
  archive_read_support_filter_all(a);
  archive_read_support_format_cpio(a);
  if (archive_read_open(a, src, NULL, fd_source_read, NULL) != ARCHIVE_OK) {
    ferry_error("%s", archive_error_string(a));
    goto out;
  }
  while ((st = archive_read_next_header(a, &ent)) == ARCHIVE_OK) {
    const char *name = archive_entry_pathname(ent);

    if (name)
      fn(name, opaque);
  }
  if (st != ARCHIVE_EOF) {
    ferry_error("%s", archive_error_string(a));
    goto out;
  }
  r = 0;
out:
  if (a)
    archive_read_free(a);
  free(src);
  return r;
}

int initramfs_list(int fd, void (*fn)(const char *name, void *opaque),
                   void *opaque)
{
  off_t size = lseek(fd, 0, SEEK_END), off = 0;
  int archives = 0;

  if (size == -1) {
    ferry_error("initramfs: %m");
    return -1;
  }
  while (off < size) {
    unsigned char magic[6];

    if (pread_full(fd, magic, sizeof magic < (size_t)(size - off)
                   ? sizeof magic : (size_t)(size - off), off) == -1)
      break;
    /* archives are padded with zeros (to 4 bytes, or 512 by cpio -o) */
    if (magic[0] == 0) {
      off++;
      continue;
    }
    if (size - off >= 6 && memcmp(magic, "07070", 5) == 0 &&
        (magic[5] == '1' || magic[5] == '2')) {
      if (newc_walk(fd, size, &off, fn, opaque) == -1)
        return -1;
      archives++;
      continue;
    }
    /* not plain cpio: a compressed archive runs to the end */
    if (archive_walk(fd, off, fn, opaque) == -1)
      return -1;
    return 0;
  }
  if (archives == 0) {
    ferry_error("no cpio archive in the initramfs");
    return -1;
  }
  return 0;
}

static void mark_member(const char *name, void *opaque)
{
  int *found = opaque, i = driver_index(name, strlen(name));

  if (i >= 0)
    found[i] = 1;
}

/* ---- per kernel ---- */

/* Mark drivers[] named by the lines (up to ':' for modules.dep) of a
 * module list; -1 if the file is unreadable. */
static int read_module_list(struct discover_ctx *ctx, const char *ver,
                            const char *file, int *mark)
{
  CLEANUP_FREE char *text = rootfs_read(&ctx->root, NULL,
                                        "lib/modules/%s/%s", ver, file);
  const char *p = text;

  if (text == NULL)
    return -1;
  while (*p) {
    size_t len = strcspn(p, ":\n");
    int i = driver_index(p, len);

    if (i >= 0)
      mark[i] = 1;
    p += strcspn(p, "\n");
    if (*p)
      p++;
  }
  return 0;
}

/* The kernel's initramfs (root-relative path) or NULL if there is none. */
static char *find_initramfs(struct discover_ctx *ctx, const char *ver)
{
  static const char *const patterns[] = {
    "boot/initrd.img-%s", "boot/initramfs-%s.img", "boot/initrd-%s",
  };

  for (size_t i = 0; i < sizeof patterns / sizeof *patterns; i++) {
    char *rel;

    if (asprintf(&rel, patterns[i], ver) == -1)
      return NULL;
    if (rootfs_exists(&ctx->root, "%s", rel))
      return rel;
    free(rel);
  }
  return NULL;
}

/* What the running kernel shows of a driver: 1 if sys/module/<name>
 * exists, 0 if not, -1 if sys/module is unreadable; *listed set to 1 if
 * proc/modules lists it, 0 if not, -1 if that is unreadable. */
static int running_driver(struct discover_ctx *ctx, const char *modules,
                          const char *name, int *listed)
{
  size_t nl = strlen(name);
  const char *p = modules;

  *listed = modules ? 0 : -1;
  /* proc/modules: "name size refcount deps state address" per line */
  while (p && *p) {
    if (strncmp(p, name, nl) == 0 && p[nl] == ' ')
      *listed = 1;
    p = strchr(p, '\n');
    if (p)
      p++;
  }
  if (!rootfs_exists(&ctx->root, "sys/module"))
    return -1;
  return rootfs_exists(&ctx->root, "sys/module/%s", name);
}

static json_t *one_kernel(struct discover_ctx *ctx, const char *ver)
{
  int builtin[NDRIVERS] = { 0 }, module[NDRIVERS] = { 0 };
  int in_image[NDRIVERS] = { 0 };
  int have_builtin, have_dep, have_image = 0;
  int running = ctx->kernel_release && strcmp(ver, ctx->kernel_release) == 0;
  CLEANUP_FREE char *image = find_initramfs(ctx, ver);
  CLEANUP_FREE char *image_error = NULL;
  CLEANUP_FREE char *modules = running ? rootfs_read(&ctx->root, NULL,
                                                     "proc/modules") : NULL;
  json_t *k, *drv;

  have_builtin = read_module_list(ctx, ver, "modules.builtin", builtin) == 0;
  have_dep = read_module_list(ctx, ver, "modules.dep", module) == 0;
  if (image) {
    CLEANUP_CLOSE int fd = rootfs_openat(&ctx->root, O_RDONLY, "%s", image);

    if (fd == -1)
      image_error = strdup(strerror(errno));
    else if (initramfs_list(fd, mark_member, in_image) == -1)
      image_error = strdup(ferry_errmsg());
    else
      have_image = 1;
  }
  drv = json_object();
  for (size_t i = 0; drv && i < NDRIVERS; i++) {
    const char *where = builtin[i] ? "builtin" : module[i] ? "module"
                      : have_builtin && have_dep ? "missing" : NULL;
    int listed = -1, loaded = running ? running_driver(ctx, modules,
                                                       drivers[i], &listed)
                                      : -1;
    json_t *init;

    if (where == NULL && running) {
      /* no module lists: what the running kernel shows.  In sys/module but
       * not in proc/modules is built in; on the live root a missing
       * proc/modules means a kernel without loadable modules at all */
      if (listed == 1)
        where = "module";
      else if (loaded == 1 && (listed == 0 || ctx->root.live))
        where = "builtin";
    }
    /* a built-in driver is there at boot whatever the image holds */
    if (where && strcmp(where, "builtin") == 0)
      init = json_true();
    else if (have_image)
      init = json_boolean(in_image[i]);
    else
      init = json_null();
    if (json_object_set_new(drv, drivers[i], json_pack(
          "{s:o, s:o, s:o}", "kernel", json_str_or_null(where),
          "initramfs", init,
          "loaded", loaded == -1 ? json_null() : json_boolean(loaded)))
        == -1) {
      json_decref(drv);
      drv = NULL;
    }
  }
  k = json_pack("{s:s, s:b, s:o, s:o, s:o}", "release", ver,
                "running", running,
                "initramfs", image ? json_sprintf("/%s", image) : json_null(),
                "initramfs_error", json_str_or_null(image_error),
                "drivers", drv);
  return k;
}

/* The tool that builds the guest's initramfs: guest preparation runs it
 * (docs/PREPARATION.md), so preflight flags a guest without one. */
static json_t *initramfs_tool(struct discover_ctx *ctx)
{
  static const struct { const char *path, *tool; } tools[] = {
    { "usr/sbin/update-initramfs", "initramfs-tools" },
    { "sbin/update-initramfs", "initramfs-tools" },
    { "usr/bin/dracut", "dracut" },
    { "usr/sbin/dracut", "dracut" },
    { "sbin/dracut", "dracut" },
    { "sbin/mkinitrd", "mkinitrd" },
    { "usr/sbin/mkinitrd", "mkinitrd" },
  };
  size_t i;

  for (i = 0; i < sizeof tools / sizeof tools[0]; i++)
    if (rootfs_exists(&ctx->root, "%s", tools[i].path))
      return json_string(tools[i].tool);
  return json_null();
}

json_t *discover_drivers(struct discover_ctx *ctx)
{
  size_t n, i;
  char **vers = rootfs_list(&ctx->root, &n, "lib/modules");
  json_t *kernels = json_array();
  int running_seen = 0;

  for (i = 0; kernels && i < n; i++) {
    json_t *k;

    /* a kernel's directory has its module lists; leftovers of removed
     * kernels (only "updates/" or "extra/") do not count */
    if (!rootfs_exists(&ctx->root, "lib/modules/%s/modules.dep", vers[i]) &&
        !rootfs_exists(&ctx->root, "lib/modules/%s/modules.builtin",
                       vers[i]))
      continue;
    if (ctx->kernel_release && strcmp(vers[i], ctx->kernel_release) == 0)
      running_seen = 1;
    k = one_kernel(ctx, vers[i]);
    if (k == NULL || json_array_append_new(kernels, k) == -1) {
      json_decref(kernels);
      kernels = NULL;
    }
  }
  /* the running kernel, even without module files (its drivers are then
   * unknown; its initramfs may still be readable) */
  if (kernels && ctx->kernel_release && !running_seen &&
      json_array_append_new(kernels, one_kernel(ctx, ctx->kernel_release))
      == -1) {
    json_decref(kernels);
    kernels = NULL;
  }
  rootfs_names_free(vers, n);
  return kernels ? json_pack("{s:o, s:o}", "kernels", kernels,
                             "initramfs_tool", initramfs_tool(ctx)) : NULL;
}
