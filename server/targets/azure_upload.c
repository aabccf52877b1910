/* azure_upload.c - Put Page of a fixed VHD's data pages into a managed
 * disk's upload SAS (azure_upload.h).
 *
 * Blob service REST API, "Put Page": x-ms-page-write: update, a range of
 * whole 512-byte pages, at most 4 MiB a call.  The VHD is read from the
 * store 4 MiB at a time, so memory stays bounded whatever the disk's
 * size; an all-zero page is never sent (a new upload disk reads as
 * zeros).  "Get Page Ranges" on the same SAS tells a re-run which pages
 * an earlier run wrote: each Put Page lands whole or not at all. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/cleanup.h"
#include "util/error.h"
#include "util/zero.h"
#include "net/http_client.h"
#include "store/store.h"
#include "azure_upload.h"
#include "target.h"
#include "cloud.h"
#include "../tasks.h"

#define BLOB_VERSION "2021-08-06"
#define PAGE 512u
#define PUT_PAGE_MAX (4u << 20)
#define RANGES_CAP (32u << 20)

struct range {
  uint64_t start, end;       /* inclusive, as Get Page Ranges says */
};

int azure_object_size(const char *src, uint64_t *size)
{
  const char *key;
  struct store *s = target_store_object(src, &key);
  int rc;

  if (s == NULL)
    return -1;
  rc = store_head(s, key, size);
  if (rc == 0)
    ferry_error("the converted disk %s is not in the store: convert it "
                "again (ferry migrate)", src);
  store_close(s);
  return rc == 1 ? 0 : -1;
}

/* The disk blob's written page ranges, ascending.  0 with *out (caller
 * frees) and *n, or -1. */
static int page_ranges(struct task_ctx *t, const char *what, const char *sas,
                       struct range **out, size_t *n)
{
  static const char *const hdrs[] = { "x-ms-version: " BLOB_VERSION, NULL };
  CLEANUP_FREE char *url = NULL;
  struct http_response resp = { 0 };
  struct cloud_req r = { 0 };
  struct range *v = NULL;
  size_t cap = 0, len = 0;
  const char *p;
  int rc = -1;

  if (asprintf(&url, "%s&comp=pagelist", sas) == -1) {
    ferry_error("out of memory");
    return -1;
  }
  r = (struct cloud_req){ .what = "Azure Get Page Ranges", .method = "GET",
                          .url = url, .headers = hdrs,
                          .body_cap = RANGES_CAP };
  if (cloud_request(t, &r, &resp) == -1)
    goto out;
  if (resp.status != 200) {
    ferry_error("Azure Get Page Ranges of %s: HTTP %ld: the disk's upload "
                "URL does not answer; run the migration again", what,
                resp.status);
    goto out;
  }
  for (p = resp.body; p && (p = strstr(p, "<PageRange>")) != NULL;) {
    const char *s = strstr(p, "<Start>"), *e = strstr(p, "<End>");

    if (s == NULL || e == NULL)
      break;
    if (len == cap) {
      struct range *nv;

      cap = cap ? cap * 2 : 64;
      if ((nv = realloc(v, cap * sizeof *v)) == NULL) {
        ferry_error("out of memory");
        goto out;
      }
      v = nv;
    }
    v[len].start = strtoull(s + 7, NULL, 10);
    v[len].end = strtoull(e + 5, NULL, 10);
    len++;
    p = e;
  }
  *out = v;
  *n = len;
  v = NULL;
  rc = 0;
out:
  free(v);
  http_response_free(&resp);
  return rc;
}

/* 1 when [a, b] lies inside one of the ranges (ascending; *i moves on
 * with the ascending runs asked about). */
static int covered(const struct range *v, size_t n, size_t *i, uint64_t a,
                   uint64_t b)
{
  while (*i < n && v[*i].end < a)
    (*i)++;
  return *i < n && v[*i].start <= a && b <= v[*i].end;
}

