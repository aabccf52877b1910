/* discover_lvm.c - LVM physical volumes, volume groups, logical volumes.
 *
 * Two sources, both below the root, no lvm tool run:
 *   etc/lvm/backup/<vg>  the text metadata LVM itself writes after every
 *     change (lvm.conf backup = 1, the default): names, UUIDs, extent
 *     size, PV sizes and extents, LV segments;
 *   sys/block/dm-N/{dm/name,dm/uuid,slaves/,size,dev}  which LVs are
 *     active now, their device node, and the PVs under them.
 * An active LV missing from the metadata (backups off) is still listed
 * from sysfs; what only the metadata knows is then null. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/cleanup.h"
#include "discover_int.h"
#include "util/error.h"

/* Copy n bytes of s with every "--" made '-'. */
static char *undouble(const char *s, size_t n)
{
  char *out = malloc(n + 1), *w = out;

  if (out == NULL)
    return NULL;
  for (size_t i = 0; i < n; i++) {
    *w++ = s[i];
    if (s[i] == '-' && i + 1 < n && s[i + 1] == '-')
      i++;
  }
  *w = '\0';
  return out;
}

int dm_name_split(const char *dm, char **vg, char **lv)
{
  size_t n = strlen(dm), i;

  *vg = *lv = NULL;
  /* the separator is the first '-' that is not doubled */
  for (i = 0; i < n; i++) {
    if (dm[i] != '-')
      continue;
    if (dm[i + 1] == '-') {
      i++;
      continue;
    }
    break;
  }
  if (i == 0 || i + 1 >= n)
    return -1;
  *vg = undouble(dm, i);
  *lv = undouble(dm + i + 1, n - i - 1);
  if (*vg == NULL || *lv == NULL) {
    free(*vg);
    free(*lv);
    *vg = *lv = NULL;
    return -1;
  }
  return 0;
}

/* ---- LVM2 text metadata (lib/format_text in LVM2; lvm.conf syntax) ---- */

struct lvm_lexer {
  const char *p;
  int line;
};

static void lvm_skip(struct lvm_lexer *lx)
{
  for (;;) {
    while (isspace((unsigned char)*lx->p)) {
      if (*lx->p == '\n')
        lx->line++;
      lx->p++;
    }
    if (*lx->p != '#')
      return;
    while (*lx->p && *lx->p != '\n')
      lx->p++;
  }
}

static int is_ident_char(int c)
{
  return isalnum(c) || c == '_' || c == '.' || c == '+' || c == '-';
}

static json_t *lvm_value(struct lvm_lexer *lx);

static json_t *lvm_string(struct lvm_lexer *lx)
{
  const char *s = ++lx->p;
  int line = lx->line;
  char *buf, *w;
  json_t *v;

  while (*lx->p && *lx->p != '"') {
    if (*lx->p == '\\' && lx->p[1])
      lx->p++;
    if (*lx->p == '\n')
      lx->line++;
    lx->p++;
  }
  if (*lx->p != '"') {
    ferry_error("line %d: unterminated string", line);
    return NULL;
  }
  buf = malloc((size_t)(lx->p - s) + 1);
  if (buf == NULL)
    return NULL;
  for (w = buf; s < lx->p; s++) {
    if (*s == '\\' && s + 1 < lx->p)
      s++;
    *w++ = *s;
  }
  *w = '\0';
  lx->p++;
  v = json_string(buf);
  free(buf);
  return v;
}

static json_t *lvm_number(struct lvm_lexer *lx)
{
  char *end;
  long long v;
  double d;

  errno = 0;
  v = strtoll(lx->p, &end, 10);
  if (end != lx->p && *end != '.' && errno == 0) {
    lx->p = end;
    return json_integer(v);
  }
  d = strtod(lx->p, &end);
  if (end == lx->p) {
    ferry_error("line %d: expected a value", lx->line);
    return NULL;
  }
  lx->p = end;
  return json_real(d);
}

static json_t *lvm_array(struct lvm_lexer *lx)
{
  json_t *arr = json_array(), *v;

  lx->p++;
  for (;;) {
    lvm_skip(lx);
    if (*lx->p == ']') {
      lx->p++;
      return arr;
    }
    v = lvm_value(lx);
    if (v == NULL || json_array_append_new(arr, v) == -1)
      break;
    lvm_skip(lx);
    if (*lx->p == ',')
      lx->p++;
    else if (*lx->p != ']') {
      ferry_error("line %d: expected ',' or ']' in a list", lx->line);
      break;
    }
  }
  json_decref(arr);
  return NULL;
}

