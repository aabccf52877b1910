/* store/upload_pool.h - upload the parts of one large object in parallel with
 * bounded memory.
 *
 * A store writer fills a job's buffer, submits it and gets another; the
 * pool's threads send submitted jobs through the backend's upload
 * function.  At most threads + 1 buffers exist, so memory is
 * (threads + 1) x part size whatever the object's size.  Every thread has
 * its own HTTP handle (http.h), so each keeps its connection. */
#ifndef FERRY_UPLOAD_POOL_H
#define FERRY_UPLOAD_POOL_H

#include <stddef.h>
#include <stdint.h>

struct upload_job {
  void *buf;
  size_t len;                      /* bytes filled */
  size_t cap;                      /* bytes allocated */
  uint64_t offset;                 /* where the bytes go in the object */
  uint32_t number;                 /* part or block number, from 1 */
};

/* Upload j; 0, or -1 with an error (the pool then stops). */
typedef int (*upload_fn)(void *opaque, struct upload_job *j);

/* threads 0 uploads in the caller's thread at submit. */
struct upload_pool *upload_pool_create(unsigned threads, upload_fn fn,
                                       void *opaque);

/* A free job with an empty buffer of at least cap bytes (waits for one
 * when all are in flight); NULL with an error on OOM or when an upload
 * failed. */
struct upload_job *upload_pool_get(struct upload_pool *p, size_t cap);

/* Hand j to the pool; -1 with the first upload's error if one failed. */
int upload_pool_submit(struct upload_pool *p, struct upload_job *j);

/* Give an unused job back. */
void upload_pool_put(struct upload_pool *p, struct upload_job *j);

/* Wait until every submitted job is done: 0, or -1 with the first
 * error. */
int upload_pool_finish(struct upload_pool *p);

/* Stop (queued jobs are dropped, running ones finish), free all; NULL
 * ok. */
void upload_pool_close(struct upload_pool *p);

#endif
