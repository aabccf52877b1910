#include "util/file.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/error.h"

char *file_read_small(const char *path, size_t max, int secret, size_t *len)
{
  CLEANUP_CLOSE int fd = -1;
  struct stat st;
  char *buf;
  size_t got = 0;
  int e;

  fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
  if (fd == -1) {
    e = errno;
    if (e == ELOOP)
      ferry_error("%s is a symbolic link: name the file itself", path);
    else
      ferry_error("cannot open %s: %m", path);
    errno = e;
    return NULL;
  }
  if (fstat(fd, &st) == -1) {
    ferry_error("cannot stat %s: %m", path);
    return NULL;
  }
  if (!S_ISREG(st.st_mode)) {
    ferry_error("%s is not a regular file", path);
    errno = EINVAL;
    return NULL;
  }
  if (secret && (st.st_mode & 077)) {
    ferry_error("%s holds a private key but others may read it (mode "
                "%04o): run chmod 600 %s", path,
                (unsigned)(st.st_mode & 07777), path);
    errno = EPERM;
    return NULL;
  }
  if ((size_t)st.st_size > max) {
    ferry_error("%s is larger than %zu bytes: is it the right file?", path,
                max);
    errno = EFBIG;
    return NULL;
  }
  buf = malloc(max + 1);
  if (buf == NULL) {
    ferry_error("out of memory");
    return NULL;
  }
  while (got <= max) {
    ssize_t n = read(fd, buf + got, max + 1 - got);

    if (n == -1 && errno == EINTR)
      continue;
    if (n == -1) {
      e = errno;
      ferry_error("cannot read %s: %m", path);
      explicit_bzero(buf, max + 1);
      free(buf);
      errno = e;
      return NULL;
    }
    if (n == 0)
      break;
    got += (size_t)n;
  }
  if (got > max) {                  /* it grew while we read */
    ferry_error("%s is larger than %zu bytes: is it the right file?", path,
                max);
    explicit_bzero(buf, max + 1);
    free(buf);
    errno = EFBIG;
    return NULL;
  }
  buf[got] = '\0';
  if (len)
    *len = got;
  return buf;
}

int file_sync_dir(const char *path)
{
  CLEANUP_FREE char *copy = strdup(path);
  int fd, r;

  if (copy == NULL)
    return -1;
  fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd == -1)
    return -1;
  r = fsync(fd);
  close(fd);
  return r;
}

int file_write_atomic(const char *path, const void *data, size_t len,
                      mode_t mode, int replace)
{
  CLEANUP_FREE char *tmp = NULL;
  const char *p = data;
  size_t left = len;
  int fd, e;

  if (asprintf(&tmp, "%s.tmp", path) == -1) {
    ferry_error("out of memory");
    return -1;
  }
  unlink(tmp);
  fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
  if (fd == -1) {
    ferry_error("cannot create %s: %m (check that its directory exists and "
                "is writable)", path);
    return -1;
  }
  /* the umask must not widen nor narrow what the caller asked for */
  if (fchmod(fd, mode) == -1)
    goto write_error;
  while (left > 0) {
    ssize_t n = write(fd, p, left);

    if (n == -1 && errno == EINTR)
      continue;
    if (n <= 0)
      goto write_error;
    p += n;
    left -= (size_t)n;
  }
  if (fsync(fd) == -1)
    goto write_error;
  if (close(fd) == -1) {
    fd = -1;
    goto write_error;
  }
  fd = -1;
  if ((replace ? rename(tmp, path) : link(tmp, path)) == -1) {
    e = errno;
    if (e == EEXIST)
      ferry_error("%s already exists: it was not replaced", path);
    else
      ferry_error("cannot write %s: %m", path);
    unlink(tmp);
    errno = e;
    return -1;
  }
  if (!replace)
    unlink(tmp);
  if (file_sync_dir(path) == -1) {
    ferry_error("cannot sync the directory of %s: %m", path);
    return -1;
  }
  return 0;
write_error:
  e = errno;
  ferry_error("cannot write %s: %m", path);
  if (fd >= 0)
    close(fd);
  unlink(tmp);
  errno = e;
  return -1;
}
