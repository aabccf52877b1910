/* image/access.c - random access to one generation, writes captured in an
 * overlay, committed as the next generation (see access.h).
 *
 * Locking: a chunk's state (clean or dirty, its overlay bytes) changes
 * only under its stripe's mutex (ACCESS_STRIPES of them, chunk index
 * modulo), so every operation on one chunk - a copy-up above all - is
 * atomic with respect to the others on that chunk, while chunks of other
 * stripes proceed in parallel.  a->lock guards the dirty bitmap's words,
 * the counters and the LRU; it is never held across a store request or a
 * file operation other than the cache's memcpy.  Commit takes every
 * stripe in index order, then a->lock. */
#include "image/access.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/error.h"
#include "util/log.h"
#include "util/zero.h"
#include "store/store.h"

/* Chunk locks, shared by index modulo this.  A commit holds all of them
 * and one more: ThreadSanitizer's deadlock detector follows at most 64
 * locks held by one thread, so 32, not 64. */
#define ACCESS_STRIPES 32
#define ACCESS_CACHE_DEFAULT 8

/* One data chunk of the base generation's table: 48 bytes, so a 2 TiB
 * disk in 4 MiB chunks costs at most 24 MiB. */
struct entry {
  uint64_t index;
  uint8_t digest[DIGEST_LEN];
  uint64_t stored_size : 56;
  uint64_t enc : 8;
};
_Static_assert(sizeof(struct entry) == 48, "struct entry is 48 bytes");

struct cache_slot {
  uint64_t index;
  uint64_t used;                 /* a->clock when last used; 0 = empty */
  void *buf;                     /* the chunk's verified plain bytes */
};

struct stripe {
  pthread_mutex_t lock;
  struct codec *codec;           /* decoder, created on first use */
};

struct image_access {
  struct store *s;
  struct image_manifest m;       /* the base generation (stripes + lock) */
  struct image_manifest geo;     /* its geometry, never changed: read
                                    without a lock */
  struct entry *entries;         /* sorted by index */
  size_t count;
  int fd;                        /* the overlay: disk_size, sparse */
  char *overlay_dir;             /* for messages */

  pthread_mutex_t lock;
  uint8_t *dirty;                /* chunk_count bits */
  uint64_t ndirty;
  struct cache_slot *cache;
  unsigned cache_n;
  uint64_t clock;
  atomic_int broken;             /* the overlay could not be reset */

  struct stripe stripes[ACCESS_STRIPES];
};

static struct stripe *stripe_of(struct image_access *a, uint64_t index)
{
  return &a->stripes[index % ACCESS_STRIPES];
}

static int is_dirty(struct image_access *a, uint64_t index)
{
  int d;

  pthread_mutex_lock(&a->lock);
  d = a->dirty[index / 8] >> (index % 8) & 1;
  pthread_mutex_unlock(&a->lock);
  return d;
}

static void set_dirty(struct image_access *a, uint64_t index)
{
  pthread_mutex_lock(&a->lock);
  if (!(a->dirty[index / 8] >> (index % 8) & 1)) {
    a->dirty[index / 8] |= (uint8_t)(1u << (index % 8));
    a->ndirty++;
  }
  pthread_mutex_unlock(&a->lock);
}

static const struct entry *find_entry(const struct image_access *a,
                                      uint64_t index)
{
  size_t lo = 0, hi = a->count;

  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;

    if (a->entries[mid].index == index)
      return &a->entries[mid];
    if (a->entries[mid].index < index)
      lo = mid + 1;
    else
      hi = mid;
  }
  return NULL;
}

/* ---- the overlay file ---------------------------------------------------- */

static int overlay_open(struct image_access *a, const char *dir)
{
  CLEANUP_FREE char *path = NULL;

  /* O_TMPFILE: never has a name, so nothing is left behind by a crash;
   * O_CLOEXEC: a child the caller forks (qemu) never holds it */
  a->fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (a->fd == -1 && (errno == EOPNOTSUPP || errno == EISDIR ||
                      errno == EINVAL)) {
    if (asprintf(&path, "%s/ferry-overlay-XXXXXX", dir) == -1) {
      ferry_error("out of memory");
      return -1;
    }
    a->fd = mkostemp(path, O_CLOEXEC);
    if (a->fd != -1)
      unlink(path);
  }
  if (a->fd == -1) {
    ferry_error("cannot create the overlay file in %s: %m (give a "
                "writable directory with room for the chunks written)",
                dir);
    return -1;
  }
  if (ftruncate(a->fd, (off_t)a->geo.disk_size) == -1) {
    ferry_error("cannot size the overlay file in %s to %" PRIu64 " bytes: "
                "%m", dir, a->geo.disk_size);
    return -1;
  }
  return 0;
}

