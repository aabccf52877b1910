/* formats/qcow2.h - the qcow2 layout, computed before any data is written (unit
 * tests check it). */
#ifndef FERRY_QCOW2_H
#define FERRY_QCOW2_H

#include <stdint.h>

#include "image/image.h"

struct qcow2_layout {
  uint64_t size;                  /* virtual size */
  uint64_t l1_size;               /* L1 entries */
  uint64_t l1_clusters, l2_tables;
  uint64_t rt_clusters, rb_clusters;   /* refcount table and blocks */
  uint64_t meta_clusters;         /* header + tables */
  uint64_t rt_offset, rb_offset, l1_offset, l2_offset;
  uint64_t data_start;            /* a multiple of the chunk size */
  uint64_t data_chunks;
  uint64_t chunk_clusters;        /* clusters per chunk */
  uint64_t last_clusters;         /* clusters of the last data chunk */
  uint64_t file_size;
};

void qcow2_layout(const struct image_manifest *m, const uint8_t *map,
                  struct qcow2_layout *l);

#endif
