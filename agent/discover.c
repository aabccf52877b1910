/* discover.c - the inventory of a source server (see discover.h): the
 * system itself (names, OS, kernel, CPU, memory) and the assembly of the
 * parts the other discover_*.c files build. */
#include "discover.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>

#include "util/cleanup.h"
#include "discover_int.h"
#include "util/error.h"

json_t *json_str_or_null(const char *s)
{
  return s ? json_string(s) : json_null();
}

json_t *json_u64_or_null(int known, uint64_t v)
{
  if (!known || v > INT64_MAX)
    return json_null();
  return json_integer((json_int_t)v);
}

static int cmp_by_keys(const void *a, const void *b, void *keys_)
{
  const char *const *keys = keys_;

  for (size_t i = 0; keys[i]; i++) {
    json_t *x = json_object_get(*(json_t *const *)a, keys[i]);
    json_t *y = json_object_get(*(json_t *const *)b, keys[i]);
    int c;

    if (x == NULL || json_is_null(x) || y == NULL || json_is_null(y))
      c = (y == NULL || json_is_null(y)) - (x == NULL || json_is_null(x));
    else if (json_is_string(x) && json_is_string(y))
      c = strcmp(json_string_value(x), json_string_value(y));
    else if (json_is_integer(x) && json_is_integer(y))
      c = (json_integer_value(x) > json_integer_value(y)) -
          (json_integer_value(x) < json_integer_value(y));
    else
      c = 0;
    if (c)
      return c;
  }
  return 0;
}

int json_array_sort(json_t *arr, const char *const *keys)
{
  size_t n = json_array_size(arr), i;
  json_t **v;

  if (n < 2)
    return 0;
  v = calloc(n, sizeof *v);
  if (v == NULL)
    return -1;
  for (i = 0; i < n; i++)
    v[i] = json_incref(json_array_get(arr, i));
  qsort_r(v, n, sizeof *v, cmp_by_keys, (void *)keys);
  json_array_clear(arr);
  for (i = 0; i < n; i++)
    if (json_array_append_new(arr, v[i]) == -1) {
      for (; i < n; i++)
        json_decref(v[i]);
      free(v);
      return -1;
    }
  free(v);
  return 0;
}

/* Next line of text (modified in place: the newline becomes NUL); NULL at
 * the end.  *cursor starts at the text. */
static char *next_line(char **cursor)
{
  char *line = *cursor, *nl;

  if (line == NULL || *line == '\0')
    return NULL;
  nl = strchr(line, '\n');
  if (nl) {
    *nl = '\0';
    *cursor = nl + 1;
  } else {
    *cursor = line + strlen(line);
  }
  return line;
}

/* os-release(5): KEY=value lines, values optionally quoted, shell
 * escapes (\" \\ \$ \`) inside double quotes. */
static json_t *discover_os(struct discover_ctx *ctx)
{
  static const char *const keys[][2] = {
    { "ID", "id" }, { "VERSION_ID", "version_id" },
    { "PRETTY_NAME", "pretty_name" }, { "NAME", "name" },
    { "VERSION", "version" }, { "ID_LIKE", "id_like" },
    { "VERSION_CODENAME", "version_codename" },
  };
  CLEANUP_FREE char *text = rootfs_read(&ctx->root, NULL, "etc/os-release");
  json_t *os = json_object();
  char *cur, *line;
  size_t i;

  if (os == NULL)
    return NULL;
  for (i = 0; i < sizeof keys / sizeof keys[0]; i++)
    json_object_set_new(os, keys[i][1], json_null());
  if (text == NULL)
    text = rootfs_read(&ctx->root, NULL, "usr/lib/os-release");
  cur = text;
  while ((line = next_line(&cur)) != NULL) {
    char *eq = strchr(line, '='), *v, *w;
    size_t n;

    if (eq == NULL || line[0] == '#')
      continue;
    *eq = '\0';
    v = eq + 1;
    n = strlen(v);
    while (n > 0 && isspace((unsigned char)v[n - 1]))
      v[--n] = '\0';
    if (n >= 2 && (v[0] == '"' || v[0] == '\'') && v[n - 1] == v[0]) {
      int dq = v[0] == '"';

      v[n - 1] = '\0';
      v++;
      for (w = v; dq && *w; w++)
        if (w[0] == '\\' && w[1] && strchr("\"\\$`", w[1]))
          memmove(w, w + 1, strlen(w));
    }
    for (i = 0; i < sizeof keys / sizeof keys[0]; i++)
      if (strcmp(line, keys[i][0]) == 0)
        json_object_set_new(os, keys[i][1], *v ? json_string(v)
                                                : json_null());
  }
  return os;
}

