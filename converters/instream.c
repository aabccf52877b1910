/* instream.c - ranged reads of an output, with a read-ahead window. */
#include "instream.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/error.h"
#include "store/store.h"

/* Reads smaller than this go through the window; larger ones go straight
 * into the caller's buffer. */
#define WINDOW (1u << 20)
#define SMALL (64u << 10)

struct instream {
  struct store *s;
  char *key, *name;
  uint64_t size;
  uint8_t *win;
  uint64_t win_off;
  size_t win_len;
};

struct instream *instream_open(struct store *s, const char *key)
{
  struct instream *in = calloc(1, sizeof *in);
  int r;

  if (in == NULL)
    goto oom;
  in->s = s;
  in->key = strdup(key);
  if (in->key == NULL ||
      asprintf(&in->name, "%s/%s", store_url(s), key) == -1) {
    in->name = NULL;
    goto oom;
  }
  r = store_head(s, key, &in->size);
  if (r == -1)
    goto fail;
  if (r == 0) {
    ferry_error("%s does not exist", in->name);
    errno = ENOENT;
    goto fail;
  }
  in->win = malloc(WINDOW);
  if (in->win == NULL)
    goto oom;
  return in;
oom:
  ferry_error("out of memory");
fail:
  instream_close(in);
  return NULL;
}

uint64_t instream_size(const struct instream *in)
{
  return in->size;
}

const char *instream_name(const struct instream *in)
{
  return in->name;
}

static int get(struct instream *in, uint64_t off, void *buf, size_t len,
               size_t *got)
{
  if (store_get(in->s, in->key, off, buf, len, got) == -1) {
    ferry_error_prefix("read %s at %" PRIu64 ": ", in->name, off);
    return -1;
  }
  return 0;
}

int instream_read_some(struct instream *in, uint64_t off, void *buf,
                       size_t len, size_t *got)
{
  if (off >= in->size) {
    *got = 0;
    return 0;
  }
  if (len > in->size - off)
    len = (size_t)(in->size - off);
  if (len >= SMALL)
    return get(in, off, buf, len, got);
  if (off < in->win_off || off + len > in->win_off + in->win_len) {
    in->win_off = off;
    if (get(in, off, in->win, WINDOW, &in->win_len) == -1) {
      in->win_len = 0;
      return -1;
    }
    if (in->win_len < len)
      len = in->win_len;
  }
  memcpy(buf, in->win + (off - in->win_off), len);
  *got = len;
  return 0;
}

int instream_pread(struct instream *in, uint64_t off, void *buf, size_t len)
{
  size_t got;

  if (off > in->size || len > in->size - off) {
    ferry_error("%s is truncated: %zu bytes at offset %" PRIu64 " lie past "
                "its end (%" PRIu64 " bytes)", in->name, len, off, in->size);
    return -1;
  }
  if (instream_read_some(in, off, buf, len, &got) == -1)
    return -1;
  if (got != len) {
    ferry_error("%s changed while it was read (short read at %" PRIu64 ")",
                in->name, off);
    return -1;
  }
  return 0;
}

void instream_close(struct instream *in)
{
  if (in == NULL)
    return;
  free(in->key);
  free(in->name);
  free(in->win);
  free(in);
}
