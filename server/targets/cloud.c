/* cloud.c - what the cloud drivers share (cloud.h). */
#include "cloud.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../db.h"
#include "../tasks.h"
#include "util/cleanup.h"
#include "util/error.h"
#include "util/log.h"

#define ATTEMPTS_DEFAULT 6
#define SECONDS_DEFAULT 300
#define ATTEMPT_TIMEOUT_DEFAULT 120
#define WAIT_CAP_MS 60000u
#define BACKOFF_BASE_MS 500u
#define BACKOFF_CAP_MS 20000u

/* ---- the ledger ---- */

int cloud_ledger_get(struct task_ctx *t, const char *kind, const char *name,
                     char **id)
{
  json_t *row;
  int r = 0;

  *id = NULL;
  db_lock();
  row = db_query_one(task_ctx_db(t), "SELECT cloud_id FROM target_resources "
                     "WHERE migration_id = ?1 AND kind = ?2 AND name = ?3 "
                     "AND state = 'live'", "itt", task_ctx_migration(t),
                     kind, name);
  db_unlock();
  if (row == NULL)
    return -1;
  if (!json_is_null(row)) {
    *id = strdup(json_string_value(json_object_get(row, "cloud_id")));
    if (*id == NULL) {
      ferry_error("out of memory");
      r = -1;
    } else {
      r = 1;
    }
  }
  json_decref(row);
  return r;
}

int cloud_ledger_put(struct task_ctx *t, const char *kind, const char *name,
                     const char *id, enum cloud_scope scope)
{
  char now[32];
  int r;

  db_lock();
  r = db_run(task_ctx_db(t), "INSERT INTO target_resources (migration_id, "
             "provider, kind, name, cloud_id, scope, state, created, "
             "updated) SELECT id, coalesce(json_extract(plan, "
             "'$.provider'), ''), ?2, ?3, ?4, ?5, 'live', ?6, ?6 FROM "
             "migrations WHERE id = ?1 ON CONFLICT (migration_id, kind, "
             "name) DO UPDATE SET cloud_id = excluded.cloud_id, scope = "
             "excluded.scope, state = 'live', updated = excluded.updated",
             "ittttt", task_ctx_migration(t), kind, name, id,
             scope == CLOUD_BLUEPRINT ? "blueprint" : "migration",
             db_now(now));
  db_unlock();
  if (r == -1)
    ferry_error_prefix("cannot record %s %s (%s) of migration %lld: ", kind,
                       name, id, task_ctx_migration(t));
  return r == -1 ? -1 : 0;
}

int cloud_ledger_gone(struct task_ctx *t, const char *kind, const char *name)
{
  char now[32];
  int r;

  db_lock();
  r = db_run(task_ctx_db(t), "UPDATE target_resources SET state = 'gone', "
             "updated = ?4 WHERE migration_id = ?1 AND kind = ?2 AND name "
             "= ?3", "ittt", task_ctx_migration(t), kind, name, db_now(now));
  db_unlock();
  return r == -1 ? -1 : 0;
}

const char *cloud_token(struct task_ctx *t, const char *what, char *buf,
                        size_t size)
{
  snprintf(buf, size, "ferry-m%lld-%.40s", task_ctx_migration(t), what);
  return buf;
}

long long cloud_migration(struct task_ctx *t)
{
  return task_ctx_migration(t);
}

/* ---- requests ---- */

/* The wait an answer asks for, in ms (0: none said): Retry-After in
 * seconds or as an HTTP date, capped. */
static unsigned retry_after_ms(const struct http_response *resp)
{
  char buf[64], *end;
  unsigned long v;
  time_t when, now;

  if (http_header(resp, "Retry-After", buf, sizeof buf) == NULL)
    return 0;
  v = strtoul(buf, &end, 10);
  if (end != buf && *end == '\0')
    return v * 1000 > WAIT_CAP_MS ? WAIT_CAP_MS : (unsigned)v * 1000;
  when = curl_getdate(buf, NULL);
  now = time(NULL);
  if (when == -1 || when <= now)
    return 0;
  return (unsigned long)(when - now) * 1000 > WAIT_CAP_MS
           ? WAIT_CAP_MS : (unsigned)(when - now) * 1000;
}

static int retry_status(long status)
{
  return status == 408 || status == 429 || status == 500 || status == 502 ||
         status == 503 || status == 504;
}

/* A random wait in [0, min(cap, base * 2^attempt)] ms: full jitter. */
static unsigned backoff_ms(unsigned attempt)
{
  static _Thread_local unsigned seed;
  unsigned long long ceiling = BACKOFF_BASE_MS;

  if (seed == 0)
    seed = (unsigned)time(NULL) ^ (unsigned)(uintptr_t)&ceiling;
  while (attempt-- > 0 && ceiling < BACKOFF_CAP_MS)
    ceiling *= 2;
  if (ceiling > BACKOFF_CAP_MS)
    ceiling = BACKOFF_CAP_MS;
  return (unsigned)(rand_r(&seed) % (ceiling + 1));
}

