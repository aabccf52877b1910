/* store/s3.c - s3:// and gs:// stores: Amazon S3 and what speaks its API.
 *
 * s3://BUCKET/PREFIX talks to AWS (https://s3.REGION.amazonaws.com,
 * virtual-hosted) or to the S3-compatible service at AWS_ENDPOINT_URL
 * (path-style); gs://BUCKET/PREFIX talks to Google Cloud Storage's XML API
 * (https://storage.googleapis.com, region "auto") with HMAC keys.  Both
 * sign every request with SigV4 (sigv4.h), send the payload's SHA-256 and
 * MD5 so the service verifies what it stores, and check the MD5 (ETag) of
 * whole objects they read.  Large objects are multipart uploads that
 * resume: the converter's output is deterministic, so parts already
 * uploaded with the same bytes (same MD5) are not sent again.
 * docs/STORES.md describes URLs, credentials and limits. */
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "util/cleanup.h"
#include "hash/digest.h"
#include "util/error.h"
#include "util/log.h"
#include "store/aws_creds.h"
#include "store/sigv4.h"
#include "store/store.h"
#include "store/http.h"
#include "store/upload_pool.h"
#include "store/xml.h"

extern const struct store_ops store_s3_ops, store_gs_ops;

/* S3 multipart limits (Amazon S3 user guide, "Amazon S3 multipart upload
 * limits"): parts of 5 MiB to 5 GiB, the last one smaller; at most 10,000
 * parts. */
#define S3_PART_MIN (5ull << 20)
#define S3_PART_MAX (5ull << 30)
#define S3_PARTS_MAX 10000u
#define S3_PART_DEFAULT (8ull << 20)
/* memory for parts in flight: parts up to this are uploaded in parallel */
#define S3_WRITER_MEMORY (64ull << 20)
#define S3_WRITER_THREADS 4
#define S3_LIST_CAP (16u << 20)     /* one ListObjectsV2 page, capped */
#define S3_SMALL_CAP (1u << 20)     /* other XML answers */

/* What differs between s3:// and gs://. */
struct s3_flavour {
  const struct store_ops *ops;
  const char *env_key, *env_secret, *env_token;
  const char *env_endpoint;
};

static const struct s3_flavour flavour_s3 = {
  &store_s3_ops, "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
  "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL",
};

static const struct s3_flavour flavour_gs = {
  &store_gs_ops, "GS_ACCESS_KEY_ID", "GS_SECRET_ACCESS_KEY", NULL,
  "GS_ENDPOINT_URL",
};

struct store_s3 {
  struct store store;
  const struct s3_flavour *fl;
  char *bucket;
  char *prefix;              /* "" or "dir/sub/" */
  char *origin;              /* "https://host[:port]" requests go to */
  char *host;                /* the Host header (no default port) */
  char *base_path;           /* "/bucket" (path-style) or "" */
  char *access_key, *secret_key, *session_token, *region;
  size_t part_size;          /* FERRY_PART_SIZE_MB, or 0 */
};

static struct store_s3 *s3_of(struct store *s)
{
  return (struct store_s3 *)s;
}

/* ---- configuration ---- */

static char *env_dup(const char *name)
{
  const char *v = name ? getenv(name) : NULL;

  return v && *v ? strdup(v) : NULL;
}

/* AWS credentials: the environment, else the shared credentials file's
 * profile (AWS_PROFILE, default "default"); the region: AWS_REGION,
 * AWS_DEFAULT_REGION, the config file's profile, else us-east-1. */
static int s3_config_aws(struct store_s3 *s)
{
  const char *profile = getenv("AWS_PROFILE");
  CLEANUP_FREE char *conf = NULL, *section = NULL;
  struct aws_creds c;

  if (profile == NULL || *profile == '\0')
    profile = "default";
  if (aws_creds_load(&c) == -1)
    return -1;
  /* the store keeps the strings; c's profile and file are not needed */
  s->access_key = c.access_key;
  s->secret_key = c.secret_key;
  s->session_token = c.session_token;
  free(c.profile);
  free(c.file);
  s->region = env_dup("AWS_REGION");
  if (s->region == NULL)
    s->region = env_dup("AWS_DEFAULT_REGION");
  if (s->region == NULL && (conf = aws_file("AWS_CONFIG_FILE", "config"))) {
    if (strcmp(profile, "default") == 0)
      section = strdup("default");
    else if (asprintf(&section, "profile %s", profile) == -1)
      section = NULL;
    if (section)
      s->region = aws_ini_get(conf, section, "region");
  }
  if (s->region == NULL)
    s->region = strdup("us-east-1");
  return s->region ? 0 : -1;
}

/* Split an endpoint URL into origin, Host header and base path. */
static int s3_endpoint(struct store_s3 *s, const char *url,
                       const char *virtual_bucket)
{
  struct store_http_endpoint ep;
  size_t hlen;

  if (store_http_endpoint(url, s->fl->env_endpoint, &ep) == -1)
    return -1;
  hlen = ep.host_len;
  /* curl leaves a default port out of the Host header: so must SigV4 */
  if (ep.https && hlen > 4 && strncmp(ep.path - 4, ":443", 4) == 0)
    hlen -= 4;
  else if (!ep.https && hlen > 3 && strncmp(ep.path - 3, ":80", 3) == 0)
    hlen -= 3;
  if (asprintf(&s->host, "%s%s%.*s", virtual_bucket ? virtual_bucket : "",
               virtual_bucket ? "." : "", (int)hlen, ep.host) == -1 ||
      asprintf(&s->origin, "%s://%s", ep.https ? "https" : "http", s->host)
        == -1 ||
      asprintf(&s->base_path, "%.*s%s%s", (int)ep.path_len, ep.path,
               virtual_bucket ? "" : "/",
               virtual_bucket ? "" : s->bucket) == -1) {
    ferry_error("out of memory");
    return -1;
  }
  return 0;
}

