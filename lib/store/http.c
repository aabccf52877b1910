/* store/http.c - requests with retries and digests for HTTP stores. */
#include "store/http.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "util/cleanup.h"
#include "util/error.h"
#include "util/log.h"
#include "store/retry.h"

void md5_buf(const void *buf, size_t len, uint8_t out[MD5_LEN])
{
  unsigned int n = MD5_LEN;

  if (!EVP_Digest(buf, len, out, &n, EVP_md5(), NULL))
    abort();    /* MD5 cannot fail short of a broken libcrypto */
}

void base64_encode(const void *buf, size_t len, char *out)
{
  EVP_EncodeBlock((unsigned char *)out, buf, (int)len);
}

long base64_decode(const char *s, uint8_t *out, size_t cap)
{
  size_t n = strlen(s), pad = 0;
  unsigned char *tmp;
  int r;

  if (n == 0 || n % 4 != 0 || n / 4 * 3 > cap + 2)
    return -1;
  if (s[n - 1] == '=')
    pad++;
  if (s[n - 2] == '=')
    pad++;
  tmp = malloc(n / 4 * 3);
  if (tmp == NULL)
    return -1;
  r = EVP_DecodeBlock(tmp, (const unsigned char *)s, (int)n);
  if (r < 0 || (size_t)r < pad || (size_t)r - pad > cap) {
    free(tmp);
    return -1;
  }
  memcpy(out, tmp, (size_t)r - pad);
  free(tmp);
  return (long)((size_t)r - pad);
}

unsigned http_retry_after_ms(const struct http_response *resp)
{
  char buf[32], *end;
  unsigned long v;

  if (http_header(resp, "Retry-After", buf, sizeof buf) == NULL)
    return 0;
  v = strtoul(buf, &end, 10);
  if (end == buf || *end != '\0' || v > 3600)
    return 0;                       /* an HTTP date: the backoff decides */
  return (unsigned)v * 1000;
}

int store_http_request(struct http_request *req, struct http_response *resp,
                       store_http_prepare_fn prepare, void *opaque,
                       const char *what)
{
  struct retry rt;
  int after_drop = 0, r;

  retry_start(&rt);
  for (;;) {
    r = prepare(opaque, req, rt.attempt, after_drop);
    if (r == -1) {
      memset(resp, 0, sizeof *resp);
      return -1;
    }
    if (r != 0) {
      memset(resp, 0, sizeof *resp);
      if (r < 200 || r > 299) {
        ferry_error("%s: bad status %d for a request done unseen", what, r);
        return -1;
      }
      resp->status = r;
      return 0;
    }
    rt.attempt++;
    if (http_do(req, resp) == 0) {
      if (!resp->retryable)
        return 0;
      if (rt.attempt >= rt.max_attempts || retry_elapsed(&rt) >= rt.seconds)
        return 0;                   /* the caller names the status */
      log_warn("%s: HTTP %ld (attempt %u of %u); retrying", what,
               resp->status, rt.attempt, rt.max_attempts);
      after_drop = 0;
      r = retry_again(&rt, http_retry_after_ms(resp));
      http_response_free(resp);
    } else {
      if (!resp->transport_error || !resp->retryable) {
        /* an answer over its cap, or a failure retrying cannot mend:
         * what arrived of it is not the caller's to free */
        http_response_free(resp);
        ferry_error_prefix("%s: ", what);
        return -1;
      }
      http_response_free(resp);
      if (rt.attempt >= rt.max_attempts || retry_elapsed(&rt) >= rt.seconds) {
        ferry_error_prefix("%s: gave up after %u attempts in %.0f s: ", what,
                           rt.attempt, retry_elapsed(&rt));
        return -1;
      }
      log_warn("%s: %s (attempt %u of %u); retrying", what, ferry_errmsg(),
               rt.attempt, rt.max_attempts);
      after_drop = 1;
      r = retry_again(&rt, 0);
    }
    if (!r) {
      ferry_error("%s: gave up after %u attempts in %.0f s (the time "
                  "allowed, FERRY_RETRY_SECONDS, ran out)", what, rt.attempt,
                  retry_elapsed(&rt));
      memset(resp, 0, sizeof *resp);
      return -1;
    }
  }
}