static int overlay_pread(struct image_access *a, void *buf, size_t len,
                         uint64_t off)
{
  char *p = buf;

  while (len > 0) {
    ssize_t n = pread(a->fd, p, len, (off_t)off);

    if (n == -1 && errno == EINTR)
      continue;
    if (n <= 0) {
      if (n == 0)
        errno = EIO;
      ferry_error("read of the overlay file in %s at %" PRIu64 ": %m",
                  a->overlay_dir, off);
      return -1;
    }
    p += n;
    len -= (size_t)n;
    off += (uint64_t)n;
  }
  return 0;
}

static int overlay_pwrite(struct image_access *a, const void *buf, size_t len,
                          uint64_t off)
{
  const char *p = buf;

  while (len > 0) {
    ssize_t n = pwrite(a->fd, p, len, (off_t)off);

    if (n == -1 && errno == EINTR)
      continue;
    if (n <= 0) {
      if (n == 0)
        errno = EIO;
      ferry_error("write to the overlay file in %s at %" PRIu64 ": %m "
                  "(is %s full?)", a->overlay_dir, off, a->overlay_dir);
      return -1;
    }
    p += n;
    len -= (size_t)n;
    off += (uint64_t)n;
  }
  return 0;
}

/* Zero [off, off + len) of the overlay: a hole where the filesystem can
 * punch one, zero bytes written where it cannot. */
static int overlay_zero(struct image_access *a, uint64_t off, uint64_t len)
{
  static const char zeros[65536];

  if (len == 0)
    return 0;
  if (fallocate(a->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                (off_t)off, (off_t)len) == 0)
    return 0;
  if (errno != EOPNOTSUPP && errno != ENOSYS) {
    ferry_error("cannot zero the overlay file in %s at %" PRIu64 ": %m",
                a->overlay_dir, off);
    return -1;
  }
  while (len > 0) {
    size_t n = len < sizeof zeros ? (size_t)len : sizeof zeros;

    if (overlay_pwrite(a, zeros, n, off) == -1)
      return -1;
    off += n;
    len -= n;
  }
  return 0;
}

/* ---- clean chunks: fetch, decode, verify; the LRU ------------------------ */

/* The base's chunk e into buf (chunk length): fetched, decoded and checked
 * against its digest.  Called with e's stripe held (st). */
