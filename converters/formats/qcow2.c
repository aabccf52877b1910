/* formats/qcow2.c - QEMU copy-on-write images, version 3 (OpenStack Glance, KVM).
 *
 * Follows qemu's docs/interop/qcow2.txt ("qcow2 spec" below); all fields
 * are big-endian.  64 KiB clusters, 16-bit refcounts, no backing file,
 * compression, encryption, snapshots or extensions.
 *
 * A streamed writer cannot go back to fill in tables, so every table is
 * laid out from the image's allocation map before the data:
 *
 *   cluster 0          header
 *   refcount table     -> the refcount blocks
 *   refcount blocks    one refcount per host cluster of the file
 *   L1 table           -> the L2 tables
 *   L2 tables          one per 512 MiB of disk that holds data
 *   (zeros)            up to the next multiple of the chunk size
 *   data               the data chunks, in disk order, back to back
 *
 * The clusters of a chunk that holds data are allocated (its zero clusters
 * too: which they are is known only once the chunk arrives); the clusters
 * of zero chunks are not.  Data starts at a multiple of the chunk size so
 * that each data chunk is one block of the output digest (output.h) and
 * keeps its verified chunk digest instead of being hashed again.  Tables
 * are generated one cluster at a time: memory does not grow with the
 * disk. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "util/cleanup.h"
#include "util/error.h"
#include "format.h"
#include "instream.h"
#include "output.h"
#include "formats/qcow2.h"

extern const struct format_ops format_qcow2;

/* qcow2 spec, "Header": the version 3 fields up to header_length. */
struct qcow2_header {
  uint32_t magic;                  /* "QFI\xfb" */
  uint32_t version;
  uint64_t backing_file_offset;
  uint32_t backing_file_size;
  uint32_t cluster_bits;
  uint64_t size;                   /* virtual disk size in bytes */
  uint32_t crypt_method;
  uint32_t l1_size;                /* L1 entries */
  uint64_t l1_table_offset;
  uint64_t refcount_table_offset;
  uint32_t refcount_table_clusters;
  uint32_t nb_snapshots;
  uint64_t snapshots_offset;
  uint64_t incompatible_features;
  uint64_t compatible_features;
  uint64_t autoclear_features;
  uint32_t refcount_order;
  uint32_t header_length;
} __attribute__((packed));
_Static_assert(sizeof(struct qcow2_header) == 104,
               "qcow2 version 3 header is 104 bytes");

#define QCOW2_MAGIC 0x514649fbu          /* 'Q' 'F' 'I' 0xfb */
#define QCOW2_CLUSTER_BITS 16
#define QCOW2_CLUSTER (1u << QCOW2_CLUSTER_BITS)
#define QCOW2_REFCOUNT_ORDER 4           /* 16-bit refcounts */
#define QCOW2_L2_ENTRIES (QCOW2_CLUSTER / 8)
#define QCOW2_L2_COVERS ((uint64_t)QCOW2_L2_ENTRIES * QCOW2_CLUSTER)
#define QCOW2_REFCOUNTS_PER_BLOCK (QCOW2_CLUSTER / 2)
/* qcow2 spec, "Cluster mapping": L1/L2 entry bits */
#define QCOW2_OFLAG_COPIED (1ull << 63)  /* refcount is exactly one */
#define QCOW2_OFLAG_COMPRESSED (1ull << 62)
#define QCOW2_OFLAG_ZERO 1ull            /* L2: the cluster reads as zeros */
#define QCOW2_OFFSET_MASK 0x00fffffffffffe00ull   /* bits 9-55 */
/* incompatible feature bits: 0 dirty, 1 corrupt, 2 external data file,
 * 3 compression type, 4 extended L2 entries: none may be set here */

static uint64_t qcow2_virtual_size(const struct image_manifest *m)
{
  return round_up(m->disk_size, 512);     /* qemu counts whole sectors */
}

/* Chunk i's clusters when it holds data. */
static uint64_t chunk_clusters(const struct image_manifest *m, uint64_t i)
{
  return div_round_up(image_chunk_len(m, i), QCOW2_CLUSTER);
}

/* Whether L2 region r (512 MiB of disk) overlaps a chunk holding data. */
static int region_has_data(const struct image_manifest *m, const uint8_t *map,
                           uint64_t r)
{
  uint64_t per_region = QCOW2_L2_COVERS / m->chunk_size, i;

  for (i = r * per_region; i < (r + 1) * per_region && i < m->chunk_count;
       i++)
    if (alloc_map_test(map, i))
      return 1;
  return 0;
}