/* ---- what the backends' store operations share ---- */

int store_http_location(const char *scheme, const char *usage,
                        const char *url, const char *name, size_t nlen,
                        const char *rest, char **prefix, char **store_url)
{
  size_t n;

  *prefix = *store_url = NULL;
  while (*rest == '/')
    rest++;
  n = strlen(rest);
  while (n > 0 && rest[n - 1] == '/')
    n--;
  if (asprintf(prefix, "%.*s%s", (int)n, rest, n ? "/" : "") == -1)
    *prefix = NULL;
  if (asprintf(store_url, "%s://%.*s%s%.*s", scheme, (int)nlen, name,
               n ? "/" : "", (int)n, rest) == -1)
    *store_url = NULL;
  if (*prefix == NULL || *store_url == NULL) {
    ferry_error("out of memory");
    return -1;
  }
  if (strstr(*prefix, "//")) {
    ferry_error("'%.128s' has an empty path component: use %s", url, usage);
    return -1;
  }
  return 0;
}

char *store_http_name(const char *prefix, const char *key)
{
  char *name;

  if (asprintf(&name, "%s%s", prefix, key) == -1) {
    ferry_error("out of memory");
    return NULL;
  }
  return name;
}

int store_http_list_page(struct xml_span body, const char *item,
                         const char *name_tag, const char *size_tag,
                         const char *prefix, const char *skip,
                         store_list_cb cb, void *opaque)
{
  size_t plen = strlen(prefix), pos = 0;
  struct xml_span it;
  int r = 0;

  while (r == 0 && xml_next(body, &pos, item, &it)) {
    CLEANUP_FREE char *name = xml_get(it, name_tag);
    CLEANUP_FREE char *size = xml_get(it, size_tag);

    if (name == NULL || size == NULL || strncmp(name, prefix, plen) != 0 ||
        (skip && strstr(name, skip)))
      continue;
    r = cb(opaque, name + plen, strtoull(size, NULL, 10));
  }
  return r;
}

int store_http_endpoint(const char *url, const char *check,
                        struct store_http_endpoint *ep)
{
  const char *p = strstr(url, "://");

  ep->https = p == url + 5 && strncmp(url, "https", 5) == 0;
  if (p == NULL || !(ep->https || (p == url + 4 &&
                                   strncmp(url, "http", 4) == 0))) {
    ferry_error("endpoint '%.128s' is not an http:// or https:// URL: "
                "check %s", url, check);
    return -1;
  }
  ep->host = p + 3;
  ep->path = ep->host + strcspn(ep->host, "/?#");
  ep->host_len = (size_t)(ep->path - ep->host);
  if (ep->host_len == 0 || memchr(ep->host, '@', ep->host_len) ||
      *ep->path == '?' || *ep->path == '#') {
    ferry_error("endpoint '%.128s' must be scheme://host[:port][/path], "
                "without credentials or a query: check %s", url, check);
    return -1;
  }
  ep->path_len = strlen(ep->path);
  while (ep->path_len > 0 && ep->path[ep->path_len - 1] == '/')
    ep->path_len--;
  return 0;
}

int store_http_head_size(const struct store *st,
                         const struct http_response *resp, const char *what,
                         uint64_t *size)
{
  char buf[32], *end;

  if (http_header(resp, "Content-Length", buf, sizeof buf) == NULL ||
      (*size = strtoull(buf, &end, 10), *end != '\0')) {
    ferry_error("%s: no size in the answer of %s", what, st->url);
    return -1;
  }
  return 1;
}

int store_http_get_nothing(struct store *st, const char *key, size_t *got)
{
  uint64_t size;
  int r;

  *got = 0;
  r = st->ops->head(st, key, &size);
  if (r == 0) {
    ferry_error("%s not found in %s", key, st->url);
    errno = ENOENT;
  }
  return r == 1 ? 0 : -1;
}

