/* image/names.c - host and disk names that may become store keys. */
#include "image/names.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/error.h"

#define HOST_RULE "a host name (RFC 1123) is dot-separated labels of 1 to " \
  "63 letters, digits and hyphens, not starting or ending with a hyphen, " \
  "at most 253 characters in all"
#define DISK_RULE "a disk name is 1 to 64 of the characters A-Z a-z 0-9 . _ " \
  "-, not starting with a dot (such as sda or nvme0n1)"

static int is_alnum(unsigned char c)
{
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9');
}

/* Say which byte is not allowed: shown when printable ASCII, else as hex
 * (a NUL, a control character, a byte of a UTF-8 look-alike). */
static void bad_char(const char *what, unsigned char c, const char *rule)
{
  if (c > 0x20 && c < 0x7f)
    ferry_error("%s contains the character '%c': %s", what, c, rule);
  else
    ferry_error("%s contains the byte 0x%02x: %s", what, c, rule);
}

/* 0 if a name of len bytes is not empty and at most max long. */
static int length_ok(const char *s, size_t len, size_t max, const char *rule)
{
  if (s == NULL || len == 0) {
    ferry_error("is empty: %s", rule);
    return -1;
  }
  if (len > max) {
    ferry_error("is longer than %zu characters: %s", max, rule);
    return -1;
  }
  return 0;
}

int hostname_check(const char *s, size_t len)
{
  size_t i, label = 0;

  if (length_ok(s, len, HOSTNAME_MAX, HOST_RULE) == -1)
    return -1;
  /* the end of the name ends its last label as a dot does */
  for (i = 0; i <= len; i++) {
    unsigned char c = i < len ? (unsigned char)s[i] : '.';

    if (c == '.') {
      if (label == 0) {
        ferry_error("has an empty label (a leading, trailing or double "
                    "dot): %s", HOST_RULE);
        return -1;
      }
      if (s[i - 1] == '-') {
        ferry_error("has a label ending with a hyphen: %s", HOST_RULE);
        return -1;
      }
      label = 0;
      continue;
    }
    if (!is_alnum(c) && c != '-') {
      bad_char("is not a host name: it", c, HOST_RULE);
      return -1;
    }
    if (c == '-' && label == 0) {
      ferry_error("has a label starting with a hyphen: %s", HOST_RULE);
      return -1;
    }
    if (++label > 63) {
      ferry_error("has a label longer than 63 characters: %s", HOST_RULE);
      return -1;
    }
  }
  return 0;
}

int diskname_check(const char *s, size_t len)
{
  size_t i;

  if (length_ok(s, len, DISKNAME_MAX, DISK_RULE) == -1)
    return -1;
  if (s[0] == '.') {
    ferry_error("starts with a dot: %s", DISK_RULE);
    return -1;
  }
  for (i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];

    if (!is_alnum(c) && c != '.' && c != '_' && c != '-') {
      bad_char("is not a disk name: it", c, DISK_RULE);
      return -1;
    }
  }
  return 0;
}

char *image_url(const char *store, const char *host, const char *disk,
                const char *suffix)
{
  size_t slen = store ? strlen(store) : 0;
  char *url;

  if (slen == 0) {
    ferry_error("no store URL to put the image in");
    return NULL;
  }
  if (hostname_check(host, host ? strlen(host) : 0) == -1) {
    ferry_error_prefix("host name ");
    return NULL;
  }
  if (diskname_check(disk, disk ? strlen(disk) : 0) == -1) {
    ferry_error_prefix("disk name ");
    return NULL;
  }
  if (suffix && suffix[0] &&
      (suffix[0] != '.' || diskname_check(suffix + 1,
                                          strlen(suffix + 1)) == -1)) {
    ferry_error("image suffix must be an extension such as .vmdk");
    return NULL;
  }
  while (slen > 0 && store[slen - 1] == '/')
    slen--;
  if (asprintf(&url, "%.*s/%s/%s%s", (int)slen, store, host, disk,
               suffix ? suffix : "") == -1) {
    ferry_error("out of memory");
    return NULL;
  }
  return url;
}

/* 1 if the n bytes at s are lower-case hex digits. */
static int all_hex(const char *s, size_t n)
{
  size_t i;

  for (i = 0; i < n; i++)
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
      return 0;
  return 1;
}

int image_key_check(const char *s, size_t len, char hex[65])
{
  static const char chunks[] = "chunks/", tables[] = "tables/";
  static const char gens[] = "generations/";
  size_t c = sizeof chunks - 1, t = sizeof tables - 1, g = sizeof gens - 1;
  size_t i;

  if (s && memchr(s, '\0', len) == NULL) {
    if (len == 13 && memcmp(s, "manifest.json", 13) == 0)
      return IMAGE_KEY_MANIFEST;
    if (len > g + 5 && len <= g + 20 + 5 && memcmp(s, gens, g) == 0 &&
        memcmp(s + len - 5, ".json", 5) == 0) {
      for (i = g; i < len - 5 && s[i] >= '0' && s[i] <= '9'; i++)
        ;
      if (i == len - 5)
        return IMAGE_KEY_GENERATION;
    }
    if (len == t + 64 + 4 && memcmp(s, tables, t) == 0 &&
        all_hex(s + t, 64) && memcmp(s + t + 64, ".tsv", 4) == 0) {
      if (hex) {
        memcpy(hex, s + t, 64);
        hex[64] = '\0';
      }
      return IMAGE_KEY_TABLE;
    }
    if (len >= c + 64 && memcmp(s, chunks, c) == 0 && all_hex(s + c, 64) &&
        (len == c + 64 ||
         (len == c + 64 + 3 && memcmp(s + c + 64, ".gz", 3) == 0) ||
         (len == c + 64 + 4 && memcmp(s + c + 64, ".zst", 4) == 0))) {
      if (hex) {
        memcpy(hex, s + c, 64);
        hex[64] = '\0';
      }
      return len == c + 64 ? IMAGE_KEY_CHUNK : IMAGE_KEY_CHUNK_ENCODED;
    }
  }
  ferry_error("is not a key of a chunked image: use manifest.json, "
              "generations/<N>.json, tables/<sha256>.tsv or "
              "chunks/<sha256>[.gz|.zst]");
  return -1;
}
