/* The pure pieces of the format writers, against their specifications:
 * VHD CHS geometry and checksum, tar number fields and checksums, the
 * qcow2 layout, parallel gzip against zlib's own inflate, the output
 * digest against hashing the same bytes, and the worker pool. */
#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include "util/error.h"
#include "formats/gce.h"
#include "image/image.h"
#include "output.h"
#include "pgzip.h"
#include "pool.h"
#include "formats/qcow2.h"
#include "store/store.h"
#include "test.h"
#include "formats/vhd.h"

static void test_vhd(void)
{
  /* geometry qemu-img computes for these sizes (the spec's algorithm) */
  static const struct {
    uint64_t sectors;
    uint16_t c;
    uint8_t h, s;
  } v[] = {
    { 20536, 302, 4, 17 },            /* 10 MiB as qemu rounds it */
    { 204816, 1004, 12, 17 },
    { 2048256, 2032, 16, 63 },
    { 266338320, 65279, 16, 255 },    /* 127 GiB */
    { 65535ull * 16 * 255 * 4, 65535, 16, 255 },   /* capped */
  };
  uint8_t footer[512];
  uint16_t c;
  uint8_t h, s;
  size_t i;

  for (i = 0; i < sizeof v / sizeof v[0]; i++) {
    vhd_geometry(v[i].sectors, &c, &h, &s);
    CHECK_U64(c, v[i].c);
    CHECK_U64(h, v[i].h);
    CHECK_U64(s, v[i].s);
  }
  /* one's complement of the byte sum */
  memset(footer, 0, sizeof footer);
  CHECK_U64(vhd_checksum(footer, sizeof footer), 0xffffffffu);
  memcpy(footer, "conectix", 8);
  CHECK_U64(vhd_checksum(footer, sizeof footer),
            ~(uint32_t)('c' + 'o' + 'n' + 'e' + 'c' + 't' + 'i' + 'x'));
}

static void test_tar(void)
{
  char f[12], hdr[512];

  tar_number(f, 12, 0);
  CHECK(memcmp(f, "00000000000", 12) == 0);
  tar_number(f, 8, 0644);
  CHECK(memcmp(f, "0000644", 8) == 0);
  tar_number(f, 12, 3ull << 30);                     /* GNU tar's output */
  CHECK(memcmp(f, "30000000000", 12) == 0);
  tar_number(f, 12, (8ull << 30) - 1);               /* the octal limit */
  CHECK(memcmp(f, "77777777777", 12) == 0);
  tar_number(f, 12, 10ull << 30);                    /* base-256 */
  CHECK((unsigned char)f[0] == 0x80);
  CHECK(f[7] == 2 && f[8] == (char)0x80 && f[9] == 0 && f[11] == 0);
  /* an all-zero header sums to the eight spaces of its chksum field */
  memset(hdr, 0, sizeof hdr);
  tar_checksum(hdr);
  CHECK(memcmp(hdr + 148, "000400\0 ", 8) == 0);
  CHECK_U64(gce_raw_size(1), 1ull << 30);
  CHECK_U64(gce_raw_size(1ull << 30), 1ull << 30);
  CHECK_U64(gce_raw_size((9ull << 30) + 5), 10ull << 30);
}

static void test_qcow2_layout(void)
{
  struct image_manifest m = { .disk_size = (9ull << 30) + 12345,
                              .chunk_size = 4u << 20 };
  struct qcow2_layout l;
  uint8_t *map;

  m.chunk_count = (m.disk_size + m.chunk_size - 1) / m.chunk_size;
  map = calloc(m.chunk_count / 8 + 1, 1);
  map[0] = 1;                                   /* chunk 0 */
  map[(m.chunk_count - 1) / 8] |= (uint8_t)(1u << ((m.chunk_count - 1) % 8));
  qcow2_layout(&m, map, &l);
  CHECK_U64(l.size, (9ull << 30) + 12800);      /* whole sectors */
  CHECK_U64(l.l1_size, 19);                     /* 512 MiB per L2 */
  CHECK_U64(l.l2_tables, 2);
  CHECK_U64(l.data_chunks, 2);
  CHECK_U64(l.data_start % m.chunk_size, 0);
  CHECK(l.data_start >= l.meta_clusters * 65536);
  /* the last chunk holds 12345 bytes: one cluster */
  CHECK_U64(l.last_clusters, 1);
  CHECK_U64(l.file_size, l.data_start + m.chunk_size + 65536);
  CHECK(l.rb_clusters * 32768 * 65536 >= l.file_size);
  CHECK_U64(l.rt_offset, 65536);
  CHECK_U64(l.l2_offset, l.l1_offset + l.l1_clusters * 65536);

  /* no data: no padding after the tables */
  memset(map, 0, m.chunk_count / 8 + 1);
  qcow2_layout(&m, map, &l);
  CHECK_U64(l.file_size, l.meta_clusters * 65536);
  CHECK_U64(l.l2_tables, 0);
  free(map);
}

