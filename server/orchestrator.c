/* orchestrator.c - migration phases (DESIGN.md):
 *
 *   discovered -> preflight -> prepared -> cloning -> cloned
 *     -> preparing -> converting -> converted -> creating -> done
 *
 * plus ready/syncing/cutover for warm migrations, failed and canceled.
 * Every step is one database transaction that happens whole or not at
 * all: a step whose database work fails rolls back, is logged and runs
 * again on the next tick, so a migration never advances with half its
 * tasks, and a server killed at any moment resumes where it was (the phase
 * says what to do next and tasks are created once).  A phase that waits
 * for tasks and finds none fails the migration: missing tasks are never
 * "done". */
#include "orchestrator.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/cleanup.h"
#include "db.h"
#include "util/error.h"
#include "events.h"
#include "util/log.h"
#include "preflight.h"
#include "tasks.h"
#include "worker.h"

static pthread_t orch_thread;
static int orch_started;

/* One step of one migration, inside its transaction. */
struct step {
  sqlite3 *db;
  long long id, host, syncs, interval;
  const char *phase;
  json_t *m, *plan;                /* the migration's row and its plan */
  int warm, cutover;
  double next_sync;
  int changed;                     /* phase or state written */
};

/* What the tasks of one kind and round say. */
enum tasks_state { TASKS_NONE, TASKS_RUNNING, TASKS_DONE, TASKS_FAILED };

static int set_phase(struct step *s, const char *phase, const char *fmt,
                     const char *arg)
{
  char now[32];

  if (db_run(s->db, "UPDATE migrations SET phase = ?2, updated = ?3 WHERE "
             "id = ?1", "itt", s->id, phase, db_now(now)) == -1 ||
      event_add(s->db, s->id, s->host, "phase", phase, fmt,
                arg ? arg : "") == -1)
    return -1;
  s->changed = 1;
  return 0;
}

/* Fail the migration; a retry resumes at resume_phase. */
static int fail_at(struct step *s, const char *resume_phase,
                   const char *cause)
{
  char now[32];

  if (db_run(s->db, "UPDATE migrations SET state = 'failed', failed_phase "
             "= ?2, error = ?3, updated = ?4 WHERE id = ?1", "ittt", s->id,
             resume_phase, cause, db_now(now)) == -1 ||
      event_add(s->db, s->id, s->host, "error", s->phase, "migration "
                "failed in phase %s: %s", s->phase, cause) == -1)
    return -1;
  s->changed = 1;
  return 0;
}

static int fail(struct step *s, const char *cause)
{
  return fail_at(s, s->phase, cause);
}

/* How the agent reaches the store of image: "grant" (it holds no
 * credentials and asks the server for each object: api_grants.c) for
 * every store with an HTTP endpoint unless the blueprint says
 * store_access: direct; "direct" for file://, a path the agent itself
 * must reach. */
static const char *store_access(json_t *plan, json_t *image)
{
  const char *opt = json_string_value(json_object_get(
    json_object_get(plan, "options"), "store_access"));
  const char *url = json_string_value(image);

  if (url == NULL || strncmp(url, "file://", 7) == 0)
    return "direct";
  return opt && strcmp(opt, "direct") == 0 ? "direct" : "grant";
}

static json_t *disk_task_spec(json_t *plan, json_t *d, const char *kind,
                              int final)
{
  if (strcmp(kind, "clone") == 0 || strcmp(kind, "sync") == 0)
    return json_pack("{s:O, s:O, s:s, s:O, s:b, s:b}", "disk",
                     json_object_get(d, "name"), "image",
                     json_object_get(d, "image"), "store_access",
                     store_access(plan, json_object_get(d, "image")),
                     "options", json_object_get(plan, "options"), "final",
                     final, "quiesce", final && !json_is_false(
                       json_object_get(plan, "quiesce")));
  return json_pack("{s:O, s:O, s:O, s:O}", "disk",
                   json_object_get(d, "name"), "image",
                   json_object_get(d, "image"), "format",
                   json_object_get(plan, "format"), "output",
                   json_object_get(d, "output"));
}

/* Create one task per disk of kind for round, once (a restart finds
 * them); final marks the cutover sync, which quiesces the source.  0, or
 * -1 with the error: the caller's transaction then rolls back, so either
 * every disk has its task or none has. */
