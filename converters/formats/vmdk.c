/* formats/vmdk.c - stream-optimized VMDK (AWS ImportImage, VMware).
 *
 * Follows VMware's "Virtual Disk Format 5.0" ("VMDK spec" below), the
 * sections "Hosted Sparse Extent Header" and "Stream-Optimized Compressed
 * Sparse Extents".  All fields are little-endian.  The file is written
 * strictly front to back:
 *
 *   sector 0           sparse extent header, gdOffset = GD_AT_END
 *   sectors 1..20      embedded descriptor (createType="streamOptimized")
 *   (zeros)            up to overHead, one grain in
 *   per grain          grain marker (LBA, size) + deflated grain, padded
 *                      to a sector; all-zero grains are not written
 *   per grain table    GT marker + the GT (512 entries), after its grains
 *   GD marker + GD     one entry per grain table (0: no table, all zeros)
 *   footer marker + footer (the header with the real gdOffset)
 *   end-of-stream marker
 *
 * Grains are 64 KiB (128 sectors) and compressed independently, so a data
 * chunk's grains are deflated in parallel by the pool and written in
 * order.  Each grain is one zlib stream (RFC 1950, as VMware and qemu
 * write and read them), produced with libdeflate: whole-buffer deflate at
 * the same level gives about zlib's ratio in half its time, and grains
 * are whole buffers.  Reading back uses zlib.
 *
 * Memory: one chunk's compressed grains, one grain table and the grain
 * directory (4 bytes per 32 MiB of disk). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libdeflate.h>
#include <zlib.h>

#include "bytes.h"
#include "util/error.h"
#include "format.h"
#include "instream.h"
#include "output.h"
#include "pool.h"

extern const struct format_ops format_vmdk;

/* VMDK spec, "Hosted Sparse Extent Header" (SparseExtentHeader). */
struct vmdk_header {
  uint32_t magic;                  /* "KDMV" */
  uint32_t version;
  uint32_t flags;
  uint64_t capacity;               /* sectors */
  uint64_t grain_size;             /* sectors */
  uint64_t descriptor_offset;      /* sectors */
  uint64_t descriptor_size;        /* sectors */
  uint32_t num_gtes_per_gt;
  uint64_t rgd_offset;
  uint64_t gd_offset;
  uint64_t overhead;               /* sectors before the first grain */
  uint8_t unclean_shutdown;
  char single_end_line_char;       /* newline detection: '\n' */
  char non_end_line_char;          /* ' ' */
  char double_end_line_char1;      /* '\r' */
  char double_end_line_char2;      /* '\n' */
  uint16_t compress_algorithm;
  uint8_t pad[433];
} __attribute__((packed));
_Static_assert(sizeof(struct vmdk_header) == 512,
               "VMDK sparse extent header is one sector");

/* VMDK spec, "Stream-Optimized Compressed Sparse Extents": a metadata
 * marker is one sector; a grain marker is its first 12 bytes followed by
 * the compressed grain. */
struct vmdk_marker {
  uint64_t value;                  /* sectors of metadata, or a grain LBA */
  uint32_t size;                   /* 0, or the compressed grain's bytes */
  uint32_t type;                   /* metadata markers only */
  uint8_t pad[496];
} __attribute__((packed));
_Static_assert(sizeof(struct vmdk_marker) == 512,
               "VMDK metadata marker is one sector");
#define VMDK_GRAIN_MARKER 12       /* lba + size */

#define VMDK_MAGIC 0x564d444bu     /* "KDMV" read as little-endian */
#define VMDK_VERSION 3             /* what VMware and qemu write for
                                      stream-optimized extents */
#define VMDK_FLAG_NL_TEST (1u << 0)     /* valid newline detection */
#define VMDK_FLAG_ZERO_GTE (1u << 2)    /* GTE 1 means a zeroed grain */
#define VMDK_FLAG_COMPRESSED (1u << 16)
#define VMDK_FLAG_MARKERS (1u << 17)
#define VMDK_COMPRESS_DEFLATE 1
#define VMDK_GD_AT_END UINT64_MAX
#define VMDK_MARKER_EOS 0
#define VMDK_MARKER_GT 1
#define VMDK_MARKER_GD 2
#define VMDK_MARKER_FOOTER 3
#define VMDK_SECTOR 512u
#define VMDK_GRAIN_SECTORS 128u         /* the spec's usual 64 KiB */
#define VMDK_GRAIN (VMDK_GRAIN_SECTORS * VMDK_SECTOR)
#define VMDK_GTES 512u                  /* entries per grain table */
#define VMDK_GT_SECTORS (VMDK_GTES * 4 / VMDK_SECTOR)
#define VMDK_DESC_SECTORS 20u
#define VMDK_OVERHEAD VMDK_GRAIN_SECTORS

