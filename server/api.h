/* api.h - the REST API: the server's state, requests, routes, replies. */
#ifndef FERRY_API_H
#define FERRY_API_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <microhttpd.h>
#include <sqlite3.h>

#include "hash/digest.h"

#define API_BODY_MAX (4u << 20)        /* larger bodies get 413 */
#define API_MAX_PARAMS 4
#define GRANT_TTL_DEFAULT 900            /* 15 minutes */
#define GRANT_TTL_MAX 3600

struct server {
  sqlite3 *db;
  uint8_t operator_hash[DIGEST_LEN];
  uint8_t enroll_hash[DIGEST_LEN];
  char *convert_bin;                   /* ferry-convert beside us */
  char *prepare_bin;                   /* ferry-prepare beside us */
  const char *ca_pem;                  /* GET /v1/ca.pem; NULL: 404 */
  unsigned convert_workers;            /* bounded pool of conversions */
  unsigned lease_seconds;              /* re-offer a silent agent's task */
  unsigned max_attempts;               /* per task, before the job fails */
  unsigned grant_ttl;                  /* seconds a store grant lasts */

  pthread_mutex_t lock;                /* guards wake_seq and stopping */
  pthread_cond_t wake;                 /* something to do: tasks, jobs */
  unsigned long wake_seq;
  int stopping;
};

/* Who called: decided from the bearer token before the handler runs.  An
 * operator token holds a role in one project, and the last three scopes
 * are those roles, least first: a route names the least it needs
 * (docs/SECURITY.md section 3). */
enum scope {
  SCOPE_NONE,                          /* no token needed */
  SCOPE_ENROLL,                        /* an enrollment token */
  SCOPE_AGENT,                         /* an enrolled agent's own token */
  SCOPE_VIEWER,                        /* operator token: read */
  SCOPE_OPERATOR,                      /* + migrate, cancel, retry, cutover */
  SCOPE_ADMIN,                         /* + tokens, blueprints, agents */
};

#define PROJECT_DEFAULT 1              /* what existed before projects */
#define PROJECT_HEADER "X-Ferry-Project"

struct request {
  struct server *srv;
  struct MHD_Connection *conn;
  const char *method;
  const char *path;
  const char *params[API_MAX_PARAMS];  /* {id} segments of the route */
  char *body;                          /* NUL-terminated */
  size_t body_len;
  enum scope scope;                    /* of the presented token */
  long long agent_id;                  /* SCOPE_AGENT: which agent */
  long long agent_host_id;             /* its host, 0 before discovery */
  long long project_id;                /* every call acts in one project */
  long long token_id;                  /* its row in tokens, 0 bootstrap */
  int server_admin;                    /* operator.token: every project */
  const char *route;                   /* the matched route's pattern */
  unsigned status;                     /* of the answer, once queued */
};

struct route {
  const char *method;
  const char *pattern;                 /* "/v1/hosts/{id}" */
  enum scope scope;
  enum MHD_Result (*handler)(struct request *r);
};

/* Reply with body as JSON (reference stolen). */
enum MHD_Result reply_json(struct request *r, unsigned status, json_t *body);
/* {"error": {"status": N, "message": "...", "field": "..."}} */
enum MHD_Result reply_error(struct request *r, unsigned status,
                            const char *field, const char *fmt, ...)
  __attribute__((format(printf, 4, 5)));
enum MHD_Result reply_empty(struct request *r, unsigned status);
/* Queue resp (and release it) as the answer, with its status recorded
 * for the request's log line and metrics; NULL resp: MHD_NO. */
enum MHD_Result reply_response(struct request *r, unsigned status,
                               struct MHD_Response *resp);

/* Parse the body as a JSON object; NULL after replying 400. */
json_t *request_json(struct request *r, enum MHD_Result *result);

/* {id} parameter i as a positive integer; 0 if it is not one. */
long long request_id(struct request *r, int i);

/* A query-string argument, or NULL. */
const char *request_arg(struct request *r, const char *name);

/* Wake the orchestrator, workers and long polls. */
void server_wake(struct server *srv);
/* 1 once the server is stopping. */
int server_stopping(struct server *srv);
/* Wait for server_wake(), at most a second (a loop's idle tick). */
void server_nap(struct server *srv);

/* MHD's access handler with the route table. */
enum MHD_Result api_handle(void *cls, struct MHD_Connection *conn,
                           const char *url, const char *method,
                           const char *version, const char *upload_data,
                           size_t *upload_data_size, void **con_cls);
void api_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                   enum MHD_RequestTerminationCode toe);

/* Handlers, by file. */
enum MHD_Result api_enroll(struct request *r);              /* api_agents.c */
enum MHD_Result api_agent_discovery(struct request *r);
enum MHD_Result api_agent_task_poll(struct request *r);
enum MHD_Result api_agent_task_progress(struct request *r);
enum MHD_Result api_agent_task_result(struct request *r);
enum MHD_Result api_agent_grants(struct request *r);        /* api_grants.c */
enum MHD_Result api_agent_objects(struct request *r);
enum MHD_Result api_hosts_list(struct request *r);          /* api_hosts.c */
enum MHD_Result api_host_get(struct request *r);
enum MHD_Result api_blueprints_list(struct request *r);  /* api_blueprints */
enum MHD_Result api_blueprint_get(struct request *r);
enum MHD_Result api_blueprint_put(struct request *r);
enum MHD_Result api_blueprint_validate(struct request *r);
enum MHD_Result api_migrations_list(struct request *r);  /* api_migrations */
enum MHD_Result api_migration_create(struct request *r);
enum MHD_Result api_migration_get(struct request *r);
enum MHD_Result api_migration_cancel(struct request *r);
enum MHD_Result api_migration_retry(struct request *r);
enum MHD_Result api_migration_cleanup(struct request *r);
enum MHD_Result api_migration_cutover(struct request *r);
enum MHD_Result api_events_list(struct request *r);
enum MHD_Result api_metrics(struct request *r);             /* httpd.c */
enum MHD_Result api_events_stream(struct request *r);     /* api_stream.c */
enum MHD_Result api_projects_list(struct request *r);      /* api_tokens.c */
enum MHD_Result api_project_create(struct request *r);
enum MHD_Result api_tokens_list(struct request *r);
enum MHD_Result api_token_create(struct request *r);
enum MHD_Result api_token_revoke(struct request *r);
enum MHD_Result api_agents_list(struct request *r);
enum MHD_Result api_agent_revoke(struct request *r);
enum MHD_Result api_agent_rotate(struct request *r);
enum MHD_Result api_agent_token_rotate(struct request *r);
enum MHD_Result api_ca_get(struct request *r);              /* api_ca.c */
enum MHD_Result api_ui_root(struct request *r);             /* api_ui.c */
enum MHD_Result api_ui_index(struct request *r);
enum MHD_Result api_ui_file(struct request *r);
enum MHD_Result api_whoami(struct request *r);

/* "viewer", "operator" or "admin" for an operator token's scope, else
 * NULL (httpd.c). */
const char *scope_role_name(enum scope s);

/* Store an inventory for host (hostname, machine_id from it) in project;
 * the host's id, 0 when that machine is a host of another project, or -1
 * with an error (api_hosts.c).  Caller holds db_lock. */
long long hosts_record_inventory(sqlite3 *db, json_t *inv, const char *body,
                                 long long project_id);
/* Validate an inventory's identifying fields; NULL if fine, else the bad
 * field's name with *msg set. */
const char *hosts_check_inventory(json_t *inv, const char **msg);

#endif