/* Whether host cluster c is in use in layout l. */
static int cluster_in_use(const struct qcow2_layout *l, uint64_t c)
{
  uint64_t rel, k;

  if (c < l->meta_clusters)
    return 1;
  if (c < l->data_start / QCOW2_CLUSTER || l->data_chunks == 0)
    return 0;
  rel = c - l->data_start / QCOW2_CLUSTER;
  k = rel / l->chunk_clusters;
  if (k + 1 < l->data_chunks)
    return 1;
  return k + 1 == l->data_chunks && rel % l->chunk_clusters < l->last_clusters;
}

void qcow2_layout(const struct image_manifest *m, const uint8_t *map,
                  struct qcow2_layout *l)
{
  uint64_t i, r, last = 0, rb = 1, rt = 1, rb2, rt2, end;

  memset(l, 0, sizeof *l);
  l->size = qcow2_virtual_size(m);
  l->chunk_clusters = m->chunk_size / QCOW2_CLUSTER;
  l->l1_size = div_round_up(l->size, QCOW2_L2_COVERS);
  l->l1_clusters = div_round_up(l->l1_size * 8, QCOW2_CLUSTER);
  for (i = 0; i < m->chunk_count; i++)
    if (alloc_map_test(map, i)) {
      l->data_chunks++;
      last = i;
    }
  for (r = 0; r < l->l1_size; r++)
    l->l2_tables += (uint64_t)region_has_data(m, map, r);
  l->last_clusters = l->data_chunks ? chunk_clusters(m, last) : 0;
  /* the refcounts cover the refcount structures themselves: iterate to
   * the fixed point (two or three rounds) */
  for (;;) {
    l->rt_clusters = rt;
    l->rb_clusters = rb;
    l->meta_clusters = 1 + rt + rb + l->l1_clusters + l->l2_tables;
    l->data_start = l->data_chunks
                      ? round_up(l->meta_clusters * QCOW2_CLUSTER,
                                 m->chunk_size)
                      : l->meta_clusters * QCOW2_CLUSTER;
    end = l->data_chunks
            ? l->data_start + (l->data_chunks - 1) * m->chunk_size +
              l->last_clusters * QCOW2_CLUSTER
            : l->meta_clusters * QCOW2_CLUSTER;
    l->file_size = end;
    rb2 = div_round_up(end / QCOW2_CLUSTER, QCOW2_REFCOUNTS_PER_BLOCK);
    rt2 = div_round_up(rb2 * 8, QCOW2_CLUSTER);
    if (rb2 == rb && rt2 == rt)
      break;
    rb = rb2 > rb ? rb2 : rb;
    rt = rt2 > rt ? rt2 : rt;
  }
  l->rt_offset = QCOW2_CLUSTER;
  l->rb_offset = l->rt_offset + l->rt_clusters * QCOW2_CLUSTER;
  l->l1_offset = l->rb_offset + l->rb_clusters * QCOW2_CLUSTER;
  l->l2_offset = l->l1_offset + l->l1_clusters * QCOW2_CLUSTER;
}

static uint64_t qcow2_output_size(const struct image_manifest *m,
                                  const uint8_t *map)
{
  struct qcow2_layout l;

  qcow2_layout(m, map, &l);
  return l.file_size;
}

struct qcow2_writer {
  struct format_writer w;
  struct qcow2_layout l;
  uint8_t *cluster;                /* one table cluster being generated */
  uint64_t fill;
  uint64_t next_data;              /* host offset of the next data chunk */
};

/* Append 8-byte entry v to the cluster being generated, writing it out
 * when full. */
static int put_entry(struct qcow2_writer *qw, uint64_t v)
{
  put_be64(qw->cluster + qw->fill, v);
  qw->fill += 8;
  if (qw->fill < QCOW2_CLUSTER)
    return 0;
  qw->fill = 0;
  return output_write(qw->w.out, qw->cluster, QCOW2_CLUSTER);
}

/* Pad the cluster being generated with zero entries and write it. */
static int flush_entries(struct qcow2_writer *qw)
{
  while (qw->fill != 0)
    if (put_entry(qw, 0) == -1)
      return -1;
  return 0;
}

