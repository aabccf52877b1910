/* store/azure.c - azure://CONTAINER/PREFIX: Azure Blob Storage.
 *
 * Blob REST API version 2021-08-06, authorized with the account key
 * (Shared Key, azure_sign.h) or a SAS token.  Objects are block blobs sent
 * with Content-MD5 (the service verifies it); reads of whole blobs are
 * checked against the MD5 the service keeps.  Large outputs are block
 * blobs built with Put Block + Put Block List; a block's id carries its
 * number and MD5, so a writer that starts again after a crash skips the
 * blocks already uploaded with the same bytes.  Page blobs (VHD outputs)
 * are written to a hidden temporary blob with Put Page, only the non-zero
 * 512-byte pages, at most 4 MiB a call, then copied into place on commit.
 * docs/STORES.md describes URLs, credentials and limits. */
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "store/azure_sign.h"
#include "util/cleanup.h"
#include "hash/digest.h"
#include "util/error.h"
#include "util/log.h"
#include "store/store.h"
#include "store/http.h"
#include "store/upload_pool.h"
#include "store/xml.h"

extern const struct store_ops store_azure_ops;

#define AZ_VERSION "2021-08-06"
/* "Scalability and performance targets for Blob storage": block blobs of
 * at most 50,000 blocks of at most 4000 MiB; Put Page at most 4 MiB,
 * 512-byte aligned */
#define AZ_BLOCKS_MAX 50000u
#define AZ_BLOCK_MAX (4000ull << 20)
#define AZ_BLOCK_DEFAULT (8ull << 20)
#define AZ_PAGE 512u
#define AZ_PAGE_WRITE_MAX (4u << 20)
#define AZ_WRITER_MEMORY (64ull << 20)
#define AZ_WRITER_THREADS 4
#define AZ_LIST_CAP (16u << 20)
#define AZ_SMALL_CAP (1u << 20)
#define AZ_PARTIAL_SUFFIX ".ferry-partial"
#define AZ_COPY_WAIT_SECONDS 3600

struct store_azure {
  struct store store;
  char *account;
  char *key;                 /* base64 account key, or NULL */
  char *sas;                 /* SAS query (no '?'), or NULL */
  char *container;
  char *prefix;              /* "" or "dir/sub/" */
  char *origin;              /* scheme://host[:port] */
  char *base_path;           /* endpoint path ("" or "/devstoreaccount1") */
  size_t block_size;         /* FERRY_PART_SIZE_MB, or 0 */
};

static struct store_azure *az_of(struct store *s)
{
  return (struct store_azure *)s;
}

/* ---- configuration ---- */

/* The value of name in a connection string ("A=x;B=y"), or NULL. */
static char *conn_get(const char *conn, const char *name)
{
  size_t n = strlen(name);
  const char *p = conn;

  while (p && *p) {
    const char *end = strchr(p, ';');
    size_t len = end ? (size_t)(end - p) : strlen(p);

    while (*p == ' ' && len > 0) {
      p++;
      len--;
    }
    if (len > n && strncasecmp(p, name, n) == 0 && p[n] == '=')
      return strndup(p + n + 1, len - n - 1);
    p = end ? end + 1 : NULL;
  }
  return NULL;
}

static char *env_dup(const char *name)
{
  const char *v = getenv(name);

  return v && *v ? strdup(v) : NULL;
}

static void az_close(struct store *st)
{
  struct store_azure *s = az_of(st);

  if (s == NULL)
    return;
  if (s->key)
    explicit_bzero(s->key, strlen(s->key));
  if (s->sas)
    explicit_bzero(s->sas, strlen(s->sas));
  free(s->store.url);
  free(s->account);
  free(s->key);
  free(s->sas);
  free(s->container);
  free(s->prefix);
  free(s->origin);
  free(s->base_path);
  free(s);
}

static int az_endpoint(struct store_azure *s, const char *url)
{
  struct store_http_endpoint ep;

  if (store_http_endpoint(url, "AZURE_STORAGE_BLOB_ENDPOINT or the "
                          "connection string's BlobEndpoint", &ep) == -1)
    return -1;
  s->origin = strndup(url, (size_t)(ep.path - url));
  s->base_path = strndup(ep.path, ep.path_len);
  if (s->origin == NULL || s->base_path == NULL) {
    ferry_error("out of memory");
    return -1;
  }
  return 0;
}

static struct store *az_open(const char *url)
{
  const char *c = url + strlen("azure://"), *slash = strchr(c, '/');
  size_t clen = slash ? (size_t)(slash - c) : strlen(c), i;
  CLEANUP_FREE char *conn = env_dup("AZURE_STORAGE_CONNECTION_STRING");
  CLEANUP_FREE char *endpoint = NULL, *proto = NULL, *suffix = NULL;
  CLEANUP_FREE char *dev = NULL;
  const char *part = getenv("FERRY_PART_SIZE_MB");
  struct store_azure *s;

  if (memchr(c, '@', clen) || memchr(c, '?', strlen(c))) {
    ferry_error("azure://...: credentials do not belong in a store URL (it "
                "shows in process lists and logs): set AZURE_STORAGE_KEY or "
                "AZURE_STORAGE_SAS_TOKEN instead");
    return NULL;
  }
  /* container names: 3-63 lower-case letters, digits and dashes */
  for (i = 0; i < clen; i++)
    if (!((c[i] >= 'a' && c[i] <= 'z') || (c[i] >= '0' && c[i] <= '9') ||
          c[i] == '-'))
      break;
  if (clen < 3 || clen > 63 || i < clen) {
    ferry_error("'%.128s' does not name a container (3 to 63 lower-case "
                "letters, digits and dashes): use azure://CONTAINER/PREFIX",
                url);
    return NULL;
  }
  s = calloc(1, sizeof *s);
  if (s == NULL)
    goto oom;
  s->store.ops = &store_azure_ops;
  s->container = strndup(c, clen);
  if (s->container == NULL)
    goto oom;
  if (store_http_location("azure", store_azure_ops.usage, url, c, clen,
                          slash ? slash : "", &s->prefix, &s->store.url)
      == -1)
    goto fail;

