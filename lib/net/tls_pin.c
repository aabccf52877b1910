#include "net/tls_pin.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "util/cleanup.h"
#include "util/error.h"
#include "util/file.h"

static int hexval(int c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

int tls_pin_parse(const char *text, uint8_t pin[TLS_PIN_LEN])
{
  const char *p = text;
  size_t i;

  if (strncasecmp(p, "sha256:", 7) != 0)
    goto bad;
  p += 7;
  for (i = 0; i < TLS_PIN_LEN; i++) {
    int hi, lo;

    if (i > 0 && *p == ':')
      p++;
    hi = hexval((unsigned char)p[0]);
    lo = hi < 0 ? -1 : hexval((unsigned char)p[1]);
    if (lo < 0)
      goto bad;
    pin[i] = (uint8_t)(hi << 4 | lo);
    p += 2;
  }
  if (*p == '\0')
    return 0;
bad:
  ferry_error("a CA fingerprint is 'sha256:' and 64 hex digits (ferry ca "
              "prints it; so does ferry-server when it starts)");
  return -1;
}

void tls_pin_format(const uint8_t pin[TLS_PIN_LEN], char out[TLS_PIN_TEXT])
{
  static const char hex[] = "0123456789abcdef";
  size_t i;

  memcpy(out, "sha256:", 7);
  for (i = 0; i < TLS_PIN_LEN; i++) {
    out[7 + 2 * i] = hex[pin[i] >> 4];
    out[8 + 2 * i] = hex[pin[i] & 15];
  }
  out[7 + 2 * TLS_PIN_LEN] = '\0';
}

int tls_pin_equal(const uint8_t a[TLS_PIN_LEN], const uint8_t b[TLS_PIN_LEN])
{
  return CRYPTO_memcmp(a, b, TLS_PIN_LEN) == 0;
}

int tls_pin_of_pem(const char *pem, size_t len, const char *what,
                   uint8_t pin[TLS_PIN_LEN], char **pem_out)
{
  BIO *in = NULL, *out = NULL;
  X509 *x = NULL, *extra = NULL;
  unsigned char *der = NULL;
  unsigned int dlen = 0;
  int n, r = -1;

  if (pem_out)
    *pem_out = NULL;
  if (len > TLS_PEM_MAX || (in = BIO_new_mem_buf(pem, (int)len)) == NULL) {
    ferry_error("%s: not a PEM certificate of at most %u bytes", what,
                TLS_PEM_MAX);
    return -1;
  }
  x = PEM_read_bio_X509(in, NULL, NULL, NULL);
  if (x == NULL) {
    ferry_error("%s holds no PEM certificate", what);
    goto out;
  }
  extra = PEM_read_bio_X509(in, NULL, NULL, NULL);
  if (extra != NULL) {
    ferry_error("%s holds more than one certificate: it should hold just "
                "the CA's", what);
    goto out;
  }
  if (X509_check_ca(x) == 0) {
    ferry_error("%s is not a CA certificate (no basicConstraints CA:TRUE)",
                what);
    goto out;
  }
  n = i2d_X509(x, &der);
  if (n <= 0 || EVP_Digest(der, (size_t)n, pin, &dlen, EVP_sha256(),
                           NULL) != 1 || dlen != TLS_PIN_LEN) {
    ferry_error("%s: cannot digest the certificate", what);
    goto out;
  }
  if (pem_out) {
    BUF_MEM *bm;

    out = BIO_new(BIO_s_mem());
    if (out == NULL || PEM_write_bio_X509(out, x) != 1) {
      ferry_error("out of memory");
      goto out;
    }
    BIO_get_mem_ptr(out, &bm);
    *pem_out = strndup(bm->data, bm->length);
    if (*pem_out == NULL) {
      ferry_error("out of memory");
      goto out;
    }
  }
  r = 0;
out:
  OPENSSL_free(der);
  X509_free(extra);
  X509_free(x);
  BIO_free(in);
  BIO_free(out);
  return r;
}

int tls_pin_of_file(const char *path, uint8_t pin[TLS_PIN_LEN])
{
  CLEANUP_FREE char *pem = NULL;
  size_t len;

  pem = file_read_small(path, TLS_PEM_MAX, 0, &len);
  if (pem == NULL)
    return -1;
  return tls_pin_of_pem(pem, len, path, pin, NULL);
}
