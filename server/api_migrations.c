/* api_migrations.c - operators create, follow, cancel and retry
 * migrations; one active migration per host. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "blueprint.h"
#include "util/cleanup.h"
#include "db.h"
#include "util/error.h"
#include "events.h"
#include "image/names.h"
#include "preflight.h"
#include "targets/target.h"

static const char *format_ext(const char *format)
{
  static const struct { const char *f, *ext; } exts[] = {
    { "raw", ".raw" }, { "vhd", ".vhd" }, { "vhd-dynamic", ".vhd" },
    { "vmdk", ".vmdk" }, { "qcow2", ".qcow2" }, { "gce", ".tar.gz" },
  };
  size_t i;

  for (i = 0; i < sizeof exts / sizeof exts[0]; i++)
    if (strcmp(exts[i].f, format) == 0)
      return exts[i].ext;
  return ".img";
}

/* Resolve a JSON id-or-name against table in project (?2 of both
 * queries); 0 if not found, -1 bad type. */
static long long resolve(sqlite3 *db, json_t *v, long long project,
                         const char *by_id, const char *by_name)
{
  if (json_is_integer(v))
    return db_int(db, 0, by_id, "ii", (long long)json_integer_value(v),
                  project);
  if (json_is_string(v))
    return db_int(db, 0, by_name, "ti", json_string_value(v), project);
  return -1;
}

/* Who else writes the images plan_text names: two hosts of one hostname
 * (another machine id, a reinstalled server, a host of another project)
 * map to the same <store>/<host>/<disk>, and two writers of one image
 * corrupt it.  An image belongs to the project whose migration first
 * named it: *foreign set and the id of such a migration of another
 * project (any state); else an active migration other than except_id of
 * this project; 0 when none, -1 on a database error. */
static long long prefix_holder(sqlite3 *db, const char *plan_text,
                               long long except_id, long long project_id,
                               int *foreign)
{
  static const char *const sql =
    "SELECT m.id FROM migrations m, json_each(m.plan, '$.disks') d, "
    "json_each(?1, '$.disks') n WHERE json_extract(d.value, '$.image') = "
    "json_extract(n.value, '$.image') AND %s LIMIT 1";
  char q[512];
  long long id = 0;

  *foreign = 1;
  snprintf(q, sizeof q, sql, "m.project_id != ?2");
  if (db_get_int(db, &id, q, "ti", plan_text, project_id) == -1)
    return -1;
  if (id > 0)
    return id;
  *foreign = 0;
  snprintf(q, sizeof q, sql, "m.state = 'active' AND m.id != ?2");
  if (db_get_int(db, &id, q, "ti", plan_text, except_id) == -1)
    return -1;
  return id;
}

/* The 409 (or 500) for prefix_holder's answer. */
static enum MHD_Result reply_holder(struct request *r, long long holder,
                                    int foreign)
{
  if (holder < 0)
    return reply_error(r, 500, NULL, "%s", ferry_errmsg());
  if (foreign)
    return reply_error(r, 409, "host", "the images this migration would "
                       "write belong to another project (a host of the "
                       "same name in the same store): give this project "
                       "its own store in the blueprint");
  return reply_error(r, 409, "host", "active migration %lld writes the "
                     "same images (another host of this name in this "
                     "store): cancel it or wait for it, or give one of the "
                     "hosts another store", holder);
}

/* The plan: which disks, where their images and outputs go.  NULL with
 * *bad_disk set when a wanted disk is not in the inventory, or with an
 * error when a name cannot become a store key. */
