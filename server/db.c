/* db.c - SQLite state store and its schema migrations. */
#include "db.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "util/error.h"
#include "util/log.h"

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

  /* 2: the control plane: agents, blueprints, migrations, tasks, events */
  "CREATE TABLE agents ("
  "  id INTEGER PRIMARY KEY,"
  "  host_id INTEGER REFERENCES hosts(id) ON DELETE SET NULL,"
  "  hostname TEXT NOT NULL,"
  "  token_hash TEXT NOT NULL UNIQUE,"   /* SHA-256 of the bearer token */
  "  enrolled TEXT NOT NULL,"
  "  last_seen TEXT);"
  "CREATE TABLE blueprints ("
  "  id INTEGER PRIMARY KEY,"
  "  name TEXT NOT NULL UNIQUE,"
  "  provider TEXT NOT NULL,"
  "  body TEXT NOT NULL,"                /* normalized JSON */
  "  source TEXT NOT NULL,"              /* as submitted (YAML or JSON) */
  "  created TEXT NOT NULL,"
  "  updated TEXT NOT NULL);"
  "CREATE TABLE migrations ("
  "  id INTEGER PRIMARY KEY,"
  "  host_id INTEGER NOT NULL REFERENCES hosts(id),"
  "  blueprint_id INTEGER NOT NULL REFERENCES blueprints(id),"
  "  phase TEXT NOT NULL,"
  "  state TEXT NOT NULL,"               /* active, failed, canceled, done */
  "  error TEXT,"
  "  failed_phase TEXT,"
  "  plan TEXT NOT NULL,"                /* JSON: disks, store, format... */
  "  done_bytes INTEGER NOT NULL DEFAULT 0,"
  "  total_bytes INTEGER NOT NULL DEFAULT 0,"
  "  attempt INTEGER NOT NULL DEFAULT 1,"
  "  created TEXT NOT NULL,"
  "  updated TEXT NOT NULL);"
  "CREATE UNIQUE INDEX migrations_one_active ON migrations(host_id)"
  "  WHERE state = 'active';"
  "CREATE TABLE tasks ("
  "  id INTEGER PRIMARY KEY,"
  "  migration_id INTEGER NOT NULL REFERENCES migrations(id)"
  "    ON DELETE CASCADE,"
  "  host_id INTEGER REFERENCES hosts(id),"
  "  kind TEXT NOT NULL,"                /* clone, convert, create */
  "  runner TEXT NOT NULL,"              /* agent or server */
  /* queued, running, succeeded, failed, canceled */
  "  state TEXT NOT NULL,"
  "  spec TEXT NOT NULL,"                /* JSON */
  "  result TEXT,"
  "  error TEXT,"
  "  agent_id INTEGER REFERENCES agents(id),"
  "  lease_until REAL,"                  /* unix time; re-offer after */
  "  attempts INTEGER NOT NULL DEFAULT 0,"
  "  done_bytes INTEGER NOT NULL DEFAULT 0,"
  "  total_bytes INTEGER NOT NULL DEFAULT 0,"
  "  rate REAL NOT NULL DEFAULT 0,"
  "  created TEXT NOT NULL,"
  "  updated TEXT NOT NULL);"
  "CREATE INDEX tasks_queue ON tasks(state, runner, host_id);"
  "CREATE TABLE events ("
  "  id INTEGER PRIMARY KEY,"
  "  time TEXT NOT NULL,"
  "  migration_id INTEGER REFERENCES migrations(id) ON DELETE CASCADE,"
  "  host_id INTEGER REFERENCES hosts(id),"
  "  kind TEXT NOT NULL,"                /* phase, task, progress, error... */
  "  phase TEXT,"
  "  message TEXT NOT NULL);"
  "CREATE INDEX events_migration ON events(migration_id, id);",

  /* 3: warm migrations: repeated syncs, ready state, cutover */
  "ALTER TABLE migrations ADD COLUMN warm INTEGER NOT NULL DEFAULT 0;"
  "ALTER TABLE migrations ADD COLUMN sync_interval INTEGER NOT NULL "
  "  DEFAULT 0;"
  "ALTER TABLE migrations ADD COLUMN cutover INTEGER NOT NULL DEFAULT 0;"
  "ALTER TABLE migrations ADD COLUMN syncs INTEGER NOT NULL DEFAULT 0;"
  "ALTER TABLE migrations ADD COLUMN last_sync TEXT;"
  "ALTER TABLE migrations ADD COLUMN last_delta_bytes INTEGER;"
  "ALTER TABLE migrations ADD COLUMN last_sync_seconds REAL;"
  "ALTER TABLE migrations ADD COLUMN next_sync REAL;"
  "ALTER TABLE tasks ADD COLUMN round INTEGER NOT NULL DEFAULT 0;",

  /* 4: projects and roles (docs/SECURITY.md section 3).  Every host,
   * agent, blueprint, migration and event belongs to a project; what was
   * there before moves into 'default' (id 1).  Blueprint names become
   * unique per project: SQLite cannot drop the column's UNIQUE in place,
   * so the table is rebuilt as its documentation says (CREATE, copy, DROP,
   * RENAME, with foreign keys off for the step: see migrate()).  Operator
   * and enrollment tokens made through the API live in tokens (only their
   * SHA-256); agent tokens stay in agents. */
  "CREATE TABLE projects ("
  "  id INTEGER PRIMARY KEY,"
  "  name TEXT NOT NULL UNIQUE,"
  "  created TEXT NOT NULL);"
  "INSERT INTO projects (id, name, created) VALUES (1, 'default',"
  "  strftime('%Y-%m-%dT%H:%M:%fZ', 'now'));"
  "ALTER TABLE hosts ADD COLUMN project_id INTEGER NOT NULL DEFAULT 1"
  "  REFERENCES projects(id);"
  "CREATE INDEX hosts_project ON hosts(project_id);"
  "ALTER TABLE agents ADD COLUMN project_id INTEGER NOT NULL DEFAULT 1"
  "  REFERENCES projects(id);"
  "ALTER TABLE agents ADD COLUMN revoked TEXT;"
  "ALTER TABLE agents ADD COLUMN rotate INTEGER NOT NULL DEFAULT 0;"
  "CREATE INDEX agents_project ON agents(project_id);"
  "ALTER TABLE migrations ADD COLUMN project_id INTEGER NOT NULL DEFAULT 1"
  "  REFERENCES projects(id);"
  "CREATE INDEX migrations_project ON migrations(project_id);"
  "ALTER TABLE events ADD COLUMN project_id INTEGER NOT NULL DEFAULT 1"
  "  REFERENCES projects(id);"
  "CREATE INDEX events_project ON events(project_id, id);"
  "CREATE TABLE blueprints_new ("
  "  id INTEGER PRIMARY KEY,"
  "  project_id INTEGER NOT NULL DEFAULT 1 REFERENCES projects(id),"
  "  name TEXT NOT NULL,"
  "  provider TEXT NOT NULL,"
  "  body TEXT NOT NULL,"
  "  source TEXT NOT NULL,"
  "  created TEXT NOT NULL,"
  "  updated TEXT NOT NULL,"
  "  UNIQUE (project_id, name));"
  "INSERT INTO blueprints_new (id, project_id, name, provider, body, source,"
  "  created, updated) SELECT id, 1, name, provider, body, source, created,"
  "  updated FROM blueprints;"
  "DROP TABLE blueprints;"
  "ALTER TABLE blueprints_new RENAME TO blueprints;"
  "CREATE TABLE tokens ("
  "  id INTEGER PRIMARY KEY,"
  "  kind TEXT NOT NULL CHECK (kind IN ('operator', 'enroll')),"
  "  name TEXT NOT NULL DEFAULT '',"
  "  project_id INTEGER NOT NULL REFERENCES projects(id),"
  "  role TEXT CHECK ((kind = 'operator' AND role IN ('viewer', 'operator',"
  "    'admin')) OR (kind = 'enroll' AND role IS NULL)),"
  "  token_hash TEXT NOT NULL UNIQUE,"   /* SHA-256 of the bearer token */
  "  created TEXT NOT NULL,"
  "  expires REAL,"                      /* unix time; NULL: never */
  "  uses_left INTEGER,"                 /* enroll: NULL = unlimited */
  "  revoked TEXT,"
  "  last_used TEXT);"
  "CREATE INDEX tokens_project ON tokens(project_id);",

  /* 5: what the target drivers made in a cloud (server/targets/cloud.h) */
  "CREATE TABLE target_resources ("
  "  id INTEGER PRIMARY KEY,"
  "  migration_id INTEGER NOT NULL REFERENCES migrations(id),"
  "  provider TEXT NOT NULL,"
  "  kind TEXT NOT NULL,"
  "  name TEXT NOT NULL,"
  "  cloud_id TEXT NOT NULL,"
  "  scope TEXT NOT NULL CHECK (scope IN ('migration', 'blueprint')),"
  "  state TEXT NOT NULL CHECK (state IN ('live', 'gone')),"
  "  created TEXT NOT NULL,"
  "  updated TEXT NOT NULL,"
  "  UNIQUE (migration_id, kind, name));",
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

