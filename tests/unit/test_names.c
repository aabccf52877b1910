/* Host and disk names that may become store keys: what the validators
 * accept and refuse, and that image_url builds only from valid names. */
#include <stdlib.h>

#include "image/names.h"
#include "util/error.h"
#include "test.h"

#define HOST_OK(s) CHECK(hostname_check(s, strlen(s)) == 0)
#define HOST_BAD(s) CHECK(hostname_check(s, strlen(s)) == -1)
#define DISK_OK(s) CHECK(diskname_check(s, strlen(s)) == 0)
#define DISK_BAD(s) CHECK(diskname_check(s, strlen(s)) == -1)

int main(void)
{
  char big[65537];
  char *u;

  /* every hostname the fixtures and tests use */
  HOST_OK("web01");
  HOST_OK("db01.example.org");
  HOST_OK("ip-203-0-113-25");
  HOST_OK("web-azure-01");
  HOST_OK("a");
  HOST_OK("0");
  HOST_OK("WEB01");

  /* traversal and injection */
  HOST_BAD("../../x");
  HOST_BAD("..");
  HOST_BAD(".");
  HOST_BAD("a/b");
  CHECK_CONTAINS(ferry_errmsg(), "the character '/'");
  CHECK_CONTAINS(ferry_errmsg(), "RFC 1123");
  HOST_BAD("%2e%2e%2fx");
  HOST_BAD("web01\xef\xbc\x8f" "x");        /* U+FF0F fullwidth solidus */
  CHECK_CONTAINS(ferry_errmsg(), "byte 0xef");
  HOST_BAD("\xe2\x80\xa4\xe2\x80\xa4");     /* U+2024 one dot leader */
  HOST_BAD("a\\b");
  HOST_BAD("a b");
  HOST_BAD("");
  CHECK_CONTAINS(ferry_errmsg(), "is empty");
  CHECK(hostname_check("web\0/../x", 10) == -1);   /* JSON "\u0000" */
  CHECK_CONTAINS(ferry_errmsg(), "byte 0x00");

  /* RFC 1123 shape */
  HOST_BAD("-web");
  HOST_BAD("web-");
  HOST_BAD("a.-b.c");
  HOST_BAD("a-.b");
  HOST_BAD("web01.");
  HOST_BAD(".web01");
  HOST_BAD("a..b");
  memset(big, 'a', 64);
  big[64] = '\0';
  HOST_BAD(big);                            /* a 64-character label */
  CHECK_CONTAINS(ferry_errmsg(), "longer than 63");
  big[63] = '\0';
  HOST_OK(big);
  /* 253 in all is the limit: 4 labels of 63 with dots = 255 */
  for (int i = 0; i < 253; i++)
    big[i] = (i % 64 == 63) ? '.' : 'a';
  big[253] = '\0';
  HOST_OK(big);
  big[253] = 'a';
  big[254] = '\0';
  HOST_BAD(big);
  CHECK_CONTAINS(ferry_errmsg(), "longer than 253");
  memset(big, 'a', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  HOST_BAD(big);                            /* 64 KiB */

  /* disk names */
  DISK_OK("sda");
  DISK_OK("nvme0n1");
  DISK_OK("xvda");
  DISK_OK("dm-0");
  DISK_OK("disk_1.img");
  DISK_BAD("");
  DISK_BAD(".");
  DISK_BAD("..");
  DISK_BAD(".hidden");
  CHECK_CONTAINS(ferry_errmsg(), "starts with a dot");
  DISK_BAD("../sda");
  DISK_BAD("sda/../../x");
  DISK_BAD("/etc/shadow");
  CHECK_CONTAINS(ferry_errmsg(), "the character '/'");
  DISK_BAD("%2e%2e%2f");
  DISK_BAD("sda\xef\xbc\x8f" "x");
  DISK_BAD("\xe2\x80\xa4\xe2\x80\xa4");
  DISK_BAD("sd a");
  CHECK(diskname_check("sda\0/x", 6) == -1);
  memset(big, 'a', 65);
  big[65] = '\0';
  DISK_BAD(big);
  CHECK_CONTAINS(ferry_errmsg(), "longer than 64");
  big[64] = '\0';
  DISK_OK(big);

  /* the one builder of image URLs */
  u = image_url("file:///srv/store//", "web01", "sda", NULL);
  CHECK_STR(u, "file:///srv/store/web01/sda");
  free(u);
  u = image_url("s3://b/p", "db01.example.org", "vda", ".vmdk");
  CHECK_STR(u, "s3://b/p/db01.example.org/vda.vmdk");
  free(u);
  u = image_url("gs://b", "web01", "sda", ".tar.gz");
  CHECK_STR(u, "gs://b/web01/sda.tar.gz");
  free(u);
  CHECK(image_url("file:///s", "../../x", "sda", NULL) == NULL);
  CHECK_CONTAINS(ferry_errmsg(), "host name ");
  CHECK(image_url("file:///s", "web01", "..", NULL) == NULL);
  CHECK_CONTAINS(ferry_errmsg(), "disk name ");
  CHECK(image_url("file:///s", "web01", "a/b", NULL) == NULL);
  CHECK(image_url("file:///s", NULL, "sda", NULL) == NULL);
  CHECK(image_url("file:///s", "web01", "sda", "/../x") == NULL);
  CHECK(image_url("", "web01", "sda", NULL) == NULL);

  /* the keys of an image, the only ones the server grants access to */
  {
#define H64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define KEY(s) image_key_check(s, strlen(s), hex)
    char hex[65];

    CHECK(KEY("manifest.json") == IMAGE_KEY_MANIFEST);
    CHECK(KEY("generations/000001.json") == IMAGE_KEY_GENERATION);
    CHECK(KEY("tables/" H64 ".tsv") == IMAGE_KEY_TABLE);
    CHECK_STR(hex, H64);
    CHECK(KEY("chunks/" H64) == IMAGE_KEY_CHUNK);
    CHECK(KEY("chunks/" H64 ".zst") == IMAGE_KEY_CHUNK_ENCODED);
    CHECK(KEY("chunks/" H64 ".gz") == IMAGE_KEY_CHUNK_ENCODED);
    CHECK(KEY("chunks/" H64 ".bz2") == -1);
    CHECK_CONTAINS(ferry_errmsg(), "is not a key of a chunked image");
    CHECK(KEY("../web02/sda/manifest.json") == -1);
    CHECK(KEY("/manifest.json") == -1);
    CHECK(KEY("chunks/../manifest.json") == -1);
    CHECK(KEY("chunks/" H64 "/../../x") == -1);
    CHECK(KEY("chunks/0123456789ABCDEF0123456789abcdef0123456789abcdef"
              "0123456789abcdef") == -1);       /* upper case */
    CHECK(KEY("generations/.json") == -1);
    CHECK(KEY("generations/1.json/x") == -1);
    CHECK(KEY("tables/" H64 ".tsv.x") == -1);
    CHECK(KEY("manifest.json.bak") == -1);
    CHECK(KEY("") == -1);
    CHECK(image_key_check("manifest.json\0x", 15, hex) == -1);
    CHECK(image_key_check("manifest.json", 12, hex) == -1);
#undef KEY
#undef H64
  }
  TEST_MAIN_END();
}
