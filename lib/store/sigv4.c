/* store/sigv4.c - AWS Signature Version 4 (see sigv4.h). */
#include "store/sigv4.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "hash/digest.h"
#include "net/http_client.h"
#include "util/error.h"

struct hdr {
  char *name;                       /* lower case */
  char *value;                      /* trimmed, inner runs of spaces as one */
};

static void hmac_sha256(const void *key, size_t klen, const void *msg,
                        size_t mlen, unsigned char out[32])
{
  unsigned int n = 32;

  if (HMAC(EVP_sha256(), key, (int)klen, msg, mlen, out, &n) == NULL)
    abort();    /* HMAC-SHA256 cannot fail short of a broken libcrypto */
}

void sigv4_date(time_t t, char amz_date[SIGV4_DATE_LEN])
{
  struct tm tm;

  gmtime_r(&t, &tm);
  strftime(amz_date, SIGV4_DATE_LEN, "%Y%m%dT%H%M%SZ", &tm);
}

struct qpair {
  char *name, *value;               /* encoded */
};

static int qpair_cmp(const void *a, const void *b)
{
  const struct qpair *x = a, *y = b;
  int c = strcmp(x->name, y->name);

  return c ? c : strcmp(x->value, y->value);
}

/* Encode, sort and join the pairs of q and extra. */
static char *query_join(const struct sigv4_param *q, size_t n,
                        const struct sigv4_param *extra, size_t n_extra)
{
  struct qpair *p = calloc(n + n_extra + 1, sizeof *p);
  char *out = NULL;
  size_t i, len = 0;
  FILE *fp = NULL;

  if (p == NULL)
    goto oom;
  for (i = 0; i < n + n_extra; i++) {
    const struct sigv4_param *src = i < n ? &q[i] : &extra[i - n];

    p[i].name = http_escape(src->name, 0);
    p[i].value = http_escape(src->value ? src->value : "", 0);
    if (p[i].name == NULL || p[i].value == NULL)
      goto oom;
  }
  qsort(p, n + n_extra, sizeof *p, qpair_cmp);
  fp = open_memstream(&out, &len);
  if (fp == NULL)
    goto oom;
  for (i = 0; i < n + n_extra; i++)
    fprintf(fp, "%s%s=%s", i ? "&" : "", p[i].name, p[i].value);
  if (fclose(fp) != 0) {
    free(out);
    out = NULL;
    goto oom;
  }
  goto out;
oom:
  ferry_error("out of memory");
out:
  for (i = 0; p && i < n + n_extra; i++) {
    free(p[i].name);
    free(p[i].value);
  }
  free(p);
  return out;
}

char *sigv4_canonical_query(const struct sigv4_param *q, size_t n)
{
  return query_join(q, n, NULL, 0);
}

static int hdr_cmp(const void *a, const void *b)
{
  return strcmp(((const struct hdr *)a)->name, ((const struct hdr *)b)->name);
}

static char *lower_dup(const char *s)
{
  char *d = strdup(s), *p;

  for (p = d; p && *p; p++)
    if (*p >= 'A' && *p <= 'Z')
      *p = (char)(*p - 'A' + 'a');
  return d;
}

/* Trim and collapse sequential spaces (the spec's Trimall). */
static char *trim_dup(const char *s)
{
  char *d = malloc(strlen(s) + 1), *o = d;

  if (d == NULL)
    return NULL;
  while (*s == ' ' || *s == '\t')
    s++;
  for (; *s; s++) {
    if (*s == ' ' || *s == '\t') {
      if (o > d && o[-1] != ' ')
        *o++ = ' ';
    } else {
      *o++ = *s;
    }
  }
  while (o > d && o[-1] == ' ')
    o--;
  *o = '\0';
  return d;
}

/* The canonical headers block and the signed headers list.  The header
 * form adds x-amz-date and x-amz-security-token; the query form signs
 * only host and the request's own headers. */
