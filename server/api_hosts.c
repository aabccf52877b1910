/* api_hosts.c - the discovery callback and the hosts it creates. */
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "db.h"
#include "image/names.h"
#include "util/error.h"
#include "util/log.h"

/* Each disk's name becomes part of a store key: it must be a disk name. */
static int check_disk_names(json_t *disks)
{
  json_t *d, *name;
  size_t i;

  json_array_foreach(disks, i, d) {
    name = json_object_get(d, "name");
    if (!json_is_string(name)) {
      ferry_error("field 'disks[%zu].name' must be a string (the disk's "
                  "name, such as sda)", i);
      return -1;
    }
    if (diskname_check(json_string_value(name),
                       json_string_length(name)) == -1) {
      ferry_error_prefix("field 'disks[%zu].name' ", i);
      return -1;
    }
  }
  return 0;
}

const char *hosts_check_inventory(json_t *inv, const char **msg)
{
  json_t *v = json_object_get(inv, "hostname");

  if (!json_is_string(v)) {
    *msg = "field 'hostname' must be a string (the host's name)";
    return "hostname";
  }
  if (hostname_check(json_string_value(v), json_string_length(v)) == -1) {
    ferry_error_prefix("field 'hostname' ");
    *msg = ferry_errmsg();
    return "hostname";
  }
  v = json_object_get(inv, "disks");
  if (json_is_array(v) && check_disk_names(v) == -1) {
    *msg = ferry_errmsg();
    return "disks";
  }
  v = json_object_get(inv, "machine_id");
  if (v && !json_is_null(v) &&
      (!json_is_string(v) || json_string_length(v) > 64)) {
    *msg = "field 'machine_id' must be a string of at most 64 characters "
           "or null";
    return "machine_id";
  }
  if (!json_is_integer(json_object_get(inv, "schema"))) {
    *msg = "field 'schema' must be the inventory schema number (an "
           "integer)";
    return "schema";
  }
  return NULL;
}

long long hosts_record_inventory(sqlite3 *db, json_t *inv, const char *body,
                                 long long project_id)
{
  const char *hostname = json_string_value(json_object_get(inv, "hostname"));
  const char *machine_id = json_string_value(json_object_get(inv,
                                                             "machine_id"));
  long long host_id = 0;
  char now[32];
  int rc;

  db_now(now);
  if (db_exec(db, "BEGIN IMMEDIATE") == -1)
    return -1;
  /* a machine is a host of one project: its agents' enrollment tokens
   * chose it, and one of another project does not make it theirs (no
   * row comes back then) */
  rc = db_get_int(db, &host_id,
    "INSERT INTO hosts (hostname, machine_id, first_seen, last_seen, "
    "project_id) VALUES (?1, ?2, ?3, ?3, ?4) ON CONFLICT (hostname, "
    "machine_id) DO UPDATE SET last_seen = ?3 WHERE project_id = ?4 "
    "RETURNING id", "ttti", hostname, machine_id ? machine_id : "", now,
    project_id);
  if (rc == 0) {
    db_exec(db, "ROLLBACK");
    return 0;
  }
  if (rc == -1 ||
      db_insert(db, "INSERT INTO inventories (host_id, received, body) "
                "VALUES (?1, ?2, ?3)", "itt", host_id, now, body) == -1) {
    db_exec(db, "ROLLBACK");
    return -1;
  }
  if (db_exec(db, "COMMIT") == -1) {
    db_exec(db, "ROLLBACK");
    return -1;
  }
  return host_id;
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
    json_t *os = json_object_get(inv, "os"), *nics = json_array(), *nic;
    json_t *ifs = json_object_get(json_object_get(inv, "network"),
                                  "interfaces");
    size_t i;

    json_object_set(h, "os", os ? json_object_get(os, "pretty_name") : NULL);
    json_object_set(h, "disks", json_object_get(inv, "disks"));
    /* what a fleet view shows at a glance (the dashboard's hosts page) */
    json_object_set(h, "boot_mode", json_object_get(json_object_get(inv,
                    "boot"), "mode"));
    json_object_set(h, "hypervisor", json_object_get(json_object_get(inv,
                    "platform"), "hypervisor"));
    json_object_set(h, "cpus", json_object_get(json_object_get(inv, "cpu"),
                    "threads"));
    json_object_set(h, "memory", json_object_get(inv, "memory"));
    json_array_foreach(ifs, i, nic)
      if (!json_is_true(json_object_get(nic, "virtual")))
        json_array_append_new(nics, json_pack("{s:O?, s:O?, s:O?, s:O?}",
                              "name", json_object_get(nic, "name"),
                              "mac", json_object_get(nic, "mac"),
                              "driver", json_object_get(nic, "driver"),
                              "ipv4", json_object_get(nic, "ipv4")));
    json_object_set_new(h, "nics", nics);
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
                         " FROM hosts h WHERE h.project_id = ?1 ORDER BY "
                         "h.id", -1, &st, NULL) != SQLITE_OK) {
    db_unlock();
    json_decref(hosts);
    return reply_error(r, 500, NULL, "database: %s",
                       sqlite3_errmsg(r->srv->db));
  }
  sqlite3_bind_int64(st, 1, r->project_id);
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
                         " FROM hosts h WHERE h.id = ?1 AND "
                         "h.project_id = ?2", -1, &st, NULL) != SQLITE_OK) {
    db_unlock();
    return reply_error(r, 500, NULL, "database: %s",
                       sqlite3_errmsg(r->srv->db));
  }
  sqlite3_bind_int64(st, 1, id);
  sqlite3_bind_int64(st, 2, r->project_id);
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