struct sum_arg {
  uint64_t done[64];
};

static int sum_task(void *arg, size_t i, unsigned worker)
{
  struct sum_arg *a = arg;

  (void)worker;
  a->done[i] = i + 1;
  if (i == 40) {
    ferry_error("task %zu failed", i);
    return -1;
  }
  return 0;
}

static void test_pool(void)
{
  struct pool *p = pool_create(3);
  struct sum_arg a;
  size_t i;
  int ok = 1;

  CHECK(p != NULL);
  CHECK_U64(pool_threads(p), 3);
  memset(&a, 0, sizeof a);
  CHECK(pool_run(p, 30, sum_task, &a) == 0);
  for (i = 0; i < 30; i++)
    ok &= a.done[i] == i + 1;
  CHECK(ok);
  memset(&a, 0, sizeof a);
  CHECK(pool_run(p, 64, sum_task, &a) == -1);
  CHECK_CONTAINS(ferry_errmsg(), "task 40 failed");
  for (i = 0, ok = 1; i < 64; i++)
    ok &= a.done[i] == i + 1;                 /* the others still ran */
  CHECK(ok);
  pool_close(p);
}

/* A pseudo-random but compressible buffer. */
static void fill(uint8_t *buf, size_t len, unsigned seed)
{
  size_t i;

  for (i = 0; i < len; i++) {
    seed = seed * 1103515245u + 12345u;
    buf[i] = (uint8_t)((seed >> 16) % 23);
  }
}

static void test_pgzip(const char *dir)
{
  static const size_t sizes[] = { 0, 100, 6u << 20, (13u << 20) + 777 };
  char *url;
  size_t k;

  CHECK(asprintf(&url, "file://%s", dir) > 0);
  for (k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
    struct store *s = store_open(url);
    struct store_writer *w = store_writer_open(s, "z.gz", NULL);
    struct output *o = output_create(w, 1u << 20);
    struct pool *p = pool_create(3);
    size_t n = sizes[k], done, got;
    uint8_t *in = malloc(n + 1), *back = malloc(n + 1), d[DIGEST_LEN];
    uint8_t *gz = malloc(n + (1u << 20));
    struct pgzip *z;
    z_stream zs;
    char path[512];
    FILE *fp;

    fill(in, n, (unsigned)k);
    if (n > 3000000)
      memset(in + 2000000, 0, 1000000);       /* a run of zeros */
    z = pgzip_create(o, p, 6);
    CHECK(z != NULL);
    /* in pieces, the zeros as a hole-style write */
    for (done = 0; done < n; ) {
      size_t step = n - done < 700001 ? n - done : 700001;

      CHECK(pgzip_write(z, in + done, step) == 0);
      done += step;
    }
    CHECK(pgzip_write(z, NULL, 4096) == 0);
    CHECK(pgzip_finish(z) == 0);
    CHECK(output_digest(o, d) == 0);
    CHECK(store_writer_commit(w) == 0);
    pgzip_close(z);
    output_close(o);
    pool_close(p);

    snprintf(path, sizeof path, "%s/z.gz", dir);
    fp = fopen(path, "rb");
    CHECK(fp != NULL);
    got = fread(gz, 1, n + (1u << 20), fp);
    fclose(fp);
    /* zlib's gzip decoder checks the header, CRC-32 and ISIZE */
    memset(&zs, 0, sizeof zs);
    CHECK(inflateInit2(&zs, 16 + 15) == Z_OK);
    free(back);
    back = malloc(n + 4096 + 1);
    zs.next_in = gz;
    zs.avail_in = (uInt)got;
    zs.next_out = back;
    zs.avail_out = (uInt)(n + 4096 + 1);
    CHECK(inflate(&zs, Z_FINISH) == Z_STREAM_END);
    CHECK_U64(zs.total_out, n + 4096);
    CHECK_U64(zs.avail_in, 0);
    CHECK(memcmp(back, in, n) == 0);
    CHECK(back[n] == 0 && back[n + 4095] == 0);
    inflateEnd(&zs);
    free(in);
    free(back);
    free(gz);
    store_close(s);
  }
  free(url);
}

/* Check that o's output digest is SHA-256 over the SHA-256 of each block
 * of all[0..total), then free o and all. */
static void check_output_digest(struct output *o, uint8_t *all,
                                size_t total, uint32_t block)
{
  uint8_t got[DIGEST_LEN], want[DIGEST_LEN], leaf[DIGEST_LEN];
  struct digest_ctx *root = digest_create();

  CHECK_U64(output_pos(o), total);
  CHECK(output_digest(o, got) == 0);
  for (size_t i = 0; i < total; i += block) {
    digest_buf(all + i, total - i < block ? total - i : block, leaf);
    digest_update(root, leaf, DIGEST_LEN);
  }
  digest_final(root, want);
  CHECK(memcmp(got, want, DIGEST_LEN) == 0);
  digest_close(root);
  output_close(o);
  free(all);
}

