/* fuzz_blueprint.h - what the server does with a blueprint once it is
 * parsed (api_blueprints.c check_body, then api_migrations.c's plan): the
 * name check, validation, the discovered-hosts check, and for a valid
 * blueprint each host's entry, format, sync interval and store URLs. */
#ifndef FERRY_FUZZ_BLUEPRINT_H
#define FERRY_FUZZ_BLUEPRINT_H

#include <stdlib.h>

#include <jansson.h>

#include "blueprint.h"
#include "db.h"
#include "image/names.h"

static sqlite3 *fuzz_db(void)
{
  static sqlite3 *db;

  if (db == NULL) {
    db = db_open(":memory:");
    if (db == NULL)
      abort();
    /* one discovered host, so that check_hosts sees both outcomes */
    if (db_exec(db, "INSERT INTO hosts (hostname, first_seen, last_seen) "
                "VALUES ('web01', 'now', 'now')") == -1)
      abort();
  }
  return db;
}

static void fuzz_blueprint_check(json_t *bp, json_t *lines)
{
  json_t *findings = json_array(), *h;
  char field[64], *text;
  int errors;
  size_t i, k;

  if (findings == NULL)
    return;
  if (blueprint_bad_name(bp, field, sizeof field) == NULL) {
    errors = blueprint_validate(bp, lines, findings);
    errors += blueprint_check_hosts(bp, lines, fuzz_db(), 1, findings);
    text = json_dumps(findings, JSON_COMPACT | JSON_PRESERVE_ORDER);
    free(text);
    if (errors == 0) {
      json_array_foreach(json_object_get(bp, "hosts"), i, h) {
        const char *name = json_string_value(json_object_get(h, "name"));
        const char *store = json_string_value(json_object_get(bp, "store"));
        json_t *d;

        if (name == NULL || blueprint_host(bp, name) == NULL)
          abort();                  /* validation passed a nameless host */
        (void)blueprint_format(bp, h);
        (void)blueprint_sync_interval(bp);
        json_array_foreach(json_object_get(h, "disks"), k, d) {
          char *url = image_url(store, name, json_string_value(d), ".raw");

          free(url);
        }
      }
    }
  }
  json_decref(findings);
}

#endif