/* "bytes A-B/TOTAL" -> TOTAL, or -1. */
static int64_t range_total(const struct http_response *resp)
{
  char buf[96], *slash, *end;
  long long v;

  if (http_header(resp, "Content-Range", buf, sizeof buf) == NULL ||
      (slash = strchr(buf, '/')) == NULL)
    return -1;
  v = strtoll(slash + 1, &end, 10);
  return end == slash + 1 || *end || v < 0 ? -1 : (int64_t)v;
}

enum store_http_got store_http_got(const struct store *st, const char *key,
                                   uint64_t off, size_t len,
                                   const struct http_response *resp,
                                   int missing, size_t *got)
{
  int64_t total;

  *got = 0;
  if (resp->status == 404 && missing) {
    ferry_error("%s not found in %s", key, st->url);
    errno = ENOENT;
    return STORE_HTTP_GOT_FAIL;
  }
  if (resp->status == 416)              /* off at or past the end */
    return STORE_HTTP_GOT_PART;
  if (resp->status != 206 && !(resp->status == 200 && off == 0))
    return STORE_HTTP_GOT_STATUS;
  *got = resp->body_len;
  total = resp->status == 200 ? (int64_t)resp->body_len : range_total(resp);
  if (*got < len && total >= 0 && off + *got != (uint64_t)total) {
    ferry_error("%s in %s: the answer ended after %zu bytes of %zu: the "
                "connection was cut; try again", key, st->url, *got, len);
    return STORE_HTTP_GOT_FAIL;
  }
  return !st->verified_reads && off == 0 && total >= 0 &&
         (uint64_t)total == *got ? STORE_HTTP_GOT_WHOLE : STORE_HTTP_GOT_PART;
}

size_t store_http_part_size(uint64_t base, uint64_t size, uint32_t n,
                            uint32_t max_parts, uint32_t grow_every,
                            unsigned max_shift, uint64_t cap)
{
  uint64_t ps = base;

  if (size) {
    uint64_t need = (size + max_parts - 1) / max_parts;

    need = (need + (1u << 20) - 1) & ~(uint64_t)((1u << 20) - 1);
    if (need > ps)
      ps = need;
  } else {
    unsigned shift = (n - 1) / grow_every;

    ps <<= shift > max_shift ? max_shift : shift;
  }
  return ps > cap ? (size_t)cap : (size_t)ps;
}

/* ---- the streaming writer ---- */

int store_http_writer_init(struct store_http_writer *hw, struct store *st,
                           const char *key, const char *name,
                           const struct store_http_writer_ops *ops,
                           uint64_t memory, unsigned max_threads)
{
  uint64_t threads = memory / hw->part_size;

  hw->w.store = st;
  hw->ops = ops;
  hw->name = name;
  hw->next_part = 1;
  hw->w.key = strdup(key);
  if (hw->w.key == NULL) {
    ferry_error("out of memory");
    return -1;
  }
  threads = threads > max_threads ? max_threads : threads < 1 ? 1 : threads;
  hw->pool = upload_pool_create((unsigned)threads, ops->upload, hw);
  return hw->pool ? 0 : -1;
}

void store_http_writer_release(struct store_http_writer *hw)
{
  upload_pool_close(hw->pool);
  hw->pool = NULL;
  EVP_MD_CTX_free(hw->md5);
  hw->md5 = NULL;
  free(hw->w.key);
  hw->w.key = NULL;
}

static int writer_start(struct store_http_writer *hw)
{
  if (hw->ops->start && hw->ops->start(hw) == -1)
    return -1;
  hw->started = 1;
  return 0;
}

/* Send the filled part and start the next. */
static int writer_flush(struct store_http_writer *hw)
{
  struct upload_job *j = hw->cur;

  if (!hw->started && writer_start(hw) == -1)
    return -1;
  hw->cur = NULL;
  if (j->len == 0) {
    upload_pool_put(hw->pool, j);
    return 0;
  }
  if (hw->max_parts && hw->next_part > hw->max_parts) {
    upload_pool_put(hw->pool, j);
    ferry_error("%s: more than %u %s of %zu bytes: pass the output size "
                "to the writer, or set FERRY_PART_SIZE_MB higher", hw->name,
                hw->max_parts, hw->ops->parts, hw->part_size);
    return -1;
  }
  j->number = hw->next_part++;
  j->offset = hw->offset;
  hw->offset += j->len;
  if (upload_pool_submit(hw->pool, j) == -1)
    return -1;
  if (hw->ops->part_size)
    hw->part_size = hw->ops->part_size(hw, hw->next_part);
  return 0;
}