/* One compressed grain: marker, data, padding to a sector.  compressBound
 * is zlib's bound for a zlib stream; libdeflate's is no larger. */
#define VMDK_SLOT round_up(VMDK_GRAIN_MARKER + compressBound(VMDK_GRAIN), \
                           VMDK_SECTOR)

struct vmdk_writer {
  struct format_writer w;
  uint64_t capacity;               /* sectors */
  uint64_t gd_entries;
  uint32_t *gd;                    /* sector of each GT, host order */
  uint32_t gt[VMDK_GTES];
  uint64_t gt_index;               /* the GT being filled */
  int gt_used;
  /* the chunk being compressed */
  const uint8_t *src;
  uint64_t src_len, src_offset;
  uint8_t *slots;                  /* grains per chunk x VMDK_SLOT */
  size_t *slot_len;                /* bytes used in each slot (0: zero) */
  size_t grains;
  struct libdeflate_compressor **zc;   /* one per pool thread */
  uint8_t *pad;                    /* one zero-padded grain per thread */
};

static uint64_t vmdk_virtual_size(const struct image_manifest *m)
{
  return round_up(m->disk_size, VMDK_SECTOR);
}

static uint64_t vmdk_output_size(const struct image_manifest *m,
                                 const uint8_t *map)
{
  (void)m;
  (void)map;
  return 0;                        /* compressed: known at the end */
}

static void fill_header(struct vmdk_header *h, uint64_t capacity,
                        uint64_t gd_offset)
{
  memset(h, 0, sizeof *h);
  h->magic = htole32(VMDK_MAGIC);
  h->version = htole32(VMDK_VERSION);
  h->flags = htole32(VMDK_FLAG_NL_TEST | VMDK_FLAG_COMPRESSED |
                     VMDK_FLAG_MARKERS);
  h->capacity = htole64(capacity);
  h->grain_size = htole64(VMDK_GRAIN_SECTORS);
  h->descriptor_offset = htole64(1);
  h->descriptor_size = htole64(VMDK_DESC_SECTORS);
  h->num_gtes_per_gt = htole32(VMDK_GTES);
  h->gd_offset = htole64(gd_offset);
  h->overhead = htole64(VMDK_OVERHEAD);
  h->single_end_line_char = '\n';
  h->non_end_line_char = ' ';
  h->double_end_line_char1 = '\r';
  h->double_end_line_char2 = '\n';
  h->compress_algorithm = htole16(VMDK_COMPRESS_DEFLATE);
}

static int write_marker(struct output *out, uint64_t value, uint32_t type)
{
  struct vmdk_marker mk;

  memset(&mk, 0, sizeof mk);
  mk.value = htole64(value);
  mk.type = htole32(type);
  return output_write(out, &mk, sizeof mk);
}

/* The embedded descriptor (VMDK spec, "The Descriptor File"), padded to
 * its sectors.  CID is taken from the image digest so that the same image
 * converts to the same bytes. */
