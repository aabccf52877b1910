/* formats/vhd.c - Virtual Hard Disk images, fixed (Azure) and dynamic (AWS).
 *
 * Follows Microsoft's "Virtual Hard Disk Image Format Specification"
 * (version 1.0, 2006; "VHD spec" below).  All fields are big-endian.
 *
 * Fixed ("vhd"): the disk's bytes, rounded up to a whole MiB as Azure
 * requires, then the 512-byte hard disk footer.  Written front to back, so
 * to azure:// it goes out as a page blob: zero runs are never sent.
 *
 * Dynamic ("vhd-dynamic"): a copy of the footer, the dynamic disk header,
 * the block allocation table (BAT), the allocated 2 MiB blocks (each a
 * sector bitmap and the data) in disk order, and the footer.  A block is
 * allocated when a chunk that overlaps it holds data; the BAT is computed
 * from the image's allocation map before any data arrives.
 *
 * The creator application is "frry".  qemu up to 9.x sizes VHDs from
 * unknown creators by their CHS geometry; open ferry's VHDs in qemu with
 * force_size=on (docs/FORMATS.md).  Hyper-V and Azure use the current size. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bytes.h"
#include "util/error.h"
#include "format.h"
#include "instream.h"
#include "output.h"
#include "formats/vhd.h"

extern const struct format_ops format_vhd;
extern const struct format_ops format_vhd_dynamic;

/* VHD spec, "Hard Disk Footer Format". */
struct vhd_footer {
  char cookie[8];                  /* "conectix" */
  uint32_t features;               /* bit 1 (reserved) is always set */
  uint32_t version;                /* 0x00010000 */
  uint64_t data_offset;            /* dynamic header; ~0 when fixed */
  uint32_t timestamp;              /* seconds since 2000-01-01 00:00 UTC */
  char creator_app[4];
  uint32_t creator_version;
  uint32_t creator_os;
  uint64_t original_size;
  uint64_t current_size;
  uint16_t cylinders;
  uint8_t heads;
  uint8_t sectors_per_track;
  uint32_t disk_type;
  uint32_t checksum;
  uint8_t uuid[16];
  uint8_t saved_state;
  uint8_t reserved[427];
} __attribute__((packed));
_Static_assert(sizeof(struct vhd_footer) == 512, "VHD footer is 512 bytes");

/* VHD spec, "Dynamic Disk Header Format". */
struct vhd_dyn_header {
  char cookie[8];                  /* "cxsparse" */
  uint64_t data_offset;            /* unused: ~0 */
  uint64_t table_offset;           /* the BAT */
  uint32_t header_version;         /* 0x00010000 */
  uint32_t max_table_entries;
  uint32_t block_size;
  uint32_t checksum;
  uint8_t parent_uuid[16];
  uint32_t parent_timestamp;
  uint32_t reserved1;
  uint8_t parent_name[512];
  uint8_t parent_locators[8 * 24];
  uint8_t reserved2[256];
} __attribute__((packed));
_Static_assert(sizeof(struct vhd_dyn_header) == 1024,
               "VHD dynamic disk header is 1024 bytes");

#define VHD_COOKIE "conectix"
#define VHD_DYN_COOKIE "cxsparse"
#define VHD_FEATURES_RESERVED 0x00000002   /* "must always be set" */
#define VHD_VERSION 0x00010000
#define VHD_DISK_FIXED 2                   /* "Disk Type" */
#define VHD_DISK_DYNAMIC 3
#define VHD_CREATOR_OS_WI2K 0x5769326b     /* "Wi2k": the spec's Windows */
#define VHD_EPOCH 946684800                /* 2000-01-01 00:00:00 UTC */
#define VHD_BAT_UNUSED 0xffffffffu         /* "BAT" */
#define VHD_BLOCK_SIZE (2u << 20)          /* the spec's default, 2 MiB */
#define VHD_SECTOR 512
#define VHD_DYN_HEADER_OFF 512
#define VHD_BAT_OFF (512 + 1024)

/* VHD spec, Appendix "CHS Calculation": the geometry for a disk of
 * total_sectors 512-byte sectors. */