static int create_disk_tasks(struct step *s, const char *kind,
                             const char *runner, long long round, int final)
{
  json_t *disks = json_object_get(s->plan, "disks"), *d;
  long long have = 0;
  char now[32];
  size_t i;

  if (db_get_int(s->db, &have, "SELECT count(*) FROM tasks WHERE "
                 "migration_id = ?1 AND kind = ?2 AND round = ?3", "iti",
                 s->id, kind, round) == -1)
    return -1;
  if (have > 0)
    return 0;
  if (json_array_size(disks) == 0) {
    ferry_error("the migration's plan lists no disks");
    return -1;
  }
  db_now(now);
  json_array_foreach(disks, i, d) {
    json_t *spec = disk_task_spec(s->plan, d, kind, final);
    CLEANUP_FREE char *text = spec ? json_dumps(spec, JSON_COMPACT |
                                                JSON_PRESERVE_ORDER) : NULL;

    json_decref(spec);
    if (text == NULL) {
      ferry_error("disk %zu of the plan lacks its name, image or output",
                  i);
      return -1;
    }
    if (db_insert(s->db, "INSERT INTO tasks (migration_id, host_id, kind, "
                  "runner, state, spec, round, created, updated) VALUES "
                  "(?1, ?2, ?3, ?4, 'queued', ?5, ?6, ?7, ?7)", "iitttit",
                  s->id, s->host, kind, runner, text, round, now) == -1) {
      ferry_error_prefix("%s task for disk %zu: ", kind, i);
      return -1;
    }
  }
  return 0;
}

/* Where the tasks of kind in round are; -1 with the error.  On
 * TASKS_FAILED *error is the first failed task's message (caller frees). */
static int tasks_state(struct step *s, const char *kind, long long round,
                       char **error)
{
  long long total = 0, open = 0;
  json_t *failed;

  failed = db_query_one(s->db, "SELECT id, error FROM tasks WHERE "
                        "migration_id = ?1 AND kind = ?2 AND round = ?3 AND "
                        "state = 'failed' ORDER BY id LIMIT 1", "iti", s->id,
                        kind, round);
  if (failed == NULL)
    return -1;
  if (!json_is_null(failed)) {
    const char *e = json_string_value(json_object_get(failed, "error"));

    if (asprintf(error, "%s task %lld: %s", kind,
                 (long long)json_integer_value(json_object_get(failed, "id")),
                 e ? e : "failed") == -1)
      *error = NULL;
    json_decref(failed);
    return TASKS_FAILED;
  }
  json_decref(failed);
  if (db_get_int(s->db, &total, "SELECT count(*) FROM tasks WHERE "
                 "migration_id = ?1 AND kind = ?2 AND round = ?3", "iti",
                 s->id, kind, round) == -1 ||
      db_get_int(s->db, &open, "SELECT count(*) FROM tasks WHERE "
                 "migration_id = ?1 AND kind = ?2 AND round = ?3 AND state "
                 "<> 'succeeded'", "iti", s->id, kind, round) == -1)
    return -1;
  if (total == 0)
    return TASKS_NONE;
  return open ? TASKS_RUNNING : TASKS_DONE;
}

/* The phase waits for the tasks of kind in round: 1 when they all
 * succeeded, 0 while they run or once the migration failed (a failed task,
 * or none at all: resume_phase is where a retry makes them again), -1 on a
 * database error. */
static int wait_tasks(struct step *s, const char *kind, long long round,
                      const char *resume_phase)
{
  CLEANUP_FREE char *error = NULL;
  char cause[256];

  switch (tasks_state(s, kind, round, &error)) {
  case TASKS_DONE:
    return 1;
  case TASKS_RUNNING:
    return 0;
  case TASKS_FAILED:
    return fail(s, error ? error : "a task failed");
  case TASKS_NONE:
    snprintf(cause, sizeof cause, "no %s tasks exist for round %lld of "
             "this migration: they were never made or were removed; retry "
             "to make them again", kind, round);
    return fail_at(s, resume_phase, cause);
  }
  return -1;
}