static void s3_close(struct store *st)
{
  struct store_s3 *s = s3_of(st);

  if (s == NULL)
    return;
  if (s->secret_key)
    explicit_bzero(s->secret_key, strlen(s->secret_key));
  if (s->session_token)
    explicit_bzero(s->session_token, strlen(s->session_token));
  free(s->store.url);
  free(s->bucket);
  free(s->prefix);
  free(s->origin);
  free(s->host);
  free(s->base_path);
  free(s->access_key);
  free(s->secret_key);
  free(s->session_token);
  free(s->region);
  free(s);
}

static int bucket_ok(const char *b, size_t n)
{
  size_t i;

  if (n < 1 || n > 255)
    return 0;
  for (i = 0; i < n; i++)
    if (!((b[i] >= 'a' && b[i] <= 'z') || (b[i] >= 'A' && b[i] <= 'Z') ||
          (b[i] >= '0' && b[i] <= '9') || b[i] == '-' || b[i] == '.' ||
          b[i] == '_'))
      return 0;
  return 1;
}

static struct store *s3_open_flavour(const char *url,
                                     const struct s3_flavour *fl)
{
  const char *scheme = fl->ops->scheme;
  const char *b = url + strlen(scheme) + 3, *slash = strchr(b, '/');
  size_t blen = slash ? (size_t)(slash - b) : strlen(b);
  CLEANUP_FREE char *endpoint = NULL;
  const char *addressing = getenv("FERRY_S3_ADDRESSING");
  const char *part = getenv("FERRY_PART_SIZE_MB");
  struct store_s3 *s;
  int virt;

  if (memchr(b, '@', blen)) {
    ferry_error("%s://...: credentials do not belong in a store URL (it "
                "shows in process lists and logs): set %s and %s instead",
                scheme, fl->env_key, fl->env_secret);
    return NULL;
  }
  if (!bucket_ok(b, blen)) {
    ferry_error("'%.128s' does not name a bucket: use %s", url,
                fl->ops->usage);
    return NULL;
  }
  s = calloc(1, sizeof *s);
  if (s == NULL)
    goto oom;
  s->store.ops = fl->ops;
  s->fl = fl;
  s->bucket = strndup(b, blen);
  if (s->bucket == NULL)
    goto oom;
  if (store_http_location(scheme, fl->ops->usage, url, b, blen,
                          slash ? slash : "", &s->prefix, &s->store.url)
      == -1)
    goto fail;

  if (fl == &flavour_gs) {
    s->access_key = env_dup(fl->env_key);
    s->secret_key = env_dup(fl->env_secret);
    /* GCS's XML API takes SigV4 with HMAC keys in region "auto" */
    s->region = strdup("auto");
    if (s->region == NULL)
      goto oom;
  } else if (s3_config_aws(s) == -1) {
    goto oom;
  }
  if (s->access_key == NULL || s->secret_key == NULL) {
    ferry_error("no credentials for %s: set %s and %s%s", s->store.url,
                fl->env_key, fl->env_secret,
                fl == &flavour_s3 ? " (or a profile in ~/.aws/credentials)"
                                  : " (an HMAC key of the bucket's project)");
    goto fail;
  }

  endpoint = fl == &flavour_s3 ? env_dup("AWS_ENDPOINT_URL_S3") : NULL;
  if (endpoint == NULL)
    endpoint = env_dup(fl->env_endpoint);
  /* virtual-hosted addressing on AWS itself (path-style is deprecated
   * there), except for bucket names with dots, which break the TLS
   * certificate; path-style for other endpoints, which seldom have
   * per-bucket DNS names */
  virt = endpoint == NULL && fl == &flavour_s3 &&
         memchr(s->bucket, '.', blen) == NULL;
  if (addressing && strcmp(addressing, "path") == 0)
    virt = 0;
  else if (addressing && strcmp(addressing, "virtual") == 0)
    virt = 1;
  else if (addressing && *addressing) {
    ferry_error("FERRY_S3_ADDRESSING is '%.32s': use path or virtual",
                addressing);
    goto fail;
  }
  if (endpoint == NULL &&
      asprintf(&endpoint, fl == &flavour_gs
                          ? "https://storage.googleapis.com"
                          : "https://s3.%s.amazonaws.com", s->region) == -1) {
    endpoint = NULL;
    goto oom;
  }
  if (s3_endpoint(s, endpoint, virt ? s->bucket : NULL) == -1)
    goto fail;
  if (part && *part) {
    char *end;
    unsigned long mb = strtoul(part, &end, 10);

    if (*end || mb < S3_PART_MIN >> 20 || mb > S3_PART_MAX >> 20) {
      ferry_error("FERRY_PART_SIZE_MB is '%.32s': use 5 to 5120", part);
      goto fail;
    }
    s->part_size = (size_t)mb << 20;
  }
  return &s->store;
oom:
  ferry_error("out of memory");
fail:
  s3_close(s ? &s->store : NULL);
  return NULL;
}

static struct store *s3_open(const char *url)
{
  return s3_open_flavour(url, &flavour_s3);
}

static struct store *gs_open(const char *url)
{
  return s3_open_flavour(url, &flavour_gs);
}

/* ---- one signed request ---- */

struct s3_call {
  struct store_s3 *s;
  const char *method;
  const char *object;              /* the full object name; NULL: bucket */
  const struct sigv4_param *query;
  size_t n_query;
  const struct sigv4_param *headers;   /* signed and sent */
  size_t n_headers;
  const void *body;
  size_t body_len;
  void *out;                       /* response body into (GET ranges) */
  size_t out_cap;
  size_t body_cap;
  /* after a dropped connection, the request may have completed unseen:
   * when the object has this ETag, it did (idempotent writes only) */
  const char *done_etag;
  /* ... or, when set, has the MD5 of the body (computed only then) */
  int done_if_same_body;
  /* the body's SHA-256 when the caller knows it (signed payload) */
  const uint8_t *body_sha256;

  /* filled in */
  char payload_hash[DIGEST_HEX_LEN + 1];
  char etag_buf[40];
  char *path;
  struct curl_slist *list;
  char what[160];
};