static json_t *make_plan(json_t *bp, json_t *entry, json_t *inv,
                         const char *hostname, const char **bad_disk)
{
  const char *store = json_string_value(json_object_get(bp, "store"));
  const char *format = blueprint_format(bp, entry);
  json_t *want = json_object_get(entry, "disks"), *disks = json_array();
  json_t *inv_disks = json_object_get(inv, "disks"), *d, *w;
  json_t *boot = json_object_get(entry, "boot");
  size_t i, k;

  json_array_foreach(inv_disks, i, d) {
    const char *name = json_string_value(json_object_get(d, "name"));
    int wanted = want == NULL || json_is_null(want);
    char *image, *output;

    json_array_foreach(want, k, w)
      if (name && json_is_string(w) &&
          strcmp(json_string_value(w), name) == 0)
        wanted = 1;
    if (!wanted || name == NULL)
      continue;
    image = image_url(store, hostname, name, NULL);
    output = image ? image_url(store, hostname, name, format_ext(format))
                   : NULL;
    if (output == NULL) {
      free(image);
      json_decref(disks);
      return NULL;
    }
    json_array_append_new(disks, json_pack(
      "{s:s, s:O, s:s, s:s}", "name", name, "size",
      json_object_get(d, "size") ? json_object_get(d, "size") : json_null(),
      "image", image, "output", output));
    free(image);
    free(output);
  }
  json_array_foreach(want, k, w) {
    int found = 0;

    json_array_foreach(disks, i, d)
      if (json_equal(json_object_get(d, "name"), w))
        found = 1;
    if (!found) {
      *bad_disk = json_is_string(w) ? json_string_value(w) : "?";
      json_decref(disks);
      return NULL;
    }
  }
  return json_pack("{s:s, s:s, s:O, s:s, s:s, s:o, s:O, s:O, s:b, s:b, s:b,"
                   " s:I, s:s?}",
                   "hostname", hostname, "provider",
                   json_string_value(json_object_get(bp, "provider")),
                   "region", json_object_get(bp, "region")
                     ? json_object_get(bp, "region") : json_null(),
                   "store", store, "format", format, "disks", disks,
                   "host", entry, "options",
                   json_object_get(bp, "options")
                     ? json_object_get(bp, "options") : json_null(),
                   "boot", json_is_true(boot),
                   "warm", json_is_true(json_object_get(entry, "warm")),
                   "quiesce", !json_is_false(json_object_get(entry,
                                                             "quiesce")),
                   "sync_interval",
                   (json_int_t)blueprint_sync_interval(bp),
                   "blueprint", json_string_value(json_object_get(bp,
                                                                  "name")));
}

/* The blueprint network holding subnet, or NULL. */
static json_t *network_of(json_t *bp, const char *subnet)
{
  json_t *net, *sub;
  size_t i, k;

  json_array_foreach(json_object_get(bp, "networks"), i, net)
    json_array_foreach(json_object_get(net, "subnets"), k, sub)
      if (subnet && json_is_string(json_object_get(sub, "name")) &&
          strcmp(json_string_value(json_object_get(sub, "name")), subnet)
          == 0)
        return net;
  return NULL;
}

/* The source's primary NIC: the default route's, else the first physical
 * one (docs/INVENTORY.md "network"). */
static const char *primary_nic(json_t *inv)
{
  json_t *net = json_object_get(inv, "network"), *i;
  const char *gw = json_string_value(json_object_get(json_object_get(
    json_object_get(net, "default_gateway"), "ipv4"), "interface"));
  size_t k;

  if (gw)
    return gw;
  json_array_foreach(json_object_get(net, "interfaces"), k, i)
    if (!json_is_true(json_object_get(i, "virtual")) &&
        json_is_string(json_object_get(i, "driver")))
      return json_string_value(json_object_get(i, "name"));
  return NULL;
}

/* The host's static address on its subnet as "A/P" and the subnet's
 * first address as its gateway (the clouds' convention), into prep. */
static void static_address(json_t *bp, json_t *entry, json_t *prep)
{
  const char *ip = json_string_value(json_object_get(entry, "ip"));
  const char *subnet = json_string_value(json_object_get(entry, "subnet"));
  json_t *net, *sub;
  size_t i, k;

  if (ip == NULL || subnet == NULL)
    return;
  json_array_foreach(json_object_get(bp, "networks"), i, net)
    json_array_foreach(json_object_get(net, "subnets"), k, sub) {
      const char *name = json_string_value(json_object_get(sub, "name"));
      const char *cidr = json_string_value(json_object_get(sub, "cidr"));
      const char *slash = cidr ? strchr(cidr, '/') : NULL;
      char base[INET_ADDRSTRLEN], gw[INET_ADDRSTRLEN], addr[64];
      struct in_addr a;

      if (name == NULL || strcmp(name, subnet) != 0 || slash == NULL ||
          (size_t)(slash - cidr) >= sizeof base)
        continue;
      memcpy(base, cidr, (size_t)(slash - cidr));
      base[slash - cidr] = 0;
      if (inet_pton(AF_INET, base, &a) != 1)
        return;
      a.s_addr = htonl(ntohl(a.s_addr) + 1);
      inet_ntop(AF_INET, &a, gw, sizeof gw);
      snprintf(addr, sizeof addr, "%s%s", ip, slash);
      json_object_set_new(prep, "ip", json_string(addr));
      json_object_set_new(prep, "gateway", json_string(gw));
      return;
    }
}

