#include "image/reader.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/error.h"
#include "hash/sha256mb.h"
#include "store/store.h"

/* Chunks verified at once: up to the multi-buffer SHA-256's lanes (16 on
 * AVX-512: ~6x OpenSSL's rate, docs/PERFORMANCE.md), within this much
 * memory of chunk buffers ahead of the consumer. */
#define READER_BATCH_MAX 16
#define READER_MEMORY (96u << 20)

struct rslot {
  struct image_chunk chunk;
  void *buf;                 /* plain bytes once done */
  int done;                  /* fetched and decoded */
  int verified;              /* checked against its digest */
};

struct rworker {
  struct image_reader *r;
  pthread_t thread;
  void *zbuf;
  struct codec *codec;
};

struct image_reader {
  struct store *s;
  const struct image_manifest *m;
  struct table_reader *table;
  int table_done;

  pthread_mutex_t lock;
  pthread_cond_t cond;
  struct rslot *slots;
  uint64_t window, issued, taken, consumed;
  unsigned batch;                /* chunks a worker takes at once */
  int consumer_waiting;          /* the consumer waits for a chunk */
  int stop, failed;
  char errmsg[1024];

  struct rworker *workers;
  unsigned jobs, started;
  uint64_t next_index;       /* the consumer's position on the disk */
  int holding;               /* the consumer holds slot consumed - 1 */
  _Atomic uint64_t fetched;
};

static void fail_locked(struct image_reader *r, const char *msg)
{
  if (!r->failed) {
    r->failed = 1;
    snprintf(r->errmsg, sizeof r->errmsg, "%s", msg);
  }
  pthread_cond_broadcast(&r->cond);
}

static int fetch(struct rworker *w, struct rslot *sl)
{
  struct image_reader *r = w->r;
  const struct image_chunk *ch = &sl->chunk;
  uint64_t len = image_chunk_len(r->m, ch->index);
  char key[IMAGE_CHUNK_KEY_MAX];
  void *dst = ch->enc == ENC_RAW ? sl->buf : w->zbuf;
  size_t got;

  image_chunk_key(ch->digest, ch->enc, key);
  /* one byte more than expected: a longer object is caught too */
  if (store_get(r->s, key, 0, dst, (size_t)ch->stored_size + 1, &got)
      == -1) {
    if (errno == ENOENT)
      ferry_error("chunk %" PRIu64 " (offset %" PRIu64 ", %s) is missing "
                  "from %s: run ferry-agent clone again to send it",
                  ch->index, ch->index * r->m->chunk_size, key,
                  store_url(r->s));
    else
      ferry_error_prefix("chunk %" PRIu64 " (%s): ", ch->index, key);
    return -1;
  }
  atomic_fetch_add(&r->fetched, got);
  if (got != ch->stored_size) {
    ferry_error("chunk %" PRIu64 " (offset %" PRIu64 ", %s) in %s is %zu "
                "bytes, the table says %" PRIu64 ": the stored chunk is "
                "damaged; delete it and run ferry-agent clone again",
                ch->index, ch->index * r->m->chunk_size, key,
                store_url(r->s), got, ch->stored_size);
    return -1;
  }
  if (ch->enc != ENC_RAW &&
      codec_decode(w->codec, ch->enc, w->zbuf, got, sl->buf, (size_t)len)
        == -1) {
    ferry_error_prefix("chunk %" PRIu64 " (offset %" PRIu64 ", %s) in %s: ",
                       ch->index, ch->index * r->m->chunk_size, key,
                       store_url(r->s));
    return -1;
  }
  return 0;
}

/* Check a batch of fetched chunks against their digests, hashing them
 * together (one SIMD lane each: lib/hash/sha256mb.h). */
static int verify_batch(struct image_reader *r, struct rslot **sls,
                        unsigned n)
{
  const void *bufs[READER_BATCH_MAX] = { 0 };
  size_t lens[READER_BATCH_MAX] = { 0 };
  uint8_t digests[READER_BATCH_MAX][DIGEST_LEN];
  char key[IMAGE_CHUNK_KEY_MAX], hex[DIGEST_HEX_LEN + 1];
  unsigned k;

  for (k = 0; k < n; k++) {
    bufs[k] = sls[k]->buf;
    lens[k] = (size_t)image_chunk_len(r->m, sls[k]->chunk.index);
  }
  sha256_many(bufs, lens, n, digests);
  for (k = 0; k < n; k++) {
    const struct image_chunk *ch = &sls[k]->chunk;

    if (memcmp(digests[k], ch->digest, DIGEST_LEN) == 0)
      continue;
    image_chunk_key(ch->digest, ch->enc, key);
    digest_to_hex(digests[k], hex);
    ferry_error("chunk %" PRIu64 " (offset %" PRIu64 ", %s) in %s does not "
                "match its digest (its bytes hash to %.16s...): the stored "
                "chunk is corrupt; delete it and run ferry-agent clone "
                "again", ch->index, ch->index * r->m->chunk_size, key,
                store_url(r->s), hex);
    return -1;
  }
  return 0;
}

