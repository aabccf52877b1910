/* tasks.h - units of work of a migration: clone tasks run on agents,
 * convert and create tasks in the server's worker pool.  A running task
 * holds a lease; if its runner stops heartbeating the lease expires and
 * the task is offered again (clones and conversions are resumable). */
#ifndef FERRY_TASKS_H
#define FERRY_TASKS_H

#include <sys/types.h>

#include <jansson.h>
#include <sqlite3.h>

struct server;

/* Claim the oldest runnable task for runner ("agent" with host_id, or
 * "server" with host_id 0): queued, or running with an expired lease.
 * Returns {id, kind, spec, migration_id, host_id, attempts}, json_null()
 * when none, NULL on error.  Caller holds db_lock. */
json_t *task_claim(sqlite3 *db, const char *runner, long long host_id,
                   long long agent_id, unsigned lease_seconds);

/* Extend the leases of every task agent_id is running. */
int task_heartbeat(sqlite3 *db, long long agent_id, unsigned lease_seconds);

/* Record a finished task.  ok = 0 with error; result may be NULL.  A
 * failed task is queued again while attempts < max_attempts.  Returns the
 * task's new state or NULL. */
const char *task_finish(sqlite3 *db, long long task_id, int ok,
                        const char *error, json_t *result,
                        unsigned max_attempts);

/* Current time as Unix seconds with a fraction (leases). */
double task_now(void);

/* ---- a server task while it runs (task_ctx.c) ----
 *
 * A worker runs each convert or create task under a task_ctx whose lease
 * keeper, a thread of its own, renews the task's lease on a timer for as
 * long as the task runs (whatever its child prints or however long a
 * cloud import takes), and notices on the same timer that the task was
 * canceled, that its lease went to another runner, or that the server is
 * stopping.  Then task_ctx_stopping() says 1 and the task's child gets
 * SIGTERM, and SIGKILL after a grace period. */
struct task_ctx;   /* one running server task: id, migration, host, stop flag, child pid */

/* 1 once the task was canceled, lost its lease, or the server is stopping:
 * the op stops its work and returns NULL with an error. */
int task_ctx_stopping(struct task_ctx *t);

/* A job event on the task's migration ("progress" kind), e.g. "importing
 * disk 2 of 3".  Takes db_lock: never call it holding the lock. */
void task_ctx_event(struct task_ctx *t, const char *fmt, ...)
  __attribute__((format(printf, 2, 3)));

/* The child process the task runs now (-1: none): on cancel or shutdown the
 * lease keeper sends it SIGTERM (its whole process group when it leads
 * one), then SIGKILL after a grace period.  Set -1 before reaping the
 * child, so that its pid is never signaled once reused. */
void task_ctx_set_child(struct task_ctx *t, pid_t pid);

/* The server's database (take db_lock() around its use), and the task's
 * migration and host. */
sqlite3 *task_ctx_db(struct task_ctx *t);
long long task_ctx_migration(struct task_ctx *t);
long long task_ctx_host(struct task_ctx *t);

/* Sleep ms milliseconds, or less once the task is stopping: 0, or -1
 * when it is stopping (no error set). */
int task_ctx_sleep(struct task_ctx *t, unsigned ms);

/* Why a task stopped before its op returned on its own. */
enum task_stop {
  TASK_RUNS,                    /* it did not: the op's result stands */
  TASK_CANCELED,                /* the operator canceled the migration */
  TASK_LEASE_LOST,              /* another runner holds it now */
  TASK_SHUTDOWN,                /* the server is stopping */
};

/* Start running task, a row task_claim() returned, with its lease keeper;
 * NULL with an error. */
struct task_ctx *task_ctx_start(struct server *srv, json_t *task);

/* The op returned: stop the keeper and free t.  Says whether the task was
 * stopped, and why. */
enum task_stop task_ctx_end(struct task_ctx *t);

#endif
