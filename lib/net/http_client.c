#include "net/http_client.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "net/http_stats.h"
#include "util/error.h"

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static pthread_key_t curl_key;

static void curl_free_handle(void *h)
{
  curl_easy_cleanup(h);
}

static void curl_setup(void)
{
  curl_global_init(CURL_GLOBAL_DEFAULT);
  pthread_key_create(&curl_key, curl_free_handle);
}

/* The calling thread's handle; created on first use, freed at exit. */
static CURL *thread_handle(void)
{
  CURL *h;

  pthread_once(&curl_once, curl_setup);
  h = pthread_getspecific(curl_key);
  if (h == NULL) {
    h = curl_easy_init();
    if (h != NULL)
      pthread_setspecific(curl_key, h);
  } else {
    curl_easy_reset(h);     /* keeps the connection cache */
  }
  return h;
}

struct sink {
  char *buf;
  size_t len, cap, limit;
  int fixed;                /* buf is the caller's */
  int too_big;
};

static int sink_put(struct sink *s, const char *data, size_t n)
{
  if (n > s->limit - s->len) {
    s->too_big = 1;
    return -1;
  }
  if (!s->fixed && s->len + n + 1 > s->cap) {
    size_t cap = s->cap ? s->cap : 4096;
    char *p;

    while (cap < s->len + n + 1)
      cap *= 2;
    if (cap > s->limit + 1)
      cap = s->limit + 1;
    p = realloc(s->buf, cap);
    if (p == NULL)
      return -1;
    s->buf = p;
    s->cap = cap;
  }
  memcpy(s->buf + s->len, data, n);
  s->len += n;
  if (!s->fixed)
    s->buf[s->len] = '\0';
  return 0;
}

/* The response body goes to the caller's buffer only when the status is
 * 2xx; an error document goes to a capped buffer of its own, so that it
 * neither overwrites nor overflows the caller's. */
struct bodies {
  struct sink ok, err;
  const struct http_request *req;
  CURL *h;
  int state;                /* 0 undecided, 1 ok, 2 err */
};

static size_t on_body(char *data, size_t size, size_t nmemb, void *opaque)
{
  struct bodies *b = opaque;

  if (b->state == 0) {
    long code = 0;

    curl_easy_getinfo(b->h, CURLINFO_RESPONSE_CODE, &code);
    b->state = (b->ok.fixed || b->req->on_data) &&
               (code < 200 || code > 299) ? 2 : 1;
  }
  if (b->state == 1 && b->req->on_data)
    return b->req->on_data(b->req->on_data_cls, data, size * nmemb) == 0
           ? size * nmemb : 0;
  return sink_put(b->state == 1 ? &b->ok : &b->err, data, size * nmemb) == 0
         ? size * nmemb : 0;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *opaque)
{
  struct sink *s = opaque;

  /* a new status line (after a redirect or 100-continue) starts afresh */
  if (size * nmemb >= 5 && strncmp(data, "HTTP/", 5) == 0)
    s->len = 0;
  return sink_put(s, data, size * nmemb) == 0 ? size * nmemb : 0;
}

struct body_src {
  const char *p;
  size_t left;
  const char *start;
  size_t len;
};

static size_t on_read(char *dst, size_t size, size_t nmemb, void *opaque)
{
  struct body_src *b = opaque;
  size_t n = size * nmemb < b->left ? size * nmemb : b->left;

  memcpy(dst, b->p, n);
  b->p += n;
  b->left -= n;
  return n;
}

/* curl may rewind the body to resend it (a redirect, an auth retry) */
static int on_seek(void *opaque, curl_off_t off, int origin)
{
  struct body_src *b = opaque;

  if (origin != SEEK_SET || off < 0 || (size_t)off > b->len)
    return CURL_SEEKFUNC_FAIL;
  b->p = b->start + off;
  b->left = b->len - (size_t)off;
  return CURL_SEEKFUNC_OK;
}

