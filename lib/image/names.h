/* image/names.h - the names that become store keys, and the one function
 * that joins them under a store URL.
 *
 * A chunked image lives at <store>/<host>/<disk>/ (docs/FORMAT.md).  Host
 * and disk names come from agents, which the server does not trust: a
 * host named "../../x" would write outside its prefix on file:// and into
 * other hosts' keys on S3, Azure or GCS.  So every name is checked where
 * it enters (the REST API) and again here, where it becomes a key. */
#ifndef FERRY_IMAGE_NAMES_H
#define FERRY_IMAGE_NAMES_H

#include <stddef.h>

#define HOSTNAME_MAX 253
#define DISKNAME_MAX 64

/* 0 if the len bytes at s are an RFC 1123 host name: dot-separated labels
 * of 1 to 63 letters, digits and hyphens, no label starting or ending
 * with a hyphen, at most 253 bytes.  Else -1 with an error that says what
 * is wrong and what is allowed (never echoing the name).  len, not
 * strlen: a JSON string may hold a NUL. */
int hostname_check(const char *s, size_t len);

/* 0 if the len bytes at s are a disk name: 1 to 64 of A-Z a-z 0-9 . _ -,
 * not starting with a dot (so never "." or ".."); else -1 with an error. */
int diskname_check(const char *s, size_t len);

/* "<store>/<host>/<disk><suffix>" (trailing slashes of store dropped),
 * after checking host and disk as above; suffix is NULL or a file name
 * extension such as ".vmdk".  NULL with an error otherwise.  Caller
 * frees.  Every store URL built from a host and a disk name is built
 * here. */
char *image_url(const char *store, const char *host, const char *disk,
                const char *suffix);

/* The keys of one image, relative to its prefix (image.h's layout). */
enum image_key {
  IMAGE_KEY_MANIFEST,        /* manifest.json */
  IMAGE_KEY_GENERATION,      /* generations/<1 to 20 digits>.json */
  IMAGE_KEY_TABLE,           /* tables/<64 hex>.tsv */
  IMAGE_KEY_CHUNK,           /* chunks/<64 hex>[.gz|.zst] */
  IMAGE_KEY_CHUNK_ENCODED,   /* the same with a suffix: a compressed chunk */
};

/* Which of an image's own keys the len bytes at s are, or -1 with an
 * error for anything else (no "..", no leading '/', no other shape).
 * For a table or chunk, hex gets its 64 lower-case hex digits and a
 * NUL when not NULL.  The server grants access to these keys only. */
int image_key_check(const char *s, size_t len, char hex[65]);

#endif