  /* the environment's own variables win over the connection string */
  s->account = env_dup("AZURE_STORAGE_ACCOUNT");
  s->key = env_dup("AZURE_STORAGE_KEY");
  s->sas = env_dup("AZURE_STORAGE_SAS_TOKEN");
  endpoint = env_dup("AZURE_STORAGE_BLOB_ENDPOINT");
  if (conn) {
    dev = conn_get(conn, "UseDevelopmentStorage");
    if (dev && strcasecmp(dev, "true") == 0) {
      /* the emulator's published account (Azurite documentation) */
      if (s->account == NULL)
        s->account = strdup("devstoreaccount1");
      if (s->key == NULL)
        s->key = strdup("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsu"
                        "Fq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==");
      if (endpoint == NULL)
        endpoint = strdup("http://127.0.0.1:10000/devstoreaccount1");
    }
    if (s->account == NULL)
      s->account = conn_get(conn, "AccountName");
    if (s->key == NULL)
      s->key = conn_get(conn, "AccountKey");
    if (s->sas == NULL)
      s->sas = conn_get(conn, "SharedAccessSignature");
    if (endpoint == NULL)
      endpoint = conn_get(conn, "BlobEndpoint");
    proto = conn_get(conn, "DefaultEndpointsProtocol");
    suffix = conn_get(conn, "EndpointSuffix");
  }
  if (s->sas && s->sas[0] == '?')
    memmove(s->sas, s->sas + 1, strlen(s->sas));
  if (s->account == NULL) {
    ferry_error("no storage account for %s: set AZURE_STORAGE_ACCOUNT (or "
                "AZURE_STORAGE_CONNECTION_STRING)", s->store.url);
    goto fail;
  }
  if (s->key == NULL && s->sas == NULL) {
    ferry_error("no credentials for %s: set AZURE_STORAGE_KEY or "
                "AZURE_STORAGE_SAS_TOKEN (or AZURE_STORAGE_CONNECTION_STRING)",
                s->store.url);
    goto fail;
  }
  if (endpoint == NULL &&
      asprintf(&endpoint, "%s://%s.blob.%s", proto ? proto : "https",
               s->account, suffix ? suffix : "core.windows.net") == -1) {
    endpoint = NULL;
    goto oom;
  }
  if (az_endpoint(s, endpoint) == -1)
    goto fail;
  if (part && *part) {
    char *end;
    unsigned long mb = strtoul(part, &end, 10);

    if (*end || mb < 1 || mb > AZ_BLOCK_MAX >> 20) {
      ferry_error("FERRY_PART_SIZE_MB is '%.32s': use 1 to 4000 for Azure",
                  part);
      goto fail;
    }
    s->block_size = (size_t)mb << 20;
  }
  return &s->store;
oom:
  ferry_error("out of memory");
fail:
  az_close(s ? &s->store : NULL);
  return NULL;
}

/* ---- one signed request ---- */

struct az_call {
  struct store_azure *s;
  const char *method;
  const char *blob;                /* full blob name; NULL: the container */
  const struct azure_param *query;
  size_t n_query;
  const struct azure_param *headers;   /* x-ms-* and standard ones */
  size_t n_headers;
  const void *body;
  size_t body_len;
  void *out;
  size_t out_cap;
  size_t body_cap;
  /* after a dropped connection: when the blob has this Content-MD5
   * (base64), the request completed unseen and is reported as
   * done_status, what it answers on success */
  const char *done_md5;
  long done_status;

  char *path;
  struct curl_slist *list;
  char what[160];
};

static int az_head_md5(struct store_azure *s, const char *blob, char *md5,
                       size_t size);

static int az_prepare(void *opaque, struct http_request *req,
                      unsigned attempt, int after_drop)
{
  struct az_call *c = opaque;
  struct store_azure *s = c->s;
  struct azure_param h[12];
  char date[64], len[24], md5[64];
  size_t n = 0, i;
  time_t now = time(NULL);
  struct tm tm;

  (void)attempt;
  if (after_drop && c->done_md5 &&
      az_head_md5(s, c->blob, md5, sizeof md5) == 1 &&
      strcmp(md5, c->done_md5) == 0) {
    log_info("%s: completed before the connection dropped; not sent "
             "again", c->what);
    return (int)c->done_status;
  }
  gmtime_r(&now, &tm);
  strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  h[n++] = (struct azure_param){ "x-ms-date", date };
  h[n++] = (struct azure_param){ "x-ms-version", AZ_VERSION };
  /* curl sends Content-Length for every request with a body (and for
   * PUT, POST and DELETE without); the signature must see it too */
  if (strcmp(c->method, "GET") && strcmp(c->method, "HEAD")) {
    snprintf(len, sizeof len, "%zu", c->body_len);
    h[n++] = (struct azure_param){ "Content-Length", len };
  }
  for (i = 0; i < c->n_headers && n < 12; i++)
    h[n++] = c->headers[i];
  curl_slist_free_all(c->list);
  c->list = NULL;
  for (i = 0; i < n; i++)
    if (strcasecmp(h[i].name, "Content-Length") != 0 &&
        http_header_add(&c->list, "%s: %s", h[i].name, h[i].value) == -1)
      return -1;
  if (s->key) {
    CLEANUP_FREE char *sts = azure_string_to_sign(c->method, s->account,
                                                  c->path, c->query,
                                                  c->n_query, h, n);
    CLEANUP_FREE char *auth = sts ? azure_shared_key(s->account, s->key, sts)
                                  : NULL;

    if (auth == NULL ||
        http_header_add(&c->list, "Authorization: %s", auth) == -1)
      return -1;
  }
  req->headers = c->list;
  return 0;
}