void vhd_geometry(uint64_t total_sectors, uint16_t *cylinders,
                  uint8_t *heads, uint8_t *sectors_per_track)
{
  uint64_t spt, h, cth;

  if (total_sectors > 65535ull * 16 * 255)
    total_sectors = 65535ull * 16 * 255;
  if (total_sectors >= 65535ull * 16 * 63) {
    spt = 255;
    h = 16;
    cth = total_sectors / spt;
  } else {
    spt = 17;
    cth = total_sectors / spt;
    h = (cth + 1023) / 1024;
    if (h < 4)
      h = 4;
    if (cth >= h * 1024 || h > 16) {
      spt = 31;
      h = 16;
      cth = total_sectors / spt;
    }
    if (cth >= h * 1024) {
      spt = 63;
      h = 16;
      cth = total_sectors / spt;
    }
  }
  *cylinders = (uint16_t)(cth / h);
  *heads = (uint8_t)h;
  *sectors_per_track = (uint8_t)spt;
}

/* VHD spec: "the one's complement of the sum of all the bytes in the
 * footer without the checksum field" (the same rule for the header). */
uint32_t vhd_checksum(const void *buf, size_t len)
{
  const uint8_t *p = buf;
  uint32_t sum = 0;
  size_t i;

  for (i = 0; i < len; i++)
    sum += p[i];
  return ~sum;
}

/* A checksum over buf with its checksum field (at field) taken as zero. */
static uint32_t checksum_without(const void *buf, size_t len, size_t field)
{
  uint8_t copy[1024];

  memcpy(copy, buf, len);
  memset(copy + field, 0, 4);
  return vhd_checksum(copy, len);
}

static void make_footer(struct vhd_footer *f, const struct image_manifest *m,
                        uint64_t size, uint32_t type)
{
  uint8_t d[DIGEST_LEN], heads, spt;
  time_t now = time(NULL);
  uint16_t cylinders;

  memset(f, 0, sizeof *f);
  memcpy(f->cookie, VHD_COOKIE, 8);
  f->features = htobe32(VHD_FEATURES_RESERVED);
  f->version = htobe32(VHD_VERSION);
  f->data_offset = htobe64(type == VHD_DISK_FIXED ? UINT64_MAX
                                                  : VHD_DYN_HEADER_OFF);
  f->timestamp = htobe32(now > VHD_EPOCH ? (uint32_t)(now - VHD_EPOCH) : 0);
  memcpy(f->creator_app, "frry", 4);
  f->creator_version = htobe32(0x00000001);       /* ferry 0.1 */
  f->creator_os = htobe32(VHD_CREATOR_OS_WI2K);
  f->original_size = htobe64(size);
  f->current_size = htobe64(size);
  vhd_geometry(size / VHD_SECTOR, &cylinders, &heads, &spt);
  f->cylinders = htobe16(cylinders);
  f->heads = heads;
  f->sectors_per_track = spt;
  f->disk_type = htobe32(type);
  /* a stable identifier: the same image converted again gets the same
   * one, with RFC 4122 version 4 bits set */
  digest_buf(m->image_digest, DIGEST_LEN, d);
  memcpy(f->uuid, d, 16);
  f->uuid[6] = (uint8_t)((f->uuid[6] & 0x0f) | 0x40);
  f->uuid[8] = (uint8_t)((f->uuid[8] & 0x3f) | 0x80);
  f->uuid[0] ^= (uint8_t)type;
  f->checksum = htobe32(vhd_checksum(f, sizeof *f));
}

/* Check a footer read from in at off; its size in *size. */
static int check_footer(const struct vhd_footer *f, struct instream *in,
                        uint64_t off, uint32_t want_type, uint64_t *size)
{
  const char *name = instream_name(in);

  if (memcmp(f->cookie, VHD_COOKIE, 8) != 0) {
    ferry_error("%s has no VHD footer at offset %" PRIu64 " (no "
                "\"conectix\" cookie): it is not a VHD or it is truncated",
                name, off);
    return -1;
  }
  if (be32toh(f->checksum) !=
      checksum_without(f, sizeof *f, offsetof(struct vhd_footer, checksum))) {
    ferry_error("%s: the VHD footer at offset %" PRIu64 " fails its "
                "checksum: the output is damaged", name, off);
    return -1;
  }
  if (be32toh(f->disk_type) != want_type) {
    ferry_error("%s is a VHD of disk type %" PRIu32 ", not %s", name,
                be32toh(f->disk_type),
                want_type == VHD_DISK_FIXED ? "fixed (2)" : "dynamic (3)");
    return -1;
  }
  *size = be64toh(f->current_size);
  if (*size % VHD_SECTOR != 0) {
    ferry_error("%s: the VHD size %" PRIu64 " is not a whole number of "
                "sectors: the output is damaged", name, *size);
    return -1;
  }
  return 0;
}

