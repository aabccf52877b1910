/* formats/vhd.h - the VHD pieces unit tests check against the specification. */
#ifndef FERRY_VHD_H
#define FERRY_VHD_H

#include <stddef.h>
#include <stdint.h>

/* VHD spec, Appendix "CHS Calculation". */
void vhd_geometry(uint64_t total_sectors, uint16_t *cylinders,
                  uint8_t *heads, uint8_t *sectors_per_track);

/* One's complement of the byte sum (footer and dynamic header). */
uint32_t vhd_checksum(const void *buf, size_t len);

#endif
