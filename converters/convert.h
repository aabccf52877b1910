/* convert.h - what ferry-convert's two modes report. */
#ifndef FERRY_CONVERT_H
#define FERRY_CONVERT_H

#include <stdint.h>

#include "hash/digest.h"
#include "image/image.h"
#include "output.h"

struct store;
struct format_ops;

struct convert_result {
  uint64_t data_chunks, zero_bytes, fetched;
  uint64_t output_bytes;
  uint8_t output_digest[DIGEST_LEN];
  double seconds;
};

struct verify_result {
  uint64_t virtual_size;       /* the disk size the output declares */
  uint64_t output_bytes;       /* the output object's size */
  double seconds;
};

/* Read key in dst as fmt and check every byte of the disk it holds
 * against the image m in src: the data chunks by their digests, the rest
 * as zeros.  -1 with an error naming the first differing disk offset, or
 * what is damaged in the output's structure. */
int verify_output(struct store *src, const struct image_manifest *m,
                  const struct format_ops *fmt, struct store *dst,
                  const char *key, int quiet, struct verify_result *res);

#endif