static json_t *lvm_value(struct lvm_lexer *lx)
{
  if (*lx->p == '"')
    return lvm_string(lx);
  if (*lx->p == '[')
    return lvm_array(lx);
  return lvm_number(lx);
}

/* Members until '}' (depth > 0) or the end (depth 0). */
static json_t *lvm_section(struct lvm_lexer *lx, int depth)
{
  json_t *obj = json_object(), *v;
  char key[256];

  if (depth > 16) {
    ferry_error("line %d: sections nested too deeply", lx->line);
    goto fail;
  }
  for (;;) {
    size_t n = 0;

    lvm_skip(lx);
    if (*lx->p == '\0') {
      if (depth == 0)
        return obj;
      ferry_error("line %d: missing '}'", lx->line);
      goto fail;
    }
    if (*lx->p == '}') {
      if (depth > 0) {
        lx->p++;
        return obj;
      }
      ferry_error("line %d: unexpected '}'", lx->line);
      goto fail;
    }
    while (is_ident_char((unsigned char)lx->p[n]) && n < sizeof key - 1)
      n++;
    if (n == 0 || is_ident_char((unsigned char)lx->p[n])) {
      ferry_error("line %d: expected a name", lx->line);
      goto fail;
    }
    memcpy(key, lx->p, n);
    key[n] = '\0';
    lx->p += n;
    lvm_skip(lx);
    if (*lx->p == '{') {
      lx->p++;
      v = lvm_section(lx, depth + 1);
    } else if (*lx->p == '=') {
      lx->p++;
      lvm_skip(lx);
      v = lvm_value(lx);
    } else {
      ferry_error("line %d: expected '=' or '{' after '%s'", lx->line, key);
      goto fail;
    }
    if (v == NULL || json_object_set_new(obj, key, v) == -1)
      goto fail;
  }
fail:
  json_decref(obj);
  return NULL;
}

json_t *lvm_metadata_parse(const char *text)
{
  struct lvm_lexer lx = { .p = text, .line = 1 };

  return lvm_section(&lx, 0);
}

/* ---- the inventory ---- */

/* LVM prints UUIDs as 6-4-4-4-4-4-6 characters (lib/uuid/uuid.c). */
static char *lvm_uuid_format(const char *raw32)
{
  static const int groups[] = { 6, 4, 4, 4, 4, 4, 6 };
  char out[40], *w = out;

  for (size_t g = 0; g < 7; g++) {
    if (g)
      *w++ = '-';
    for (int i = 0; i < groups[g]; i++) {
      if (!isalnum((unsigned char)*raw32))
        return NULL;
      *w++ = *raw32++;
    }
  }
  *w = '\0';
  return strdup(out);
}

/* The device-mapper name LVM gives vg/lv: '-' doubled in each. */
static char *dm_name_of(const char *vg, const char *lv)
{
  size_t n = 2 * (strlen(vg) + strlen(lv)) + 2;
  char *out = malloc(n), *w = out;

  if (out == NULL)
    return NULL;
  for (const char *s = vg; *s; s++) {
    if (*s == '-')
      *w++ = '-';
    *w++ = *s;
  }
  *w++ = '-';
  for (const char *s = lv; *s; s++) {
    if (*s == '-')
      *w++ = '-';
    *w++ = *s;
  }
  *w = '\0';
  return out;
}

static json_int_t jint(json_t *obj, const char *key)
{
  return json_integer_value(json_object_get(obj, key));
}

static int has_flag(json_t *status, const char *flag)
{
  json_t *v;
  size_t i;

  json_array_foreach(status, i, v)
    if (json_is_string(v) && strcmp(json_string_value(v), flag) == 0)
      return 1;
  return 0;
}