static int s3_head_etag(struct store_s3 *s, const char *object, char *etag,
                        size_t size);
static void md5_etag(const uint8_t md5[MD5_LEN], char *etag);

static int s3_prepare(void *opaque, struct http_request *req,
                      unsigned attempt, int after_drop)
{
  struct s3_call *c = opaque;
  struct store_s3 *s = c->s;
  struct sigv4_key k = {
    .access_key = s->access_key, .secret_key = s->secret_key,
    .session_token = s->session_token, .region = s->region,
    .service = "s3",
  };
  struct sigv4_param hdrs[8];
  struct sigv4_request r = {
    .method = c->method, .host = s->host, .path = c->path,
    .query = c->query, .n_query = c->n_query,
    .headers = hdrs, .payload_hash = c->payload_hash,
  };
  char date[SIGV4_DATE_LEN], etag[80];
  CLEANUP_FREE char *auth = NULL;
  size_t i;

  (void)attempt;
  if (after_drop && c->done_if_same_body && c->done_etag == NULL) {
    uint8_t md5[MD5_LEN];

    md5_buf(c->body ? c->body : "", c->body_len, md5);
    md5_etag(md5, c->etag_buf);
    c->done_etag = c->etag_buf;
  }
  if (after_drop && c->done_etag &&
      s3_head_etag(s, c->object, etag, sizeof etag) == 1 &&
      strcmp(etag, c->done_etag) == 0) {
    log_info("%s: completed before the connection dropped; not sent "
             "again", c->what);
    return 200;       /* PutObject and CompleteMultipartUpload: 200 OK */
  }
  hdrs[r.n_headers++] = (struct sigv4_param){ "x-amz-content-sha256",
                                              c->payload_hash };
  for (i = 0; i < c->n_headers && r.n_headers < 8; i++)
    hdrs[r.n_headers++] = c->headers[i];
  sigv4_date(time(NULL), date);
  auth = sigv4_authorization(&r, &k, date);
  curl_slist_free_all(c->list);
  c->list = NULL;
  if (auth == NULL ||
      http_header_add(&c->list, "Authorization: %s", auth) == -1 ||
      http_header_add(&c->list, "x-amz-date: %s", date) == -1 ||
      (s->session_token &&
       http_header_add(&c->list, "x-amz-security-token: %s",
                       s->session_token) == -1))
    return -1;
  for (i = 0; i < r.n_headers; i++)
    if (http_header_add(&c->list, "%s: %s", hdrs[i].name, hdrs[i].value)
        == -1)
      return -1;
  req->headers = c->list;
  if (auth)
    explicit_bzero(auth, strlen(auth));
  return 0;
}

/* Perform c: 0 with *resp (any status), -1 with an error when no answer
 * came. */
static int s3_call(struct s3_call *c, struct http_response *resp)
{
  struct store_s3 *s = c->s;
  CLEANUP_FREE char *enc = NULL, *query = NULL, *url = NULL;
  struct http_request req = { 0 };
  uint8_t d[DIGEST_LEN];
  char hostbuf[128];
  int r;

  if (c->object) {
    enc = http_escape(c->object, 1);
    if (enc == NULL)
      return -1;
  }
  if (asprintf(&c->path, "%s/%s", s->base_path, enc ? enc : "") == -1) {
    c->path = NULL;
    ferry_error("out of memory");
    return -1;
  }
  /* path-style bucket requests: "/bucket", not "/bucket/" */
  if (c->object == NULL && *s->base_path)
    c->path[strlen(c->path) - 1] = '\0';
  query = sigv4_canonical_query(c->query, c->n_query);
  if (query == NULL ||
      asprintf(&url, "%s%s%s%s", s->origin, c->path, *query ? "?" : "",
               query) == -1) {
    url = NULL;
    free(c->path);
    ferry_error("out of memory");
    return -1;
  }
  if (c->body_sha256)
    digest_to_hex(c->body_sha256, c->payload_hash);
  else {
    digest_buf(c->body ? c->body : "", c->body_len, d);
    digest_to_hex(d, c->payload_hash);
  }
  snprintf(c->what, sizeof c->what, "%s %s %.100s", c->method,
           http_host(s->origin, hostbuf, sizeof hostbuf),
           c->object ? c->object : s->bucket);
  req.method = c->method;
  req.url = url;
  req.stats = "store";
  req.body = c->body;
  req.body_len = c->body_len;
  req.out = c->out;
  req.out_cap = c->out_cap;
  req.body_cap = c->body_cap ? c->body_cap : S3_SMALL_CAP;
  r = store_http_request(&req, resp, s3_prepare, c, c->what);
  curl_slist_free_all(c->list);
  c->list = NULL;
  free(c->path);
  c->path = NULL;
  return r;
}

static const char *code_of(const struct http_response *resp, char *buf,
                           size_t size)
{
  struct xml_span body = { resp->body, resp->body_len };
  CLEANUP_FREE char *code = resp->body ? xml_get(body, "Code") : NULL;

  snprintf(buf, size, "%s", code ? code : "");
  return buf;
}

