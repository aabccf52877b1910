/* fuzz_blueprint_json.c - a blueprint in JSON, as POST /v1/blueprints
 * and /v1/blueprints/validate take it (blueprint_parse picks JSON when the
 * text starts with '{'; server/yaml.c json_with_lines, blueprint.c). */
#include "fuzz.h"
#include "fuzz_blueprint.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  char *text = fuzz_string(data, size);
  json_t *bp, *lines = NULL;

  if (text == NULL)
    return 0;
  bp = blueprint_parse(text, size, &lines);
  if (bp)
    fuzz_blueprint_check(bp, lines);
  json_decref(bp);
  json_decref(lines);
  free(text);
  return 0;
}
