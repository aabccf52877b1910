/* The file:// store: every operation, atomic puts and writers (no
 * temporary file is left in the store after puts, commits, an aborted
 * writer or failed writes), keys that would escape the store, and scheme
 * lookup. */
#include <errno.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/error.h"
#include "store/store.h"
#include "test.h"

static int count_cb(void *opaque, const char *key, uint64_t size)
{
  int *n = opaque;

  (void)size;
  if (strncmp(key, "chunks/", 7) == 0)
    (*n)++;
  return 0;
}

/* Every file under the store's root: "\nkey1\nkey2\n" (walk order). */
static char walk_list[4096];
static size_t walk_root_len;

static int walk_cb(const char *path, const struct stat *st, int flag,
                   struct FTW *ftw)
{
  size_t n = strlen(walk_list);

  (void)st;
  (void)ftw;
  if (flag != FTW_D && flag != FTW_DP)
    snprintf(walk_list + n, sizeof walk_list - n, "%s\n",
             path + walk_root_len + 1);
  return 0;
}

/* Exactly the files there are, whatever a temporary would be called. */
static const char *files_in(const char *root)
{
  snprintf(walk_list, sizeof walk_list, "\n");
  walk_root_len = strlen(root);
  nftw(root, walk_cb, 16, FTW_PHYS);
  return walk_list;
}

static int has_file(const char *list, const char *key)
{
  char line[256];

  snprintf(line, sizeof line, "\n%s\n", key);
  return strstr(list, line) != NULL;
}

static size_t count_files(const char *list)
{
  size_t n = 0;

  for (; *list; list++)
    n += *list == '\n';
  return n - 1;
}

