/* store/grant.h - a store reached through grants: no credentials here.
 *
 * A source server holds no cloud keys.  For each object it is about to
 * write or read, this store asks ferry-server for a grant (store.h's
 * grant op, which the server runs with its own credentials: a presigned
 * URL or a per-blob SAS for that one key, lasting minutes) and sends the
 * request straight to the object store with it.  Listings come from the
 * server, limited to the image's own prefix.  A grant near its end is
 * renewed before use; one the store refuses (403: it expired on the way,
 * or the clock moved) is renewed once and the request sent again.
 * Nothing is ever deleted.  docs/STORES.md, "Grants". */
#ifndef FERRY_STORE_GRANT_H
#define FERRY_STORE_GRANT_H

#include <jansson.h>

#include "store/store.h"

/* How the store reaches the server: method on path, relative to the
 * task ("grants", "objects?prefix=..."), with a JSON body or NULL.  The
 * HTTP status with *resp (NULL when none), or -1 with an error when the
 * server could not be reached; for a status of 400 or more, an error
 * holding the server's message. */
typedef long (*store_grant_call_fn)(void *opaque, const char *method,
                                    const char *path, json_t *body,
                                    json_t **resp);

/* The store for the image at url (the URL names it in messages; no
 * request goes to it without a grant).  Caller closes. */
struct store *store_grant_open(const char *url, store_grant_call_fn call,
                               void *opaque);

/* Most keys in one grants request (the server refuses more). */
#define STORE_GRANT_BATCH_MAX 64

#endif