/* Turn a failed response into one line that says what to check. */
static int s3_fail(struct store_s3 *s, const struct s3_call *c,
                   const struct http_response *resp)
{
  struct xml_span body = { resp->body, resp->body_len };
  CLEANUP_FREE char *msg = resp->body ? xml_get(body, "Message") : NULL;
  char code[64], host[128];
  const char *fl_key = s->fl->env_key, *fl_secret = s->fl->env_secret;

  code_of(resp, code, sizeof code);
  http_host(s->origin, host, sizeof host);
  if (strcmp(code, "SignatureDoesNotMatch") == 0)
    ferry_error("signature rejected by %s: check %s", host, fl_secret);
  else if (strcmp(code, "InvalidAccessKeyId") == 0)
    ferry_error("access key unknown to %s: check %s", host, fl_key);
  else if (strcmp(code, "ExpiredToken") == 0 ||
           strcmp(code, "InvalidToken") == 0 ||
           strcmp(code, "TokenRefreshRequired") == 0)
    ferry_error("session token rejected by %s (%s): check %s", host, code,
                s->fl->env_token ? s->fl->env_token : fl_key);
  else if (strcmp(code, "RequestTimeTooSkewed") == 0)
    ferry_error("%s says this machine's clock is wrong: set the time "
                "(NTP) and try again", host);
  else if (strcmp(code, "AuthorizationHeaderMalformed") == 0 ||
           strcmp(code, "PermanentRedirect") == 0 ||
           strcmp(code, "IllegalLocationConstraintException") == 0)
    ferry_error("bucket %s is not in region %s at %s: check %s (%s)",
                s->bucket, s->region, host,
                s->fl == &flavour_s3 ? "AWS_REGION" : s->fl->env_endpoint,
                msg ? msg : code);
  else if (strcmp(code, "NoSuchBucket") == 0)
    ferry_error("bucket %s does not exist at %s: create it or check the "
                "URL %s", s->bucket, host, s->store.url);
  else if (strcmp(code, "AccessDenied") == 0 || resp->status == 403)
    ferry_error("access denied by %s to %s (%s): check that %s may use "
                "bucket %s, and %s", host, c->what,
                *code ? code : "HTTP 403", fl_key, s->bucket, fl_secret);
  else if (resp->retryable)
    ferry_error("%s: HTTP %ld%s%s after every retry: the service is down "
                "or overloaded; try again later (FERRY_RETRIES, "
                "FERRY_RETRY_SECONDS)", c->what, resp->status,
                *code ? " " : "", code);
  else
    ferry_error("%s: HTTP %ld %s%s%.200s", c->what, resp->status, code,
                msg ? ": " : "", msg ? msg : "");
  errno = resp->status == 404 && strcmp(code, "NoSuchBucket") ? ENOENT : EIO;
  return -1;
}

static char *object_name(struct store_s3 *s, const char *key)
{
  return store_http_name(s->prefix, key);
}

static int s3_head_etag(struct store_s3 *s, const char *object, char *etag,
                        size_t size)
{
  struct s3_call c = { .s = s, .method = "HEAD", .object = object };
  struct http_response resp;
  int r;

  if (s3_call(&c, &resp) == -1)
    return -1;
  r = resp.status == 200 ? 1 : resp.status == 404 ? 0 : -1;
  if (r == 1 && http_header(&resp, "ETag", etag, size) == NULL)
    etag[0] = '\0';
  http_response_free(&resp);
  return r;
}

/* ---- objects ---- */

static void md5_etag(const uint8_t md5[MD5_LEN], char *etag)
{
  etag[0] = '"';
  hex_encode(md5, MD5_LEN, etag + 1);
  etag[33] = '"';
  etag[34] = '\0';
}

/* A whole-object PUT.  The signed payload SHA-256
 * (x-amz-content-sha256) is what S3 verifies the body against, so no
 * Content-MD5 is computed as well; the MD5 is worked out only if a
 * dropped connection leaves it unknown whether the PUT landed. */
static int s3_put_object(struct store_s3 *s, const char *object,
                         const void *buf, size_t len,
                         const uint8_t *sha256)
{
  struct s3_call c = {
    .s = s, .method = "PUT", .object = object, .body = buf,
    .body_len = len, .done_if_same_body = 1, .body_sha256 = sha256,
  };
  struct http_response resp;
  int r = 0;

  if (s3_call(&c, &resp) == -1)
    return -1;
  if (resp.status != 200)
    r = s3_fail(s, &c, &resp);
  http_response_free(&resp);
  return r;
}

static int s3_put(struct store *st, const char *key, const void *buf,
                  size_t len)
{
  struct store_s3 *s = s3_of(st);
  CLEANUP_FREE char *object = object_name(s, key);

  if (object == NULL)
    return -1;
  return s3_put_object(s, object, buf, len, NULL);
}

static int s3_put_hashed(struct store *st, const char *key, const void *buf,
                         size_t len, const uint8_t sha256[32])
{
  struct store_s3 *s = s3_of(st);
  CLEANUP_FREE char *object = object_name(s, key);

  if (object == NULL)
    return -1;
  return s3_put_object(s, object, buf, len, sha256);
}

static int s3_get(struct store *st, const char *key, uint64_t off,
                  void *buf, size_t len, size_t *got)
{
  struct store_s3 *s = s3_of(st);
  CLEANUP_FREE char *object = object_name(s, key);
  char range[64], etag[80];
  struct sigv4_param h[1] = { { "Range", range } };
  struct s3_call c = {
    .s = s, .method = "GET", .headers = h, .n_headers = 1,
    .out = buf, .out_cap = len,
  };
  struct http_response resp;
  int missing;
  int r = 0;

  if (object == NULL)
    return -1;
  c.object = object;
  if (len == 0)
    return store_http_get_nothing(st, key, got);
  snprintf(range, sizeof range, "bytes=%" PRIu64 "-%" PRIu64, off,
           off + len - 1);
  if (s3_call(&c, &resp) == -1)
    return -1;
  missing = resp.status == 404 &&
            strcmp(code_of(&resp, range, sizeof range), "NoSuchBucket");
  switch (store_http_got(st, key, off, len, &resp, missing, got)) {
  case STORE_HTTP_GOT_FAIL:
    r = -1;
    break;
  case STORE_HTTP_GOT_STATUS:
    r = s3_fail(s, &c, &resp);
    break;
  case STORE_HTTP_GOT_WHOLE:
    /* a whole object whose ETag is its MD5 (not multipart, not
     * encrypted with a customer key): check what arrived */
    if (http_header(&resp, "ETag", etag, sizeof etag) &&
        strlen(etag) == 34 && etag[0] == '"') {
      uint8_t md5[MD5_LEN];
      char want[40];

      md5_buf(buf, *got, md5);
      md5_etag(md5, want);
      if (strcasecmp(want, etag) != 0) {
        ferry_error("%s in %s: the bytes read do not match the object's "
                    "MD5 (ETag %s): it was damaged in the store or on the "
                    "way; delete it and write it again", key, s->store.url,
                    etag);
        errno = EIO;
        r = -1;
      }
    }
    break;
  case STORE_HTTP_GOT_PART:
    break;
  }
  http_response_free(&resp);
  return r;
}