/* 0 if no row breaks a foreign key, else -1 naming the first one. */
static int foreign_keys_hold(sqlite3 *db)
{
  sqlite3_stmt *st;
  int rc;

  if (sqlite3_prepare_v2(db, "PRAGMA foreign_key_check", -1, &st, NULL)
      != SQLITE_OK) {
    ferry_error("database: %s", sqlite3_errmsg(db));
    return -1;
  }
  rc = sqlite3_step(st);
  if (rc == SQLITE_ROW)
    ferry_error("row %lld of table %s refers to a missing row of %s",
                (long long)sqlite3_column_int64(st, 1),
                (const char *)sqlite3_column_text(st, 0),
                (const char *)sqlite3_column_text(st, 2));
  else if (rc != SQLITE_DONE)
    ferry_error("database: %s", sqlite3_errmsg(db));
  sqlite3_finalize(st);
  return rc == SQLITE_DONE ? 0 : -1;
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
  /* SQLite's way to change a table (sqlite.org/lang_altertable.html,
   * "Making Other Kinds Of Table Schema Changes"): foreign keys off while
   * a step rebuilds tables, and checked by hand before it commits.  The
   * pragma is a no-op inside a transaction, so it is set around them. */
  if (v < N_MIGRATIONS && db_exec(db, "PRAGMA foreign_keys = OFF") == -1)
    return -1;
  for (; v < N_MIGRATIONS; v++) {
    char bump[64];

    snprintf(bump, sizeof bump, "PRAGMA user_version = %d;", v + 1);
    /* each step and its version bump commit together, or not at all */
    if (db_exec(db, "BEGIN IMMEDIATE") == -1)
      return -1;
    if (db_exec(db, migrations[v]) == -1 || db_exec(db, bump) == -1 ||
        foreign_keys_hold(db) == -1) {
      ferry_error_prefix("database %s: schema migration %d failed: ", path,
                         v + 1);
      db_exec(db, "ROLLBACK");
      return -1;
    }
    if (db_exec(db, "COMMIT") == -1)
      return -1;
  }
  return db_exec(db, "PRAGMA foreign_keys = ON");
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

static sqlite3_stmt *vprepare(sqlite3 *db, const char *sql, const char *fmt,
                              va_list ap)
{
  sqlite3_stmt *st;
  int i;

  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
    ferry_error("database: %s (in: %.80s)", sqlite3_errmsg(db), sql);
    return NULL;
  }
  for (i = 0; fmt && fmt[i]; i++) {
    int rc = SQLITE_OK;

    switch (fmt[i]) {
    case 'i':
      rc = sqlite3_bind_int64(st, i + 1, va_arg(ap, long long));
      break;
    case 'd':
      rc = sqlite3_bind_double(st, i + 1, va_arg(ap, double));
      break;
    case 't': {
      const char *t = va_arg(ap, const char *);

      rc = t ? sqlite3_bind_text(st, i + 1, t, -1, SQLITE_TRANSIENT)
             : sqlite3_bind_null(st, i + 1);
      break;
    }
    case 'n':
      rc = sqlite3_bind_null(st, i + 1);
      break;
    default:
      rc = SQLITE_MISUSE;
    }
    if (rc != SQLITE_OK) {
      ferry_error("database: cannot bind argument %d: %s", i + 1,
                  sqlite3_errmsg(db));
      sqlite3_finalize(st);
      return NULL;
    }
  }
  return st;
}

