/* util/token_file: a token file is read only when it is a regular file of
 * its own (no link, no FIFO) that the group and others cannot read, holding
 * one line that fits; each refusal names the file and the fix. */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/error.h"
#include "util/token_file.h"
#include "test.h"

static char dir_path[4096];

static const char *put(const char *name, const char *text, mode_t mode)
{
  static char path[4200];
  int fd;

  snprintf(path, sizeof path, "%s/%s", dir_path, name);
  unlink(path);
  fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
  CHECK(fd >= 0);
  CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
  CHECK(fchmod(fd, mode) == 0);
  close(fd);
  return path;
}

/* The read fails with errno err and a message holding needle. */
static void refused(const char *path, int err, const char *needle)
{
  char buf[64];

  errno = 0;
  CHECK(token_file_read(path, buf, sizeof buf) == -1);
  CHECK_U64(errno, err);
  CHECK_CONTAINS(ferry_errmsg(), path);
  CHECK_CONTAINS(ferry_errmsg(), needle);
  CHECK_STR(buf, "");                   /* nothing of a refused file kept */
}

int main(void)
{
  char *dir = test_tmpdir(), buf[64], link_path[4200], fifo[4200];
  char long_token[65];
  const char *p;
  struct stat st;

  snprintf(dir_path, sizeof dir_path, "%s", dir);

  p = put("ok", "s3cret-token-0123\r\n", 0600);
  CHECK(token_file_read(p, buf, sizeof buf) == 0);
  CHECK_STR(buf, "s3cret-token-0123");
  p = put("bare", "abc", 0400);
  CHECK(token_file_read(p, buf, sizeof buf) == 0);
  CHECK_STR(buf, "abc");
  /* the cap is the buffer: 63 bytes fit in 64, not with a newline */
  memset(long_token, 'x', 63);
  long_token[63] = '\0';
  p = put("fits", long_token, 0600);
  CHECK(token_file_read(p, buf, sizeof buf) == 0);
  CHECK_U64(strlen(buf), 63);
  long_token[63] = '\n';
  long_token[64] = '\0';
  refused(put("full", long_token, 0600), EFBIG, "just the token");

  refused(put("group", "abc\n", 0640), EPERM, "run chmod 600");
  refused(put("world", "abc\n", 0604), EPERM, "mode 0604");
  refused(put("empty", "", 0600), ENODATA, "is empty");
  refused(put("newline", "\n", 0600), ENODATA, "is empty");
  refused(put("two", "abc\ndef\n", 0600), EINVAL, "just the token");
  refused(put("tab", "ab\tc", 0600), EINVAL, "control characters");

  snprintf(link_path, sizeof link_path, "%s/link", dir);
  CHECK(symlink("ok", link_path) == 0);
  refused(link_path, ELOOP, "symbolic link");
  refused(dir, EINVAL, "not a regular file");
  snprintf(fifo, sizeof fifo, "%s/fifo", dir);
  CHECK(mkfifo(fifo, 0600) == 0);
  refused(fifo, EINVAL, "not a regular file");   /* and does not hang */
  snprintf(fifo, sizeof fifo, "%s/absent", dir);
  refused(fifo, ENOENT, "No such file");

  /* written with mode 0600, no temporary left, read back */
  snprintf(fifo, sizeof fifo, "%s/written", dir);
  CHECK(token_file_write(fifo, "new-token", 0) == 0);
  CHECK(stat(fifo, &st) == 0);
  CHECK_U64(st.st_mode & 07777, 0600);
  CHECK(token_file_read(fifo, buf, sizeof buf) == 0);
  CHECK_STR(buf, "new-token");
  /* create-only never replaces a token someone else made first */
  errno = 0;
  CHECK(token_file_write(fifo, "second", 0) == -1);
  CHECK(errno == EEXIST);
  CHECK(token_file_read(fifo, buf, sizeof buf) == 0);
  CHECK_STR(buf, "new-token");
  CHECK(token_file_write(fifo, "replaced", 1) == 0);
  CHECK(token_file_read(fifo, buf, sizeof buf) == 0);
  CHECK_STR(buf, "replaced");
  snprintf(fifo, sizeof fifo, "%s/written.tmp", dir);
  CHECK(access(fifo, F_OK) == -1);
  snprintf(fifo, sizeof fifo, "%s/no/such/dir/t", dir);
  CHECK(token_file_write(fifo, "x", 1) == -1);
  CHECK_CONTAINS(ferry_errmsg(), "check that its directory exists");

  test_rmrf(dir);
  free(dir);
  TEST_MAIN_END();
}