/* ---- fixed ---------------------------------------------------------- */

static uint64_t fixed_virtual_size(const struct image_manifest *m)
{
  return round_up(m->disk_size, MIB(1));   /* Azure: a whole MiB */
}

static uint64_t fixed_output_size(const struct image_manifest *m,
                                  const uint8_t *map)
{
  (void)map;
  return fixed_virtual_size(m) + sizeof(struct vhd_footer);
}

static struct format_writer *fixed_open(struct output *out,
                                        const struct image_manifest *m,
                                        const uint8_t *map,
                                        const struct format_opts *opts)
{
  return format_writer_new(&format_vhd, out, m, map, opts);
}

static int fixed_data(struct format_writer *w, uint64_t offset,
                      const void *buf, size_t len,
                      const uint8_t digest[DIGEST_LEN])
{
  (void)offset;
  /* zero pages inside data chunks are not sent either (page blob) */
  return output_write_sparse(w->out, buf, len, digest, 64u << 10);
}

static int fixed_finish(struct format_writer *w)
{
  uint64_t size = fixed_virtual_size(w->m);
  struct vhd_footer f;

  if (output_zero(w->out, size - w->m->disk_size) == -1)
    return -1;
  make_footer(&f, w->m, size, VHD_DISK_FIXED);
  return output_write(w->out, &f, sizeof f);
}

static struct format_reader *fixed_reader_open(struct instream *in,
                                               const struct image_manifest *m)
{
  uint64_t len = instream_size(in), size;
  struct vhd_footer f;

  if (len < sizeof f) {
    ferry_error("%s is %" PRIu64 " bytes, too short for a VHD",
                instream_name(in), len);
    return NULL;
  }
  if (instream_pread(in, len - sizeof f, &f, sizeof f) == -1 ||
      check_footer(&f, in, len - sizeof f, VHD_DISK_FIXED, &size) == -1)
    return NULL;
  if (size != len - sizeof f) {
    ferry_error("%s: the fixed VHD footer says %" PRIu64 " bytes of disk, "
                "the file holds %" PRIu64 ": the output is truncated or "
                "damaged", instream_name(in), size, len - sizeof f);
    return NULL;
  }
  return format_reader_new(&format_vhd, in, m, size);
}

const struct format_ops format_vhd = {
  .name = "vhd",
  .description = "fixed VHD, size a whole MiB (Azure page blob, AWS)",
  .extension = ".vhd",
  .page_blob = 1,
  .virtual_size = fixed_virtual_size,
  .output_size = fixed_output_size,
  .open = fixed_open,
  .data = fixed_data,
  .zero = format_zero_in_place,
  .finish = fixed_finish,
  .close = format_free_writer,
  .reader_open = fixed_reader_open,
  .read = format_read_in_place,
  .reader_end = format_reader_end_none,
  .reader_close = format_free_reader,
};

/* ---- dynamic -------------------------------------------------------- */

/* The layout both the writer and output_size compute from the map. */
struct dyn_layout {
  uint64_t size;              /* virtual size */
  uint64_t entries;           /* BAT entries */
  uint64_t bat_bytes;         /* BAT, padded to a sector */
  uint64_t data_start;        /* first block */
  uint64_t allocated;         /* blocks holding data */
  uint64_t file_size;
};

static uint64_t dyn_virtual_size(const struct image_manifest *m)
{
  return round_up(m->disk_size, VHD_SECTOR);
}

/* Whether block b overlaps a chunk that holds data. */
static int block_allocated(const struct image_manifest *m,
                           const uint8_t *map, uint64_t b)
{
  uint64_t first = b * VHD_BLOCK_SIZE;
  uint64_t last = first + VHD_BLOCK_SIZE - 1, i;

  if (first >= m->disk_size)
    return 0;
  if (last >= m->disk_size)
    last = m->disk_size - 1;
  for (i = first / m->chunk_size; i <= last / m->chunk_size; i++)
    if (alloc_map_test(map, i))
      return 1;
  return 0;
}