/* Guest preparation (docs/PREPARATION.md): as the host or else the
 * blueprint says (prepare: true|false); by default on for a host whose
 * inventory lists a kernel (every Linux server an agent discovered: a
 * host without one is no OS ferry could prepare).  A local target booting
 * a cloud's device model (boot_model) is prepared for that cloud. */
static json_t *plan_prepare(json_t *bp, json_t *entry, json_t *inv)
{
  const char *provider = json_string_value(json_object_get(bp, "provider"));
  const char *model = json_string_value(json_object_get(entry,
                                                        "boot_model"));
  const char *nic = primary_nic(inv);
  json_t *on = json_object_get(entry, "prepare"), *prep;
  int emulated;

  if (!json_is_boolean(on))
    on = json_object_get(bp, "prepare");
  if (!json_is_boolean(on))
    on = json_boolean(json_array_size(json_object_get(json_object_get(
      inv, "drivers"), "kernels")) > 0);
  else
    json_incref(on);
  if (!json_is_true(on) || provider == NULL) {
    json_decref(on);
    return json_null();
  }
  json_decref(on);
  emulated = strcmp(provider, "local") == 0 && model &&
             strcmp(model, "local") != 0;
  prep = json_pack("{s:s, s:b, s:s?}", "target", emulated ? model : provider,
                   "emulated", emulated, "nic", nic);
  /* a cloud hands the instance the blueprint's address by DHCP; on the
   * local target the guest itself must carry it */
  if (prep && strcmp(provider, "local") == 0 && !emulated)
    static_address(bp, entry, prep);
  return prep;
}

/* What a target driver needs beyond the disks (targets/cloud.h): the
 * boot disk first, the boot mode, the networks, endpoints and import,
 * the instance's name and tags.  0, or -1 with an error (OOM). */
static int plan_target(json_t *plan, json_t *bp, json_t *entry, json_t *inv,
                       const char *hostname, int test)
{
  const struct target_ops *ops = target_lookup(json_string_value(
                                   json_object_get(bp, "provider")));
  const char *boot = preflight_boot_disk(plan, inv);
  const char *mode = json_string_value(json_object_get(
                       json_object_get(inv, "boot"), "mode"));
  const char *import = json_string_value(json_object_get(bp, "import"));
  json_t *disks = json_object_get(plan, "disks"), *d, *net, *tags;
  char name[300];
  size_t i;
  int r = 0;

  json_array_foreach(disks, i, d)
    if (i > 0 && boot && json_is_string(json_object_get(d, "name")) &&
        strcmp(json_string_value(json_object_get(d, "name")), boot) == 0) {
      json_incref(d);
      r |= json_array_remove(disks, i);
      r |= json_array_insert_new(disks, 0, d);
      break;
    }
  if (import == NULL && ops && ops->rules.imports)
    import = ops->rules.imports[0];
  net = network_of(bp, json_string_value(json_object_get(entry, "subnet")));
  snprintf(name, sizeof name, "%s%s", hostname, test ? "-test" : "");
  tags = json_pack("{s:s, s:s}", "ferry-blueprint",
                   json_string_value(json_object_get(bp, "name")),
                   "ferry-host", hostname);
  if (tags && test)
    r |= json_object_set_new(tags, "ferry-test", json_string("true"));
  r |= json_object_set_new(plan, "boot_disk", boot ? json_string(boot)
                                                   : json_null());
  r |= json_object_set_new(plan, "boot_mode",
                           mode && (strcmp(mode, "uefi") == 0 ||
                                    strcmp(mode, "bios") == 0)
                             ? json_string(mode) : json_null());
  r |= json_object_set_new(plan, "import", import ? json_string(import)
                                                  : json_null());
  r |= json_object_set(plan, "network", net ? net : json_null());
  r |= json_object_set(plan, "networks", json_object_get(bp, "networks")
                         ? json_object_get(bp, "networks") : json_null());
  r |= json_object_set(plan, "endpoints", json_object_get(bp, "endpoints")
                         ? json_object_get(bp, "endpoints") : json_null());
  r |= json_object_set_new(plan, "test", json_boolean(test));
  r |= json_object_set_new(plan, "prepare", plan_prepare(bp, entry, inv));
  r |= json_object_set_new(plan, "instance_name", json_string(name));
  r |= json_object_set_new(plan, "tags", tags);
  if (r != 0 || tags == NULL) {
    ferry_error("out of memory");
    return -1;
  }
  return 0;
}

