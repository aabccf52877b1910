/* store/grant.c - the store an agent uses without credentials (grant.h).
 *
 * Every request goes to the object store with a grant the server signed:
 * the URL it names and the headers it lists, nothing else (no
 * Authorization header, no key).  Read grants (GET and HEAD of one key)
 * are cached until near their end, since a table is read in many ranges;
 * a write grant is asked for when its payload's SHA-256 is known and used
 * at once.  Objects are small (a chunk is at most 64 MiB), so each is one
 * PUT; a writer spools to an unlinked temporary file, hashing as it goes,
 * and PUTs the whole at commit (the chunk table, the one large object an
 * agent writes, is 80 bytes a chunk: 40 MB for a 2 TB disk). */
#include "store/grant.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <time.h>

#include "hash/digest.h"
#include "store/http.h"
#include "store/xml.h"
#include "util/cleanup.h"
#include "util/error.h"
#include "util/log.h"

#define GRANT_CACHE 16             /* read grants kept */
#define GRANT_MARGIN_MAX 60.0      /* renew this long before the end ... */
#define GRANT_LIST_CAP (4u << 20)  /* one listing page from the server */
#define GRANT_GET_CAP (1u << 20)   /* error documents */

struct cached {
  char method[8];
  char *key;
  struct store_grant g;
  double deadline;                 /* monotonic seconds */
  double margin;                   /* ... or this share of its life */
};

struct store_grantee {
  struct store store;
  store_grant_call_fn call;
  void *opaque;
  pthread_mutex_t lock;            /* guards cache */
  struct cached cache[GRANT_CACHE];
  unsigned next;                   /* slot replaced next */
};

static struct store_grantee *gs_of(struct store *s)
{
  return (struct store_grantee *)s;
}

