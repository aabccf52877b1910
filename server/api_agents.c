/* api_agents.c - what agents call: enrollment, discovery, tasks.
 *
 * Agents only ever connect out to the server: they enroll once with the
 * shared enrollment token and get a token of their own (only its hash is
 * stored), post their inventory, then long-poll for tasks.  Each poll and
 * each progress report is a heartbeat that extends the leases of the tasks
 * the agent runs; a poll from an agent that holds a running task means it
 * lost it, and the task is offered again at once. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "api.h"
#include "auth.h"
#include "util/cleanup.h"
#include "db.h"
#include "util/error.h"
#include "events.h"
#include "image/names.h"
#include "util/log.h"
#include "tasks.h"

#define POLL_WAIT_DEFAULT 25
#define POLL_WAIT_MAX 60

enum MHD_Result api_enroll(struct request *r)
{
  char token[TOKEN_HEX_LEN + 1], hash[DIGEST_HEX_LEN + 1], now[32];
  enum MHD_Result ret;
  const char *hostname;
  long long id;
  json_t *body, *v;

  body = request_json(r, &ret);
  if (body == NULL)
    return ret;
  v = json_object_get(body, "hostname");
  if (!json_is_string(v) ||
      hostname_check(json_string_value(v), json_string_length(v)) == -1) {
    if (!json_is_string(v))
      ferry_error("must be a string (a host name)");
    json_decref(body);
    return reply_error(r, 400, "hostname", "field 'hostname' %s",
                       ferry_errmsg());
  }
  hostname = json_string_value(v);
  if (auth_new_token(token) == -1) {
    json_decref(body);
    return reply_error(r, 500, NULL, "%s", ferry_errmsg());
  }
  auth_hash_hex(token, hash);
  db_lock();
  if (db_exec(r->srv->db, "BEGIN IMMEDIATE") == -1) {
    db_unlock();
    json_decref(body);
    return reply_error(r, 500, NULL, "%s", ferry_errmsg());
  }
  /* a use of a limited enrollment token is spent with the enrollment it
   * made, in one transaction: two agents racing for the last use of a
   * single-use token get one agent, and one 401 */
  if (r->token_id &&
      db_run(r->srv->db, "UPDATE tokens SET uses_left = uses_left - 1, "
             "last_used = ?2 WHERE id = ?1 AND uses_left IS NOT NULL",
             "it", r->token_id, db_now(now)) == -1)
    id = -1;
  else if (r->token_id &&
           db_int(r->srv->db, 0, "SELECT uses_left < 0 FROM tokens WHERE "
                  "id = ?1", "i", r->token_id) == 1)
    id = 0;
  else
    id = db_insert(r->srv->db, "INSERT INTO agents (hostname, token_hash, "
                   "enrolled, last_seen, project_id) VALUES (?1, ?2, ?3, "
                   "?3, ?4)", "ttti", hostname, hash, db_now(now),
                   r->project_id);
  if (id > 0 && (event_add_project(r->srv->db, r->project_id, "agent",
                                   "agent %lld enrolled from %s", id,
                                   hostname) == -1 ||
                 db_exec(r->srv->db, "COMMIT") == -1))
    id = -1;
  if (id <= 0)
    db_exec(r->srv->db, "ROLLBACK");
  db_unlock();
  json_decref(body);
  OPENSSL_cleanse(hash, sizeof hash);
  if (id == 0) {
    OPENSSL_cleanse(token, sizeof token);
    return reply_json(r, 401, json_pack("{s:{s:i, s:s, s:s}}", "error",
                      "status", 401, "message", "this enrollment token has "
                      "been used as often as it may: ask an admin for a new "
                      "one", "code", "token_used_up"));
  }
  if (id < 0) {
    OPENSSL_cleanse(token, sizeof token);
    return reply_error(r, 500, NULL, "cannot record the agent: %s",
                       ferry_errmsg());
  }
  ret = reply_json(r, 201, json_pack("{s:I, s:s}", "agent_id",
                                     (json_int_t)id, "token", token));
  OPENSSL_cleanse(token, sizeof token);
  return ret;
}

/* The agent trades its token for a new one: the old one stops working
 * the moment this commits.  The agent saves the new one (its token file,
 * written aside and renamed) before it uses it. */