static int fetch_chunk(struct image_access *a, struct stripe *st,
                       const struct entry *e, void *buf)
{
  uint64_t len = image_chunk_len(&a->geo, e->index);
  uint64_t off = e->index * a->geo.chunk_size;
  enum chunk_encoding enc = (enum chunk_encoding)e->enc;
  char key[IMAGE_CHUNK_KEY_MAX], hex[DIGEST_HEX_LEN + 1];
  uint8_t d[DIGEST_LEN];
  CLEANUP_FREE void *zbuf = NULL;
  void *dst = buf;
  size_t got;

  image_chunk_key(e->digest, enc, key);
  if (enc != ENC_RAW) {
    if ((zbuf = malloc((size_t)e->stored_size + 1)) == NULL) {
      ferry_error("out of memory");
      return -1;
    }
    dst = zbuf;
    if (st->codec == NULL && (st->codec = codec_create(ENC_RAW, 0)) == NULL)
      return -1;
  }
  /* one byte more than expected: a longer object is caught too */
  if (store_get(a->s, key, 0, dst, (size_t)e->stored_size + 1, &got) == -1) {
    if (errno == ENOENT)
      ferry_error("chunk %" PRIu64 " (offset %" PRIu64 ", %s) is missing "
                  "from %s: the image is damaged; run ferry-agent sync "
                  "again to send it", e->index, off, key, store_url(a->s));
    else
      ferry_error_prefix("chunk %" PRIu64 " (offset %" PRIu64 ", %s) in "
                         "%s: ", e->index, off, key, store_url(a->s));
    return -1;
  }
  if (got != e->stored_size) {
    ferry_error("chunk %" PRIu64 " (offset %" PRIu64 ", %s) in %s is %zu "
                "bytes, the table says %" PRIu64 ": the stored chunk is "
                "damaged; delete it and run ferry-agent sync again",
                e->index, off, key, store_url(a->s), got,
                (uint64_t)e->stored_size);
    return -1;
  }
  if (enc != ENC_RAW &&
      codec_decode(st->codec, enc, zbuf, got, buf, (size_t)len) == -1) {
    ferry_error_prefix("chunk %" PRIu64 " (offset %" PRIu64 ", %s) in %s: ",
                       e->index, off, key, store_url(a->s));
    return -1;
  }
  digest_buf(buf, (size_t)len, d);
  if (memcmp(d, e->digest, DIGEST_LEN) != 0) {
    digest_to_hex(d, hex);
    ferry_error("chunk %" PRIu64 " (offset %" PRIu64 ", %s) in %s does not "
                "match its digest (its bytes hash to %.16s...): the stored "
                "chunk is corrupt; delete it and run ferry-agent sync again",
                e->index, off, key, store_url(a->s), hex);
    return -1;
  }
  return 0;
}

/* Copy [pos, pos + len) of clean data chunk e into out, from the LRU or
 * the store.  Called with e's stripe held, so no other thread fetches or
 * caches this chunk meanwhile. */
static int clean_read(struct image_access *a, struct stripe *st,
                      const struct entry *e, void *out, size_t len,
                      uint64_t pos)
{
  struct cache_slot *victim = NULL;
  void *buf, *old;
  unsigned i;

  pthread_mutex_lock(&a->lock);
  for (i = 0; i < a->cache_n; i++) {
    struct cache_slot *c = &a->cache[i];

    if (c->used && c->index == e->index) {
      c->used = ++a->clock;
      memcpy(out, (char *)c->buf + pos, len);
      pthread_mutex_unlock(&a->lock);
      return 0;
    }
  }
  pthread_mutex_unlock(&a->lock);

  buf = malloc(a->geo.chunk_size);
  if (buf == NULL) {
    ferry_error("out of memory for a chunk of %u bytes", a->geo.chunk_size);
    return -1;
  }
  if (fetch_chunk(a, st, e, buf) == -1) {
    free(buf);
    return -1;
  }
  memcpy(out, (char *)buf + pos, len);
  pthread_mutex_lock(&a->lock);
  for (i = 0; i < a->cache_n; i++)
    if (victim == NULL || a->cache[i].used < victim->used)
      victim = &a->cache[i];
  old = victim->buf;
  victim->buf = buf;
  victim->index = e->index;
  victim->used = ++a->clock;
  pthread_mutex_unlock(&a->lock);
  free(old);
  return 0;
}

/* ---- open ---------------------------------------------------------------- */

static int load_table(struct image_access *a)
{
  struct table_reader *tr;
  struct image_chunk c;
  int r;

  a->entries = calloc(a->m.data_chunks ? a->m.data_chunks : 1,
                      sizeof *a->entries);
  if (a->entries == NULL) {
    ferry_error("out of memory for the table of %" PRIu64 " chunks",
                a->m.data_chunks);
    return -1;
  }
  if ((tr = table_reader_open(a->s, &a->m)) == NULL)
    return -1;
  /* the reader checks order, the table's digest, its count and the image
   * digest; the bound here only keeps the array in range before that */
  while ((r = table_reader_next(tr, &c)) == 1) {
    struct entry *e;

    if (a->count == a->m.data_chunks) {
      ferry_error("chunk table %s in %s lists more chunks than its manifest "
                  "(%" PRIu64 "): the image is damaged", a->m.table_key,
                  store_url(a->s), a->m.data_chunks);
      r = -1;
      break;
    }
    e = &a->entries[a->count++];
    e->index = c.index;
    memcpy(e->digest, c.digest, DIGEST_LEN);
    e->stored_size = c.stored_size;
    e->enc = c.enc;
  }
  table_reader_close(tr);
  return r;
}

