/* db.c - SQLite state store and its schema migrations. */
#include "db.h"

#include <pthread.h>
#include <stdio.h>
#include <time.h>

#include "error.h"

/* Each entry moves the schema from version i to i + 1; never edit one
 * that has shipped, append a new one. */
static const char *const migrations[] = {
  /* 1: hosts and their inventories */
  "CREATE TABLE hosts ("
  "  id INTEGER PRIMARY KEY,"
  "  hostname TEXT NOT NULL,"
  "  machine_id TEXT NOT NULL DEFAULT '',"
  "  first_seen TEXT NOT NULL,"
  "  last_seen TEXT NOT NULL,"
  "  UNIQUE (hostname, machine_id));"
  "CREATE TABLE inventories ("
  "  id INTEGER PRIMARY KEY,"
  "  host_id INTEGER NOT NULL REFERENCES hosts(id) ON DELETE CASCADE,"
  "  received TEXT NOT NULL,"
  "  body TEXT NOT NULL);"
  "CREATE INDEX inventories_host ON inventories(host_id, id);",
};

#define N_MIGRATIONS ((int)(sizeof migrations / sizeof migrations[0]))

static pthread_mutex_t db_mutex = PTHREAD_MUTEX_INITIALIZER;

void db_lock(void)
{
  pthread_mutex_lock(&db_mutex);
}

void db_unlock(void)
{
  pthread_mutex_unlock(&db_mutex);
}

int db_schema_version(void)
{
  return N_MIGRATIONS;
}

const char *db_now(char *buf)
{
  struct timespec ts;
  struct tm tm;
  size_t n;

  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  n = strftime(buf, 32, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(buf + n, 32 - n, ".%03ldZ", ts.tv_nsec / 1000000);
  return buf;
}

int db_exec(sqlite3 *db, const char *sql)
{
  char *msg = NULL;

  if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
    ferry_error("database: %s", msg ? msg : sqlite3_errmsg(db));
    sqlite3_free(msg);
    return -1;
  }
  return 0;
}

static int user_version(sqlite3 *db)
{
  sqlite3_stmt *st;
  int v = -1;

  if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) ==
      SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
    v = sqlite3_column_int(st, 0);
  sqlite3_finalize(st);
  return v;
}

static int migrate(sqlite3 *db, const char *path)
{
  int v = user_version(db);

  if (v < 0) {
    ferry_error("database %s: cannot read its schema version: %s", path,
                sqlite3_errmsg(db));
    return -1;
  }
  if (v > N_MIGRATIONS) {
    ferry_error("database %s has schema version %d, newer than this "
                "ferry-server (%d): upgrade ferry-server", path, v,
                N_MIGRATIONS);
    return -1;
  }
  for (; v < N_MIGRATIONS; v++) {
    char bump[64];

    snprintf(bump, sizeof bump, "PRAGMA user_version = %d;", v + 1);
    /* each step and its version bump commit together, or not at all */
    if (db_exec(db, "BEGIN IMMEDIATE") == -1)
      return -1;
    if (db_exec(db, migrations[v]) == -1 || db_exec(db, bump) == -1) {
      ferry_error_prefix("database %s: schema migration %d failed: ", path,
                         v + 1);
      db_exec(db, "ROLLBACK");
      return -1;
    }
    if (db_exec(db, "COMMIT") == -1)
      return -1;
  }
  return 0;
}

sqlite3 *db_open(const char *path)
{
  sqlite3 *db = NULL;

  if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                      SQLITE_OPEN_FULLMUTEX, NULL) != SQLITE_OK) {
    ferry_error("cannot open database %s: %s: check the path and that this "
                "user may write its directory", path,
                db ? sqlite3_errmsg(db) : "out of memory");
    sqlite3_close(db);
    return NULL;
  }
  sqlite3_busy_timeout(db, 10000);
  if (db_exec(db, "PRAGMA journal_mode = WAL") == -1 ||
      db_exec(db, "PRAGMA synchronous = FULL") == -1 ||
      db_exec(db, "PRAGMA foreign_keys = ON") == -1 ||
      migrate(db, path) == -1) {
    ferry_error_prefix("database %s: ", path);
    sqlite3_close(db);
    return NULL;
  }
  return db;
}

void db_close(sqlite3 *db)
{
  sqlite3_close(db);
}
