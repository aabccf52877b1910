/* store/store.h - object stores: one ops table per URL scheme.
 *
 * A store is opened at a URL prefix (file:///srv/ferry/web01/sda,
 * s3://bucket/web01/sda, ...); keys are relative to it ("manifest.json",
 * "chunks/<sha256>").  Every operation may be called from several threads
 * at once on one store; a writer belongs to one thread.
 *
 * Failures return -1 (or NULL) with ferry_error() set to one line that names
 * the store and what to check.  When the failure is that the object does
 * not exist, errno is ENOENT on return. */
#ifndef FERRY_STORE_H
#define FERRY_STORE_H

#include <stddef.h>
#include <stdint.h>

struct store;
struct store_writer;

/* Listing callback: 0 to go on, -1 (with ferry_error) to stop the listing. */
typedef int (*store_list_cb)(void *opaque, const char *key, uint64_t size);

/* What a grant lets a client without credentials do: send method to url
 * with exactly these headers ("Name: value", covered by the signature
 * where the service signs headers).  store_grant_free frees it. */
#define STORE_GRANT_HEADERS 4
struct store_grant {
  char *url;
  char *headers[STORE_GRANT_HEADERS];       /* NULL after the last */
};

struct store_writer_opts {
  uint64_t size;    /* final size if known in advance, else 0 */
  int page_blob;    /* azure: write a page blob (size required, 512-aligned) */
};

struct store_ops {
  const char *scheme;                       /* "file", "s3", ... */
  const char *usage;                        /* URL form for messages */

  /* Open the store rooted at url (whose scheme is ->scheme).  Does not
   * create anything: a store is created by its first put. */
  struct store *(*open)(const char *url);

  /* Store buf as key, atomically: readers see the old object or the whole
   * new one, never a part. */
  int (*put)(struct store *s, const char *key, const void *buf, size_t len);

  /* put, for a caller that already knows the SHA-256 of buf: a backend
   * whose service verifies a payload digest (S3's signed payload) uses it
   * instead of hashing again.  NULL: put is used. */
  int (*put_hashed)(struct store *s, const char *key, const void *buf,
                    size_t len, const uint8_t sha256[32]);

  /* Read up to len bytes at off; *got is short only at the object's end. */
  int (*get)(struct store *s, const char *key, uint64_t off, void *buf,
             size_t len, size_t *got);

  /* 1 with *size when key exists, 0 when it does not, -1 on error. */
  int (*head)(struct store *s, const char *key, uint64_t *size);

  /* cb once per object whose key starts with prefix (any order). */
  int (*list)(struct store *s, const char *prefix, store_list_cb cb,
              void *opaque);

  /* Remove key; removing what is not there succeeds. */
  int (*del)(struct store *s, const char *key);

  /* Make every completed put durable before a later put (the manifest is
   * written only after its chunks are safe).  NULL when puts are durable
   * on return, as on S3 and Azure. */
  int (*flush)(struct store *s);

  /* Large objects, written front to back.  Nothing is visible under key
   * until commit; abort (or a crash) leaves no object that looks whole. */
  struct store_writer *(*writer_open)(struct store *s, const char *key,
                                      const struct store_writer_opts *opts);
  int (*writer_write)(struct store_writer *w, const void *buf, size_t len);
  /* Append len zero bytes; sparse-capable stores send nothing. */
  int (*writer_zero)(struct store_writer *w, uint64_t len);
  int (*writer_commit)(struct store_writer *w);   /* frees w, even on -1 */
  void (*writer_abort)(struct store_writer *w);   /* frees w; NULL ok */

  /* A URL that a plain HTTP client can use with method for expires
   * seconds (caller frees); NULL with an error where there is none. */
  char *(*presign)(struct store *s, const char *key, const char *method,
                   unsigned expires);

  /* A grant for method (GET, HEAD or PUT) on key alone, for expires
   * seconds, signed with the store's own credentials.  For PUT, sha256
   * (64 lower-case hex) and size are the exact payload's: where the
   * service checks signed headers (S3, GCS) the grant carries them, so
   * it writes that payload only.  NULL where there is none (file://). */
  int (*grant)(struct store *s, const char *key, const char *method,
               unsigned expires, const char *sha256, uint64_t size,
               struct store_grant *g);

  /* One page of list: cb for each object of the page, and *next (caller
   * frees) the token of the next page, NULL after the last.  token NULL
   * asks for the first page; a token is opaque, the service's own. NULL
   * where listings are not paged. */
  int (*list_page)(struct store *s, const char *prefix, const char *token,
                   store_list_cb cb, void *opaque, char **next);

  void (*close)(struct store *s);          /* NULL ok */
};

/* The base of every store; a backend's own struct starts with it. */
struct store {
  const struct store_ops *ops;
  char *url;                                /* as opened, for messages */
  /* The caller checks a digest of everything it reads (chunks, tables):
   * a backend may skip its own check of whole objects (an MD5 against the
   * ETag), which would hash the same bytes twice. */
  int verified_reads;
};

struct store_writer {
  struct store *store;
  char *key;
  uint64_t written;                         /* bytes appended so far */
};

/* Open url by its scheme; an unknown scheme gets a message listing the
 * known ones.  Caller closes. */
struct store *store_open(const char *url);
void store_close(struct store *s);

/* A printable form of the URL with any credentials removed. */
const char *store_url(const struct store *s);

int store_put(struct store *s, const char *key, const void *buf, size_t len);
/* store_put with buf's SHA-256 already known (see put_hashed). */
int store_put_hashed(struct store *s, const char *key, const void *buf,
                     size_t len, const uint8_t sha256[32]);
int store_get(struct store *s, const char *key, uint64_t off, void *buf,
              size_t len, size_t *got);
int store_head(struct store *s, const char *key, uint64_t *size);
int store_list(struct store *s, const char *prefix, store_list_cb cb,
               void *opaque);
int store_del(struct store *s, const char *key);
int store_flush(struct store *s);
char *store_presign(struct store *s, const char *key, const char *method,
                    unsigned expires);

/* store's grant op (docs/STORES.md, "Grants"); -1 with an error for a
 * store that has none.  0 with *g filled (store_grant_free it). */
int store_grant(struct store *s, const char *key, const char *method,
                unsigned expires, const char *sha256, uint64_t size,
                struct store_grant *g);
void store_grant_free(struct store_grant *g);

/* store's list_page op; a store without one lists everything at once
 * (*next NULL). */
int store_list_page(struct store *s, const char *prefix, const char *token,
                    store_list_cb cb, void *opaque, char **next);

/* Read a whole object of at most cap bytes into a new NUL-terminated
 * buffer (caller frees).  Larger objects are an error. */
int store_get_all(struct store *s, const char *key, size_t cap, char **buf,
                  size_t *len);

struct store_writer *store_writer_open(struct store *s, const char *key,
                                       const struct store_writer_opts *opts);
int store_writer_write(struct store_writer *w, const void *buf, size_t len);
int store_writer_zero(struct store_writer *w, uint64_t len);
int store_writer_commit(struct store_writer *w);
void store_writer_abort(struct store_writer *w);

/* The schemes compiled in, for messages ("file://, s3://, ..."). */
const char *store_schemes(void);

#endif
