/* discover.c - the inventory of a source server (see discover.h). */
#include "discover.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>

#include "cleanup.h"
#include "error.h"

/* Read ROOT/rel (at most 64 KiB), trailing whitespace trimmed; NULL if it
 * cannot be read. */
static char *read_file(const char *root, const char *rel)
{
  CLEANUP_FREE char *path = NULL;
  CLEANUP_FCLOSE FILE *fp = NULL;
  char *buf;
  size_t n;

  if (asprintf(&path, "%s/%s", strcmp(root, "/") ? root : "", rel) == -1)
    return NULL;
  fp = fopen(path, "re");
  if (fp == NULL)
    return NULL;
  buf = malloc(65536);
  if (buf == NULL)
    return NULL;
  n = fread(buf, 1, 65535, fp);
  if (ferror(fp)) {
    free(buf);
    return NULL;
  }
  while (n > 0 && isspace((unsigned char)buf[n - 1]))
    n--;
  buf[n] = '\0';
  return buf;
}

/* A JSON string of ROOT/rel's contents, or null. */
static json_t *file_string(const char *root, const char *rel)
{
  CLEANUP_FREE char *s = read_file(root, rel);

  return s && *s ? json_string(s) : json_null();
}

/* A JSON integer of ROOT/rel's number times mult, or null. */
static json_t *file_u64(const char *root, const char *rel, uint64_t mult)
{
  CLEANUP_FREE char *s = read_file(root, rel);
  unsigned long long v;
  char *end;

  if (s == NULL || *s == '\0')
    return json_null();
  errno = 0;
  v = strtoull(s, &end, 10);
  if (errno || *end || v > INT64_MAX / (mult ? mult : 1))
    return json_null();
  return json_integer((json_int_t)(v * mult));
}

/* os-release(5): KEY=value lines, values optionally quoted. */
static json_t *discover_os(const char *root)
{
  CLEANUP_FREE char *text = read_file(root, "etc/os-release");
  static const char *const keys[][2] = {
    { "ID", "id" }, { "VERSION_ID", "version_id" },
    { "PRETTY_NAME", "pretty_name" }, { "NAME", "name" },
    { "VERSION", "version" }, { "ID_LIKE", "id_like" },
  };
  json_t *os = json_object();
  char *line, *save = NULL;
  size_t i;

  if (os == NULL)
    return NULL;
  for (i = 0; i < sizeof keys / sizeof keys[0]; i++)
    json_object_set_new(os, keys[i][1], json_null());
  if (text == NULL)
    text = read_file(root, "usr/lib/os-release");
  for (line = text ? strtok_r(text, "\n", &save) : NULL; line;
       line = strtok_r(NULL, "\n", &save)) {
    char *eq = strchr(line, '='), *v;
    size_t n;

    if (eq == NULL || line[0] == '#')
      continue;
    *eq = '\0';
    v = eq + 1;
    n = strlen(v);
    if (n >= 2 && (v[0] == '"' || v[0] == '\'') && v[n - 1] == v[0]) {
      v[n - 1] = '\0';
      v++;
    }
    for (i = 0; i < sizeof keys / sizeof keys[0]; i++)
      if (strcmp(line, keys[i][0]) == 0)
        json_object_set_new(os, keys[i][1], json_string(v));
  }
  return os;
}

static json_t *discover_cpu(const char *root)
{
  CLEANUP_FREE char *text = read_file(root, "proc/cpuinfo");
  json_t *cpu = json_object();
  char *line, *save = NULL, *model = NULL;
  int count = 0;

  if (cpu == NULL)
    return NULL;
  for (line = text ? strtok_r(text, "\n", &save) : NULL; line;
       line = strtok_r(NULL, "\n", &save)) {
    char *colon = strchr(line, ':');

    if (strncmp(line, "processor", 9) == 0 && colon)
      count++;
    else if (model == NULL && strncmp(line, "model name", 10) == 0 && colon)
      model = colon + 1 + strspn(colon + 1, " \t");
  }
  json_object_set_new(cpu, "count", count ? json_integer(count) : json_null());
  json_object_set_new(cpu, "model", model ? json_string(model) : json_null());
  return cpu;
}

static json_t *discover_memory(const char *root)
{
  CLEANUP_FREE char *text = read_file(root, "proc/meminfo");
  unsigned long long kb;
  char *p = text ? strstr(text, "MemTotal:") : NULL;

  if (p && sscanf(p, "MemTotal: %llu kB", &kb) == 1)
    return json_integer((json_int_t)(kb * 1024));
  return json_null();
}

/* A disk is a /sys/block entry that is real hardware or a virtual disk,
 * not a loop, ram, zram, CD or device-mapper node. */
static int is_disk(const char *name)
{
  static const char *const skip[] = { "loop", "ram", "zram", "sr", "dm-",
                                      "md", "nbd", "fd" };
  size_t i;

  for (i = 0; i < sizeof skip / sizeof skip[0]; i++)
    if (strncmp(name, skip[i], strlen(skip[i])) == 0)
      return 0;
  return name[0] != '.';
}

