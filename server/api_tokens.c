/* api_tokens.c - a project's credentials: operator tokens (a role in one
 * project), enrollment tokens (single-use, limited or time-limited), and
 * its agents' tokens (revoked, or rotated at the agent's next poll).
 *
 * A token is shown once, in the answer that makes it; the database keeps
 * its SHA-256 only (auth.h), and no answer ever carries a digest. */
#include <string.h>

#include <openssl/crypto.h>

#include "api.h"
#include "auth.h"
#include "db.h"
#include "events.h"
#include "tasks.h"
#include "util/error.h"

#define TOKEN_TTL_MAX (366LL * 86400)  /* a year: renew rather than forget */
#define TOKEN_NAME_MAX 64

static const char *const roles[] = { "viewer", "operator", "admin" };

/* An optional positive integer field of at most max: 0 (with *out set, 0
 * when absent), or -1 after replying 400. */
static int int_field(struct request *r, json_t *body, const char *name,
                     long long max, const char *what, long long *out,
                     enum MHD_Result *ret)
{
  json_t *v = json_object_get(body, name);

  *out = 0;
  if (v == NULL || json_is_null(v))
    return 0;
  if (!json_is_integer(v) || json_integer_value(v) < 1 ||
      json_integer_value(v) > max) {
    *ret = reply_error(r, 400, name, "field '%s' must be %s: an integer "
                       "from 1 to %lld", name, what, max);
    return -1;
  }
  *out = json_integer_value(v);
  return 0;
}

/* Check the request for a new token; 0 with kind, role and name set, or
 * -1 after replying 400. */
static int token_request(struct request *r, json_t *body, const char **kind,
                         const char **role, const char **name,
                         long long *ttl, long long *uses,
                         enum MHD_Result *ret)
{
  json_t *v;
  size_t i;

  v = json_object_get(body, "kind");
  *kind = v ? json_string_value(v) : "operator";
  if (*kind == NULL ||
      (strcmp(*kind, "operator") && strcmp(*kind, "enroll"))) {
    *ret = reply_error(r, 400, "kind", "field 'kind' must be \"operator\" "
                       "or \"enroll\"");
    return -1;
  }
  *role = json_string_value(json_object_get(body, "role"));
  if (strcmp(*kind, "enroll") == 0) {
    if (json_object_get(body, "role")) {
      *ret = reply_error(r, 400, "role", "an enrollment token has no role: "
                         "leave out field 'role'");
      return -1;
    }
  } else {
    for (i = 0; *role && i < sizeof roles / sizeof roles[0]; i++)
      if (strcmp(*role, roles[i]) == 0)
        break;
    if (*role == NULL || i == sizeof roles / sizeof roles[0]) {
      *ret = reply_error(r, 400, "role", "field 'role' must be \"viewer\" "
                         "(read), \"operator\" (migrate, cancel, retry, "
                         "cutover) or \"admin\" (tokens, blueprints, "
                         "agents)");
      return -1;
    }
  }
  v = json_object_get(body, "name");
  *name = v ? json_string_value(v) : "";
  if (*name == NULL || strlen(*name) > TOKEN_NAME_MAX) {
    *ret = reply_error(r, 400, "name", "field 'name' must be a string of at "
                       "most %d characters", TOKEN_NAME_MAX);
    return -1;
  }
  for (i = 0; (*name)[i]; i++)
    if ((unsigned char)(*name)[i] < 0x20 || (*name)[i] == 0x7f) {
      *ret = reply_error(r, 400, "name", "field 'name' must not hold "
                         "control characters");
      return -1;
    }
  if (int_field(r, body, "ttl", TOKEN_TTL_MAX, "the token's lifetime in "
                "seconds", ttl, ret) == -1 ||
      int_field(r, body, "uses", 1000000, "how many enrollments the token "
                "may make", uses, ret) == -1)
    return -1;
  if (*uses && strcmp(*kind, "enroll") != 0) {
    *ret = reply_error(r, 400, "uses", "field 'uses' is for enrollment "
                       "tokens (kind \"enroll\")");
    return -1;
  }
  return 0;
}

