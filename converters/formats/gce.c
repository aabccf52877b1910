/* formats/gce.c - a Compute Engine image: disk.raw in a GNU tar, gzip-compressed.
 *
 * GCP's "import an existing image" requirements: one file named disk.raw
 * holding the disk, its size a whole multiple of 1 GiB, archived in the
 * GNU tar format (tar --format=oldgnu), compressed with gzip.  GCP's own
 * instructions build it with `tar --format=oldgnu -Sczf`: disk.raw is
 * stored as a GNU sparse member, so a mostly empty disk stays small.
 *
 * The archive, as GNU tar 1.34 writes it (GNU tar manual, "Basic Tar
 * Format" and "Sparse Formats: Old GNU Format"):
 *
 *   header 'S'        disk.raw; size = bytes stored; realsize = size of
 *                     disk.raw; the first 4 (offset, numbytes) pairs of
 *                     the sparse map; isextended
 *   extension headers 21 more pairs each, while isextended
 *   data              the map's regions, back to back
 *   two zero blocks   end of archive, then zeros to a 10 KiB record
 *
 * The regions are the runs of chunks that hold data (the allocation map
 * gives them before any data arrives); a disk.raw without holes is stored
 * as a plain regular member, as GNU tar does.  Numbers that do not fit an
 * octal field use GNU's base-256 form.
 *
 * libarchive writes GNU tar headers but not GNU sparse members (its gnutar
 * writer has no sparse support; only its pax writer does, and GCP wants
 * oldgnu), so the headers are built here; libarchive reads the archive
 * back for --verify, and GNU tar is the oracle in tests/t-formats.sh.  The
 * gzip layer is zlib, deflated in parallel (pgzip.h). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <archive.h>
#include <archive_entry.h>
#include <zlib.h>

#include "bytes.h"
#include "util/error.h"
#include "format.h"
#include "formats/gce.h"
#include "instream.h"
#include "output.h"
#include "pgzip.h"

extern const struct format_ops format_gce;

#define TAR_BLOCK 512
#define TAR_RECORD (20 * TAR_BLOCK)      /* GNU tar's default blocking */
#define GCE_NAME "disk.raw"

/* GNU tar manual, "Basic Tar Format": struct posix_header, with the old
 * GNU fields (struct oldgnu_header) in place of prefix. */
struct tar_sparse {
  char offset[12];
  char numbytes[12];
} __attribute__((packed));

struct oldgnu_header {
  char name[100];
  char mode[8];
  char uid[8];
  char gid[8];
  char size[12];
  char mtime[12];
  char chksum[8];
  char typeflag;
  char linkname[100];
  char magic[8];                   /* "ustar  \0": old GNU */
  char uname[32];
  char gname[32];
  char devmajor[8];
  char devminor[8];
  char atime[12];
  char ctime[12];
  char offset[12];
  char longnames[4];
  char unused;
  struct tar_sparse sp[4];         /* SPARSES_IN_OLDGNU_HEADER */
  char isextended;
  char realsize[12];
  char pad[17];
} __attribute__((packed));
_Static_assert(sizeof(struct oldgnu_header) == TAR_BLOCK,
               "a tar header is one block");
_Static_assert(offsetof(struct oldgnu_header, sp) == 386,
               "old GNU sparse map at 386");
_Static_assert(offsetof(struct oldgnu_header, realsize) == 483,
               "old GNU realsize at 483");

struct sparse_ext {
  struct tar_sparse sp[21];        /* SPARSES_IN_SPARSE_HEADER */
  char isextended;
  char pad[7];
} __attribute__((packed));
_Static_assert(sizeof(struct sparse_ext) == TAR_BLOCK,
               "a sparse extension header is one block");

#define GNUTYPE_SPARSE 'S'
#define REGTYPE '0'

/* A tar number field of size bytes: octal digits and a NUL when they fit,
 * otherwise GNU's base-256 (first byte 0x80, then big-endian binary). */
void tar_number(char *field, size_t size, uint64_t v)
{
  size_t i;

  if (size - 1 >= 22 || v < (1ull << (3 * (size - 1)))) {
    for (i = size - 1; i-- > 0; v >>= 3)
      field[i] = (char)('0' + (v & 7));
    field[size - 1] = '\0';
    return;
  }
  memset(field, 0, size);
  field[0] = (char)0x80;
  for (i = size; i-- > 1 && v; v >>= 8)
    field[i] = (char)(v & 0xff);
}