static int write_descriptor(struct vmdk_writer *vw)
{
  char desc[VMDK_DESC_SECTORS * VMDK_SECTOR], name[128];
  const char *base = strrchr(vw->w.opts.name, '/');
  uint64_t cyl = vw->capacity / (16 * 63);
  size_t i;
  int n;

  base = base ? base + 1 : vw->w.opts.name;
  /* the extent's file name is quoted: keep it printable and quote-free */
  for (i = 0; base[i] && i < sizeof name - 1; i++)
    name[i] = base[i] == '"' || (unsigned char)base[i] < 0x20 ? '_'
                                                              : base[i];
  name[i] = '\0';
  if (cyl > 16383)
    cyl = 16383;                   /* the IDE geometry limit */
  memset(desc, 0, sizeof desc);
  n = snprintf(desc, sizeof desc,
               "# Disk DescriptorFile\n"
               "version=1\n"
               "CID=%02x%02x%02x%02x\n"
               "parentCID=ffffffff\n"
               "createType=\"streamOptimized\"\n"
               "\n"
               "# Extent description\n"
               "RW %" PRIu64 " SPARSE \"%s\"\n"
               "\n"
               "# The Disk Data Base\n"
               "#DDB\n"
               "\n"
               "ddb.virtualHWVersion = \"4\"\n"
               "ddb.geometry.cylinders = \"%" PRIu64 "\"\n"
               "ddb.geometry.heads = \"16\"\n"
               "ddb.geometry.sectors = \"63\"\n"
               "ddb.adapterType = \"ide\"\n"
               "ddb.toolsVersion = \"2147483647\"\n",
               vw->w.m->image_digest[0], vw->w.m->image_digest[1],
               vw->w.m->image_digest[2], vw->w.m->image_digest[3],
               vw->capacity, name, cyl);
  if (n < 0 || (size_t)n >= sizeof desc) {
    ferry_error("VMDK descriptor too long for output name %s", name);
    return -1;
  }
  return output_write(vw->w.out, desc, sizeof desc);
}

static void vmdk_close(struct format_writer *w)
{
  struct vmdk_writer *vw = (struct vmdk_writer *)w;
  unsigned i;

  if (vw == NULL)
    return;
  for (i = 0; vw->zc && i < pool_threads(w->opts.pool); i++)
    libdeflate_free_compressor(vw->zc[i]);
  free(vw->gd);
  free(vw->slots);
  free(vw->slot_len);
  free(vw->zc);
  free(vw->pad);
  free(vw);
}

static struct format_writer *vmdk_open(struct output *out,
                                       const struct image_manifest *m,
                                       const uint8_t *map,
                                       const struct format_opts *opts)
{
  struct vmdk_writer *vw = calloc(1, sizeof *vw);
  unsigned threads = pool_threads(opts->pool);
  struct vmdk_header h;

  if (vw == NULL)
    goto oom;
  vw->w = (struct format_writer){ .ops = &format_vmdk, .out = out, .m = m,
                                  .map = map, .opts = *opts };
  vw->capacity = vmdk_virtual_size(m) / VMDK_SECTOR;
  vw->gd_entries = div_round_up(vw->capacity,
                                (uint64_t)VMDK_GTES * VMDK_GRAIN_SECTORS);
  vw->grains = m->chunk_size / VMDK_GRAIN;
  vw->gd = calloc(vw->gd_entries, sizeof *vw->gd);
  vw->slots = malloc(vw->grains * VMDK_SLOT);
  vw->slot_len = calloc(vw->grains, sizeof *vw->slot_len);
  vw->zc = calloc(threads, sizeof *vw->zc);
  vw->pad = malloc((size_t)threads * VMDK_GRAIN);
  if (vw->gd == NULL || vw->slots == NULL || vw->slot_len == NULL ||
      vw->zc == NULL || vw->pad == NULL)
    goto oom;
  fill_header(&h, vw->capacity, VMDK_GD_AT_END);
  if (output_write(out, &h, sizeof h) == -1 || write_descriptor(vw) == -1 ||
      output_zero(out, (VMDK_OVERHEAD - 1 - VMDK_DESC_SECTORS) *
                       VMDK_SECTOR) == -1) {
    vmdk_close(&vw->w);
    return NULL;
  }
  return &vw->w;
oom:
  ferry_error("out of memory");
  vmdk_close(vw ? &vw->w : NULL);
  return NULL;
}

