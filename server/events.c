#include "events.h"

#include <stdarg.h>
#include <stdio.h>

#include "db.h"
#include "util/error.h"
#include "util/log.h"

int event_add(sqlite3 *db, long long migration_id, long long host_id,
               const char *kind, const char *phase, const char *fmt, ...)
{
  char msg[1024], now[32];
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (migration_id)
    log_info("migration %lld: %s", migration_id, msg);
  else
    log_info("%s", msg);
  if (db_insert(db, "INSERT INTO events (time, migration_id, host_id, kind, "
                "phase, message) VALUES (?1, nullif(?2, 0), nullif(?3, 0), "
                "?4, ?5, ?6)", "tiitt" "t", db_now(now), migration_id,
                host_id, kind, phase, msg) == -1) {
    ferry_error_prefix("cannot record event: ");
    log_warn("%s", ferry_errmsg());
    return -1;
  }
  return 0;
}
