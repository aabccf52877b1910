/* kmod.c - which drivers a guest kernel has, and which its initramfs
 * holds: module names read from modules.dep / modules.builtin and from the
 * initramfs listing, compared as the kernel does ('-' and '_' alike). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kmod.h"
#include "util/cleanup.h"

/* The module name of a path ".../xen-blkfront.ko.xz" as "xen_blkfront"
 * into out; 0 if the path is not a module. */
static int module_name(const char *path, size_t len, char *out, size_t cap)
{
  const char *base = path, *ko = NULL, *p;
  size_t n, i;

  for (p = path; p < path + len; p++)
    if (*p == '/')
      base = p + 1;
  for (p = base; p + 3 <= path + len; p++)
    if (memcmp(p, ".ko", 3) == 0 &&
        (p + 3 == path + len || p[3] == '.'))
      ko = p;
  if (ko == NULL)
    return 0;
  n = (size_t)(ko - base);
  if (n == 0 || n >= cap)
    return 0;
  for (i = 0; i < n; i++)
    out[i] = base[i] == '-' ? '_' : base[i];
  out[n] = 0;
  return 1;
}

static void norm(const char *name, char *out, size_t cap)
{
  size_t i;

  for (i = 0; name[i] && i + 1 < cap; i++)
    out[i] = name[i] == '-' ? '_' : name[i];
  out[i] = 0;
}

int kmod_listed(const char *text, const char *name, int field)
{
  const char *line = text, *end, *tok;
  char want[64], got[64];

  if (text == NULL)
    return 0;
  norm(name, want, sizeof want);
  for (; *line; line = *end ? end + 1 : end) {
    size_t len;

    end = strchr(line, '\n');
    if (end == NULL)
      end = line + strlen(line);
    tok = line;
    len = (size_t)(end - line);
    if (field == KMOD_FIELD_FIRST) {
      const char *colon = memchr(line, ':', len);

      if (colon)
        len = (size_t)(colon - line);
    } else {
      /* the last blank-separated field (lsinitrd prints ls -l lines) */
      const char *p;

      for (p = line; p < end; p++)
        if (*p == ' ' || *p == '\t')
          tok = p + 1;
      len = (size_t)(end - tok);
    }
    if (module_name(tok, len, got, sizeof got) && strcmp(got, want) == 0)
      return 1;
  }
  return 0;
}
