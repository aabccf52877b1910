/* The file:// store: every operation, atomic puts and writers, keys that
 * would escape the store, and scheme lookup. */
#include <errno.h>
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

int main(void)
{
  char *dir = test_tmpdir(), *url, path[512], buf[64];
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
  n = 0;
  CHECK(store_list(s, "out/", count_cb, &n) == 0);

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
