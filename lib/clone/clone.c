/* clone/clone.c - the clone pipeline (see clone.h). */
#include "clone/clone.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "image/chunkset.h"
#include "util/error.h"
#include "util/log.h"
#include "util/zero.h"
#include "clone/ratelimit.h"
#include "hash/sha256mb.h"
#include "source/source.h"
#include "store/store.h"

/* A chunk handed to a worker, and what became of it. */
struct slot {
  uint64_t index;
  int done;
  int zero;                              /* read, and all zeros */
  int carry;                             /* unchanged: chunk is preset */
  struct image_chunk chunk;
};

/* The previous generation's table, walked in index order. */
struct prev_walk {
  struct table_reader *tr;
  struct image_chunk cur;
  int state;                             /* 0 fetch next, 1 cur, 2 end */
};

struct clone {
  const struct clone_opts *o;
  struct image_manifest m;               /* disk_size, chunk_size, count */
  struct chunkset *have;                 /* chunks the store holds */
  struct table_writer *table;
  struct ratelimit *rate;
  struct image_manifest prev;            /* the previous generation */
  int have_prev;                         /* ... exists, same geometry */
  int prepared;                          /* manifest.json was a prepared
                                            generation, prev its source */
  uint64_t last_generation;              /* highest under generations/ */
  int carry_ok;                          /* the source tracks changes */

  pthread_mutex_t lock;
  pthread_cond_t cond;                   /* any change of the counters */
  struct slot *slots;                    /* window, indexed seq % window */
  uint64_t window;
  unsigned batch;                        /* chunks a worker takes at once */
  uint64_t issued, taken, emitted;       /* sequence numbers */
  int planning_done;
  int failed;                            /* first error is in errmsg */
  char errmsg[1024];

  /* statistics, updated atomically */
  _Atomic uint64_t read_bytes, zero_chunks, data_chunks, data_bytes;
  _Atomic uint64_t sent_chunks, sent_bytes, reused_chunks, reused_bytes;
  _Atomic uint64_t scanned_bytes, hole_bytes, alloc_bytes, carried_chunks;
  struct timespec start;
};