struct image_access *image_access_open(struct store *s,
                                       const struct image_manifest *m,
                                       const struct image_access_opts *o)
{
  struct image_access *a = calloc(1, sizeof *a);
  const char *dir = o ? o->overlay_dir : NULL;
  unsigned i;

  if (a == NULL) {
    ferry_error("out of memory");
    return NULL;
  }
  a->fd = -1;
  a->s = s;
  a->m = *m;
  a->geo = *m;
  pthread_mutex_init(&a->lock, NULL);
  for (i = 0; i < ACCESS_STRIPES; i++)
    pthread_mutex_init(&a->stripes[i].lock, NULL);
  if (dir == NULL || *dir == '\0') {
    dir = getenv("TMPDIR");
    if (dir == NULL || *dir == '\0')
      dir = "/var/tmp";
  }
  a->cache_n = o && o->cache_chunks ? o->cache_chunks : ACCESS_CACHE_DEFAULT;
  a->overlay_dir = strdup(dir);
  a->dirty = calloc(m->chunk_count / 8 + 1, 1);
  a->cache = calloc(a->cache_n, sizeof *a->cache);
  if (a->overlay_dir == NULL || a->dirty == NULL || a->cache == NULL) {
    ferry_error("out of memory");
    goto fail;
  }
  if (load_table(a) == -1) {
    ferry_error_prefix("generation %" PRIu64 " of %s: ", m->generation,
                       store_url(s));
    goto fail;
  }
  if (overlay_open(a, dir) == -1)
    goto fail;
  return a;
fail:
  image_access_close(a);
  return NULL;
}

uint64_t image_access_size(struct image_access *a)
{
  return a->geo.disk_size;
}

/* ---- read, write, zero --------------------------------------------------- */

static int check_range(struct image_access *a, const char *what, size_t len,
                       uint64_t off)
{
  if (off > a->geo.disk_size || len > a->geo.disk_size - off) {
    ferry_error("%s of %zu bytes at offset %" PRIu64 " is beyond the end "
                "of the disk (%" PRIu64 " bytes)", what, len, off,
                a->geo.disk_size);
    errno = EINVAL;
    return -1;
  }
  if (a->broken) {
    ferry_error("%s at offset %" PRIu64 ": the overlay could not be reset "
                "after a commit; open the image again", what, off);
    errno = EIO;
    return -1;
  }
  return 0;
}

/* Read [pos, pos + len) of chunk index into out (stripe held). */
static int chunk_read(struct image_access *a, struct stripe *st,
                      uint64_t index, void *out, size_t len, uint64_t pos)
{
  const struct entry *e;

  if (is_dirty(a, index))
    return overlay_pread(a, out, len, index * a->geo.chunk_size + pos);
  e = find_entry(a, index);
  if (e == NULL) {
    memset(out, 0, len);             /* a zero chunk: nothing to fetch */
    return 0;
  }
  return clean_read(a, st, e, out, len, pos);
}

int image_access_pread(struct image_access *a, void *buf, size_t len,
                       uint64_t off)
{
  char *p = buf;

  if (check_range(a, "read", len, off) == -1)
    return -1;
  while (len > 0) {
    uint64_t index = off / a->geo.chunk_size;
    uint64_t pos = off % a->geo.chunk_size;
    size_t n = (size_t)(image_chunk_len(&a->geo, index) - pos);
    struct stripe *st = stripe_of(a, index);
    int r;

    if (n > len)
      n = len;
    pthread_mutex_lock(&st->lock);
    r = chunk_read(a, st, index, p, n, pos);
    pthread_mutex_unlock(&st->lock);
    if (r == -1)
      return -1;
    p += n;
    off += n;
    len -= n;
  }
  return 0;
}

/* Make chunk index dirty: its base bytes copied whole into the overlay,
 * unless the caller is about to overwrite all of them (whole) or they are
 * zeros (the overlay's range of a never-dirtied chunk is a hole).  Stripe
 * held. */
