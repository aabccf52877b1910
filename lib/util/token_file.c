#include "util/token_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/error.h"
#include "util/file.h"

/* Record the message and leave err in errno for the caller. */
#define FAIL(err, ...)                                                       \
  do {                                                                       \
    int err_ = (err);                                                        \
    ferry_error(__VA_ARGS__);                                                \
    errno = err_;                                                            \
    return -1;                                                               \
  } while (0)

int token_file_read(const char *path, char *buf, size_t size)
{
  CLEANUP_CLOSE int fd = -1;
  struct stat st;
  size_t len = 0, i;
  ssize_t n;

  buf[0] = '\0';
  /* O_NONBLOCK: a FIFO in its place must not hang us before fstat */
  fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
  if (fd == -1 && errno == ELOOP)
    FAIL(ELOOP, "token file %s is a symbolic link: name the file itself",
         path);
  if (fd == -1)
    FAIL(errno, "cannot open token file %s: %m", path);
  if (fstat(fd, &st) == -1)
    FAIL(errno, "cannot stat token file %s: %m", path);
  if (!S_ISREG(st.st_mode))
    FAIL(EINVAL, "token file %s is not a regular file", path);
  if (st.st_mode & 077)
    FAIL(EPERM, "token file %s may be read by other users (mode %04o): run "
         "chmod 600 %s", path, (unsigned)(st.st_mode & 07777), path);
  /* read one byte past the room we have, to tell "fits" from "too long" */
  while (len < size) {
    char c;

    n = read(fd, len < size - 1 ? buf + len : &c,
             len < size - 1 ? size - 1 - len : 1);
    if (n == -1 && errno == EINTR)
      continue;
    if (n == -1) {
      explicit_bzero(buf, size);
      FAIL(errno, "cannot read token file %s: %m", path);
    }
    if (n == 0)
      break;
    len += (size_t)n;
  }
  if (len >= size) {
    explicit_bzero(buf, size);
    FAIL(EFBIG, "token file %s holds %zu bytes or more: it should hold just "
         "the token", path, size);
  }
  while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
    len--;
  buf[len] = '\0';
  if (len == 0)
    FAIL(ENODATA, "token file %s is empty: put the token in it", path);
  for (i = 0; i < len; i++)
    if ((unsigned char)buf[i] < 0x20 || buf[i] == 0x7f) {
      explicit_bzero(buf, size);
      FAIL(EINVAL, "token file %s holds control characters or several "
           "lines: it should hold just the token", path);
    }
  return 0;
}

int token_file_write(const char *path, const char *token, int replace)
{
  CLEANUP_FREE char *tmp = NULL;
  size_t len = strlen(token);
  int fd;

  /* a name of this process's own: two servers making the same token file
   * at once must not remove each other's temporary file (the loser's
   * link() then fails with EEXIST, and it reads the winner's token) */
  if (asprintf(&tmp, "%s.%ld.tmp", path, (long)getpid()) == -1) {
    ferry_error("out of memory");
    return -1;
  }
  unlink(tmp);
  fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd == -1) {
    ferry_error("cannot create token file %s: %m (check that its directory "
                "exists and is writable)", path);
    return -1;
  }
  if (write(fd, token, len) != (ssize_t)len || write(fd, "\n", 1) != 1 ||
      fsync(fd) == -1) {
    ferry_error("cannot write token file %s: %m", path);
    close(fd);
    unlink(tmp);
    return -1;
  }
  if (close(fd) == -1 ||
      (replace ? rename(tmp, path) : link(tmp, path)) == -1) {
    int e = errno;

    if (e == EEXIST)
      ferry_error("token file %s already exists: it was not replaced",
                  path);
    else
      ferry_error("cannot write token file %s: %m", path);
    unlink(tmp);
    errno = e;
    return -1;
  }
  if (!replace)
    unlink(tmp);
  if (file_sync_dir(path) == -1) {
    ferry_error("cannot sync the directory of token file %s: %m", path);
    return -1;
  }
  return 0;
}