static void dyn_layout(const struct image_manifest *m, const uint8_t *map,
                       struct dyn_layout *l)
{
  uint64_t b;

  l->size = dyn_virtual_size(m);
  l->entries = div_round_up(l->size, VHD_BLOCK_SIZE);
  l->bat_bytes = round_up(l->entries * 4, VHD_SECTOR);
  l->data_start = VHD_BAT_OFF + l->bat_bytes;
  l->allocated = 0;
  for (b = 0; b < l->entries; b++)
    l->allocated += (uint64_t)block_allocated(m, map, b);
  l->file_size = l->data_start +
                 l->allocated * (VHD_SECTOR + VHD_BLOCK_SIZE) +
                 sizeof(struct vhd_footer);
}

static uint64_t dyn_output_size(const struct image_manifest *m,
                                const uint8_t *map)
{
  struct dyn_layout l;

  dyn_layout(m, map, &l);
  return l.file_size;
}

struct dyn_writer {
  struct format_writer w;
  struct dyn_layout l;
  struct vhd_footer footer;   /* written first and last, the same bytes */
  uint64_t pos;               /* disk bytes consumed */
};

static int write_bat(struct dyn_writer *dw)
{
  uint8_t buf[4096];
  uint64_t b, next = dw->l.data_start / VHD_SECTOR;
  size_t n = 0;

  for (b = 0; b < dw->l.entries; b++) {
    if (block_allocated(dw->w.m, dw->w.map, b)) {
      put_be32(buf + n, (uint32_t)next);
      next += (VHD_SECTOR + VHD_BLOCK_SIZE) / VHD_SECTOR;
    } else
      put_be32(buf + n, VHD_BAT_UNUSED);
    n += 4;
    if (n == sizeof buf) {
      if (output_write(dw->w.out, buf, n) == -1)
        return -1;
      n = 0;
    }
  }
  if (output_write(dw->w.out, buf, n) == -1)
    return -1;
  /* VHD spec: the BAT is padded to a sector with unused entries */
  memset(buf, 0xff, VHD_SECTOR);
  return output_write(dw->w.out, buf,
                      (size_t)(dw->l.bat_bytes - dw->l.entries * 4));
}

static struct format_writer *dyn_open(struct output *out,
                                      const struct image_manifest *m,
                                      const uint8_t *map,
                                      const struct format_opts *opts)
{
  struct dyn_writer *dw = calloc(1, sizeof *dw);
  struct vhd_dyn_header h;

  if (dw == NULL) {
    ferry_error("out of memory");
    return NULL;
  }
  dw->w = (struct format_writer){ .ops = &format_vhd_dynamic, .out = out,
                                  .m = m, .map = map, .opts = *opts };
  dyn_layout(m, map, &dw->l);
  /* BAT entries are 32-bit sector offsets: the file must stay below
   * 2 TiB, which also keeps the disk within the spec's 2040 GiB */
  if (dw->l.file_size / VHD_SECTOR > UINT32_MAX) {
    ferry_error("a %" PRIu64 "-byte disk does not fit a dynamic VHD (at "
                "most 2 TiB): use vhd (fixed), vmdk or qcow2",
                m->disk_size);
    free(dw);
    return NULL;
  }
  make_footer(&dw->footer, m, dw->l.size, VHD_DISK_DYNAMIC);
  memset(&h, 0, sizeof h);
  memcpy(h.cookie, VHD_DYN_COOKIE, 8);
  h.data_offset = htobe64(UINT64_MAX);
  h.table_offset = htobe64(VHD_BAT_OFF);
  h.header_version = htobe32(VHD_VERSION);
  h.max_table_entries = htobe32((uint32_t)dw->l.entries);
  h.block_size = htobe32(VHD_BLOCK_SIZE);
  h.checksum = htobe32(vhd_checksum(&h, sizeof h));
  if (output_write(out, &dw->footer, sizeof dw->footer) == -1 ||
      output_write(out, &h, sizeof h) == -1 || write_bat(dw) == -1) {
    free(dw);
    return NULL;
  }
  return &dw->w;
}