/* The output digest of writes, digested writes and zero runs equals SHA-256
 * over SHA-256 of each block of the same bytes. */
static void test_output_digest(void)
{
  const uint32_t block = 1u << 20;
  size_t total = 5 * block + 1234, pos = 0;
  uint8_t *all = calloc(total, 1), leaf[DIGEST_LEN];
  struct output *o = output_create(NULL, block);

  fill(all, total, 7);
  memset(all + 100, 0, 2 * block + 50);          /* zeros across blocks */
  memset(all + 4 * block, 0, 1000);
  CHECK(output_write(o, all, 100) == 0);
  CHECK(output_zero(o, 2 * block + 50) == 0);
  pos = 100 + 2 * block + 50;
  CHECK(output_write(o, all + pos, 3 * block - pos) == 0);
  pos = 3 * block;
  digest_buf(all + pos, block, leaf);            /* an aligned block */
  CHECK(output_write_digested(o, all + pos, block, leaf) == 0);
  pos += block;
  CHECK(output_zero(o, 1000) == 0);
  pos += 1000;
  CHECK(output_write(o, all + pos, total - pos) == 0);
  check_output_digest(o, all, total, block);
}

/* The same over hundreds of blocks in a pseudo-random mix of unaligned
 * writes, whole digested blocks, long and short zero runs: blocks are
 * hashed in batches and known digests queue behind them, so the order of
 * the root's inputs is what this checks (a batch boundary and the queue's
 * capacity fall at many different places). */
static void test_output_digest_mixed(void)
{
  const uint32_t block = 4096;
  for (unsigned seed = 1; seed <= 20; seed++) {
    size_t total = 700 * (size_t)block + seed * 37, pos = 0;
    uint8_t *all = calloc(total, 1), leaf[DIGEST_LEN];
    struct output *o = output_create(NULL, block);
    uint32_t r = seed * 2654435761u;

    fill(all, total, seed);
    while (pos < total) {
      size_t left = total - pos, n;
      unsigned kind;

      r = r * 1103515245u + 12345u;
      kind = (r >> 16) % 4;
      if (kind == 0 && pos % block == 0 && left >= block) {
        digest_buf(all + pos, block, leaf);      /* a verified chunk */
        CHECK(output_write_digested(o, all + pos, block, leaf) == 0);
        n = block;
      } else if (kind == 1) {                    /* zeros, up to 70 blocks */
        n = (r >> 8) % (70 * (size_t)block) + 1;
        n = n < left ? n : left;
        memset(all + pos, 0, n);
        CHECK(output_zero(o, n) == 0);
      } else {                                   /* bytes, unaligned */
        n = (r >> 4) % (3 * (size_t)block) + 1;
        n = n < left ? n : left;
        CHECK(output_write(o, all + pos, n) == 0);
      }
      pos += n;
    }
    check_output_digest(o, all, total, block);
  }
}

/* Zero granules inside a data write become holes; the bytes read back
 * are the same. */
static void test_output_sparse(const char *dir)
{
  size_t len = 1u << 20, got;
  uint8_t *buf = calloc(len, 1), *back = malloc(len), d[DIGEST_LEN];
  char *url, path[512];
  struct store *s;
  struct store_writer *w;
  struct output *o;
  struct stat st;
  FILE *fp;

  fill(buf, 65536, 3);                        /* data, then 960 KiB of */
  fill(buf + len - 100, 100, 4);              /* zeros, then data */
  digest_buf(buf, len, d);
  CHECK(asprintf(&url, "file://%s", dir) > 0);
  s = store_open(url);
  w = store_writer_open(s, "sparse.raw", NULL);
  o = output_create(w, (uint32_t)len);
  CHECK(output_write_sparse(o, buf, len, d, 65536) == 0);
  CHECK(output_write_sparse(o, buf, 100, d, 65536) == 0);  /* unaligned */
  CHECK(store_writer_commit(w) == 0);
  snprintf(path, sizeof path, "%s/sparse.raw", dir);
  CHECK(stat(path, &st) == 0);
  CHECK_U64(st.st_size, len + 100);
  CHECK((uint64_t)st.st_blocks * 512 < len / 2);
  fp = fopen(path, "rb");
  CHECK(fp != NULL);
  got = fread(back, 1, len, fp);
  fclose(fp);
  CHECK_U64(got, len);
  CHECK(memcmp(back, buf, len) == 0);
  output_close(o);
  store_close(s);
  free(url);
  free(buf);
  free(back);
}

int main(void)
{
  char *dir = test_tmpdir();

  test_vhd();
  test_tar();
  test_qcow2_layout();
  test_pool();
  test_output_digest();
  test_output_digest_mixed();
  test_pgzip(dir);
  test_output_sparse(dir);
  test_rmrf(dir);
  free(dir);
  TEST_MAIN_END();
}
