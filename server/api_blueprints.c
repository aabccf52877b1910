/* api_blueprints.c - submit, validate and read blueprints.  The body of a
 * POST is the blueprint itself, YAML or JSON. */
#include <stdio.h>
#include <string.h>

#include "api.h"
#include "blueprint.h"
#include "util/cleanup.h"
#include "db.h"
#include "util/error.h"
#include "events.h"

/* Every finding on a parsed blueprint, against the project's hosts as
 * they are now; the number of errors. */
static int check(struct request *r, json_t *bp, json_t *lines,
                 json_t *findings)
{
  int errors = blueprint_validate(bp, lines, findings);

  db_lock();
  errors += blueprint_check_hosts(bp, lines, r->srv->db, r->project_id,
                                  findings);
  db_unlock();
  return errors;
}

/* Parse and validate the body; NULL after replying when unreadable. */
static json_t *check_body(struct request *r, json_t **findings, int *errors,
                          enum MHD_Result *ret)
{
  json_t *lines = NULL, *bp;
  char field[64];

  if (r->body_len == 0) {
    *ret = reply_error(r, 400, NULL, "the request body must be the "
                       "blueprint (YAML or JSON)");
    return NULL;
  }
  bp = blueprint_parse(r->body, r->body_len, &lines);
  if (bp == NULL) {
    *ret = reply_error(r, 400, NULL, "the blueprint cannot be read: %s",
                       ferry_errmsg());
    return NULL;
  }
  if (blueprint_bad_name(bp, field, sizeof field)) {
    *ret = reply_error(r, 400, field, "field '%s' %s", field,
                       ferry_errmsg());
    json_decref(bp);
    json_decref(lines);
    return NULL;
  }
  *findings = json_array();
  *errors = check(r, bp, lines, *findings);
  json_decref(lines);
  return bp;
}

enum MHD_Result api_blueprint_validate(struct request *r)
{
  enum MHD_Result ret;
  json_t *findings, *bp;
  int errors;

  bp = check_body(r, &findings, &errors, &ret);
  if (bp == NULL)
    return ret;
  json_decref(bp);
  return reply_json(r, 200, json_pack("{s:b, s:i, s:o}", "valid", !errors,
                                      "errors", errors, "findings",
                                      findings));
}

enum MHD_Result api_blueprint_put(struct request *r)
{
  CLEANUP_FREE char *norm = NULL;
  enum MHD_Result ret;
  json_t *findings, *bp;
  const char *name;
  long long id;
  char now[32];
  int errors;

  bp = check_body(r, &findings, &errors, &ret);
  if (bp == NULL)
    return ret;
  if (errors) {
    json_decref(bp);
    return reply_json(r, 422, json_pack("{s:{s:i, s:s}, s:o}", "error",
                      "status", 422, "message", "the blueprint has errors: "
                      "see findings", "findings", findings));
  }
  name = json_string_value(json_object_get(bp, "name"));
  norm = json_dumps(bp, JSON_COMPACT | JSON_PRESERVE_ORDER);
  db_lock();
  id = db_int(r->srv->db, -1,
    "INSERT INTO blueprints (name, provider, body, source, created, updated, "
    "project_id) VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6) ON CONFLICT "
    "(project_id, name) DO UPDATE SET provider = ?2, body = ?3, source = ?4, "
    "updated = ?5 RETURNING id", "ttttti", name,
    json_string_value(json_object_get(bp, "provider")), norm, r->body,
    db_now(now), r->project_id);
  if (id > 0)
    event_add_project(r->srv->db, r->project_id, "blueprint", "blueprint %s "
                      "applied (id %lld)", name, id);
  db_unlock();
  if (id < 0) {
    json_decref(bp);
    json_decref(findings);
    return reply_error(r, 500, NULL, "cannot store the blueprint: %s",
                       ferry_errmsg());
  }
  ret = reply_json(r, 201, json_pack("{s:I, s:s, s:o}", "id",
                                     (json_int_t)id, "name", name,
                                     "findings", findings));
  json_decref(bp);
  return ret;
}

enum MHD_Result api_blueprints_list(struct request *r)
{
  json_t *rows;

  db_lock();
  rows = db_query(r->srv->db, "SELECT id, name, provider, created, updated "
                  "FROM blueprints WHERE project_id = ?1 ORDER BY id", "i",
                  r->project_id);
  db_unlock();
  if (rows == NULL)
    return reply_error(r, 500, NULL, "%s", ferry_errmsg());
  return reply_json(r, 200, json_pack("{s:o}", "blueprints", rows));
}

enum MHD_Result api_blueprint_get(struct request *r)
{
  long long id = request_id(r, 0);
  json_t *row, *bp, *lines = NULL, *findings;
  const char *source;
  int errors;

  db_lock();
  /* by id, or by name when the parameter is not a number */
  row = db_query_one(r->srv->db, "SELECT id, name, provider, created, "
                     "updated, body AS blueprint_json, source FROM "
                     "blueprints WHERE (id = ?1 OR (?1 = 0 AND name = ?2)) "
                     "AND project_id = ?3", "iti", id, r->params[0],
                     r->project_id);
  db_unlock();
  if (row == NULL)
    return reply_error(r, 500, NULL, "%s", ferry_errmsg());
  if (json_is_null(row))
    return reply_error(r, 404, "id", "no blueprint '%s'", r->params[0]);
  /* its findings today: hosts discovered since it was applied, or gone,
   * change them (the dashboard shows them beside the source's lines) */
  source = json_string_value(json_object_get(row, "source"));
  bp = source ? blueprint_parse(source, strlen(source), &lines) : NULL;
  if (bp) {
    findings = json_array();
    errors = check(r, bp, lines, findings);
    json_object_set_new(row, "findings", findings);
    json_object_set_new(row, "errors", json_integer(errors));
  }
  json_decref(bp);
  json_decref(lines);
  return reply_json(r, 200, row);
}