/* "Basic Tar Format": the checksum is the sum of the header's bytes with
 * the chksum field taken as eight spaces; GNU tar stores six octal digits,
 * a NUL and a space. */
void tar_checksum(void *header)
{
  struct oldgnu_header *h = header;
  const uint8_t *p = header;
  unsigned sum = 0;
  size_t i;

  memset(h->chksum, ' ', sizeof h->chksum);
  for (i = 0; i < TAR_BLOCK; i++)
    sum += p[i];
  tar_number(h->chksum, 7, sum);
  h->chksum[7] = ' ';
}

uint64_t gce_raw_size(uint64_t disk_size)
{
  return round_up(disk_size, GIB(1));      /* GCP: whole GiB */
}

static uint64_t gce_virtual_size(const struct image_manifest *m)
{
  return gce_raw_size(m->disk_size);
}

static uint64_t gce_output_size(const struct image_manifest *m,
                                const uint8_t *map)
{
  (void)m;
  (void)map;
  return 0;                        /* compressed: known at the end */
}

/* The regions of disk.raw the archive stores: runs of data chunks, the
 * last one ending at the disk's end rounded to a tar block. */
struct region_iter {
  const struct image_manifest *m;
  const uint8_t *map;
  uint64_t next;                   /* chunk */
};

static int next_region(struct region_iter *it, uint64_t *off, uint64_t *len)
{
  const struct image_manifest *m = it->m;
  uint64_t i = it->next, j, end;

  while (i < m->chunk_count && !alloc_map_test(it->map, i))
    i++;
  if (i == m->chunk_count) {
    it->next = i;
    return 0;
  }
  for (j = i; j < m->chunk_count && alloc_map_test(it->map, j); j++)
    ;
  it->next = j;
  end = j == m->chunk_count ? round_up(m->disk_size, TAR_BLOCK)
                            : j * m->chunk_size;
  *off = i * m->chunk_size;
  *len = end - *off;
  return 1;
}

struct gce_writer {
  struct format_writer w;
  struct pgzip *z;
  uint64_t raw_size;
  uint64_t stored;                 /* data bytes in the archive */
  int sparse;
};

/* The header block(s) of disk.raw. */
static int write_headers(struct gce_writer *gw)
{
  struct region_iter it = { gw->w.m, gw->w.map, 0 };
  struct oldgnu_header h;
  struct sparse_ext ext;
  struct tar_sparse *sp;
  uint64_t off, len, count = 0, last_end = 0, room, i;
  int more, header_done = 0;

  /* count the map: regions, plus GNU tar's closing (realsize, 0) entry
   * when disk.raw ends in a hole */
  while (next_region(&it, &off, &len)) {
    count++;
    gw->stored += len;
    last_end = off + len;
  }
  gw->sparse = !(count == 1 && gw->stored == gw->raw_size);
  if (last_end < gw->raw_size)
    count++;

  memset(&h, 0, sizeof h);
  memcpy(h.name, GCE_NAME, sizeof GCE_NAME);
  tar_number(h.mode, 8, 0644);
  tar_number(h.uid, 8, 0);
  tar_number(h.gid, 8, 0);
  tar_number(h.size, 12, gw->sparse ? gw->stored : gw->raw_size);
  tar_number(h.mtime, 12, (uint64_t)time(NULL));
  h.typeflag = gw->sparse ? GNUTYPE_SPARSE : REGTYPE;
  memcpy(h.magic, "ustar  ", 8);
  memcpy(h.uname, "root", 5);
  memcpy(h.gname, "root", 5);
  if (!gw->sparse) {
    tar_checksum(&h);
    return pgzip_write(gw->z, &h, sizeof h);
  }
  tar_number(h.realsize, 12, gw->raw_size);

  /* the map: 4 pairs in the header, 21 in each extension block */
  it.next = 0;
  sp = h.sp;
  room = 4;
  for (i = 0; i < count; i++) {
    if (!next_region(&it, &off, &len)) {
      off = gw->raw_size;
      len = 0;
    }
    tar_number(sp->offset, 12, off);
    tar_number(sp->numbytes, 12, len);
    sp++;
    if (--room > 0 && i + 1 < count)
      continue;
    more = i + 1 < count;
    if (!header_done) {
      h.isextended = (char)more;
      tar_checksum(&h);
      if (pgzip_write(gw->z, &h, sizeof h) == -1)
        return -1;
      header_done = 1;
    } else {
      ext.isextended = (char)more;
      if (pgzip_write(gw->z, &ext, sizeof ext) == -1)
        return -1;
    }
    memset(&ext, 0, sizeof ext);
    sp = ext.sp;
    room = 21;
  }
  if (!header_done) {              /* an empty disk.raw: no map at all */
    tar_checksum(&h);
    return pgzip_write(gw->z, &h, sizeof h);
  }
  return 0;
}

