/* source/disk.c - regular files and block devices, read with pread(2).
 *
 * Holes come from lseek(SEEK_DATA/SEEK_HOLE): sparse image files and
 * thin-provisioned files are read only where they hold data.  Block devices
 * report all data; zero detection on read skips their empty chunks. */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/error.h"
#include "source/source.h"

struct source_file {
  struct source src;
  int fd;
  int seek_holes;       /* SEEK_DATA works here */
};

extern const struct source_ops source_file_ops;

static int file_pread(struct source *src, void *buf, size_t len,
                      uint64_t off)
{
  struct source_file *sf = (struct source_file *)src;
  size_t done = 0;

  while (done < len) {
    ssize_t r = pread(sf->fd, (char *)buf + done, len - done,
                      (off_t)(off + done));

    if (r == -1) {
      if (errno == EINTR)
        continue;
      ferry_error("read %s at offset %llu: %m: check the disk (dmesg) and "
                  "run again; finished chunks are kept",
                  src->name, (unsigned long long)(off + done));
      return -1;
    }
    if (r == 0) {
      ferry_error("read %s at offset %llu: the source shrank to less than "
                  "%llu bytes while being read", src->name,
                  (unsigned long long)(off + done),
                  (unsigned long long)src->size);
      return -1;
    }
    done += (size_t)r;
  }
  return 0;
}

static int file_extent(struct source *src, uint64_t off, int *zero,
                       uint64_t *len)
{
  struct source_file *sf = (struct source_file *)src;
  off_t data, hole;

  if (!sf->seek_holes)
    goto all_data;
  data = lseek(sf->fd, (off_t)off, SEEK_DATA);
  if (data == -1) {
    if (errno == ENXIO) {           /* no data after off: a hole to the end */
      *zero = 1;
      *len = src->size - off;
      return 0;
    }
    goto all_data;                  /* EINVAL: the filesystem cannot tell */
  }
  if ((uint64_t)data > off) {
    *zero = 1;
    *len = ((uint64_t)data < src->size ? (uint64_t)data : src->size) - off;
    return 0;
  }
  hole = lseek(sf->fd, (off_t)off, SEEK_HOLE);
  if (hole == -1 || (uint64_t)hole <= off)
    goto all_data;
  *zero = 0;
  *len = ((uint64_t)hole < src->size ? (uint64_t)hole : src->size) - off;
  return 0;
all_data:
  *zero = 0;
  *len = src->size - off;
  return 0;
}

static void file_close(struct source *src)
{
  struct source_file *sf = (struct source_file *)src;

  if (sf == NULL)
    return;
  if (sf->fd >= 0)
    close(sf->fd);
  free(src->name);
  free(sf);
}

struct source *source_file_open(const char *path)
{
  struct source_file *sf;
  struct stat st;
  int fd;

  /* O_RDONLY always: nothing destructive on the source server */
  fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd == -1) {
    int err = errno;

    ferry_error("cannot open source %s: %s%s", path, strerror(err),
                err == ENOENT ? ": check the path (e.g. /dev/sda or a disk "
                                "image file)"
                : err == EACCES ? ": run as root or a user who may read "
                                  "the disk"
                : "");
    return NULL;
  }
  if (fstat(fd, &st) == -1) {
    ferry_error("cannot stat source %s: %m", path);
    close(fd);
    return NULL;
  }
  sf = calloc(1, sizeof *sf);
  if (sf == NULL || (sf->src.name = strdup(path)) == NULL) {
    ferry_error("out of memory");
    free(sf);
    close(fd);
    return NULL;
  }
  sf->fd = fd;
  sf->src.ops = &source_file_ops;
  if (S_ISBLK(st.st_mode)) {
    uint64_t size;

    if (ioctl(fd, BLKGETSIZE64, &size) == -1) {
      ferry_error("cannot read the size of block device %s: %m", path);
      file_close(&sf->src);
      return NULL;
    }
    sf->src.size = size;
  } else if (S_ISREG(st.st_mode)) {
    sf->src.size = (uint64_t)st.st_size;
    sf->seek_holes = 1;
  } else {
    ferry_error("source %s is neither a regular file nor a block device",
                path);
    file_close(&sf->src);
    return NULL;
  }
  if (sf->src.size == 0) {
    ferry_error("source %s is empty (0 bytes): nothing to migrate", path);
    file_close(&sf->src);
    return NULL;
  }
  posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  return &sf->src;
}

const struct source_ops source_file_ops = {
  .name = "file",
  .pread = file_pread,
  .extent = file_extent,
  .close = file_close,
};
