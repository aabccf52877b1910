#include "tasks.h"

#include <string.h>
#include <time.h>

#include "util/cleanup.h"
#include "db.h"
#include "util/error.h"
#include "events.h"

double task_now(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

json_t *task_claim(sqlite3 *db, const char *runner, long long host_id,
                   long long agent_id, unsigned lease_seconds)
{
  double now = task_now();
  char ts[32];
  json_t *row;
  long long id;
  const char *prev;

  row = db_query_one(db,
    "SELECT id, state FROM tasks WHERE runner = ?1 AND "
    "(?2 = 0 OR host_id = ?2) AND (state = 'queued' OR "
    "(state = 'running' AND lease_until < ?3)) ORDER BY id LIMIT 1",
    "tid", runner, host_id, now);
  if (row == NULL || json_is_null(row))
    return row;
  id = json_integer_value(json_object_get(row, "id"));
  prev = json_string_value(json_object_get(row, "state"));
  if (prev && strcmp(prev, "running") == 0) {
    json_t *t = db_query_one(db, "SELECT migration_id, host_id, kind "
                             "FROM tasks WHERE id = ?1", "i", id);

    if (t && !json_is_null(t))
      event_add(db, json_integer_value(json_object_get(t, "migration_id")),
                json_integer_value(json_object_get(t, "host_id")), "task",
                NULL, "%s task %lld offered again: its runner stopped "
                "heartbeating or restarted",
                json_string_value(json_object_get(t, "kind")), id);
    json_decref(t);
  }
  json_decref(row);
  if (db_run(db, "UPDATE tasks SET state = 'running', agent_id = "
             "nullif(?2, 0), lease_until = ?3, attempts = attempts + 1, "
             "updated = ?4 WHERE id = ?1", "iidt", id, agent_id,
             now + lease_seconds, db_now(ts)) == -1)
    return NULL;
  return db_query_one(db, "SELECT id, kind, spec AS spec_json, "
                      "migration_id, host_id, attempts FROM tasks "
                      "WHERE id = ?1", "i", id);
}

int task_heartbeat(sqlite3 *db, long long agent_id, unsigned lease_seconds)
{
  return db_run(db, "UPDATE tasks SET lease_until = ?2 WHERE agent_id = ?1 "
                "AND state = 'running'", "id", agent_id,
                task_now() + lease_seconds);
}

const char *task_finish(sqlite3 *db, long long task_id, int ok,
                        const char *error, json_t *result,
                        unsigned max_attempts)
{
  CLEANUP_FREE char *rtext = result ? json_dumps(result, JSON_COMPACT)
                                    : NULL;
  const char *state;
  long long attempts, mig, host;
  char ts[32];
  json_t *t;

  t = db_query_one(db, "SELECT attempts, migration_id, host_id, kind, "
                   "state FROM tasks WHERE id = ?1", "i", task_id);
  if (t == NULL || json_is_null(t)) {
    json_decref(t);
    ferry_error("no task %lld", task_id);
    return NULL;
  }
  attempts = json_integer_value(json_object_get(t, "attempts"));
  mig = json_integer_value(json_object_get(t, "migration_id"));
  host = json_integer_value(json_object_get(t, "host_id"));
  if (ok)
    state = "succeeded";
  else if ((unsigned long long)attempts < max_attempts)
    state = "queued";
  else
    state = "failed";
  if (db_run(db, "UPDATE tasks SET state = ?2, error = ?3, result = "
             "coalesce(?4, result), lease_until = NULL, updated = ?5 "
             "WHERE id = ?1", "itttt", task_id, state, ok ? NULL : error,
             rtext, db_now(ts)) == -1) {
    json_decref(t);
    return NULL;
  }
  if (ok)
    event_add(db, mig, host, "task", NULL, "%s task %lld succeeded",
              json_string_value(json_object_get(t, "kind")), task_id);
  else
    event_add(db, mig, host, "error", NULL, "%s task %lld failed (attempt "
              "%lld of %u)%s: %s",
              json_string_value(json_object_get(t, "kind")), task_id,
              attempts, max_attempts,
              strcmp(state, "queued") == 0 ? ", will retry" : "",
              error ? error : "unknown error");
  json_decref(t);
  return state;
}
