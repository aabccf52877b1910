/* target.h - target drivers: create the migrated instance on a provider
 * from the converted disks.  One ops table per provider (targets/NAME.c). */
#ifndef FERRY_TARGET_H
#define FERRY_TARGET_H

#include <jansson.h>

struct target_ops {
  const char *name;                   /* the blueprint's provider */
  /* Create the instance described by plan (the migration's plan: disks
   * with their outputs, format, host entry).  Returns a result object
   * (instance id, what was done) or NULL with an error. */
  json_t *(*create)(json_t *plan);
};

/* Dispatch on plan.provider. */
json_t *target_create(json_t *plan);

#endif
