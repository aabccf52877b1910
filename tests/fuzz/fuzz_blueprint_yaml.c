/* fuzz_blueprint_yaml.c - a blueprint in YAML, as POST /v1/blueprints
 * and /v1/blueprints/validate take it (server/yaml.c, blueprint.c). */
#include "fuzz.h"
#include "fuzz_blueprint.h"
#include "yaml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  char *text = fuzz_string(data, size);
  json_t *bp, *lines = NULL;

  if (text == NULL)
    return 0;
  bp = yaml_to_json(text, size, &lines);
  if (bp)
    fuzz_blueprint_check(bp, lines);
  json_decref(bp);
  json_decref(lines);
  free(text);
  return 0;
}
