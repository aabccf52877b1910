/* events.h - the event history: every transition of a migration, task
 * and failure is a row with a timestamp. */
#ifndef FERRY_EVENTS_H
#define FERRY_EVENTS_H

#include <sqlite3.h>

/* Add an event (migration_id/host_id 0 = none; it belongs to the project of
 * its migration, else its host); logs it too.  Caller holds
 * db_lock.  0, or -1 with the error (also logged): a caller inside a
 * transaction that must record the event rolls back on -1. */
int event_add(sqlite3 *db, long long migration_id, long long host_id,
               const char *kind, const char *phase, const char *fmt, ...)
  __attribute__((format(printf, 6, 7)));

/* An event of no migration and no host, seen in project_id (a blueprint
 * applied, an agent enrolled or revoked, a token made). */
int event_add_project(sqlite3 *db, long long project_id, const char *kind,
                      const char *fmt, ...)
  __attribute__((format(printf, 4, 5)));

#endif
