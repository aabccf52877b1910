/* source/nbd.c - disks exported over NBD, read with libnbd: nbdkit (and its
 * vddk plugin for VMware), qemu-nbd, a hypervisor's export.
 *
 *   nbd://HOST[:PORT]/EXPORT
 *   nbd+unix:///EXPORT?socket=PATH
 *
 * Several connections serve parallel reads.  Holes and zero extents come
 * from block status (base:allocation), so they are never read.  With a
 * dirty bitmap (qemu:dirty-bitmap:NAME, e.g. qemu-nbd -B NAME), the source
 * tells which blocks changed since the bitmap started: an incremental sync
 * then reads only those (changed-block tracking).  Reads that fail are
 * retried a few times, reconnecting, before the error is reported. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libnbd.h>

#include "util/error.h"
#include "util/log.h"
#include "source/source.h"

#define NBD_CONNS_MAX 8
#define NBD_READ_TRIES 4
#define NBD_STATUS_MAX (1u << 30)   /* block status length per request */
#define BITMAP_PREFIX "qemu:dirty-bitmap:"

struct nbd_conn {
  pthread_mutex_t lock;
  struct nbd_handle *h;
};

struct source_nbd {
  struct source src;
  char *uri;
  char *bitmap;                   /* meta context name, or NULL */
  struct nbd_conn conns[NBD_CONNS_MAX];
  unsigned n;
  atomic_uint next;
  int can_extents, can_bitmap;
};

extern const struct source_ops source_nbd_ops;

/* The URI without anything after '?' that could carry secrets (tls-psk
 * files, passwords), for messages. */
static void uri_for_messages(const char *uri, char *buf, size_t size)
{
  snprintf(buf, size, "%.*s", (int)strcspn(uri, "?"), uri);
}

static struct nbd_handle *nbd_open_one(struct source_nbd *sn)
{
  struct nbd_handle *h = nbd_create();
  char where[256];

  uri_for_messages(sn->uri, where, sizeof where);
  if (h == NULL) {
    ferry_error("libnbd: %s", nbd_get_error());
    return NULL;
  }
  if (nbd_add_meta_context(h, LIBNBD_CONTEXT_BASE_ALLOCATION) == -1 ||
      (sn->bitmap && nbd_add_meta_context(h, sn->bitmap) == -1) ||
      nbd_connect_uri(h, sn->uri) == -1) {
    ferry_error("cannot connect to NBD source %s: %s: check that the "
                "export is served (nbdkit, qemu-nbd) and the URI", where,
                nbd_get_error());
    nbd_close(h);
    return NULL;
  }
  return h;
}

static int reconnect(struct source_nbd *sn, struct nbd_conn *c)
{
  struct nbd_handle *h = nbd_open_one(sn);

  if (h == NULL)
    return -1;
  nbd_close(c->h);
  c->h = h;
  return 0;
}

static struct nbd_conn *pick(struct source_nbd *sn)
{
  return &sn->conns[atomic_fetch_add(&sn->next, 1) % sn->n];
}

static int nbd_read(struct source *src, void *buf, size_t len, uint64_t off)
{
  struct source_nbd *sn = (struct source_nbd *)src;
  struct nbd_conn *c = pick(sn);
  char where[256];
  int tries, r = -1;

  pthread_mutex_lock(&c->lock);
  for (tries = 0; tries < NBD_READ_TRIES; tries++) {
    if (tries) {
      struct timespec ts = { 0, 200000000L * tries };

      nanosleep(&ts, NULL);
      /* a dead connection is replaced; a live one just retries */
      if (nbd_aio_is_closed(c->h) || nbd_aio_is_dead(c->h))
        if (reconnect(sn, c) == -1)
          continue;
    }
    if (c->h && nbd_pread(c->h, buf, len, off, 0) == 0) {
      r = 0;
      break;
    }
    uri_for_messages(sn->uri, where, sizeof where);
    ferry_error("read %s at offset %" PRIu64 " (%zu bytes): %s", where, off,
                len, c->h ? nbd_get_error() : ferry_errmsg());
    log_debug("%s (try %d of %d)", ferry_errmsg(), tries + 1,
              NBD_READ_TRIES);
  }
  pthread_mutex_unlock(&c->lock);
  if (r == -1)
    ferry_error_prefix("after %d tries: ", NBD_READ_TRIES);
  return r;
}

struct status_ctx {
  const char *want;               /* the meta context we asked about */
  uint64_t len;                   /* first extent's length */
  uint32_t flags;
  int got;
};

static int status_cb(void *opaque, const char *metacontext, uint64_t offset,
                     uint32_t *entries, size_t nr, int *error)
{
  struct status_ctx *sc = opaque;

  (void)offset;
  (void)error;
  if (strcmp(metacontext, sc->want) != 0 || nr < 2 || sc->got)
    return 0;
  sc->len = entries[0];
  sc->flags = entries[1];
  sc->got = 1;
  return 0;
}