enum MHD_Result api_migration_create(struct request *r)
{
  CLEANUP_FREE char *plan_text = NULL;
  sqlite3 *db = r->srv->db;
  enum MHD_Result ret;
  json_t *body, *bprow = NULL, *inv = NULL, *plan = NULL, *entry, *v, *test;
  long long host_id, bp_id, id = -1, holder;
  int foreign, is_test;
  const char *hostname, *bad_disk = NULL;
  char now[32];

  body = request_json(r, &ret);
  if (body == NULL)
    return ret;
  v = json_object_get(body, "host");
  if (json_is_string(v) &&
      hostname_check(json_string_value(v), json_string_length(v)) == -1) {
    json_decref(body);
    return reply_error(r, 400, "host", "field 'host' %s", ferry_errmsg());
  }
  db_lock();
  /* the host and the blueprint are both looked up in the caller's
   * project: one of another project is "no such", as if absent */
  host_id = resolve(db, json_object_get(body, "host"), r->project_id,
                    "SELECT id FROM hosts WHERE id = ?1 AND project_id = ?2",
                    "SELECT id FROM hosts WHERE hostname = ?1 AND "
                    "project_id = ?2 ORDER BY last_seen DESC LIMIT 1");
  bp_id = resolve(db, json_object_get(body, "blueprint"), r->project_id,
                  "SELECT id FROM blueprints WHERE id = ?1 AND "
                  "project_id = ?2",
                  "SELECT id FROM blueprints WHERE name = ?1 AND "
                  "project_id = ?2");
  if (host_id <= 0 || bp_id <= 0) {
    db_unlock();
    json_decref(body);
    if (host_id == -1)
      return reply_error(r, 400, "host", "field 'host' must be a host id or "
                         "hostname");
    if (host_id == 0)
      return reply_error(r, 404, "host", "no such host: run ferry-agent "
                         "discover on it first");
    if (bp_id == -1)
      return reply_error(r, 400, "blueprint", "field 'blueprint' must be a "
                         "blueprint id or name");
    return reply_error(r, 404, "blueprint", "no such blueprint: apply it "
                       "first (ferry blueprint apply FILE)");
  }
  test = json_object_get(body, "test");
  if (test && !json_is_boolean(test)) {
    db_unlock();
    json_decref(body);
    return reply_error(r, 400, "test", "field 'test' must be true or false");
  }
  is_test = json_is_true(test);
  json_decref(body);
  hostname = NULL;
  bprow = db_query_one(db, "SELECT body AS bp_json FROM blueprints WHERE "
                       "id = ?1", "i", bp_id);
  inv = db_query_one(db, "SELECT h.hostname, (SELECT body FROM inventories "
                     "i WHERE i.host_id = h.id ORDER BY i.id DESC LIMIT 1) "
                     "AS inv_json FROM hosts h WHERE h.id = ?1", "i",
                     host_id);
  if (bprow == NULL || inv == NULL) {
    ret = reply_error(r, 500, NULL, "%s", ferry_errmsg());
    goto out;
  }
  hostname = json_string_value(json_object_get(inv, "hostname"));
  entry = blueprint_host(json_object_get(bprow, "bp"), hostname);
  if (entry == NULL) {
    ret = reply_error(r, 422, "host", "host '%s' is not in blueprint %lld: "
                      "add it under hosts", hostname, bp_id);
    goto out;
  }
  plan = make_plan(json_object_get(bprow, "bp"), entry,
                   json_object_get(inv, "inv"), hostname, &bad_disk);
  if (plan == NULL && bad_disk == NULL) {
    ret = reply_error(r, 422, "host", "the images of host %lld cannot be "
                      "named in the store: %s", host_id, ferry_errmsg());
    goto out;
  }
  if (plan == NULL) {
    ret = reply_error(r, 422, "disks", "disk '%s' of host '%s' is not in "
                      "its inventory", bad_disk ? bad_disk : "?", hostname);
    goto out;
  }
  if (json_array_size(json_object_get(plan, "disks")) == 0) {
    ret = reply_error(r, 422, "disks", "host '%s' has no disks in its "
                      "inventory to migrate", hostname);
    goto out;
  }
  if (plan_target(plan, json_object_get(bprow, "bp"), entry,
                  json_object_get(inv, "inv"), hostname, is_test) == -1) {
    ret = reply_error(r, 500, NULL, "%s", ferry_errmsg());
    goto out;
  }
  plan_text = json_dumps(plan, JSON_COMPACT | JSON_PRESERVE_ORDER);
  if (db_int(db, 0, "SELECT id FROM migrations WHERE host_id = ?1 AND "
             "state = 'active'", "i", host_id) > 0) {
    ret = reply_error(r, 409, "host", "host '%s' already has an active "
                      "migration: cancel it or wait for it", hostname);
    goto out;
  }
  holder = prefix_holder(db, plan_text, 0, r->project_id, &foreign);
  if (holder != 0) {
    ret = reply_holder(r, holder, foreign);
    goto out;
  }
  id = db_insert(db, "INSERT INTO migrations (host_id, blueprint_id, phase, "
                 "state, plan, warm, sync_interval, created, updated, "
                 "project_id) VALUES (?1, ?2, 'discovered', 'active', ?3, "
                 "?4, ?5, ?6, ?6, ?7)", "iitiit" "i", host_id, bp_id,
                 plan_text,
                 (long long)json_is_true(json_object_get(plan, "warm")),
                 (long long)json_integer_value(json_object_get(plan,
                                                       "sync_interval")),
                 db_now(now), r->project_id);
  /* the plan names its migration, and so does every cloud resource made
   * for it (tags) */
  if (id >= 0 &&
      db_run(db, "UPDATE migrations SET plan = json_set(plan, "
             "'$.migration', ?1, '$.tags.\"ferry-migration\"', CAST(?1 AS "
             "TEXT)) WHERE id = ?1", "i", id) == -1)
    id = -1;
  if (id < 0) {
    ret = reply_error(r, 500, NULL, "%s", ferry_errmsg());
    goto out;
  }
  event_add(db, id, host_id, "phase", "discovered", "%smigration of %s "
            "created (blueprint %lld, %zu disk(s), format %s)",
            is_test ? "test " : "", hostname,
            bp_id, json_array_size(json_object_get(plan, "disks")),
            json_string_value(json_object_get(plan, "format")));
  ret = MHD_YES;
out:
  db_unlock();
  json_decref(bprow);
  json_decref(inv);
  json_decref(plan);
  if (id > 0) {
    server_wake(r->srv);
    return reply_json(r, 201, json_pack("{s:I, s:s, s:s}", "id",
                                        (json_int_t)id, "phase",
                                        "discovered", "state", "active"));
  }
  return ret;
}

