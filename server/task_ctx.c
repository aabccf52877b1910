/* task_ctx.c - a running server task and its lease keeper (tasks.h). */
#include "tasks.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api.h"
#include "db.h"
#include "events.h"
#include "util/error.h"
#include "util/log.h"

/* Cancel and shutdown reach the child within a tick. */
#define KEEPER_TICK_MS 500
/* Between SIGTERM and SIGKILL: ferry-convert and qemu stop at once on
 * SIGTERM; this bounds a child that does not. */
#define CHILD_GRACE_SECONDS 5.0

struct task_ctx {
  struct server *srv;
  long long id, migration, host;
  long long attempt;            /* attempts at our claim: whose lease it is */
  char kind[16];
  pthread_t keeper;
  double renewed;               /* task_now() of the last renewal */

  pthread_mutex_t lock;         /* guards the members below */
  pthread_cond_t cond;          /* ended was set */
  int ended;
  enum task_stop stop;
  pid_t child;
  double term_at;               /* when the child got SIGTERM, 0: not yet */
  int killed;                   /* it got SIGKILL */
};

static double monotonic(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* SIGTERM the child, SIGKILL it once the grace ran out.  t->lock held. */
static void signal_child(struct task_ctx *t)
{
  pid_t target;
  int sig;

  if (t->child <= 0 || t->killed)
    return;
  if (t->term_at == 0) {
    sig = SIGTERM;
    t->term_at = monotonic();
  } else if (monotonic() - t->term_at >= CHILD_GRACE_SECONDS) {
    sig = SIGKILL;
    t->killed = 1;
  } else {
    return;
  }
  /* a child that leads its own process group takes its children along */
  target = getpgid(t->child) == t->child ? -t->child : t->child;
  if (kill(target, sig) == -1 && errno != ESRCH)
    log_warn("%s task %lld: cannot signal its child %d: %m", t->kind, t->id,
             (int)t->child);
  else
    log_info("%s task %lld: %s sent to its child %d", t->kind, t->id,
             sig == SIGTERM ? "SIGTERM" : "SIGKILL", (int)t->child);
}

/* Is the task still ours?  Renews the lease when a third of it passed.
 * A database error keeps the task running (logged): the next tick tries
 * again, and a lease that ran out meanwhile shows as lost then. */
static enum task_stop keeper_check(struct task_ctx *t)
{
  sqlite3 *db = t->srv->db;
  enum task_stop why = TASK_RUNS;
  double now = task_now();
  const char *state;
  json_t *row;

  if (server_stopping(t->srv))
    return TASK_SHUTDOWN;
  db_lock();
  row = db_query_one(db, "SELECT state, attempts FROM tasks WHERE id = ?1",
                     "i", t->id);
  if (row == NULL) {
    log_warn("%s task %lld: cannot check its lease: %s", t->kind, t->id,
             ferry_errmsg());
    goto out;
  }
  state = json_string_value(json_object_get(row, "state"));
  if (state && strcmp(state, "canceled") == 0) {
    why = TASK_CANCELED;
  } else if (state == NULL || strcmp(state, "running") != 0 ||
             json_integer_value(json_object_get(row, "attempts")) !=
             t->attempt) {
    why = TASK_LEASE_LOST;
    event_add(db, t->migration, t->host, "error", NULL, "%s task %lld is "
              "no longer this worker's (it is %s, attempt %lld): this run "
              "stops", t->kind, t->id, state ? state : "gone",
              (long long)json_integer_value(json_object_get(row,
                                                            "attempts")));
  } else if (now - t->renewed >= (double)t->srv->lease_seconds / 3.0) {
    if (db_run(db, "UPDATE tasks SET lease_until = ?2 WHERE id = ?1 AND "
               "state = 'running' AND attempts = ?3", "idi", t->id,
               now + (double)t->srv->lease_seconds, t->attempt) == -1)
      log_warn("%s task %lld: cannot renew its lease: %s", t->kind, t->id,
               ferry_errmsg());
    else
      t->renewed = now;
  }
out:
  db_unlock();
  json_decref(row);
  return why;
}

static void *keeper_main(void *arg)
{
  struct task_ctx *t = arg;

  pthread_mutex_lock(&t->lock);
  while (!t->ended) {
    struct timespec ts;
    enum task_stop why;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_nsec += KEEPER_TICK_MS * 1000000L;
    ts.tv_sec += ts.tv_nsec / 1000000000L;
    ts.tv_nsec %= 1000000000L;
    pthread_cond_timedwait(&t->cond, &t->lock, &ts);
    if (t->ended)
      break;
    pthread_mutex_unlock(&t->lock);
    why = t->stop == TASK_RUNS ? keeper_check(t) : t->stop;
    pthread_mutex_lock(&t->lock);
    if (t->stop == TASK_RUNS && why != TASK_RUNS) {
      t->stop = why;
      log_info("%s task %lld: stopping it (%s)", t->kind, t->id,
               why == TASK_CANCELED ? "canceled"
               : why == TASK_SHUTDOWN ? "the server is stopping"
               : "its lease went to another runner");
    }
    if (t->stop != TASK_RUNS)
      signal_child(t);
  }
  pthread_mutex_unlock(&t->lock);
  return NULL;
}

struct task_ctx *task_ctx_start(struct server *srv, json_t *task)
{
  struct task_ctx *t = calloc(1, sizeof *t);
  pthread_condattr_t ca;
  const char *kind = json_string_value(json_object_get(task, "kind"));

  if (t == NULL) {
    ferry_error("out of memory");
    return NULL;
  }
  t->srv = srv;
  t->id = json_integer_value(json_object_get(task, "id"));
  t->migration = json_integer_value(json_object_get(task, "migration_id"));
  t->host = json_integer_value(json_object_get(task, "host_id"));
  t->attempt = json_integer_value(json_object_get(task, "attempts"));
  snprintf(t->kind, sizeof t->kind, "%s", kind ? kind : "?");
  t->renewed = task_now();       /* task_claim() set the first lease */
  t->child = -1;
  pthread_mutex_init(&t->lock, NULL);
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&t->cond, &ca);
  pthread_condattr_destroy(&ca);
  if ((errno = pthread_create(&t->keeper, NULL, keeper_main, t))) {
    ferry_error("cannot start the lease keeper of task %lld: %m", t->id);
    pthread_cond_destroy(&t->cond);
    pthread_mutex_destroy(&t->lock);
    free(t);
    return NULL;
  }
  return t;
}

