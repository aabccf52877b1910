/* yaml.h - YAML (libyaml) to JSON, remembering where each value was.
 *
 * Blueprints are written by people in YAML or JSON; both become the same
 * JSON document, so one validator serves both.  Plain scalars that read as
 * integers, booleans or null become those; quoted scalars stay strings. */
#ifndef FERRY_YAML_H
#define FERRY_YAML_H

#include <stddef.h>

#include <jansson.h>

/* Parse one YAML document.  *lines gets {"hosts[0].ip": 12, ...} (1-based
 * line of every value by path).  NULL with an error "line N: ..." on bad
 * YAML, anchors/aliases or several documents. */
json_t *yaml_to_json(const char *text, size_t len, json_t **lines);

/* Same for JSON text: lines are looked up from the text (approximate: the
 * line of each key's first occurrence). */
json_t *json_with_lines(const char *text, size_t len, json_t **lines);

#endif
