/* store/http.c - requests with retries and digests for HTTP stores. */
#include "store/http.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

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