enum MHD_Result api_agent_token_rotate(struct request *r)
{
  char token[TOKEN_HEX_LEN + 1], hash[DIGEST_HEX_LEN + 1];
  enum MHD_Result ret;
  int n;

  if (auth_new_token(token) == -1)
    return reply_error(r, 500, NULL, "%s", ferry_errmsg());
  auth_hash_hex(token, hash);
  db_lock();
  n = db_run(r->srv->db, "UPDATE agents SET token_hash = ?2, rotate = 0 "
             "WHERE id = ?1 AND revoked IS NULL", "it", r->agent_id, hash);
  if (n == 1)
    event_add_project(r->srv->db, r->project_id, "agent", "agent %lld "
                      "rotated its token", r->agent_id);
  db_unlock();
  OPENSSL_cleanse(hash, sizeof hash);
  if (n != 1) {
    OPENSSL_cleanse(token, sizeof token);
    return n == 0 ? reply_error(r, 409, NULL, "this agent was revoked "
                                "meanwhile")
                  : reply_error(r, 500, NULL, "%s", ferry_errmsg());
  }
  ret = reply_json(r, 200, json_pack("{s:s}", "token", token));
  OPENSSL_cleanse(token, sizeof token);
  return ret;
}

/* An agent speaks for the host it enrolled as, and only for it: posting
 * another host's name, or once bound another machine, would hand it that
 * host's tasks and store URLs.  0 if inv is this agent's host; else -1
 * after replying 403.  Caller holds db_lock. */
static int agent_owns_inventory(struct request *r, json_t *inv,
                                enum MHD_Result *ret)
{
  const char *hn = json_string_value(json_object_get(inv, "hostname"));
  const char *mid = json_string_value(json_object_get(inv, "machine_id"));
  json_t *a = db_query_one(r->srv->db, "SELECT hostname FROM agents WHERE "
                           "id = ?1", "i", r->agent_id);
  const char *enrolled = json_string_value(json_object_get(a, "hostname"));
  long long host;

  if (enrolled == NULL || strcmp(enrolled, hn) != 0) {
    *ret = a == NULL ? reply_error(r, 500, NULL, "%s", ferry_errmsg())
         : reply_error(r, 403, "hostname", "this agent enrolled as another "
                       "host: it may post only its own host's discovery "
                       "(a renamed host enrolls again)");
    json_decref(a);
    return -1;
  }
  json_decref(a);
  if (r->agent_host_id == 0)
    return 0;
  host = db_int(r->srv->db, 0, "SELECT id FROM hosts WHERE hostname = ?1 "
                "AND machine_id = ?2", "tt", hn, mid ? mid : "");
  if (host != r->agent_host_id) {
    *ret = reply_error(r, 403, "machine_id", "this agent posts for host "
                       "%lld and the inventory names another machine: a "
                       "reinstalled host enrolls again", r->agent_host_id);
    return -1;
  }
  return 0;
}

enum MHD_Result api_agent_discovery(struct request *r)
{
  enum MHD_Result ret;
  const char *field, *msg;
  long long host_id;
  char now[32];
  json_t *inv;

  inv = request_json(r, &ret);
  if (inv == NULL)
    return ret;
  field = hosts_check_inventory(inv, &msg);
  if (field) {
    json_decref(inv);
    return reply_error(r, 400, field, "%s", msg);
  }
  db_lock();
  if (agent_owns_inventory(r, inv, &ret) == -1) {
    db_unlock();
    json_decref(inv);
    return ret;
  }
  host_id = hosts_record_inventory(r->srv->db, inv, r->body,
                                   r->project_id);
  if (host_id > 0)
    db_run(r->srv->db, "UPDATE agents SET host_id = ?2, last_seen = ?3 "
           "WHERE id = ?1", "iit", r->agent_id, host_id, db_now(now));
  db_unlock();
  if (host_id < 0) {
    json_decref(inv);
    return reply_error(r, 500, NULL, "the server could not store the "
                       "inventory: %s", ferry_errmsg());
  }
  if (host_id == 0) {
    json_decref(inv);
    return reply_error(r, 403, "hostname", "this machine is a host of "
                       "another project than this agent's: enroll it with "
                       "an enrollment token of that project");
  }
  log_info("discovery from %s (host %lld, agent %lld)",
           json_string_value(json_object_get(inv, "hostname")), host_id,
           r->agent_id);
  json_decref(inv);
  return reply_json(r, 201, json_pack("{s:I, s:s}", "host_id",
                                      (json_int_t)host_id, "received", now));
}