sqlite3_stmt *db_prepare(sqlite3 *db, const char *sql, const char *fmt, ...)
{
  sqlite3_stmt *st;
  va_list ap;

  va_start(ap, fmt);
  st = vprepare(db, sql, fmt, ap);
  va_end(ap);
  return st;
}

int db_run(sqlite3 *db, const char *sql, const char *fmt, ...)
{
  sqlite3_stmt *st;
  va_list ap;
  int rc;

  va_start(ap, fmt);
  st = vprepare(db, sql, fmt, ap);
  va_end(ap);
  if (st == NULL)
    return -1;
  rc = sqlite3_step(st);
  sqlite3_finalize(st);
  if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
    ferry_error("database: %s", sqlite3_errmsg(db));
    return -1;
  }
  return sqlite3_changes(db);
}

long long db_insert(sqlite3 *db, const char *sql, const char *fmt, ...)
{
  sqlite3_stmt *st;
  va_list ap;
  int rc;

  va_start(ap, fmt);
  st = vprepare(db, sql, fmt, ap);
  va_end(ap);
  if (st == NULL)
    return -1;
  rc = sqlite3_step(st);
  sqlite3_finalize(st);
  if (rc != SQLITE_DONE) {
    ferry_error("database: %s", sqlite3_errmsg(db));
    return -1;
  }
  return sqlite3_last_insert_rowid(db);
}

