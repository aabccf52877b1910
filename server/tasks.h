/* tasks.h - units of work of a migration: clone tasks run on agents,
 * convert and create tasks in the server's worker pool.  A running task
 * holds a lease; if its runner stops heartbeating the lease expires and
 * the task is offered again (clones and conversions are resumable). */
#ifndef FERRY_TASKS_H
#define FERRY_TASKS_H

#include <jansson.h>
#include <sqlite3.h>

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

#endif
