/* httpd.c - request bodies, routing and replies for libmicrohttpd. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <strings.h>

#include "api.h"
#include "auth.h"
#include "db.h"
#include "metrics.h"
#include "route.h"
#include "tasks.h"
#include "util/error.h"
#include "util/log.h"

static const struct route routes[] = {
  { "GET", "/v1/ca.pem", SCOPE_NONE, api_ca_get },
  { "POST", "/v1/agents/enroll", SCOPE_ENROLL, api_enroll },
  { "POST", "/v1/agent/discovery", SCOPE_AGENT, api_agent_discovery },
  { "GET", "/v1/agent/tasks", SCOPE_AGENT, api_agent_task_poll },
  { "POST", "/v1/agent/tasks/{id}/progress", SCOPE_AGENT,
    api_agent_task_progress },
  { "POST", "/v1/agent/tasks/{id}/result", SCOPE_AGENT,
    api_agent_task_result },
  { "POST", "/v1/agent/tasks/{id}/grants", SCOPE_AGENT, api_agent_grants },
  { "GET", "/v1/agent/tasks/{id}/objects", SCOPE_AGENT, api_agent_objects },
  { "POST", "/v1/agent/token/rotate", SCOPE_AGENT, api_agent_token_rotate },
  { "GET", "/v1/hosts", SCOPE_VIEWER, api_hosts_list },
  { "GET", "/v1/hosts/{id}", SCOPE_VIEWER, api_host_get },
  { "GET", "/v1/blueprints", SCOPE_VIEWER, api_blueprints_list },
  { "POST", "/v1/blueprints", SCOPE_ADMIN, api_blueprint_put },
  { "POST", "/v1/blueprints/validate", SCOPE_OPERATOR,
    api_blueprint_validate },
  { "GET", "/v1/blueprints/{id}", SCOPE_VIEWER, api_blueprint_get },
  { "GET", "/v1/migrations", SCOPE_VIEWER, api_migrations_list },
  { "POST", "/v1/migrations", SCOPE_OPERATOR, api_migration_create },
  { "GET", "/v1/migrations/{id}", SCOPE_VIEWER, api_migration_get },
  { "POST", "/v1/migrations/{id}/cancel", SCOPE_OPERATOR,
    api_migration_cancel },
  { "POST", "/v1/migrations/{id}/retry", SCOPE_OPERATOR,
    api_migration_retry },
  { "POST", "/v1/migrations/{id}/cleanup", SCOPE_OPERATOR,
    api_migration_cleanup },
  { "POST", "/v1/migrations/{id}/cutover", SCOPE_OPERATOR,
    api_migration_cutover },
  { "GET", "/v1/events", SCOPE_VIEWER, api_events_list },
  { "GET", "/v1/events/stream", SCOPE_VIEWER, api_events_stream },
  { "GET", "/metrics", SCOPE_VIEWER, api_metrics },
  { "GET", "/v1/projects", SCOPE_ADMIN, api_projects_list },
  { "POST", "/v1/projects", SCOPE_ADMIN, api_project_create },
  { "GET", "/v1/tokens", SCOPE_ADMIN, api_tokens_list },
  { "POST", "/v1/tokens", SCOPE_ADMIN, api_token_create },
  { "POST", "/v1/tokens/{id}/revoke", SCOPE_ADMIN, api_token_revoke },
  { "GET", "/v1/agents", SCOPE_VIEWER, api_agents_list },
  { "GET", "/v1/whoami", SCOPE_VIEWER, api_whoami },
  { "POST", "/v1/agents/{id}/revoke", SCOPE_ADMIN, api_agent_revoke },
  { "POST", "/v1/agents/{id}/rotate", SCOPE_ADMIN, api_agent_rotate },
  /* the dashboard's own files (api_ui.c): no token, no data in them */
  { "GET", "/", SCOPE_NONE, api_ui_root },
  { "GET", "/ui/", SCOPE_NONE, api_ui_index },
  { "GET", "/ui/{file}", SCOPE_NONE, api_ui_file },
};

const struct route *api_routes(size_t *n)
{
  *n = sizeof routes / sizeof routes[0];
  return routes;
}

static const char *const scope_names[] = {
  [SCOPE_NONE] = "no", [SCOPE_ENROLL] = "an enrollment",
  [SCOPE_AGENT] = "an agent", [SCOPE_VIEWER] = "an operator",
  [SCOPE_OPERATOR] = "an operator", [SCOPE_ADMIN] = "an operator",
};