static void *worker_main(void *arg)
{
  struct rworker *w = arg;
  struct image_reader *r = w->r;

  pthread_mutex_lock(&r->lock);
  for (;;) {
    struct rslot *sl;
    int rc;

    while (!r->stop && !r->failed && r->taken == r->issued)
      pthread_cond_wait(&r->cond, &r->lock);
    if (r->stop || r->failed)
      break;
    sl = &r->slots[r->taken++ % r->window];
    pthread_mutex_unlock(&r->lock);
    rc = fetch(w, sl);
    pthread_mutex_lock(&r->lock);
    if (rc == -1)
      fail_locked(r, ferry_errmsg());
    sl->done = 1;
    pthread_cond_broadcast(&r->cond);
  }
  pthread_mutex_unlock(&r->lock);
  return NULL;
}

struct image_reader *image_reader_open(struct store *s,
                                       const struct image_manifest *m,
                                       unsigned jobs)
{
  struct image_reader *r = calloc(1, sizeof *r);
  uint64_t i;

  if (r == NULL) {
    ferry_error("out of memory");
    return NULL;
  }
  if (jobs == 0)
    jobs = 4;
  r->s = s;
  r->m = m;
  r->jobs = jobs;
  /* the consumer verifies up to a batch of fetched chunks at once
   * (multi-buffer SHA-256); the window holds a batch beyond what the
   * workers fetch, within READER_MEMORY of chunk buffers */
  r->batch = sha256_lanes() < READER_BATCH_MAX ? sha256_lanes()
                                               : READER_BATCH_MAX;
  r->window = (uint64_t)jobs + r->batch;
  if (r->window * m->chunk_size > READER_MEMORY)
    r->window = READER_MEMORY / m->chunk_size;
  if (r->window < (uint64_t)jobs + 1)
    r->window = (uint64_t)jobs + 1;
  pthread_mutex_init(&r->lock, NULL);
  pthread_cond_init(&r->cond, NULL);
  r->table = table_reader_open(s, m);
  r->slots = calloc(r->window, sizeof *r->slots);
  r->workers = calloc(jobs, sizeof *r->workers);
  if (r->table == NULL || r->slots == NULL || r->workers == NULL)
    goto oom;
  for (i = 0; i < r->window; i++)
    if ((r->slots[i].buf = malloc(m->chunk_size)) == NULL)
      goto oom;
  for (i = 0; i < jobs; i++) {
    struct rworker *w = &r->workers[i];

    w->r = r;
    w->zbuf = malloc(m->chunk_size + 1);
    w->codec = codec_create(ENC_RAW, 0);
    if (w->zbuf == NULL || w->codec == NULL)
      goto oom;
    if ((errno = pthread_create(&w->thread, NULL, worker_main, w)) != 0) {
      ferry_error("cannot start a reader thread: %m");
      image_reader_close(r);
      return NULL;
    }
    r->started++;
  }
  return r;
oom:
  ferry_error("out of memory for %" PRIu64 " chunk buffers",
              r->window + jobs);
  image_reader_close(r);
  return NULL;
}

/* Issue table entries until the window is full or the table ends. */
static int top_up(struct image_reader *r)
{
  for (;;) {
    struct image_chunk c;
    int n;

    pthread_mutex_lock(&r->lock);
    n = !r->table_done && r->issued - r->consumed < r->window;
    pthread_mutex_unlock(&r->lock);
    if (!n)
      return 0;
    n = table_reader_next(r->table, &c);
    if (n == -1)
      return -1;
    pthread_mutex_lock(&r->lock);
    if (n == 0) {
      r->table_done = 1;
      pthread_cond_broadcast(&r->cond);
    } else {
      struct rslot *sl = &r->slots[r->issued % r->window];

      sl->chunk = c;
      sl->done = 0;
      sl->verified = 0;
      r->issued++;
      pthread_cond_broadcast(&r->cond);
    }
    pthread_mutex_unlock(&r->lock);
  }
}

