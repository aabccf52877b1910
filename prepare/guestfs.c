/* guestfs.c - the guest's files and programs, through libguestfs. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "prepare.h"
#include "util/cleanup.h"
#include "util/error.h"

/* The guest's error, once: libguestfs' last error names the call. */
static void gf_error(struct prep *x, const char *what, const char *path)
{
  const char *e = guestfs_last_error(x->g);

  ferry_error("%s %s in the guest: %s", what, path, e ? e : "failed");
}

int gf_is_file(struct prep *x, const char *path)
{
  int r = guestfs_is_file_opts(x->g, path, GUESTFS_IS_FILE_OPTS_FOLLOWSYMLINKS,
                               1, -1);

  return r == 1;
}

char *gf_read(struct prep *x, const char *path, size_t *len)
{
  size_t n = 0;
  char *text = guestfs_read_file(x->g, path, &n);

  if (text == NULL) {
    gf_error(x, "cannot read", path);
    return NULL;
  }
  if (len)
    *len = n;
  return text;
}

/* Keep the guest's original, once, under PREP_ORIG_DIR with its full
 * path: what preparation changed stays visible in the prepared disk
 * itself, and no copy sits where the guest's tools would read it as a
 * configuration of its own (NetworkManager reads every file of
 * system-connections/, initscripts every ifcfg-*). */
static int keep_original(struct prep *x, const char *path)
{
  char orig[600], dir[600], *slash;

  snprintf(orig, sizeof orig, "%s%s", PREP_ORIG_DIR, path);
  if (guestfs_exists(x->g, orig) == 1 ||
      guestfs_is_file_opts(x->g, path, -1) != 1)
    return 0;
  snprintf(dir, sizeof dir, "%s", orig);
  slash = strrchr(dir, '/');
  if (slash)
    *slash = 0;
  if (guestfs_mkdir_p(x->g, dir) == -1 ||
      guestfs_cp_a(x->g, path, orig) == -1) {
    gf_error(x, "cannot keep a copy of", path);
    return -1;
  }
  return 0;
}

int gf_write(struct prep *x, const char *path, const char *text)
{
  if (keep_original(x, path) == -1)
    return -1;
  if (guestfs_write(x->g, path, text, strlen(text)) == -1) {
    gf_error(x, "cannot write", path);
    return -1;
  }
  return 0;
}

int gf_remove(struct prep *x, const char *path)
{
  if (keep_original(x, path) == -1)
    return -1;
  if (guestfs_rm_f(x->g, path) == -1) {
    gf_error(x, "cannot remove", path);
    return -1;
  }
  return 0;
}

char *gf_sh(struct prep *x, const char *cmd)
{
  CLEANUP_FREE char *full = NULL;
  char *out;

  /* the daemon's environment is the appliance's: give the guest's tools
   * their own PATH and a locale every guest has */
  if (asprintf(&full, "export PATH=/usr/local/sbin:/usr/local/bin:"
               "/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C; %s", cmd) == -1) {
    ferry_error("out of memory");
    return NULL;
  }
  out = guestfs_sh(x->g, full);
  if (out == NULL) {
    const char *e = guestfs_last_error(x->g);

    ferry_error("'%s' failed in the guest: %s", cmd, e ? e : "failed");
  }
  return out;
}

const char *gf_which(struct prep *x, const char *const *paths)
{
  size_t i;

  for (i = 0; paths[i]; i++)
    if (guestfs_is_file_opts(x->g, paths[i],
                             GUESTFS_IS_FILE_OPTS_FOLLOWSYMLINKS, 1, -1) == 1)
      return paths[i];
  return NULL;
}

void prep_change(struct prep *x, const char *file, const char *why,
                 const char *fmt, ...)
{
  char what[1024];
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  json_array_append_new(x->changes, json_pack("{s:s, s:s, s:s}", "file",
                                              file, "change", what, "why",
                                              why));
  if (!x->quiet)
    fprintf(stderr, "ferry-prepare: %s: %s (%s)\n", file, what, why);
}

void prep_note(struct prep *x, const char *fmt, ...)
{
  char what[1024];
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  json_array_append_new(x->notes, json_string(what));
  if (!x->quiet)
    fprintf(stderr, "ferry-prepare: %s\n", what);
}

const char *gf_first_file(struct prep *x, const char *const *forms,
                          const char *arg, char *buf, size_t cap)
{
  size_t i;

  for (i = 0; forms[i]; i++) {
    snprintf(buf, cap, forms[i], arg);
    if (gf_is_file(x, buf))
      return buf;
  }
  return NULL;
}

void gf_free_strings(char **v)
{
  size_t i;

  for (i = 0; v && v[i]; i++)
    free(v[i]);
  free(v);
}