static const char *const role_names[] = {
  [SCOPE_VIEWER] = "viewer", [SCOPE_OPERATOR] = "operator",
  [SCOPE_ADMIN] = "admin",
};

/* Why authenticate() refused a token: a message, and a code a program
 * can act on (an agent stops on "token_revoked" rather than enrolling
 * again). */
struct auth_refusal {
  const char *code;
  char msg[256];
};

const char *scope_role_name(enum scope s)
{
  return s >= SCOPE_VIEWER && s <= SCOPE_ADMIN ? role_names[s] : NULL;
}

static enum scope role_parse(const char *s)
{
  enum scope i;

  for (i = SCOPE_VIEWER; s && i <= SCOPE_ADMIN; i++)
    if (strcmp(s, role_names[i]) == 0)
      return i;
  return SCOPE_NONE;
}

/* An operator or enrollment token made through the API (tokens): 1 with
 * r set when it is one and usable, 0 when it is none, -1 when it is one
 * but revoked, expired or used up (why says which).  Caller holds
 * db_lock. */
static int api_token(struct request *r, const char *hex,
                     struct auth_refusal *why)
{
  sqlite3_stmt *st;
  const char *kind;
  int rc = 0;

  st = db_prepare(r->srv->db, "SELECT id, kind, project_id, role, "
                  "revoked IS NOT NULL, coalesce(expires <= ?2, 0), "
                  "coalesce(uses_left <= 0, 0), strftime("
                  "'%Y-%m-%dT%H:%M:%SZ', expires, 'unixepoch') FROM tokens "
                  "WHERE token_hash = ?1", "td", hex, task_now());
  if (st == NULL || sqlite3_step(st) != SQLITE_ROW) {
    sqlite3_finalize(st);
    return 0;
  }
  kind = (const char *)sqlite3_column_text(st, 1);
  if (sqlite3_column_int(st, 4)) {
    why->code = "token_revoked";
    snprintf(why->msg, sizeof why->msg, "this token was revoked (ferry "
             "token revoke): ask an admin of its project for a new one");
    rc = -1;
  } else if (sqlite3_column_int(st, 5)) {
    why->code = "token_expired";
    snprintf(why->msg, sizeof why->msg, "this token expired at %s: ask "
             "an admin of its project for a new one",
             (const char *)sqlite3_column_text(st, 7));
    rc = -1;
  } else if (sqlite3_column_int(st, 6)) {
    why->code = "token_used_up";
    snprintf(why->msg, sizeof why->msg, "this enrollment token has been "
             "used as often as it may (ferry token create --enroll "
             "--uses N): ask an admin for a new one");
    rc = -1;
  } else {
    r->token_id = sqlite3_column_int64(st, 0);
    r->project_id = sqlite3_column_int64(st, 2);
    r->scope = strcmp(kind, "enroll") == 0 ? SCOPE_ENROLL
               : role_parse((const char *)sqlite3_column_text(st, 3));
    rc = r->scope == SCOPE_NONE ? 0 : 1;
  }
  sqlite3_finalize(st);
  /* to the minute: not a database write for each call of a job watch */
  if (rc == 1 && r->scope >= SCOPE_VIEWER) {
    char now[32];

    db_run(r->srv->db, "UPDATE tokens SET last_used = ?2 WHERE id = ?1 AND "
           "(last_used IS NULL OR last_used < strftime("
           "'%Y-%m-%dT%H:%M:%fZ', 'now', '-60 seconds'))", "it",
           r->token_id, db_now(now));
  }
  return rc;
}

/* Which token the request carries: 0 with r->scope set (SCOPE_NONE when
 * there is none), -1 when a token was presented that is not valid (why
 * says so). */