static int copy_up(struct image_access *a, struct stripe *st, uint64_t index,
                   int whole)
{
  uint64_t len = image_chunk_len(&a->geo, index);
  const struct entry *e = whole ? NULL : find_entry(a, index);

  if (e != NULL) {
    CLEANUP_FREE void *buf = malloc((size_t)len);

    if (buf == NULL) {
      ferry_error("out of memory for a chunk of %" PRIu64 " bytes", len);
      return -1;
    }
    if (clean_read(a, st, e, buf, (size_t)len, 0) == -1 ||
        overlay_pwrite(a, buf, (size_t)len, index * a->geo.chunk_size) == -1)
      return -1;
  }
  set_dirty(a, index);
  return 0;
}

/* Write data (NULL: zeros) over [off, off + len), chunk by chunk. */
static int write_range(struct image_access *a, const char *what,
                       const void *data, size_t len, uint64_t off)
{
  const char *p = data;

  if (check_range(a, what, len, off) == -1)
    return -1;
  while (len > 0) {
    uint64_t index = off / a->geo.chunk_size;
    uint64_t pos = off % a->geo.chunk_size;
    uint64_t clen = image_chunk_len(&a->geo, index);
    size_t n = (size_t)(clen - pos);
    struct stripe *st = stripe_of(a, index);
    int whole, r = 0;

    if (n > len)
      n = len;
    whole = pos == 0 && n == clen;
    pthread_mutex_lock(&st->lock);
    if (!is_dirty(a, index)) {
      r = copy_up(a, st, index, whole);
      /* a whole chunk of zeros over a fresh (hole) range: nothing more */
      if (r == 0 && data == NULL && whole) {
        pthread_mutex_unlock(&st->lock);
        goto next;
      }
    }
    if (r == 0)
      r = data ? overlay_pwrite(a, p, n, off) : overlay_zero(a, off, n);
    pthread_mutex_unlock(&st->lock);
    if (r == -1) {
      ferry_error_prefix("%s of %zu bytes at offset %" PRIu64 " (chunk %"
                         PRIu64 "): ", what, n, off, index);
      return -1;
    }
next:
    if (p)
      p += n;
    off += n;
    len -= n;
  }
  return 0;
}

int image_access_pwrite(struct image_access *a, const void *buf, size_t len,
                        uint64_t off)
{
  return write_range(a, "write", buf, len, off);
}

int image_access_zero(struct image_access *a, size_t len, uint64_t off)
{
  return write_range(a, "zero", NULL, len, off);
}

int image_access_flush(struct image_access *a)
{
  if (fdatasync(a->fd) == -1) {
    ferry_error("flush of the overlay file in %s: %m", a->overlay_dir);
    return -1;
  }
  return 0;
}

uint64_t image_access_dirty(struct image_access *a)
{
  uint64_t n;

  pthread_mutex_lock(&a->lock);
  n = a->ndirty;
  pthread_mutex_unlock(&a->lock);
  return n;
}

int image_access_chunk_allocated(struct image_access *a, uint64_t index)
{
  struct stripe *st;
  int r;

  if (index >= a->geo.chunk_count)
    return 0;
  st = stripe_of(a, index);
  pthread_mutex_lock(&st->lock);
  r = is_dirty(a, index) || find_entry(a, index) != NULL;
  pthread_mutex_unlock(&st->lock);
  return r;
}

/* ---- commit -------------------------------------------------------------- */

struct committer {
  struct image_access *a;
  struct codec *codec;           /* NULL: chunks are stored raw */
  enum chunk_encoding enc;
  void *buf, *zbuf;
  uint64_t sent, reused, dropped;
};

/* Dirty chunk index from the overlay: 0 with *c filled (stored unless the
 * store holds it), 1 if it is now all zeros (its row is dropped). */
static int commit_chunk(struct committer *k, uint64_t index,
                        struct image_chunk *c)
{
  struct image_access *a = k->a;
  uint64_t len = image_chunk_len(&a->geo, index), have;
  char key[IMAGE_CHUNK_KEY_MAX];
  const void *data = k->buf;
  size_t stored = (size_t)len, z = 0;
  int r;

