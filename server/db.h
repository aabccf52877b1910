/* db.h - the SQLite state store: WAL, foreign keys, versioned schema. */
#ifndef FERRY_DB_H
#define FERRY_DB_H

#include <sqlite3.h>

/* Open (creating) the database at path and bring its schema up to date.
 * NULL with an error naming the file. */
sqlite3 *db_open(const char *path);
void db_close(sqlite3 *db);

/* The schema version this server writes. */
int db_schema_version(void);

/* Serialize multi-statement work between request threads. */
void db_lock(void);
void db_unlock(void);

/* Run sql (no results); -1 with an error. */
int db_exec(sqlite3 *db, const char *sql);

/* Current UTC time as ISO 8601 with milliseconds, into buf[32]. */
const char *db_now(char *buf);

#endif