static int authenticate(struct request *r, struct auth_refusal *why)
{
  const char *h = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
                                              "Authorization");
  char hex[DIGEST_HEX_LEN + 1];
  sqlite3_stmt *st;
  const char *tok;
  int revoked = 0, rc;

  r->scope = SCOPE_NONE;
  r->project_id = PROJECT_DEFAULT;
  why->code = "token_invalid";
  snprintf(why->msg, sizeof why->msg, "the bearer token is not valid "
           "here: check the token file you use");
  if (h == NULL)
    return 0;
  if (strncasecmp(h, "Bearer ", 7) != 0)
    return -1;
  tok = h + 7;
  /* the server's two bootstrap tokens, from their files: constant time */
  if (auth_matches(tok, r->srv->operator_hash)) {
    r->scope = SCOPE_ADMIN;
    r->server_admin = 1;
    return 0;
  }
  if (auth_matches(tok, r->srv->enroll_hash)) {
    r->scope = SCOPE_ENROLL;
    return 0;
  }
  /* Every other token is looked up by its SHA-256: the database never
   * holds one.  The index search is not constant-time, but what its
   * timing can reveal is how close the digest of the caller's own guess
   * comes to a stored digest, which says nothing about any token
   * (preimage resistance): the secret itself is never compared. */
  auth_hash_hex(tok, hex);
  db_lock();
  st = db_prepare(r->srv->db, "SELECT id, coalesce(host_id, 0), "
                  "project_id, revoked IS NOT NULL FROM agents WHERE "
                  "token_hash = ?1", "t", hex);
  if (st && sqlite3_step(st) == SQLITE_ROW) {
    r->agent_id = sqlite3_column_int64(st, 0);
    r->agent_host_id = sqlite3_column_int64(st, 1);
    r->project_id = sqlite3_column_int64(st, 2);
    revoked = sqlite3_column_int(st, 3);
    if (!revoked)
      r->scope = SCOPE_AGENT;
  }
  sqlite3_finalize(st);
  rc = r->scope == SCOPE_AGENT ? 1 : revoked ? -1 : api_token(r, hex, why);
  db_unlock();
  if (revoked) {
    why->code = "token_revoked";
    snprintf(why->msg, sizeof why->msg, "this agent's token was revoked "
             "by an admin (ferry agent revoke): the agent stops; enroll "
             "it again to bring it back");
  }
  return rc == 1 ? 0 : -1;
}

/* The project an operator call acts in: a project's token acts in its
 * own; the server admin's (operator.token) in the one the X-Ferry-Project
 * header names, 'default' without one.  0, or -1 after replying. */
static int select_project(struct request *r, enum MHD_Result *ret)
{
  const char *name = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
                                                 PROJECT_HEADER);
  long long id = 0;

  if (name == NULL)
    return 0;
  db_lock();
  if (db_get_int(r->srv->db, &id, "SELECT id FROM projects WHERE name = ?1",
                 "t", name) == -1) {
    db_unlock();
    *ret = reply_error(r, 500, NULL, "%s", ferry_errmsg());
    return -1;
  }
  db_unlock();
  /* a project token learns nothing of other projects: whether the one
   * named exists or not, the answer is the same */
  if (!r->server_admin && id != r->project_id) {
    *ret = reply_error(r, 403, "project", "this token belongs to another "
                       "project than the one " PROJECT_HEADER " names: use "
                       "a token of that project (or leave the header out)");
    return -1;
  }
  if (id == 0) {
    *ret = reply_error(r, 404, "project", "no project named in "
                       PROJECT_HEADER ": ferry project list shows them");
    return -1;
  }
  r->project_id = id;
  return 0;
}

static enum MHD_Result reply_refusal(struct request *r,
                                     const struct auth_refusal *why)
{
  return reply_json(r, 401, json_pack("{s:{s:i, s:s, s:s}}", "error",
                                      "status", 401, "message", why->msg,
                                      "code", why->code));
}

/* Per-connection state while a body arrives. */
struct pending {
  char *body;
  size_t len, cap;
  int too_big;
  struct timespec t0;                  /* the request's headers arrived */
};

enum MHD_Result reply_json(struct request *r, unsigned status, json_t *body)
{
  struct MHD_Response *resp;
  char *text;

  text = body ? json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
  json_decref(body);
  if (text == NULL) {
    text = strdup("{\"error\": {\"status\": 500, \"message\": \"out of "
                  "memory\"}}");
    status = 500;
    if (text == NULL)
      return MHD_NO;
  }
  resp = MHD_create_response_from_buffer(strlen(text), text,
                                         MHD_RESPMEM_MUST_FREE);
  if (resp == NULL) {
    free(text);
    return MHD_NO;
  }
  MHD_add_response_header(resp, "Content-Type", "application/json");
  MHD_add_response_header(resp, "Cache-Control", "no-store");
  return reply_response(r, status, resp);
}