/* Append the next len disk bytes (buf NULL: zeros) at dw->pos, starting
 * each allocated block with its sector bitmap and skipping the others. */
static int dyn_emit(struct dyn_writer *dw, const uint8_t *buf, uint64_t len)
{
  static const uint8_t bitmap[VHD_SECTOR] = { [0 ... VHD_SECTOR - 1] = 0xff };

  while (len > 0) {
    uint64_t b = dw->pos / VHD_BLOCK_SIZE, in = dw->pos % VHD_BLOCK_SIZE;
    uint64_t n = VHD_BLOCK_SIZE - in;
    int r;

    if (n > len)
      n = len;
    if (block_allocated(dw->w.m, dw->w.map, b)) {
      /* every sector of an allocated block is marked present, as qemu
       * and Hyper-V write them: the block holds all its bytes */
      if (in == 0 && output_write(dw->w.out, bitmap, sizeof bitmap) == -1)
        return -1;
      r = buf ? output_write(dw->w.out, buf, (size_t)n)
              : output_zero(dw->w.out, n);
      if (r == -1)
        return -1;
    } else if (buf) {
      ferry_error("internal error: data at disk offset %" PRIu64 " in a "
                  "block the allocation map says is empty", dw->pos);
      return -1;
    }
    if (buf)
      buf += n;
    dw->pos += n;
    len -= n;
  }
  return 0;
}

static int dyn_data(struct format_writer *w, uint64_t offset, const void *buf,
                    size_t len, const uint8_t digest[DIGEST_LEN])
{
  (void)offset;
  (void)digest;
  return dyn_emit((struct dyn_writer *)w, buf, len);
}

static int dyn_zero(struct format_writer *w, uint64_t offset, uint64_t len)
{
  (void)offset;
  return dyn_emit((struct dyn_writer *)w, NULL, len);
}

static int dyn_finish(struct format_writer *w)
{
  struct dyn_writer *dw = (struct dyn_writer *)w;

  /* the last block is written whole */
  if (dyn_emit(dw, NULL, round_up(dw->pos, VHD_BLOCK_SIZE) - dw->pos) == -1)
    return -1;
  return output_write(w->out, &dw->footer, sizeof dw->footer);
}

struct dyn_reader {
  struct format_reader r;
  uint64_t bat_off, entries, block_size, bitmap_size, data_end;
  uint64_t checked;           /* the block whose bitmap was checked last */
};

static struct format_reader *dyn_reader_open(struct instream *in,
                                             const struct image_manifest *m)
{
  uint64_t len = instream_size(in), size, size2, hoff, bat_bytes;
  const char *name = instream_name(in);
  struct vhd_footer f, tail;
  struct vhd_dyn_header h;
  struct dyn_reader *dr;
  uint32_t bs;

  if (len < 2 * sizeof f + sizeof h) {
    ferry_error("%s is %" PRIu64 " bytes, too short for a dynamic VHD",
                name, len);
    return NULL;
  }
  if (instream_pread(in, 0, &f, sizeof f) == -1 ||
      check_footer(&f, in, 0, VHD_DISK_DYNAMIC, &size) == -1 ||
      instream_pread(in, len - sizeof tail, &tail, sizeof tail) == -1 ||
      check_footer(&tail, in, len - sizeof tail, VHD_DISK_DYNAMIC,
                   &size2) == -1)
    return NULL;
  if (memcmp(&f, &tail, sizeof f) != 0) {
    ferry_error("%s: the footer copy at the start differs from the footer "
                "at the end: the output is damaged", name);
    return NULL;
  }
  hoff = be64toh(f.data_offset);
  if (hoff > len - sizeof tail - sizeof h ||
      instream_pread(in, hoff, &h, sizeof h) == -1) {
    ferry_error("%s: the dynamic disk header offset %" PRIu64 " lies "
                "outside the file: the output is damaged", name, hoff);
    return NULL;
  }
  if (memcmp(h.cookie, VHD_DYN_COOKIE, 8) != 0 ||
      be32toh(h.checksum) != checksum_without(&h, sizeof h,
                                   offsetof(struct vhd_dyn_header, checksum))) {
    ferry_error("%s: the dynamic disk header at offset %" PRIu64 " is "
                "damaged (cookie or checksum)", name, hoff);
    return NULL;
  }
  bs = be32toh(h.block_size);
  if (bs < VHD_SECTOR || (bs & (bs - 1)) != 0 || bs > (256u << 20)) {
    ferry_error("%s: block size %" PRIu32 " is not a power of two from "
                "512 bytes to 256 MiB", name, bs);
    return NULL;
  }
  dr = calloc(1, sizeof *dr);
  if (dr == NULL) {
    ferry_error("out of memory");
    return NULL;
  }
  dr->block_size = bs;
  dr->bitmap_size = round_up(bs / VHD_SECTOR / 8, VHD_SECTOR);
  dr->entries = be32toh(h.max_table_entries);
  dr->bat_off = be64toh(h.table_offset);
  dr->data_end = len - sizeof tail;
  dr->checked = UINT64_MAX;
  bat_bytes = dr->entries * 4;
  if (dr->entries < div_round_up(size, bs) || dr->bat_off > dr->data_end ||
      bat_bytes > dr->data_end - dr->bat_off) {
    ferry_error("%s: the BAT (%" PRIu64 " entries at %" PRIu64 ") does not "
                "cover the %" PRIu64 "-byte disk or lies outside the file: "
                "the output is damaged", name, dr->entries, dr->bat_off,
                size);
    free(dr);
    return NULL;
  }
  dr->r.ops = &format_vhd_dynamic;
  dr->r.in = in;
  dr->r.m = m;
  dr->r.virtual_size = size;
  return &dr->r;
}