static int write_tables(struct qcow2_writer *qw)
{
  const struct image_manifest *m = qw->w.m;
  const struct qcow2_layout *l = &qw->l;
  uint64_t j, c, r, i, rank, next, l2 = 0;
  struct qcow2_header h;

  memset(&h, 0, sizeof h);
  h.magic = htobe32(QCOW2_MAGIC);
  h.version = htobe32(3);
  h.cluster_bits = htobe32(QCOW2_CLUSTER_BITS);
  h.size = htobe64(l->size);
  h.l1_size = htobe32((uint32_t)l->l1_size);
  h.l1_table_offset = htobe64(l->l1_offset);
  h.refcount_table_offset = htobe64(l->rt_offset);
  h.refcount_table_clusters = htobe32((uint32_t)l->rt_clusters);
  h.refcount_order = htobe32(QCOW2_REFCOUNT_ORDER);
  h.header_length = htobe32(sizeof h);
  /* the header extensions' end marker (type 0, length 0) is the zeros
   * that follow the header in its cluster */
  memset(qw->cluster, 0, QCOW2_CLUSTER);
  memcpy(qw->cluster, &h, sizeof h);
  if (output_write(qw->w.out, qw->cluster, QCOW2_CLUSTER) == -1)
    return -1;

  /* refcount table: the refcount blocks, in order, then zero entries */
  for (j = 0; j < l->rb_clusters; j++)
    if (put_entry(qw, l->rb_offset + j * QCOW2_CLUSTER) == -1)
      return -1;
  if (flush_entries(qw) == -1)
    return -1;
  for (c = div_round_up(l->rb_clusters * 8, QCOW2_CLUSTER);
       c < l->rt_clusters; c++)
    if (output_zero(qw->w.out, QCOW2_CLUSTER) == -1)
      return -1;

  /* refcount blocks: 1 for each cluster in use, 16 bits each */
  for (c = 0; c < l->rb_clusters * QCOW2_REFCOUNTS_PER_BLOCK; c++) {
    put_be16(qw->cluster + qw->fill, (uint16_t)cluster_in_use(l, c));
    qw->fill += 2;
    if (qw->fill == QCOW2_CLUSTER) {
      qw->fill = 0;
      if (output_write(qw->w.out, qw->cluster, QCOW2_CLUSTER) == -1)
        return -1;
    }
  }

  /* L1: the L2 table of each 512 MiB region that holds data */
  for (r = 0; r < l->l1_size; r++)
    if (put_entry(qw, region_has_data(m, qw->w.map, r)
                        ? (l->l2_offset + l2++ * QCOW2_CLUSTER) |
                          QCOW2_OFLAG_COPIED
                        : 0) == -1)
      return -1;
  if (flush_entries(qw) == -1)
    return -1;

  /* L2 tables: each cluster of a data chunk maps to its place in the
   * data area, where data chunks follow each other in disk order; rank
   * counts the data chunks before chunk next */
  rank = next = 0;
  for (r = 0; r < l->l1_size; r++) {
    uint64_t g;

    if (!region_has_data(m, qw->w.map, r))
      continue;
    for (g = 0; g < QCOW2_L2_ENTRIES; g++) {
      uint64_t goff = r * QCOW2_L2_COVERS + g * QCOW2_CLUSTER, v = 0;

      i = goff / m->chunk_size;
      for (; next < i && next < m->chunk_count; next++)
        rank += (uint64_t)alloc_map_test(qw->w.map, next);
      if (goff < l->size && alloc_map_test(qw->w.map, i))
        v = (l->data_start + rank * m->chunk_size + goff % m->chunk_size) |
            QCOW2_OFLAG_COPIED;
      if (put_entry(qw, v) == -1)
        return -1;
    }
  }
  /* zeros up to the data area */
  return output_zero(qw->w.out, l->data_start -
                                l->meta_clusters * QCOW2_CLUSTER);
}

static struct format_writer *qcow2_open(struct output *out,
                                        const struct image_manifest *m,
                                        const uint8_t *map,
                                        const struct format_opts *opts)
{
  struct qcow2_writer *qw = calloc(1, sizeof *qw);

  if (qw == NULL || (qw->cluster = malloc(QCOW2_CLUSTER)) == NULL) {
    ferry_error("out of memory");
    free(qw);
    return NULL;
  }
  qw->w = (struct format_writer){ .ops = &format_qcow2, .out = out, .m = m,
                                  .map = map, .opts = *opts };
  qcow2_layout(m, map, &qw->l);
  if (qw->l.l1_size > UINT32_MAX || qw->l.rt_clusters > UINT32_MAX) {
    ferry_error("a %" PRIu64 "-byte disk is too large for qcow2",
                m->disk_size);
    goto fail;
  }
  if (write_tables(qw) == -1)
    goto fail;
  qw->next_data = qw->l.data_start;
  return &qw->w;
fail:
  free(qw->cluster);
  free(qw);
  return NULL;
}

