#include "hash/digest.h"

#include <stdlib.h>

#include <openssl/evp.h>

struct digest_ctx {
  EVP_MD_CTX *md;
};

static const EVP_MD *sha256(void)
{
  /* Explicit fetch, once, kept for the life of the process: EVP_sha256()
   * would look the provider up on every init (OpenSSL 3 migration guide). */
  static EVP_MD *md;
  EVP_MD *m = __atomic_load_n(&md, __ATOMIC_ACQUIRE), *expected = NULL;

  if (m != NULL)
    return m;
  m = EVP_MD_fetch(NULL, "SHA256", NULL);
  if (m == NULL)
    return EVP_sha256();
  if (!__atomic_compare_exchange_n(&md, &expected, m, 0, __ATOMIC_ACQ_REL,
                                   __ATOMIC_ACQUIRE)) {
    EVP_MD_free(m);
    m = expected;
  }
  return m;
}

void digest_buf(const void *buf, size_t len, uint8_t out[DIGEST_LEN])
{
  unsigned int n = DIGEST_LEN;

  if (!EVP_Digest(buf, len, out, &n, sha256(), NULL))
    abort();  /* SHA-256 cannot fail short of a broken libcrypto */
}

struct digest_ctx *digest_create(void)
{
  struct digest_ctx *ctx = calloc(1, sizeof *ctx);

  if (ctx == NULL)
    return NULL;
  ctx->md = EVP_MD_CTX_new();
  if (ctx->md == NULL || !EVP_DigestInit_ex(ctx->md, sha256(), NULL)) {
    EVP_MD_CTX_free(ctx->md);
    free(ctx);
    return NULL;
  }
  return ctx;
}

void digest_update(struct digest_ctx *ctx, const void *buf, size_t len)
{
  if (!EVP_DigestUpdate(ctx->md, buf, len))
    abort();
}

void digest_final(struct digest_ctx *ctx, uint8_t out[DIGEST_LEN])
{
  unsigned int n = DIGEST_LEN;

  if (!EVP_DigestFinal_ex(ctx->md, out, &n) ||
      !EVP_DigestInit_ex(ctx->md, sha256(), NULL))
    abort();
}

void digest_close(struct digest_ctx *ctx)
{
  if (ctx == NULL)
    return;
  EVP_MD_CTX_free(ctx->md);
  free(ctx);
}

void hex_encode(const void *buf, size_t len, char *out)
{
  static const char hexdig[] = "0123456789abcdef";
  const uint8_t *p = buf;
  size_t i;

  for (i = 0; i < len; i++) {
    out[2 * i] = hexdig[p[i] >> 4];
    out[2 * i + 1] = hexdig[p[i] & 15];
  }
  out[2 * len] = '\0';
}

void digest_to_hex(const uint8_t d[DIGEST_LEN], char *hex)
{
  hex_encode(d, DIGEST_LEN, hex);
}

static int hexval(char c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  return -1;
}

int digest_from_hex(const char *hex, uint8_t d[DIGEST_LEN])
{
  int i;

  for (i = 0; i < DIGEST_LEN; i++) {
    int hi = hexval(hex[2 * i]), lo;

    if (hi < 0)
      return -1;
    lo = hexval(hex[2 * i + 1]);
    if (lo < 0)
      return -1;
    d[i] = (uint8_t)(hi << 4 | lo);
  }
  return hex[2 * DIGEST_LEN] == '\0' ? 0 : -1;
}
