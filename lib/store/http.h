/* store/http.h - what the HTTP object stores (s3, gs, azure) share.
 *
 * One request with bounded retries (retry.h): the backend's prepare
 * callback signs each attempt afresh (dates move on), the response is
 * classified, and what cannot succeed by trying again returns at once.
 * Also the digests the stores send and check (MD5 for Content-MD5 and
 * ETags, base64). */
#ifndef FERRY_STORE_HTTP_H
#define FERRY_STORE_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "net/http_client.h"

/* Called before every attempt: (re)build req->headers (freeing the old
 * list) and maybe req->url.  after_drop is set when the previous attempt
 * got no response, so a request that may have completed unseen can check
 * first.  0 to send, -1 with an error to give up, or, when the request is
 * already done, the 2xx status it answers on success (201 for an Azure
 * Put Blob, 200 for an S3 PutObject): the result is then that status
 * without a body, so that a caller checking for its success status sees
 * success. */
typedef int (*store_http_prepare_fn)(void *opaque, struct http_request *req,
                                     unsigned attempt, int after_drop);

/* Perform req until a response arrives that retrying will not change:
 * 0 with *resp (any status, for the caller to judge; a retryable status
 * only when the attempts or the time ran out, with resp->retryable set),
 * or -1 with an error naming what (e.g. "PUT 127.0.0.1:8080 chunks/ab")
 * when no response came (or one over its cap), *resp then holding
 * nothing.  Frees nothing of req; after 0, free *resp. */
int store_http_request(struct http_request *req, struct http_response *resp,
                       store_http_prepare_fn prepare, void *opaque,
                       const char *what);

/* MD5 (RFC 1321), for Content-MD5 and S3 ETags. */
#define MD5_LEN 16
void md5_buf(const void *buf, size_t len, uint8_t out[MD5_LEN]);

/* Base64 (RFC 4648) of len bytes into out (4 * ceil(len / 3) + 1 bytes). */
void base64_encode(const void *buf, size_t len, char *out);
/* Decode s into out (at most cap bytes): the decoded length, or -1 when s
 * is not base64 or does not fit. */
long base64_decode(const char *s, uint8_t *out, size_t cap);

/* The value of the Retry-After header of resp in milliseconds (0 if
 * none). */
unsigned http_retry_after_ms(const struct http_response *resp);

#endif