static int canon_headers(const struct sigv4_request *r,
                         const struct sigv4_key *k, const char *amz_date,
                         int query_form, char **canon, char **signed_list)
{
  size_t n = 0, i, len1 = 0, len2 = 0;
  struct hdr *h = calloc(r->n_headers + 3, sizeof *h);
  FILE *f1 = NULL, *f2 = NULL;
  int rc = -1;

  *canon = *signed_list = NULL;
  if (h == NULL)
    goto oom;
  h[n].name = strdup("host");
  h[n++].value = trim_dup(r->host);
  if (!query_form) {
    h[n].name = strdup("x-amz-date");
    h[n++].value = strdup(amz_date);
    if (k->session_token && *k->session_token) {
      h[n].name = strdup("x-amz-security-token");
      h[n++].value = trim_dup(k->session_token);
    }
  }
  for (i = 0; i < r->n_headers; i++) {
    h[n].name = lower_dup(r->headers[i].name);
    h[n++].value = trim_dup(r->headers[i].value);
  }
  for (i = 0; i < n; i++)
    if (h[i].name == NULL || h[i].value == NULL)
      goto oom;
  qsort(h, n, sizeof *h, hdr_cmp);
  f1 = open_memstream(canon, &len1);
  f2 = open_memstream(signed_list, &len2);
  if (f1 == NULL || f2 == NULL)
    goto oom;
  for (i = 0; i < n; i++) {
    fprintf(f1, "%s:%s\n", h[i].name, h[i].value);
    fprintf(f2, "%s%s", i ? ";" : "", h[i].name);
  }
  rc = 0;
oom:
  if (f1 && fclose(f1) != 0)
    rc = -1;
  if (f2 && fclose(f2) != 0)
    rc = -1;
  if (rc == -1) {
    ferry_error("out of memory");
    if (f1)
      free(*canon);
    if (f2)
      free(*signed_list);
    *canon = *signed_list = NULL;
  }
  for (i = 0; h && i < n; i++) {
    free(h[i].name);
    free(h[i].value);
  }
  free(h);
  return rc;
}

static char *join_canonical(const struct sigv4_request *r, const char *query,
                            const char *headers, const char *signed_list)
{
  char *out;

  if (asprintf(&out, "%s\n%s\n%s\n%s\n%s\n%s", r->method, r->path, query,
               headers, signed_list, r->payload_hash) == -1) {
    ferry_error("out of memory");
    return NULL;
  }
  return out;
}

char *sigv4_canonical_request(const struct sigv4_request *r,
                              const struct sigv4_key *k,
                              const char *amz_date)
{
  char *query = NULL, *headers = NULL, *signed_list = NULL, *out = NULL;

  query = sigv4_canonical_query(r->query, r->n_query);
  if (query && canon_headers(r, k, amz_date, 0, &headers, &signed_list) == 0)
    out = join_canonical(r, query, headers, signed_list);
  free(query);
  free(headers);
  free(signed_list);
  return out;
}

char *sigv4_string_to_sign(const char *amz_date, const struct sigv4_key *k,
                           const char *canonical_request)
{
  uint8_t d[DIGEST_LEN];
  char hex[DIGEST_HEX_LEN + 1], *out;

  digest_buf(canonical_request, strlen(canonical_request), d);
  digest_to_hex(d, hex);
  if (asprintf(&out, SIGV4_ALGORITHM "\n%s\n%.8s/%s/%s/aws4_request\n%s",
               amz_date, amz_date, k->region, k->service, hex) == -1) {
    ferry_error("out of memory");
    return NULL;
  }
  return out;
}

void sigv4_signing_key(const struct sigv4_key *k, const char *amz_date,
                       unsigned char out[32])
{
  size_t slen = strlen(k->secret_key);
  char *seed = malloc(slen + 5);
  unsigned char a[32], b[32];

  if (seed == NULL)
    abort();
  memcpy(seed, "AWS4", 4);
  memcpy(seed + 4, k->secret_key, slen + 1);
  hmac_sha256(seed, slen + 4, amz_date, 8, a);
  explicit_bzero(seed, slen + 4);
  free(seed);
  hmac_sha256(a, 32, k->region, strlen(k->region), b);
  hmac_sha256(b, 32, k->service, strlen(k->service), a);
  hmac_sha256(a, 32, "aws4_request", 12, out);
  explicit_bzero(a, sizeof a);
  explicit_bzero(b, sizeof b);
}