static int cmp_str(const void *a, const void *b)
{
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted names in ROOT/rel; *n entries (caller frees each and the array). */
static char **list_dir(const char *root, const char *rel, size_t *n)
{
  CLEANUP_FREE char *path = NULL;
  char **names = NULL;
  struct dirent *de;
  size_t cap = 0;
  DIR *d;

  *n = 0;
  if (asprintf(&path, "%s/%s", strcmp(root, "/") ? root : "", rel) == -1)
    return NULL;
  d = opendir(path);
  if (d == NULL)
    return NULL;
  while ((de = readdir(d)) != NULL) {
    if (de->d_name[0] == '.')
      continue;
    if (*n == cap) {
      char **p = reallocarray(names, cap ? cap * 2 : 16, sizeof *names);

      if (p == NULL)
        break;
      names = p;
      cap = cap ? cap * 2 : 16;
    }
    if ((names[*n] = strdup(de->d_name)) != NULL)
      (*n)++;
  }
  closedir(d);
  if (*n)
    qsort(names, *n, sizeof *names, cmp_str);
  return names;
}

static void free_names(char **names, size_t n)
{
  for (size_t i = 0; i < n; i++)
    free(names[i]);
  free(names);
}

static json_t *discover_partitions(const char *root, const char *disk)
{
  CLEANUP_FREE char *rel = NULL;
  json_t *parts = json_array();
  char **names;
  size_t n, i;

  if (parts == NULL || asprintf(&rel, "sys/block/%s", disk) == -1)
    return parts;
  names = list_dir(root, rel, &n);
  for (i = 0; i < n; i++) {
    CLEANUP_FREE char *prel = NULL, *p_start = NULL, *p_size = NULL,
                      *p_num = NULL;
    json_t *part;

    if (strncmp(names[i], disk, strlen(disk)) != 0 ||
        asprintf(&prel, "%s/%s/partition", rel, names[i]) == -1 ||
        asprintf(&p_start, "%s/%s/start", rel, names[i]) == -1 ||
        asprintf(&p_size, "%s/%s/size", rel, names[i]) == -1)
      continue;
    {
      CLEANUP_FREE char *isp = read_file(root, prel);

      if (isp == NULL)
        continue;                   /* not a partition directory */
    }
    part = json_pack("{s:s, s:o, s:o, s:o}", "name", names[i],
                     "number", file_u64(root, prel, 1),
                     "start", file_u64(root, p_start, 512),
                     "size", file_u64(root, p_size, 512));
    if (part)
      json_array_append_new(parts, part);
  }
  free_names(names, n);
  return parts;
}

static json_t *discover_disks(const char *root)
{
  json_t *disks = json_array();
  char **names;
  size_t n, i;

  if (disks == NULL)
    return NULL;
  names = list_dir(root, "sys/block", &n);
  for (i = 0; i < n; i++) {
    CLEANUP_FREE char *sz = NULL, *model = NULL, *serial = NULL,
                      *rot = NULL, *dev = NULL;
    json_t *disk;

    if (!is_disk(names[i]) ||
        asprintf(&sz, "sys/block/%s/size", names[i]) == -1 ||
        asprintf(&model, "sys/block/%s/device/model", names[i]) == -1 ||
        asprintf(&serial, "sys/block/%s/serial", names[i]) == -1 ||
        asprintf(&rot, "sys/block/%s/queue/rotational", names[i]) == -1 ||
        asprintf(&dev, "/dev/%s", names[i]) == -1)
      continue;
    disk = json_pack("{s:s, s:s, s:o, s:o, s:o, s:o, s:o}",
                     "name", names[i], "path", dev,
                     "size", file_u64(root, sz, 512),
                     "model", file_string(root, model),
                     "serial", file_string(root, serial),
                     "rotational", file_u64(root, rot, 1),
                     "partitions", discover_partitions(root, names[i]));
    if (disk)
      json_array_append_new(disks, disk);
  }
  free_names(names, n);
  return disks;
}

static json_t *discover_hostname(const char *root)
{
  json_t *h = file_string(root, "proc/sys/kernel/hostname");

  if (json_is_null(h)) {
    json_decref(h);
    h = file_string(root, "etc/hostname");
  }
  return h;
}

static json_t *discover_arch(const char *root)
{
  json_t *a = file_string(root, "proc/sys/kernel/arch");
  struct utsname u;

  /* /proc/sys/kernel/arch is recent (Linux 6.1); uname knows it live */
  if (json_is_null(a) && strcmp(root, "/") == 0 && uname(&u) == 0) {
    json_decref(a);
    a = json_string(u.machine);
  }
  return a;
}

json_t *discover_inventory(const char *root)
{
  json_t *inv;

  inv = json_pack("{s:i, s:o, s:o, s:{s:o, s:o}, s:o, s:o, s:o, s:o}",
                  "schema", INVENTORY_SCHEMA,
                  "hostname", discover_hostname(root),
                  "machine_id", file_string(root, "etc/machine-id"),
                  "kernel",
                    "release", file_string(root, "proc/sys/kernel/osrelease"),
                    "arch", discover_arch(root),
                  "os", discover_os(root),
                  "cpu", discover_cpu(root),
                  "memory", discover_memory(root),
                  "disks", discover_disks(root));
  if (inv == NULL)
    ferry_error("out of memory building the inventory");
  return inv;
}
