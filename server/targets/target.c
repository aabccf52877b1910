/* target.c - provider name -> target driver. */
#include "target.h"

#include <string.h>

#include "util/error.h"

extern const struct target_ops target_local;

static const struct target_ops *const targets[] = {
  &target_local,
};

json_t *target_create(json_t *plan)
{
  const char *p = json_string_value(json_object_get(plan, "provider"));
  size_t i;

  for (i = 0; p && i < sizeof targets / sizeof targets[0]; i++)
    if (strcmp(targets[i]->name, p) == 0)
      return targets[i]->create(plan);
  ferry_error("no target driver for provider '%s' in this ferry: the "
              "converted disks are ready in the store for a manual import",
              p ? p : "(none)");
  return NULL;
}
