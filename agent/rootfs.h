/* rootfs.h - reading a system's files below a root directory.
 *
 * discover reads the running machine (root "/") or a copy of one (a
 * fixture tree in tests, a mounted disk image).  Every path is resolved
 * inside the root: symbolic links, absolute ones included, cannot leave
 * it, as if the agent ran chrooted (openat2(2) RESOLVE_IN_ROOT, Linux 5.6;
 * an older kernel falls back to openat(2) relative to the root, which is
 * exact for the live root "/" that such a kernel runs the agent on).
 *
 * Paths are printf formats relative to the root ("sys/block/%s/size").
 * Nothing here prints or exits: a file that cannot be read is NULL or -1
 * with errno, and the caller reports the field as unknown. */
#ifndef FERRY_ROOTFS_H
#define FERRY_ROOTFS_H

#include <stddef.h>
#include <stdint.h>

/* The most ROOT/x a read takes: /proc/cpuinfo of a 448-thread host is
 * about 700 KiB.  A larger file counts as unreadable (unknown), never as
 * silently truncated. */
#define ROOTFS_READ_MAX (4u << 20)

struct rootfs {
  int fd;                       /* O_PATH descriptor of the root */
  int live;                     /* the root is "/": the running system */
};

/* Open the root directory PATH; -1 with an error if it is not one. */
int rootfs_open(struct rootfs *r, const char *path);
void rootfs_close(struct rootfs *r);

/* open(2) of a path inside the root; -1 with errno. */
int rootfs_openat(const struct rootfs *r, int flags, const char *fmt, ...)
  __attribute__((format(printf, 3, 4)));

/* The whole file, NUL-terminated (*len bytes without the NUL when len is
 * not NULL); NULL with errno if unreadable or over ROOTFS_READ_MAX.
 * The caller frees. */
char *rootfs_read(const struct rootfs *r, size_t *len, const char *fmt, ...)
  __attribute__((format(printf, 3, 4)));

/* A one-value file (a sysfs attribute): its text with surrounding white
 * space removed; NULL if unreadable or empty.  The caller frees. */
char *rootfs_value(const struct rootfs *r, const char *fmt, ...)
  __attribute__((format(printf, 2, 3)));

/* A one-value file holding a decimal number; -1 if unreadable or not
 * a number. */
int rootfs_u64(const struct rootfs *r, uint64_t *out, const char *fmt, ...)
  __attribute__((format(printf, 3, 4)));

/* 1 if the path exists (any type; a dangling link does not), else 0. */
int rootfs_exists(const struct rootfs *r, const char *fmt, ...)
  __attribute__((format(printf, 2, 3)));

/* The last component of a symbolic link's target (sysfs driver links:
 * ".../drivers/virtio_net" -> "virtio_net"); NULL if it is no link.
 * The caller frees. */
char *rootfs_link_name(const struct rootfs *r, const char *fmt, ...)
  __attribute__((format(printf, 2, 3)));

/* The names in a directory except "." entries, sorted bytewise; NULL if
 * it cannot be read (an empty directory gives a non-NULL list with
 * *n == 0).  Free with rootfs_names_free. */
char **rootfs_list(const struct rootfs *r, size_t *n, const char *fmt, ...)
  __attribute__((format(printf, 3, 4)));
void rootfs_names_free(char **names, size_t n);

#endif