static long wait_arg(struct request *r)
{
  const char *w = request_arg(r, "wait");
  char *end;
  long v;

  if (w == NULL)
    return POLL_WAIT_DEFAULT;
  v = strtol(w, &end, 10);
  if (*end || v < 0)
    return -1;
  return v > POLL_WAIT_MAX ? POLL_WAIT_MAX : v;
}

/* A clone or sync task reads a disk on the source as root: hand one out
 * only for a disk the host reported in its latest discovery.  1 if task
 * may go to the agent; 0 with *why set if not; -1 on a database error.
 * Caller holds db_lock. */
static int task_disk_reported(sqlite3 *db, long long host_id, json_t *task,
                              const char **why)
{
  const char *kind = json_string_value(json_object_get(task, "kind"));
  json_t *disk = json_object_get(json_object_get(task, "spec"), "disk");
  json_t *row, *d;
  size_t i;
  int found = 0;

  if (kind == NULL || (strcmp(kind, "clone") && strcmp(kind, "sync")))
    return 1;
  if (!json_is_string(disk) ||
      diskname_check(json_string_value(disk),
                     json_string_length(disk)) == -1) {
    *why = "the task's disk is not a disk name: refused";
    return 0;
  }
  row = db_query_one(db, "SELECT body AS inv_json FROM inventories WHERE "
                     "host_id = ?1 ORDER BY id DESC LIMIT 1", "i", host_id);
  if (row == NULL)
    return -1;
  json_array_foreach(json_object_get(json_object_get(row, "inv"), "disks"),
                     i, d)
    if (json_equal(json_object_get(d, "name"), disk))
      found = 1;
  json_decref(row);
  if (!found)
    *why = "the host's latest discovery does not report this disk: the "
           "server hands out no task for a disk the host did not report";
  return found;
}