static double since(const struct timespec *t0)
{
  struct timespec t;

  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)(t.tv_sec - t0->tv_sec) +
         (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

static void snapshot(struct clone *c, struct clone_stats *st)
{
  st->disk_size = c->m.disk_size;
  st->chunks = c->m.chunk_count;
  st->scanned_bytes = atomic_load(&c->scanned_bytes);
  st->hole_bytes = atomic_load(&c->hole_bytes);
  st->read_bytes = atomic_load(&c->read_bytes);
  st->zero_chunks = atomic_load(&c->zero_chunks);
  st->data_chunks = atomic_load(&c->data_chunks);
  st->data_bytes = atomic_load(&c->data_bytes);
  st->sent_chunks = atomic_load(&c->sent_chunks);
  st->sent_bytes = atomic_load(&c->sent_bytes);
  st->reused_chunks = atomic_load(&c->reused_chunks);
  st->reused_bytes = atomic_load(&c->reused_bytes);
  st->alloc_bytes = atomic_load(&c->alloc_bytes);
  st->carried_chunks = atomic_load(&c->carried_chunks);
  st->incremental = c->have_prev;
  st->seconds = since(&c->start);
}

/* Record the first failure (called with the lock held). */
static void fail_locked(struct clone *c, const char *msg)
{
  if (!c->failed) {
    c->failed = 1;
    snprintf(c->errmsg, sizeof c->errmsg, "%s", msg);
  }
  pthread_cond_broadcast(&c->cond);
}

static int cancelled(struct clone *c)
{
  return c->o->cancel && *c->o->cancel;
}

/* Write finished slots to the table in disk order (lock held). */
static void emit_locked(struct clone *c)
{
  while (c->emitted < c->taken) {
    struct slot *sl = &c->slots[c->emitted % c->window];

    if (!sl->done)
      break;
    if (!sl->zero && !c->failed &&
        table_writer_add(c->table, &sl->chunk) == -1)
      fail_locked(c, ferry_errmsg());
    sl->done = 0;
    c->emitted++;
  }
  pthread_cond_broadcast(&c->cond);
}

struct worker {
  struct clone *c;
  pthread_t thread;
  void **bufs;                   /* a batch of chunks read from the source */
  void *zbuf;                    /* one chunk's compressed form */
  struct codec *codec;
};

/* Read one chunk of a batch into buf; sets sl->zero.  1 if it holds data
 * (to be hashed), 0 if zero, -1 on error. */
static int read_chunk(struct clone *c, struct slot *sl, void *buf)
{
  uint64_t len = image_chunk_len(&c->m, sl->index);

  if (source_pread(c->o->src, buf, (size_t)len,
                   sl->index * c->m.chunk_size) == -1)
    return -1;
  atomic_fetch_add(&c->read_bytes, len);
  sl->zero = buf_is_zero(buf, (size_t)len);
  if (sl->zero) {
    atomic_fetch_add(&c->zero_chunks, 1);
    return 0;
  }
  return 1;
}

/* Maybe compress and upload a read, hashed chunk; fills sl->chunk. */
static int store_chunk(struct worker *w, struct slot *sl, const void *buf)
{
  struct clone *c = w->c;
  uint64_t len = image_chunk_len(&c->m, sl->index);
  char key[IMAGE_CHUNK_KEY_MAX];
  struct image_chunk *ch = &sl->chunk;
  const void *data = buf;
  size_t stored = (size_t)len;

  ch->index = sl->index;
  atomic_fetch_add(&c->data_chunks, 1);
  atomic_fetch_add(&c->data_bytes, len);
  if (chunkset_find(c->have, ch->digest, &ch->enc, &ch->stored_size) == 1 &&
      (ch->enc != ENC_RAW || ch->stored_size == len)) {
    atomic_fetch_add(&c->reused_chunks, 1);
    atomic_fetch_add(&c->reused_bytes, len);
    return 0;
  }
  ch->enc = ENC_RAW;
  if (c->o->enc != ENC_RAW) {
    /* compression pays when it saves at least an eighth */
    size_t z = codec_encode(w->codec, buf, (size_t)len, w->zbuf,
                            (size_t)len - (size_t)len / 8);

    if (z > 0) {
      ch->enc = c->o->enc;
      data = w->zbuf;
      stored = z;
    }
  }
  ch->stored_size = stored;
  image_chunk_key(ch->digest, ch->enc, key);
  if (c->rate)
    ratelimit_take(c->rate, stored);
  /* a chunk stored plain is its own digest's preimage: stores that
   * verify a payload SHA-256 need not hash it again */
  if ((ch->enc == ENC_RAW
         ? store_put_hashed(c->o->store, key, data, stored, ch->digest)
         : store_put(c->o->store, key, data, stored)) == -1) {
    ferry_error_prefix("upload chunk %" PRIu64 " (offset %" PRIu64 "): ",
                       sl->index, sl->index * c->m.chunk_size);
    return -1;
  }
  if (chunkset_add(c->have, ch->digest, ch->enc, stored) == -1)
    return -1;
  atomic_fetch_add(&c->sent_chunks, 1);
  atomic_fetch_add(&c->sent_bytes, stored);
  return 0;
}

/* A batch of n consecutive slots: read them all, hash the ones holding
 * data together (one SIMD lane each: lib/hash/sha256mb.h), then store each. */
static int process_batch(struct worker *w, uint64_t first, unsigned n)
{
  struct clone *c = w->c;
  const void *bufs[CLONE_BATCH_MAX] = { 0 };
  size_t lens[CLONE_BATCH_MAX] = { 0 };
  uint8_t digests[CLONE_BATCH_MAX][DIGEST_LEN];
  struct slot *data[CLONE_BATCH_MAX];
  unsigned k, nd = 0;

  for (k = 0; k < n; k++) {
    struct slot *sl = &c->slots[(first + k) % c->window];
    int r;

    if (sl->carry) {
      sl->zero = 0;
      continue;
    }
    if (cancelled(c)) {
      ferry_error("canceled");
      return -1;
    }
    r = read_chunk(c, sl, w->bufs[k]);
    if (r == -1)
      return -1;
    if (r == 1) {
      bufs[nd] = w->bufs[k];
      lens[nd] = (size_t)image_chunk_len(&c->m, sl->index);
      data[nd++] = sl;
    }
  }
  sha256_many(bufs, lens, nd, digests);
  for (k = 0; k < nd; k++) {
    memcpy(data[k]->chunk.digest, digests[k], DIGEST_LEN);
    if (cancelled(c)) {
      ferry_error("canceled");
      return -1;
    }
    if (store_chunk(w, data[k], bufs[k]) == -1)
      return -1;
  }
  return 0;
}

static void *worker_main(void *arg)
{
  struct worker *w = arg;
  struct clone *c = w->c;

  pthread_mutex_lock(&c->lock);
  for (;;) {
    uint64_t first;
    unsigned n, k;
    int r;

    /* wait for a whole batch unless planning is over or the window is
     * full: lanes left empty would hash at a fraction of the speed */
    while (!c->failed && !c->planning_done &&
           (c->taken == c->issued ||
            (c->issued - c->taken < c->batch &&
             c->issued - c->emitted < c->window)))
      pthread_cond_wait(&c->cond, &c->lock);
    if (c->failed || c->taken == c->issued)
      break;
    first = c->taken;
    n = c->issued - c->taken < c->batch ? (unsigned)(c->issued - c->taken)
                                        : c->batch;
    c->taken += n;
    pthread_mutex_unlock(&c->lock);

    r = process_batch(w, first, n);

    pthread_mutex_lock(&c->lock);
    if (r == -1)
      fail_locked(c, ferry_errmsg());
    for (k = 0; k < n; k++)
      c->slots[(first + k) % c->window].done = 1;
    emit_locked(c);
  }
  pthread_mutex_unlock(&c->lock);
  return NULL;
}

/* Hand chunk index to the workers, waiting for room in the window; with
 * carried set, the chunk is the previous generation's and is not read. */
static int issue(struct clone *c, uint64_t index,
                 const struct image_chunk *carried)
{
  struct slot *sl;

  pthread_mutex_lock(&c->lock);
  while (!c->failed && c->issued - c->emitted >= c->window)
    pthread_cond_wait(&c->cond, &c->lock);
  if (c->failed) {
    pthread_mutex_unlock(&c->lock);
    return -1;
  }
  sl = &c->slots[c->issued % c->window];
  sl->index = index;
  sl->done = 0;
  sl->carry = carried != NULL;
  if (carried)
    sl->chunk = *carried;
  c->issued++;
  pthread_cond_broadcast(&c->cond);
  pthread_mutex_unlock(&c->lock);
  return 0;
}

/* The previous generation's entry for index: 1 with *e, 0 if that chunk
 * was zero, -1 on error.  Indexes must not decrease between calls. */
static int prev_lookup(struct prev_walk *pw, uint64_t index,
                       struct image_chunk *e)
{
  for (;;) {
    if (pw->state == 0) {
      int r = table_reader_next(pw->tr, &pw->cur);

      if (r == -1)
        return -1;
      pw->state = r == 1 ? 1 : 2;
    }
    if (pw->state == 2 || pw->cur.index > index)
      return 0;
    if (pw->cur.index == index) {
      *e = pw->cur;
      return 1;
    }
    pw->state = 0;                      /* behind: fetch the next */
  }
}

/* Has [off, end) changed since the tracking point?  Walks the source's
 * change extents, remembered across calls in *ch_end / *ch_changed. */
static int chunk_changed(struct clone *c, uint64_t off, uint64_t end,
                         uint64_t *ch_end, int *ch_changed)
{
  while (off < end) {
    if (off >= *ch_end) {
      uint64_t len;

      if (c->o->src->ops->changed(c->o->src, off, ch_changed, &len) == -1)
        return -1;
      *ch_end = off + len;
    }
    if (*ch_changed)
      return 1;
    off = *ch_end;
  }
  return 0;
}

/* Walk the disk's extents: chunks wholly inside holes are zero without a
 * read; with changed-block tracking, unchanged chunks are carried over
 * from the previous generation; every other chunk is issued to the
 * workers.  With dry set, only count what would be read (alloc_bytes, the
 * progress total). */
static int plan(struct clone *c, int dry)
{
  const uint64_t cs = c->m.chunk_size, size = c->m.disk_size;
  const uint64_t count = c->m.chunk_count;
  struct prev_walk pw = { 0 };
  uint64_t index = 0, ch_end = 0;
  int ch_changed = 1, r = -1;

  if (c->carry_ok && (pw.tr = table_reader_open(c->o->store, &c->prev))
      == NULL)
    return -1;
  while (index < count) {
    uint64_t off = index * cs, len, end, stop;
    int zero;

    if (cancelled(c)) {
      ferry_error("canceled");
      goto out;
    }
    if (source_extent(c->o->src, off, &zero, &len) == -1)
      goto out;
    end = len > size - off ? size : off + len;
    if (zero) {
      stop = end == size ? count : end / cs;   /* chunks wholly in the hole */
      if (stop > index) {
        if (!dry) {
          atomic_fetch_add(&c->zero_chunks, stop - index);
          atomic_fetch_add(&c->hole_bytes,
                           (stop == count ? size : stop * cs) - off);
          atomic_store(&c->scanned_bytes, stop == count ? size : stop * cs);
        }
        index = stop;
        continue;
      }
      stop = index + 1;            /* data follows the hole in this chunk */
    } else {
      stop = (end + cs - 1) / cs;  /* every chunk the data touches */
    }
    for (; index < stop; index++) {
      uint64_t coff = index * cs, cend = coff + image_chunk_len(&c->m, index);
      struct image_chunk prev;
      int changed = 1, have = 0;

      if (c->carry_ok) {
        changed = chunk_changed(c, coff, cend, &ch_end, &ch_changed);
        if (changed == -1)
          goto out;
        if (!changed && (have = prev_lookup(&pw, index, &prev)) == -1)
          goto out;
      }
      if (dry) {
        if (changed)
          atomic_fetch_add(&c->alloc_bytes, image_chunk_len(&c->m, index));
        continue;
      }
      if (!changed && !have) {
        atomic_fetch_add(&c->zero_chunks, 1);    /* was zero, still is */
      } else {
        if (!changed)
          atomic_fetch_add(&c->carried_chunks, 1);
        if (issue(c, index, changed ? NULL : &prev) == -1)
          goto out;
      }
      atomic_store(&c->scanned_bytes, index + 1 == count ? size : cend);
    }
  }
  r = 0;
out:
  table_reader_close(pw.tr);
  return r;
}

/* Compare the new table with the previous generation's: chunks whose
 * content differs (added, changed, or now zero) and their plain bytes. */
static int count_changes(struct clone *c, struct clone_stats *st)
{
  struct table_reader *a = table_reader_open(c->o->store, &c->prev);
  struct table_reader *b = table_reader_open(c->o->store, &c->m);
  struct image_chunk ea, eb;
  int ra, rb, r = -1;

  if (a == NULL || b == NULL)
    goto out;
  ra = table_reader_next(a, &ea);
  rb = table_reader_next(b, &eb);
  while (ra == 1 || rb == 1) {
    uint64_t idx;

    if (ra == -1 || rb == -1)
      goto out;
    if (rb != 1 || (ra == 1 && ea.index < eb.index)) {
      idx = ea.index;                           /* data became zero */
      ra = table_reader_next(a, &ea);
    } else if (ra != 1 || eb.index < ea.index) {
      idx = eb.index;                           /* new data */
      rb = table_reader_next(b, &eb);
    } else {
      int same = memcmp(ea.digest, eb.digest, DIGEST_LEN) == 0;

      idx = ea.index;
      ra = table_reader_next(a, &ea);
      rb = table_reader_next(b, &eb);
      if (same)
        continue;
    }
    st->changed_chunks++;
    st->changed_bytes += image_chunk_len(&c->m, idx);
  }
  r = ra == -1 || rb == -1 ? -1 : 0;
out:
  table_reader_close(a);
  table_reader_close(b);
  return r;
}

struct progress_thread {
  struct clone *c;
  pthread_t thread;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  int stop;
};

static void *progress_main(void *arg)
{
  struct progress_thread *p = arg;
  struct clone_stats st;

  pthread_mutex_lock(&p->lock);
  while (!p->stop) {
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 1;
    pthread_cond_timedwait(&p->cond, &p->lock, &ts);
    if (p->stop)
      break;
    pthread_mutex_unlock(&p->lock);
    memset(&st, 0, sizeof st);
    snapshot(p->c, &st);
    p->c->o->progress(p->c->o->opaque, &st);
    pthread_mutex_lock(&p->lock);
  }
  pthread_mutex_unlock(&p->lock);
  return NULL;
}

/* An unchanged disk keeps its generation and manifest; a changed one
 * becomes the next generation, numbered after every generation written
 * (a prepared one included).  manifest.json always ends up describing
 * the source disk: when it was a prepared generation and the disk equals
 * that generation's source, it is the source generation's manifest again
 * (docs/WARM.md, "Prepared generations"). */
static int commit(struct clone *c, struct clone_stats *st)
{
  struct store *s = c->o->store;
  struct image_manifest top;

  if (table_writer_finish(c->table, s, &c->m) == -1)
    return -1;
  c->m.generation = (c->last_generation > c->prev.generation
                       ? c->last_generation : c->prev.generation) + 1;
  /* a run killed between generations/<N>.json and manifest.json left
   * generation N whole: the same image is N again, byte for byte */
  if (c->last_generation > c->prev.generation &&
      image_manifest_load_generation(s, c->last_generation, &top) == 0 &&
      !top.prepared_from && top.disk_size == c->m.disk_size &&
      top.chunk_size == c->m.chunk_size &&
      memcmp(top.table_digest, c->m.table_digest, DIGEST_LEN) == 0)
    c->m.generation = top.generation;
  if (c->have_prev && count_changes(c, st) == -1)
    return -1;
  if (c->prev.generation && c->prev.disk_size == c->m.disk_size &&
      c->prev.chunk_size == c->m.chunk_size &&
      memcmp(c->prev.table_digest, c->m.table_digest, DIGEST_LEN) == 0) {
    /* rewriting generations/<N>.json puts back the same bytes */
    if (c->prepared && image_manifest_commit(s, &c->prev) == -1)
      return -1;
    if (c->prepared)
      log_info("the disk equals generation %" PRIu64 ": manifest.json "
               "describes it again instead of the prepared generation",
               c->prev.generation);
    st->unchanged = 1;
    st->manifest = c->prev;
    return 0;
  }
  if (image_manifest_commit(s, &c->m) == -1)
    return -1;
  st->manifest = c->m;
  return 0;
}

/* m is a prepared generation (guest preparation's, lib/image/access.h):
 * replace it with the generation it was prepared from, following a chain
 * of preparations down to a generation a clone or sync wrote.  -1 with
 * errno ENOENT or EBADMSG when that generation is missing or damaged. */
static int source_generation(struct store *s, struct image_manifest *m)
{
  unsigned steps;

  /* each step goes to a lower generation (image_manifest_parse checks
   * prepared_from < generation); the bound is for the loop's sake */
  for (steps = 0; m->prepared_from && steps < 1000; steps++) {
    uint64_t from = m->prepared_from;

    if (image_manifest_load_generation(s, from, m) == -1) {
      int err = errno;

      ferry_error_prefix("manifest.json is a generation prepared from "
                         "generation %" PRIu64 ": ", from);
      errno = err;
      return -1;
    }
  }
  if (m->prepared_from) {
    ferry_error("generation %" PRIu64 ": too many prepared generations in "
                "a chain", m->generation);
    errno = EBADMSG;
    return -1;
  }
  return 0;
}

int clone_run(const struct clone_opts *o, struct clone_stats *st)
{
  struct clone c = { .o = o };
  struct worker *workers = NULL;
  struct progress_thread prog = { .c = &c };
  unsigned jobs = o->jobs ? o->jobs : CLONE_JOBS_DEFAULT, i, started = 0;
  int r = -1, prog_started = 0;

  memset(st, 0, sizeof *st);
  clock_gettime(CLOCK_MONOTONIC, &c.start);
  if (jobs > CLONE_JOBS_MAX)
    jobs = CLONE_JOBS_MAX;
  c.m.version = IMAGE_VERSION;
  c.m.disk_size = o->src->size;
  c.m.chunk_size = o->chunk_size ? o->chunk_size : IMAGE_CHUNK_DEFAULT;
  c.m.chunk_count = (c.m.disk_size + c.m.chunk_size - 1) / c.m.chunk_size;
  /* a batch fills the SIMD lanes of the multi-buffer SHA-256; memory is
   * jobs x batch chunk buffers */
  c.batch = o->batch ? o->batch : sha256_lanes() < CLONE_BATCH_DEFAULT
                                    ? sha256_lanes() : CLONE_BATCH_DEFAULT;
  if (c.batch > CLONE_BATCH_MAX)
    c.batch = CLONE_BATCH_MAX;
  c.window = (uint64_t)jobs * c.batch * 2;
  pthread_mutex_init(&c.lock, NULL);
  pthread_cond_init(&c.cond, NULL);
  pthread_mutex_init(&prog.lock, NULL);
  pthread_cond_init(&prog.cond, NULL);

  c.have = chunkset_create();
  c.table = table_writer_create(&c.m);
  c.slots = calloc(c.window, sizeof *c.slots);
  workers = calloc(jobs, sizeof *workers);
  if (c.have == NULL || c.table == NULL || c.slots == NULL ||
      workers == NULL) {
    ferry_error("out of memory");
    goto out;
  }
  if (o->max_rate && (c.rate = ratelimit_create(o->max_rate)) == NULL)
    goto out;
  if (chunkset_load(c.have, o->store) == -1) {
    ferry_error_prefix("cannot list the chunks already in %s: ",
                       store_url(o->store));
    goto out;
  }
  if (chunkset_count(c.have) > 0)
    log_info("%" PRIu64 " chunks already in %s: they will not be sent again",
             chunkset_count(c.have), store_url(o->store));
  /* never reuse the number of a generation that was written */
  if (image_last_generation(o->store, &c.last_generation) == -1)
    goto out;
  /* the previous generation, if any: compared with, maybe carried from;
   * a prepared generation never is: the generation it came from is */
  if (image_manifest_load(o->store, &c.prev) == -1) {
    if (errno != ENOENT && errno != EBADMSG)
      goto out;                 /* the store itself failed: say so */
    if (errno == EBADMSG)
      log_warn("%s; starting a new generation without comparing",
               ferry_errmsg());
    memset(&c.prev, 0, sizeof c.prev);
  } else if (c.prev.prepared_from) {
    c.prepared = 1;
    if (source_generation(o->store, &c.prev) == -1) {
      if (errno != ENOENT && errno != EBADMSG)
        goto out;
      log_warn("%s; starting a new generation without comparing",
               ferry_errmsg());
      memset(&c.prev, 0, sizeof c.prev);
    }
  }
  if (c.prev.generation) {
    c.have_prev = c.prev.disk_size == c.m.disk_size &&
                  c.prev.chunk_size == c.m.chunk_size;
    if (!c.have_prev)
      log_warn("the image in %s has another geometry (%" PRIu64 " bytes in "
               "chunks of %u): this clone is compared with nothing",
               store_url(o->store), c.prev.disk_size, c.prev.chunk_size);
  }
  c.carry_ok = o->use_changes && c.have_prev && o->src->ops->changed;
  if (o->use_changes && !c.carry_ok)
    log_info("%s: reading every chunk and comparing digests",
             !c.have_prev ? "no previous generation to compare with"
             : "the source does not track changed blocks");
  if (plan(&c, 1) == -1)
    goto out;
  for (i = 0; i < jobs; i++) {
    struct worker *w = &workers[i];

    w->c = &c;
    w->bufs = calloc(c.batch, sizeof *w->bufs);
    w->zbuf = malloc(c.m.chunk_size);
    w->codec = codec_create(o->enc, o->level);
    for (unsigned k = 0; w->bufs && k < c.batch; k++)
      if ((w->bufs[k] = malloc(c.m.chunk_size)) == NULL) {
        ferry_error("out of memory");
        goto stop;
      }
    if (w->bufs == NULL || w->zbuf == NULL || w->codec == NULL) {
      ferry_error("out of memory for %u chunk buffers of %u bytes",
                  jobs * (c.batch + 1), c.m.chunk_size);
      goto stop;
    }
    if ((errno = pthread_create(&w->thread, NULL, worker_main, w)) != 0) {
      ferry_error("cannot start a worker thread: %m");
      goto stop;
    }
    started++;
  }
  if (o->progress &&
      pthread_create(&prog.thread, NULL, progress_main, &prog) == 0)
    prog_started = 1;

  r = plan(&c, 0);
stop:
  pthread_mutex_lock(&c.lock);
  c.planning_done = 1;
  if (r == -1 && !c.failed)
    fail_locked(&c, ferry_errmsg());
  pthread_cond_broadcast(&c.cond);
  pthread_mutex_unlock(&c.lock);
  for (i = 0; i < started; i++)
    pthread_join(workers[i].thread, NULL);
  if (prog_started) {
    pthread_mutex_lock(&prog.lock);
    prog.stop = 1;
    pthread_cond_signal(&prog.cond);
    pthread_mutex_unlock(&prog.lock);
    pthread_join(prog.thread, NULL);
  }
  if (c.failed) {
    ferry_error_set(c.errmsg);
    r = -1;
  } else if (r == 0) {
    r = commit(&c, st);
  }
  snapshot(&c, st);
  if (o->progress && r == 0)
    o->progress(o->opaque, st);
out:
  for (i = 0; workers && i < jobs; i++) {
    for (unsigned k = 0; workers[i].bufs && k < c.batch; k++)
      free(workers[i].bufs[k]);
    free(workers[i].bufs);
    free(workers[i].zbuf);
    codec_close(workers[i].codec);
  }
  free(workers);
  free(c.slots);
  table_writer_close(c.table);
  chunkset_close(c.have);
  ratelimit_close(c.rate);
  pthread_mutex_destroy(&c.lock);
  pthread_cond_destroy(&c.cond);
  pthread_mutex_destroy(&prog.lock);
  pthread_cond_destroy(&prog.cond);
  return r;
}