static int qcow2_data(struct format_writer *w, uint64_t offset,
                      const void *buf, size_t len,
                      const uint8_t digest[DIGEST_LEN])
{
  struct qcow2_writer *qw = (struct qcow2_writer *)w;

  if (output_pos(w->out) != qw->next_data) {
    ferry_error("internal error: qcow2 data chunk at disk offset %" PRIu64
                " lands at %" PRIu64 ", its L2 entries say %" PRIu64,
                offset, output_pos(w->out), qw->next_data);
    return -1;
  }
  if (output_write_digested(w->out, buf, len, digest) == -1 ||
      output_pad(w->out, QCOW2_CLUSTER) == -1)
    return -1;
  qw->next_data += w->m->chunk_size;
  return 0;
}

static int qcow2_zero(struct format_writer *w, uint64_t offset, uint64_t len)
{
  (void)w;
  (void)offset;
  (void)len;
  return 0;                        /* unallocated clusters read as zeros */
}

static int qcow2_finish(struct format_writer *w)
{
  (void)w;
  return 0;
}

static void qcow2_close(struct format_writer *w)
{
  struct qcow2_writer *qw = (struct qcow2_writer *)w;

  if (qw == NULL)
    return;
  free(qw->cluster);
  free(qw);
}

/* ---- reading back --------------------------------------------------- */

struct qcow2_reader {
  struct format_reader r;
  uint64_t cluster, l2_entries, file_size;
  uint64_t *l1;                    /* host order */
  uint64_t l1_size;
  uint8_t *rt;                     /* refcount table, as stored */
  uint64_t rt_entries;
  uint8_t *l2, *rb;                /* one cached L2 table, refcount block */
  uint64_t l2_at, rb_at;           /* their host offsets (0: none) */
};

#define QCOW2_L1_MAX (32u << 20)   /* caps on what --verify loads whole */
#define QCOW2_RT_MAX (32u << 20)

/* The refcount of host cluster at off. */
static int refcount(struct qcow2_reader *q, uint64_t off, uint64_t *rc)
{
  uint64_t c = off / q->cluster, per = q->cluster / 2, idx = c / per, rbo;

  if (idx >= q->rt_entries) {
    *rc = 0;
    return 0;
  }
  rbo = get_be64(q->rt + idx * 8) & ~(q->cluster - 1);
  if (rbo == 0) {
    *rc = 0;
    return 0;
  }
  if (rbo != q->rb_at) {
    if (rbo % q->cluster != 0 || rbo > q->file_size - q->cluster) {
      ferry_error("%s: refcount table entry %" PRIu64 " points at %" PRIu64
                  ", outside the file: the output is damaged",
                  instream_name(q->r.in), idx, rbo);
      return -1;
    }
    q->rb_at = 0;
    if (instream_pread(q->r.in, rbo, q->rb, (size_t)q->cluster) == -1)
      return -1;
    q->rb_at = rbo;
  }
  *rc = get_be16(q->rb + (c % per) * 2);
  return 0;
}

/* A table or data cluster at off: aligned, inside the file, with refcount
 * one and the COPIED flag that says so (qcow2 spec). */
static int check_cluster(struct qcow2_reader *q, uint64_t entry,
                         const char *what, uint64_t index)
{
  uint64_t off = entry & QCOW2_OFFSET_MASK, rc;

  if (off % q->cluster != 0 || off > q->file_size - q->cluster) {
    ferry_error("%s: %s entry %" PRIu64 " points at %" PRIu64 ", not a "
                "cluster inside the file: the output is damaged",
                instream_name(q->r.in), what, index, off);
    return -1;
  }
  if (refcount(q, off, &rc) == -1)
    return -1;
  if (rc != 1 || !(entry & QCOW2_OFLAG_COPIED)) {
    ferry_error("%s: the cluster at %" PRIu64 " (%s entry %" PRIu64 ") has "
                "refcount %" PRIu64 "%s: the output is damaged",
                instream_name(q->r.in), off, what, index, rc,
                entry & QCOW2_OFLAG_COPIED ? "" : " and no COPIED flag");
    return -1;
  }
  return 0;
}

/* Metadata of len bytes at off: inside the file, each cluster with
 * refcount one. */
