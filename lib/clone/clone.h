/* clone/clone.h - stream a disk into a store as a chunked image.
 *
 * A planner walks the source's extents and hands every chunk that may hold
 * data to worker threads; each worker reads its chunk, drops it if it is
 * all zeros, hashes it, compresses it when that pays and uploads it unless
 * the store has it already.  Results are put back in disk order through a
 * bounded window, so memory is jobs x 2 chunk buffers plus the window's
 * small records, whatever the disk's size.  The manifest is written last.
 *
 * Run again on an image that exists, it is an incremental sync: chunks the
 * store holds are not sent, the result is compared with the previous
 * generation (changed chunks and bytes), and with use_changes a source
 * that tracks changes (an NBD dirty bitmap) is read only where it
 * changed. */
#ifndef FERRY_CLONE_H
#define FERRY_CLONE_H

#include <stdatomic.h>
#include <stdint.h>

#include "image/codec.h"
#include "image/image.h"

struct source;
struct store;

struct clone_stats {
  uint64_t disk_size;
  uint64_t chunks;             /* chunks on the disk */
  uint64_t scanned_bytes;      /* disk offsets dealt with so far */
  uint64_t hole_bytes;         /* skipped without reading (holes) */
  uint64_t read_bytes;         /* read from the source */
  uint64_t zero_chunks;        /* all-zero chunks (holes or read) */
  uint64_t data_chunks;        /* non-zero chunks */
  uint64_t data_bytes;         /* their plain size */
  uint64_t sent_chunks;        /* uploaded by this run */
  uint64_t sent_bytes;         /* bytes uploaded (stored size) */
  uint64_t reused_chunks;      /* already in the store: not sent again */
  uint64_t reused_bytes;       /* their plain size */
  uint64_t alloc_bytes;        /* bytes to read: chunks touching data */
  uint64_t carried_chunks;     /* unchanged per the source: not read */
  uint64_t changed_chunks;     /* differ from the previous generation */
  uint64_t changed_bytes;      /* their plain size */
  int incremental;             /* a previous generation was compared */
  double seconds;
  int unchanged;               /* the store already held this generation */
  struct image_manifest manifest;
};

struct clone_opts {
  struct source *src;
  struct store *store;
  uint32_t chunk_size;               /* 0: IMAGE_CHUNK_DEFAULT */
  enum chunk_encoding enc;
  int level;                         /* compression level, 0: default */
  unsigned jobs;                     /* worker threads, 0: default */
  unsigned batch;                    /* chunks per worker batch, 0: auto */
  uint64_t max_rate;                 /* bytes/s sent, 0: unlimited */
  /* set to stop early (optional); an atomic, so a signal handler or
   * another thread may set it while the workers read it */
  atomic_int *cancel;
  /* Trust the source's changed-block tracking: chunks it reports
   * unchanged since the previous generation are taken from that
   * generation's table without being read. */
  int use_changes;
  /* Called about once a second from another thread, and once at the end. */
  void (*progress)(void *opaque, const struct clone_stats *st);
  void *opaque;
};

#define CLONE_JOBS_DEFAULT 4
#define CLONE_JOBS_MAX 64
/* A worker reads a batch of chunks and hashes them together; the default
 * batch (4) gets ~2.4x OpenSSL's SHA-256 per core from the AVX-512 or AVX2
 * multi-buffer code while memory stays jobs x 5 chunks (80 MiB at the
 * defaults): docs/PERFORMANCE.md. */
#define CLONE_BATCH_DEFAULT 4
#define CLONE_BATCH_MAX 16

/* Clone o->src into o->store.  0 with *st filled, or -1 with an error;
 * after a failure or a kill, running it again sends only what is
 * missing. */
int clone_run(const struct clone_opts *o, struct clone_stats *st);

#endif