static int put_page(struct task_ctx *t, const char *what, const char *url,
                    uint64_t off, const char *buf, size_t len)
{
  char range[80];
  const char *hdrs[] = { "x-ms-page-write: update", range,
                         "x-ms-version: " BLOB_VERSION, NULL };
  struct http_response resp = { 0 };
  struct cloud_req r = {
    .what = "Azure Put Page", .method = "PUT", .url = url,
    .content_type = "application/octet-stream", .body = buf,
    .body_len = len, .headers = hdrs, .timeout = 300,
  };
  int rc = -1;

  snprintf(range, sizeof range, "x-ms-range: bytes=%" PRIu64 "-%" PRIu64,
           off, off + len - 1);
  if (cloud_request(t, &r, &resp) == -1)
    goto out;
  if (resp.status != 201) {
    const char *code = strstr(resp.body ? resp.body : "", "<Code>");
    int n = code ? (int)strcspn(code + 6, "<") : 0;

    ferry_error("Azure Put Page of %s at offset %" PRIu64 ": HTTP %ld %.*s%s",
                what, off, resp.status, n, code ? code + 6 : "",
                resp.status == 403 ? ": the disk's upload access ended or "
                "was refused; run the migration again" : "");
    goto out;
  }
  rc = 0;
out:
  http_response_free(&resp);
  return rc;
}

int azure_upload(struct task_ctx *t, const char *what, const char *sas,
                 const char *src, uint64_t size, int resume,
                 struct azure_upload_stats *st)
{
  CLEANUP_FREE char *buf = NULL, *url = NULL;
  CLEANUP_FREE struct range *done = NULL;
  size_t ndone = 0, di = 0;
  const char *key;
  struct store *s = NULL;
  uint64_t off = 0, next_report;
  int rc = -1;

  *st = (struct azure_upload_stats){ 0 };
  if (size == 0 || size % PAGE != 0) {
    ferry_error("%s is %" PRIu64 " bytes, not a whole number of 512-byte "
                "pages: not a fixed VHD", src, size);
    return -1;
  }
  if (strchr(sas, '?') == NULL) {
    ferry_error("Azure gave %s an upload URL without a SAS", what);
    return -1;
  }
  if (asprintf(&url, "%s&comp=page", sas) == -1) {
    url = NULL;
    ferry_error("out of memory");
    return -1;
  }
  if (resume && page_ranges(t, what, sas, &done, &ndone) == -1)
    return -1;
  if ((buf = malloc(PUT_PAGE_MAX)) == NULL) {
    ferry_error("out of memory");
    return -1;
  }
  if ((s = target_store_object(src, &key)) == NULL)
    return -1;
  next_report = size / 4;
  while (off < size) {
    size_t want = size - off < PUT_PAGE_MAX ? (size_t)(size - off)
                                            : PUT_PAGE_MAX;
    size_t got = 0, i = 0;

    if (task_ctx_stopping(t)) {
      ferry_error("the upload of %s stopped at %" PRIu64 " of %" PRIu64
                  " bytes: the task is stopping", what, off, size);
      goto out;
    }
    if (store_get(s, key, off, buf, want, &got) == -1)
      goto out;
    if (got != want) {
      ferry_error("%s ended at %" PRIu64 " bytes, not %" PRIu64 ": the "
                  "converted disk changed while it was uploaded", src,
                  off + got, size);
      goto out;
    }
    while (i < got) {
      size_t j;

      if (buf_is_zero(buf + i, PAGE)) {
        i += PAGE;
        continue;
      }
      for (j = i + PAGE; j < got && !buf_is_zero(buf + j, PAGE); j += PAGE)
        ;
      if (covered(done, ndone, &di, off + i, off + j - 1)) {
        st->already += j - i;
      } else {
        if (put_page(t, what, url, off + i, buf + i, j - i) == -1)
          goto out;
        st->sent += j - i;
        st->requests++;
      }
      i = j;
    }
    off += got;
    if (off >= next_report && off < size) {
      task_ctx_event(t, "uploading %s: %" PRIu64 " of %" PRIu64 " MiB read, "
                     "%" PRIu64 " MiB of data sent", what, off >> 20,
                     size >> 20, st->sent >> 20);
      next_report += size / 4;
    }
  }
  rc = 0;
out:
  store_close(s);
  return rc;
}