  if (overlay_pread(a, k->buf, (size_t)len, index * a->geo.chunk_size) == -1)
    return -1;
  if (buf_is_zero(k->buf, (size_t)len)) {
    k->dropped++;
    return 1;
  }
  c->index = index;
  digest_buf(k->buf, (size_t)len, c->digest);
  c->enc = ENC_RAW;
  if (k->codec) {
    /* compression pays when it saves at least an eighth (FORMAT.md) */
    z = codec_encode(k->codec, k->buf, (size_t)len, k->zbuf,
                     (size_t)len - (size_t)len / 8);
    if (z > 0) {
      c->enc = k->enc;
      data = k->zbuf;
      stored = z;
    }
  }
  image_chunk_key(c->digest, c->enc, key);
  /* named by content: an object there is this chunk, whole */
  r = store_head(a->s, key, &have);
  if (r == -1)
    return -1;
  if (r == 1 && have > 0 && have <= len && (c->enc != ENC_RAW || have == len)) {
    c->stored_size = have;
    k->reused++;
    return 0;
  }
  if ((c->enc == ENC_RAW
         ? store_put_hashed(a->s, key, data, stored, c->digest)
         : store_put(a->s, key, data, stored)) == -1) {
    ferry_error_prefix("chunk %" PRIu64 " (offset %" PRIu64 "): ", index,
                       index * a->geo.chunk_size);
    return -1;
  }
  c->stored_size = stored;
  k->sent++;
  return 0;
}

static void lock_all(struct image_access *a)
{
  unsigned i;

  for (i = 0; i < ACCESS_STRIPES; i++)
    pthread_mutex_lock(&a->stripes[i].lock);
}

static void unlock_all(struct image_access *a)
{
  unsigned i;

  for (i = ACCESS_STRIPES; i-- > 0;)
    pthread_mutex_unlock(&a->stripes[i].lock);
}

/* The committed generation becomes the base: its rows, nothing dirty, an
 * empty overlay, an empty LRU (it held chunks that are now replaced).  If
 * the overlay cannot be emptied the commit still stands, but every later
 * call fails. */
static void rebase(struct image_access *a, const struct image_manifest *nm,
                  struct entry *rows, size_t nrows)
{
  unsigned i;

  free(a->entries);
  a->entries = rows;
  a->count = nrows;
  a->m = *nm;
  memset(a->dirty, 0, a->geo.chunk_count / 8 + 1);
  a->ndirty = 0;
  for (i = 0; i < a->cache_n; i++) {
    free(a->cache[i].buf);
    memset(&a->cache[i], 0, sizeof a->cache[i]);
  }
  if (ftruncate(a->fd, 0) == -1 ||
      ftruncate(a->fd, (off_t)a->geo.disk_size) == -1) {
    a->broken = 1;
    log_warn("generation %" PRIu64 " is committed, but the overlay file in "
             "%s cannot be reset: %m; open the image again to change it "
             "further", nm->generation, a->overlay_dir);
  }
}

static int prepared_for_check(const char *name)
{
  size_t len = strlen(name);

  if (len == 0 || len >= IMAGE_PREPARED_FOR_MAX ||
      strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                   "0123456789._-") != len) {
    ferry_error("commit: prepared_for '%.80s' is not a target name: use 1 "
                "to %d of A-Z a-z 0-9 . _ -", name,
                IMAGE_PREPARED_FOR_MAX - 1);
    return -1;
  }
  return 0;
}

static int commit_locked(struct image_access *a,
                         const struct image_commit_opts *o,
                         struct image_manifest *out)
{
  struct committer k = { .a = a, .enc = o ? o->enc : ENC_RAW };
  struct image_manifest nm = a->m, check;
  struct table_writer *tw = NULL;
  struct entry *rows = NULL;
  size_t nrows = 0, j = 0;
  uint64_t last, index;
  char *text = NULL;
  int r = -1;

  if (a->ndirty == 0) {
    *out = a->m;
    return 0;
  }
  if (o && o->prepared_for && prepared_for_check(o->prepared_for) == -1)
    return -1;
  if (image_last_generation(a->s, &last) == -1)
    return -1;
  nm.generation = (last > a->m.generation ? last : a->m.generation) + 1;
  nm.prepared_from = a->m.generation;
  memset(nm.prepared_for, 0, sizeof nm.prepared_for);
  if (o && o->prepared_for)
    snprintf(nm.prepared_for, sizeof nm.prepared_for, "%s", o->prepared_for);
  /* what would be written must read back: checked before anything is */
  text = image_manifest_format(&nm);
  if (text == NULL)
    return -1;
  r = image_manifest_parse(text, strlen(text), "the new manifest", &check);
  free(text);
  if (r == -1)
    return -1;
  r = -1;