/* Active LVM volumes in sysfs: dm name -> {dm, dev, size, uuid, slaves}. */
static json_t *active_lvs(struct discover_ctx *ctx)
{
  size_t n, i;
  char **names = rootfs_list(&ctx->root, &n, "sys/block");
  json_t *act;

  if (names == NULL)
    return NULL;
  act = json_object();
  for (i = 0; act && i < n; i++) {
    CLEANUP_FREE char *dmname = NULL, *dmuuid = NULL, *majmin = NULL;
    char **slaves;
    size_t ns;
    uint64_t size;
    int have_size;
    json_t *sl, *e;

    if (strncmp(names[i], "dm-", 3) != 0)
      continue;
    dmname = rootfs_value(&ctx->root, "sys/block/%s/dm/name", names[i]);
    dmuuid = rootfs_value(&ctx->root, "sys/block/%s/dm/uuid", names[i]);
    /* "LVM-" + VG UUID + LV UUID (32 characters each); a longer one
     * ("-tpool", "-real", "-cow") is LVM's internal layer, not an LV */
    if (dmname == NULL || dmuuid == NULL ||
        strncmp(dmuuid, "LVM-", 4) != 0 || strlen(dmuuid) != 68)
      continue;
    majmin = rootfs_value(&ctx->root, "sys/block/%s/dev", names[i]);
    have_size = rootfs_u64(&ctx->root, &size, "sys/block/%s/size",
                           names[i]) == 0 && size <= INT64_MAX / 512;
    sl = json_array();
    slaves = rootfs_list(&ctx->root, &ns, "sys/block/%s/slaves", names[i]);
    for (size_t s = 0; sl && s < ns; s++)
      json_array_append_new(sl, json_string(slaves[s]));
    rootfs_names_free(slaves, ns);
    e = json_pack("{s:s, s:o, s:o, s:s, s:o}", "dm", names[i],
                  "dev", json_str_or_null(majmin),
                  "size", json_u64_or_null(have_size, size * 512),
                  "uuid", dmuuid, "slaves", sl);
    if (e == NULL || json_object_set_new(act, dmname, e) == -1) {
      json_decref(act);
      act = NULL;
    }
  }
  rootfs_names_free(names, n);
  return act;
}


struct lvm_out {
  json_t *pvs, *vgs, *lvs;
};

/* The LV's device fields: path, mapper_path, active, dm, dev and its
 * filesystem.  active is the sysfs table (NULL: unknown). */
static int lv_device_fields(struct discover_ctx *ctx, json_t *lv,
                            const char *vg, const char *name,
                            json_t *active)
{
  CLEANUP_FREE char *dmname = dm_name_of(vg, name);
  CLEANUP_FREE char *mapper = NULL, *vgpath = NULL, *dmpath = NULL;
  json_t *a = dmname && active ? json_object_get(active, dmname) : NULL;
  const char *dm = a ? json_string_value(json_object_get(a, "dm")) : NULL;
  const char *majmin = a ? json_string_value(json_object_get(a, "dev"))
                         : NULL;
  int bad = 0;

  if (dmname == NULL ||
      asprintf(&mapper, "/dev/mapper/%s", dmname) == -1 ||
      asprintf(&vgpath, "/dev/%s/%s", vg, name) == -1 ||
      asprintf(&dmpath, "/dev/%s", dm ? dm : "") == -1)
    return -1;
  bad |= json_object_set_new(lv, "path", json_string(vgpath));
  bad |= json_object_set_new(lv, "mapper_path", json_string(mapper));
  bad |= json_object_set_new(lv, "active", active ? json_boolean(a != NULL)
                                                  : json_null());
  bad |= json_object_set_new(lv, "dm", json_str_or_null(dm));
  bad |= json_object_set_new(lv, "dev", json_str_or_null(majmin));
  if (a)
    bad |= json_object_set_new(a, "seen", json_true());
  if (!bad) {
    const char *paths[] = { mapper, vgpath, dm ? dmpath : NULL, NULL };

    bad |= discover_fs_fields(ctx, lv, majmin, paths);
  }
  return bad ? -1 : 0;
}

/* Extents each PV of a VG gives to segments: a "stripes" list is
 * ["pv0", first_extent, "pv1", first_extent, ...] and each stripe holds
 * extent_count / stripes extents (linear is one stripe). */
static json_t *pv_extents_used(json_t *lvs)
{
  json_t *used = json_object(), *lv, *seg;
  const char *lvname, *segname;

  json_object_foreach(lvs, lvname, lv) {
    json_object_foreach(lv, segname, seg) {
      json_t *stripes = json_object_get(seg, "stripes");
      size_t nst = json_array_size(stripes) / 2;
      json_int_t count = jint(seg, "extent_count");

      if (!json_is_object(seg) || nst == 0)
        continue;
      for (size_t s = 0; used && s < nst; s++) {
        const char *pv = json_string_value(json_array_get(stripes, 2 * s));

        if (pv && json_object_set_new(used, pv, json_integer(
                   jint(used, pv) + count / (json_int_t)nst)) == -1) {
          json_decref(used);
          used = NULL;
        }
      }
    }
  }
  return used;
}