static int s3_head(struct store *st, const char *key, uint64_t *size)
{
  struct store_s3 *s = s3_of(st);
  CLEANUP_FREE char *object = object_name(s, key);
  struct s3_call c = { .s = s, .method = "HEAD" };
  struct http_response resp;
  char buf[32];
  int r;

  if (object == NULL)
    return -1;
  c.object = object;
  if (s3_call(&c, &resp) == -1)
    return -1;
  if (resp.status == 200) {
    r = store_http_head_size(st, &resp, c.what, size);
  } else {
    /* a HEAD answer has no body to say why (a missing object or a missing
     * bucket?): ask again with a GET of one byte, whose error document
     * names the cause */
    struct s3_call g = {
      .s = s, .method = "GET", .object = object, .out = buf, .out_cap = 1,
      .headers = (struct sigv4_param[]){ { "Range", "bytes=0-0" } },
      .n_headers = 1,
    };
    struct http_response gr;

    if (s3_call(&g, &gr) == 0) {
      char code[64];

      if (resp.status == 404 &&
          strcmp(code_of(&gr, code, sizeof code), "NoSuchBucket") != 0)
        r = 0;
      else
        r = gr.status >= 300 ? s3_fail(s, &g, &gr) : s3_fail(s, &c, &resp);
      http_response_free(&gr);
    } else {
      r = -1;
    }
  }
  http_response_free(&resp);
  return r;
}

/* One ListObjectsV2 page from token (NULL: the first). */
static int s3_list_page(struct store *st, const char *prefix,
                        const char *token, store_list_cb cb, void *opaque,
                        char **next)
{
  struct store_s3 *s = s3_of(st);
  CLEANUP_FREE char *full = object_name(s, prefix), *trunc = NULL;
  struct sigv4_param q[4] = {
    { "list-type", "2" }, { "prefix", full }, { "max-keys", "1000" },
    { "continuation-token", token },
  };
  struct s3_call c = {
    .s = s, .method = "GET", .query = q, .n_query = token ? 4 : 3,
    .body_cap = S3_LIST_CAP,
  };
  struct http_response resp;
  struct xml_span body;
  int r;

  *next = NULL;
  if (full == NULL)
    return -1;
  if (s3_call(&c, &resp) == -1)
    return -1;
  if (resp.status != 200) {
    r = s3_fail(s, &c, &resp);
    http_response_free(&resp);
    return r;
  }
  body = (struct xml_span){ resp.body, resp.body_len };
  r = store_http_list_page(body, "Contents", "Key", "Size", s->prefix,
                           NULL, cb, opaque);
  trunc = xml_get(body, "IsTruncated");
  if (r == 0 && trunc && strcmp(trunc, "true") == 0) {
    *next = xml_get(body, "NextContinuationToken");
    if (*next == NULL || **next == '\0') {
      ferry_error("%s: a truncated listing without a continuation token",
                  c.what);
      free(*next);
      *next = NULL;
      r = -1;
    }
  }
  http_response_free(&resp);
  return r;
}

static int s3_list(struct store *st, const char *prefix, store_list_cb cb,
                   void *opaque)
{
  char *token = NULL, *next;
  int r;

  do {
    r = s3_list_page(st, prefix, token, cb, opaque, &next);
    free(token);
    token = next;
  } while (r == 0 && token);
  free(token);
  return r;
}

static int s3_del(struct store *st, const char *key)
{
  struct store_s3 *s = s3_of(st);
  CLEANUP_FREE char *object = object_name(s, key);
  struct s3_call c = { .s = s, .method = "DELETE" };
  struct http_response resp;
  int r = 0;

  if (object == NULL)
    return -1;
  c.object = object;
  if (s3_call(&c, &resp) == -1)
    return -1;
  if (resp.status != 204 && resp.status != 200 && resp.status != 404)
    r = s3_fail(s, &c, &resp);
  http_response_free(&resp);
  return r;
}

/* A presigned URL for method on key; the request must send hdrs (signed
 * too).  Caller frees. */
static char *s3_sign_url(struct store_s3 *s, const char *key,
                         const char *method, unsigned expires,
                         const struct sigv4_param *hdrs, size_t n_hdrs)
{
  CLEANUP_FREE char *object = object_name(s, key), *enc = NULL;
  CLEANUP_FREE char *path = NULL, *query = NULL;
  struct sigv4_key k = {
    .access_key = s->access_key, .secret_key = s->secret_key,
    .session_token = s->session_token, .region = s->region,
    .service = "s3",
  };
  /* a presigned request's payload line is UNSIGNED-PAYLOAD (S3 API
   * reference, "Authenticating Requests: Using Query Parameters"); the
   * payload is bound by signing its x-amz-content-sha256 header, which
   * the service then checks the body against */
  struct sigv4_request r = {
    .method = method, .host = s->host, .payload_hash = SIGV4_UNSIGNED,
    .headers = hdrs, .n_headers = n_hdrs,
  };
  char date[SIGV4_DATE_LEN], *url;

  if (strcmp(method, "GET") && strcmp(method, "PUT") &&
      strcmp(method, "HEAD") && strcmp(method, "DELETE")) {
    ferry_error("cannot presign %.16s: use GET, PUT, HEAD or DELETE",
                method);
    return NULL;
  }
  if (object == NULL || (enc = http_escape(object, 1)) == NULL)
    return NULL;
  if (asprintf(&path, "%s/%s", s->base_path, enc) == -1) {
    path = NULL;
    ferry_error("out of memory");
    return NULL;
  }
  r.path = path;
  sigv4_date(time(NULL), date);
  query = sigv4_presign_query(&r, &k, date, expires);
  if (query == NULL)
    return NULL;
  if (asprintf(&url, "%s%s?%s", s->origin, path, query) == -1) {
    ferry_error("out of memory");
    return NULL;
  }
  return url;
}