static int check_meta(struct qcow2_reader *q, uint64_t off, uint64_t len,
                      const char *what)
{
  uint64_t c, rc;

  if (off % q->cluster != 0 || off > q->file_size ||
      len > q->file_size - off) {
    ferry_error("%s: the %s at %" PRIu64 " lies outside the file: the "
                "output is damaged", instream_name(q->r.in), what, off);
    return -1;
  }
  for (c = off; c < off + len; c += q->cluster) {
    if (refcount(q, c, &rc) == -1)
      return -1;
    if (rc != 1) {
      ferry_error("%s: the %s cluster at %" PRIu64 " has refcount %" PRIu64
                  ", not 1: the output is damaged", instream_name(q->r.in),
                  what, c, rc);
      return -1;
    }
  }
  return 0;
}

static void qcow2_reader_close(struct format_reader *r)
{
  struct qcow2_reader *q = (struct qcow2_reader *)r;

  if (q == NULL)
    return;
  free(q->l1);
  free(q->rt);
  free(q->l2);
  free(q->rb);
  free(q);
}

static struct format_reader *qcow2_reader_open(struct instream *in,
                                               const struct image_manifest *m)
{
  const char *name = instream_name(in);
  struct qcow2_reader *q = NULL;
  struct qcow2_header h;
  uint64_t i, l1_off, rt_off, rt_bytes;
  uint32_t bits;

  if (instream_size(in) < sizeof h) {
    ferry_error("%s is too short for a qcow2 header", name);
    return NULL;
  }
  if (instream_pread(in, 0, &h, sizeof h) == -1)
    return NULL;
  if (be32toh(h.magic) != QCOW2_MAGIC) {
    ferry_error("%s is not a qcow2 image (no QFI\\xfb magic)", name);
    return NULL;
  }
  bits = be32toh(h.cluster_bits);
  if (be32toh(h.version) != 3 || bits < 9 || bits > 21 ||
      be32toh(h.crypt_method) != 0 || be64toh(h.backing_file_offset) != 0 ||
      be64toh(h.incompatible_features) != 0 ||
      be32toh(h.refcount_order) != QCOW2_REFCOUNT_ORDER) {
    ferry_error("%s: a qcow2 header ferry does not write (version %" PRIu32
                ", cluster bits %" PRIu32 ", encryption, backing file, "
                "incompatible features or refcount order differ): the "
                "output is damaged or not ferry's", name,
                be32toh(h.version), bits);
    return NULL;
  }
  q = calloc(1, sizeof *q);
  if (q == NULL)
    goto oom;
  q->r.ops = &format_qcow2;
  q->r.in = in;
  q->r.m = m;
  q->r.virtual_size = be64toh(h.size);
  q->cluster = 1ull << bits;
  q->l2_entries = q->cluster / 8;
  q->file_size = instream_size(in);
  if (q->file_size < q->cluster) {
    ferry_error("%s is %" PRIu64 " bytes, shorter than one cluster: the "
                "output is truncated", name, q->file_size);
    goto fail;
  }
  q->l1_size = be32toh(h.l1_size);
  l1_off = be64toh(h.l1_table_offset);
  rt_off = be64toh(h.refcount_table_offset);
  rt_bytes = (uint64_t)be32toh(h.refcount_table_clusters) * q->cluster;
  if (q->l1_size < div_round_up(q->r.virtual_size,
                                q->cluster * q->l2_entries) ||
      q->l1_size * 8 > QCOW2_L1_MAX || rt_bytes > QCOW2_RT_MAX ||
      l1_off % q->cluster != 0 || rt_off % q->cluster != 0 ||
      l1_off > q->file_size || q->l1_size * 8 > q->file_size - l1_off ||
      rt_off > q->file_size || rt_bytes > q->file_size - rt_off) {
    ferry_error("%s: the qcow2 L1 table (%" PRIu64 " entries at %" PRIu64
                ") or refcount table (%" PRIu64 " bytes at %" PRIu64 ") is "
                "out of place: the output is damaged or truncated", name,
                q->l1_size, l1_off, rt_bytes, rt_off);
    goto fail;
  }
  q->l1 = malloc(q->l1_size * 8 + 1);
  q->rt = malloc(rt_bytes + 1);
  q->l2 = malloc(q->cluster);
  q->rb = malloc(q->cluster);
  if (q->l1 == NULL || q->rt == NULL || q->l2 == NULL || q->rb == NULL)
    goto oom;
  q->rt_entries = rt_bytes / 8;
  if (instream_pread(in, l1_off, q->l1, q->l1_size * 8) == -1 ||
      instream_pread(in, rt_off, q->rt, rt_bytes) == -1)
    goto fail;
  /* the header, the refcount table and blocks and the L1 table are
   * referenced once each */
  if (check_meta(q, 0, q->cluster, "header") == -1 ||
      check_meta(q, rt_off, rt_bytes, "refcount table") == -1 ||
      check_meta(q, l1_off, q->l1_size * 8, "L1 table") == -1)
    goto fail;
  for (i = 0; i < q->rt_entries; i++) {
    uint64_t rbo = get_be64(q->rt + i * 8);

    if (rbo != 0 && check_meta(q, rbo, q->cluster, "refcount block") == -1)
      goto fail;
  }
  for (i = 0; i < q->l1_size; i++) {
    q->l1[i] = be64toh(q->l1[i]);
    if ((q->l1[i] & QCOW2_OFFSET_MASK) != 0 &&
        check_cluster(q, q->l1[i], "L1", i) == -1)
      goto fail;
  }
  return &q->r;
oom:
  ferry_error("out of memory");
fail:
  qcow2_reader_close(q ? &q->r : NULL);
  return NULL;
}

