#include "events.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "db.h"
#include "util/error.h"
#include "util/log.h"

static int vevent(sqlite3 *db, long long project_id, long long migration_id,
                  long long host_id, const char *kind, const char *phase,
                  const char *fmt, va_list ap)
{
  char msg[1024], now[32];

  vsnprintf(msg, sizeof msg, fmt, ap);
  {
    /* the line names the job, its host and its phase */
    json_t *ctx = migration_id || host_id ? db_query_one(db,
      "SELECT (SELECT hostname FROM hosts WHERE id = coalesce(nullif(?2, "
      "0), (SELECT host_id FROM migrations WHERE id = ?1))) AS host, "
      "(SELECT phase FROM migrations WHERE id = ?1) AS phase", "ii",
      migration_id, host_id) : NULL;
    struct log_fields lf = {
      .job = migration_id, .kind = kind,
      .host = json_string_value(json_object_get(ctx, "host")),
      .phase = phase ? phase
                     : json_string_value(json_object_get(ctx, "phase")),
    };

    log_event(kind && strcmp(kind, "error") == 0 ? LOG_WARN : LOG_INFO, &lf, "%s",
              msg);
    json_decref(ctx);
  }
  /* an event is seen in the project of its migration, else of its host */
  if (db_insert(db, "INSERT INTO events (time, migration_id, host_id, kind, "
                "phase, message, project_id) VALUES (?1, nullif(?2, 0), "
                "nullif(?3, 0), ?4, ?5, ?6, coalesce((SELECT project_id "
                "FROM migrations WHERE id = ?2), (SELECT project_id FROM "
                "hosts WHERE id = ?3), ?7))", "tiitt" "ti", db_now(now),
                migration_id, host_id, kind, phase, msg, project_id) == -1) {
    ferry_error_prefix("cannot record event: ");
    log_warn("%s", ferry_errmsg());
    return -1;
  }
  return 0;
}

int event_add(sqlite3 *db, long long migration_id, long long host_id,
              const char *kind, const char *phase, const char *fmt, ...)
{
  va_list ap;
  int rc;

  va_start(ap, fmt);
  rc = vevent(db, 1, migration_id, host_id, kind, phase, fmt, ap);
  va_end(ap);
  return rc;
}

int event_add_project(sqlite3 *db, long long project_id, const char *kind,
                      const char *fmt, ...)
{
  va_list ap;
  int rc;

  va_start(ap, fmt);
  rc = vevent(db, project_id, 0, 0, kind, NULL, fmt, ap);
  va_end(ap);
  return rc;
}