static char *s3_presign(struct store *st, const char *key,
                        const char *method, unsigned expires)
{
  return s3_sign_url(s3_of(st), key, method, expires, NULL, 0);
}

/* GET, HEAD or PUT on key alone; a PUT's payload SHA-256 and length are
 * signed headers, so the grant writes that payload and no other (a
 * different body fails the service's x-amz-content-sha256 check, a
 * different header the signature). */
static int s3_grant(struct store *st, const char *key, const char *method,
                    unsigned expires, const char *sha256, uint64_t size,
                    struct store_grant *g)
{
  struct store_s3 *s = s3_of(st);
  char len[24];
  struct sigv4_param h[2] = {
    { "content-length", len }, { "x-amz-content-sha256", sha256 },
  };
  int put = strcmp(method, "PUT") == 0;

  if (!put && strcmp(method, "GET") && strcmp(method, "HEAD")) {
    ferry_error("a grant is for GET, HEAD or PUT, not %.16s", method);
    return -1;
  }
  if (put && (sha256 == NULL || strlen(sha256) != DIGEST_HEX_LEN)) {
    ferry_error("a PUT grant needs the payload's SHA-256");
    return -1;
  }
  snprintf(len, sizeof len, "%" PRIu64, size);
  g->url = s3_sign_url(s, key, method, expires, h, put ? 2 : 0);
  if (g->url == NULL)
    return -1;
  if (put && (asprintf(&g->headers[0], "x-amz-content-sha256: %s",
                       sha256) == -1)) {
    g->headers[0] = NULL;
    store_grant_free(g);
    ferry_error("out of memory");
    return -1;
  }
  return 0;
}

/* ---- multipart writer ---- */

struct s3_part {
  uint8_t md5[MD5_LEN];
  uint64_t size;
  int present;
};

struct s3_writer {
  struct store_http_writer hw;     /* first */
  struct store_s3 *s;
  char *object;
  uint64_t size_hint;
  char *upload_id;
  struct s3_part *parts;           /* [S3_PARTS_MAX], as uploaded */
  struct s3_part *old;             /* [S3_PARTS_MAX], found on resume */
};

/* Part size for an object of size bytes (0: unknown, then part n grows:
 * it doubles every 1000 parts, so 10,000 parts reach past 5 TiB). */
static size_t part_size_for(struct store_s3 *s, uint64_t size, uint32_t n)
{
  return store_http_part_size(s->part_size ? s->part_size : S3_PART_DEFAULT,
                              size, n, S3_PARTS_MAX, 1000, 10, S3_PART_MAX);
}

/* Parse a quoted hex MD5 ETag; -1 if it is something else. */
static int etag_md5(const char *etag, uint8_t md5[MD5_LEN])
{
  char hex[DIGEST_HEX_LEN + 1];
  size_t n = strlen(etag);
  uint8_t full[DIGEST_LEN];

  if (n >= 2 && etag[0] == '"' && etag[n - 1] == '"') {
    etag++;
    n -= 2;
  }
  if (n != 2 * MD5_LEN)
    return -1;
  /* digest_from_hex wants 64 digits: pad */
  memcpy(hex, etag, n);
  memset(hex + n, '0', DIGEST_HEX_LEN - n);
  hex[DIGEST_HEX_LEN] = '\0';
  if (digest_from_hex(hex, full) == -1)
    return -1;
  memcpy(md5, full, MD5_LEN);
  return 0;
}

/* The parts an earlier upload of this object left (ListParts). */
static int s3_list_parts(struct s3_writer *sw)
{
  struct store_s3 *s = sw->s;
  char marker[16] = "0";
  int more = 1;

  while (more) {
    struct sigv4_param q[3] = {
      { "uploadId", sw->upload_id }, { "max-parts", "1000" },
      { "part-number-marker", marker },
    };
    struct s3_call c = {
      .s = s, .method = "GET", .object = sw->object, .query = q,
      .n_query = 3, .body_cap = S3_LIST_CAP,
    };
    struct http_response resp;
    struct xml_span body, item;
    size_t pos = 0;
    CLEANUP_FREE char *trunc = NULL, *next = NULL;

    if (s3_call(&c, &resp) == -1)
      return -1;
    if (resp.status != 200) {
      s3_fail(s, &c, &resp);
      http_response_free(&resp);
      return -1;
    }
    body = (struct xml_span){ resp.body, resp.body_len };
    while (xml_next(body, &pos, "Part", &item)) {
      CLEANUP_FREE char *num = xml_get(item, "PartNumber");
      CLEANUP_FREE char *etag = xml_get(item, "ETag");
      CLEANUP_FREE char *size = xml_get(item, "Size");
      unsigned long n = num ? strtoul(num, NULL, 10) : 0;
      struct s3_part *p;

      if (n < 1 || n > S3_PARTS_MAX || etag == NULL || size == NULL)
        continue;
      p = &sw->old[n - 1];
      if (etag_md5(etag, p->md5) == 0) {
        p->size = strtoull(size, NULL, 10);
        p->present = 1;
      }
    }
    trunc = xml_get(body, "IsTruncated");
    next = xml_get(body, "NextPartNumberMarker");
    more = trunc && strcmp(trunc, "true") == 0 && next && *next &&
           strcmp(next, marker) != 0;
    if (more)
      snprintf(marker, sizeof marker, "%s", next);
    http_response_free(&resp);
  }
  return 0;
}

/* Find an unfinished upload of this object (the newest) to resume, else
 * start one. */