#define MIGRATION_COLUMNS \
  "m.id, h.hostname, m.host_id, b.name AS blueprint, m.phase, m.state, " \
  "m.error, m.failed_phase, m.done_bytes, m.total_bytes, m.attempt, " \
  "m.created, m.updated, m.warm, m.syncs, m.last_sync, " \
  "m.last_delta_bytes, m.last_sync_seconds, m.cutover, " \
  "CASE WHEN m.next_sync IS NULL THEN NULL ELSE " \
  "strftime('%Y-%m-%dT%H:%M:%SZ', m.next_sync, 'unixepoch') END " \
  "AS next_sync"

enum MHD_Result api_migrations_list(struct request *r)
{
  json_t *rows;

  db_lock();
  rows = db_query(r->srv->db, "SELECT " MIGRATION_COLUMNS " FROM "
                  "migrations m JOIN hosts h ON h.id = m.host_id JOIN "
                  "blueprints b ON b.id = m.blueprint_id WHERE "
                  "m.project_id = ?1 ORDER BY m.id", "i", r->project_id);
  db_unlock();
  if (rows == NULL)
    return reply_error(r, 500, NULL, "%s", ferry_errmsg());
  return reply_json(r, 200, json_pack("{s:o}", "migrations", rows));
}

enum MHD_Result api_migration_get(struct request *r)
{
  long long id = request_id(r, 0);
  json_t *m, *tasks = NULL, *events = NULL, *resources = NULL;