/* One VG from its metadata file (etc/lvm/backup/<file>). */
static int vg_from_metadata(struct discover_ctx *ctx, struct lvm_out *o,
                            const char *file, json_t *meta, json_t *active)
{
  const char *vgname = NULL, *key;
  json_t *vg = NULL, *val, *pvs, *lvs, *e;
  CLEANUP_JSON json_t *used = NULL;
  json_int_t ext, vg_ext = 0, vg_used = 0;
  uint64_t es;

  /* the one section at the top level is the VG */
  json_object_foreach(meta, key, val)
    if (json_is_object(val)) {
      vgname = key;
      vg = val;
      break;
    }
  if (vg == NULL)
    return 0;
  ext = jint(vg, "extent_size");              /* sectors */
  es = ext > 0 ? (uint64_t)ext * 512 : 0;
  pvs = json_object_get(vg, "physical_volumes");
  lvs = json_object_get(vg, "logical_volumes");
  used = pv_extents_used(lvs);
  if (used == NULL)
    return -1;

  json_object_foreach(pvs, key, val) {
    json_int_t pe = jint(val, "pe_count"), dev = jint(val, "dev_size");
    json_int_t u = jint(used, key);

    vg_ext += pe;
    vg_used += u;
    /* "device" is the path LVM last saw: a hint, as the file says */
    e = json_pack("{s:o, s:s, s:o, s:o, s:o}",
                  "device", json_str_or_null(json_string_value(
                              json_object_get(val, "device"))),
                  "vg", vgname,
                  "uuid", json_str_or_null(json_string_value(
                            json_object_get(val, "id"))),
                  "size", json_u64_or_null(dev > 0, (uint64_t)dev * 512),
                  "free", json_u64_or_null(es && pe >= u,
                                           (uint64_t)(pe - u) * es));
    if (e == NULL || json_array_append_new(o->pvs, e) == -1)
      return -1;
  }

  json_object_foreach(lvs, key, val) {
    const char *segname, *type = NULL;
    json_int_t extents = 0;
    json_t *seg;

    /* hidden LVs (thin pool data, RAID images) are LVM's internals */
    if (!has_flag(json_object_get(val, "status"), "VISIBLE"))
      continue;
    json_object_foreach(val, segname, seg) {
      if (!json_is_object(seg) || strncmp(segname, "segment", 7) != 0)
        continue;
      extents += jint(seg, "extent_count");
      if (type == NULL)
        type = json_string_value(json_object_get(seg, "type"));
    }
    e = json_pack("{s:s, s:s, s:o, s:o, s:o}",
                  "name", key, "vg", vgname,
                  "lv_uuid", json_str_or_null(json_string_value(
                            json_object_get(val, "id"))),
                  "size", json_u64_or_null(es != 0, (uint64_t)extents * es),
                  "segment_type", json_str_or_null(type));
    if (e == NULL || lv_device_fields(ctx, e, vgname, key, active) == -1 ||
        json_array_append_new(o->lvs, e) == -1) {
      json_decref(e);
      return -1;
    }
  }

  e = json_pack("{s:s, s:o, s:o, s:o, s:o, s:I, s:s}",
                "name", vgname,
                "uuid", json_str_or_null(json_string_value(
                          json_object_get(vg, "id"))),
                "extent_size", json_u64_or_null(es != 0, es),
                "size", json_u64_or_null(es != 0, (uint64_t)vg_ext * es),
                "free", json_u64_or_null(es && vg_ext >= vg_used,
                                         (uint64_t)(vg_ext - vg_used) * es),
                "pv_count", (json_int_t)json_object_size(pvs),
                "metadata", file);
  return e && json_array_append_new(o->vgs, e) == 0 ? 0 : -1;
}