enum MHD_Result reply_response(struct request *r, unsigned status,
                               struct MHD_Response *resp)
{
  enum MHD_Result ret;

  if (resp == NULL)
    return MHD_NO;
  ret = MHD_queue_response(r->conn, status, resp);
  MHD_destroy_response(resp);
  r->status = status;
  log_debug("%s %s -> %u", r->method, r->path, status);
  return ret;
}

/* GET /metrics: Prometheus' text format, the caller's project's view. */
enum MHD_Result api_metrics(struct request *r)
{
  struct MHD_Response *resp;
  char *text = metrics_render(r->srv->db, r->project_id);

  if (text == NULL)
    return reply_error(r, 500, NULL, "metrics: %s", ferry_errmsg());
  resp = MHD_create_response_from_buffer(strlen(text), text,
                                         MHD_RESPMEM_MUST_FREE);
  if (resp == NULL) {
    free(text);
    return MHD_NO;
  }
  MHD_add_response_header(resp, "Content-Type",
                          "text/plain; version=0.0.4; charset=utf-8");
  MHD_add_response_header(resp, "Cache-Control", "no-store");
  return reply_response(r, 200, resp);
}

enum MHD_Result reply_error(struct request *r, unsigned status,
                            const char *field, const char *fmt, ...)
{
  char msg[512];
  json_t *err;
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  err = json_pack("{s:{s:i, s:s}}", "error", "status", (int)status,
                  "message", msg);
  if (err && field)
    json_object_set_new(json_object_get(err, "error"), "field",
                        json_string(field));
  if (status >= 500)
    log_warn("%s %s: %u %s", r->method, r->path, status, msg);
  return reply_json(r, status, err);
}

enum MHD_Result reply_empty(struct request *r, unsigned status)
{
  return reply_response(r, status, MHD_create_response_from_buffer(0, NULL,
                        MHD_RESPMEM_PERSISTENT));
}

const char *request_arg(struct request *r, const char *name)
{
  return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

void server_wake(struct server *srv)
{
  pthread_mutex_lock(&srv->lock);
  srv->wake_seq++;
  pthread_cond_broadcast(&srv->wake);
  pthread_mutex_unlock(&srv->lock);
}

int server_stopping(struct server *srv)
{
  int s;

  pthread_mutex_lock(&srv->lock);
  s = srv->stopping;
  pthread_mutex_unlock(&srv->lock);
  return s;
}

void server_nap(struct server *srv)
{
  struct timespec ts;

  pthread_mutex_lock(&srv->lock);
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_sec += 1;
  if (!srv->stopping)
    pthread_cond_timedwait(&srv->wake, &srv->lock, &ts);
  pthread_mutex_unlock(&srv->lock);
}

json_t *request_json(struct request *r, enum MHD_Result *result)
{
  json_error_t jerr;
  json_t *j;

  if (r->body_len == 0) {
    *result = reply_error(r, 400, NULL, "the request needs a JSON body");
    return NULL;
  }
  j = json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, &jerr);
  if (j == NULL) {
    *result = reply_error(r, 400, NULL, "malformed JSON at line %d, column "
                          "%d: %s", jerr.line, jerr.column, jerr.text);
    return NULL;
  }
  if (!json_is_object(j)) {
    json_decref(j);
    *result = reply_error(r, 400, NULL, "the body must be a JSON object");
    return NULL;
  }
  return j;
}

long long request_id(struct request *r, int i)
{
  const char *s = r->params[i];
  long long v;
  char *end;

  if (s == NULL || *s < '1' || *s > '9')
    return 0;
  errno = 0;
  v = strtoll(s, &end, 10);
  return errno || *end ? 0 : v;
}

int route_match(const char *pattern, const char *path,
                       struct request *r, char *buf, size_t size)
{
  const char *p = pattern, *q = path;
  char *b = buf;
  int np = 0;

  while (*p && *q) {
    if (*p == '{') {
      size_t n = strcspn(q, "/");

      if (n == 0 || np == API_MAX_PARAMS || (size_t)(b - buf) + n + 1 > size)
        return 0;
      memcpy(b, q, n);
      b[n] = '\0';
      r->params[np++] = b;
      b += n + 1;
      q += n;
      p = strchr(p, '}');
      if (p == NULL)
        return 0;
      p++;
    } else if (*p++ != *q++) {
      return 0;
    }
  }
  return *p == '\0' && *q == '\0';
}