static void gce_close(struct format_writer *w)
{
  struct gce_writer *gw = (struct gce_writer *)w;

  if (gw == NULL)
    return;
  pgzip_close(gw->z);
  free(gw);
}

static struct format_writer *gce_open(struct output *out,
                                      const struct image_manifest *m,
                                      const uint8_t *map,
                                      const struct format_opts *opts)
{
  struct gce_writer *gw = calloc(1, sizeof *gw);

  if (gw == NULL) {
    ferry_error("out of memory");
    return NULL;
  }
  gw->w = (struct format_writer){ .ops = &format_gce, .out = out, .m = m,
                                  .map = map, .opts = *opts };
  gw->raw_size = gce_raw_size(m->disk_size);
  gw->z = pgzip_create(out, opts->pool, opts->level);
  if (gw->z == NULL || write_headers(gw) == -1) {
    gce_close(&gw->w);
    return NULL;
  }
  return &gw->w;
}

static int gce_data(struct format_writer *w, uint64_t offset, const void *buf,
                    size_t len, const uint8_t digest[DIGEST_LEN])
{
  struct gce_writer *gw = (struct gce_writer *)w;

  (void)digest;
  if (pgzip_write(gw->z, buf, len) == -1)
    return -1;
  /* the last region runs to the end of the disk's last tar block */
  if (offset + len == w->m->disk_size)
    return pgzip_write(gw->z, NULL,
                       round_up(w->m->disk_size, TAR_BLOCK) - offset - len);
  return 0;
}

static int gce_zero(struct format_writer *w, uint64_t offset, uint64_t len)
{
  struct gce_writer *gw = (struct gce_writer *)w;

  (void)offset;
  /* holes are not stored in a sparse member */
  return gw->sparse ? 0 : pgzip_write(gw->z, NULL, len);
}

static int gce_finish(struct format_writer *w)
{
  struct gce_writer *gw = (struct gce_writer *)w;
  uint64_t n;

  /* a member without holes stores disk.raw up to its GiB-rounded end */
  if (!gw->sparse && pgzip_write(gw->z, NULL, gw->raw_size -
                                 round_up(w->m->disk_size, TAR_BLOCK)) == -1)
    return -1;
  /* end of archive: two zero blocks, then zeros to a whole record */
  n = round_up(pgzip_total_in(gw->z) + 2 * TAR_BLOCK, TAR_RECORD) -
      pgzip_total_in(gw->z);
  if (pgzip_write(gw->z, NULL, n) == -1)
    return -1;
  return pgzip_finish(gw->z);
}

/* ---- reading back --------------------------------------------------- */

#define ZCHUNK (1u << 20)

struct gce_reader {
  struct format_reader r;
  struct archive *a;
  z_stream zs;
  int zs_ready, zdone;
  uint8_t *zin, *zout;
  uint64_t in_off;                 /* compressed bytes consumed */
  char err[512];                   /* our message behind libarchive's */
  const uint8_t *blk;              /* the current data block of disk.raw */
  size_t blk_len;
  uint64_t blk_off;
  int entry_done;
};

/* Decompressed bytes for libarchive: the gzip member, CRC and length
 * checked by zlib at its end; nothing may follow it. */