/* Active LVs that no metadata file described: what sysfs tells. */
static int lvs_from_sysfs(struct discover_ctx *ctx, struct lvm_out *o,
                          json_t *active)
{
  const char *dmname;
  json_t *a;

  json_object_foreach(active, dmname, a) {
    CLEANUP_FREE char *vg = NULL, *lv = NULL, *vguuid = NULL,
                      *lvuuid = NULL;
    const char *uuid = json_string_value(json_object_get(a, "uuid"));
    json_t *slaves = json_object_get(a, "slaves"), *s, *e;
    size_t i;
    int known_vg = 0;

    if (json_object_get(a, "seen") || dm_name_split(dmname, &vg, &lv) == -1)
      continue;
    vguuid = lvm_uuid_format(uuid + 4);
    lvuuid = lvm_uuid_format(uuid + 36);
    e = json_pack("{s:s, s:s, s:o, s:O, s:n}",
                  "name", lv, "vg", vg, "lv_uuid", json_str_or_null(lvuuid),
                  "size", json_object_get(a, "size"), "segment_type");
    if (e == NULL || lv_device_fields(ctx, e, vg, lv, active) == -1 ||
        json_array_append_new(o->lvs, e) == -1) {
      json_decref(e);
      return -1;
    }
    json_array_foreach(o->vgs, i, e)
      if (strcmp(json_string_value(json_object_get(e, "name")), vg) == 0)
        known_vg = 1;
    if (!known_vg) {
      e = json_pack("{s:s, s:o, s:n, s:n, s:n, s:n, s:n}",
                    "name", vg, "uuid", json_str_or_null(vguuid),
                    "extent_size", "size", "free", "pv_count", "metadata");
      if (e == NULL || json_array_append_new(o->vgs, e) == -1)
        return -1;
    }
    /* the devices under an LV are PVs of its VG */
    json_array_foreach(slaves, i, s) {
      CLEANUP_FREE char *dev = NULL;
      json_t *p;
      size_t j;
      int dup = 0;

      if (asprintf(&dev, "/dev/%s", json_string_value(s)) == -1)
        return -1;
      json_array_foreach(o->pvs, j, p) {
        const char *d = json_string_value(json_object_get(p, "device"));

        if (d && strcmp(d, dev) == 0)
          dup = 1;
      }
      if (dup)
        continue;
      p = json_pack("{s:s, s:s, s:n, s:n, s:n}", "device", dev, "vg", vg,
                    "uuid", "size", "free");
      if (p == NULL || json_array_append_new(o->pvs, p) == -1)
        return -1;
    }
  }
  return 0;
}

json_t *discover_lvm(struct discover_ctx *ctx)
{
  static const char *const pv_order[] = { "vg", "device", NULL };
  static const char *const vg_order[] = { "name", NULL };
  static const char *const lv_order[] = { "vg", "name", NULL };
  struct lvm_out o = { json_array(), json_array(), json_array() };
  CLEANUP_JSON json_t *active = active_lvs(ctx);
  char **files;
  size_t n, i;
  json_t *out = NULL;

  files = rootfs_list(&ctx->root, &n, "etc/lvm/backup");
  if (files == NULL && active == NULL) {
    /* neither source readable: unknown */
    out = json_null();
    goto out;
  }
  if (o.pvs == NULL || o.vgs == NULL || o.lvs == NULL)
    goto out;
  for (i = 0; i < n; i++) {
    CLEANUP_FREE char *text = rootfs_read(&ctx->root, NULL,
                                          "etc/lvm/backup/%s", files[i]);
    CLEANUP_FREE char *rel = NULL;
    CLEANUP_JSON json_t *meta = text ? lvm_metadata_parse(text) : NULL;

    /* an unreadable or malformed file is skipped: its LVs, if active,
     * still show from sysfs */
    if (meta == NULL ||
        asprintf(&rel, "etc/lvm/backup/%s", files[i]) == -1)
      continue;
    if (vg_from_metadata(ctx, &o, rel, meta, active) == -1)
      goto out;
  }
  if (active && lvs_from_sysfs(ctx, &o, active) == -1)
    goto out;
  if (json_array_sort(o.pvs, pv_order) == -1 ||
      json_array_sort(o.vgs, vg_order) == -1 ||
      json_array_sort(o.lvs, lv_order) == -1)
    goto out;
  out = json_pack("{s:O, s:O, s:O}", "pvs", o.pvs, "vgs", o.vgs,
                  "lvs", o.lvs);
out:
  rootfs_names_free(files, n);
  json_decref(o.pvs);
  json_decref(o.vgs);
  json_decref(o.lvs);
  return out;
}