/* Pool task: deflate grain i of the current chunk into its slot. */
static int compress_grain(void *arg, size_t i, unsigned worker)
{
  struct vmdk_writer *vw = arg;
  uint64_t off = (uint64_t)i * VMDK_GRAIN;
  const uint8_t *src = vw->src + off;
  uint8_t *slot = vw->slots + i * VMDK_SLOT;
  uint64_t lba;
  size_t zlen;

  vw->slot_len[i] = 0;
  if (off >= vw->src_len)
    return 0;
  if (vw->src_len - off < VMDK_GRAIN) {
    /* the disk's last grain: deflated whole, as readers inflate whole
     * grains (qemu requires exactly one grain of output) */
    uint8_t *pad = vw->pad + (size_t)worker * VMDK_GRAIN;

    memcpy(pad, src, (size_t)(vw->src_len - off));
    memset(pad + (vw->src_len - off), 0,
           (size_t)(VMDK_GRAIN - (vw->src_len - off)));
    src = pad;
  }
  if (buf_is_zero(src, VMDK_GRAIN))
    return 0;
  if (vw->zc[worker] == NULL) {
    vw->zc[worker] = libdeflate_alloc_compressor(vw->w.opts.level);
    if (vw->zc[worker] == NULL) {
      ferry_error("out of memory for a deflate compressor");
      return -1;
    }
  }
  zlen = libdeflate_zlib_compress(vw->zc[worker], src, VMDK_GRAIN,
                                  slot + VMDK_GRAIN_MARKER,
                                  VMDK_SLOT - VMDK_GRAIN_MARKER);
  if (zlen == 0) {
    ferry_error("deflate failed on the grain at disk offset %" PRIu64,
                vw->src_offset + off);
    return -1;
  }
  lba = (vw->src_offset + off) / VMDK_SECTOR;
  put_le64(slot, lba);
  put_le32(slot + 8, (uint32_t)zlen);
  vw->slot_len[i] = VMDK_GRAIN_MARKER + zlen;
  memset(slot + vw->slot_len[i], 0,
         (size_t)(round_up(vw->slot_len[i], VMDK_SECTOR) - vw->slot_len[i]));
  return 0;
}

/* Write the current grain table (if it maps any grain) behind its marker
 * and record it in the grain directory. */
static int flush_gt(struct vmdk_writer *vw)
{
  uint32_t le[VMDK_GTES];
  unsigned i;

  if (!vw->gt_used)
    return 0;
  if (write_marker(vw->w.out, VMDK_GT_SECTORS, VMDK_MARKER_GT) == -1)
    return -1;
  vw->gd[vw->gt_index] = (uint32_t)(output_pos(vw->w.out) / VMDK_SECTOR);
  for (i = 0; i < VMDK_GTES; i++)
    le[i] = htole32(vw->gt[i]);
  if (output_write(vw->w.out, le, sizeof le) == -1)
    return -1;
  memset(vw->gt, 0, sizeof vw->gt);
  vw->gt_used = 0;
  return 0;
}

static int vmdk_data(struct format_writer *w, uint64_t offset,
                     const void *buf, size_t len,
                     const uint8_t digest[DIGEST_LEN])
{
  struct vmdk_writer *vw = (struct vmdk_writer *)w;
  size_t i, n = (size_t)div_round_up(len, VMDK_GRAIN);

  (void)digest;
  vw->src = buf;
  vw->src_len = len;
  vw->src_offset = offset;
  if (pool_run(w->opts.pool, n, compress_grain, vw) == -1)
    return -1;
  for (i = 0; i < n; i++) {
    uint64_t grain = offset / VMDK_GRAIN + i, pos;

    if (vw->slot_len[i] == 0)
      continue;
    if (grain / VMDK_GTES != vw->gt_index) {
      if (flush_gt(vw) == -1)
        return -1;
      vw->gt_index = grain / VMDK_GTES;
    }
    pos = output_pos(w->out);
    if (pos / VMDK_SECTOR > UINT32_MAX) {
      ferry_error("the VMDK grows past 2 TiB, the limit of its 32-bit "
                  "grain offsets: use qcow2 or raw for this disk");
      return -1;
    }
    vw->gt[grain % VMDK_GTES] = (uint32_t)(pos / VMDK_SECTOR);
    vw->gt_used = 1;
    if (output_write(w->out, vw->slots + i * VMDK_SLOT,
                     (size_t)round_up(vw->slot_len[i], VMDK_SECTOR)) == -1)
      return -1;
  }
  return 0;
}

static int vmdk_zero(struct format_writer *w, uint64_t offset, uint64_t len)
{
  (void)w;
  (void)offset;
  (void)len;
  return 0;                        /* GTE 0: the grain reads as zeros */
}