/* /proc/cpuinfo: threads are "processor" entries; sockets the distinct
 * "physical id"s; cores the sum over sockets of each one's "cpu cores".
 * Architectures without those lines (aarch64) leave sockets and cores
 * unknown. */
static json_t *discover_cpu(struct discover_ctx *ctx)
{
  CLEANUP_FREE char *text = rootfs_read(&ctx->root, NULL, "proc/cpuinfo");
  /* physical ids seen and their "cpu cores"; the kernel numbers sockets
   * densely, 4096 is far beyond any machine */
  enum { MAX_SOCKETS = 4096 };
  static const char *const model_keys[] = { "model name", "Model",
                                            "cpu model", "cpu" };
  CLEANUP_FREE long *cores_of = NULL;
  long threads = 0, sockets = 0, cores = 0, phys = -1, ncores = -1;
  int topology = 1;
  char *cur = text, *line;
  const char *model = NULL;
  size_t best = sizeof model_keys / sizeof model_keys[0];

  cores_of = calloc(MAX_SOCKETS, sizeof *cores_of);
  if (cores_of == NULL)
    return NULL;
  for (;;) {
    char *colon, *key_end, *val;

    line = next_line(&cur);
    /* a blank line or the end closes one processor's block */
    if (line == NULL || *line == '\0') {
      if (phys >= 0 && phys < MAX_SOCKETS && ncores > 0) {
        if (cores_of[phys] == 0) {
          cores_of[phys] = ncores;
          sockets++;
          cores += ncores;
        }
      } else if (phys != -1 || ncores != -1) {
        topology = 0;
      }
      phys = ncores = -1;
      if (line == NULL)
        break;
      continue;
    }
    colon = strchr(line, ':');
    if (colon == NULL)
      continue;
    for (key_end = colon; key_end > line && isspace((unsigned char)
                                                     key_end[-1]);)
      key_end--;
    *key_end = '\0';
    val = colon + 1 + strspn(colon + 1, " \t");
    if (strcmp(line, "processor") == 0) {
      threads++;
    } else if (strcmp(line, "physical id") == 0) {
      phys = strtol(val, NULL, 10);
    } else if (strcmp(line, "cpu cores") == 0) {
      ncores = strtol(val, NULL, 10);
    } else if (*val) {
      /* the first line of the best-ranked key names the model */
      for (size_t i = 0; i < best; i++)
        if (strcmp(line, model_keys[i]) == 0) {
          model = val;
          best = i;
          break;
        }
    }
  }
  if (!topology || sockets == 0)
    sockets = cores = 0;
  return json_pack("{s:o, s:o, s:o, s:o}",
                   "model", json_str_or_null(model),
                   "sockets", json_u64_or_null(sockets > 0,
                                               (uint64_t)sockets),
                   "cores", json_u64_or_null(cores > 0, (uint64_t)cores),
                   "threads", json_u64_or_null(threads > 0,
                                               (uint64_t)threads));
}

/* MemTotal from /proc/meminfo, in bytes. */
static json_t *discover_memory(struct discover_ctx *ctx)
{
  CLEANUP_FREE char *text = rootfs_read(&ctx->root, NULL, "proc/meminfo");
  unsigned long long kb;
  char *p = text ? strstr(text, "MemTotal:") : NULL;

  if (p && (p == text || p[-1] == '\n') &&
      sscanf(p, "MemTotal: %llu kB", &kb) == 1 && kb <= INT64_MAX / 1024)
    return json_integer((json_int_t)(kb * 1024));
  return json_null();
}

static char *read_hostname(struct discover_ctx *ctx)
{
  char *h = rootfs_value(&ctx->root, "proc/sys/kernel/hostname");

  if (h == NULL || strcmp(h, "(none)") == 0) {
    free(h);
    h = rootfs_value(&ctx->root, "etc/hostname");
  }
  return h;
}

/* The fully qualified name without asking DNS (the agent reads files
 * only): the hostname itself when it has a dot; else the canonical
 * (first) name of the /etc/hosts line that names the host, when that one
 * has a dot; else a dotted alias there that starts with "hostname." (what
 * `hostname -f` answers from files).  Unknown otherwise. */