/* The L2 entry for guest offset goff (0: unallocated). */
static int l2_entry(struct qcow2_reader *q, uint64_t goff, uint64_t *entry)
{
  uint64_t covers = q->cluster * q->l2_entries;
  uint64_t l1i = goff / covers, l2o = q->l1[l1i] & QCOW2_OFFSET_MASK;
  uint64_t idx = goff % covers / q->cluster, e;

  *entry = 0;
  if (l2o == 0)
    return 0;
  if (l2o != q->l2_at) {
    q->l2_at = 0;
    if (instream_pread(q->r.in, l2o, q->l2, (size_t)q->cluster) == -1)
      return -1;
    q->l2_at = l2o;
  }
  e = get_be64(q->l2 + idx * 8);
  if (e & QCOW2_OFLAG_COMPRESSED) {
    ferry_error("%s: cluster at guest offset %" PRIu64 " is compressed, "
                "which ferry never writes: the output is damaged",
                instream_name(q->r.in), goff);
    return -1;
  }
  if ((e & QCOW2_OFLAG_ZERO) || (e & QCOW2_OFFSET_MASK) == 0)
    return 0;
  if (check_cluster(q, e, "L2", goff / q->cluster) == -1)
    return -1;
  *entry = e & QCOW2_OFFSET_MASK;
  return 0;
}

static int qcow2_read(struct format_reader *r, void *buf, size_t len)
{
  struct qcow2_reader *q = (struct qcow2_reader *)r;
  uint8_t *p = buf;
  uint64_t run_host = 0, run_len = 0;
  uint8_t *run_dst = NULL;
  int any = 0;

  while (len > 0) {
    uint64_t in = r->pos % q->cluster, n = q->cluster - in, host;

    if (n > len)
      n = len;
    if (l2_entry(q, r->pos - in, &host) == -1)
      return -1;
    if (host != 0)
      host += in;
    /* extend the current run of consecutive host bytes, or read it */
    if (run_len && (host == 0 || host != run_host + run_len)) {
      if (instream_pread(r->in, run_host, run_dst, (size_t)run_len) == -1)
        return -1;
      run_len = 0;
    }
    if (host == 0)
      memset(p, 0, (size_t)n);
    else {
      if (run_len == 0) {
        run_host = host;
        run_dst = p;
      }
      run_len += n;
      any = 1;
    }
    p += n;
    r->pos += n;
    len -= n;
  }
  if (run_len &&
      instream_pread(r->in, run_host, run_dst, (size_t)run_len) == -1)
    return -1;
  return any;
}

static int qcow2_reader_end(struct format_reader *r)
{
  (void)r;
  return 0;
}

const struct format_ops format_qcow2 = {
  .name = "qcow2",
  .description = "qcow2 version 3, allocated clusters only (OpenStack, KVM)",
  .extension = ".qcow2",
  .virtual_size = qcow2_virtual_size,
  .output_size = qcow2_output_size,
  .open = qcow2_open,
  .data = qcow2_data,
  .zero = qcow2_zero,
  .finish = qcow2_finish,
  .close = qcow2_close,
  .reader_open = qcow2_reader_open,
  .read = qcow2_read,
  .reader_end = qcow2_reader_end,
  .reader_close = qcow2_reader_close,
};
