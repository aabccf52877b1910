/* target.c - provider name -> target (rules and driver). */
#include "target.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/error.h"
#include "store/store.h"
#include "../db.h"
#include "../tasks.h"

extern const struct target_ops target_local, target_aws, target_azure,
  target_gcp, target_openstack;

static const struct target_ops *const targets[] = {
  &target_local, &target_aws, &target_azure, &target_gcp, &target_openstack,
};

#define N_TARGETS (sizeof targets / sizeof targets[0])

const struct target_ops *target_lookup(const char *name)
{
  size_t i;

  for (i = 0; name && i < N_TARGETS; i++)
    if (strcmp(targets[i]->name, name) == 0)
      return targets[i];
  return NULL;
}

const char *target_names(void)
{
  static const char names[] = "local, aws, azure, gcp, openstack";

  return names;
}

int target_has_format(const struct target_ops *t, const char *format)
{
  size_t i;

  for (i = 0; format && t->rules.formats[i]; i++)
    if (strcmp(t->rules.formats[i], format) == 0)
      return 1;
  return 0;
}

void target_formats(const struct target_ops *t, char *buf, size_t size)
{
  size_t i, n = 0;

  buf[0] = '\0';
  for (i = 0; t->rules.formats[i] && n < size; i++)
    n += (size_t)snprintf(buf + n, size - n, "%s%s", i ? ", " : "",
                          t->rules.formats[i]);
}

json_t *target_create(struct task_ctx *t, json_t *plan)
{
  const char *p = json_string_value(json_object_get(plan, "provider"));
  const struct target_ops *ops = target_lookup(p);

  if (ops && ops->create)
    return ops->create(t, plan);
  ferry_error("no target driver for provider '%s' in this ferry: the "
              "converted disks are ready in the store for a manual import",
              p ? p : "(none)");
  return NULL;
}

json_t *target_cleanup(struct task_ctx *t, json_t *plan)
{
  const char *p = json_string_value(json_object_get(plan, "provider"));
  const struct target_ops *ops = target_lookup(p);
  json_t *mine, *kept, *res;

  db_lock();
  mine = db_query(task_ctx_db(t), "SELECT kind, name, cloud_id AS id FROM "
                  "target_resources WHERE migration_id = ?1 AND scope = "
                  "'migration' AND state = 'live' ORDER BY "
                  "target_resources.id DESC", "i",
                  task_ctx_migration(t));
  kept = mine ? db_query(task_ctx_db(t), "SELECT kind, name, cloud_id AS id "
                         "FROM target_resources WHERE migration_id = ?1 AND "
                         "scope = 'blueprint' AND state = 'live' ORDER BY "
                         "target_resources.id", "i", task_ctx_migration(t))
              : NULL;
  db_unlock();
  if (mine == NULL || kept == NULL) {
    json_decref(mine);
    return NULL;
  }
  if (json_array_size(mine) == 0)
    res = json_pack("{s:[]}", "deleted");
  else if (ops == NULL || ops->cleanup == NULL) {
    ferry_error("provider '%s' has no cleanup in this ferry: delete the %zu "
                "resource(s) listed by ferry job show by hand",
                p ? p : "(none)", json_array_size(mine));
    res = NULL;
  } else {
    task_ctx_event(t, "deleting %zu resource(s) this migration made on %s",
                   json_array_size(mine), p);
    res = ops->cleanup(t, plan, mine);
  }
  if (res != NULL)
    json_object_set(res, "kept", kept);
  json_decref(mine);
  json_decref(kept);
  return res;
}

struct store *target_store_object(const char *url, const char **key)
{
  const char *slash = strrchr(url, '/');
  char *parent;
  struct store *s;

  if (slash == NULL || slash[1] == '\0' || strstr(url, "://") == NULL) {
    ferry_error("%s does not name an object in a store", url);
    return NULL;
  }
  parent = strndup(url, (size_t)(slash - url));
  if (parent == NULL) {
    ferry_error("out of memory");
    return NULL;
  }
  s = store_open(parent);
  free(parent);
  *key = slash + 1;
  return s;
}
