/* Disk sources: size, holes from SEEK_DATA/SEEK_HOLE, reads. */
#include <fcntl.h>
#include <unistd.h>

#include "util/error.h"
#include "source/source.h"
#include "util/zero.h"
#include "test.h"

int main(void)
{
  char *dir = test_tmpdir(), path[512], buf[4096];
  struct source *src;
  uint64_t len;
  int fd, zero;
  static char big[1 << 20];

  /* 8 MiB file: data in [1 MiB, 2 MiB), a hole everywhere else */
  snprintf(path, sizeof path, "%s/sparse.img", dir);
  fd = open(path, O_CREAT | O_WRONLY, 0644);
  memset(big, 'D', sizeof big);
  CHECK(pwrite(fd, big, sizeof big, 1 << 20) == (ssize_t)sizeof big);
  CHECK(ftruncate(fd, 8 << 20) == 0);
  close(fd);

  src = source_open(path);
  CHECK(src != NULL);
  CHECK_U64(src->size, 8 << 20);
  CHECK(source_extent(src, 0, &zero, &len) == 0);
  CHECK(zero == 1);
  CHECK_U64(len, 1 << 20);
  CHECK(source_extent(src, 1 << 20, &zero, &len) == 0);
  CHECK(zero == 0);
  CHECK_U64(len, 1 << 20);
  CHECK(source_extent(src, 2 << 20, &zero, &len) == 0);
  CHECK(zero == 1);
  CHECK_U64(len, 6 << 20);                     /* a hole to the end */
  CHECK(source_pread(src, buf, sizeof buf, (1 << 20) + 10) == 0);
  CHECK(buf[0] == 'D' && buf[4095] == 'D');
  CHECK(source_pread(src, buf, sizeof buf, 0) == 0);
  CHECK(buf_is_zero(buf, sizeof buf));
  /* reading past the end is an error, not zeros */
  CHECK(source_pread(src, buf, sizeof buf, (8 << 20) - 10) == -1);
  CHECK_CONTAINS(ferry_errmsg(), "shrank");
  source_close(src);

  /* bad sources: missing, a directory, empty */
  snprintf(path, sizeof path, "%s/missing.img", dir);
  CHECK(source_open(path) == NULL);
  CHECK_CONTAINS(ferry_errmsg(), "No such file");
  CHECK(source_open(dir) == NULL);
  CHECK_CONTAINS(ferry_errmsg(), "neither a regular file nor a block");
  snprintf(path, sizeof path, "%s/empty.img", dir);
  close(open(path, O_CREAT | O_WRONLY, 0644));
  CHECK(source_open(path) == NULL);
  CHECK_CONTAINS(ferry_errmsg(), "empty");
  CHECK(source_open("nbd://host/x") == NULL);

  test_rmrf(dir);
  free(dir);
  TEST_MAIN_END();
}