static int vmdk_finish(struct format_writer *w)
{
  struct vmdk_writer *vw = (struct vmdk_writer *)w;
  uint64_t gd_sectors = div_round_up(vw->gd_entries * 4, VMDK_SECTOR), i;
  uint64_t gd_offset;
  struct vmdk_header h;
  uint32_t le;

  if (flush_gt(vw) == -1 ||
      write_marker(w->out, gd_sectors, VMDK_MARKER_GD) == -1)
    return -1;
  gd_offset = output_pos(w->out) / VMDK_SECTOR;
  for (i = 0; i < vw->gd_entries; i++) {
    le = htole32(vw->gd[i]);
    if (output_write(w->out, &le, 4) == -1)
      return -1;
  }
  if (output_pad(w->out, VMDK_SECTOR) == -1 ||
      write_marker(w->out, 1, VMDK_MARKER_FOOTER) == -1)
    return -1;
  fill_header(&h, vw->capacity, gd_offset);
  if (output_write(w->out, &h, sizeof h) == -1)
    return -1;
  return write_marker(w->out, 0, VMDK_MARKER_EOS);
}

/* ---- reading back --------------------------------------------------- */

struct vmdk_reader {
  struct format_reader r;
  uint64_t grain;                  /* bytes per grain */
  uint64_t gd_entries, gd_offset;  /* offset in bytes */
  uint32_t flags;
  uint32_t gt[VMDK_GTES];
  uint64_t gt_index;               /* cached GT (UINT64_MAX: none) */
  uint8_t *zbuf, *gbuf;            /* compressed grain, one decoded grain */
  size_t zcap;
  uint64_t gbuf_grain;             /* the grain in gbuf (UINT64_MAX) */
  z_stream zs;
  int zs_ready;
};

static void vmdk_reader_close(struct format_reader *r)
{
  struct vmdk_reader *vr = (struct vmdk_reader *)r;

  if (vr == NULL)
    return;
  if (vr->zs_ready)
    inflateEnd(&vr->zs);
  free(vr->zbuf);
  free(vr->gbuf);
  free(vr);
}

static int check_marker(struct instream *in, uint64_t off, uint32_t type,
                        const char *what)
{
  struct vmdk_marker mk;

  if (instream_pread(in, off, &mk, sizeof mk) == -1)
    return -1;
  if (le32toh(mk.size) != 0 || le32toh(mk.type) != type) {
    ferry_error("%s: no %s marker at offset %" PRIu64 " (size %" PRIu32
                ", type %" PRIu32 "): the output is damaged",
                instream_name(in), what, off, le32toh(mk.size),
                le32toh(mk.type));
    return -1;
  }
  return 0;
}