/* A sync round finished: record its delta and schedule the next. */
static int record_sync(struct step *s)
{
  long long delta = 0, msecs = 0;
  char now[32];

  if (db_get_int(s->db, &delta, "SELECT coalesce(sum(json_extract(result, "
                 "'$.changed_bytes')), 0) + coalesce(sum(CASE WHEN "
                 "json_extract(result, '$.incremental') THEN 0 ELSE "
                 "json_extract(result, '$.data_bytes') END), 0) FROM tasks "
                 "WHERE migration_id = ?1 AND kind = 'sync' AND round = ?2",
                 "ii", s->id, s->syncs) == -1 ||
      db_get_int(s->db, &msecs, "SELECT coalesce(max(json_extract(result, "
                 "'$.seconds')) * 1000, 0) FROM tasks WHERE migration_id = "
                 "?1 AND kind = 'sync' AND round = ?2", "ii", s->id,
                 s->syncs) == -1 ||
      db_run(s->db, "UPDATE migrations SET last_sync = ?2, "
             "last_delta_bytes = ?3, last_sync_seconds = ?4, next_sync = ?5, "
             "updated = ?2 WHERE id = ?1", "itidd", s->id, db_now(now), delta,
             (double)msecs / 1000.0, task_now() + (double)s->interval) == -1)
    return -1;
  return event_add(s->db, s->id, s->host, "sync", NULL, "sync %lld done: "
                   "%lld bytes changed, %.1f s", s->syncs, delta,
                   (double)msecs / 1000.0);
}

static int step_discovered(struct step *s)
{
  return set_phase(s, "preflight", "checking the host against the "
                   "target%s", NULL);
}

static int step_preflight(struct step *s)
{
  json_t *findings = json_array(), *f;
  int errors = preflight_run(s->plan, json_object_get(s->m, "inv"),
                             findings);
  CLEANUP_FREE char *ptext = NULL, *error = NULL;
  const char *first = NULL;
  size_t i;
  int r = -1;

  json_array_foreach(findings, i, f) {
    const char *sev = json_string_value(json_object_get(f, "severity"));

    if (event_add(s->db, s->id, s->host, "preflight", "preflight", "%s: %s",
                  sev, json_string_value(json_object_get(f, "message")))
        == -1)
      goto out;
    if (first == NULL && strcmp(sev, "error") == 0)
      first = json_string_value(json_object_get(f, "message"));
  }
  json_object_set(s->plan, "preflight", findings);
  ptext = json_dumps(s->plan, JSON_COMPACT | JSON_PRESERVE_ORDER);
  if (ptext == NULL) {
    ferry_error("cannot encode the plan");
    goto out;
  }
  if (db_run(s->db, "UPDATE migrations SET plan = ?2 WHERE id = ?1", "it",
             s->id, ptext) == -1)
    goto out;
  if (errors) {
    if (asprintf(&error, "%d preflight error(s); first: %s", errors,
                 first ? first : "?") == -1)
      error = NULL;
    r = fail(s, error ? error : "preflight failed");
  } else {
    r = set_phase(s, "prepared", "preflight passed%s; disks planned",
                  json_array_size(findings) ? " with warnings" : "");
  }
out:
  json_decref(findings);
  return r;
}

static int step_prepared(struct step *s)
{
  /* a warm migration's first sync is its full clone (round 1) */
  if (s->warm) {
    if (create_disk_tasks(s, "sync", "agent", 1, 0) == -1 ||
        db_run(s->db, "UPDATE migrations SET syncs = 1 WHERE id = ?1", "i",
               s->id) == -1)
      return -1;
    return set_phase(s, "cloning", "%s queued for the agent",
                     "the first full sync");
  }
  if (create_disk_tasks(s, "clone", "agent", 0, 0) == -1)
    return -1;
  return set_phase(s, "cloning", "%s queued for the agent", "clone tasks");
}

/* cloning, syncing and cutover wait for the round's clones or syncs. */
static int step_cloning(struct step *s)
{
  int r = wait_tasks(s, s->warm ? "sync" : "clone", s->warm ? s->syncs : 0,
                     s->warm ? s->phase : "prepared");

  if (r <= 0)
    return r;
  if (!s->warm)
    return set_phase(s, "cloned", "every disk is in the store%s", NULL);
  if (record_sync(s) == -1)
    return -1;
  if (strcmp(s->phase, "cutover") == 0)
    return set_phase(s, "cloned", "final sync done with the source "
                     "quiesced: every disk is in the store%s", NULL);
  return set_phase(s, "ready", "ready for cutover%s", NULL);
}

static int step_ready(struct step *s)
{
  if (!s->cutover && task_now() < s->next_sync)
    return 0;
  if (create_disk_tasks(s, "sync", "agent", s->syncs + 1, s->cutover) == -1
      || db_run(s->db, "UPDATE migrations SET syncs = ?2 WHERE id = ?1",
                "ii", s->id, s->syncs + 1) == -1)
    return -1;
  return set_phase(s, s->cutover ? "cutover" : "syncing",
                   s->cutover ? "cutover: the final sync, with the source "
                                "quiesced%s"
                              : "incremental sync queued%s", NULL);
}