static json_t *column_json(sqlite3_stmt *st, int i, const char *name)
{
  size_t n = strlen(name);

  switch (sqlite3_column_type(st, i)) {
  case SQLITE_INTEGER:
    return json_integer(sqlite3_column_int64(st, i));
  case SQLITE_FLOAT:
    return json_real(sqlite3_column_double(st, i));
  case SQLITE_NULL:
    return json_null();
  default:
    if (n > 5 && strcmp(name + n - 5, "_json") == 0) {
      json_t *j = json_loads((const char *)sqlite3_column_text(st, i),
                             JSON_DECODE_ANY, NULL);

      return j ? j : json_null();
    }
    return json_string((const char *)sqlite3_column_text(st, i));
  }
}

static json_t *row_json(sqlite3_stmt *st)
{
  json_t *row = json_object();
  int i, n = sqlite3_column_count(st);

  for (i = 0; row && i < n; i++) {
    const char *name = sqlite3_column_name(st, i);
    size_t len = strlen(name);
    char key[128];

    if (len > 5 && strcmp(name + len - 5, "_json") == 0)
      snprintf(key, sizeof key, "%.*s", (int)(len - 5), name);
    else
      snprintf(key, sizeof key, "%s", name);
    json_object_set_new(row, key, column_json(st, i, name));
  }
  return row;
}

static json_t *vquery(sqlite3 *db, int one, const char *sql,
                      const char *fmt, va_list ap)
{
  sqlite3_stmt *st = vprepare(db, sql, fmt, ap);
  json_t *rows;
  int rc;

  if (st == NULL)
    return NULL;
  rows = json_array();
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    json_array_append_new(rows, row_json(st));
    if (one)
      break;
  }
  sqlite3_finalize(st);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
    ferry_error("database: %s", sqlite3_errmsg(db));
    json_decref(rows);
    return NULL;
  }
  return rows;
}

json_t *db_query(sqlite3 *db, const char *sql, const char *fmt, ...)
{
  json_t *rows;
  va_list ap;

  va_start(ap, fmt);
  rows = vquery(db, 0, sql, fmt, ap);
  va_end(ap);
  return rows;
}

json_t *db_query_one(sqlite3 *db, const char *sql, const char *fmt, ...)
{
  json_t *rows, *row;
  va_list ap;

  va_start(ap, fmt);
  rows = vquery(db, 1, sql, fmt, ap);
  va_end(ap);
  if (rows == NULL)
    return NULL;
  row = json_array_size(rows) ? json_incref(json_array_get(rows, 0))
                              : json_null();
  json_decref(rows);
  return row;
}

static int vget_int(sqlite3 *db, long long *out, const char *sql,
                    const char *fmt, va_list ap)
{
  sqlite3_stmt *st = vprepare(db, sql, fmt, ap);
  int rc, r = 0;

  if (st == NULL)
    return -1;
  rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    if (sqlite3_column_type(st, 0) != SQLITE_NULL) {
      *out = sqlite3_column_int64(st, 0);
      r = 1;
    }
  } else if (rc != SQLITE_DONE) {
    ferry_error("database: %s (in: %.80s)", sqlite3_errmsg(db), sql);
    r = -1;
  }
  sqlite3_finalize(st);
  return r;
}

int db_get_int(sqlite3 *db, long long *out, const char *sql,
               const char *fmt, ...)
{
  va_list ap;
  int r;

  va_start(ap, fmt);
  r = vget_int(db, out, sql, fmt, ap);
  va_end(ap);
  return r;
}

long long db_int(sqlite3 *db, long long dflt, const char *sql,
                 const char *fmt, ...)
{
  long long v = dflt;
  va_list ap;
  int r;

  va_start(ap, fmt);
  r = vget_int(db, &v, sql, fmt, ap);
  va_end(ap);
  if (r == -1)
    log_warn("%s", ferry_errmsg());
  return v;
}