static struct format_reader *vmdk_reader_open(struct instream *in,
                                              const struct image_manifest *m)
{
  const char *name = instream_name(in);
  uint64_t len = instream_size(in), gs, cap, doff, dsize, foot;
  struct vmdk_reader *vr = NULL;
  struct vmdk_header h, f;
  char desc[64 * VMDK_SECTOR + 1], want[64];
  uint32_t flags;

  if (len < 4 * VMDK_SECTOR) {
    ferry_error("%s is too short for a stream-optimized VMDK", name);
    return NULL;
  }
  if (instream_pread(in, 0, &h, sizeof h) == -1)
    return NULL;
  flags = le32toh(h.flags);
  gs = le64toh(h.grain_size);
  cap = le64toh(h.capacity);
  if (le32toh(h.magic) != VMDK_MAGIC) {
    ferry_error("%s is not a VMDK sparse extent (no KDMV magic)", name);
    return NULL;
  }
  if (le32toh(h.version) < 1 || le32toh(h.version) > 3 ||
      (flags & (VMDK_FLAG_COMPRESSED | VMDK_FLAG_MARKERS)) !=
        (VMDK_FLAG_COMPRESSED | VMDK_FLAG_MARKERS) ||
      le16toh(h.compress_algorithm) != VMDK_COMPRESS_DEFLATE ||
      gs < 8 || gs > 2048 || (gs & (gs - 1)) != 0 || cap > (1ull << 50) ||
      le32toh(h.num_gtes_per_gt) != VMDK_GTES) {
    ferry_error("%s: the header is not that of a stream-optimized VMDK "
                "(version, flags, compression, grain size or GT size): the "
                "output is damaged", name);
    return NULL;
  }
  /* VMDK spec: a stream's header says GD_AT_END; the footer, second to
   * last sector, holds the real grain directory offset */
  foot = len - 2 * VMDK_SECTOR;
  if (le64toh(h.gd_offset) != VMDK_GD_AT_END ||
      check_marker(in, foot - VMDK_SECTOR, VMDK_MARKER_FOOTER,
                   "footer") == -1 ||
      check_marker(in, len - VMDK_SECTOR, VMDK_MARKER_EOS,
                   "end-of-stream") == -1 ||
      instream_pread(in, foot, &f, sizeof f) == -1)
    goto damaged;
  {
    struct vmdk_header a = h, b = f;

    a.gd_offset = b.gd_offset = 0;
    if (memcmp(&a, &b, sizeof a) != 0) {
      ferry_error("%s: the footer differs from the header in more than the "
                  "grain directory offset: the output is damaged", name);
      return NULL;
    }
  }
  doff = le64toh(h.descriptor_offset);
  dsize = le64toh(h.descriptor_size);
  if (dsize == 0 || dsize > 64 || doff == 0 || doff * VMDK_SECTOR > len ||
      instream_pread(in, doff * VMDK_SECTOR, desc, dsize * VMDK_SECTOR)
        == -1)
    goto damaged;
  desc[dsize * VMDK_SECTOR] = '\0';
  snprintf(want, sizeof want, "\nRW %" PRIu64 " SPARSE ", cap);
  if (strstr(desc, "createType=\"streamOptimized\"") == NULL ||
      strstr(desc, want) == NULL) {
    ferry_error("%s: the embedded descriptor does not describe a "
                "stream-optimized extent of %" PRIu64 " sectors: the output "
                "is damaged", name, cap);
    return NULL;
  }
  vr = calloc(1, sizeof *vr);
  if (vr == NULL)
    goto oom;
  vr->r.ops = &format_vmdk;
  vr->r.in = in;
  vr->r.m = m;
  vr->r.virtual_size = cap * VMDK_SECTOR;
  vr->grain = gs * VMDK_SECTOR;
  vr->flags = flags;
  vr->gd_entries = div_round_up(cap, gs * VMDK_GTES);
  vr->gd_offset = le64toh(f.gd_offset) * VMDK_SECTOR;
  vr->gt_index = vr->gbuf_grain = UINT64_MAX;
  vr->zcap = compressBound((uLong)vr->grain) + VMDK_SECTOR;
  vr->zbuf = malloc(vr->zcap);
  vr->gbuf = malloc(vr->grain);
  if (vr->zbuf == NULL || vr->gbuf == NULL)
    goto oom;
  if (vr->gd_offset < VMDK_SECTOR || vr->gd_offset > foot ||
      vr->gd_entries * 4 > foot - vr->gd_offset ||
      check_marker(in, vr->gd_offset - VMDK_SECTOR, VMDK_MARKER_GD,
                   "grain directory") == -1) {
    vmdk_reader_close(&vr->r);
    goto damaged;
  }
  if (inflateInit(&vr->zs) != Z_OK) {
    ferry_error("cannot start a zlib decompressor");
    vmdk_reader_close(&vr->r);
    return NULL;
  }
  vr->zs_ready = 1;
  return &vr->r;
oom:
  ferry_error("out of memory");
  vmdk_reader_close(vr ? &vr->r : NULL);
  return NULL;
damaged:
  ferry_error_prefix("%s: stream-optimized VMDK structure: ", name);
  return NULL;
}

/* The file offset of grain g (0: not allocated). */
static int grain_offset(struct vmdk_reader *vr, uint64_t g, uint64_t *off)
{
  struct instream *in = vr->r.in;
  uint64_t t = g / VMDK_GTES, gt_off;
  uint8_t e[4];
  uint32_t v;
  unsigned i;

  if (t != vr->gt_index) {
    vr->gt_index = UINT64_MAX;
    if (instream_pread(in, vr->gd_offset + t * 4, e, 4) == -1)
      return -1;
    gt_off = (uint64_t)get_le32(e) * VMDK_SECTOR;
    if (gt_off == 0)
      memset(vr->gt, 0, sizeof vr->gt);
    else if (gt_off < VMDK_SECTOR ||
             gt_off > instream_size(in) - sizeof vr->gt ||
             check_marker(in, gt_off - VMDK_SECTOR, VMDK_MARKER_GT,
                          "grain table") == -1 ||
             instream_pread(in, gt_off, vr->gt, sizeof vr->gt) == -1) {
      ferry_error_prefix("%s: grain directory entry %" PRIu64 ": ",
                         instream_name(in), t);
      return -1;
    } else
      for (i = 0; i < VMDK_GTES; i++)
        vr->gt[i] = le32toh(vr->gt[i]);
    vr->gt_index = t;
  }
  v = vr->gt[g % VMDK_GTES];
  if (v == 1 && (vr->flags & VMDK_FLAG_ZERO_GTE))
    v = 0;
  *off = (uint64_t)v * VMDK_SECTOR;
  if (v != 0 && (v == 1 || *off > instream_size(in) - VMDK_GRAIN_MARKER)) {
    ferry_error("%s: grain table entry for grain %" PRIu64 " points at "
                "sector %" PRIu32 ", outside the file: the output is "
                "damaged", instream_name(in), g, v);
    return -1;
  }
  return 0;
}