enum MHD_Result api_token_create(struct request *r)
{
  char token[TOKEN_HEX_LEN + 1], hash[DIGEST_HEX_LEN + 1], now[32];
  const char *kind, *role, *name;
  enum MHD_Result ret;
  long long ttl, uses, id;
  json_t *body, *row = NULL;

  body = request_json(r, &ret);
  if (body == NULL)
    return ret;
  if (token_request(r, body, &kind, &role, &name, &ttl, &uses, &ret) == -1) {
    json_decref(body);
    return ret;
  }
  if (auth_new_token(token) == -1) {
    json_decref(body);
    return reply_error(r, 500, NULL, "%s", ferry_errmsg());
  }
  auth_hash_hex(token, hash);
  db_lock();
  id = db_insert(r->srv->db, "INSERT INTO tokens (kind, name, project_id, "
                 "role, token_hash, created, expires, uses_left) VALUES (?1, "
                 "?2, ?3, ?4, ?5, ?6, CASE WHEN ?7 > 0 THEN ?8 + ?7 END, "
                 "nullif(?9, 0))", "ttitt" "tidi", kind, name,
                 r->project_id, role, hash, db_now(now), ttl, task_now(),
                 uses);
  if (id > 0) {
    row = db_query_one(r->srv->db, "SELECT t.id, t.kind, t.name, p.name AS "
                       "project, t.role, t.created, strftime("
                       "'%Y-%m-%dT%H:%M:%SZ', t.expires, 'unixepoch') AS "
                       "expires, t.uses_left FROM tokens t JOIN projects p "
                       "ON p.id = t.project_id WHERE t.id = ?1", "i", id);
    event_add_project(r->srv->db, r->project_id, "token", "%s token %lld "
                      "made%s%s", kind, id, role ? " with role " : "",
                      role ? role : "");
  }
  db_unlock();
  json_decref(body);
  OPENSSL_cleanse(hash, sizeof hash);
  if (id < 0 || row == NULL || json_is_null(row)) {
    OPENSSL_cleanse(token, sizeof token);
    json_decref(row);
    return reply_error(r, 500, NULL, "cannot store the token: %s",
                       ferry_errmsg());
  }
  /* shown this once: only its digest stays */
  json_object_set_new(row, "token", json_string(token));
  OPENSSL_cleanse(token, sizeof token);
  return reply_json(r, 201, row);
}

enum MHD_Result api_tokens_list(struct request *r)
{
  json_t *rows;

  db_lock();
  rows = db_query(r->srv->db, "SELECT id, kind, name, role, created, "
                  "strftime('%Y-%m-%dT%H:%M:%SZ', expires, 'unixepoch') AS "
                  "expires, uses_left, revoked, last_used, CASE WHEN "
                  "revoked IS NOT NULL THEN 'revoked' WHEN expires <= ?2 "
                  "THEN 'expired' WHEN uses_left <= 0 THEN 'used up' ELSE "
                  "'valid' END AS state FROM tokens WHERE project_id = ?1 "
                  "ORDER BY id", "id", r->project_id, task_now());
  db_unlock();
  if (rows == NULL)
    return reply_error(r, 500, NULL, "%s", ferry_errmsg());
  return reply_json(r, 200, json_pack("{s:o}", "tokens", rows));
}

enum MHD_Result api_token_revoke(struct request *r)
{
  long long id = request_id(r, 0), found = 0;
  char now[32];
  int n = -1;

  if (id <= 0)
    return reply_error(r, 400, "id", "token id '%s' is not a positive "
                       "integer", r->params[0]);
  db_lock();
  /* another project's token is as unknown as one that never was */
  if (db_get_int(r->srv->db, &found, "SELECT id FROM tokens WHERE id = ?1 "
                 "AND project_id = ?2", "ii", id, r->project_id) == 1) {
    n = db_run(r->srv->db, "UPDATE tokens SET revoked = ?2 WHERE id = ?1 "
               "AND revoked IS NULL", "it", id, db_now(now));
    if (n == 1)
      event_add_project(r->srv->db, r->project_id, "token", "token %lld "
                        "revoked", id);
  }
  db_unlock();
  if (found == 0)
    return reply_error(r, 404, "id", "no token %lld in this project", id);
  if (n < 0)
    return reply_error(r, 500, NULL, "%s", ferry_errmsg());
  return reply_json(r, 200, json_pack("{s:I, s:s}", "id", (json_int_t)id,
                                      "state", "revoked"));
}