int image_reader_next(struct image_reader *r, struct image_extent *e)
{
  struct rslot *sl;
  uint64_t until;

  pthread_mutex_lock(&r->lock);
  if (r->holding) {               /* the previous data chunk is released */
    r->consumed++;
    r->holding = 0;
  }
  pthread_mutex_unlock(&r->lock);
  if (r->next_index >= r->m->chunk_count) {
    /* the end: make sure the table was read to its end and verified */
    if (!r->table_done && top_up(r) == -1)
      return -1;
    if (r->issued != r->consumed) {
      ferry_error("chunk table of %s lists chunks beyond the disk",
                  store_url(r->s));
      return -1;
    }
    return 0;
  }
  if (top_up(r) == -1)
    return -1;

  pthread_mutex_lock(&r->lock);
  if (r->failed) {
    ferry_error_set(r->errmsg);
    pthread_mutex_unlock(&r->lock);
    return -1;
  }
  until = r->consumed < r->issued
            ? r->slots[r->consumed % r->window].chunk.index
            : r->m->chunk_count;
  if (until > r->next_index) {
    pthread_mutex_unlock(&r->lock);
    e->index = r->next_index;
    e->count = until - r->next_index;
    e->offset = e->index * r->m->chunk_size;
    e->length = (until == r->m->chunk_count ? r->m->disk_size
                                            : until * r->m->chunk_size)
                - e->offset;
    e->data = NULL;
    e->digest = NULL;
    r->next_index = until;
    return 1;
  }
  sl = &r->slots[r->consumed % r->window];
  if (!sl->done) {
    r->consumer_waiting = 1;
    pthread_cond_broadcast(&r->cond);
  }
  while (!sl->done && !r->failed)
    pthread_cond_wait(&r->cond, &r->lock);
  r->consumer_waiting = 0;
  if (r->failed) {
    ferry_error_set(r->errmsg);
    pthread_mutex_unlock(&r->lock);
    return -1;
  }
  if (!sl->verified) {
    /* verify this chunk and the fetched ones after it together: one SIMD
     * lane each (lib/hash/sha256mb.h), while the workers fetch on */
    struct rslot *sls[READER_BATCH_MAX];
    unsigned n = 0;
    uint64_t q;

    for (q = r->consumed; q < r->issued && n < r->batch; q++) {
      struct rslot *x = &r->slots[q % r->window];

      if (!x->done || x->verified)
        break;
      sls[n++] = x;
    }
    pthread_mutex_unlock(&r->lock);
    if (verify_batch(r, sls, n) == -1) {
      pthread_mutex_lock(&r->lock);
      fail_locked(r, ferry_errmsg());
      pthread_mutex_unlock(&r->lock);
      return -1;
    }
    pthread_mutex_lock(&r->lock);
    for (q = 0; q < n; q++)
      sls[q]->verified = 1;
  }
  r->holding = 1;
  pthread_mutex_unlock(&r->lock);
  e->index = sl->chunk.index;
  e->count = 1;
  e->offset = e->index * r->m->chunk_size;
  e->length = image_chunk_len(r->m, e->index);
  e->data = sl->buf;
  e->digest = sl->chunk.digest;
  r->next_index = e->index + 1;
  return 1;
}

uint64_t image_reader_fetched(struct image_reader *r)
{
  return atomic_load(&r->fetched);
}

void image_reader_close(struct image_reader *r)
{
  unsigned i;

  if (r == NULL)
    return;
  pthread_mutex_lock(&r->lock);
  r->stop = 1;
  pthread_cond_broadcast(&r->cond);
  pthread_mutex_unlock(&r->lock);
  for (i = 0; i < r->started; i++)
    pthread_join(r->workers[i].thread, NULL);
  for (i = 0; r->workers && i < r->jobs; i++) {
    free(r->workers[i].zbuf);
    codec_close(r->workers[i].codec);
  }
  for (i = 0; r->slots && i < r->window; i++)
    free(r->slots[i].buf);
  free(r->workers);
  free(r->slots);
  table_reader_close(r->table);
  pthread_mutex_destroy(&r->lock);
  pthread_cond_destroy(&r->cond);
  free(r);
}

uint8_t *image_alloc_map(struct store *s, const struct image_manifest *m)
{
  struct table_reader *t = table_reader_open(s, m);
  struct image_chunk c;
  uint8_t *map;
  int n;

  if (t == NULL)
    return NULL;
  map = calloc(m->chunk_count / 8 + 1, 1);
  if (map == NULL) {
    ferry_error("out of memory");
    table_reader_close(t);
    return NULL;
  }
  while ((n = table_reader_next(t, &c)) == 1)
    map[c.index / 8] |= (uint8_t)(1u << (c.index % 8));
  table_reader_close(t);
  if (n == -1) {
    free(map);
    return NULL;
  }
  return map;
}
