/* formats/gce.h - the tar pieces unit tests check against GNU tar. */
#ifndef FERRY_GCE_H
#define FERRY_GCE_H

#include <stddef.h>
#include <stdint.h>

/* Octal with a NUL when it fits size - 1 digits, else base-256. */
void tar_number(char *field, size_t size, uint64_t v);

/* Fill in the checksum of a 512-byte header. */
void tar_checksum(void *header);

/* disk.raw's size for a disk: a whole number of GiB. */
uint64_t gce_raw_size(uint64_t disk_size);

#endif
