/* preflight.c - per-host checks against the target (see preflight.h).
 * A fact the inventory does not know is a warning saying what could not
 * be checked, never a pass. */
#include "preflight.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "providers.h"

static void add(json_t *findings, const char *severity, const char *code,
                const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void add(json_t *findings, const char *severity, const char *code,
                const char *fmt, ...)
{
  char msg[512];
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  json_array_append_new(findings, json_pack("{s:s, s:s, s:s}", "severity",
                                            severity, "code", code,
                                            "message", msg));
}

static json_t *inv_disk(json_t *inv, const char *name)
{
  json_t *disks = json_object_get(inv, "disks"), *d;
  size_t i;

  json_array_foreach(disks, i, d)
    if (json_is_string(json_object_get(d, "name")) &&
        strcmp(json_string_value(json_object_get(d, "name")), name) == 0)
      return d;
  return NULL;
}

int preflight_run(json_t *plan, json_t *inv, json_t *findings)
{
  const struct provider *p = provider_lookup(
    json_string_value(json_object_get(plan, "provider")));
  json_t *disks = json_object_get(plan, "disks"), *d;
  size_t i;
  int errors = 0;

  if (p == NULL) {
    add(findings, "error", "provider", "unknown provider in the plan");
    return 1;
  }
  if (inv == NULL || !json_is_object(inv)) {
    add(findings, "error", "inventory", "the host has no inventory: run "
        "ferry-agent discover on it");
    return 1;
  }
  json_array_foreach(disks, i, d) {
    const char *name = json_string_value(json_object_get(d, "name"));
    json_t *disk = inv_disk(inv, name ? name : "");
    json_t *size = disk ? json_object_get(disk, "size") : NULL;
    uint64_t limit = i == 0 && p->max_boot_disk ? p->max_boot_disk
                                                : p->max_disk;

    if (!json_is_integer(size)) {
      add(findings, "warning", "disk-size", "size of disk %s is unknown: "
          "cannot check it against %s's limits", name ? name : "?",
          p->name);
      continue;
    }
    if (json_integer_value(size) <= 0) {
      add(findings, "error", "disk-size", "disk %s is empty", name);
      errors++;
    } else if (limit && (uint64_t)json_integer_value(size) > limit) {
      add(findings, "error", "disk-size", "disk %s is %" PRIu64 " GiB, over "
          "%s's limit of %" PRIu64 " GiB for a %s disk: shrink it or move "
          "its data to a data disk", name,
          (uint64_t)json_integer_value(size) >> 30, p->name, limit >> 30,
          i == 0 ? "boot" : "data");
      errors++;
    }
  }
  return errors;
}
