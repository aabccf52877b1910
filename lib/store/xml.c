/* store/xml.c - element lookup and text decoding (see xml.h). */
#include "store/xml.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/error.h"

static const char *find(const char *p, const char *end, const char *needle)
{
  size_t n = strlen(needle);

  for (; p + n <= end; p++)
    if (*p == *needle && memcmp(p, needle, n) == 0)
      return p;
  return NULL;
}

int xml_next(struct xml_span in, size_t *pos, const char *tag,
             struct xml_span *out)
{
  const char *end = in.p + in.len, *p = in.p + *pos;
  size_t n = strlen(tag);

  while (p < end && (p = memchr(p, '<', (size_t)(end - p))) != NULL) {
    const char *q = p + 1, *gt, *close;

    if ((size_t)(end - q) < n || memcmp(q, tag, n) != 0 ||
        (q[n] != '>' && q[n] != ' ' && q[n] != '/' && q[n] != '\t' &&
         q[n] != '\r' && q[n] != '\n')) {
      p = q;
      continue;
    }
    gt = memchr(q, '>', (size_t)(end - q));
    if (gt == NULL)
      return 0;
    if (gt[-1] == '/') {                        /* <tag/> */
      out->p = gt + 1;
      out->len = 0;
      *pos = (size_t)(gt + 1 - in.p);
      return 1;
    }
    /* the closing tag: "</tag>" (elements of one name do not nest in the
     * documents this reads) */
    for (close = gt + 1;
         (close = find(close, end, "</")) != NULL; close += 2)
      if ((size_t)(end - close) >= n + 3 &&
          memcmp(close + 2, tag, n) == 0 && close[2 + n] == '>')
        break;
    if (close == NULL)
      return 0;
    out->p = gt + 1;
    out->len = (size_t)(close - (gt + 1));
    *pos = (size_t)(close + n + 3 - in.p);
    return 1;
  }
  return 0;
}

char *xml_get(struct xml_span in, const char *tag)
{
  struct xml_span v;
  size_t pos = 0;

  if (!xml_next(in, &pos, tag, &v))
    return NULL;
  return xml_text(v);
}

/* Append code point c as UTF-8. */
static char *put_utf8(char *o, unsigned long c)
{
  if (c < 0x80) {
    *o++ = (char)c;
  } else if (c < 0x800) {
    *o++ = (char)(0xc0 | c >> 6);
    *o++ = (char)(0x80 | (c & 0x3f));
  } else if (c < 0x10000) {
    *o++ = (char)(0xe0 | c >> 12);
    *o++ = (char)(0x80 | (c >> 6 & 0x3f));
    *o++ = (char)(0x80 | (c & 0x3f));
  } else {
    *o++ = (char)(0xf0 | c >> 18);
    *o++ = (char)(0x80 | (c >> 12 & 0x3f));
    *o++ = (char)(0x80 | (c >> 6 & 0x3f));
    *o++ = (char)(0x80 | (c & 0x3f));
  }
  return o;
}

char *xml_text(struct xml_span s)
{
  static const struct { const char *ent; char c; } ents[] = {
    { "&amp;", '&' }, { "&lt;", '<' }, { "&gt;", '>' }, { "&quot;", '"' },
    { "&apos;", '\'' },
  };
  char *out = malloc(s.len + 1), *o = out;
  const char *p = s.p, *end = s.p + s.len;

  if (out == NULL) {
    ferry_error("out of memory");
    return NULL;
  }
  while (p < end) {
    size_t i;

    if (*p != '&') {
      *o++ = *p++;
      continue;
    }
    for (i = 0; i < sizeof ents / sizeof ents[0]; i++) {
      size_t n = strlen(ents[i].ent);

      if ((size_t)(end - p) >= n && memcmp(p, ents[i].ent, n) == 0) {
        *o++ = ents[i].c;
        p += n;
        break;
      }
    }
    if (i < sizeof ents / sizeof ents[0])
      continue;
    if (end - p > 3 && p[1] == '#') {
      int hex = p[2] == 'x' || p[2] == 'X';
      const char *q = p + (hex ? 3 : 2);
      unsigned long c = 0;

      /* a numeric reference takes at most 7 digits before ';' */
      while (q < end && q - p < 12 && *q != ';') {
        int d = *q >= '0' && *q <= '9' ? *q - '0'
              : hex && *q >= 'a' && *q <= 'f' ? *q - 'a' + 10
              : hex && *q >= 'A' && *q <= 'F' ? *q - 'A' + 10 : -1;

        if (d < 0)
          break;
        c = c * (hex ? 16 : 10) + (unsigned long)d;
        q++;
      }
      /* its UTF-8 (at most 4 bytes) is never longer than the reference
       * ("&#N;" is at least 4 bytes): the output fits in s.len */
      if (q < end && *q == ';' && c > 0 && c <= 0x10ffff) {
        o = put_utf8(o, c);
        p = q + 1;
        continue;
      }
    }
    *o++ = *p++;                                /* a stray '&' */
  }
  *o = '\0';
  return out;
}