static double mono_now(void)
{
  struct timespec t;

  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int grant_dup(const struct store_grant *from, struct store_grant *to)
{
  size_t i;

  memset(to, 0, sizeof *to);
  to->url = strdup(from->url);
  for (i = 0; i < STORE_GRANT_HEADERS && from->headers[i]; i++)
    to->headers[i] = strdup(from->headers[i]);
  for (i = 0; i < STORE_GRANT_HEADERS && from->headers[i]; i++)
    if (to->headers[i] == NULL)
      to->url = (free(to->url), NULL);
  if (to->url == NULL) {
    store_grant_free(to);
    ferry_error("out of memory");
    return -1;
  }
  return 0;
}

/* One grant from the server's answer into g; 0 or -1. */
static int grant_parse(json_t *j, const char *key, const char *method,
                       struct store_grant *g)
{
  json_t *h = json_object_get(j, "headers"), *v;
  const char *url = json_string_value(json_object_get(j, "url"));
  const char *k = json_string_value(json_object_get(j, "key"));
  const char *m = json_string_value(json_object_get(j, "method"));
  size_t i;

  memset(g, 0, sizeof *g);
  if (url == NULL || k == NULL || m == NULL || strcmp(k, key) ||
      strcmp(m, method) ||
      (h && (!json_is_array(h) || json_array_size(h) > STORE_GRANT_HEADERS))) {
    ferry_error("the server's grant for %s %s is malformed", method, key);
    return -1;
  }
  if (strncmp(url, "https://", 8) && strncmp(url, "http://", 7)) {
    ferry_error("the server's grant for %s %s is not an http(s) URL",
                method, key);
    return -1;
  }
  g->url = strdup(url);
  json_array_foreach(h, i, v) {
    const char *s = json_string_value(v);

    if (s == NULL || strchr(s, ':') == NULL || strpbrk(s, "\r\n")) {
      store_grant_free(g);
      ferry_error("the server's grant for %s %s has a bad header", method,
                  key);
      return -1;
    }
    g->headers[i] = strdup(s);
    if (g->headers[i] == NULL)
      break;
  }
  if (g->url == NULL || (h && i < json_array_size(h))) {
    store_grant_free(g);
    ferry_error("out of memory");
    return -1;
  }
  return 0;
}

/* Ask the server for n grants (methods[i] on key, with sha256 and size
 * for a PUT) into out[]; *life gets their lifetime in seconds. */
static int grant_fetch(struct store_grantee *gs, const char *const *methods,
                       const char *key, const char *sha256, uint64_t size,
                       size_t n, struct store_grant *out, double *life)
{
  CLEANUP_JSON json_t *body = json_pack("{s:[]}", "grants");
  CLEANUP_JSON json_t *resp = NULL;
  json_t *list, *arr = json_object_get(body, "grants");
  json_int_t ttl;
  long status;
  size_t i;

  for (i = 0; body && i < n; i++) {
    json_t *item = json_pack("{s:s, s:s}", "method", methods[i], "key", key);

    if (item && sha256) {
      json_object_set_new(item, "sha256", json_string(sha256));
      json_object_set_new(item, "size", json_integer((json_int_t)size));
    }
    if (item == NULL || json_array_append_new(arr, item) == -1) {
      ferry_error("out of memory");
      return -1;
    }
  }
  if (body == NULL) {
    ferry_error("out of memory");
    return -1;
  }
  status = gs->call(gs->opaque, "POST", "grants", body, &resp);
  if (status != 200) {
    if (status > 0)
      ferry_error_prefix("the server gave no grant for %s %s: ", methods[0],
                         key);
    else
      ferry_error_prefix("cannot ask the server for a grant: ");
    return -1;
  }
  list = json_object_get(resp, "grants");
  ttl = json_integer_value(json_object_get(resp, "expires_in"));
  if (json_array_size(list) != n || ttl < 1) {
    ferry_error("the server's answer for %s %s holds no grant", methods[0],
                key);
    return -1;
  }
  for (i = 0; i < n; i++)
    if (grant_parse(json_array_get(list, i), key, methods[i], &out[i])
        == -1) {
      while (i > 0)
        store_grant_free(&out[--i]);
      return -1;
    }
  *life = (double)ttl;
  return 0;
}

static void cache_put(struct store_grantee *gs, const char *method,
                      const char *key, struct store_grant *g, double life,
                      double now)
{
  struct cached *c;
  char *k = strdup(key);

  if (k == NULL) {
    store_grant_free(g);
    return;                         /* not cached: asked for again */
  }
  pthread_mutex_lock(&gs->lock);
  c = &gs->cache[gs->next++ % GRANT_CACHE];
  free(c->key);
  store_grant_free(&c->g);
  snprintf(c->method, sizeof c->method, "%s", method);
  c->key = k;
  c->g = *g;
  c->deadline = now + life;
  c->margin = life / 4 < GRANT_MARGIN_MAX ? life / 4 : GRANT_MARGIN_MAX;
  pthread_mutex_unlock(&gs->lock);
  memset(g, 0, sizeof *g);
}

/* A grant for method on key into g (caller frees).  A read grant comes
 * from the cache unless fresh or near its end; asking for a HEAD also
 * gets the GET that usually follows it (store_get_all). */
static int grant_get(struct store_grantee *gs, const char *method,
                     const char *key, const char *sha256, uint64_t size,
                     int fresh, struct store_grant *g)
{
  static const char *const both[2] = { "HEAD", "GET" };
  struct store_grant got[2];
  const char *one[1] = { method };
  int head = strcmp(method, "HEAD") == 0, put = strcmp(method, "PUT") == 0;
  double now = mono_now(), life;
  size_t i, n;

  if (!put) {
    int r = 1;

    pthread_mutex_lock(&gs->lock);
    for (i = 0; i < GRANT_CACHE; i++) {
      struct cached *c = &gs->cache[i];

      if (c->key == NULL || strcmp(c->method, method) ||
          strcmp(c->key, key))
        continue;
      if (!fresh && c->deadline - now > c->margin) {
        r = grant_dup(&c->g, g);
        break;
      }
      free(c->key);                 /* stale or refused: dropped */
      c->key = NULL;
      store_grant_free(&c->g);
    }
    pthread_mutex_unlock(&gs->lock);
    if (r <= 0)
      return r;
  }
  n = head ? 2 : 1;
  if (grant_fetch(gs, head ? both : one, key, sha256, size, n, got, &life)
      == -1)
    return -1;
  *g = got[0];
  if (put)
    return 0;
  for (i = 0; i < n; i++) {
    struct store_grant copy;

    if (grant_dup(&got[i], &copy) == 0)
      cache_put(gs, i ? both[1] : method, key, &copy, life, now);
    if (i)
      store_grant_free(&got[i]);
  }
  return 0;
}

/* ---- requests with a grant ---- */

struct grant_req {
  struct curl_slist *list;
  struct store_grantee *gs;
  const char *key;
};

static int gs_head(struct store *st, const char *key, uint64_t *size);

static int grant_prepare(void *opaque, struct http_request *req,
                         unsigned attempt, int after_drop)
{
  struct grant_req *g = opaque;
  uint64_t size;

  (void)attempt;
  /* a PUT whose answer was lost may have landed: a chunk or a table is
   * named by its content, so one of the same size there is this one (a
   * manifest is not: it is sent again) */
  if (after_drop && strcmp(req->method, "PUT") == 0 &&
      (strncmp(g->key, "chunks/", 7) == 0 ||
       strncmp(g->key, "tables/", 7) == 0) &&
      gs_head(&g->gs->store, g->key, &size) == 1 && size == req->body_len) {
    log_info("PUT %s: completed before the connection dropped; not sent "
             "again", g->key);
    return 200;
  }
  req->headers = g->list;
  return 0;
}

static const char *code_of(const struct http_response *resp, char *buf,
                           size_t size)
{
  buf[0] = '\0';
  if (http_header(resp, "x-ms-error-code", buf, size) == NULL &&
      resp->body) {
    struct xml_span b = { resp->body, resp->body_len };
    CLEANUP_FREE char *code = xml_get(b, "Code");

    snprintf(buf, size, "%s", code ? code : "");
  }
  return buf;
}

/* method on key with a grant: 0 with *resp (any status, but a 403 only
 * once the grant was renewed), or -1 with an error. */
static int grant_do(struct store_grantee *gs, struct http_request *req,
                    const char *key, const char *sha256, uint64_t size,
                    const char *range, struct http_response *resp,
                    char *what, size_t what_size)
{
  char host[128], code[96];
  unsigned attempt;
  size_t i;
  int r = -1;

  for (attempt = 0; attempt < 2; attempt++) {
    struct store_grant g;
    struct grant_req gr = { NULL, gs, key };

    if (grant_get(gs, req->method, key, sha256, size, attempt > 0, &g)
        == -1)
      return -1;
    for (i = 0; i < STORE_GRANT_HEADERS && g.headers[i]; i++)
      if (http_header_add(&gr.list, "%s", g.headers[i]) == -1)
        goto fail;
    if (range && http_header_add(&gr.list, "Range: %s", range) == -1)
      goto fail;
    req->url = g.url;
    snprintf(what, what_size, "%s %s %.100s", req->method,
             http_host(g.url, host, sizeof host), key);
    r = store_http_request(req, resp, grant_prepare, &gr, what);
fail:
    req->url = NULL;
    curl_slist_free_all(gr.list);
    store_grant_free(&g);
    if (r == -1)
      return -1;
    if (resp->status != 403 || attempt > 0)
      return 0;
    log_info("%s: the store refused the grant (%s): asking the server for "
             "a new one", what, *code_of(resp, code, sizeof code)
                                  ? code : "HTTP 403");
    http_response_free(resp);
    r = -1;
  }
  return -1;                       /* not reached */
}

static int grant_fail(struct store_grantee *gs, const char *what,
                      const struct http_response *resp)
{
  char code[96];

  code_of(resp, code, sizeof code);
  if (resp->status == 403)
    ferry_error("%s: the store refused a fresh grant (%s): check the "
                "server's store credentials, that they may use %s, and "
                "the server's clock", what, *code ? code : "HTTP 403",
                gs->store.url);
  else if (resp->retryable)
    ferry_error("%s: HTTP %ld%s%s after every retry: the store is down or "
                "overloaded; try again later", what, resp->status,
                *code ? " " : "", code);
  else
    ferry_error("%s: HTTP %ld%s%s", what, resp->status, *code ? " " : "",
                code);
  errno = resp->status == 404 ? ENOENT : EIO;
  return -1;
}

/* ---- the store operations ---- */

static int gs_put_hashed(struct store *st, const char *key, const void *buf,
                         size_t len, const uint8_t sha256[32])
{
  struct store_grantee *gs = gs_of(st);
  char hex[DIGEST_HEX_LEN + 1], what[192];
  struct http_request req = {
    .method = "PUT", .body = buf, .body_len = len,
    .body_cap = GRANT_GET_CAP, .stats = "store",
  };
  struct http_response resp;
  int r = 0;

  digest_to_hex(sha256, hex);
  if (grant_do(gs, &req, key, hex, len, NULL, &resp, what, sizeof what)
      == -1)
    return -1;
  if (resp.status != 200 && resp.status != 201)
    r = grant_fail(gs, what, &resp);
  http_response_free(&resp);
  return r;
}

static int gs_put(struct store *st, const char *key, const void *buf,
                  size_t len)
{
  uint8_t d[DIGEST_LEN];

  digest_buf(buf, len, d);
  return gs_put_hashed(st, key, buf, len, d);
}

/* The MD5 the store keeps of a whole object, checked against what was
 * read: Azure's Content-MD5, S3's ETag of a single-PUT object. */
static int check_md5(struct store_grantee *gs, const char *key,
                     const struct http_response *resp, const void *buf,
                     size_t len)
{
  char h[80], want[40];
  uint8_t md5[MD5_LEN];
  size_t i;

  if (http_header(resp, "x-ms-blob-content-md5", h, sizeof h) ||
      (resp->status == 200 && http_header(resp, "Content-MD5", h, sizeof h))) {
    md5_buf(buf, len, md5);
    base64_encode(md5, MD5_LEN, want);
    if (strcmp(want, h) == 0)
      return 0;
  } else if (http_header(resp, "ETag", h, sizeof h) && strlen(h) == 34 &&
             h[0] == '"' && h[33] == '"') {
    for (i = 1; i < 33; i++)
      if (!strchr("0123456789abcdefABCDEF", h[i]))
        return 0;                   /* not an MD5 (multipart, Azure) */
    md5_buf(buf, len, md5);
    hex_encode(md5, MD5_LEN, want);
    if (strncasecmp(want, h + 1, 32) == 0)
      return 0;
  } else {
    return 0;
  }
  ferry_error("%s in %s: the bytes read do not match the object's MD5: it "
              "was damaged in the store or on the way", key, gs->store.url);
  errno = EIO;
  return -1;
}

static int gs_get(struct store *st, const char *key, uint64_t off, void *buf,
                  size_t len, size_t *got)
{
  struct store_grantee *gs = gs_of(st);
  char range[64], what[192];
  struct http_request req = {
    .method = "GET", .out = buf, .out_cap = len, .body_cap = GRANT_GET_CAP,
    .stats = "store",
  };
  struct http_response resp;
  int r = 0;

  if (len == 0)
    return store_http_get_nothing(st, key, got);
  snprintf(range, sizeof range, "bytes=%" PRIu64 "-%" PRIu64, off,
           off + len - 1);
  if (grant_do(gs, &req, key, NULL, 0, range, &resp, what, sizeof what)
      == -1)
    return -1;
  switch (store_http_got(st, key, off, len, &resp, 1, got)) {
  case STORE_HTTP_GOT_FAIL:
    r = -1;
    break;
  case STORE_HTTP_GOT_STATUS:
    r = grant_fail(gs, what, &resp);
    break;
  case STORE_HTTP_GOT_WHOLE:
    r = check_md5(gs, key, &resp, buf, *got);
    break;
  case STORE_HTTP_GOT_PART:
    break;
  }
  http_response_free(&resp);
  return r;
}

static int gs_head(struct store *st, const char *key, uint64_t *size)
{
  struct store_grantee *gs = gs_of(st);
  struct http_request req = { .method = "HEAD", .stats = "store" };
  struct http_response resp;
  char what[192];
  int r;

  if (grant_do(gs, &req, key, NULL, 0, NULL, &resp, what, sizeof what)
      == -1)
    return -1;
  if (resp.status == 200)
    r = store_http_head_size(st, &resp, what, size);
  else if (resp.status == 404)
    r = 0;
  else
    r = grant_fail(gs, what, &resp);
  http_response_free(&resp);
  return r;
}

/* The server lists the image's prefix, a page at a time. */
static int gs_list(struct store *st, const char *prefix, store_list_cb cb,
                   void *opaque)
{
  struct store_grantee *gs = gs_of(st);
  CLEANUP_FREE char *token = NULL;
  unsigned pages;

  /* bounded: 10^6 pages of 1,000 keys hold any image */
  for (pages = 0; pages < 1000000; pages++) {
    CLEANUP_FREE char *ep = http_escape(prefix, 0), *et = NULL, *path = NULL;
    CLEANUP_JSON json_t *resp = NULL;
    json_t *o, *next;
    long status;
    size_t i;

    if (ep == NULL || (token && (et = http_escape(token, 0)) == NULL))
      return -1;
    if (asprintf(&path, "objects?prefix=%s%s%s", ep, et ? "&token=" : "",
                 et ? et : "") == -1) {
      path = NULL;
      ferry_error("out of memory");
      return -1;
    }
    status = gs->call(gs->opaque, "GET", path, NULL, &resp);
    if (status != 200) {
      if (status > 0)
        ferry_error_prefix("the server did not list %s%s: ", gs->store.url,
                           prefix);
      return -1;
    }
    json_array_foreach(json_object_get(resp, "objects"), i, o) {
      const char *k = json_string_value(json_object_get(o, "key"));
      json_t *sz = json_object_get(o, "size");

      if (k == NULL || !json_is_integer(sz) || json_integer_value(sz) < 0 ||
          strncmp(k, prefix, strlen(prefix))) {
        ferry_error("the server's listing of %s%s is malformed",
                    gs->store.url, prefix);
        return -1;
      }
      if (cb(opaque, k, (uint64_t)json_integer_value(sz)) != 0)
        return -1;
    }
    next = json_object_get(resp, "next");
    free(token);
    token = json_is_string(next) ? strdup(json_string_value(next)) : NULL;
    if (!json_is_string(next))
      return 0;
    if (token == NULL) {
      ferry_error("out of memory");
      return -1;
    }
  }
  ferry_error("the server's listing of %s%s does not end", gs->store.url,
              prefix);
  return -1;
}

static int gs_del(struct store *st, const char *key)
{
  ferry_error("%s: cannot remove %s: an agent holds grants to write and "
              "read, never to delete", st->url, key);
  errno = EPERM;
  return -1;
}

/* ---- the writer: spooled, then one PUT ---- */

struct gs_writer {
  struct store_writer w;
  FILE *fp;
  struct digest_ctx *d;
  int failed;
};

static struct store_writer *gs_writer_open(struct store *st, const char *key,
                                           const struct store_writer_opts *o)
{
  struct gs_writer *gw = calloc(1, sizeof *gw);

  if (o->page_blob) {
    free(gw);
    ferry_error("%s: page blobs are written by the server, not with "
                "grants", st->url);
    return NULL;
  }
  if (gw == NULL || (gw->w.key = strdup(key)) == NULL ||
      (gw->d = digest_create()) == NULL) {
    if (gw)
      free(gw->w.key);
    free(gw);
    ferry_error("out of memory");
    return NULL;
  }
  gw->w.store = st;
  gw->fp = tmpfile();
  if (gw->fp == NULL) {
    ferry_error("cannot spool %s to a temporary file: %m", key);
    digest_close(gw->d);
    free(gw->w.key);
    free(gw);
    return NULL;
  }
  return &gw->w;
}

static int gs_writer_write(struct store_writer *w, const void *buf,
                           size_t len)
{
  struct gs_writer *gw = (struct gs_writer *)w;

  if (len && fwrite(buf, 1, len, gw->fp) != len) {
    ferry_error("cannot spool %s to a temporary file: %m", w->key);
    gw->failed = 1;
    return -1;
  }
  digest_update(gw->d, buf, len);
  return 0;
}

static int gs_writer_zero(struct store_writer *w, uint64_t len)
{
  static const char zeros[65536];

  while (len > 0) {
    size_t n = len > sizeof zeros ? sizeof zeros : (size_t)len;

    if (gs_writer_write(w, zeros, n) == -1)
      return -1;
    len -= n;
  }
  return 0;
}

static void gs_writer_abort(struct store_writer *w)
{
  struct gs_writer *gw = (struct gs_writer *)w;

  if (gw == NULL)
    return;
  fclose(gw->fp);
  digest_close(gw->d);
  free(gw->w.key);
  free(gw);
}

static int gs_writer_commit(struct store_writer *w)
{
  struct gs_writer *gw = (struct gs_writer *)w;
  uint8_t d[DIGEST_LEN];
  uint64_t len = w->written;
  void *map = NULL;
  int r = -1;

  if (gw->failed || fflush(gw->fp) != 0) {
    if (!gw->failed)
      ferry_error("cannot spool %s to a temporary file: %m", w->key);
    goto out;
  }
  digest_final(gw->d, d);
  if (len > 0) {
    map = mmap(NULL, (size_t)len, PROT_READ, MAP_PRIVATE, fileno(gw->fp),
               0);
    if (map == MAP_FAILED) {
      map = NULL;
      ferry_error("cannot map the spooled %s: %m", w->key);
      goto out;
    }
  }
  r = gs_put_hashed(w->store, w->key, map ? map : "", (size_t)len, d);
  if (map)
    munmap(map, (size_t)len);
out:
  gs_writer_abort(w);
  return r;
}

static void gs_close(struct store *st)
{
  struct store_grantee *gs = gs_of(st);
  size_t i;

  if (gs == NULL)
    return;
  for (i = 0; i < GRANT_CACHE; i++) {
    free(gs->cache[i].key);
    store_grant_free(&gs->cache[i].g);
  }
  pthread_mutex_destroy(&gs->lock);
  free(gs->store.url);
  free(gs);
}

static const struct store_ops store_grant_ops = {
  .scheme = "grant",
  .usage = "a store URL the server grants access to",
  .put = gs_put,
  .put_hashed = gs_put_hashed,
  .get = gs_get,
  .head = gs_head,
  .list = gs_list,
  .del = gs_del,
  .writer_open = gs_writer_open,
  .writer_write = gs_writer_write,
  .writer_zero = gs_writer_zero,
  .writer_commit = gs_writer_commit,
  .writer_abort = gs_writer_abort,
  .close = gs_close,
};

struct store *store_grant_open(const char *url, store_grant_call_fn call,
                               void *opaque)
{
  struct store_grantee *gs = calloc(1, sizeof *gs);

  if (gs == NULL || (gs->store.url = strdup(url)) == NULL) {
    free(gs);
    ferry_error("out of memory");
    return NULL;
  }
  gs->store.ops = &store_grant_ops;
  gs->call = call;
  gs->opaque = opaque;
  pthread_mutex_init(&gs->lock, NULL);
  return &gs->store;
}
