/* Random access to a generation (lib/image/access.h) on a file:// image
 * the clone pipeline wrote: reads equal the disk at any offset, several
 * threads at once; writes and zeros land in the overlay, and a commit
 * writes generation N + 1 with only the changed chunks as new objects,
 * which ferry-convert turns into the expected bytes while generation N
 * still converts to the original; a corrupted chunk is an error naming
 * it; a commit with nothing written writes nothing. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <pthread.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/error.h"
#include "clone/clone.h"
#include "image/access.h"
#include "image/image.h"
#include "source/source.h"
#include "store/store.h"
#include "test.h"

extern char **environ;

#define MIB (1u << 20)
#define CHUNKS 10
#define DISK_SIZE (9 * MIB + 12345)      /* chunk 9 is short */

static uint8_t *disk;                   /* the source */
static uint8_t *expect;                 /* what the overlay should hold */
static struct image_access *acc;
static const char *convert_bin;

static uint64_t rng_state = 0x9e3779b97f4a7c15u;
static uint64_t rnd(void)              /* xorshift64*: a fixed sequence */
{
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * 0x2545f4914f6cdd1du;
}

static void fill_random(uint8_t *p, size_t n)
{
  size_t i;

  for (i = 0; i < n; i++)
    p[i] = (uint8_t)(rnd() >> 32);
}

static void fill_text(uint8_t *p, size_t n, int seed)
{
  size_t i = 0;

  while (i < n) {
    char line[64];
    int k = snprintf(line, sizeof line, "ferry chunk %d line %zu\n", seed, i);

    memcpy(p + i, line, (size_t)k < n - i ? (size_t)k : n - i);
    i += (size_t)k;
  }
}

static size_t count_dir(const char *dir)
{
  DIR *d = opendir(dir);
  struct dirent *de;
  size_t n = 0;

  if (d == NULL)
    return 0;
  while ((de = readdir(d)) != NULL)
    if (de->d_name[0] != '.')
      n++;
  closedir(d);
  return n;
}

/* Random reads of up to 3 MiB at odd offsets, compared with want. */
static int random_reads(const uint8_t *want, unsigned n, uint64_t seed)
{
  uint64_t x = seed;
  uint8_t *buf = malloc(3 * MIB);
  unsigned i;
  int bad = 0;

  for (i = 0; i < n && !bad; i++) {
    uint64_t off, len;

    x = x * 6364136223846793005u + 1442695040888963407u;
    off = (x >> 20) % DISK_SIZE;
    len = (x >> 8) % (3 * MIB);
    if (len > DISK_SIZE - off)
      len = DISK_SIZE - off;
    if (image_access_pread(acc, buf, (size_t)len, off) == -1 ||
        memcmp(buf, want + off, (size_t)len) != 0) {
      fprintf(stderr, "read of %" PRIu64 " at %" PRIu64 " differs: %s\n",
              len, off, ferry_errmsg());
      bad = 1;
    }
  }
  free(buf);
  return bad;
}

static void *reader_thread(void *arg)
{
  return (void *)(intptr_t)random_reads(disk, 60, (uint64_t)(intptr_t)arg);
}

/* Threads writing apart in one clean chunk: every write survives the
 * copy-up of the others. */
static void *writer_thread(void *arg)
{
  intptr_t k = (intptr_t)arg;
  uint64_t off = 6 * MIB + 1000 + (uint64_t)k * 70000;
  uint8_t buf[300];
  int r;

  memset(buf, (int)(0x40 + k), sizeof buf);
  r = image_access_pwrite(acc, buf, sizeof buf, off);
  return (void *)(intptr_t)(r == 0 ? 0 : 1);
}

/* ferry-convert --from url [--generation g] --format raw: its output
 * compared with want. */
static int convert_equals(const char *url, uint64_t g, const char *out,
                          const uint8_t *want)
{
  char gen[32];
  char *argv[12];
  int n = 0, st, fd, same = 0, rc;
  posix_spawn_file_actions_t fa;
  pid_t pid;
  uint8_t *got = malloc(DISK_SIZE + 1);
  ssize_t have;

  snprintf(gen, sizeof gen, "%" PRIu64, g);
  unlink(out);
  argv[n++] = (char *)convert_bin;
  argv[n++] = "--from";
  argv[n++] = (char *)url;
  argv[n++] = "--format";
  argv[n++] = "raw";
  argv[n++] = "--to";
  argv[n++] = (char *)out;
  argv[n++] = "-q";
  if (g) {
    argv[n++] = "--generation";
    argv[n++] = gen;
  }
  argv[n] = NULL;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  rc = posix_spawn(&pid, convert_bin, &fa, NULL, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0 ||
      waitpid(pid, &st, 0) != pid || !WIFEXITED(st) ||
      WEXITSTATUS(st) != 0) {
    fprintf(stderr, "%s --generation %s failed\n", convert_bin, gen);
    free(got);
    return 0;
  }
  fd = open(out, O_RDONLY);
  have = fd >= 0 ? pread(fd, got, DISK_SIZE + 1, 0) : -1;
  if (fd >= 0)
    close(fd);
  same = have == DISK_SIZE && memcmp(got, want, DISK_SIZE) == 0;
  free(got);
  return same;
}