int main(void)
{
  char *dir = test_tmpdir(), *url, path[512], buf[64], root[512];
  static char big[256 << 10];
  const char *files;
  struct rlimit old_fsize, small_fsize;
  struct store_writer *w;
  struct store *s;
  uint64_t size;
  size_t got;
  char *all;
  int n = 0;
  struct stat st;

  CHECK(asprintf(&url, "file://%s/root", dir) > 0);
  s = store_open(url);
  CHECK(s != NULL);

  /* nothing exists until the first put */
  CHECK(store_head(s, "manifest.json", &size) == 0);
  CHECK(store_get(s, "x", 0, buf, 4, &got) == -1 && errno == ENOENT);
  CHECK_CONTAINS(ferry_errmsg(), "x not found in file://");

  CHECK(store_put(s, "chunks/aa", "hello world", 11) == 0);
  CHECK(store_put(s, "chunks/bb", "x", 1) == 0);
  CHECK(store_put(s, "other", "y", 1) == 0);
  CHECK(store_head(s, "chunks/aa", &size) == 1);
  CHECK_U64(size, 11);

  /* range reads, short only at the end */
  CHECK(store_get(s, "chunks/aa", 6, buf, 5, &got) == 0);
  CHECK_U64(got, 5);
  CHECK(memcmp(buf, "world", 5) == 0);
  CHECK(store_get(s, "chunks/aa", 6, buf, 50, &got) == 0);
  CHECK_U64(got, 5);

  CHECK(store_list(s, "chunks/", count_cb, &n) == 0);
  CHECK_U64(n, 2);

  /* replacing is atomic and complete */
  CHECK(store_put(s, "chunks/aa", "HELLO", 5) == 0);
  CHECK(store_get_all(s, "chunks/aa", 100, &all, &got) == 0);
  CHECK_STR(all, "HELLO");
  free(all);
  CHECK(store_get_all(s, "chunks/aa", 4, &all, &got) == -1);  /* cap */

  /* a writer's object is invisible until commit; holes stay holes */
  w = store_writer_open(s, "out/disk.raw", NULL);
  CHECK(w != NULL);
  CHECK(store_writer_write(w, "abc", 3) == 0);
  CHECK(store_writer_zero(w, 1 << 20) == 0);
  CHECK(store_writer_write(w, "z", 1) == 0);
  CHECK(store_head(s, "out/disk.raw", &size) == 0);
  CHECK(store_writer_commit(w) == 0);
  CHECK(store_head(s, "out/disk.raw", &size) == 1);
  CHECK_U64(size, 3 + (1 << 20) + 1);
  snprintf(path, sizeof path, "%s/root/out/disk.raw", dir);
  CHECK(stat(path, &st) == 0 && st.st_blocks * 512 < (1 << 20));

  /* an aborted writer leaves nothing behind, not even its temporary */
  w = store_writer_open(s, "out/partial.raw", NULL);
  CHECK(store_writer_write(w, "abc", 3) == 0);
  store_writer_abort(w);
  CHECK(store_head(s, "out/partial.raw", &size) == 0);

  /* failed writes (the file size limit: EFBIG, SIGXFSZ ignored) leave no
   * temporary either: a put, a writer's write, a writer's commit */
  CHECK(getrlimit(RLIMIT_FSIZE, &old_fsize) == 0);
  small_fsize = old_fsize;
  small_fsize.rlim_cur = 64 << 10;          /* the soft limit only */
  signal(SIGXFSZ, SIG_IGN);
  CHECK(setrlimit(RLIMIT_FSIZE, &small_fsize) == 0);
  CHECK(store_put(s, "chunks/toobig", big, sizeof big) == -1);
  CHECK(store_head(s, "chunks/toobig", &size) == 0);
  w = store_writer_open(s, "out/toobig.raw", NULL);
  CHECK(w != NULL);
  CHECK(store_writer_write(w, big, sizeof big) == -1);
  store_writer_abort(w);
  w = store_writer_open(s, "out/toobig2.raw", NULL);
  CHECK(w != NULL);
  CHECK(store_writer_write(w, "abc", 3) == 0);
  CHECK(store_writer_zero(w, sizeof big) == 0);
  CHECK(store_writer_commit(w) == -1);
  CHECK(setrlimit(RLIMIT_FSIZE, &old_fsize) == 0);
  CHECK(store_head(s, "out/toobig2.raw", &size) == 0);

  /* the directory holds the objects and nothing else */
  snprintf(root, sizeof root, "%s/root", dir);
  files = files_in(root);
  CHECK(has_file(files, "chunks/aa"));
  CHECK(has_file(files, "chunks/bb"));
  CHECK(has_file(files, "other"));
  CHECK(has_file(files, "out/disk.raw"));
  if (count_files(files) != 4)
    fprintf(stderr, "files in the store:\n%s", files);
  CHECK_U64(count_files(files), 4);

  CHECK(store_del(s, "chunks/bb") == 0);
  CHECK(store_del(s, "chunks/bb") == 0);          /* absent is fine */
  CHECK(store_head(s, "chunks/bb", &size) == 0);
  CHECK(store_flush(s) == 0);

  /* keys that would leave the store are refused */
  CHECK(store_put(s, "../escape", "x", 1) == -1);
  CHECK(store_put(s, "a/../../escape", "x", 1) == -1);
  CHECK(store_put(s, "/abs", "x", 1) == -1);
  CHECK(store_put(s, "a//b", "x", 1) == -1);
  CHECK_CONTAINS(ferry_errmsg(), "invalid object key");
  /* the file store refuses them itself too, whoever calls it */
  CHECK(s->ops->put(s, "../escape", "x", 1) == -1);
  CHECK_CONTAINS(ferry_errmsg(), "would leave the store");
  CHECK(s->ops->put(s, "chunks/../../escape", "x", 1) == -1);
  CHECK(s->ops->put(s, "/abs", "x", 1) == -1);
  CHECK(s->ops->head(s, "../root", &size) == -1);
  CHECK(s->ops->writer_open(s, "a/../../escape", NULL) == NULL);
  CHECK(s->ops->put(s, "chunks/..x", "x", 1) == 0);   /* a name, not ".." */
  snprintf(path, sizeof path, "%s/escape", dir);
  CHECK(access(path, F_OK) == -1);

  /* presign is not something a directory can do */
  CHECK(store_presign(s, "chunks/aa", "GET", 60) == NULL);
  store_close(s);

  /* unknown schemes and non-URLs are named with the choices */
  CHECK(store_open("ftp://host/x") == NULL);
  CHECK_CONTAINS(ferry_errmsg(), "unknown store scheme 'ftp'");
  CHECK_CONTAINS(ferry_errmsg(), "file://");
  CHECK(store_open("/just/a/path") == NULL);
  CHECK_CONTAINS(ferry_errmsg(), "not a store URL");
  CHECK(store_open("file://") == NULL);

  test_rmrf(dir);
  free(url);
  free(dir);
  TEST_MAIN_END();
}