enum task_stop task_ctx_end(struct task_ctx *t)
{
  enum task_stop why;

  pthread_mutex_lock(&t->lock);
  t->ended = 1;
  pthread_cond_signal(&t->cond);
  pthread_mutex_unlock(&t->lock);
  pthread_join(t->keeper, NULL);
  why = t->stop;
  if (why == TASK_RUNS && server_stopping(t->srv))
    why = TASK_SHUTDOWN;
  pthread_cond_destroy(&t->cond);
  pthread_mutex_destroy(&t->lock);
  free(t);
  return why;
}

int task_ctx_stopping(struct task_ctx *t)
{
  int s;

  if (t == NULL)
    return 0;
  pthread_mutex_lock(&t->lock);
  s = t->stop != TASK_RUNS;
  pthread_mutex_unlock(&t->lock);
  return s || server_stopping(t->srv);
}

void task_ctx_event(struct task_ctx *t, const char *fmt, ...)
{
  char msg[1024];
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (t == NULL) {
    log_info("%s", msg);
    return;
  }
  db_lock();
  event_add(t->srv->db, t->migration, t->host, "progress", NULL, "%s", msg);
  db_unlock();
}

void task_ctx_set_child(struct task_ctx *t, pid_t pid)
{
  if (t == NULL)
    return;
  pthread_mutex_lock(&t->lock);
  t->child = pid;
  t->term_at = 0;
  t->killed = 0;
  if (pid > 0 && t->stop != TASK_RUNS)
    signal_child(t);            /* started after the stop: stop it too */
  pthread_mutex_unlock(&t->lock);
}

sqlite3 *task_ctx_db(struct task_ctx *t)
{
  return t->srv->db;
}

long long task_ctx_migration(struct task_ctx *t)
{
  return t->migration;
}

long long task_ctx_host(struct task_ctx *t)
{
  return t->host;
}

int task_ctx_sleep(struct task_ctx *t, unsigned ms)
{
  while (!task_ctx_stopping(t)) {
    unsigned step = ms < 200 ? ms : 200;
    struct timespec ts = { .tv_sec = 0, .tv_nsec = (long)step * 1000000L };

    if (ms == 0)
      return 0;
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
      ;
    ms -= step;
  }
  return -1;
}