static int az_call(struct az_call *c, struct http_response *resp)
{
  struct store_azure *s = c->s;
  CLEANUP_FREE char *enc = NULL, *url = NULL;
  FILE *fp;
  size_t ulen = 0, i;
  char hostbuf[128];
  int r;

  if (c->blob && (enc = http_escape(c->blob, 1)) == NULL)
    return -1;
  if (asprintf(&c->path, "%s/%s%s%s", s->base_path, s->container,
               enc ? "/" : "", enc ? enc : "") == -1) {
    c->path = NULL;
    ferry_error("out of memory");
    return -1;
  }
  fp = open_memstream(&url, &ulen);
  if (fp == NULL) {
    free(c->path);
    ferry_error("out of memory");
    return -1;
  }
  fprintf(fp, "%s%s", s->origin, c->path);
  for (i = 0; i < c->n_query; i++) {
    CLEANUP_FREE char *v = http_escape(c->query[i].value, 0);

    fprintf(fp, "%c%s=%s", i ? '&' : '?', c->query[i].name, v ? v : "");
  }
  if (s->key == NULL && s->sas)
    fprintf(fp, "%c%s", c->n_query ? '&' : '?', s->sas);
  if (fclose(fp) != 0) {
    free(c->path);
    ferry_error("out of memory");
    return -1;
  }
  snprintf(c->what, sizeof c->what, "%s %s %.100s", c->method,
           http_host(s->origin, hostbuf, sizeof hostbuf),
           c->blob ? c->blob : s->container);
  {
    struct http_request req = {
      .method = c->method, .url = url, .body = c->body,
      .body_len = c->body_len, .out = c->out, .out_cap = c->out_cap,
      .body_cap = c->body_cap ? c->body_cap : AZ_SMALL_CAP,
      .stats = "store",
    };

    r = store_http_request(&req, resp, az_prepare, c, c->what);
  }
  if (url)
    explicit_bzero(url, strlen(url));       /* it may carry the SAS */
  curl_slist_free_all(c->list);
  c->list = NULL;
  free(c->path);
  c->path = NULL;
  return r;
}

/* The error code: x-ms-error-code (also on HEAD), else <Code>. */
static const char *code_of(const struct http_response *resp, char *buf,
                           size_t size)
{
  if (http_header(resp, "x-ms-error-code", buf, size))
    return buf;
  if (resp->body) {
    struct xml_span b = { resp->body, resp->body_len };
    CLEANUP_FREE char *code = xml_get(b, "Code");

    snprintf(buf, size, "%s", code ? code : "");
  } else {
    buf[0] = '\0';
  }
  return buf;
}

static int az_fail(struct store_azure *s, const struct az_call *c,
                   const struct http_response *resp)
{
  struct xml_span body = { resp->body, resp->body_len };
  CLEANUP_FREE char *msg = resp->body ? xml_get(body, "Message") : NULL;
  const char *cred = s->key ? "AZURE_STORAGE_KEY" : "AZURE_STORAGE_SAS_TOKEN";
  char code[96], host[128];

  code_of(resp, code, sizeof code);
  http_host(s->origin, host, sizeof host);
  if (msg) {
    char *nl = strpbrk(msg, "\r\n");     /* the first line is enough */

    if (nl)
      *nl = '\0';
  }
  /* Azure says AuthenticationFailed for a bad signature, azurite
   * AuthorizationFailure; both are the key (or the SAS) */
  if (strcmp(code, "AuthenticationFailed") == 0 ||
      (resp->status == 403 && strcmp(code, "AuthorizationFailure") == 0))
    ferry_error("signature rejected by %s: check %s", host, cred);
  else if (strncmp(code, "Authorization", 13) == 0)
    ferry_error("%s refused %s (%s): check that %s grants it", host, c->what,
                code, cred);
  else if (strcmp(code, "ContainerNotFound") == 0)
    ferry_error("container %s does not exist at %s: create it or check the "
                "URL %s", s->container, host, s->store.url);
  else if (strcmp(code, "ResourceNotFound") == 0 && s->key == NULL)
    ferry_error("account %s at %s: resource not found: check the account "
                "and the endpoint", s->account, host);
  else if (resp->status == 403)
    ferry_error("access denied by %s to %s (%s): check AZURE_STORAGE_ACCOUNT "
                "and %s", host, c->what, *code ? code : "HTTP 403", cred);
  else if (resp->retryable)
    ferry_error("%s: HTTP %ld %s after every retry: the service is down or "
                "overloaded; try again later (FERRY_RETRIES, "
                "FERRY_RETRY_SECONDS)", c->what, resp->status, code);
  else
    ferry_error("%s: HTTP %ld %s%s%.200s", c->what, resp->status, code,
                msg ? ": " : "", msg ? msg : "");
  errno = resp->status == 404 && strcmp(code, "ContainerNotFound") ? ENOENT
                                                                    : EIO;
  return -1;
}

static char *blob_name(struct store_azure *s, const char *key)
{
  return store_http_name(s->prefix, key);
}

/* 1 with the blob's Content-MD5 (base64, "" if none), 0 absent, -1. */
static int az_head_md5(struct store_azure *s, const char *blob, char *md5,
                       size_t size)
{
  struct az_call c = { .s = s, .method = "HEAD", .blob = blob };
  struct http_response resp;
  int r;

  if (az_call(&c, &resp) == -1)
    return -1;
  r = resp.status == 200 ? 1 : resp.status == 404 ? 0 : -1;
  if (r == 1 && http_header(&resp, "Content-MD5", md5, size) == NULL)
    md5[0] = '\0';
  http_response_free(&resp);
  return r;
}