static json_t *discover_fqdn(struct discover_ctx *ctx, const char *host)
{
  CLEANUP_FREE char *text = NULL;
  char *cur, *line;
  size_t hl;

  if (host == NULL)
    return json_null();
  if (strchr(host, '.'))
    return json_string(host);
  hl = strlen(host);
  text = rootfs_read(&ctx->root, NULL, "etc/hosts");
  cur = text;
  while ((line = next_line(&cur)) != NULL) {
    char *names[64], *save = NULL, *tok, *hash = strchr(line, '#');
    size_t n = 0, i;
    int named = 0;

    if (hash)
      *hash = '\0';
    if (strtok_r(line, " \t", &save) == NULL)   /* the address */
      continue;
    while (n < 64 && (tok = strtok_r(NULL, " \t", &save)) != NULL)
      names[n++] = tok;
    for (i = 0; i < n; i++)
      if (strcmp(names[i], host) == 0 ||
          (strncmp(names[i], host, hl) == 0 && names[i][hl] == '.'))
        named = 1;
    if (!named)
      continue;
    if (strchr(names[0], '.'))
      return json_string(names[0]);
    for (i = 1; i < n; i++)
      if (strncmp(names[i], host, hl) == 0 && names[i][hl] == '.')
        return json_string(names[i]);
  }
  return json_null();
}

static json_t *discover_kernel(struct discover_ctx *ctx)
{
  CLEANUP_FREE char *arch = rootfs_value(&ctx->root, "proc/sys/kernel/arch");
  CLEANUP_FREE char *cmdline = rootfs_value(&ctx->root, "proc/cmdline");
  struct utsname u;

  /* /proc/sys/kernel/arch is recent (Linux 6.1); uname knows it live */
  if (arch == NULL && ctx->root.live && uname(&u) == 0)
    arch = strdup(u.machine);
  return json_pack("{s:o, s:o, s:o}",
                   "release", json_str_or_null(ctx->kernel_release),
                   "arch", json_str_or_null(arch),
                   "cmdline", json_str_or_null(cmdline));
}

/* Set key to part's value; a NULL part (OOM) leaves the key out, so the
 * caller notices the failure (json_pack would too). */
static int set_part(json_t *inv, const char *key, json_t *part)
{
  if (part == NULL || json_object_set_new(inv, key, part) == -1) {
    ferry_error("out of memory building the inventory (%s)", key);
    return -1;
  }
  return 0;
}

json_t *discover_inventory(const char *root)
{
  struct discover_ctx ctx = { .root = { .fd = -1 } };
  CLEANUP_FREE char *host = NULL, *machine_id = NULL;
  json_t *inv = NULL;
  int bad = 0;

  if (rootfs_open(&ctx.root, root) == -1)
    return NULL;
  ctx.kernel_release = rootfs_value(&ctx.root, "proc/sys/kernel/osrelease");
  host = read_hostname(&ctx);
  machine_id = rootfs_value(&ctx.root, "etc/machine-id");
  inv = json_object();
  if (inv == NULL || discover_mounts_load(&ctx) == -1) {
    ferry_error("out of memory building the inventory");
    json_decref(inv);
    inv = NULL;
    goto out;
  }
  bad |= set_part(inv, "schema", json_integer(INVENTORY_SCHEMA));
  bad |= set_part(inv, "hostname", json_str_or_null(host));
  bad |= set_part(inv, "fqdn", discover_fqdn(&ctx, host));
  bad |= set_part(inv, "machine_id", json_str_or_null(machine_id));
  bad |= set_part(inv, "os", discover_os(&ctx));
  bad |= set_part(inv, "kernel", discover_kernel(&ctx));
  bad |= set_part(inv, "boot", discover_boot(&ctx));
  bad |= set_part(inv, "platform", discover_platform(&ctx));
  bad |= set_part(inv, "cpu", discover_cpu(&ctx));
  bad |= set_part(inv, "memory", discover_memory(&ctx));
  bad |= set_part(inv, "disks", discover_disks(&ctx));
  bad |= set_part(inv, "lvm", discover_lvm(&ctx));
  bad |= set_part(inv, "mounts", discover_mounts(&ctx));
  bad |= set_part(inv, "fstab", discover_fstab(&ctx));
  bad |= set_part(inv, "network", discover_network(&ctx));
  bad |= set_part(inv, "drivers", discover_drivers(&ctx));
  bad |= set_part(inv, "guest_agents", discover_guest_agents(&ctx));
  if (bad) {
    json_decref(inv);
    inv = NULL;
  }
out:
  json_decref(ctx.mount_table);
  free(ctx.kernel_release);
  rootfs_close(&ctx.root);
  return inv;
}