/* The first extent of [off, off+len) in meta context want. */
static int status(struct source_nbd *sn, const char *want, uint64_t off,
                  uint64_t len, uint64_t *ext_len, uint32_t *flags)
{
  struct nbd_conn *c = pick(sn);
  struct status_ctx sc = { .want = want };
  char where[256];
  int r;

  if (len > NBD_STATUS_MAX)
    len = NBD_STATUS_MAX;
  pthread_mutex_lock(&c->lock);
  r = nbd_block_status(c->h, len, off,
                       (nbd_extent_callback){ .callback = status_cb,
                                              .user_data = &sc }, 0);
  pthread_mutex_unlock(&c->lock);
  if (r == -1) {
    uri_for_messages(sn->uri, where, sizeof where);
    ferry_error("block status of %s at offset %" PRIu64 ": %s", where, off,
                nbd_get_error());
    return -1;
  }
  if (!sc.got || sc.len == 0) {
    *ext_len = len;               /* the server said nothing: assume data */
    *flags = 0;
    return 0;
  }
  *ext_len = sc.len < len ? sc.len : len;
  *flags = sc.flags;
  return 0;
}

static int nbd_extent(struct source *src, uint64_t off, int *zero,
                      uint64_t *len)
{
  struct source_nbd *sn = (struct source_nbd *)src;
  uint32_t flags;

  if (!sn->can_extents) {
    *zero = 0;
    *len = src->size - off;
    return 0;
  }
  if (status(sn, LIBNBD_CONTEXT_BASE_ALLOCATION, off, src->size - off, len,
             &flags) == -1)
    return -1;
  /* a hole reads as zeros only when ZERO is set too; a zero extent reads
   * as zeros whether allocated or not */
  *zero = (flags & LIBNBD_STATE_ZERO) != 0;
  return 0;
}

static int nbd_changed(struct source *src, uint64_t off, int *changed,
                       uint64_t *len)
{
  struct source_nbd *sn = (struct source_nbd *)src;
  uint32_t flags;

  if (!sn->can_bitmap) {
    *changed = 1;
    *len = src->size - off;
    return 0;
  }
  if (status(sn, sn->bitmap, off, src->size - off, len, &flags) == -1)
    return -1;
  *changed = (flags & 1) != 0;   /* qemu dirty bitmap: bit set = dirty */
  return 0;
}

static void nbd_src_close(struct source *src)
{
  struct source_nbd *sn = (struct source_nbd *)src;
  unsigned i;

  if (sn == NULL)
    return;
  for (i = 0; i < sn->n; i++) {
    if (sn->conns[i].h) {
      nbd_shutdown(sn->conns[i].h, 0);
      nbd_close(sn->conns[i].h);
    }
    pthread_mutex_destroy(&sn->conns[i].lock);
  }
  free(sn->uri);
  free(sn->bitmap);
  free(src->name);
  free(sn);
}

struct source *source_nbd_open(const char *uri, const struct source_opts *o)
{
  struct source_nbd *sn = calloc(1, sizeof *sn);
  char where[256];
  int64_t size;
  unsigned i, want = o && o->connections ? o->connections : 4;

  uri_for_messages(uri, where, sizeof where);
  if (sn == NULL)
    goto oom;
  sn->src.ops = &source_nbd_ops;
  sn->uri = strdup(uri);
  sn->src.name = strdup(where);
  if (sn->uri == NULL || sn->src.name == NULL)
    goto oom;
  if (o && o->bitmap) {
    if (asprintf(&sn->bitmap, BITMAP_PREFIX "%s", o->bitmap) == -1)
      goto oom;
  }
  if (want > NBD_CONNS_MAX)
    want = NBD_CONNS_MAX;
  for (i = 0; i < want; i++) {
    pthread_mutex_init(&sn->conns[i].lock, NULL);
    sn->n = i + 1;
    sn->conns[i].h = nbd_open_one(sn);
    if (sn->conns[i].h == NULL)
      goto fail;
    /* more connections only where the server says they see the same
     * data (NBD multi-conn); qemu-nbd without --shared serves only one
     * client and would leave a second connect waiting forever */
    if (i == 0 && nbd_can_multi_conn(sn->conns[0].h) != 1)
      break;
  }
  size = nbd_get_size(sn->conns[0].h);
  if (size <= 0) {
    ferry_error("NBD source %s: %s", where, size == 0 ? "the export is "
                "empty (0 bytes): nothing to migrate" : nbd_get_error());
    goto fail;
  }
  sn->src.size = (uint64_t)size;
  sn->can_extents = nbd_can_meta_context(sn->conns[0].h,
                                         LIBNBD_CONTEXT_BASE_ALLOCATION) == 1;
  if (sn->bitmap) {
    sn->can_bitmap = nbd_can_meta_context(sn->conns[0].h, sn->bitmap) == 1;
    if (!sn->can_bitmap) {
      ferry_error("NBD source %s does not export dirty bitmap '%s' (%s): "
                  "export it (qemu-nbd -B %s) or sync without --bitmap",
                  where, o->bitmap, sn->bitmap, o->bitmap);
      goto fail;
    }
  }
  return &sn->src;
oom:
  ferry_error("out of memory");
fail:
  nbd_src_close(sn ? &sn->src : NULL);
  return NULL;
}

const struct source_ops source_nbd_ops = {
  .name = "nbd",
  .pread = nbd_read,
  .extent = nbd_extent,
  .changed = nbd_changed,
  .close = nbd_src_close,
};