static double mono_now(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int cloud_request(struct task_ctx *t, const struct cloud_req *r,
                  struct http_response *resp)
{
  unsigned attempts = r->attempts ? r->attempts : ATTEMPTS_DEFAULT;
  unsigned seconds = r->max_seconds ? r->max_seconds : SECONDS_DEFAULT;
  double start = mono_now();
  char host[256];
  unsigned i;

  memset(resp, 0, sizeof *resp);
  http_host(r->url, host, sizeof host);
  for (i = 0;; i++) {
    struct http_request req = {
      .method = r->method, .url = r->url, .body = r->body,
      .body_len = r->body_len, .body_cap = r->body_cap, .stats = "cloud",
      .timeout = r->timeout ? r->timeout : ATTEMPT_TIMEOUT_DEFAULT,
      .connect_timeout = 10,
    };
    size_t k;
    unsigned wait;
    int rc;

    if (task_ctx_stopping(t)) {
      ferry_error("%s at %s: stopped (the task was canceled or the server "
                  "is stopping)", r->what, host);
      return -1;
    }
    if (r->content_type &&
        http_header_add(&req.headers, "Content-Type: %s",
                        r->content_type) == -1)
      return -1;
    for (k = 0; r->headers && r->headers[k]; k++)
      if (http_header_add(&req.headers, "%s", r->headers[k]) == -1) {
        curl_slist_free_all(req.headers);
        return -1;
      }
    if (r->sign && r->sign(r->sign_opaque, &req.headers, r->method, r->url,
                           r->body, r->body_len) == -1) {
      curl_slist_free_all(req.headers);
      ferry_error_prefix("%s: ", r->what);
      return -1;
    }
    rc = http_do(&req, resp);
    curl_slist_free_all(req.headers);
    if (rc == 0 && !retry_status(resp->status))
      return 0;
    if (rc == -1 && !resp->retryable) {
      http_response_free(resp);
      ferry_error_prefix("%s: ", r->what);
      return -1;
    }
    wait = rc == 0 ? retry_after_ms(resp) : 0;
    if (wait == 0)
      wait = backoff_ms(i);
    if (i + 1 >= attempts ||
        mono_now() - start + wait / 1000.0 > (double)seconds) {
      if (rc == 0)
        return 0;                 /* the last answer, for the caller */
      http_response_free(resp);
      ferry_error_prefix("%s: no answer after %u attempts in %.0f s: ",
                         r->what, i + 1, mono_now() - start);
      return -1;
    }
    log_info("%s at %s: %s, trying again in %.1f s (attempt %u of %u)",
             r->what, host, rc == 0 ? "busy or failing" : "no answer",
             wait / 1000.0, i + 2, attempts);
    http_response_free(resp);
    if (task_ctx_sleep(t, wait) == -1) {
      ferry_error("%s at %s: stopped (the task was canceled or the server "
                  "is stopping)", r->what, host);
      return -1;
    }
  }
}

json_t *cloud_json(const struct http_response *resp, const char *what)
{
  json_error_t e;
  json_t *j;

  if (resp->body == NULL || resp->body_len == 0) {
    ferry_error("%s: HTTP %ld with an empty body where JSON was expected",
                what, resp->status);
    return NULL;
  }
  j = json_loadb(resp->body, resp->body_len, 0, &e);
  if (j == NULL)
    ferry_error("%s: HTTP %ld with a body that is not JSON (%s at byte "
                "%d)", what, resp->status, e.text, e.position);
  return j;
}

/* ---- waits ---- */

int cloud_wait(struct task_ctx *t, const char *what, unsigned max_seconds,
               unsigned interval_ms, cloud_check_fn check, void *opaque)
{
  double start = mono_now();

  for (;;) {
    unsigned next = 0;
    int r;

    if (task_ctx_stopping(t)) {
      ferry_error("stopped waiting for %s: the task was canceled or the "
                  "server is stopping", what);
      return -1;
    }
    r = check(opaque, &next);
    if (r == 1)
      return 0;
    if (r == -1)
      return -1;
    if (next == 0)
      next = interval_ms;
    if (next > WAIT_CAP_MS)
      next = WAIT_CAP_MS;
    if (mono_now() - start + next / 1000.0 > (double)max_seconds) {
      ferry_error("timed out after %u s waiting for %s", max_seconds, what);
      return -1;
    }
    if (task_ctx_sleep(t, next) == -1) {
      ferry_error("stopped waiting for %s: the task was canceled or the "
                  "server is stopping", what);
      return -1;
    }
  }
}

static pthread_mutex_t network_mutex = PTHREAD_MUTEX_INITIALIZER;

void cloud_network_lock(void)
{
  pthread_mutex_lock(&network_mutex);
}

void cloud_network_unlock(void)
{
  pthread_mutex_unlock(&network_mutex);
}

/* ---- plan and configuration ---- */

char *cloud_endpoint(json_t *plan, const char *key, const char *env,
                     const char *dflt)
{
  const char *v = json_string_value(json_object_get(
                    json_object_get(plan, "endpoints"), key));
  size_t n;
  char *s;

  if (v == NULL && env)
    v = getenv(env);
  if (v == NULL || v[0] == '\0')
    v = dflt;
  if (v == NULL)
    return NULL;
  s = strdup(v);
  if (s == NULL) {
    ferry_error("out of memory");
    return NULL;
  }
  n = strlen(s);
  while (n > 0 && s[n - 1] == '/')
    s[--n] = '\0';
  return s;
}

const char *cloud_plan_str(json_t *plan, const char *key)
{
  return json_string_value(json_object_get(plan, key));
}