static int dyn_read(struct format_reader *r, void *buf, size_t len)
{
  struct dyn_reader *dr = (struct dyn_reader *)r;
  const char *name = instream_name(r->in);
  uint8_t *p = buf, bitmap[VHD_SECTOR];
  int any = 0;

  while (len > 0) {
    uint64_t b = r->pos / dr->block_size, in = r->pos % dr->block_size;
    uint64_t n = dr->block_size - in, off;
    uint8_t e[4];
    uint32_t sector;
    size_t i;

    if (n > len)
      n = len;
    if (instream_pread(r->in, dr->bat_off + b * 4, e, 4) == -1)
      return -1;
    sector = get_be32(e);
    if (sector == VHD_BAT_UNUSED) {
      memset(p, 0, (size_t)n);
    } else {
      off = (uint64_t)sector * VHD_SECTOR;
      if (off < dr->bat_off + dr->entries * 4 ||
          off > dr->data_end ||
          dr->bitmap_size + dr->block_size > dr->data_end - off) {
        ferry_error("%s: BAT entry %" PRIu64 " points at sector %" PRIu32
                    ", outside the data area: the output is damaged", name,
                    b, sector);
        return -1;
      }
      /* ferry marks every sector of an allocated block present */
      for (i = 0; i < dr->bitmap_size && b != dr->checked;
           i += sizeof bitmap) {
        if (instream_pread(r->in, off + i, bitmap, sizeof bitmap) == -1)
          return -1;
        if (!is_all_ones(bitmap, sizeof bitmap)) {
          ferry_error("%s: the sector bitmap of block %" PRIu64 " (at "
                      "offset %" PRIu64 ") is not all ones: the output is "
                      "damaged or was not written by ferry", name, b,
                      off + i);
          return -1;
        }
      }
      dr->checked = b;
      if (instream_pread(r->in, off + dr->bitmap_size + in, p, (size_t)n)
          == -1)
        return -1;
      any = 1;
    }
    p += n;
    r->pos += n;
    len -= n;
  }
  return any;
}

const struct format_ops format_vhd_dynamic = {
  .name = "vhd-dynamic",
  .description = "dynamic VHD, allocated blocks only (AWS ImportImage)",
  .extension = ".vhd",
  .virtual_size = dyn_virtual_size,
  .output_size = dyn_output_size,
  .open = dyn_open,
  .data = dyn_data,
  .zero = dyn_zero,
  .finish = dyn_finish,
  .close = format_free_writer,
  .reader_open = dyn_reader_open,
  .read = dyn_read,
  .reader_end = format_reader_end_none,
  .reader_close = format_free_reader,
};