const char *http_host(const char *url, char *buf, size_t size)
{
  const char *p = strstr(url, "://"), *end;

  p = p ? p + 3 : url;
  end = p + strcspn(p, "/?#");
  /* never print credentials that a URL might carry (user:pass@host) */
  for (const char *at = p; at < end; at++)
    if (*at == '@')
      p = at + 1;
  snprintf(buf, size, "%.*s", (int)(end - p), p);
  return buf;
}

int http_do(const struct http_request *req, struct http_response *resp)
{
  char errbuf[CURL_ERROR_SIZE] = "", host[256];
  struct bodies bodies = { 0 };
  struct sink *body = &bodies.ok, hdrs = { 0 };
  struct body_src src = { 0 };
  struct timespec t0, t1;
  CURLcode rc;
  CURL *h;

  memset(resp, 0, sizeof *resp);
  h = thread_handle();
  if (h == NULL) {
    ferry_error("cannot create an HTTP handle (out of memory)");
    resp->transport_error = 1;
    return -1;
  }
  bodies.h = h;
  bodies.req = req;
  bodies.err.limit = req->body_cap ? req->body_cap : HTTP_BODY_CAP_DEFAULT;
  if (req->out) {
    body->buf = req->out;
    body->cap = body->limit = req->out_cap;
    body->fixed = 1;
  } else {
    body->limit = bodies.err.limit;
  }
  hdrs.limit = HTTP_HEADERS_CAP;

  curl_easy_setopt(h, CURLOPT_URL, req->url);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, req->connect_timeout
                                              ? req->connect_timeout : 10L);
  curl_easy_setopt(h, CURLOPT_TIMEOUT, req->timeout ? req->timeout : 300L);
  curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1024L);
  curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, req->low_speed_time
                                              ? req->low_speed_time : 60L);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &bodies);
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, &hdrs);
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
  if (req->headers)
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, req->headers);
  if (req->ca_file) {
    curl_easy_setopt(h, CURLOPT_CAINFO, req->ca_file);
    curl_easy_setopt(h, CURLOPT_CAPATH, NULL);
  }
  if (req->tls_unverified) {
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
    curl_easy_setopt(h, CURLOPT_FORBID_REUSE, 1L);
    curl_easy_setopt(h, CURLOPT_FRESH_CONNECT, 1L);
  }

  if (strcmp(req->method, "HEAD") == 0) {
    curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
  } else if (strcmp(req->method, "GET") != 0) {
    src.p = src.start = req->body ? req->body : "";
    src.left = src.len = req->body_len;
    curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
    curl_easy_setopt(h, CURLOPT_READDATA, &src);
    curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, on_seek);
    curl_easy_setopt(h, CURLOPT_SEEKDATA, &src);
    curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)req->body_len);
    if (strcmp(req->method, "PUT") != 0)
      curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, req->method);
  }

  clock_gettime(CLOCK_MONOTONIC, &t0);
  rc = curl_easy_perform(h);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status);
  http_stats_record(req->stats, req->method, rc == CURLE_OK ? resp->status
                                                            : 0,
                    (double)(t1.tv_sec - t0.tv_sec) +
                    (t1.tv_nsec - t0.tv_nsec) / 1e9);
  if (bodies.state == 2) {
    body = &bodies.err;
    resp->body = body->buf;
  } else {
    resp->body = req->out ? NULL : body->buf;
    free(bodies.err.buf);
  }
  resp->body_len = body->len;
  resp->headers = hdrs.buf;
  resp->headers_len = hdrs.len;
  if (rc != CURLE_OK) {
    http_host(req->url, host, sizeof host);
    if (body->too_big && rc == CURLE_WRITE_ERROR) {
      ferry_error("%s %s: response larger than the %zu bytes expected",
                  req->method, host, body->limit);
      return -1;
    }
    resp->transport_error = 1;
    resp->tls_refused = rc == CURLE_PEER_FAILED_VERIFICATION;
    resp->retryable = rc != CURLE_URL_MALFORMAT &&
                      rc != CURLE_UNSUPPORTED_PROTOCOL &&
                      rc != CURLE_OUT_OF_MEMORY &&
                      rc != CURLE_SSL_CACERT_BADFILE &&
                      rc != CURLE_PEER_FAILED_VERIFICATION;
    ferry_error("%s %s: %s%s", req->method, host,
                errbuf[0] ? errbuf : curl_easy_strerror(rc),
                req->ca_file && (rc == CURLE_PEER_FAILED_VERIFICATION ||
                                 rc == CURLE_SSL_CONNECT_ERROR)
                ? " (the server's certificate must chain to the CA in "
                  "the trusted CA file and name this host, which "
                  "ferry-server --tls-san adds: docs/SECURITY.md)" : "");
    resp->status = 0;
    return -1;
  }
  resp->retryable = resp->status >= 500 || resp->status == 429 ||
                    resp->status == 408;
  return 0;
}

