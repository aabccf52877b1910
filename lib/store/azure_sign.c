/* store/azure_sign.c - Shared Key and SAS signatures (see azure_sign.h). */
#include "store/azure_sign.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "util/error.h"
#include "store/http.h"

/* The standard headers of the string to sign, in its order. */
static const char *const std_headers[] = {
  "Content-Encoding", "Content-Language", "Content-Length", "Content-MD5",
  "Content-Type", "Date", "If-Modified-Since", "If-Match", "If-None-Match",
  "If-Unmodified-Since", "Range",
};

static const char *find_header(const struct azure_param *h, size_t n,
                               const char *name)
{
  size_t i;

  for (i = 0; i < n; i++)
    if (strcasecmp(h[i].name, name) == 0)
      return h[i].value;
  return NULL;
}

static int param_cmp(const void *a, const void *b)
{
  return strcasecmp(((const struct azure_param *)a)->name,
                    ((const struct azure_param *)b)->name);
}

/* Lower-case, trimmed copy for the canonicalized headers. */
static void put_lower(FILE *fp, const char *s)
{
  for (; *s; s++)
    fputc(*s >= 'A' && *s <= 'Z' ? *s - 'A' + 'a' : *s, fp);
}

char *azure_string_to_sign(const char *method, const char *account,
                           const char *path, const struct azure_param *query,
                           size_t n_query, const struct azure_param *headers,
                           size_t n_headers)
{
  struct azure_param *xms = calloc(n_headers + 1, sizeof *xms);
  struct azure_param *q = calloc(n_query + 1, sizeof *q);
  char *out = NULL;
  size_t len = 0, i, n = 0;
  FILE *fp = NULL;

  if (xms == NULL || q == NULL || (fp = open_memstream(&out, &len)) == NULL)
    goto oom;
  fprintf(fp, "%s\n", method);
  for (i = 0; i < sizeof std_headers / sizeof std_headers[0]; i++) {
    const char *v = find_header(headers, n_headers, std_headers[i]);

    /* since version 2015-02-21 a zero Content-Length signs as empty */
    if (v && i == 2 && strcmp(v, "0") == 0)
      v = NULL;
    fprintf(fp, "%s\n", v ? v : "");
  }
  for (i = 0; i < n_headers; i++)
    if (strncasecmp(headers[i].name, "x-ms-", 5) == 0)
      xms[n++] = headers[i];
  qsort(xms, n, sizeof *xms, param_cmp);
  for (i = 0; i < n; i++) {
    const char *v = xms[i].value;

    put_lower(fp, xms[i].name);
    while (*v == ' ')
      v++;
    fprintf(fp, ":%s\n", v);
  }
  fprintf(fp, "/%s%s", account, path);
  if (n_query)
    memcpy(q, query, n_query * sizeof *q);
  qsort(q, n_query, sizeof *q, param_cmp);
  for (i = 0; i < n_query; i++) {
    fputc('\n', fp);
    put_lower(fp, q[i].name);
    fprintf(fp, ":%s", q[i].value ? q[i].value : "");
  }
  if (fclose(fp) != 0) {
    fp = NULL;
    free(out);
    out = NULL;
    goto oom;
  }
  free(xms);
  free(q);
  return out;
oom:
  if (fp)
    fclose(fp);
  free(out);
  free(xms);
  free(q);
  ferry_error("out of memory");
  return NULL;
}

/* base64(HMAC-SHA256(base64decode(key), msg)) into out[45]. */
static int sign(const char *key, const char *msg, char out[45])
{
  uint8_t raw[128], mac[32];
  unsigned int n = 32;
  long klen = base64_decode(key, raw, sizeof raw);

  if (klen <= 0) {
    ferry_error("the storage account key is not base64: check "
                "AZURE_STORAGE_KEY");
    return -1;
  }
  if (HMAC(EVP_sha256(), raw, (int)klen, (const unsigned char *)msg,
           strlen(msg), mac, &n) == NULL)
    abort();
  explicit_bzero(raw, sizeof raw);
  base64_encode(mac, 32, out);
  return 0;
}

char *azure_shared_key(const char *account, const char *key,
                       const char *string_to_sign)
{
  char sig[45], *out;

  if (sign(key, string_to_sign, sig) == -1)
    return NULL;
  if (asprintf(&out, "SharedKey %s:%s", account, sig) == -1) {
    ferry_error("out of memory");
    return NULL;
  }
  return out;
}

char *azure_blob_sas(const char *account, const char *key,
                     const char *container, const char *blob,
                     const char *permissions, const char *expiry,
                     const char *protocol, const char *version)
{
  char *sts = NULL, *out = NULL, *esig = NULL, *eexp = NULL, sig[45];

  /* "Create a service SAS", version 2020-12-06 and later: permissions,
   * start, expiry, canonicalized resource, identifier, IP, protocol,
   * version, resource, snapshot time, encryption scope, then the five
   * response header overrides */
  if (asprintf(&sts, "%s\n\n%s\n/blob/%s/%s/%s\n\n\n%s\n%s\nb\n\n\n\n\n\n\n",
               permissions, expiry, account, container, blob,
               protocol ? protocol : "", version) == -1) {
    ferry_error("out of memory");
    return NULL;
  }
  if (sign(key, sts, sig) == -1)
    goto out;
  esig = http_escape(sig, 0);
  eexp = http_escape(expiry, 0);
  if (esig == NULL || eexp == NULL ||
      asprintf(&out, "sv=%s&sr=b&sp=%s&se=%s%s%s&sig=%s", version,
               permissions, eexp, protocol ? "&spr=" : "",
               protocol ? protocol : "", esig) == -1) {
    out = NULL;
    ferry_error("out of memory");
  }
out:
  free(sts);
  free(esig);
  free(eexp);
  return out;
}
