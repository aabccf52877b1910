/* The manifest: round trip, and rejection of every malformed shape with a
 * message that says what is wrong. */
#include "util/error.h"
#include "image/image.h"
#include "test.h"

static const char *good =
  "{\"format\": \"ferry-chunked-image\", \"version\": 1, \"hash\": \"sha256\","
  " \"disk_size\": 10485761, \"chunk_size\": 4194304, \"chunk_count\": 3,"
  " \"generation\": 2, \"data_chunks\": 1, \"data_bytes\": 4194304,"
  " \"stored_bytes\": 1000, \"image_digest\": "
  "\"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\","
  " \"table\": {\"key\": \"tables/x.tsv\", \"digest\": "
  "\"ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100\","
  " \"size\": 90}}";

/* good with one substring replaced */
static int parse_edit(const char *from, const char *to, const char **msg)
{
  char buf[2048];
  const char *at = strstr(good, from);
  struct image_manifest m;
  int r;

  if (at == NULL) {
    fprintf(stderr, "test bug: '%s' not in the manifest\n", from);
    exit(2);
  }
  snprintf(buf, sizeof buf, "%.*s%s%s", (int)(at - good), good, to,
           at + strlen(from));
  r = image_manifest_parse(buf, strlen(buf), "test.json", &m);
  *msg = ferry_errmsg();
  return r;
}