enum MHD_Result api_agents_list(struct request *r)
{
  json_t *rows;

  db_lock();
  rows = db_query(r->srv->db, "SELECT id, hostname, host_id, enrolled, "
                  "last_seen, revoked, rotate AS rotate_pending FROM agents "
                  "WHERE project_id = ?1 ORDER BY id", "i", r->project_id);
  db_unlock();
  if (rows == NULL)
    return reply_error(r, 500, NULL, "%s", ferry_errmsg());
  return reply_json(r, 200, json_pack("{s:o}", "agents", rows));
}

/* The agents {id} names in the caller's project: an agent id, or a
 * hostname for every agent that enrolled as it.  The WHERE clause, with
 * ?1 the id (0 for a name), ?2 the parameter, ?3 the project. */
#define AGENT_MATCH \
  "(id = ?1 OR (?1 = 0 AND hostname = ?2)) AND project_id = ?3"

static enum MHD_Result agents_act(struct request *r, int revoke)
{
  long long id = request_id(r, 0), known = 0;
  char now[32];
  int n = -1;

  db_lock();
  if (db_get_int(r->srv->db, &known, "SELECT count(*) FROM agents WHERE "
                 AGENT_MATCH, "iti", id, r->params[0], r->project_id) == 1 &&
      known > 0 && db_exec(r->srv->db, "BEGIN IMMEDIATE") == 0) {
    if (revoke) {
      /* its running tasks go to another agent of the host (or wait for
       * one) now, not when their leases run out */
      n = db_run(r->srv->db, "UPDATE tasks SET lease_until = 0 WHERE "
                 "state = 'running' AND agent_id IN (SELECT id FROM agents "
                 "WHERE " AGENT_MATCH ")", "iti", id, r->params[0],
                 r->project_id);
      if (n >= 0)
        n = db_run(r->srv->db, "UPDATE agents SET revoked = ?4 WHERE "
                   AGENT_MATCH " AND revoked IS NULL", "itit", id,
                   r->params[0], r->project_id, db_now(now));
    } else {
      n = db_run(r->srv->db, "UPDATE agents SET rotate = 1 WHERE "
                 AGENT_MATCH " AND revoked IS NULL", "iti", id,
                 r->params[0], r->project_id);
    }
    if (n >= 0 &&
        (event_add_project(r->srv->db, r->project_id, "agent", "%s of "
                           "agent(s) %s: %d agent(s)", revoke ? "revocation"
                           : "token rotation", r->params[0], n) == -1 ||
         db_exec(r->srv->db, "COMMIT") == -1))
      n = -1;
    if (n < 0)
      db_exec(r->srv->db, "ROLLBACK");
  }
  db_unlock();
  if (known == 0)
    return reply_error(r, 404, "id", "no agent '%s' in this project (an "
                       "agent id or the hostname it enrolled as)",
                       r->params[0]);
  if (n < 0)
    return reply_error(r, 500, NULL, "%s", ferry_errmsg());
  server_wake(r->srv);
  return reply_json(r, 200, json_pack("{s:s, s:i}", "state", revoke
                                      ? "revoked" : "rotation requested",
                                      "agents", n));
}

/* The agent's token stops working at once: its next call is 401 with
 * code token_revoked, and the agent stops. */
enum MHD_Result api_agent_revoke(struct request *r)
{
  return agents_act(r, 1);
}

/* The agent trades its token for a new one at its next poll. */
enum MHD_Result api_agent_rotate(struct request *r)
{
  return agents_act(r, 0);
}