static int s3_upload_begin(struct s3_writer *sw)
{
  struct store_s3 *s = sw->s;
  struct sigv4_param q[2] = { { "uploads", "" }, { "prefix", sw->object } };
  struct s3_call c = {
    .s = s, .method = "GET", .query = q, .n_query = 2,
    .body_cap = S3_LIST_CAP,
  };
  struct http_response resp;
  struct xml_span body, item;
  CLEANUP_FREE char *newest = NULL;
  size_t pos = 0;
  unsigned i, n = 0;

  if (s3_call(&c, &resp) == -1)
    return -1;
  if (resp.status != 200) {
    s3_fail(s, &c, &resp);
    http_response_free(&resp);
    return -1;
  }
  body = (struct xml_span){ resp.body, resp.body_len };
  while (xml_next(body, &pos, "Upload", &item)) {
    CLEANUP_FREE char *key = xml_get(item, "Key");
    char *id = xml_get(item, "UploadId");
    char *when = xml_get(item, "Initiated");

    if (key && id && when && strcmp(key, sw->object) == 0 &&
        (newest == NULL || strcmp(when, newest) > 0)) {
      free(sw->upload_id);
      free(newest);
      sw->upload_id = id;
      newest = when;
    } else {
      free(id);
      free(when);
    }
  }
  http_response_free(&resp);
  if (sw->upload_id) {
    if (s3_list_parts(sw) == -1)
      return -1;
    for (i = 0; i < S3_PARTS_MAX; i++)
      n += sw->old[i].present;
    log_info("resuming the upload of %s/%s: %u parts are there already",
             s->store.url, sw->hw.w.key, n);
    return 0;
  }

  {
    struct sigv4_param cq[1] = { { "uploads", "" } };
    struct s3_call cc = {
      .s = s, .method = "POST", .object = sw->object, .query = cq,
      .n_query = 1,
    };
    struct xml_span b;

    if (s3_call(&cc, &resp) == -1)
      return -1;
    if (resp.status != 200) {
      s3_fail(s, &cc, &resp);
      http_response_free(&resp);
      return -1;
    }
    b = (struct xml_span){ resp.body, resp.body_len };
    sw->upload_id = resp.body ? xml_get(b, "UploadId") : NULL;
    http_response_free(&resp);
    if (sw->upload_id == NULL || *sw->upload_id == '\0') {
      ferry_error("%s: no UploadId in the answer", cc.what);
      return -1;
    }
  }
  return 0;
}

/* Upload one part (pool thread). */
static int s3_upload_part(void *opaque, struct upload_job *j)
{
  struct s3_writer *sw = opaque;
  struct s3_part *p = &sw->parts[j->number - 1];
  const struct s3_part *old = &sw->old[j->number - 1];
  char num[16], md5_b64[32], etag[80];
  struct sigv4_param q[2] = { { "partNumber", num },
                              { "uploadId", sw->upload_id } };
  struct sigv4_param h[1] = { { "Content-MD5", md5_b64 } };
  struct s3_call c = {
    .s = sw->s, .method = "PUT", .object = sw->object, .query = q,
    .n_query = 2, .headers = h, .n_headers = 1, .body = j->buf,
    .body_len = j->len,
  };
  struct http_response resp;
  int r = 0;

  md5_buf(j->buf, j->len, p->md5);
  p->size = j->len;
  p->present = 1;
  if (old->present && old->size == j->len &&
      memcmp(old->md5, p->md5, MD5_LEN) == 0) {
    atomic_fetch_add(&sw->hw.reused, 1);
    return 0;                        /* uploaded before with these bytes */
  }
  snprintf(num, sizeof num, "%" PRIu32, j->number);
  base64_encode(p->md5, MD5_LEN, md5_b64);
  if (s3_call(&c, &resp) == -1)
    return -1;
  if (resp.status != 200) {
    r = s3_fail(sw->s, &c, &resp);
  } else if (http_header(&resp, "ETag", etag, sizeof etag) == NULL) {
    ferry_error("%s: no ETag in the answer", c.what);
    r = -1;
  } else {
    uint8_t got[MD5_LEN];

    /* the ETag of a part is its MD5 (unless encrypted with KMS, where
     * Content-MD5 was checked by the service instead) */
    if (etag_md5(etag, got) == 0 && memcmp(got, p->md5, MD5_LEN) != 0) {
      ferry_error("%s: the service stored part %" PRIu32 " with another "
                  "MD5 (%s): the bytes were damaged on the way", c.what,
                  j->number, etag);
      r = -1;
    }
    atomic_fetch_add(&sw->hw.sent, 1);
  }
  http_response_free(&resp);
  return r;
}

static void s3_writer_free(struct store_http_writer *hw)
{
  struct s3_writer *sw = (struct s3_writer *)hw;

  store_http_writer_release(hw);
  free(sw->object);
  free(sw->upload_id);
  free(sw->parts);
  free(sw->old);
  free(sw);
}

/* Before the first part: resume the newest upload of the object, or
 * begin one. */
static int s3_writer_start(struct store_http_writer *hw)
{
  struct s3_writer *sw = (struct s3_writer *)hw;

  sw->parts = calloc(S3_PARTS_MAX, sizeof *sw->parts);
  sw->old = calloc(S3_PARTS_MAX, sizeof *sw->old);
  if (sw->parts == NULL || sw->old == NULL) {
    ferry_error("out of memory");
    return -1;
  }
  return s3_upload_begin(sw);
}

static size_t s3_writer_part_size(struct store_http_writer *hw, uint32_t n)
{
  struct s3_writer *sw = (struct s3_writer *)hw;

  return part_size_for(sw->s, sw->size_hint, n);
}

static int s3_writer_put_whole(struct store_http_writer *hw, const void *buf,
                               size_t len)
{
  struct s3_writer *sw = (struct s3_writer *)hw;

  return s3_put_object(sw->s, sw->object, buf, len, NULL);
}