/* ---- objects ---- */

static int az_put_blob(struct store_azure *s, const char *blob,
                       const void *buf, size_t len)
{
  uint8_t md5[MD5_LEN];
  char md5_b64[32];
  struct azure_param h[2] = {
    { "x-ms-blob-type", "BlockBlob" }, { "Content-MD5", md5_b64 },
  };
  struct az_call c = {
    .s = s, .method = "PUT", .blob = blob, .headers = h, .n_headers = 2,
    .body = buf, .body_len = len, .done_md5 = md5_b64,
    .done_status = 201,           /* Put Blob: 201 Created */
  };
  struct http_response resp;
  int r = 0;

  md5_buf(buf, len, md5);
  base64_encode(md5, MD5_LEN, md5_b64);
  if (az_call(&c, &resp) == -1)
    return -1;
  if (resp.status != 201)
    r = az_fail(s, &c, &resp);
  http_response_free(&resp);
  return r;
}

static int az_put(struct store *st, const char *key, const void *buf,
                  size_t len)
{
  struct store_azure *s = az_of(st);
  CLEANUP_FREE char *blob = blob_name(s, key);

  return blob ? az_put_blob(s, blob, buf, len) : -1;
}

static int az_get(struct store *st, const char *key, uint64_t off,
                  void *buf, size_t len, size_t *got)
{
  struct store_azure *s = az_of(st);
  CLEANUP_FREE char *blob = blob_name(s, key);
  char range[64], md5h[64], code[96];
  struct azure_param h[1] = { { "x-ms-range", range } };
  struct az_call c = {
    .s = s, .method = "GET", .headers = h, .n_headers = 1,
    .out = buf, .out_cap = len,
  };
  struct http_response resp;
  int r = 0;

  if (blob == NULL)
    return -1;
  c.blob = blob;
  if (len == 0)
    return store_http_get_nothing(st, key, got);
  snprintf(range, sizeof range, "bytes=%" PRIu64 "-%" PRIu64, off,
           off + len - 1);
  if (az_call(&c, &resp) == -1)
    return -1;
  code_of(&resp, code, sizeof code);
  switch (store_http_got(st, key, off, len, &resp,
                         strcmp(code, "ContainerNotFound") != 0, got)) {
  case STORE_HTTP_GOT_FAIL:
    r = -1;
    break;
  case STORE_HTTP_GOT_STATUS:
    r = az_fail(s, &c, &resp);
    break;
  case STORE_HTTP_GOT_WHOLE:
    /* the whole blob: check it against the MD5 the service keeps */
    if (http_header(&resp, "x-ms-blob-content-md5", md5h, sizeof md5h) ||
        (resp.status == 200 &&
         http_header(&resp, "Content-MD5", md5h, sizeof md5h))) {
      uint8_t md5[MD5_LEN];
      char want[32];

      md5_buf(buf, *got, md5);
      base64_encode(md5, MD5_LEN, want);
      if (strcmp(want, md5h) != 0) {
        ferry_error("%s in %s: the bytes read do not match the blob's MD5 "
                    "(%s): it was damaged in the store or on the way; "
                    "delete it and write it again", key, s->store.url, md5h);
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

static int az_head(struct store *st, const char *key, uint64_t *size)
{
  struct store_azure *s = az_of(st);
  CLEANUP_FREE char *blob = blob_name(s, key);
  struct az_call c = { .s = s, .method = "HEAD" };
  struct http_response resp;
  char buf[96];
  int r;

  if (blob == NULL)
    return -1;
  c.blob = blob;
  if (az_call(&c, &resp) == -1)
    return -1;
  if (resp.status == 200)
    r = store_http_head_size(st, &resp, c.what, size);
  else if (resp.status == 404 &&
           strcmp(code_of(&resp, buf, sizeof buf), "ContainerNotFound"))
    r = 0;
  else
    r = az_fail(s, &c, &resp);
  http_response_free(&resp);
  return r;
}

/* One List Blobs page from marker (NULL: the first). */
static int az_list_page(struct store *st, const char *prefix,
                        const char *marker, store_list_cb cb, void *opaque,
                        char **next)
{
  struct store_azure *s = az_of(st);
  CLEANUP_FREE char *full = blob_name(s, prefix);
  struct azure_param q[5] = {
    { "restype", "container" }, { "comp", "list" }, { "prefix", full },
    { "maxresults", "5000" }, { "marker", marker },
  };
  struct az_call c = {
    .s = s, .method = "GET", .query = q, .n_query = marker ? 5 : 4,
    .body_cap = AZ_LIST_CAP,
  };
  struct http_response resp;
  struct xml_span body;
  int r;

  *next = NULL;
  if (full == NULL)
    return -1;
  if (az_call(&c, &resp) == -1)
    return -1;
  if (resp.status != 200) {
    r = az_fail(s, &c, &resp);
    http_response_free(&resp);
    return r;
  }
  body = (struct xml_span){ resp.body, resp.body_len };
  /* a page blob being written is not there yet */
  r = store_http_list_page(body, "Blob", "Name", "Content-Length",
                           s->prefix, AZ_PARTIAL_SUFFIX, cb, opaque);
  *next = r == 0 ? xml_get(body, "NextMarker") : NULL;
  if (*next && **next == '\0') {
    free(*next);
    *next = NULL;
  }
  http_response_free(&resp);
  return r;
}

static int az_list(struct store *st, const char *prefix, store_list_cb cb,
                   void *opaque)
{
  char *marker = NULL, *next;
  int r;

  do {
    r = az_list_page(st, prefix, marker, cb, opaque, &next);
    free(marker);
    marker = next;
  } while (r == 0 && marker);
  free(marker);
  return r;
}

static int az_del_blob(struct store_azure *s, const char *blob)
{
  struct azure_param h[1] = { { "x-ms-delete-snapshots", "include" } };
  struct az_call c = {
    .s = s, .method = "DELETE", .blob = blob, .headers = h, .n_headers = 1,
  };
  struct http_response resp;
  char code[96];
  int r = 0;

  if (az_call(&c, &resp) == -1)
    return -1;
  if (resp.status != 202 && resp.status != 200 &&
      !(resp.status == 404 &&
        strcmp(code_of(&resp, code, sizeof code), "ContainerNotFound")))
    r = az_fail(s, &c, &resp);
  http_response_free(&resp);
  return r;
}

static int az_del(struct store *st, const char *key)
{
  struct store_azure *s = az_of(st);
  CLEANUP_FREE char *blob = blob_name(s, key);

  return blob ? az_del_blob(s, blob) : -1;
}

static char *az_presign(struct store *st, const char *key,
                        const char *method, unsigned expires)
{
  struct store_azure *s = az_of(st);
  CLEANUP_FREE char *blob = blob_name(s, key), *enc = NULL, *sas = NULL;
  const char *perm;
  char expiry[32], *url;
  time_t t = time(NULL) + expires;
  struct tm tm;

  if (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0)
    perm = "r";
  else if (strcmp(method, "PUT") == 0)
    perm = "cw";
  else if (strcmp(method, "DELETE") == 0)
    perm = "d";
  else {
    ferry_error("cannot presign %.16s: use GET, PUT, HEAD or DELETE",
                method);
    return NULL;
  }
  if (s->key == NULL) {
    ferry_error("presigning %s needs the account key: set AZURE_STORAGE_KEY "
                "(a SAS token cannot sign another)", s->store.url);
    return NULL;
  }
  if (expires < 1 || expires > 7 * 86400) {
    ferry_error("a presigned URL lasts 1 s to 7 days, not %u s", expires);
    return NULL;
  }
  gmtime_r(&t, &tm);
  strftime(expiry, sizeof expiry, "%Y-%m-%dT%H:%M:%SZ", &tm);
  if (blob == NULL || (enc = http_escape(blob, 1)) == NULL)
    return NULL;
  /* over an https:// endpoint the SAS says so (spr=https): a URL that
   * leaks is still refused over plain HTTP; a loopback emulator on
   * http:// gets none */
  sas = azure_blob_sas(s->account, s->key, s->container, blob, perm, expiry,
                       strncmp(s->origin, "https://", 8) == 0 ? "https"
                                                              : NULL,
                       AZ_VERSION);
  if (sas == NULL)
    return NULL;
  if (asprintf(&url, "%s%s/%s/%s?%s", s->origin, s->base_path, s->container,
               enc, sas) == -1) {
    ferry_error("out of memory");
    return NULL;
  }
  return url;
}

/* A service SAS for the one blob: read (GET, HEAD) or create and write
 * (PUT: sp=cw, no read, no delete), never longer than expires.  A SAS
 * cannot bind the payload (Azure signs no request header): the
 * converter's digest check of every chunk is what catches other bytes. */
static int az_grant(struct store *st, const char *key, const char *method,
                    unsigned expires, const char *sha256, uint64_t size,
                    struct store_grant *g)
{
  int put = strcmp(method, "PUT") == 0;

  (void)sha256;
  (void)size;
  if (!put && strcmp(method, "GET") && strcmp(method, "HEAD")) {
    ferry_error("a grant is for GET, HEAD or PUT, not %.16s", method);
    return -1;
  }
  g->url = az_presign(st, key, method, expires);
  if (g->url == NULL)
    return -1;
  if (asprintf(&g->headers[0], "x-ms-version: %s", AZ_VERSION) == -1 ||
      (put && asprintf(&g->headers[1], "x-ms-blob-type: BlockBlob") == -1)) {
    store_grant_free(g);
    ferry_error("out of memory");
    return -1;
  }
  return 0;
}

/* ---- writers: block blobs and page blobs ---- */

struct az_writer {
  struct store_http_writer hw;    /* first; its md5: block blobs only */
  struct store_azure *s;
  char *blob;                     /* where the object goes */
  int page;                       /* a page blob */
  uint64_t size;                  /* size hint; page blobs: the size */
  char *partial;                  /* page blob: the hidden temporary */
  char (*ids)[64];                /* block ids, base64, by number */
  char **have;                    /* uncommitted block ids found */
  size_t n_have;
};

static size_t block_size_for(struct store_azure *s, uint64_t size,
                             uint32_t n)
{
  return store_http_part_size(s->block_size ? s->block_size
                                            : AZ_BLOCK_DEFAULT,
                              size, n, AZ_BLOCKS_MAX, 5000, 9, AZ_BLOCK_MAX);
}

static int have_cmp(const void *a, const void *b)
{
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The uncommitted blocks an earlier writer left on this blob. */
static int az_list_uncommitted(struct az_writer *aw)
{
  struct azure_param q[2] = {
    { "comp", "blocklist" }, { "blocklisttype", "uncommitted" },
  };
  struct az_call c = {
    .s = aw->s, .method = "GET", .blob = aw->blob, .query = q, .n_query = 2,
    .body_cap = AZ_LIST_CAP,
  };
  struct http_response resp;
  struct xml_span body, item;
  size_t pos = 0, cap = 0;

  if (az_call(&c, &resp) == -1)
    return -1;
  if (resp.status == 404) {
    char code[96];

    if (strcmp(code_of(&resp, code, sizeof code), "ContainerNotFound") == 0) {
      az_fail(aw->s, &c, &resp);
      http_response_free(&resp);
      return -1;
    }
    http_response_free(&resp);
    return 0;                         /* no blob, no blocks */
  }
  if (resp.status != 200) {
    az_fail(aw->s, &c, &resp);
    http_response_free(&resp);
    return -1;
  }
  body = (struct xml_span){ resp.body, resp.body_len };
  while (xml_next(body, &pos, "Block", &item)) {
    char *name = xml_get(item, "Name");

    if (name == NULL)
      continue;
    if (aw->n_have == cap) {
      char **p = reallocarray(aw->have, cap = cap ? cap * 2 : 64,
                              sizeof *p);

      if (p == NULL) {
        free(name);
        http_response_free(&resp);
        ferry_error("out of memory");
        return -1;
      }
      aw->have = p;
    }
    aw->have[aw->n_have++] = name;
  }
  http_response_free(&resp);
  qsort(aw->have, aw->n_have, sizeof *aw->have, have_cmp);
  if (aw->n_have)
    log_info("resuming the upload of %s/%s: %zu blocks are there already",
             aw->s->store.url, aw->hw.w.key, aw->n_have);
  return 0;
}

/* Put Block (pool thread).  The id names the block's number and MD5, so
 * an identical block uploaded before is recognised by its id alone. */
static int az_put_block(void *opaque, struct upload_job *j)
{
  struct az_writer *aw = opaque;
  uint8_t md5[MD5_LEN];
  char raw[48], hex[33], md5_b64[32], *id = aw->ids[j->number - 1];
  const char *idp = id;
  struct azure_param q[2] = { { "comp", "block" }, { "blockid", id } };
  struct azure_param h[1] = { { "Content-MD5", md5_b64 } };
  struct az_call c = {
    .s = aw->s, .method = "PUT", .blob = aw->blob, .query = q, .n_query = 2,
    .headers = h, .n_headers = 1, .body = j->buf, .body_len = j->len,
  };
  struct http_response resp;
  int r = 0;

  md5_buf(j->buf, j->len, md5);
  hex_encode(md5, MD5_LEN, hex);
  /* every id of a blob must have the same length: 39 bytes */
  snprintf(raw, sizeof raw, "%06" PRIu32 "-%s", j->number, hex);
  base64_encode(raw, strlen(raw), id);
  base64_encode(md5, MD5_LEN, md5_b64);
  if (aw->n_have &&
      bsearch(&idp, aw->have, aw->n_have, sizeof *aw->have, have_cmp)) {
    atomic_fetch_add(&aw->hw.reused, 1);
    return 0;
  }
  if (az_call(&c, &resp) == -1)
    return -1;
  if (resp.status != 201)
    r = az_fail(aw->s, &c, &resp);
  else
    atomic_fetch_add(&aw->hw.sent, 1);
  http_response_free(&resp);
  return r;
}

/* Put Page for each run of non-zero pages of j (pool thread). */
static int az_put_pages(void *opaque, struct upload_job *j)
{
  struct az_writer *aw = opaque;
  const char *p = j->buf;
  size_t i = 0, n = j->len;

  while (i < n) {
    size_t start, end;

    while (i < n && p[i] == 0 && memcmp(p + i, p + i + 1,
                                        (i + AZ_PAGE <= n ? AZ_PAGE : n - i)
                                        - 1) == 0)
      i += AZ_PAGE;
    if (i >= n)
      break;
    start = i;
    while (i < n && i - start < AZ_PAGE_WRITE_MAX &&
           !(p[i] == 0 && memcmp(p + i, p + i + 1, AZ_PAGE - 1) == 0))
      i += AZ_PAGE;
    end = i < n ? i : n;
    {
      uint8_t md5[MD5_LEN];
      char range[64], md5_b64[32];
      struct azure_param q[1] = { { "comp", "page" } };
      struct azure_param h[3] = {
        { "x-ms-page-write", "update" }, { "x-ms-range", range },
        { "Content-MD5", md5_b64 },
      };
      struct az_call c = {
        .s = aw->s, .method = "PUT", .blob = aw->partial, .query = q,
        .n_query = 1, .headers = h, .n_headers = 3, .body = p + start,
        .body_len = end - start,
      };
      struct http_response resp;
      int r = 0;

      md5_buf(p + start, end - start, md5);
      base64_encode(md5, MD5_LEN, md5_b64);
      snprintf(range, sizeof range, "bytes=%" PRIu64 "-%" PRIu64,
               j->offset + start, j->offset + end - 1);
      if (az_call(&c, &resp) == -1)
        return -1;
      if (resp.status != 201)
        r = az_fail(aw->s, &c, &resp);
      else
        atomic_fetch_add(&aw->hw.sent, 1);
      http_response_free(&resp);
      if (r == -1)
        return -1;
    }
  }
  return 0;
}

static void az_writer_free(struct store_http_writer *hw)
{
  struct az_writer *aw = (struct az_writer *)hw;
  size_t i;

  store_http_writer_release(hw);
  for (i = 0; i < aw->n_have; i++)
    free(aw->have[i]);
  free(aw->have);
  free(aw->ids);
  free(aw->blob);
  free(aw->partial);
  free(aw);
}

/* Create the temporary page blob, all zeros, of the final size. */
static int az_create_page_blob(struct store_http_writer *hw)
{
  struct az_writer *aw = (struct az_writer *)hw;
  char size[24];
  struct azure_param h[2] = {
    { "x-ms-blob-type", "PageBlob" }, { "x-ms-blob-content-length", size },
  };
  struct az_call c = {
    .s = aw->s, .method = "PUT", .blob = aw->partial, .headers = h,
    .n_headers = 2,
  };
  struct http_response resp;
  int r = 0;

  snprintf(size, sizeof size, "%" PRIu64, aw->size);
  if (az_call(&c, &resp) == -1)
    return -1;
  if (resp.status != 201)
    r = az_fail(aw->s, &c, &resp);
  http_response_free(&resp);
  return r;
}

static int az_writer_zero(struct store_writer *w, uint64_t len)
{
  struct az_writer *aw = (struct az_writer *)w;
  uint64_t pos, head, skip;

  if (!aw->page)
    return store_http_writer_zero(w, len);    /* block blobs: not sparse */
  /* a page blob is created all zeros: send nothing for whole pages, only
   * the zeros that share a page with data */
  pos = aw->hw.offset + (aw->hw.cur ? aw->hw.cur->len : 0);
  if (pos + len > aw->size) {
    ferry_error("%s: writing past its size (%" PRIu64 " bytes)", aw->blob,
                aw->size);
    return -1;
  }
  head = (AZ_PAGE - pos % AZ_PAGE) % AZ_PAGE;
  if (head > len)
    head = len;
  if (head && store_http_writer_append(&aw->hw, NULL, head) == -1)
    return -1;
  len -= head;
  skip = len / AZ_PAGE * AZ_PAGE;
  if (skip && store_http_writer_skip(&aw->hw, skip) == -1)
    return -1;
  return len > skip ? store_http_writer_append(&aw->hw, NULL, len - skip)
                    : 0;
}

/* Put Block List: the blocks in order, and the whole blob's MD5 so that
 * whole reads are checked. */
static int az_put_block_list(struct az_writer *aw)
{
  uint8_t md5[MD5_LEN];
  unsigned int mlen = MD5_LEN;
  char md5_b64[32], xml_md5[32];
  struct azure_param q[1] = { { "comp", "blocklist" } };
  struct azure_param h[2] = {
    { "x-ms-blob-content-md5", md5_b64 }, { "Content-MD5", xml_md5 },
  };
  CLEANUP_FREE char *xml = NULL;
  struct http_response resp;
  size_t len = 0;
  uint32_t i;
  FILE *fp;
  int r = 0;

  if (!EVP_DigestFinal_ex(aw->hw.md5, md5, &mlen))
    abort();
  base64_encode(md5, MD5_LEN, md5_b64);
  fp = open_memstream(&xml, &len);
  if (fp == NULL) {
    ferry_error("out of memory");
    return -1;
  }
  fputs("<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>", fp);
  for (i = 1; i < aw->hw.next_part; i++)
    fprintf(fp, "<Latest>%s</Latest>", aw->ids[i - 1]);
  fputs("</BlockList>", fp);
  if (fclose(fp) != 0) {
    ferry_error("out of memory");
    return -1;
  }
  md5_buf(xml, len, md5);
  base64_encode(md5, MD5_LEN, xml_md5);
  {
    struct az_call c = {
      .s = aw->s, .method = "PUT", .blob = aw->blob, .query = q,
      .n_query = 1, .headers = h, .n_headers = 2, .body = xml,
      .body_len = len, .done_md5 = md5_b64,
      .done_status = 201,         /* Put Block List: 201 Created */
    };

    if (az_call(&c, &resp) == -1)
      return -1;
    if (resp.status != 201)
      r = az_fail(aw->s, &c, &resp);
    http_response_free(&resp);
  }
  return r;
}

/* Copy the finished page blob into place (a server-side copy within the
 * account) and wait for the copy to end. */
static int az_copy_into_place(struct az_writer *aw)
{
  struct store_azure *s = aw->s;
  CLEANUP_FREE char *enc = http_escape(aw->partial, 1), *src = NULL;
  struct azure_param h[1] = { { "x-ms-copy-source", NULL } };
  struct az_call c = {
    .s = s, .method = "PUT", .blob = aw->blob, .headers = h, .n_headers = 1,
  };
  struct http_response resp;
  char status[32] = "", desc[256] = "";
  time_t until = time(NULL) + AZ_COPY_WAIT_SECONDS;
  int r = 0;

  if (enc == NULL ||
      asprintf(&src, "%s%s/%s/%s%s%s", s->origin, s->base_path, s->container,
               enc, s->key == NULL && s->sas ? "?" : "",
               s->key == NULL && s->sas ? s->sas : "") == -1) {
    src = NULL;
    ferry_error("out of memory");
    return -1;
  }
  h[0].value = src;
  r = az_call(&c, &resp);
  explicit_bzero(src, strlen(src));
  if (r == -1)
    return -1;
  if (resp.status != 202) {
    r = az_fail(s, &c, &resp);
    http_response_free(&resp);
    return r;
  }
  http_header(&resp, "x-ms-copy-status", status, sizeof status);
  http_response_free(&resp);
  while (strcmp(status, "success") != 0) {
    struct az_call hc = { .s = s, .method = "HEAD", .blob = aw->blob };

    if (strcmp(status, "pending") != 0) {
      ferry_error("copying %s into place failed (%s%s%s)", aw->blob,
                  *status ? status : "no status", *desc ? ": " : "", desc);
      return -1;
    }
    if (time(NULL) > until) {
      ferry_error("copying %s into place did not finish in %d s", aw->blob,
                  AZ_COPY_WAIT_SECONDS);
      return -1;
    }
    sleep(2);
    if (az_call(&hc, &resp) == -1)
      return -1;
    if (resp.status != 200) {
      r = az_fail(s, &hc, &resp);
      http_response_free(&resp);
      return r;
    }
    status[0] = '\0';
    http_header(&resp, "x-ms-copy-status", status, sizeof status);
    http_header(&resp, "x-ms-copy-status-description", desc, sizeof desc);
    http_response_free(&resp);
  }
  return 0;
}

/* Before the first block: find the blocks an earlier writer left. */
static int az_start_blocks(struct store_http_writer *hw)
{
  struct az_writer *aw = (struct az_writer *)hw;

  aw->ids = calloc(AZ_BLOCKS_MAX, sizeof *aw->ids);
  if (aw->ids == NULL) {
    ferry_error("out of memory");
    return -1;
  }
  return az_list_uncommitted(aw);
}

static size_t az_block_size(struct store_http_writer *hw, uint32_t n)
{
  struct az_writer *aw = (struct az_writer *)hw;

  return block_size_for(aw->s, aw->size, n);
}

static int az_put_whole(struct store_http_writer *hw, const void *buf,
                        size_t len)
{
  struct az_writer *aw = (struct az_writer *)hw;

  return az_put_blob(aw->s, aw->blob, buf, len);
}

static int az_commit_blocks(struct store_http_writer *hw)
{
  return az_put_block_list((struct az_writer *)hw);
}

static int az_commit_pages(struct store_http_writer *hw)
{
  struct az_writer *aw = (struct az_writer *)hw;

  if (az_copy_into_place(aw) == -1)
    return -1;
  if (az_del_blob(aw->s, aw->partial) == -1)
    log_warn("%s; remove %s by hand", ferry_errmsg(), aw->partial);
  return 0;
}

/* Cancel a page blob: delete the temporary.  (A block blob's uncommitted
 * blocks are dropped by the service, after a week or at the blob's next
 * commit.) */
static void az_abort_pages(struct store_http_writer *hw)
{
  struct az_writer *aw = (struct az_writer *)hw;

  if (az_del_blob(aw->s, aw->partial) == -1)
    log_warn("cannot remove %s: %s", aw->partial, ferry_errmsg());
}

static const struct store_http_writer_ops az_block_ops = {
  .parts = "blocks",
  .start = az_start_blocks,
  .upload = az_put_block,
  .part_size = az_block_size,
  .put_whole = az_put_whole,
  .complete = az_commit_blocks,
  .free = az_writer_free,
};

static const struct store_http_writer_ops az_page_ops = {
  .parts = "page writes",
  .start = az_create_page_blob,
  .upload = az_put_pages,
  .complete = az_commit_pages,
  .abort = az_abort_pages,
  .free = az_writer_free,
};

static struct store_writer *az_writer_open(struct store *st, const char *key,
                                           const struct store_writer_opts *o)
{
  struct store_azure *s = az_of(st);
  struct az_writer *aw = calloc(1, sizeof *aw);
  const struct store_http_writer_ops *ops = &az_block_ops;

  if (aw == NULL || (aw->blob = blob_name(s, key)) == NULL) {
    ferry_error("out of memory");
    free(aw);
    return NULL;
  }
  aw->s = s;
  aw->size = o->size;
  if (o->page_blob) {
    if (o->size == 0 || o->size % AZ_PAGE != 0) {
      ferry_error("a page blob needs its size in advance, a multiple of "
                  "512 bytes (%s/%s: %" PRIu64 ")", s->store.url, key,
                  o->size);
      goto fail;
    }
    ops = &az_page_ops;
    aw->page = 1;
    aw->hw.limit = o->size;
    aw->hw.part_size = AZ_PAGE_WRITE_MAX;
    if (asprintf(&aw->partial, "%s" AZ_PARTIAL_SUFFIX, aw->blob) == -1) {
      aw->partial = NULL;
      ferry_error("out of memory");
      goto fail;
    }
  } else {
    if (o->size > AZ_BLOCK_MAX * AZ_BLOCKS_MAX) {
      ferry_error("%s/%s would be %" PRIu64 " bytes: more than a block blob "
                  "holds", s->store.url, key, o->size);
      goto fail;
    }
    aw->hw.max_parts = AZ_BLOCKS_MAX;
    aw->hw.part_size = block_size_for(s, o->size, 1);
    aw->hw.md5 = EVP_MD_CTX_new();
    if (aw->hw.md5 == NULL ||
        !EVP_DigestInit_ex(aw->hw.md5, EVP_md5(), NULL)) {
      ferry_error("out of memory");
      goto fail;
    }
  }
  if (store_http_writer_init(&aw->hw, st, key, aw->blob, ops,
                             AZ_WRITER_MEMORY, AZ_WRITER_THREADS) == -1)
    goto fail;
  return &aw->hw.w;
fail:
  az_writer_free(&aw->hw);
  return NULL;
}

/* Put Page takes whole pages: pad a last partial one (the blob's size is
 * a multiple of 512, so the padding stays inside it). */
static int az_writer_commit(struct store_writer *w)
{
  struct az_writer *aw = (struct az_writer *)w;
  struct upload_job *cur = aw->hw.cur;

  if (aw->page && cur && cur->len % AZ_PAGE &&
      store_http_writer_append(&aw->hw, NULL,
                               AZ_PAGE - cur->len % AZ_PAGE) == -1) {
    az_writer_free(&aw->hw);
    return -1;
  }
  return store_http_writer_commit(w);
}

const struct store_ops store_azure_ops = {
  .scheme = "azure",
  .usage = "azure://CONTAINER/PREFIX",
  .open = az_open,
  .put = az_put,
  .get = az_get,
  .head = az_head,
  .list = az_list,
  .del = az_del,
  .flush = NULL,
  .writer_open = az_writer_open,
  .writer_write = store_http_writer_write,
  .writer_zero = az_writer_zero,
  .writer_commit = az_writer_commit,
  .writer_abort = store_http_writer_abort,
  .presign = az_presign,
  .grant = az_grant,
  .list_page = az_list_page,
  .close = az_close,
};