void http_response_free(struct http_response *resp)
{
  free(resp->body);
  free(resp->headers);
  resp->body = resp->headers = NULL;
}

const char *http_header(const struct http_response *resp, const char *name,
                        char *buf, size_t size)
{
  size_t n = strlen(name);
  const char *p = resp->headers;

  while (p && *p) {
    const char *eol = strchr(p, '\n');
    size_t linelen = eol ? (size_t)(eol - p) : strlen(p);

    if (linelen > n && strncasecmp(p, name, n) == 0 && p[n] == ':') {
      const char *v = p + n + 1, *e = p + linelen;

      while (v < e && (*v == ' ' || *v == '\t'))
        v++;
      while (e > v && (e[-1] == '\r' || e[-1] == ' '))
        e--;
      snprintf(buf, size, "%.*s", (int)(e - v), v);
      return buf;
    }
    p = eol ? eol + 1 : NULL;
  }
  return NULL;
}

int http_header_add(struct curl_slist **list, const char *fmt, ...)
{
  struct curl_slist *l;
  char *line;
  va_list ap;
  int n;

  va_start(ap, fmt);
  n = vasprintf(&line, fmt, ap);
  va_end(ap);
  if (n == -1) {
    ferry_error("out of memory");
    return -1;
  }
  l = curl_slist_append(*list, line);
  free(line);
  if (l == NULL) {
    ferry_error("out of memory");
    return -1;
  }
  *list = l;
  return 0;
}

char *http_escape(const char *s, int keep_slash)
{
  static const char hexdig[] = "0123456789ABCDEF";
  size_t n = strlen(s);
  char *out = malloc(n * 3 + 1), *o = out;

  if (out == NULL) {
    ferry_error("out of memory");
    return NULL;
  }
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;

    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
        (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' ||
        c == '~' || (keep_slash && c == '/')) {
      *o++ = (char)c;
    } else {
      *o++ = '%';
      *o++ = hexdig[c >> 4];
      *o++ = hexdig[c & 15];
    }
  }
  *o = '\0';
  return out;
}

void http_backoff(unsigned attempt, unsigned base_ms, unsigned cap_ms)
{
  static _Thread_local unsigned seed;
  unsigned long long ceiling = base_ms;
  struct timespec ts;
  unsigned ms;

  if (seed == 0)
    seed = (unsigned)time(NULL) ^ (unsigned)(uintptr_t)&ts;
  while (attempt-- > 0 && ceiling < cap_ms)
    ceiling *= 2;
  if (ceiling > cap_ms)
    ceiling = cap_ms;
  ms = (unsigned)(rand_r(&seed) % (ceiling + 1));
  ts.tv_sec = ms / 1000;
  ts.tv_nsec = (long)(ms % 1000) * 1000000L;
  while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
    ;
}