static int queue_convert(struct step *s)
{
  if (create_disk_tasks(s, "convert", "server", 0, 0) == -1)
    return -1;
  return set_phase(s, "converting", "conversions to %s queued",
                   json_string_value(json_object_get(s->plan, "format")));
}

/* Guest preparation (docs/PREPARATION.md) runs on the copy before it is
 * converted, so every format holds the prepared disk; one task for all of
 * a host's disks (the root may span them). */
static int step_cloned(struct step *s)
{
  json_t *prep = json_object_get(s->plan, "prepare"), *spec, *disks, *d;
  CLEANUP_FREE char *text = NULL;
  long long have = 0;
  char now[32];
  size_t i;

  if (!json_is_object(prep))
    return queue_convert(s);
  if (db_get_int(s->db, &have, "SELECT count(*) FROM tasks WHERE "
                 "migration_id = ?1 AND kind = 'prepare'", "i", s->id) == -1)
    return -1;
  if (have == 0) {
    spec = json_deep_copy(prep);
    disks = json_array();
    json_array_foreach(json_object_get(s->plan, "disks"), i, d)
      json_array_append_new(disks, json_pack("{s:O, s:O}", "name",
                                             json_object_get(d, "name"),
                                             "image",
                                             json_object_get(d, "image")));
    json_object_set_new(spec, "disks", disks);
    text = json_dumps(spec, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(spec);
    if (text == NULL) {
      ferry_error("cannot encode the prepare task");
      return -1;
    }
    if (db_insert(s->db, "INSERT INTO tasks (migration_id, host_id, kind, "
                  "runner, state, spec, created, updated) VALUES (?1, ?2, "
                  "'prepare', 'server', 'queued', ?3, ?4, ?4)", "iitt",
                  s->id, s->host, text, db_now(now)) == -1)
      return -1;
  }
  return set_phase(s, "preparing", "preparing the guest for %s",
                   json_string_value(json_object_get(prep, "target")));
}

static int step_preparing(struct step *s)
{
  int r = wait_tasks(s, "prepare", 0, "cloned");

  if (r <= 0)
    return r;
  return queue_convert(s);
}

static int step_converting(struct step *s)
{
  int r = wait_tasks(s, "convert", 0, "cloned");

  if (r <= 0)
    return r;
  return set_phase(s, "converted", "every disk is converted%s", NULL);
}

static int step_converted(struct step *s)
{
  CLEANUP_FREE char *spec = NULL;
  long long have = 0;
  char now[32];

  if (db_get_int(s->db, &have, "SELECT count(*) FROM tasks WHERE "
                 "migration_id = ?1 AND kind = 'create'", "i", s->id) == -1)
    return -1;
  if (have == 0) {
    spec = json_dumps(s->plan, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (spec == NULL) {
      ferry_error("cannot encode the plan");
      return -1;
    }
    if (db_insert(s->db, "INSERT INTO tasks (migration_id, host_id, kind, "
                  "runner, state, spec, created, updated) VALUES (?1, ?2, "
                  "'create', 'server', 'queued', ?3, ?4, ?4)", "iitt", s->id,
                  s->host, spec, db_now(now)) == -1)
      return -1;
  }
  return set_phase(s, "creating", "creating the instance on %s",
                   json_string_value(json_object_get(s->plan, "provider")));
}

static int step_creating(struct step *s)
{
  int r = wait_tasks(s, "create", 0, "converted");
  char now[32];

  if (r <= 0)
    return r;
  if (db_run(s->db, "UPDATE migrations SET phase = 'done', state = 'done', "
             "updated = ?2 WHERE id = ?1", "it", s->id, db_now(now)) == -1 ||
      event_add(s->db, s->id, s->host, "phase", "done", "migration done")
      == -1)
    return -1;
  s->changed = 1;
  return 0;
}

/* What each phase of an active migration does on a tick: 0 (whether or not
 * it moved on), or -1 with the error to roll the step back. */
static const struct phase {
  const char *name;
  int (*step)(struct step *s);
} phases[] = {
  { "discovered", step_discovered },
  { "preflight", step_preflight },
  { "prepared", step_prepared },
  { "cloning", step_cloning },
  { "syncing", step_cloning },
  { "cutover", step_cloning },
  { "ready", step_ready },
  { "cloned", step_cloned },
  { "preparing", step_preparing },
  { "converting", step_converting },
  { "converted", step_converted },
  { "creating", step_creating },
};

static const struct phase *phase_lookup(const char *name)
{
  size_t i;

  for (i = 0; name && i < sizeof phases / sizeof phases[0]; i++)
    if (strcmp(phases[i].name, name) == 0)
      return &phases[i];
  return NULL;
}

/* Read the migration into s: 1 active, 0 not (nothing to do), -1. */
static int step_load(struct step *s)
{
  s->m = db_query_one(s->db, "SELECT m.phase, m.state, m.host_id, m.warm, "
                      "m.syncs, m.sync_interval, m.cutover, "
                      "coalesce(m.next_sync, 0.0) AS next_sync, m.plan AS "
                      "plan_json, (SELECT body FROM inventories i WHERE "
                      "i.host_id = m.host_id ORDER BY i.id DESC LIMIT 1) AS "
                      "inv_json FROM migrations m WHERE m.id = ?1", "i",
                      s->id);
  if (s->m == NULL)
    return -1;
  if (json_is_null(s->m) || strcmp(json_string_value(json_object_get(s->m,
                                   "state")), "active") != 0)
    return 0;
  s->phase = json_string_value(json_object_get(s->m, "phase"));
  s->host = json_integer_value(json_object_get(s->m, "host_id"));
  s->plan = json_object_get(s->m, "plan");
  s->warm = json_integer_value(json_object_get(s->m, "warm")) != 0;
  s->cutover = json_integer_value(json_object_get(s->m, "cutover")) != 0;
  s->syncs = json_integer_value(json_object_get(s->m, "syncs"));
  s->interval = json_integer_value(json_object_get(s->m, "sync_interval"));
  s->next_sync = json_number_value(json_object_get(s->m, "next_sync"));
  if (!json_is_object(s->plan)) {
    ferry_error("its plan is not a JSON object");
    return -1;
  }
  return 1;
}

int orchestrator_step(struct server *srv, long long id)
{
  struct step s = { .db = srv->db, .id = id };
  const struct phase *p;
  char why[512];
  int r;

  db_lock();
  r = db_exec(s.db, "BEGIN IMMEDIATE");
  if (r == 0 && (r = step_load(&s)) == 1) {
    p = phase_lookup(s.phase);
    if (p == NULL) {
      ferry_error("unknown phase '%s'", s.phase);
      r = -1;
    } else {
      r = p->step(&s);
    }
  }
  if (r >= 0 && db_exec(s.db, "COMMIT") == 0) {
    r = s.changed;
  } else {
    /* the error first: a failed ROLLBACK would replace it */
    snprintf(why, sizeof why, "%s", ferry_errmsg());
    if (sqlite3_get_autocommit(s.db) == 0 &&
        db_exec(s.db, "ROLLBACK") == -1)
      log_warn("migration %lld: rollback: %s", id, ferry_errmsg());
    log_warn("migration %lld: the step in phase %s was rolled back and "
             "runs again on the next tick: %s", id,
             s.phase ? s.phase : "(unread)", why);
    r = -1;
  }
  db_unlock();
  json_decref(s.m);
  return r;
}

static void *orchestrator_main(void *arg)
{
  struct server *srv = arg;

  while (!server_stopping(srv)) {
    json_t *ids, *v;
    size_t i;

    db_lock();
    ids = db_query(srv->db, "SELECT id FROM migrations WHERE state = "
                   "'active' ORDER BY id", NULL);
    db_unlock();
    if (ids == NULL)
      log_warn("cannot list the active migrations (trying again in a "
               "second): %s", ferry_errmsg());
    json_array_foreach(ids, i, v) {
      long long id = json_integer_value(json_object_get(v, "id"));
      int steps = 0;

      /* go on while phases change (bounded: there are twelve) */
      while (steps++ < 16 && orchestrator_step(srv, id) == 1)
        server_wake(srv);        /* a new phase may have queued tasks */
    }
    json_decref(ids);
    server_nap(srv);
  }
  return NULL;
}

int orchestrator_start(struct server *srv)
{
  if (workers_start(srv) == -1)
    return -1;
  if ((errno = pthread_create(&orch_thread, NULL, orchestrator_main, srv))) {
    ferry_error("cannot start the orchestrator: %m");
    return -1;
  }
  orch_started = 1;
  return 0;
}

void orchestrator_stop(void)
{
  if (orch_started)
    pthread_join(orch_thread, NULL);
  orch_started = 0;
  workers_stop();
}
