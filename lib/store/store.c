/* store/store.c - the scheme table and the checks every backend shares. */
#include "store/store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/error.h"

extern const struct store_ops store_file_ops;
extern const struct store_ops store_s3_ops;
extern const struct store_ops store_gs_ops;
extern const struct store_ops store_azure_ops;

/* URL scheme -> backend (curl's scheme table). */
static const struct store_ops *const store_table[] = {
  &store_file_ops,
  &store_s3_ops,
  &store_gs_ops,
  &store_azure_ops,
};

#define N_STORES (sizeof store_table / sizeof store_table[0])

const char *store_schemes(void)
{
  static char buf[128];
  size_t i, n = 0;

  if (buf[0])
    return buf;
  for (i = 0; i < N_STORES && n < sizeof buf; i++)
    n += (size_t)snprintf(buf + n, sizeof buf - n, "%s%s://",
                          i ? ", " : "", store_table[i]->scheme);
  return buf;
}

struct store *store_open(const char *url)
{
  const char *sep = strstr(url, "://");
  size_t n, i;

  if (sep == NULL) {
    ferry_error("'%s' is not a store URL: use one of %s followed by a "
                "location (e.g. file:///var/lib/ferry/store/web01/sda)",
                url, store_schemes());
    return NULL;
  }
  n = (size_t)(sep - url);
  for (i = 0; i < N_STORES; i++)
    if (strlen(store_table[i]->scheme) == n &&
        strncmp(store_table[i]->scheme, url, n) == 0)
      return store_table[i]->open(url);
  ferry_error("unknown store scheme '%.*s' in '%.*s://...': use one of %s",
              (int)(n > 32 ? 32 : n), url, (int)(n > 32 ? 32 : n), url,
              store_schemes());
  return NULL;
}

void store_close(struct store *s)
{
  if (s)
    s->ops->close(s);
}

const char *store_url(const struct store *s)
{
  return s->url;
}

/* Keys come from ferry itself, but a bad one must never escape the store
 * (a file:// key with ".." would write outside its directory). */
static int key_ok(const struct store *s, const char *key)
{
  const char *p;

  if (key[0] == '\0' || key[0] == '/' || strlen(key) > 1024)
    goto bad;
  for (p = key; *p; p++)
    if ((unsigned char)*p < 0x20 || *p == '\\')
      goto bad;
  for (p = key; p; p = strchr(p, '/')) {
    if (*p == '/')
      p++;
    if (strncmp(p, "..", 2) == 0 && (p[2] == '/' || p[2] == '\0'))
      goto bad;
    if (p[0] == '.' && (p[1] == '/' || p[1] == '\0'))
      goto bad;
    if (p[0] == '/' || p[0] == '\0')
      goto bad;
  }
  return 0;
bad:
  ferry_error("invalid object key '%.64s' for store %s", key, s->url);
  errno = EINVAL;
  return -1;
}

int store_put(struct store *s, const char *key, const void *buf, size_t len)
{
  if (key_ok(s, key) == -1)
    return -1;
  return s->ops->put(s, key, buf, len);
}

int store_put_hashed(struct store *s, const char *key, const void *buf,
                     size_t len, const uint8_t sha256[32])
{
  if (key_ok(s, key) == -1)
    return -1;
  if (s->ops->put_hashed)
    return s->ops->put_hashed(s, key, buf, len, sha256);
  return s->ops->put(s, key, buf, len);
}

int store_get(struct store *s, const char *key, uint64_t off, void *buf,
              size_t len, size_t *got)
{
  if (key_ok(s, key) == -1)
    return -1;
  return s->ops->get(s, key, off, buf, len, got);
}

int store_head(struct store *s, const char *key, uint64_t *size)
{
  if (key_ok(s, key) == -1)
    return -1;
  return s->ops->head(s, key, size);
}

int store_list(struct store *s, const char *prefix, store_list_cb cb,
               void *opaque)
{
  return s->ops->list(s, prefix, cb, opaque);
}

int store_del(struct store *s, const char *key)
{
  if (key_ok(s, key) == -1)
    return -1;
  return s->ops->del(s, key);
}

