/* store/sigv4.h - AWS Signature Version 4, pure: no I/O, no clock.
 *
 * Implements "Authenticating Requests (AWS Signature Version 4)" of the
 * Amazon S3 API reference: the canonical request, the string to sign, the
 * signing key, the Authorization header and presigned (query string)
 * URLs.  The caller passes the time, so the published examples are unit
 * tests (tests/unit/test_sigv4.c). */
#ifndef FERRY_SIGV4_H
#define FERRY_SIGV4_H

#include <stddef.h>
#include <time.h>

#define SIGV4_ALGORITHM "AWS4-HMAC-SHA256"
/* SHA-256 of the empty string: the payload hash of a request without body */
#define SIGV4_EMPTY_SHA256 \
  "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define SIGV4_UNSIGNED "UNSIGNED-PAYLOAD"
/* "YYYYMMDDTHHMMSSZ" + NUL */
#define SIGV4_DATE_LEN 17

struct sigv4_key {
  const char *access_key;
  const char *secret_key;
  const char *session_token;        /* NULL without temporary credentials */
  const char *region;               /* "us-east-1", "auto", ... */
  const char *service;              /* "s3" */
};

/* A name and its raw (not yet encoded) value. */
struct sigv4_param {
  const char *name;
  const char *value;
};

struct sigv4_request {
  const char *method;               /* "GET", "PUT", ... */
  const char *host;                 /* the Host header: host[:port] */
  const char *path;                 /* the URI-encoded absolute path */
  const struct sigv4_param *query;  /* raw query parameters, any order */
  size_t n_query;
  /* Headers to sign besides host and x-amz-date (names in any case),
   * e.g. x-amz-content-sha256, range, content-md5.  The request must
   * send exactly these values. */
  const struct sigv4_param *headers;
  size_t n_headers;
  const char *payload_hash;         /* hex SHA-256 or SIGV4_UNSIGNED */
};

/* amz_date = "YYYYMMDDTHHMMSSZ" for t (UTC). */
void sigv4_date(time_t t, char amz_date[SIGV4_DATE_LEN]);

/* The canonical query string: names and values encoded, sorted by name
 * then value, joined by '&'.  Also the query string to send.  Caller
 * frees. */
char *sigv4_canonical_query(const struct sigv4_param *q, size_t n);

/* The canonical request for header authorization (x-amz-date is added,
 * and x-amz-security-token with a session token).  Caller frees. */
char *sigv4_canonical_request(const struct sigv4_request *r,
                              const struct sigv4_key *k,
                              const char *amz_date);

/* The string to sign for a canonical request.  Caller frees. */
char *sigv4_string_to_sign(const char *amz_date, const struct sigv4_key *k,
                           const char *canonical_request);

/* The 32-byte signing key: HMAC chain over date, region, service and
 * "aws4_request" starting from "AWS4" + secret. */
void sigv4_signing_key(const struct sigv4_key *k, const char *amz_date,
                       unsigned char out[32]);

/* The Authorization header value ("AWS4-HMAC-SHA256 Credential=...,
 * SignedHeaders=..., Signature=...").  The request must also send
 * "x-amz-date: amz_date" and, with a session token,
 * "x-amz-security-token".  Caller frees. */
char *sigv4_authorization(const struct sigv4_request *r,
                          const struct sigv4_key *k, const char *amz_date);

/* A presigned request's query string: r's own query plus X-Amz-Algorithm,
 * -Credential, -Date, -Expires, -SignedHeaders (host and r's headers),
 * -Security-Token and -Signature, in canonical order.  r->payload_hash is
 * normally SIGV4_UNSIGNED.  expires is 1 to 604800 seconds.  Caller
 * frees. */
char *sigv4_presign_query(const struct sigv4_request *r,
                          const struct sigv4_key *k, const char *amz_date,
                          unsigned expires);

#endif
