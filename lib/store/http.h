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

#include <openssl/evp.h>

#include "net/http_client.h"
#include "store/store.h"
#include "store/upload_pool.h"
#include "store/xml.h"

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

/* ---- what the backends' store operations share ---- */

/* From a store URL: name (nlen bytes, the bucket or container) and rest,
 * what follows it ("" or "/prefix/..."): *prefix, the prefix without
 * slashes at either end plus one '/' ("" for none), and *store_url, the
 * URL written canonically.  0, or -1 with an error (an empty path
 * component: usage says what to write; OOM); the caller frees both
 * either way. */
int store_http_location(const char *scheme, const char *usage,
                        const char *url, const char *name, size_t nlen,
                        const char *rest, char **prefix, char **store_url);

/* prefix followed by key: the object's or blob's name (caller frees);
 * NULL with an error on OOM. */
char *store_http_name(const char *prefix, const char *key);

/* One page of a listing: for each item element of body whose name_tag
 * starts with prefix (and does not contain skip, when set), cb with the
 * name after the prefix and the size in size_tag, until cb returns
 * non-zero (returned). */
int store_http_list_page(struct xml_span body, const char *item,
                         const char *name_tag, const char *size_tag,
                         const char *prefix, const char *skip,
                         store_list_cb cb, void *opaque);

/* An endpoint URL, scheme://host[:port][/path], split in place. */
struct store_http_endpoint {
  int https;
  const char *host;                /* host[:port] */
  size_t host_len;
  const char *path;                /* "" or "/...", without trailing '/' */
  size_t path_len;
};

/* Split url; -1 with an error naming check (what to correct) when it is
 * not http:// or https://, has no host, carries credentials, a query or
 * a fragment. */
int store_http_endpoint(const char *url, const char *check,
                        struct store_http_endpoint *ep);

/* The size of the object a HEAD answered 200 for (its Content-Length):
 * 1, or -1 with an error naming what and the store. */
int store_http_head_size(const struct store *st,
                         const struct http_response *resp, const char *what,
                         uint64_t *size);

/* A GET of len 0 bytes: 0 when key exists (*got 0), -1 with an error
 * (ENOENT when it does not). */
int store_http_get_nothing(struct store *st, const char *key, size_t *got);

/* What a store's answer to a GET of len bytes of key at off holds, once
 * the backend has said whether a 404 means the object is missing (not
 * its bucket or container): */
enum store_http_got {
  STORE_HTTP_GOT_FAIL = -1,        /* error set: missing, or cut short */
  STORE_HTTP_GOT_PART = 0,         /* *got bytes (0: off past the end) */
  STORE_HTTP_GOT_WHOLE = 1,        /* the whole object, not checked by
                                      the caller (verified_reads): check
                                      it against the store's digest */
  STORE_HTTP_GOT_STATUS = 2,       /* another status: the backend says */
};
enum store_http_got store_http_got(const struct store *st, const char *key,
                                   uint64_t off, size_t len,
                                   const struct http_response *resp,
                                   int missing, size_t *got);

/* The size of part n (from 1) of an object of size bytes (0: unknown)
 * uploaded in parts of base bytes and at most max_parts: for a known
 * size, enough for max_parts to hold it (rounded up to a MiB); for an
 * unknown one, doubling every grow_every parts, at most 2^max_shift
 * times; never more than cap. */
size_t store_http_part_size(uint64_t base, uint64_t size, uint32_t n,
                            uint32_t max_parts, uint32_t grow_every,
                            unsigned max_shift, uint64_t cap);

/* ---- the streaming writer: parts uploaded in parallel ----
 *
 * A backend's writer starts with a struct store_http_writer; the generic
 * code fills parts, hands them to the upload pool in order and commits
 * through the backend's hooks. */
struct store_http_writer;

struct store_http_writer_ops {
  const char *parts;               /* "parts", "blocks": for messages */
  /* Before the first part goes out (begin a multipart upload, find the
   * parts an earlier writer left, create a page blob): 0 or -1. */
  int (*start)(struct store_http_writer *hw);
  /* Upload one filled part (the pool's threads call it): 0 or -1. */
  int (*upload)(void *hw, struct upload_job *j);
  /* The size of part n; NULL: part_size never changes. */
  size_t (*part_size)(struct store_http_writer *hw, uint32_t n);
  /* The whole object in one request when no part went out; NULL: it
   * always goes in parts. */
  int (*put_whole)(struct store_http_writer *hw, const void *buf,
                   size_t len);
  /* Every part uploaded: make the object appear. */
  int (*complete)(struct store_http_writer *hw);
  /* Cancel what start began (its error is not kept); NULL: nothing. */
  void (*abort)(struct store_http_writer *hw);
  /* Free the backend's writer (hw is its first member). */
  void (*free)(struct store_http_writer *hw);
};

struct store_http_writer {
  struct store_writer w;           /* first: what the store layer holds */
  const struct store_http_writer_ops *ops;
  const char *name;                /* the object or blob, for messages */
  struct upload_pool *pool;
  struct upload_job *cur;          /* the part being filled, or NULL */
  size_t part_size;                /* of cur */
  uint32_t next_part;              /* number of cur, from 1 */
  uint32_t max_parts;              /* 0: no limit */
  uint64_t offset;                 /* where cur starts */
  uint64_t limit;                  /* bytes may not go past it (0: none) */
  EVP_MD_CTX *md5;                 /* when set: of every byte, in order */
  int started;                     /* start ran */
  _Atomic unsigned reused, sent;   /* parts found already there, sent */
};

/* Set hw up for key of store st (name: its object or blob name, kept by
 * the backend) with part_size already set, and its upload pool: as many
 * threads as memory bytes hold parts, 1 to max_threads.  0 or -1. */
int store_http_writer_init(struct store_http_writer *hw, struct store *st,
                           const char *key, const char *name,
                           const struct store_http_writer_ops *ops,
                           uint64_t memory, unsigned max_threads);

/* Append len bytes of buf (zeros when buf is NULL). */
int store_http_writer_append(struct store_http_writer *hw, const void *buf,
                             uint64_t len);

/* Send the part being filled, start if need be, and move on len bytes
 * without sending them (a page blob's pages of zeros). */
int store_http_writer_skip(struct store_http_writer *hw, uint64_t len);

/* The store_ops members (w is a struct store_http_writer). */
int store_http_writer_write(struct store_writer *w, const void *buf,
                            size_t len);
int store_http_writer_zero(struct store_writer *w, uint64_t len);
int store_http_writer_commit(struct store_writer *w);
void store_http_writer_abort(struct store_writer *w);

/* The writer's common parts, for the backend's free hook. */
void store_http_writer_release(struct store_http_writer *hw);

#endif