static la_ssize_t tar_read(struct archive *a, void *opaque,
                           const void **buf)
{
  struct gce_reader *gr = opaque;
  struct instream *in = gr->r.in;
  int r;

  (void)a;
  if (gr->zdone)
    return 0;
  gr->zs.next_out = gr->zout;
  gr->zs.avail_out = ZCHUNK;
  while (gr->zs.avail_out == ZCHUNK) {
    if (gr->zs.avail_in == 0) {
      size_t got;

      if (instream_read_some(in, gr->in_off, gr->zin, ZCHUNK, &got) == -1) {
        snprintf(gr->err, sizeof gr->err, "%s", ferry_errmsg());
        return -1;
      }
      if (got == 0) {
        snprintf(gr->err, sizeof gr->err, "%s is truncated: the gzip "
                 "stream ends before its trailer", instream_name(in));
        return -1;
      }
      gr->in_off += got;
      gr->zs.next_in = gr->zin;
      gr->zs.avail_in = (uInt)got;
    }
    r = inflate(&gr->zs, Z_NO_FLUSH);
    if (r == Z_STREAM_END) {
      if (gr->zs.avail_in != 0 || gr->in_off != instream_size(in)) {
        snprintf(gr->err, sizeof gr->err, "%s has data after the end of "
                 "its gzip stream (at offset %" PRIu64 "): the output is "
                 "damaged", instream_name(in),
                 gr->in_off - gr->zs.avail_in);
        return -1;
      }
      gr->zdone = 1;
      break;
    }
    if (r != Z_OK) {
      snprintf(gr->err, sizeof gr->err, "%s: gzip data near compressed "
               "offset %" PRIu64 " is damaged (%s)", instream_name(in),
               gr->in_off - gr->zs.avail_in,
               gr->zs.msg ? gr->zs.msg : "zlib error");
      return -1;
    }
  }
  *buf = gr->zout;
  return (la_ssize_t)(ZCHUNK - gr->zs.avail_out);
}

/* A libarchive failure as one message (ours first when we caused it). */
static void archive_fail(struct gce_reader *gr, const char *what)
{
  if (gr->err[0])
    ferry_error("%s", gr->err);
  else
    ferry_error("%s: %s: %s: the output is damaged",
                instream_name(gr->r.in), what,
                archive_error_string(gr->a) ? archive_error_string(gr->a)
                                            : "unknown error");
}

static void gce_reader_close(struct format_reader *r)
{
  struct gce_reader *gr = (struct gce_reader *)r;

  if (gr == NULL)
    return;
  if (gr->a)
    archive_read_free(gr->a);
  if (gr->zs_ready)
    inflateEnd(&gr->zs);
  free(gr->zin);
  free(gr->zout);
  free(gr);
}

static struct format_reader *gce_reader_open(struct instream *in,
                                             const struct image_manifest *m)
{
  struct gce_reader *gr = calloc(1, sizeof *gr);
  struct archive_entry *e;
  const char *name;

  if (gr == NULL)
    goto oom;
  gr->r.ops = &format_gce;
  gr->r.in = in;
  gr->r.m = m;
  gr->zin = malloc(ZCHUNK);
  gr->zout = malloc(ZCHUNK);
  if (gr->zin == NULL || gr->zout == NULL)
    goto oom;
  /* 16 + 15: a gzip wrapper, whose CRC-32 and ISIZE zlib checks */
  if (inflateInit2(&gr->zs, 16 + 15) != Z_OK) {
    ferry_error("cannot start a zlib decompressor");
    goto fail;
  }
  gr->zs_ready = 1;
  gr->a = archive_read_new();
  if (gr->a == NULL)
    goto oom;
  if (archive_read_support_format_tar(gr->a) != ARCHIVE_OK ||
      archive_read_open(gr->a, gr, NULL, tar_read, NULL) != ARCHIVE_OK) {
    archive_fail(gr, "cannot read the tar archive");
    goto fail;
  }
  if (archive_read_next_header(gr->a, &e) != ARCHIVE_OK) {
    archive_fail(gr, "cannot read the first tar header");
    goto fail;
  }
  name = archive_entry_pathname(e);
  if (archive_format(gr->a) != ARCHIVE_FORMAT_TAR_GNUTAR) {
    ferry_error("%s is a tar archive but not in the GNU format GCP "
                "requires (%s)", instream_name(in),
                archive_format_name(gr->a));
    goto fail;
  }
  if (name == NULL || strcmp(name, GCE_NAME) != 0 ||
      archive_entry_filetype(e) != AE_IFREG) {
    ferry_error("%s: the archive's first member is '%s', not the regular "
                "file " GCE_NAME " GCP requires", instream_name(in),
                name ? name : "?");
    goto fail;
  }
  if (archive_entry_size(e) < 0) {
    ferry_error("%s: " GCE_NAME " has no size", instream_name(in));
    goto fail;
  }
  gr->r.virtual_size = (uint64_t)archive_entry_size(e);
  if (gr->r.virtual_size % GIB(1) != 0) {
    ferry_error("%s: " GCE_NAME " is %" PRIu64 " bytes, not a whole number "
                "of GiB as GCP requires", instream_name(in),
                gr->r.virtual_size);
    goto fail;
  }
  return &gr->r;
oom:
  ferry_error("out of memory");
fail:
  gce_reader_close(gr ? &gr->r : NULL);
  return NULL;
}

