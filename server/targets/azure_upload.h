/* azure_upload.h - a managed disk's upload: the fixed VHD streamed from
 * the store into the disk's SAS URL (beginGetAccess), Put Page of its
 * non-zero pages only. */
#ifndef FERRY_AZURE_UPLOAD_H
#define FERRY_AZURE_UPLOAD_H

#include <stdint.h>

struct task_ctx;

struct azure_upload_stats {
  uint64_t sent;             /* bytes sent with Put Page */
  uint64_t requests;         /* Put Page calls */
  uint64_t already;          /* data bytes found written by an earlier run */
};

/* Write the object at src (a store URL, read in ranges: never staged
 * whole) of size bytes (a multiple of 512) into the page blob at sas
 * (the disk's write SAS URL; never logged or shown).  With resume, the
 * page ranges the blob already holds (an earlier run's Put Pages, each
 * of which landed whole) are not sent again.  what names the disk in
 * events and messages.  0, or -1 with an error. */
int azure_upload(struct task_ctx *t, const char *what, const char *sas,
                 const char *src, uint64_t size, int resume,
                 struct azure_upload_stats *st);

/* Size of the object at src (a store URL).  0 or -1. */
int azure_object_size(const char *src, uint64_t *size);

#endif