int store_flush(struct store *s)
{
  return s->ops->flush ? s->ops->flush(s) : 0;
}

char *store_presign(struct store *s, const char *key, const char *method,
                    unsigned expires)
{
  if (key_ok(s, key) == -1)
    return NULL;
  if (s->ops->presign == NULL) {
    ferry_error("store %s cannot presign URLs (%s:// has no HTTP endpoint)",
                s->url, s->ops->scheme);
    return NULL;
  }
  return s->ops->presign(s, key, method, expires);
}

int store_grant(struct store *s, const char *key, const char *method,
                unsigned expires, const char *sha256, uint64_t size,
                struct store_grant *g)
{
  memset(g, 0, sizeof *g);
  if (key_ok(s, key) == -1)
    return -1;
  if (s->ops->grant == NULL) {
    ferry_error("store %s cannot grant access to its objects (%s:// has "
                "no HTTP endpoint): the agent needs direct access to it",
                s->url, s->ops->scheme);
    return -1;
  }
  return s->ops->grant(s, key, method, expires, sha256, size, g);
}

void store_grant_free(struct store_grant *g)
{
  size_t i;

  if (g == NULL)
    return;
  if (g->url)
    explicit_bzero(g->url, strlen(g->url));   /* it is a bearer secret */
  free(g->url);
  for (i = 0; i < STORE_GRANT_HEADERS; i++)
    free(g->headers[i]);
  memset(g, 0, sizeof *g);
}

int store_list_page(struct store *s, const char *prefix, const char *token,
                    store_list_cb cb, void *opaque, char **next)
{
  *next = NULL;
  if (s->ops->list_page)
    return s->ops->list_page(s, prefix, token, cb, opaque, next);
  if (token) {
    ferry_error("store %s has no pages to continue", s->url);
    return -1;
  }
  return s->ops->list(s, prefix, cb, opaque);
}

int store_get_all(struct store *s, const char *key, size_t cap, char **bufp,
                  size_t *lenp)
{
  uint64_t size;
  size_t got;
  char *buf;
  int r;

  r = store_head(s, key, &size);
  if (r == -1)
    return -1;
  if (r == 0) {
    ferry_error("%s not found in %s", key, s->url);
    errno = ENOENT;
    return -1;
  }
  if (size > cap) {
    ferry_error("%s in %s is %llu bytes, more than the %zu allowed: "
                "it is not an object ferry wrote", key, s->url,
                (unsigned long long)size, cap);
    errno = EFBIG;
    return -1;
  }
  /* one byte more than announced catches an object that grew meanwhile */
  buf = malloc((size_t)size + 2);
  if (buf == NULL) {
    ferry_error("out of memory reading %s", key);
    return -1;
  }
  if (s->ops->get(s, key, 0, buf, (size_t)size + 1, &got) == -1) {
    free(buf);
    return -1;
  }
  if (got != size) {
    ferry_error("%s in %s changed while it was read (%zu bytes, expected "
                "%llu): retry", key, s->url, got, (unsigned long long)size);
    free(buf);
    return -1;
  }
  buf[got] = '\0';
  *bufp = buf;
  *lenp = got;
  return 0;
}

struct store_writer *store_writer_open(struct store *s, const char *key,
                                       const struct store_writer_opts *opts)
{
  static const struct store_writer_opts none;

  if (key_ok(s, key) == -1)
    return NULL;
  return s->ops->writer_open(s, key, opts ? opts : &none);
}

int store_writer_write(struct store_writer *w, const void *buf, size_t len)
{
  if (w->store->ops->writer_write(w, buf, len) == -1)
    return -1;
  w->written += len;
  return 0;
}

int store_writer_zero(struct store_writer *w, uint64_t len)
{
  if (w->store->ops->writer_zero(w, len) == -1)
    return -1;
  w->written += len;
  return 0;
}

int store_writer_commit(struct store_writer *w)
{
  return w->store->ops->writer_commit(w);
}

void store_writer_abort(struct store_writer *w)
{
  if (w)
    w->store->ops->writer_abort(w);
}