static int gce_read(struct format_reader *r, void *buf, size_t len)
{
  struct gce_reader *gr = (struct gce_reader *)r;
  uint8_t *p = buf;
  int any = 0;

  while (len > 0) {
    uint64_t n;

    if (gr->blk_len == 0 && !gr->entry_done) {
      const void *b;
      size_t size;
      la_int64_t off;
      int rc = archive_read_data_block(gr->a, &b, &size, &off);

      if (rc == ARCHIVE_EOF)
        gr->entry_done = 1;
      else if (rc != ARCHIVE_OK) {
        archive_fail(gr, "reading " GCE_NAME);
        return -1;
      } else {
        if (off < 0 || (uint64_t)off < r->pos ||
            size > r->virtual_size - (uint64_t)off) {
          ferry_error("%s: " GCE_NAME " data at offset %" PRId64 " is out "
                      "of order or past its end: the output is damaged",
                      instream_name(r->in), (int64_t)off);
          return -1;
        }
        gr->blk = b;
        gr->blk_len = size;
        gr->blk_off = (uint64_t)off;
        continue;
      }
    }
    if (gr->blk_len > 0 && gr->blk_off == r->pos) {
      n = gr->blk_len < len ? gr->blk_len : len;
      memcpy(p, gr->blk, (size_t)n);
      gr->blk += n;
      gr->blk_len -= n;
      gr->blk_off += n;
      any = 1;
    } else {
      /* a hole up to the next block, or to the end */
      n = gr->blk_len > 0 ? gr->blk_off - r->pos : len;
      if (n > len)
        n = len;
      memset(p, 0, (size_t)n);
    }
    p += n;
    r->pos += n;
    len -= n;
  }
  return any;
}

static int gce_reader_end(struct format_reader *r)
{
  struct gce_reader *gr = (struct gce_reader *)r;
  struct archive_entry *e;
  const void *b;
  la_ssize_t n;
  int rc;

  if (gr->blk_len > 0) {
    ferry_error("%s: " GCE_NAME " holds data past its size",
                instream_name(r->in));
    return -1;
  }
  rc = archive_read_next_header(gr->a, &e);
  if (rc == ARCHIVE_OK) {
    ferry_error("%s holds a second member ('%s'): GCP requires exactly one, "
                GCE_NAME, instream_name(r->in),
                archive_entry_pathname(e) ? archive_entry_pathname(e) : "?");
    return -1;
  }
  if (rc != ARCHIVE_EOF) {
    archive_fail(gr, "after " GCE_NAME);
    return -1;
  }
  /* what libarchive left of the record must be zeros, and the gzip
   * stream must end (zlib checks its CRC-32 and length) */
  while ((n = tar_read(gr->a, gr, &b)) > 0)
    if (!buf_is_zero(b, (size_t)n)) {
      ferry_error("%s: data after the end of the tar archive: the output "
                  "is damaged", instream_name(r->in));
      return -1;
    }
  if (n < 0) {
    ferry_error("%s", gr->err);
    return -1;
  }
  return 0;
}

const struct format_ops format_gce = {
  .name = "gce",
  .description = "disk.raw in a GNU tar, gzipped (GCP image import)",
  .extension = ".tar.gz",
  .virtual_size = gce_virtual_size,
  .output_size = gce_output_size,
  .open = gce_open,
  .data = gce_data,
  .zero = gce_zero,
  .finish = gce_finish,
  .close = gce_close,
  .reader_open = gce_reader_open,
  .read = gce_read,
  .reader_end = gce_reader_end,
  .reader_close = gce_reader_close,
};
