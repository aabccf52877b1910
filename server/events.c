#include "events.h"

#include <stdarg.h>
#include <stdio.h>

#include "db.h"
#include "util/error.h"
#include "util/log.h"

static int vevent(sqlite3 *db, long long project_id, long long migration_id,
                  long long host_id, const char *kind, const char *phase,
                  const char *fmt, va_list ap)
{
  char msg[1024], now[32];

  vsnprintf(msg, sizeof msg, fmt, ap);
  if (migration_id)
    log_info("migration %lld: %s", migration_id, msg);
  else
    log_info("%s", msg);
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