/* Inflate grain g, stored at off, into dst (one grain). */
static int read_grain(struct vmdk_reader *vr, uint64_t g, uint64_t off,
                      uint8_t *dst)
{
  struct instream *in = vr->r.in;
  uint8_t mk[VMDK_GRAIN_MARKER];
  uint64_t lba;
  uint32_t size;
  int r;

  if (instream_pread(in, off, mk, sizeof mk) == -1)
    return -1;
  lba = get_le64(mk);
  size = get_le32(mk + 8);
  if (lba != g * (vr->grain / VMDK_SECTOR) || size == 0 ||
      size > vr->zcap) {
    ferry_error("%s: the grain marker at offset %" PRIu64 " says LBA %"
                PRIu64 " and %" PRIu32 " bytes, not grain %" PRIu64 ": the "
                "output is damaged", instream_name(in), off, lba, size, g);
    return -1;
  }
  if (instream_pread(in, off + VMDK_GRAIN_MARKER, vr->zbuf, size) == -1)
    return -1;
  inflateReset(&vr->zs);
  vr->zs.next_in = vr->zbuf;
  vr->zs.avail_in = size;
  vr->zs.next_out = dst;
  vr->zs.avail_out = (uInt)vr->grain;
  r = inflate(&vr->zs, Z_FINISH);
  if (r != Z_STREAM_END || vr->zs.total_out != vr->grain ||
      vr->zs.avail_in != 0) {
    ferry_error("%s: the grain at offset %" PRIu64 " (disk offset %" PRIu64
                ") does not inflate to one grain (%s): the output is "
                "damaged", instream_name(in), off, g * vr->grain,
                vr->zs.msg ? vr->zs.msg : "wrong length");
    return -1;
  }
  return 0;
}

static int vmdk_read(struct format_reader *r, void *buf, size_t len)
{
  struct vmdk_reader *vr = (struct vmdk_reader *)r;
  uint8_t *p = buf;
  int any = 0;

  while (len > 0) {
    uint64_t g = r->pos / vr->grain, in = r->pos % vr->grain, off;
    uint64_t n = vr->grain - in;

    if (n > len)
      n = len;
    if (grain_offset(vr, g, &off) == -1)
      return -1;
    if (off == 0)
      memset(p, 0, (size_t)n);
    else if (in == 0 && n == vr->grain) {
      if (read_grain(vr, g, off, p) == -1)
        return -1;
      any = 1;
    } else {
      if (vr->gbuf_grain != g) {
        vr->gbuf_grain = UINT64_MAX;
        if (read_grain(vr, g, off, vr->gbuf) == -1)
          return -1;
        vr->gbuf_grain = g;
      }
      memcpy(p, vr->gbuf + in, (size_t)n);
      any = 1;
    }
    p += n;
    r->pos += n;
    len -= n;
  }
  return any;
}

static int vmdk_reader_end(struct format_reader *r)
{
  (void)r;
  return 0;                        /* footer and EOS checked at open */
}

const struct format_ops format_vmdk = {
  .name = "vmdk",
  .description = "stream-optimized VMDK, deflated grains (AWS, VMware)",
  .extension = ".vmdk",
  .virtual_size = vmdk_virtual_size,
  .output_size = vmdk_output_size,
  .open = vmdk_open,
  .data = vmdk_data,
  .zero = vmdk_zero,
  .finish = vmdk_finish,
  .close = vmdk_close,
  .reader_open = vmdk_reader_open,
  .read = vmdk_read,
  .reader_end = vmdk_reader_end,
  .reader_close = vmdk_reader_close,
};
