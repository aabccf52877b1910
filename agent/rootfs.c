/* rootfs.c - reading a system's files below a root directory (see
 * rootfs.h). */
#include "rootfs.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/error.h"
#include "util/vector.h"

DEFINE_VECTOR_TYPE(string_vector, char *);

int rootfs_open(struct rootfs *r, const char *path)
{
  r->live = strcmp(path, "/") == 0;
  r->fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (r->fd == -1) {
    ferry_error("root directory %s: %m", path);
    return -1;
  }
  return 0;
}

void rootfs_close(struct rootfs *r)
{
  if (r->fd >= 0)
    close(r->fd);
  r->fd = -1;
}

static int openat_in_root(const struct rootfs *r, const char *rel, int flags)
{
  static int no_openat2;        /* the kernel said ENOSYS once */
  struct open_how how = {
    .flags = (uint64_t)flags | O_CLOEXEC,
    .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
  };
  int fd;

  while (*rel == '/')
    rel++;
  if (*rel == '\0')
    rel = ".";
  if (!__atomic_load_n(&no_openat2, __ATOMIC_RELAXED)) {
    fd = (int)syscall(SYS_openat2, r->fd, rel, &how, sizeof how);
    if (fd >= 0 || errno != ENOSYS)
      return fd;
    __atomic_store_n(&no_openat2, 1, __ATOMIC_RELAXED);
  }
  return openat(r->fd, rel, flags | O_CLOEXEC);
}

static int vopen(const struct rootfs *r, int flags, const char *fmt,
                 va_list ap)
{
  CLEANUP_FREE char *rel = NULL;

  if (vasprintf(&rel, fmt, ap) == -1) {
    rel = NULL;
    errno = ENOMEM;
    return -1;
  }
  return openat_in_root(r, rel, flags);
}

int rootfs_openat(const struct rootfs *r, int flags, const char *fmt, ...)
{
  va_list ap;
  int fd;

  va_start(ap, fmt);
  fd = vopen(r, flags, fmt, ap);
  va_end(ap);
  return fd;
}

static char *vread(const struct rootfs *r, size_t *len, const char *fmt,
                   va_list ap)
{
  CLEANUP_CLOSE int fd = vopen(r, O_RDONLY, fmt, ap);
  size_t n = 0, cap = 4096;
  char *buf, *p;
  ssize_t got;

  if (fd == -1)
    return NULL;
  buf = malloc(cap);
  if (buf == NULL)
    return NULL;
  /* /proc and /sys files report size 0: read to EOF */
  for (;;) {
    if (cap - n < 2) {
      if (cap >= ROOTFS_READ_MAX + 1) {
        free(buf);
        errno = EFBIG;
        return NULL;
      }
      cap = cap * 2 > ROOTFS_READ_MAX + 1 ? ROOTFS_READ_MAX + 1 : cap * 2;
      p = realloc(buf, cap);
      if (p == NULL) {
        free(buf);
        return NULL;
      }
      buf = p;
    }
    got = read(fd, buf + n, cap - n - 1);
    if (got == -1 && errno == EINTR)
      continue;
    if (got == -1) {
      free(buf);
      return NULL;
    }
    if (got == 0)
      break;
    n += (size_t)got;
  }
  buf[n] = '\0';
  if (len)
    *len = n;
  return buf;
}

char *rootfs_read(const struct rootfs *r, size_t *len, const char *fmt, ...)
{
  va_list ap;
  char *s;

  va_start(ap, fmt);
  s = vread(r, len, fmt, ap);
  va_end(ap);
  return s;
}

static char *vvalue(const struct rootfs *r, const char *fmt, va_list ap)
{
  size_t n, start = 0;
  char *s = vread(r, &n, fmt, ap);

  if (s == NULL)
    return NULL;
  while (n > 0 && isspace((unsigned char)s[n - 1]))
    n--;
  s[n] = '\0';
  while (start < n && isspace((unsigned char)s[start]))
    start++;
  if (start == n || memchr(s, '\0', n)) {
    /* empty, or binary: no value */
    free(s);
    errno = ENODATA;
    return NULL;
  }
  memmove(s, s + start, n - start + 1);
  return s;
}

char *rootfs_value(const struct rootfs *r, const char *fmt, ...)
{
  va_list ap;
  char *s;

  va_start(ap, fmt);
  s = vvalue(r, fmt, ap);
  va_end(ap);
  return s;
}

int rootfs_u64(const struct rootfs *r, uint64_t *out, const char *fmt, ...)
{
  CLEANUP_FREE char *s = NULL;
  unsigned long long v;
  char *end;
  va_list ap;

  va_start(ap, fmt);
  s = vvalue(r, fmt, ap);
  va_end(ap);
  if (s == NULL || !isdigit((unsigned char)s[0]))
    return -1;
  errno = 0;
  v = strtoull(s, &end, 10);
  if (errno || *end)
    return -1;
  *out = v;
  return 0;
}

int rootfs_exists(const struct rootfs *r, const char *fmt, ...)
{
  va_list ap;
  int fd;

  va_start(ap, fmt);
  fd = vopen(r, O_PATH, fmt, ap);
  va_end(ap);
  if (fd == -1)
    return 0;
  close(fd);
  return 1;
}

char *rootfs_link_name(const struct rootfs *r, const char *fmt, ...)
{
  CLEANUP_CLOSE int fd = -1;
  char target[4096], *slash;
  va_list ap;
  ssize_t n;

  va_start(ap, fmt);
  fd = vopen(r, O_PATH | O_NOFOLLOW, fmt, ap);
  va_end(ap);
  if (fd == -1)
    return NULL;
  /* readlinkat(2) with an empty path reads the O_PATH link itself */
  n = readlinkat(fd, "", target, sizeof target - 1);
  if (n <= 0)
    return NULL;
  target[n] = '\0';
  while (n > 1 && target[n - 1] == '/')
    target[--n] = '\0';
  slash = strrchr(target, '/');
  return strdup(slash ? slash + 1 : target);
}

static int cmp_name(const void *a, const void *b)
{
  return strcmp(*(char *const *)a, *(char *const *)b);
}

char **rootfs_list(const struct rootfs *r, size_t *n, const char *fmt, ...)
{
  string_vector names = empty_vector;
  struct dirent *de;
  va_list ap;
  char *name;
  DIR *d;
  int fd;

  *n = 0;
  va_start(ap, fmt);
  fd = vopen(r, O_RDONLY | O_DIRECTORY, fmt, ap);
  va_end(ap);
  if (fd == -1)
    return NULL;
  d = fdopendir(fd);
  if (d == NULL) {
    close(fd);
    return NULL;
  }
  /* an empty directory is an empty list, not NULL (unreadable) */
  if (string_vector_reserve(&names, 1) == -1)
    goto fail;
  while ((de = readdir(d)) != NULL) {
    if (de->d_name[0] == '.')
      continue;
    name = strdup(de->d_name);
    if (name == NULL || string_vector_append(&names, name) == -1) {
      free(name);
      goto fail;
    }
  }
  closedir(d);
  qsort(names.ptr, names.len, sizeof *names.ptr, cmp_name);
  *n = names.len;
  return names.ptr;
fail:
  closedir(d);
  rootfs_names_free(names.ptr, names.len);
  return NULL;
}

void rootfs_names_free(char **names, size_t n)
{
  for (size_t i = 0; i < n && names; i++)
    free(names[i]);
  free(names);
}
