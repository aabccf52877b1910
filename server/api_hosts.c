/* api_hosts.c - the discovery callback and the hosts it creates. */
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "db.h"
#include "log.h"

#define HOSTNAME_MAX 253

/* Upsert the host named by the inventory and store the inventory. */
enum MHD_Result api_discovery_post(struct request *r)
{
  sqlite3 *db = r->srv->db;
  sqlite3_stmt *st = NULL;
  enum MHD_Result ret;
  const char *hostname, *machine_id = "";
  long long host_id = 0;
  json_t *inv, *v;
  char now[32];

  inv = request_json(r, &ret);
  if (inv == NULL)
    return ret;
  v = json_object_get(inv, "hostname");
  if (!json_is_string(v) || json_string_length(v) == 0 ||
      json_string_length(v) > HOSTNAME_MAX) {
    json_decref(inv);
    return reply_error(r, 400, "hostname", "field 'hostname' must be a "
                       "non-empty string of at most %d characters",
                       HOSTNAME_MAX);
  }
  hostname = json_string_value(v);
  v = json_object_get(inv, "machine_id");
  if (v && !json_is_null(v)) {
    if (!json_is_string(v) || json_string_length(v) > 64) {
      json_decref(inv);
      return reply_error(r, 400, "machine_id", "field 'machine_id' must be "
                         "a string of at most 64 characters or null");
    }
    machine_id = json_string_value(v);
  }
  v = json_object_get(inv, "schema");
  if (!json_is_integer(v)) {
    json_decref(inv);
    return reply_error(r, 400, "schema", "field 'schema' must be the "
                       "inventory schema number (an integer)");
  }

  db_now(now);
  db_lock();
  if (db_exec(db, "BEGIN IMMEDIATE") == -1)
    goto dberr;
  if (sqlite3_prepare_v2(db,
        "INSERT INTO hosts (hostname, machine_id, first_seen, last_seen) "
        "VALUES (?1, ?2, ?3, ?3) ON CONFLICT (hostname, machine_id) "
        "DO UPDATE SET last_seen = ?3 RETURNING id", -1, &st, NULL)
      != SQLITE_OK)
    goto rollback;
  sqlite3_bind_text(st, 1, hostname, -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(st, 2, machine_id, -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(st, 3, now, -1, SQLITE_TRANSIENT);
  if (sqlite3_step(st) != SQLITE_ROW)
    goto rollback;
  host_id = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  if (sqlite3_prepare_v2(db,
        "INSERT INTO inventories (host_id, received, body) "
        "VALUES (?1, ?2, ?3)", -1, &st, NULL) != SQLITE_OK)
    goto rollback;
  sqlite3_bind_int64(st, 1, host_id);
  sqlite3_bind_text(st, 2, now, -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(st, 3, r->body, (int)r->body_len, SQLITE_TRANSIENT);
  if (sqlite3_step(st) != SQLITE_DONE)
    goto rollback;
  sqlite3_finalize(st);
  st = NULL;
  if (db_exec(db, "COMMIT") == -1)
    goto rollback;
  db_unlock();
  log_info("discovery from %s (host %lld)", hostname, host_id);
  json_decref(inv);
  return reply_json(r, 201, json_pack("{s:I, s:s}", "host_id",
                                      (json_int_t)host_id, "received", now));
rollback:
  log_warn("discovery: database: %s", sqlite3_errmsg(db));
  sqlite3_finalize(st);
  db_exec(db, "ROLLBACK");
dberr:
  db_unlock();
  json_decref(inv);
  return reply_error(r, 500, NULL, "the server could not store the "
                     "inventory; see the server log");
}

/* Summary of a host from its latest inventory. */
static json_t *host_summary(sqlite3_stmt *st)
{
  json_t *inv = NULL, *h;
  const char *body = (const char *)sqlite3_column_text(st, 5);

  if (body)
    inv = json_loads(body, 0, NULL);
  h = json_pack("{s:I, s:s, s:s, s:s, s:s}",
                "id", (json_int_t)sqlite3_column_int64(st, 0),
                "hostname", (const char *)sqlite3_column_text(st, 1),
                "machine_id", (const char *)sqlite3_column_text(st, 2),
                "first_seen", (const char *)sqlite3_column_text(st, 3),
                "last_seen", (const char *)sqlite3_column_text(st, 4));
  if (h && inv) {
    json_t *os = json_object_get(inv, "os");

    json_object_set(h, "os", os ? json_object_get(os, "pretty_name") : NULL);
    json_object_set(h, "disks", json_object_get(inv, "disks"));
  }
  if (h) {
    if (json_object_get(h, "os") == NULL)
      json_object_set_new(h, "os", json_null());
  }
  json_decref(inv);
  return h;
}

#define HOST_COLUMNS \
  "h.id, h.hostname, h.machine_id, h.first_seen, h.last_seen, " \
  "(SELECT body FROM inventories i WHERE i.host_id = h.id " \
  "ORDER BY i.id DESC LIMIT 1)"

enum MHD_Result api_hosts_list(struct request *r)
{
  sqlite3_stmt *st;
  json_t *hosts = json_array();
  int rc;

  db_lock();
  if (sqlite3_prepare_v2(r->srv->db, "SELECT " HOST_COLUMNS
                         " FROM hosts h ORDER BY h.id", -1, &st, NULL)
      != SQLITE_OK) {
    db_unlock();
    json_decref(hosts);
    return reply_error(r, 500, NULL, "database: %s",
                       sqlite3_errmsg(r->srv->db));
  }
  while ((rc = sqlite3_step(st)) == SQLITE_ROW)
    json_array_append_new(hosts, host_summary(st));
  sqlite3_finalize(st);
  db_unlock();
  if (rc != SQLITE_DONE) {
    json_decref(hosts);
    return reply_error(r, 500, NULL, "database error listing hosts");
  }
  return reply_json(r, 200, json_pack("{s:o}", "hosts", hosts));
}

enum MHD_Result api_host_get(struct request *r)
{
  long long id = request_id(r, 0);
  sqlite3_stmt *st;
  json_t *host = NULL, *inv = NULL;
  const char *body;

  if (id <= 0)
    return reply_error(r, 400, "id", "host id '%s' is not a positive "
                       "integer", r->params[0]);
  db_lock();
  if (sqlite3_prepare_v2(r->srv->db, "SELECT " HOST_COLUMNS
                         " FROM hosts h WHERE h.id = ?1", -1, &st, NULL)
      != SQLITE_OK) {
    db_unlock();
    return reply_error(r, 500, NULL, "database: %s",
                       sqlite3_errmsg(r->srv->db));
  }
  sqlite3_bind_int64(st, 1, id);
  if (sqlite3_step(st) == SQLITE_ROW) {
    host = host_summary(st);
    body = (const char *)sqlite3_column_text(st, 5);
    inv = body ? json_loads(body, 0, NULL) : NULL;
  }
  sqlite3_finalize(st);
  db_unlock();
  if (host == NULL)
    return reply_error(r, 404, "id", "no host with id %lld", id);
  json_object_set_new(host, "inventory", inv ? inv : json_null());
  return reply_json(r, 200, host);
}