int store_http_writer_append(struct store_http_writer *hw, const void *buf,
                             uint64_t len)
{
  const char *p = buf;

  if (hw->limit &&
      hw->offset + (hw->cur ? hw->cur->len : 0) + len > hw->limit) {
    ferry_error("%s: writing past its size (%" PRIu64 " bytes)", hw->name,
                hw->limit);
    return -1;
  }
  while (len > 0) {
    char *dst;
    size_t n;

    if (hw->cur == NULL &&
        (hw->cur = upload_pool_get(hw->pool, hw->part_size)) == NULL)
      return -1;
    n = hw->part_size - hw->cur->len;
    if (n > len)
      n = (size_t)len;
    dst = (char *)hw->cur->buf + hw->cur->len;
    if (p) {
      memcpy(dst, p, n);
      p += n;
    } else {
      memset(dst, 0, n);
    }
    if (hw->md5 && !EVP_DigestUpdate(hw->md5, dst, n))
      abort();          /* MD5 cannot fail short of a broken libcrypto */
    hw->cur->len += n;
    len -= n;
    if (hw->cur->len == hw->part_size && writer_flush(hw) == -1)
      return -1;
  }
  return 0;
}

int store_http_writer_skip(struct store_http_writer *hw, uint64_t len)
{
  if (hw->cur && writer_flush(hw) == -1)
    return -1;
  if (!hw->started && writer_start(hw) == -1)
    return -1;
  hw->offset += len;
  return 0;
}

int store_http_writer_write(struct store_writer *w, const void *buf,
                            size_t len)
{
  return store_http_writer_append((struct store_http_writer *)w, buf, len);
}

int store_http_writer_zero(struct store_writer *w, uint64_t len)
{
  /* objects in parts are not sparse: the zeros are sent */
  return store_http_writer_append((struct store_http_writer *)w, NULL, len);
}

static int writer_commit(struct store_http_writer *hw)
{
  struct store *st = hw->w.store;
  int r;

  if (!hw->started && hw->ops->put_whole) {
    /* it fits in one part: a single request */
    r = hw->ops->put_whole(hw, hw->cur ? hw->cur->buf : "",
                           hw->cur ? hw->cur->len : 0);
    upload_pool_put(hw->pool, hw->cur);
    hw->cur = NULL;
    return r;
  }
  if (hw->cur && writer_flush(hw) == -1)
    return -1;
  if (!hw->started && writer_start(hw) == -1)
    return -1;
  if (upload_pool_finish(hw->pool) == -1 || hw->ops->complete(hw) == -1)
    return -1;
  if (hw->reused)
    log_info("%s/%s: %u %s sent, %u already uploaded before", st->url,
             hw->w.key, hw->sent, hw->ops->parts, hw->reused);
  return 0;
}

int store_http_writer_commit(struct store_writer *w)
{
  struct store_http_writer *hw = (struct store_http_writer *)w;
  int r = writer_commit(hw);

  hw->ops->free(hw);
  return r;
}

void store_http_writer_abort(struct store_writer *w)
{
  struct store_http_writer *hw = (struct store_http_writer *)w;
  char saved[1024];

  if (hw == NULL)
    return;
  upload_pool_put(hw->pool, hw->cur);
  hw->cur = NULL;
  upload_pool_close(hw->pool);
  hw->pool = NULL;
  if (hw->started && hw->ops->abort) {
    snprintf(saved, sizeof saved, "%s", ferry_errmsg());
    hw->ops->abort(hw);
    ferry_error_set(saved);          /* the caller's error stays */
  }
  hw->ops->free(hw);
}