  k.buf = malloc(a->geo.chunk_size);
  k.zbuf = malloc(a->geo.chunk_size);
  rows = calloc(a->count + a->ndirty, sizeof *rows);
  tw = table_writer_create(&nm);
  if (o && o->enc != ENC_RAW &&
      (k.codec = codec_create(o->enc, o->level)) == NULL)
    goto out;
  if (k.buf == NULL || k.zbuf == NULL || rows == NULL || tw == NULL) {
    ferry_error("out of memory");
    goto out;
  }
  /* the base's rows in index order, dirty chunks' rows replaced (or
   * dropped when now all zeros) */
  for (index = 0; index < a->geo.chunk_count; index++) {
    int dirty = a->dirty[index / 8] >> (index % 8) & 1;
    int base = j < a->count && a->entries[j].index == index;
    struct image_chunk c;

    if (!dirty && !base) {
      /* skip quickly over a run of clean zero chunks */
      uint64_t next = j < a->count ? a->entries[j].index : a->geo.chunk_count;

      while (index + 1 < next &&
             !(a->dirty[(index + 1) / 8] >> ((index + 1) % 8) & 1))
        index++;
      continue;
    }
    if (base)
      j++;
    if (dirty) {
      int cr = commit_chunk(&k, index, &c);

      if (cr == -1)
        goto out;
      if (cr == 1)
        continue;
    } else {
      const struct entry *e = &a->entries[j - 1];

      c.index = e->index;
      memcpy(c.digest, e->digest, DIGEST_LEN);
      c.enc = (enum chunk_encoding)e->enc;
      c.stored_size = e->stored_size;
    }
    if (table_writer_add(tw, &c) == -1)
      goto out;
    rows[nrows].index = c.index;
    memcpy(rows[nrows].digest, c.digest, DIGEST_LEN);
    rows[nrows].stored_size = c.stored_size;
    rows[nrows].enc = c.enc;
    nrows++;
  }
  if (table_writer_finish(tw, a->s, &nm) == -1 ||
      image_manifest_commit(a->s, &nm) == -1)
    goto out;
  log_info("generation %" PRIu64 " of %s (prepared from %" PRIu64 "): %"
           PRIu64 " chunks written, %" PRIu64 " sent, %" PRIu64 " already "
           "there, %" PRIu64 " now zero", nm.generation, store_url(a->s),
           nm.prepared_from, a->ndirty, k.sent, k.reused, k.dropped);
  *out = nm;
  rebase(a, &nm, rows, nrows);
  rows = NULL;
  r = 0;
out:
  table_writer_close(tw);
  codec_close(k.codec);
  free(k.buf);
  free(k.zbuf);
  free(rows);
  return r;
}

int image_access_commit(struct image_access *a,
                        const struct image_commit_opts *o,
                        struct image_manifest *out)
{
  int r;

  lock_all(a);
  pthread_mutex_lock(&a->lock);
  if (a->broken) {
    ferry_error("commit: the overlay could not be reset after a commit; "
                "open the image again");
    r = -1;
  } else {
    r = commit_locked(a, o, out);
  }
  pthread_mutex_unlock(&a->lock);
  unlock_all(a);
  return r;
}

void image_access_close(struct image_access *a)
{
  unsigned i;

  if (a == NULL)
    return;
  if (a->fd != -1)
    close(a->fd);
  for (i = 0; a->cache && i < a->cache_n; i++)
    free(a->cache[i].buf);
  for (i = 0; i < ACCESS_STRIPES; i++) {
    codec_close(a->stripes[i].codec);
    pthread_mutex_destroy(&a->stripes[i].lock);
  }
  pthread_mutex_destroy(&a->lock);
  free(a->cache);
  free(a->dirty);
  free(a->entries);
  free(a->overlay_dir);
  free(a);
}
