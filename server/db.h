/* db.h - the SQLite state store: WAL, foreign keys, versioned schema. */
#ifndef FERRY_DB_H
#define FERRY_DB_H

#include <jansson.h>
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

/* Bind arguments by a format string: 'i' long long, 't' text (NULL binds
 * NULL), 'd' double, 'n' NULL (no argument). */
sqlite3_stmt *db_prepare(sqlite3 *db, const char *sql, const char *fmt, ...);

/* Run a statement without results; number of rows changed, or -1 with an
 * error. */
int db_run(sqlite3 *db, const char *sql, const char *fmt, ...);

/* INSERT and return the new rowid, or -1. */
long long db_insert(sqlite3 *db, const char *sql, const char *fmt, ...);

/* Rows as a JSON array of objects keyed by column name; columns named
 * *_json hold JSON text and are decoded (and renamed without _json).
 * NULL with an error. */
json_t *db_query(sqlite3 *db, const char *sql, const char *fmt, ...);

/* The first row as an object, json_null() if none, NULL on error. */
json_t *db_query_one(sqlite3 *db, const char *sql, const char *fmt, ...);

/* One integer from the first row's first column into *out: 1 when there
 * is one, 0 when there is no row or the value is NULL (*out untouched),
 * -1 with the error when the query fails.  Use it wherever the answer
 * decides what is written. */
int db_get_int(sqlite3 *db, long long *out, const char *sql,
               const char *fmt, ...);

/* One integer from the first row's first column; dflt if there is no row
 * or the value is NULL.  A failed query also gives dflt, and is logged
 * with its error: only for reads where dflt is a safe answer (a lookup
 * whose miss the caller reports); anything that changes state on the
 * answer uses db_get_int. */
long long db_int(sqlite3 *db, long long dflt, const char *sql,
                 const char *fmt, ...);

#endif