  if (id <= 0)
    return reply_error(r, 400, "id", "migration id '%s' is not a positive "
                       "integer", r->params[0]);
  db_lock();
  m = db_query_one(r->srv->db, "SELECT " MIGRATION_COLUMNS ", m.plan AS "
                   "plan_json FROM migrations m JOIN hosts h ON h.id = "
                   "m.host_id JOIN blueprints b ON b.id = m.blueprint_id "
                   "WHERE m.id = ?1 AND m.project_id = ?2", "ii", id,
                   r->project_id);
  if (m && !json_is_null(m)) {
    tasks = db_query(r->srv->db, "SELECT id, kind, state, runner, "
                     "spec AS spec_json, result AS result_json, error, "
                     "attempts, done_bytes, total_bytes, rate, created, "
                     "updated FROM tasks WHERE migration_id = ?1 ORDER BY id",
                     "i", id);
    events = db_query(r->srv->db, "SELECT id, time, kind, phase, message "
                      "FROM events WHERE migration_id = ?1 ORDER BY id",
                      "i", id);
    resources = db_query(r->srv->db, "SELECT kind, name, cloud_id AS id, "
                         "scope, state, created, updated FROM "
                         "target_resources WHERE migration_id = ?1 ORDER BY "
                         "target_resources.id", "i", id);
  }
  db_unlock();
  if (m == NULL)
    return reply_error(r, 500, NULL, "%s", ferry_errmsg());
  if (json_is_null(m))
    return reply_error(r, 404, "id", "no migration %lld", id);
  json_object_set_new(m, "tasks", tasks ? tasks : json_array());
  json_object_set_new(m, "events", events ? events : json_array());
  json_object_set_new(m, "resources", resources ? resources : json_array());
  return reply_json(r, 200, m);
}

enum MHD_Result api_migration_cancel(struct request *r)
{
  long long id = request_id(r, 0);
  const char *state;
  json_t *m;
  char now[32];
  int changed = 0;

  if (id <= 0)
    return reply_error(r, 400, "id", "migration id '%s' is not a positive "
                       "integer", r->params[0]);
  /* the migration and its tasks are canceled together or not at all;
   * running server tasks see it at their keeper's next tick, agents at
   * their next progress report */
  db_lock();
  m = db_exec(r->srv->db, "BEGIN IMMEDIATE") == 0
        ? db_query_one(r->srv->db, "SELECT state, phase, host_id FROM "
                       "migrations WHERE id = ?1 AND project_id = ?2", "ii",
                       id, r->project_id)
        : NULL;
  if (m && !json_is_null(m) &&
      strcmp(json_string_value(json_object_get(m, "state")), "active") == 0) {
    if (db_run(r->srv->db, "UPDATE migrations SET state = 'canceled', "
               "updated = ?2 WHERE id = ?1", "it", id, db_now(now)) == -1 ||
        db_run(r->srv->db, "UPDATE tasks SET state = 'canceled', updated = "
               "?2 WHERE migration_id = ?1 AND state IN ('queued', "
               "'running')", "it", id, now) == -1 ||
        event_add(r->srv->db, id, json_integer_value(json_object_get(m,
                  "host_id")), "phase", json_string_value(json_object_get(m,
                  "phase")), "migration canceled by the operator") == -1) {
      json_decref(m);
      m = NULL;
    }
    changed = 1;
  }
  if (m == NULL || db_exec(r->srv->db, "COMMIT") == -1) {
    char why[512];

    snprintf(why, sizeof why, "%s", ferry_errmsg());
    if (sqlite3_get_autocommit(r->srv->db) == 0)
      db_exec(r->srv->db, "ROLLBACK");
    db_unlock();
    json_decref(m);
    return reply_error(r, 500, NULL, "cannot cancel migration %lld: %s", id,
                       why);
  }
  db_unlock();
  if (json_is_null(m))
    return reply_error(r, 404, "id", "no migration %lld", id);
  state = changed ? "canceled" : json_string_value(json_object_get(m,
                                                                   "state"));
  if (!changed && strcmp(state, "canceled") != 0) {
    enum MHD_Result ret = reply_error(r, 409, NULL, "migration %lld is %s, "
                                      "not active: nothing to cancel", id,
                                      state);

    json_decref(m);
    return ret;
  }
  json_decref(m);
  server_wake(r->srv);
  return reply_json(r, 200, json_pack("{s:I, s:s}", "id", (json_int_t)id,
                                      "state", "canceled"));
}

/* The row that sql (a SELECT FROM migrations WHERE id = ?1 AND
 * project_id = ?2) gives for the migration the request names in the
 * caller's project, with the database locked; NULL, with the
 * lock released and the reply made in *ret, if the id is malformed or
 * unknown or the query fails. */