int main(void)
{
  struct image_manifest m, m2;
  const char *msg;
  char *text;

  CHECK(image_manifest_parse(good, strlen(good), "test.json", &m) == 0);
  CHECK_U64(m.disk_size, 10485761);
  CHECK_U64(m.chunk_size, 4194304);
  CHECK_U64(m.chunk_count, 3);
  CHECK_U64(m.generation, 2);
  CHECK_U64(m.table_size, 90);
  CHECK_STR(m.table_key, "tables/x.tsv");
  CHECK_U64(m.image_digest[1], 0x11);
  CHECK_U64(image_chunk_len(&m, 0), 4194304);
  CHECK_U64(image_chunk_len(&m, 2), 2097153);    /* the short tail chunk */
  CHECK_U64(image_chunk_len(&m, 3), 0);

  /* format -> parse gives the same manifest */
  text = image_manifest_format(&m);
  CHECK(text != NULL);
  CHECK(image_manifest_parse(text, strlen(text), "again", &m2) == 0);
  CHECK(memcmp(&m, &m2, sizeof m) == 0);
  free(text);

  /* a newer version is refused, telling the user to upgrade */
  CHECK(parse_edit("\"version\": 1", "\"version\": 2", &msg) == -1);
  CHECK_CONTAINS(msg, "version 2");
  CHECK_CONTAINS(msg, "upgrade ferry");
  CHECK(parse_edit("\"version\": 1", "\"version\": 0", &msg) == -1);
  CHECK(parse_edit("\"version\": 1", "\"version\": \"1\"", &msg) == -1);
  CHECK_CONTAINS(msg, "'version'");

  /* malformed shapes, each named */
  CHECK(parse_edit("\"format\": \"ferry-chunked-image\"",
                   "\"format\": \"qcow2\"", &msg) == -1);
  CHECK_CONTAINS(msg, "not a ferry chunked image");
  CHECK(parse_edit("\"chunk_size\": 4194304", "\"chunk_size\": 4194303",
                   &msg) == -1);
  CHECK_CONTAINS(msg, "power of two");
  CHECK(parse_edit("\"chunk_size\": 4194304", "\"chunk_size\": 65536",
                   &msg) == -1);
  CHECK(parse_edit("\"chunk_count\": 3", "\"chunk_count\": 4", &msg) == -1);
  CHECK_CONTAINS(msg, "chunk_count");
  CHECK(parse_edit("\"disk_size\": 10485761", "\"disk_size\": -1", &msg)
        == -1);
  CHECK_CONTAINS(msg, "'disk_size'");
  CHECK(parse_edit("\"data_chunks\": 1", "\"data_chunks\": 9", &msg) == -1);
  CHECK(parse_edit("\"image_digest\": \"00", "\"image_digest\": \"zz", &msg)
        == -1);
  CHECK_CONTAINS(msg, "'image_digest'");
  CHECK(parse_edit("\"key\": \"tables/x.tsv\"",
                   "\"key\": \"../../etc/passwd\"", &msg) == -1);
  CHECK_CONTAINS(msg, "table.key");
  CHECK(parse_edit("\"hash\": \"sha256\"", "\"hash\": \"md5\"", &msg) == -1);
  CHECK(parse_edit("\"generation\": 2, ", "", &msg) == -1);
  CHECK_CONTAINS(msg, "'generation' is missing");
  CHECK(parse_edit("}}", "}", &msg) == -1);
  CHECK_CONTAINS(msg, "not valid JSON");
  CHECK(image_manifest_parse("[1]", 3, "arr.json", &m) == -1);
  CHECK_CONTAINS(ferry_errmsg(), "arr.json");
  CHECK(parse_edit("\"version\": 1,", "\"version\": 1, \"version\": 1,",
                   &msg) == -1);   /* duplicate keys are ambiguous */

  /* prepared generations: two optional fields, absent in a clone's
   * manifest (and never written there), round-tripped when present */
  CHECK(image_manifest_parse(good, strlen(good), "test.json", &m) == 0);
  CHECK_U64(m.prepared_from, 0);
  CHECK_STR(m.prepared_for, "");
  text = image_manifest_format(&m);
  CHECK(text != NULL && strstr(text, "prepared") == NULL);
  free(text);
  CHECK(parse_edit("\"generation\": 2,", "\"generation\": 2, "
                   "\"prepared_from\": 1, \"prepared_for\": \"aws\",", &msg)
        == 0);
  m.prepared_from = 1;
  memcpy(m.prepared_for, "aws", 4);
  text = image_manifest_format(&m);
  CHECK(text != NULL);
  CHECK(image_manifest_parse(text, strlen(text), "again", &m2) == 0);
  CHECK(memcmp(&m, &m2, sizeof m) == 0);
  CHECK_U64(m2.prepared_from, 1);
  CHECK_STR(m2.prepared_for, "aws");
  free(text);
  CHECK(parse_edit("\"generation\": 2,", "\"generation\": 2, "
                   "\"prepared_from\": 1,", &msg) == 0);
  CHECK(parse_edit("\"generation\": 2,", "\"generation\": 2, "
                   "\"prepared_from\": 2,", &msg) == -1);
  CHECK_CONTAINS(msg, "'prepared_from' (2) must name an earlier generation");
  CHECK(parse_edit("\"generation\": 2,", "\"generation\": 2, "
                   "\"prepared_from\": 0,", &msg) == -1);
  CHECK(parse_edit("\"generation\": 2,", "\"generation\": 2, "
                   "\"prepared_from\": \"1\",", &msg) == -1);
  CHECK_CONTAINS(msg, "'prepared_from' must be a non-negative integer");
  CHECK(parse_edit("\"generation\": 2,", "\"generation\": 2, "
                   "\"prepared_for\": \"aws\",", &msg) == -1);
  CHECK_CONTAINS(msg, "'prepared_for' without 'prepared_from'");
  CHECK(parse_edit("\"generation\": 2,", "\"generation\": 2, "
                   "\"prepared_from\": 1, \"prepared_for\": \"a/b\",", &msg)
        == -1);
  CHECK_CONTAINS(msg, "'prepared_for' must be 1 to 63");
  CHECK(parse_edit("\"generation\": 2,", "\"generation\": 2, "
                   "\"prepared_from\": 1, \"prepared_for\": \"\",", &msg)
        == -1);
  CHECK(parse_edit("\"generation\": 2,", "\"generation\": 2, "
                   "\"prepared_from\": 1, \"prepared_for\": 7,", &msg) == -1);
  TEST_MAIN_END();
}