static int s3_complete(struct s3_writer *sw)
{
  struct store_s3 *s = sw->s;
  uint32_t n = sw->hw.next_part - 1, i;
  struct sigv4_param q[1] = { { "uploadId", sw->upload_id } };
  CLEANUP_FREE char *xml = NULL;
  uint8_t *all = malloc((size_t)n * MD5_LEN), md5[MD5_LEN];
  char expect[48], code[64];
  size_t len = 0;
  FILE *fp;
  struct http_response resp;
  int r = 0;

  fp = all ? open_memstream(&xml, &len) : NULL;
  if (fp == NULL) {
    free(all);
    ferry_error("out of memory");
    return -1;
  }
  fputs("<CompleteMultipartUpload>", fp);
  for (i = 0; i < n; i++) {
    char etag[40];

    md5_etag(sw->parts[i].md5, etag);
    fprintf(fp, "<Part><PartNumber>%" PRIu32 "</PartNumber><ETag>%s</ETag>"
            "</Part>", i + 1, etag);
    memcpy(all + (size_t)i * MD5_LEN, sw->parts[i].md5, MD5_LEN);
  }
  fputs("</CompleteMultipartUpload>", fp);
  if (fclose(fp) != 0) {
    free(all);
    ferry_error("out of memory");
    return -1;
  }
  /* a multipart object's ETag: the MD5 of its parts' MD5s, "-" count; it
   * tells whether a Complete whose answer was lost went through */
  md5_buf(all, (size_t)n * MD5_LEN, md5);
  free(all);
  expect[0] = '"';
  hex_encode(md5, MD5_LEN, expect + 1);
  snprintf(expect + 33, sizeof expect - 33, "-%" PRIu32 "\"", n);
  {
    struct s3_call c = {
      .s = s, .method = "POST", .object = sw->object, .query = q,
      .n_query = 1, .body = xml, .body_len = len, .done_etag = expect,
    };

    if (s3_call(&c, &resp) == -1)
      return -1;
    /* an error can come inside a 200 answer (S3 API reference,
     * CompleteMultipartUpload) */
    code_of(&resp, code, sizeof code);
    if (resp.status != 200 || *code)
      r = s3_fail(s, &c, &resp);
    http_response_free(&resp);
  }
  return r;
}

static int s3_writer_complete(struct store_http_writer *hw)
{
  return s3_complete((struct s3_writer *)hw);
}

/* Abort the multipart upload, so its parts stop costing storage.  A
 * commit that failed keeps it instead: running the same command again
 * resumes it. */
static void s3_writer_cancel(struct store_http_writer *hw)
{
  struct s3_writer *sw = (struct s3_writer *)hw;
  struct sigv4_param q[1] = { { "uploadId", sw->upload_id } };
  struct s3_call c = {
    .s = sw->s, .method = "DELETE", .object = sw->object, .query = q,
    .n_query = 1,
  };
  struct http_response resp;

  if (sw->upload_id == NULL)
    return;
  if (s3_call(&c, &resp) == 0) {
    if (resp.status != 204 && resp.status != 200 && resp.status != 404) {
      s3_fail(sw->s, &c, &resp);
      log_warn("cannot abort the upload of %s: %s", sw->object,
               ferry_errmsg());
    }
    http_response_free(&resp);
  } else {
    log_warn("cannot abort the upload of %s: %s", sw->object,
             ferry_errmsg());
  }
}

static const struct store_http_writer_ops s3_writer_ops = {
  .parts = "parts",
  .start = s3_writer_start,
  .upload = s3_upload_part,
  .part_size = s3_writer_part_size,
  .put_whole = s3_writer_put_whole,
  .complete = s3_writer_complete,
  .abort = s3_writer_cancel,
  .free = s3_writer_free,
};

static struct store_writer *s3_writer_open(struct store *st, const char *key,
                                           const struct store_writer_opts *o)
{
  struct store_s3 *s = s3_of(st);
  struct s3_writer *sw = calloc(1, sizeof *sw);

  if (sw == NULL || (sw->object = object_name(s, key)) == NULL) {
    ferry_error("out of memory");
    free(sw);
    return NULL;
  }
  sw->s = s;
  sw->size_hint = o->size;
  sw->hw.max_parts = S3_PARTS_MAX;
  sw->hw.part_size = part_size_for(s, o->size, 1);
  if (o->size > S3_PART_MAX * S3_PARTS_MAX) {
    ferry_error("%s/%s would be %" PRIu64 " bytes: more than an S3 object "
                "can hold (10,000 parts of 5 GiB)", s->store.url, key,
                o->size);
    s3_writer_free(&sw->hw);
    return NULL;
  }
  if (store_http_writer_init(&sw->hw, st, key, sw->object, &s3_writer_ops,
                             S3_WRITER_MEMORY, S3_WRITER_THREADS) == -1) {
    s3_writer_free(&sw->hw);
    return NULL;
  }
  return &sw->hw.w;
}

const struct store_ops store_s3_ops = {
  .scheme = "s3",
  .usage = "s3://BUCKET/PREFIX",
  .open = s3_open,
  .put = s3_put,
  .put_hashed = s3_put_hashed,
  .get = s3_get,
  .head = s3_head,
  .list = s3_list,
  .del = s3_del,
  .flush = NULL,
  .writer_open = s3_writer_open,
  .writer_write = store_http_writer_write,
  .writer_zero = store_http_writer_zero,
  .writer_commit = store_http_writer_commit,
  .writer_abort = store_http_writer_abort,
  .presign = s3_presign,
  .grant = s3_grant,
  .list_page = s3_list_page,
  .close = s3_close,
};

const struct store_ops store_gs_ops = {
  .scheme = "gs",
  .usage = "gs://BUCKET/PREFIX",
  .open = gs_open,
  .put = s3_put,
  .put_hashed = s3_put_hashed,
  .get = s3_get,
  .head = s3_head,
  .list = s3_list,
  .del = s3_del,
  .flush = NULL,
  .writer_open = s3_writer_open,
  .writer_write = store_http_writer_write,
  .writer_zero = store_http_writer_zero,
  .writer_commit = store_http_writer_commit,
  .writer_abort = store_http_writer_abort,
  .presign = s3_presign,
  .grant = s3_grant,
  .list_page = s3_list_page,
  .close = s3_close,
};