static enum MHD_Result dispatch(struct request *r)
{
  struct auth_refusal why;
  enum MHD_Result ret;
  char buf[512];
  size_t i;
  int path_known = 0, authed = 0;

  for (i = 0; i < sizeof routes / sizeof routes[0]; i++) {
    memset(r->params, 0, sizeof r->params);
    if (!route_match(routes[i].pattern, r->path, r, buf, sizeof buf))
      continue;
    path_known = 1;
    r->route = routes[i].pattern;
    if (strcmp(routes[i].method, r->method) != 0)
      continue;
    if (!authed && routes[i].scope != SCOPE_NONE) {
      if (authenticate(r, &why) == -1)
        return reply_refusal(r, &why);
      authed = 1;
    }
    if (routes[i].scope != SCOPE_NONE && r->scope == SCOPE_NONE)
      return reply_error(r, 401, NULL, "%s %s needs %s token in an "
                         "'Authorization: Bearer' header", r->method,
                         r->path, scope_names[routes[i].scope]);
    if (routes[i].scope >= SCOPE_VIEWER && r->scope >= SCOPE_VIEWER) {
      if (select_project(r, &ret) == -1)
        return ret;
      if (r->scope < routes[i].scope)
        return reply_error(r, 403, NULL, "%s %s needs the %s role; this "
                           "token has the %s role (ask an admin of the "
                           "project)", r->method, r->path,
                           role_names[routes[i].scope],
                           role_names[r->scope]);
    } else if (routes[i].scope != SCOPE_NONE &&
               r->scope != routes[i].scope) {
      return reply_error(r, 403, NULL, "%s %s needs %s token, not %s token",
                         r->method, r->path, scope_names[routes[i].scope],
                         scope_names[r->scope]);
    }
    return routes[i].handler(r);
  }
  if (path_known)
    return reply_error(r, 405, NULL, "%s is not allowed on %s", r->method,
                       r->path);
  return reply_error(r, 404, NULL, "no such endpoint: %s %s", r->method,
                     r->path);
}

enum MHD_Result api_handle(void *cls, struct MHD_Connection *conn,
                           const char *url, const char *method,
                           const char *version, const char *upload_data,
                           size_t *upload_data_size, void **con_cls)
{
  struct pending *pd = *con_cls;
  struct request r = {
    .srv = cls, .conn = conn, .method = method, .path = url,
  };
  struct timespec t1;
  enum MHD_Result ret;

  (void)version;
  if (pd == NULL) {
    pd = calloc(1, sizeof *pd);
    if (pd == NULL)
      return MHD_NO;
    clock_gettime(CLOCK_MONOTONIC, &pd->t0);
    *con_cls = pd;
    return MHD_YES;
  }
  if (*upload_data_size > 0) {
    size_t n = *upload_data_size;

    *upload_data_size = 0;
    if (pd->too_big || n > API_BODY_MAX - pd->len) {
      pd->too_big = 1;              /* drain the rest, then answer 413 */
      return MHD_YES;
    }
    if (pd->len + n + 1 > pd->cap) {
      size_t cap = pd->cap ? pd->cap : 4096;
      char *p;

      while (cap < pd->len + n + 1)
        cap *= 2;
      p = realloc(pd->body, cap);
      if (p == NULL)
        return MHD_NO;
      pd->body = p;
      pd->cap = cap;
    }
    memcpy(pd->body + pd->len, upload_data, n);
    pd->len += n;
    pd->body[pd->len] = '\0';
    return MHD_YES;
  }
  if (pd->too_big) {
    ret = reply_error(&r, 413, NULL, "request body larger than %u bytes",
                      API_BODY_MAX);
  } else {
    r.body = pd->body;
    r.body_len = pd->len;
    ret = dispatch(&r);
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  metrics_api(method, r.route, r.status, (double)(t1.tv_sec - pd->t0.tv_sec)
              + (t1.tv_nsec - pd->t0.tv_nsec) / 1e9);
  return ret;
}

void api_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                   enum MHD_RequestTerminationCode toe)
{
  struct pending *pd = *con_cls;

  (void)cls;
  (void)conn;
  (void)toe;
  if (pd) {
    free(pd->body);
    free(pd);
    *con_cls = NULL;
  }
}