static int timespec_before(const struct timespec *a,
                           const struct timespec *b)
{
  return a->tv_sec < b->tv_sec ||
         (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

/* Long poll: a task for this agent's host, or 204 after wait seconds. */
enum MHD_Result api_agent_task_poll(struct request *r)
{
  struct server *srv = r->srv;
  long wait = wait_arg(r);
  struct timespec deadline, looked;
  char now[32];
  json_t *task;
  int first = 1;

  if (wait < 0)
    return reply_error(r, 400, "wait", "query 'wait' must be a number of "
                       "seconds");
  if (r->agent_host_id == 0)
    return reply_error(r, 409, NULL, "post this agent's discovery first: "
                       "tasks are given per discovered host");
  clock_gettime(CLOCK_REALTIME, &deadline);
  deadline.tv_sec += wait;
  for (;;) {
    unsigned long seq;

    pthread_mutex_lock(&srv->lock);
    seq = srv->wake_seq;
    pthread_mutex_unlock(&srv->lock);

    db_lock();
    /* the heartbeat and the re-offer below write: once per poll, not on
     * every wake-up (a fleet's pollers woken together would queue a
     * thousand writes behind the database lock) */
    if (first)
      db_run(srv->db, "UPDATE agents SET last_seen = ?2 WHERE id = ?1",
             "it", r->agent_id, db_now(now));
    /* revoked while it waited: it takes nothing more.  An admin asked
     * for a new token (ferry agent rotate): the agent trades its token
     * before it takes more work. */
    switch (db_int(srv->db, 0, "SELECT CASE WHEN revoked IS NOT NULL THEN "
                   "2 ELSE rotate END FROM agents WHERE id = ?1", "i",
                   r->agent_id)) {
    case 0:
      break;
    case 2:
      db_unlock();
      return reply_json(r, 401, json_pack("{s:{s:i, s:s, s:s}}", "error",
                        "status", 401, "message", "this agent's token was "
                        "revoked by an admin (ferry agent revoke)", "code",
                        "token_revoked"));
    default:
      db_unlock();
      return reply_json(r, 200, json_pack("{s:b}", "rotate_token", 1));
    }
    /* an agent polls only when it runs nothing: a task still marked as
     * running on it was lost (the agent restarted) and is offered again
     * now rather than when its lease runs out */
    if (first)
      db_run(srv->db, "UPDATE tasks SET lease_until = 0 WHERE agent_id = ?1 "
             "AND state = 'running'", "i", r->agent_id);
    first = 0;
    task = task_claim(srv->db, "agent", r->agent_host_id, r->agent_id,
                      srv->lease_seconds);
    /* bounded: each refusal spends one of the task's attempts */
    while (task && !json_is_null(task)) {
      const char *why = NULL;
      int ok = task_disk_reported(srv->db, r->agent_host_id, task, &why);

      if (ok == 1)
        break;
      if (ok == -1 || task_finish(srv->db, json_integer_value(
                                    json_object_get(task, "id")), 0, why,
                                  NULL, srv->max_attempts) == NULL) {
        json_decref(task);
        task = NULL;
        break;
      }
      json_decref(task);
      task = task_claim(srv->db, "agent", r->agent_host_id, r->agent_id,
                        srv->lease_seconds);
    }
    if (task && !json_is_null(task))
      event_add(srv->db, json_integer_value(json_object_get(task,
                                                            "migration_id")),
                r->agent_host_id, "task", NULL, "%s task %lld given to "
                "agent %lld", json_string_value(json_object_get(task,
                                                                "kind")),
                (long long)json_integer_value(json_object_get(task, "id")),
                r->agent_id);
    db_unlock();
    if (task == NULL)
      return reply_error(r, 500, NULL, "%s", ferry_errmsg());
    if (!json_is_null(task))
      return reply_json(r, 200, json_pack("{s:o}", "task", task));
    json_decref(task);

    clock_gettime(CLOCK_REALTIME, &looked);
    pthread_mutex_lock(&srv->lock);
    while (!srv->stopping && srv->wake_seq == seq &&
           pthread_cond_timedwait(&srv->wake, &srv->lock, &deadline) == 0)
      ;
    /* A wake-up is for everyone (the orchestrator, the workers, every
     * poller), and a busy server wakes many times a second: look again
     * a second after the last look at the soonest, so that a burst of
     * wake-ups costs each poller one look, not one each.  A task waits
     * at most that second longer. */
    looked.tv_sec += 1;
    if (timespec_before(&deadline, &looked))
      looked = deadline;
    while (!srv->stopping &&
           pthread_cond_timedwait(&srv->wake, &srv->lock, &looked) == 0)
      ;
    if (srv->stopping) {
      pthread_mutex_unlock(&srv->lock);
      return reply_empty(r, 204);
    }
    pthread_mutex_unlock(&srv->lock);
    {
      struct timespec t;

      clock_gettime(CLOCK_REALTIME, &t);
      if (!timespec_before(&t, &deadline))
        return reply_empty(r, 204);
    }
  }
}

/* The task, if this agent runs it: NULL after replying otherwise. */
static json_t *own_task(struct request *r, enum MHD_Result *ret)
{
  long long id = request_id(r, 0);
  json_t *t;

  if (id <= 0) {
    *ret = reply_error(r, 400, "id", "task id '%s' is not a positive "
                       "integer", r->params[0]);
    return NULL;
  }
  t = db_query_one(r->srv->db, "SELECT id, state, agent_id, migration_id, "
                   "host_id, kind FROM tasks WHERE id = ?1 AND host_id = ?2",
                   "ii", id, r->agent_host_id);
  if (t == NULL) {
    *ret = reply_error(r, 500, NULL, "%s", ferry_errmsg());
    return NULL;
  }
  if (json_is_null(t)) {
    *ret = reply_error(r, 404, "id", "no task %lld for this agent's host",
                       id);
    return NULL;
  }
  return t;
}

static int get_u64_field(json_t *body, const char *name, long long *out)
{
  json_t *v = json_object_get(body, name);

  if (v == NULL) {
    *out = 0;
    return 0;
  }
  if (!json_is_integer(v) || json_integer_value(v) < 0)
    return -1;
  *out = json_integer_value(v);
  return 0;
}

enum MHD_Result api_agent_task_progress(struct request *r)
{
  long long done, total;
  enum MHD_Result ret;
  json_t *body, *t, *rate;
  const char *state;
  double rate_v = 0;
  char now[32];

  body = request_json(r, &ret);
  if (body == NULL)
    return ret;
  if (get_u64_field(body, "done_bytes", &done) == -1 ||
      get_u64_field(body, "total_bytes", &total) == -1) {
    json_decref(body);
    return reply_error(r, 400, "done_bytes", "fields 'done_bytes' and "
                       "'total_bytes' must be non-negative integers");
  }
  rate = json_object_get(body, "rate");
  if (rate && !json_is_number(rate)) {
    json_decref(body);
    return reply_error(r, 400, "rate", "field 'rate' must be a number "
                       "(bytes per second)");
  }
  if (rate)
    rate_v = json_number_value(rate);
  json_decref(body);
  db_lock();
  t = own_task(r, &ret);
  if (t == NULL) {
    db_unlock();
    return ret;
  }
  state = json_string_value(json_object_get(t, "state"));
  if (strcmp(state, "running") == 0 &&
      json_integer_value(json_object_get(t, "agent_id")) == r->agent_id) {
    long long mig = json_integer_value(json_object_get(t, "migration_id"));

    db_run(r->srv->db, "UPDATE tasks SET done_bytes = ?2, total_bytes = ?3, "
           "rate = ?4, lease_until = ?5, updated = ?6 WHERE id = ?1",
           "iiiddt", (long long)json_integer_value(json_object_get(t,
                                                                      "id")),
           done, total, isfinite(rate_v) ? rate_v : 0.0,
           task_now() + r->srv->lease_seconds, db_now(now));
    db_run(r->srv->db, "UPDATE migrations SET done_bytes = (SELECT "
           "coalesce(sum(done_bytes), 0) FROM tasks WHERE migration_id = ?1 "
           "AND kind IN ('clone', 'sync') AND round = (SELECT max(round) "
           "FROM tasks WHERE migration_id = ?1)), total_bytes = (SELECT "
           "coalesce(sum(total_bytes), 0) FROM tasks WHERE migration_id = ?1 "
           "AND kind IN ('clone', 'sync') AND round = (SELECT max(round) "
           "FROM tasks WHERE migration_id = ?1)), updated = ?2 WHERE id = ?1",
           "it", mig, now);
    task_heartbeat(r->srv->db, r->agent_id, r->srv->lease_seconds);
  } else if (strcmp(state, "running") == 0) {
    state = "reassigned";     /* another agent of this host took it over */
  }
  ret = reply_json(r, 200, json_pack("{s:s}", "state", state));
  db_unlock();
  json_decref(t);
  return ret;
}

enum MHD_Result api_agent_task_result(struct request *r)
{
  enum MHD_Result ret;
  json_t *body, *t, *status, *error, *result;
  const char *state, *st;
  long long id;
  int ok;

  body = request_json(r, &ret);
  if (body == NULL)
    return ret;
  status = json_object_get(body, "status");
  st = json_string_value(status);
  if (st == NULL || (strcmp(st, "succeeded") && strcmp(st, "failed"))) {
    json_decref(body);
    return reply_error(r, 400, "status", "field 'status' must be "
                       "\"succeeded\" or \"failed\"");
  }
  ok = strcmp(st, "succeeded") == 0;
  error = json_object_get(body, "error");
  if (!ok && !json_is_string(error)) {
    json_decref(body);
    return reply_error(r, 400, "error", "a failed task needs field 'error' "
                       "(a string saying what went wrong)");
  }
  result = json_object_get(body, "result");
  if (result && !json_is_object(result)) {
    json_decref(body);
    return reply_error(r, 400, "result", "field 'result' must be an "
                       "object");
  }
  db_lock();
  t = own_task(r, &ret);
  if (t == NULL) {
    db_unlock();
    json_decref(body);
    return ret;
  }
  id = json_integer_value(json_object_get(t, "id"));
  state = json_string_value(json_object_get(t, "state"));
  if (strcmp(state, "running") != 0 ||
      json_integer_value(json_object_get(t, "agent_id")) != r->agent_id) {
    /* canceled or taken over meanwhile: the report is not needed; an
     * identical repeat of a recorded result is fine */
    ret = reply_json(r, 409, json_pack("{s:{s:i, s:s}, s:s}", "error",
                     "status", 409, "message", "this task is no longer "
                     "running on this agent", "state", state));
  } else {
    state = task_finish(r->srv->db, id, ok, json_string_value(error), result,
                        r->srv->max_attempts);
    ret = state ? reply_json(r, 200, json_pack("{s:s}", "state", state))
                : reply_error(r, 500, NULL, "%s", ferry_errmsg());
  }
  db_unlock();
  json_decref(t);
  json_decref(body);
  server_wake(r->srv);
  return ret;
}
