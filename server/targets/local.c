/* local.c - the local QEMU/KVM target: the converted disks stay where the
 * store holds them; creating the instance means checking every output is
 * there and complete. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "store.h"
#include "target.h"

/* Split "scheme://a/b/name" into a store URL and the object key. */
static struct store *open_parent(const char *url, const char **key)
{
  const char *slash = strrchr(url, '/');
  char *parent;
  struct store *s;

  if (slash == NULL || slash[1] == '\0') {
    ferry_error("output URL %s does not name an object", url);
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

static json_t *local_create(json_t *plan)
{
  json_t *disks = json_object_get(plan, "disks"), *d, *outs = json_array();
  size_t i;

  json_array_foreach(disks, i, d) {
    const char *out = json_string_value(json_object_get(d, "output"));
    const char *key;
    struct store *s;
    uint64_t size;
    int r;

    if (out == NULL || (s = open_parent(out, &key)) == NULL)
      goto fail;
    r = store_head(s, key, &size);
    store_close(s);
    if (r != 1) {
      if (r == 0)
        ferry_error("converted disk %s is missing", out);
      goto fail;
    }
    json_array_append_new(outs, json_pack("{s:s, s:I}", "output", out,
                                          "size", (json_int_t)size));
  }
  return json_pack("{s:s, s:o}", "instance", "local", "disks", outs);
fail:
  json_decref(outs);
  return NULL;
}

const struct target_ops target_local = {
  .name = "local",
  .create = local_create,
};