/* Hex HMAC of the string to sign of canonical under k. */
static int signature(const struct sigv4_key *k, const char *amz_date,
                     const char *canonical, char hex[65])
{
  char *sts = sigv4_string_to_sign(amz_date, k, canonical);
  unsigned char key[32], sig[32];

  if (sts == NULL)
    return -1;
  sigv4_signing_key(k, amz_date, key);
  hmac_sha256(key, 32, sts, strlen(sts), sig);
  explicit_bzero(key, sizeof key);
  hex_encode(sig, 32, hex);
  free(sts);
  return 0;
}

char *sigv4_authorization(const struct sigv4_request *r,
                          const struct sigv4_key *k, const char *amz_date)
{
  char *query = NULL, *headers = NULL, *signed_list = NULL;
  char *canonical = NULL, *out = NULL, hex[65];

  query = sigv4_canonical_query(r->query, r->n_query);
  if (query == NULL ||
      canon_headers(r, k, amz_date, 0, &headers, &signed_list) == -1)
    goto out;
  canonical = join_canonical(r, query, headers, signed_list);
  if (canonical == NULL || signature(k, amz_date, canonical, hex) == -1)
    goto out;
  if (asprintf(&out, SIGV4_ALGORITHM " Credential=%s/%.8s/%s/%s/aws4_request"
               ", SignedHeaders=%s, Signature=%s", k->access_key, amz_date,
               k->region, k->service, signed_list, hex) == -1) {
    ferry_error("out of memory");
    out = NULL;
  }
out:
  free(query);
  free(headers);
  free(signed_list);
  free(canonical);
  return out;
}

char *sigv4_presign_query(const struct sigv4_request *r,
                          const struct sigv4_key *k, const char *amz_date,
                          unsigned expires)
{
  char *headers = NULL, *signed_list = NULL, *cred = NULL, *query = NULL;
  char *canonical = NULL, *out = NULL, exp[16], hex[65];
  struct sigv4_param extra[7];
  size_t n = 0;

  if (expires < 1 || expires > 604800) {
    ferry_error("a presigned URL lasts 1 s to 7 days (604800 s), not %u s",
                expires);
    return NULL;
  }
  if (canon_headers(r, k, amz_date, 1, &headers, &signed_list) == -1)
    goto out;
  if (asprintf(&cred, "%s/%.8s/%s/%s/aws4_request", k->access_key, amz_date,
               k->region, k->service) == -1) {
    cred = NULL;
    ferry_error("out of memory");
    goto out;
  }
  snprintf(exp, sizeof exp, "%u", expires);
  extra[n++] = (struct sigv4_param){ "X-Amz-Algorithm", SIGV4_ALGORITHM };
  extra[n++] = (struct sigv4_param){ "X-Amz-Credential", cred };
  extra[n++] = (struct sigv4_param){ "X-Amz-Date", amz_date };
  extra[n++] = (struct sigv4_param){ "X-Amz-Expires", exp };
  extra[n++] = (struct sigv4_param){ "X-Amz-SignedHeaders", signed_list };
  if (k->session_token && *k->session_token)
    extra[n++] = (struct sigv4_param){ "X-Amz-Security-Token",
                                       k->session_token };
  query = query_join(r->query, r->n_query, extra, n);
  if (query == NULL)
    goto out;
  canonical = join_canonical(r, query, headers, signed_list);
  if (canonical == NULL || signature(k, amz_date, canonical, hex) == -1)
    goto out;
  /* the signature is not part of what it signs: it goes last */
  if (asprintf(&out, "%s&X-Amz-Signature=%s", query, hex) == -1) {
    ferry_error("out of memory");
    out = NULL;
  }
out:
  free(headers);
  free(signed_list);
  free(cred);
  free(query);
  free(canonical);
  return out;
}
