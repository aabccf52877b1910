/* discover_int.h - the parts of discover shared between its files, and
 * the parsers the unit tests reach (tests/unit/test_discover.c).
 *
 * Each discover_*.c builds one part of the inventory from files below the
 * root; a value it cannot read is JSON null (docs/INVENTORY.md). */
#ifndef FERRY_DISCOVER_INT_H
#define FERRY_DISCOVER_INT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "rootfs.h"

/* What several parts need: the root, the kernel release, and the mount
 * table (so disks and logical volumes can say where they are mounted). */
struct discover_ctx {
  struct rootfs root;
  char *kernel_release;         /* NULL if unknown */
  json_t *mount_table;          /* internal rows, see discover_mounts */
};

/* JSON helpers: a string, or null for NULL; an integer, or null when
 * known is 0.  Never NULL themselves except on OOM. */
json_t *json_str_or_null(const char *s);
json_t *json_u64_or_null(int known, uint64_t v);

/* Sort an array of objects by the values of keys, the first deciding
 * (strings bytewise, integers by value, null or missing first), so the
 * output is the same on every run.  -1 on OOM. */
int json_array_sort(json_t *arr, const char *const *keys);

/* Storage (discover_storage.c): the mount table first, then the rest. */
int discover_mounts_load(struct discover_ctx *ctx);
json_t *discover_mounts(struct discover_ctx *ctx);
json_t *discover_fstab(struct discover_ctx *ctx);
json_t *discover_disks(struct discover_ctx *ctx);
/* Set the filesystem fields of a block device on obj: filesystem, uuid,
 * label (udev database of MAJ:MIN), mountpoint (mount table by MAJ:MIN,
 * else by one of the NULL-terminated /dev paths; "[SWAP]" for active
 * swap), used and free (statvfs, live root only).  -1 on OOM. */
int discover_fs_fields(struct discover_ctx *ctx, json_t *obj,
                       const char *majmin, const char *const *paths);

/* The udev database entry of block device MAJ:MIN
 * (/run/udev/data/b<maj>:<min>); NULL if there is none. */
char *discover_udev_block(struct discover_ctx *ctx, const char *majmin);

/* LVM (discover_lvm.c). */
json_t *discover_lvm(struct discover_ctx *ctx);

/* Network (discover_net.c). */
json_t *discover_network(struct discover_ctx *ctx);

/* Platform (discover_platform.c). */
json_t *discover_boot(struct discover_ctx *ctx);
json_t *discover_platform(struct discover_ctx *ctx);
json_t *discover_guest_agents(struct discover_ctx *ctx);

/* Drivers (discover_drivers.c). */
json_t *discover_drivers(struct discover_ctx *ctx);

/* ---- parsers, pure functions of their input (unit-tested) ---- */

/* The value of KEY in udev database text ("E:KEY=value" lines), with
 * udev's \xNN escapes decoded; NULL if absent.  The caller frees. */
char *udev_property(const char *text, const char *key);

/* Decode fstab(5)/mtab octal escapes (\040 for a space) in place. */
void unescape_octal(char *s);

/* Split a device-mapper name of an LVM volume into VG and LV names
 * ("my--vg-root" -> "my-vg", "root": a '-' inside a name is doubled);
 * -1 if it is no such name.  The caller frees *vg and *lv. */
int dm_name_split(const char *dm, char **vg, char **lv);

/* Parse LVM2 text metadata (/etc/lvm/backup/<vg>) into a JSON tree:
 * sections become objects, "key = value" members, [a, b] arrays;
 * NULL with an error naming the line if it is malformed. */
json_t *lvm_metadata_parse(const char *text);

/* An IPv4 address as /proc/net/route prints it (hex of the 32-bit value
 * in the kernel's byte order) into dotted quad; -1 if malformed. */
int route_hex_ipv4(const char *hex, char *out, size_t outlen);
/* 32 hex digits (/proc/net/if_inet6, ipv6_route) into IPv6 text. */
int hex_ipv6(const char *hex, char *out, size_t outlen);
/* The prefix length of a contiguous netmask in host order; -1 if the
 * mask has holes. */
int netmask_prefix(uint32_t mask);

/* The local IPv4 addresses in /proc/net/fib_trie text: every
 * "/32 host LOCAL" leaf, in order of appearance, each once; a JSON
 * array of strings. */
json_t *fib_trie_local(const char *text);

/* Call fn for the name of every member of an initramfs image read from
 * fd: concatenated cpio archives, the uncompressed "early" ones
 * (microcode) walked here, the compressed remainder by libarchive
 * (gzip, xz, lzma, lz4, zstd, bzip2).  -1 with an error if the image
 * cannot be read or holds no archive. */
int initramfs_list(int fd, void (*fn)(const char *name, void *opaque),
                   void *opaque);

#endif
