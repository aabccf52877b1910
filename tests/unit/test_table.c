/* The chunk table and the image digest through a real file:// store. */
#include <unistd.h>

#include "util/error.h"
#include "image/image.h"
#include "store/store.h"
#include "test.h"

int main(void)
{
  char *dir = test_tmpdir(), *url;
  struct image_manifest m = { .version = 1, .disk_size = 10u << 20,
                              .chunk_size = 4u << 20, .generation = 1 };
  struct image_chunk c = { 0 }, got;
  struct table_writer *tw;
  struct table_reader *tr;
  uint8_t zero[DIGEST_LEN], d[DIGEST_LEN];
  struct digest_ctx *ctx;
  struct store *s;
  char *buf;
  size_t len;
  FILE *fp;
  char path[512];

  m.chunk_count = 3;
  CHECK(asprintf(&url, "file://%s/img", dir) > 0);
  s = store_open(url);
  CHECK(s != NULL);

  /* one data chunk (index 1) between two zero chunks */
  memset(c.digest, 0xab, DIGEST_LEN);
  c.index = 1;
  c.enc = ENC_ZSTD;
  c.stored_size = 1234;
  tw = table_writer_create(&m);
  CHECK(tw != NULL);
  CHECK(table_writer_add(tw, &c) == 0);
  c.index = 0;                                  /* out of order: refused */
  CHECK(table_writer_add(tw, &c) == -1);
  CHECK(table_writer_finish(tw, s, &m) == 0);
  table_writer_close(tw);
  CHECK_U64(m.data_chunks, 1);
  CHECK_U64(m.data_bytes, 4u << 20);
  CHECK_U64(m.stored_bytes, 1234);

  /* image digest = H(zero(4M) || ab.. || zero(2M)) */
  ctx = digest_create();
  CHECK(image_zero_digest(4u << 20, zero) == 0);
  digest_update(ctx, zero, DIGEST_LEN);
  digest_update(ctx, c.digest, DIGEST_LEN);
  CHECK(image_zero_digest(2u << 20, zero) == 0);
  digest_update(ctx, zero, DIGEST_LEN);
  digest_final(ctx, d);
  digest_close(ctx);
  CHECK(memcmp(d, m.image_digest, DIGEST_LEN) == 0);

  /* read back: one entry, then the verified end */
  tr = table_reader_open(s, &m);
  CHECK(table_reader_next(tr, &got) == 1);
  CHECK_U64(got.index, 1);
  CHECK_U64(got.stored_size, 1234);
  CHECK(got.enc == ENC_ZSTD);
  CHECK(table_reader_next(tr, &got) == 0);
  table_reader_close(tr);

  /* a table altered in the store is caught by its digest */
  CHECK(store_get_all(s, m.table_key, 4096, &buf, &len) == 0);
  buf[len - 2] = buf[len - 2] == '5' ? '6' : '5';   /* stored size digit */
  snprintf(path, sizeof path, "%s/img/%s", dir, m.table_key);
  fp = fopen(path, "w");
  CHECK(fp && fwrite(buf, 1, len, fp) == len);
  fclose(fp);
  free(buf);
  tr = table_reader_open(s, &m);
  CHECK(table_reader_next(tr, &got) == 1);
  CHECK(table_reader_next(tr, &got) == -1);
  CHECK_CONTAINS(ferry_errmsg(), "does not match its digest");
  table_reader_close(tr);

  /* malformed lines are refused with the reason */
  CHECK(image_table_parse_line("1 abc zstd 5", &m, &got) == -1);
  CHECK(image_table_parse_line("7 abababababababababababababababababababab"
                               "abababababababababababab zstd 5", &m, &got)
        == -1);
  CHECK_CONTAINS(ferry_errmsg(), "beyond the disk");
  CHECK(image_table_parse_line("2 abababababababababababababababababababab"
                               "abababababababababababab raw 5", &m, &got)
        == -1);
  CHECK_CONTAINS(ferry_errmsg(), "impossible stored size");
  CHECK(image_table_parse_line("2 abababababababababababababababababababab"
                               "abababababababababababab raw 2097152", &m,
                               &got) == 0);
  CHECK(image_table_parse_line("-1 abababababababababababababababababababab"
                               "abababababababababababab raw 2097152", &m,
                               &got) == -1);

  store_close(s);
  test_rmrf(dir);
  free(url);
  free(dir);
  TEST_MAIN_END();
}
