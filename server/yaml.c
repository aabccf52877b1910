#include "yaml.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "util/error.h"

#define YAML_DEPTH_MAX 32

struct parser {
  yaml_parser_t p;
  json_t *lines;
};

static json_t *scalar_value(const yaml_event_t *ev)
{
  const char *v = (const char *)ev->data.scalar.value;
  size_t n = ev->data.scalar.length;
  char *end;
  long long i;

  if (ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
    return json_stringn(v, n);
  if (n == 0 || strcmp(v, "~") == 0 || strcmp(v, "null") == 0)
    return json_null();
  if (strcmp(v, "true") == 0)
    return json_true();
  if (strcmp(v, "false") == 0)
    return json_false();
  if ((v[0] >= '0' && v[0] <= '9') || (v[0] == '-' && n > 1)) {
    errno = 0;
    i = strtoll(v, &end, 10);
    if (errno == 0 && *end == '\0' && (v[0] != '0' || n == 1))
      return json_integer(i);
  }
  return json_stringn(v, n);
}

static int next(struct parser *ps, yaml_event_t *ev)
{
  if (!yaml_parser_parse(&ps->p, ev)) {
    ferry_error("line %zu: %s%s%s", ps->p.problem_mark.line + 1,
                ps->p.problem ? ps->p.problem : "malformed YAML",
                ps->p.context ? " " : "",
                ps->p.context ? ps->p.context : "");
    return -1;
  }
  return 0;
}

static json_t *parse_node(struct parser *ps, yaml_event_t *ev,
                          const char *path, int depth);

static json_t *parse_mapping(struct parser *ps, const char *path, int depth)
{
  json_t *obj = json_object();
  yaml_event_t ev;

  for (;;) {
    char key[256], sub[1024];
    json_t *val;

    if (next(ps, &ev) == -1)
      goto fail;
    if (ev.type == YAML_MAPPING_END_EVENT) {
      yaml_event_delete(&ev);
      return obj;
    }
    if (ev.type != YAML_SCALAR_EVENT) {
      ferry_error("line %zu: %s: a mapping key must be a plain word",
                  ev.start_mark.line + 1, *path ? path : "top level");
      yaml_event_delete(&ev);
      goto fail;
    }
    snprintf(key, sizeof key, "%s", (const char *)ev.data.scalar.value);
    if (json_object_get(obj, key)) {
      ferry_error("line %zu: %s%s%s appears twice", ev.start_mark.line + 1,
                  path, *path ? "." : "", key);
      yaml_event_delete(&ev);
      goto fail;
    }
    yaml_event_delete(&ev);
    snprintf(sub, sizeof sub, "%s%s%s", path, *path ? "." : "", key);
    if (next(ps, &ev) == -1)
      goto fail;
    val = parse_node(ps, &ev, sub, depth + 1);
    yaml_event_delete(&ev);
    if (val == NULL)
      goto fail;
    json_object_set_new(obj, key, val);
  }
fail:
  json_decref(obj);
  return NULL;
}

static json_t *parse_sequence(struct parser *ps, const char *path, int depth)
{
  json_t *arr = json_array();
  yaml_event_t ev;
  size_t i;

  for (i = 0;; i++) {
    char sub[1024];
    json_t *val;

    if (next(ps, &ev) == -1)
      goto fail;
    if (ev.type == YAML_SEQUENCE_END_EVENT) {
      yaml_event_delete(&ev);
      return arr;
    }
    snprintf(sub, sizeof sub, "%s[%zu]", path, i);
    val = parse_node(ps, &ev, sub, depth + 1);
    yaml_event_delete(&ev);
    if (val == NULL)
      goto fail;
    json_array_append_new(arr, val);
  }
fail:
  json_decref(arr);
  return NULL;
}

static json_t *parse_node(struct parser *ps, yaml_event_t *ev,
                          const char *path, int depth)
{
  if (depth > YAML_DEPTH_MAX) {
    ferry_error("line %zu: nested more than %d levels deep",
                ev->start_mark.line + 1, YAML_DEPTH_MAX);
    return NULL;
  }
  if (*path)
    json_object_set_new(ps->lines, path,
                        json_integer((json_int_t)ev->start_mark.line + 1));
  switch (ev->type) {
  case YAML_SCALAR_EVENT:
    return scalar_value(ev);
  case YAML_MAPPING_START_EVENT:
    return parse_mapping(ps, path, depth);
  case YAML_SEQUENCE_START_EVENT:
    return parse_sequence(ps, path, depth);
  case YAML_ALIAS_EVENT:
    ferry_error("line %zu: YAML aliases (*name) are not supported in "
                "blueprints: write the value out", ev->start_mark.line + 1);
    return NULL;
  default:
    ferry_error("line %zu: unexpected YAML content",
                ev->start_mark.line + 1);
    return NULL;
  }
}

json_t *yaml_to_json(const char *text, size_t len, json_t **lines)
{
  struct parser ps = { .lines = json_object() };
  yaml_event_t ev;
  json_t *root = NULL;
  int state = 0;           /* 0 before the document, 1 after its root */

  if (!yaml_parser_initialize(&ps.p)) {
    ferry_error("out of memory");
    json_decref(ps.lines);
    return NULL;
  }
  yaml_parser_set_input_string(&ps.p, (const unsigned char *)text, len);
  for (;;) {
    if (next(&ps, &ev) == -1)
      goto fail;
    if (ev.type == YAML_STREAM_END_EVENT) {
      yaml_event_delete(&ev);
      break;
    }
    if (ev.type == YAML_STREAM_START_EVENT ||
        ev.type == YAML_DOCUMENT_END_EVENT) {
      yaml_event_delete(&ev);
      continue;
    }
    if (ev.type == YAML_DOCUMENT_START_EVENT) {
      if (state != 0) {
        ferry_error("line %zu: a blueprint is one YAML document, not "
                    "several", ev.start_mark.line + 1);
        yaml_event_delete(&ev);
        goto fail;
      }
      yaml_event_delete(&ev);
      continue;
    }
    if ((ev.type == YAML_SCALAR_EVENT ||
         ev.type == YAML_MAPPING_START_EVENT ||
         ev.type == YAML_SEQUENCE_START_EVENT) && ev.data.scalar.anchor) {
      ferry_error("line %zu: YAML anchors (&name) are not supported in "
                  "blueprints", ev.start_mark.line + 1);
      yaml_event_delete(&ev);
      goto fail;
    }
    root = parse_node(&ps, &ev, "", 0);
    yaml_event_delete(&ev);
    if (root == NULL)
      goto fail;
    state = 1;
  }
  yaml_parser_delete(&ps.p);
  if (root == NULL) {
    ferry_error("line 1: the blueprint is empty");
    json_decref(ps.lines);
    return NULL;
  }
  *lines = ps.lines;
  return root;
fail:
  yaml_parser_delete(&ps.p);
  json_decref(root);
  json_decref(ps.lines);
  return NULL;
}

/* Where the key search stands: the text after the last key found, the
 * line that text starts on, and how many keys were not found (each such
 * search reads the rest of the text). */
struct cursor {
  const char *at;
  long line;
  unsigned misses;
};

/* After this many keys not found (written with escapes), the rest get
 * line 1: searching on would read the text once per key. */
#define JSON_LINES_MISSES_MAX 64

/* Record "path" -> line for every key, found by scanning the text for each
 * key's quoted name in document order (jansson keeps insertion order).
 * Good enough to point a person at the right line.  Lines are counted
 * only between one key and the next, so the whole text is counted once. */
static void json_lines(json_t *v, const char *path, struct cursor *c,
                       json_t *lines)
{
  const char *key;
  json_t *child;
  size_t i;

  if (json_is_object(v)) {
    json_object_foreach(v, key, child) {
      char sub[1024], quoted[300];
      const char *at;
      long line = 1;

      snprintf(sub, sizeof sub, "%s%s%s", path, *path ? "." : "", key);
      snprintf(quoted, sizeof quoted, "\"%s\"", key);
      at = c->misses < JSON_LINES_MISSES_MAX ? strstr(c->at, quoted) : NULL;
      if (at) {
        const char *end = at + strlen(quoted);

        for (; c->at < at; c->at++)
          c->line += *c->at == '\n';
        line = c->line;
        for (; c->at < end; c->at++)
          c->line += *c->at == '\n';
      } else {
        c->misses++;
      }
      json_object_set_new(lines, sub, json_integer(line));
      json_lines(child, sub, c, lines);
    }
  } else if (json_is_array(v)) {
    json_array_foreach(v, i, child) {
      char sub[1024];

      snprintf(sub, sizeof sub, "%s[%zu]", path, i);
      json_lines(child, sub, c, lines);
    }
  }
}

json_t *json_with_lines(const char *text, size_t len, json_t **lines)
{
  json_error_t jerr;
  json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);

  if (root == NULL) {
    ferry_error("line %d: %s", jerr.line, jerr.text);
    return NULL;
  }
  *lines = json_object();
  json_lines(root, "", &(struct cursor){ text, 1, 0 }, *lines);
  return root;
}