static json_t *locked_migration(struct request *r, const char *sql,
                                long long *id, enum MHD_Result *ret)
{
  json_t *m;

  *id = request_id(r, 0);
  if (*id <= 0) {
    *ret = reply_error(r, 400, "id", "migration id '%s' is not a positive "
                       "integer", r->params[0]);
    return NULL;
  }
  db_lock();
  m = db_query_one(r->srv->db, sql, "ii", *id, r->project_id);
  if (m == NULL || json_is_null(m)) {
    db_unlock();
    *ret = m ? reply_error(r, 404, "id", "no migration %lld", *id)
             : reply_error(r, 500, NULL, "%s", ferry_errmsg());
    json_decref(m);
    return NULL;
  }
  return m;
}

enum MHD_Result api_migration_retry(struct request *r)
{
  long long id, host_id, holder;
  int foreign;
  const char *state, *phase;
  char now[32];
  enum MHD_Result ret;
  json_t *m = locked_migration(r, "SELECT state, phase, failed_phase, "
                               "host_id, plan FROM migrations WHERE id = ?1 "
                               "AND project_id = ?2", &id, &ret);

  if (m == NULL)
    return ret;
  state = json_string_value(json_object_get(m, "state"));
  host_id = json_integer_value(json_object_get(m, "host_id"));
  if (strcmp(state, "failed") != 0 && strcmp(state, "canceled") != 0) {
    db_unlock();
    ret = reply_error(r, 409, NULL, "migration %lld is %s: only a failed "
                      "or canceled migration can be retried", id, state);
    json_decref(m);
    return ret;
  }
  if (db_int(r->srv->db, 0, "SELECT id FROM migrations WHERE host_id = ?1 "
             "AND state = 'active'", "i", host_id) > 0) {
    db_unlock();
    json_decref(m);
    return reply_error(r, 409, NULL, "the host has another active "
                       "migration");
  }
  holder = prefix_holder(r->srv->db, json_string_value(json_object_get(m,
                         "plan")), id, r->project_id, &foreign);
  if (holder != 0) {
    db_unlock();
    json_decref(m);
    return reply_holder(r, holder, foreign);
  }
  phase = json_string_value(json_object_get(m, "failed_phase"));
  if (phase == NULL)
    phase = json_string_value(json_object_get(m, "phase"));
  /* the failed phase runs again; its unfinished tasks are queued afresh
   * and resume from what the store already holds */
  db_run(r->srv->db, "UPDATE migrations SET state = 'active', phase = ?2, "
         "error = NULL, failed_phase = NULL, attempt = attempt + 1, "
         "updated = ?3 WHERE id = ?1", "itt", id, phase, db_now(now));
  db_run(r->srv->db, "UPDATE tasks SET state = 'queued', attempts = 0, "
         "error = NULL, lease_until = NULL, updated = ?2 WHERE "
         "migration_id = ?1 AND kind != 'cleanup' AND state IN ('failed', "
         "'canceled', 'queued', 'running')", "it", id, now);
  event_add(r->srv->db, id, host_id, "phase", phase, "retry requested by "
            "the operator: resuming at %s", phase);
  db_unlock();
  server_wake(r->srv);
  ret = reply_json(r, 200, json_pack("{s:I, s:s, s:s}", "id",
                                     (json_int_t)id, "state", "active",
                                     "phase", phase));
  json_decref(m);
  return ret;
}

enum MHD_Result api_events_list(struct request *r)
{
  const char *mig = request_arg(r, "migration");
  const char *after = request_arg(r, "after");
  long long m = mig ? strtoll(mig, NULL, 10) : 0;
  long long a = after ? strtoll(after, NULL, 10) : 0;
  json_t *rows;

  db_lock();
  rows = db_query(r->srv->db, "SELECT id, time, migration_id, host_id, "
                  "kind, phase, message FROM events WHERE id > ?1 AND "
                  "(?2 = 0 OR migration_id = ?2) AND project_id = ?3 ORDER "
                  "BY id LIMIT 1000", "iii", a, m, r->project_id);
  db_unlock();
  if (rows == NULL)
    return reply_error(r, 500, NULL, "%s", ferry_errmsg());
  return reply_json(r, 200, json_pack("{s:o}", "events", rows));
}

/* The operator starts the cutover of a warm migration: the next (final)
 * sync runs with the source quiesced, then conversion and creation. */
enum MHD_Result api_migration_cutover(struct request *r)
{
  long long id;
  enum MHD_Result ret;
  const char *phase;
  json_t *m = locked_migration(r, "SELECT state, phase, warm, cutover, "
                               "host_id FROM migrations WHERE id = ?1 "
                               "AND project_id = ?2", &id, &ret);