int main(int argc, char **argv)
{
  char *dir = test_tmpdir(), *url, path[1024], chunks[1024], gens[1024];
  char hex[DIGEST_HEX_LEN + 1], out[1024];
  struct image_access_opts ao = { .overlay_dir = dir, .cache_chunks = 2 };
  struct image_commit_opts co = { .enc = ENC_ZSTD, .prepared_for = "test" };
  struct image_manifest m, nm, again, m2;
  struct clone_stats cst;
  struct clone_opts copts = { 0 };
  struct source *src;
  struct store *s;
  pthread_t th[4];
  uint8_t d[DIGEST_LEN], buf[4096];
  size_t objects, generations;
  struct stat before, after;
  const char *bin = getenv("FERRY_BIN");
  char *self = strdup(argv[0]);
  int fd, i;

  (void)argc;
  /* ferry-convert: $FERRY_BIN (tests/run.sh), else beside this build */
  if (bin && *bin) {
    snprintf(path, sizeof path, "%s/ferry-convert", bin);
  } else {
    const char *here = dirname(self);    /* build/tests, build-san.../tests */

    snprintf(path, sizeof path, "%s/../bin/ferry-convert", here);
    if (access(path, X_OK) != 0)
      snprintf(path, sizeof path, "%s/../../bin/ferry-convert", here);
  }
  convert_bin = strdup(path);
  free(self);
  if (access(convert_bin, X_OK) != 0) {
    fprintf(stderr, "%s is not built: run make all, or set FERRY_BIN\n",
            convert_bin);
    return 1;
  }

  /* the disk: data, zeros, compressible text, a short tail */
  disk = calloc(1, DISK_SIZE);
  expect = malloc(DISK_SIZE);
  fill_random(disk + 0 * MIB, MIB);
  fill_text(disk + 2 * MIB, MIB, 2);
  fill_random(disk + 3 * MIB, MIB);
  fill_random(disk + 5 * MIB, MIB);
  fill_text(disk + 6 * MIB, MIB, 6);
  fill_random(disk + 8 * MIB, MIB);
  fill_random(disk + 9 * MIB, 12345);
  snprintf(path, sizeof path, "%s/disk.img", dir);
  fd = open(path, O_CREAT | O_WRONLY, 0644);
  CHECK(pwrite(fd, disk, DISK_SIZE, 0) == DISK_SIZE);
  close(fd);

  CHECK(asprintf(&url, "file://%s/img", dir) > 0);
  snprintf(chunks, sizeof chunks, "%s/img/chunks", dir);
  snprintf(gens, sizeof gens, "%s/img/generations", dir);
  s = store_open(url);
  src = source_open(path);
  CHECK(s != NULL && src != NULL);
  copts.src = src;
  copts.store = s;
  copts.chunk_size = MIB;
  copts.enc = ENC_ZSTD;
  CHECK(clone_run(&copts, &cst) == 0);
  source_close(src);
  CHECK(image_manifest_load(s, &m) == 0);
  CHECK_U64(m.generation, 1);
  CHECK_U64(m.data_chunks, 7);
  CHECK_U64(m.prepared_from, 0);

  acc = image_access_open(s, &m, &ao);
  CHECK(acc != NULL);
  if (acc == NULL) {
    fprintf(stderr, "%s\n", ferry_errmsg());
    return 1;
  }
  CHECK_U64(image_access_size(acc), DISK_SIZE);
  CHECK(image_access_chunk_allocated(acc, 0) == 1);
  CHECK(image_access_chunk_allocated(acc, 1) == 0);
  CHECK(image_access_chunk_allocated(acc, 9) == 1);

  /* reads: odd offsets and lengths across chunks, the very end, nothing,
   * past the end */
  CHECK(random_reads(disk, 200, 1) == 0);
  CHECK(image_access_pread(acc, buf, 7, DISK_SIZE - 7) == 0);
  CHECK(memcmp(buf, disk + DISK_SIZE - 7, 7) == 0);
  CHECK(image_access_pread(acc, buf, 0, DISK_SIZE) == 0);
  CHECK(image_access_pread(acc, buf, 8, DISK_SIZE - 7) == -1);
  CHECK_CONTAINS(ferry_errmsg(), "beyond the end of the disk");
  /* four readers at once through an LRU of two chunks */
  for (i = 0; i < 4; i++)
    CHECK(pthread_create(&th[i], NULL, reader_thread,
                         (void *)(intptr_t)(i + 10)) == 0);
  for (i = 0; i < 4; i++) {
    void *r;

    pthread_join(th[i], &r);
    CHECK(r == NULL);
  }
  CHECK_U64(image_access_dirty(acc), 0);

  /* a fresh open with nothing written commits nothing */
  objects = count_dir(chunks);
  generations = count_dir(gens);
  CHECK(image_access_commit(acc, &co, &nm) == 0);
  CHECK_U64(nm.generation, 1);
  CHECK(memcmp(nm.table_digest, m.table_digest, DIGEST_LEN) == 0);
  CHECK_U64(count_dir(chunks), objects);
  CHECK_U64(count_dir(gens), generations);

  /* writes and zeros, mirrored in expect */
  memcpy(expect, disk, DISK_SIZE);
#define WRITE(off, len, byte)                                               \
  do {                                                                      \
    uint8_t *w_ = malloc(len);                                              \
    memset(w_, byte, len);                                                  \
    CHECK(image_access_pwrite(acc, w_, len, off) == 0);                     \
    memcpy(expect + (off), w_, len);                                        \
    free(w_);                                                               \
  } while (0)
#define ZERO(off, len)                                                      \
  do {                                                                      \
    CHECK(image_access_zero(acc, len, off) == 0);                           \
    memset(expect + (off), 0, len);                                         \
  } while (0)
  WRITE(3 * MIB - 1000, 70000, 0xab);   /* chunks 2 and 3 */
  ZERO(5 * MIB, MIB);                   /* chunk 5 all zero: row dropped */
  WRITE(7 * MIB + 77, 5000, 0x77);      /* chunk 7, a zero chunk */
  ZERO(8 * MIB + 10, 1000);             /* part of chunk 8 */
  WRITE(DISK_SIZE - 100, 100, 0x99);    /* the short tail chunk 9 */
  WRITE(4 * MIB + 5, 10, 0x44);         /* chunk 4 written, then zero */
  ZERO(4 * MIB, 4096);
  /* chunk 1 becomes chunk 0's bytes: an object already stored */
  CHECK(image_access_pwrite(acc, disk, MIB, MIB) == 0);
  memcpy(expect + MIB, disk, MIB);
  /* four threads copy chunk 6 up at once, each writing its own bytes */
  for (i = 0; i < 4; i++)
    CHECK(pthread_create(&th[i], NULL, writer_thread,
                         (void *)(intptr_t)i) == 0);
  for (i = 0; i < 4; i++) {
    void *r;

    pthread_join(th[i], &r);
    CHECK(r == NULL);
    memset(expect + 6 * MIB + 1000 + (size_t)i * 70000, 0x40 + i, 300);
  }
  CHECK_U64(image_access_dirty(acc), 9);        /* 1 2 3 4 5 6 7 8 9 */
  CHECK(image_access_chunk_allocated(acc, 7) == 1);
  CHECK(image_access_flush(acc) == 0);
  CHECK(random_reads(expect, 200, 2) == 0);
  CHECK(image_access_pwrite(acc, buf, 8, DISK_SIZE - 7) == -1);

  /* commit: generation 2, from 1; new objects only for changed chunks
   * that hold data and were not stored already: 2 3 6 7 8 9 */
  objects = count_dir(chunks);
  digest_buf(disk, MIB, d);                     /* chunk 0's = chunk 1's */
  digest_to_hex(d, hex);
  snprintf(path, sizeof path, "%s/img/chunks/%s", dir, hex);
  CHECK(stat(path, &before) == 0);
  CHECK(image_access_commit(acc, &co, &nm) == 0);
  /* the object chunk 1 now shares was not written again */
  CHECK(stat(path, &after) == 0);
  CHECK(before.st_ino == after.st_ino &&
        before.st_mtim.tv_nsec == after.st_mtim.tv_nsec);
  CHECK_U64(nm.generation, 2);
  CHECK_U64(nm.prepared_from, 1);
  CHECK_STR(nm.prepared_for, "test");
  CHECK_U64(nm.data_chunks, 8);                 /* 0-3 6-9: 4 5 dropped */
  CHECK_U64(count_dir(chunks), objects + 6);
  CHECK_U64(count_dir(gens), 2);
  CHECK(image_manifest_load(s, &m2) == 0);
  CHECK(memcmp(&m2, &nm, sizeof nm) == 0);
  CHECK(image_manifest_load_generation(s, 1, &m2) == 0);
  CHECK(memcmp(&m2, &m, sizeof m) == 0);
  /* after the commit the access reads generation 2, nothing dirty; a
   * second commit writes nothing */
  CHECK_U64(image_access_dirty(acc), 0);
  CHECK(random_reads(expect, 50, 3) == 0);
  objects = count_dir(chunks);
  CHECK(image_access_commit(acc, &co, &again) == 0);
  CHECK_U64(again.generation, 2);
  CHECK_U64(count_dir(chunks), objects);
  CHECK_U64(count_dir(gens), 2);

  /* the real reader as the oracle: generation 2 is the writes, 1 the
   * disk, manifest.json generation 2 */
  snprintf(out, sizeof out, "%s/out.raw", dir);
  CHECK(convert_equals(url, 2, out, expect));
  CHECK(convert_equals(url, 1, out, disk));
  CHECK(convert_equals(url, 0, out, expect));
  image_access_close(acc);

  /* a commit never reuses a number: a third generation on top of 1 is 3 */
  acc = image_access_open(s, &m, &ao);
  CHECK(acc != NULL);
  WRITE(0, 10, 0x10);
  CHECK(image_access_commit(acc, &co, &nm) == 0);
  CHECK_U64(nm.generation, 3);
  CHECK_U64(nm.prepared_from, 1);
  image_access_close(acc);
  /* prepared_for is checked before anything is written */
  acc = image_access_open(s, &m, &ao);
  WRITE(0, 10, 0x11);
  co.prepared_for = "no spaces";
  objects = count_dir(chunks);
  CHECK(image_access_commit(acc, &co, &nm) == -1);
  CHECK_CONTAINS(ferry_errmsg(), "prepared_for 'no spaces' is not a");
  CHECK_U64(count_dir(chunks), objects);
  CHECK_U64(count_dir(gens), 3);
  image_access_close(acc);

  /* corrupt chunks: reads and copy-ups fail naming the chunk, its
   * offset, its key and the store */
  digest_buf(disk, MIB, d);                     /* chunk 0, stored raw */
  digest_to_hex(d, hex);
  snprintf(path, sizeof path, "%s/img/chunks/%s", dir, hex);
  fd = open(path, O_RDWR);
  CHECK(fd >= 0 && pwrite(fd, "X", 1, 4242) == 1);
  close(fd);
  acc = image_access_open(s, &m, &ao);
  CHECK(acc != NULL);
  CHECK(image_access_pread(acc, buf, 100, 4000) == -1);
  CHECK_CONTAINS(ferry_errmsg(), "chunk 0 (offset 0, chunks/");
  CHECK_CONTAINS(ferry_errmsg(), hex);
  CHECK_CONTAINS(ferry_errmsg(), url);
  CHECK_CONTAINS(ferry_errmsg(), "does not match its digest");
  CHECK(image_access_pwrite(acc, buf, 100, 4000) == -1);
  CHECK_CONTAINS(ferry_errmsg(), "chunk 0 (offset 0, chunks/");
  /* the others still read */
  CHECK(image_access_pread(acc, buf, 100, 3 * MIB) == 0);
  CHECK(memcmp(buf, disk + 3 * MIB, 100) == 0);
  /* a compressed chunk whose object is gone */
  digest_buf(disk + 2 * MIB, MIB, d);
  digest_to_hex(d, hex);
  snprintf(path, sizeof path, "%s/img/chunks/%s.zst", dir, hex);
  CHECK(unlink(path) == 0);
  CHECK(image_access_pread(acc, buf, 100, 2 * MIB + 5) == -1);
  CHECK_CONTAINS(ferry_errmsg(), "chunk 2 (offset 2097152, chunks/");
  CHECK_CONTAINS(ferry_errmsg(), "is missing from");
  image_access_close(acc);

  store_close(s);
  test_rmrf(dir);
  free(dir);
  free(url);
  free(disk);
  free(expect);
  free((void *)convert_bin);
  TEST_MAIN_END();
}
