/* net/http_client.h - HTTP requests through libcurl, one reusable handle per thread.
 *
 * Each thread keeps its own easy handle, so connections (and TLS sessions)
 * are reused across requests without locking.  Every response body lands
 * in a capped buffer: a server can never make ferry allocate without
 * bound. */
#ifndef FERRY_HTTP_H
#define FERRY_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>

#define HTTP_BODY_CAP_DEFAULT (1u << 20)
#define HTTP_HEADERS_CAP (64u << 10)

struct http_request {
  const char *method;              /* "GET", "PUT", "POST", "HEAD", ... */
  const char *url;
  struct curl_slist *headers;      /* "Name: value" lines (not freed) */
  const void *body;                /* request body, or NULL */
  size_t body_len;
  /* The response body goes into out (out_cap bytes, not NUL-terminated)
   * when out is set, else into a new buffer of at most body_cap bytes
   * (HTTP_BODY_CAP_DEFAULT when 0).  More is an error.  With out set, the
   * body of a response whose status is not 2xx (an error document) goes
   * into resp->body instead, capped the same way. */
  void *out;
  size_t out_cap;
  size_t body_cap;
  /* Or a 2xx body handed to on_data as it arrives, nothing kept (an event
   * stream): on_data returns 0 to go on, -1 to end the request there
   * (http_do then returns -1; the caller knows why). */
  int (*on_data)(void *cls, const char *data, size_t len);
  void *on_data_cls;
  long connect_timeout;            /* seconds; 0: 10 */
  long timeout;                    /* whole request, seconds; 0: 300 */
  long low_speed_time;             /* abort if < 1 KiB/s this long; 0: 60 */
  /* TLS trust.  ca_file: trust only the CA certificate(s) in this file,
   * not the system's (an agent's pinned CA, the CLI's --ca-file); NULL:
   * the system's trust store.  Peer and host name are always verified,
   * except with tls_unverified, which only the fetch of a CA certificate
   * whose fingerprint the caller then checks may set (agent/server_ca.c);
   * such a connection is never reused. */
  const char *ca_file;
  int tls_unverified;
  /* What the request is for, in the process's HTTP metrics ("store",
   * "api", "cloud": net/http_stats.h); NULL: not counted. */
  const char *stats;
};

struct http_response {
  long status;                     /* 0 when no response arrived */
  char *body;                      /* NUL-terminated (NULL if into out) */
  size_t body_len;                 /* bytes received (also with out) */
  char *headers;                   /* raw header block, NUL-terminated */
  size_t headers_len;
  int transport_error;             /* set when no status was received */
  int retryable;                   /* timeout, reset, refused, 5xx, 429 */
  int tls_refused;                 /* the peer's certificate failed
                                      verification */
};

/* Perform req.  0 when a response (any status) arrived; -1 with an error
 * naming the host when it did not (resp->transport_error set).  Always
 * call http_response_free afterwards. */
int http_do(const struct http_request *req, struct http_response *resp);
void http_response_free(struct http_response *resp);

/* Value of header name in resp (case-insensitive), copied into buf; NULL
 * if absent. */
const char *http_header(const struct http_response *resp, const char *name,
                        char *buf, size_t size);

/* "host:port" of url for messages, into buf. */
const char *http_host(const char *url, char *buf, size_t size);

/* Append a "Name: value" header; -1 with an error on OOM. */
int http_header_add(struct curl_slist **list, const char *fmt, ...)
  __attribute__((format(printf, 2, 3)));

/* Percent-encode s as URLs and the stores' signatures (SigV4's canonical
 * URI and query, Azure's SAS) want it: RFC 3986 section 2.3 unreserved
 * characters kept, every other byte %XX in upper case, '/' kept when
 * keep_slash (object paths).  Caller frees; NULL with an error on OOM. */
char *http_escape(const char *s, int keep_slash);

/* Sleep for a retry: exponential backoff from base_ms with full jitter,
 * capped at cap_ms (AWS architecture blog, "Exponential Backoff And
 * Jitter"). */
void http_backoff(unsigned attempt, unsigned base_ms, unsigned cap_ms);

#endif
