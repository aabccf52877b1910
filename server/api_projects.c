/* api_projects.c - projects: every host, agent, blueprint, migration and
 * event belongs to one, and every operator call acts in one
 * (docs/SECURITY.md section 3). */
#include <string.h>

#include "api.h"
#include "db.h"
#include "events.h"
#include "util/error.h"

/* A project name goes into a header and a table: 1 to 63 of A-Z a-z 0-9
 * '_' '-', starting with a letter or digit.  NULL if fine, else why. */
static const char *project_name_bad(json_t *v)
{
  const char *s = json_string_value(v);
  size_t i, n = json_string_length(v);

  if (s == NULL)
    return "must be a string (the project's name)";
  if (n == 0 || n > 63)
    return "must be 1 to 63 characters long";
  for (i = 0; i < n; i++) {
    char c = s[i];
    int alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                (c >= '0' && c <= '9');

    if (!alnum && (i == 0 || (c != '_' && c != '-')))
      return "may hold only letters, digits, '_' and '-', and starts with "
             "a letter or a digit";
  }
  return NULL;
}

/* The server admin sees every project; a project's admin sees its own. */
enum MHD_Result api_projects_list(struct request *r)
{
  json_t *rows;

  db_lock();
  rows = db_query(r->srv->db, "SELECT id, name, created, (SELECT count(*) "
                  "FROM hosts h WHERE h.project_id = p.id) AS hosts, "
                  "(SELECT count(*) FROM migrations m WHERE m.project_id = "
                  "p.id) AS migrations FROM projects p WHERE ?1 OR id = ?2 "
                  "ORDER BY id", "ii", (long long)r->server_admin,
                  r->project_id);
  db_unlock();
  if (rows == NULL)
    return reply_error(r, 500, NULL, "%s", ferry_errmsg());
  return reply_json(r, 200, json_pack("{s:o}", "projects", rows));
}

/* Only the server admin makes projects: a project's admin manages its
 * own, and a project made by one would be out of every token's reach but
 * the server admin's anyway. */
enum MHD_Result api_project_create(struct request *r)
{
  enum MHD_Result ret;
  const char *bad;
  long long id = 0;
  json_t *body, *v;
  char now[32];

  if (!r->server_admin)
    return reply_error(r, 403, NULL, "making a project needs the server "
                       "admin token (operator.token beside ferry-server's "
                       "database); a project's admin token acts in its own "
                       "project only");
  body = request_json(r, &ret);
  if (body == NULL)
    return ret;
  v = json_object_get(body, "name");
  bad = project_name_bad(v);
  if (bad) {
    json_decref(body);
    return reply_error(r, 400, "name", "field 'name' %s", bad);
  }
  db_lock();
  if (db_get_int(r->srv->db, &id, "SELECT id FROM projects WHERE name = ?1",
                 "t", json_string_value(v)) == 0)
    id = db_insert(r->srv->db, "INSERT INTO projects (name, created) VALUES "
                   "(?1, ?2)", "tt", json_string_value(v), db_now(now));
  else
    id = id > 0 ? 0 : -1;
  if (id > 0)
    event_add_project(r->srv->db, id, "project", "project %s created (id "
                      "%lld)", json_string_value(v), id);
  db_unlock();
  if (id == 0)
    ret = reply_error(r, 409, "name", "a project of that name exists");
  else if (id < 0)
    ret = reply_error(r, 500, NULL, "%s", ferry_errmsg());
  else
    ret = reply_json(r, 201, json_pack("{s:I, s:O}", "id", (json_int_t)id,
                                       "name", v));
  json_decref(body);
  return ret;
}