  if (m == NULL)
    return ret;
  phase = json_string_value(json_object_get(m, "phase"));
  if (!json_integer_value(json_object_get(m, "warm")) ||
      strcmp(json_string_value(json_object_get(m, "state")), "active") ||
      (strcmp(phase, "cloning") && strcmp(phase, "ready") &&
       strcmp(phase, "syncing"))) {
    db_unlock();
    ret = reply_error(r, 409, NULL, "migration %lld is %s in phase %s: "
                      "cutover applies to an active warm migration that is "
                      "syncing or ready", id,
                      json_string_value(json_object_get(m, "state")), phase);
    json_decref(m);
    return ret;
  }
  if (!json_integer_value(json_object_get(m, "cutover"))) {
    char now[32];

    db_run(r->srv->db, "UPDATE migrations SET cutover = 1, updated = ?2 "
           "WHERE id = ?1", "it", id, db_now(now));
    /* not a phase change: the migration stays in its phase until the
     * orchestrator starts the final sync (phase cutover) */
    event_add(r->srv->db, id, json_integer_value(json_object_get(m,
              "host_id")), "cutover", phase, "cutover requested by the "
              "operator%s", strcmp(phase, "ready") == 0 ? ""
              : ": it starts when the current sync ends");
  }
  db_unlock();
  server_wake(r->srv);
  ret = reply_json(r, 200, json_pack("{s:I, s:s, s:b}", "id",
                                     (json_int_t)id, "phase", phase,
                                     "cutover", 1));
  json_decref(m);
  return ret;
}

/* The operator removes what a failed, canceled or test run made in the
 * cloud (ferry target cleanup): a cleanup task, run by a worker through
 * the target driver, deletes the migration's own resources of the ledger
 * (never the blueprint's shared networks, never what it did not make). */
enum MHD_Result api_migration_cleanup(struct request *r)
{
  long long id, host_id, task = 0, live = 0;
  const char *state;
  char now[32];
  enum MHD_Result ret;
  json_t *m = locked_migration(r, "SELECT state, phase, host_id, plan, "
                               "coalesce(json_extract(plan, '$.test'), 0) "
                               "AS test FROM migrations WHERE id = ?1 AND "
                               "project_id = ?2", &id, &ret);

  if (m == NULL)
    return ret;
  state = json_string_value(json_object_get(m, "state"));
  host_id = json_integer_value(json_object_get(m, "host_id"));
  if (strcmp(state, "active") == 0 ||
      (strcmp(state, "done") == 0 &&
       !json_integer_value(json_object_get(m, "test")))) {
    db_unlock();
    ret = reply_error(r, 409, NULL, "migration %lld is %s: cleanup removes "
                      "only what a failed, canceled or test run made%s", id,
                      state, strcmp(state, "active") == 0
                        ? " (cancel it first)" : " (this one is the "
                          "migrated server)");
    json_decref(m);
    return ret;
  }
  if (db_get_int(r->srv->db, &live, "SELECT count(*) FROM target_resources "
                 "WHERE migration_id = ?1 AND scope = 'migration' AND state "
                 "= 'live'", "i", id) == -1 ||
      db_get_int(r->srv->db, &task, "SELECT coalesce(max(id), 0) FROM tasks "
                 "WHERE migration_id = ?1 AND kind = 'cleanup' AND state IN "
                 "('queued', 'running')", "i", id) == -1)
    goto fail;
  if (task == 0) {
    task = db_insert(r->srv->db, "INSERT INTO tasks (migration_id, host_id, "
                     "kind, runner, state, spec, created, updated) VALUES "
                     "(?1, ?2, 'cleanup', 'server', 'queued', ?3, ?4, ?4)",
                     "iitt", id, host_id, json_string_value(json_object_get(
                       m, "plan")), db_now(now));
    if (task < 0 ||
        event_add(r->srv->db, id, host_id, "cleanup", NULL, "cleanup "
                  "requested by the operator: %lld resource(s) of this "
                  "migration to delete", live) == -1)
      goto fail;
  }
  db_unlock();
  json_decref(m);
  server_wake(r->srv);
  return reply_json(r, 202, json_pack("{s:I, s:I, s:I}", "id",
                                      (json_int_t)id, "task",
                                      (json_int_t)task, "resources",
                                      (json_int_t)live));
fail:
  db_unlock();
  json_decref(m);
  return reply_error(r, 500, NULL, "cannot start the cleanup of migration "
                     "%lld: %s", id, ferry_errmsg());
}
