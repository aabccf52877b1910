/* orchestrator.c - migration phases (DESIGN.md):
 *
 *   discovered -> preflight -> prepared -> cloning -> cloned
 *     -> converting -> converted -> creating -> done
 *
 * plus failed and canceled.  Every step is a database transaction and every
 * transition an event, so a server killed at any moment resumes where it
 * was: the phase says what to do next and tasks are created once. */
#include "orchestrator.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "db.h"
#include "util/error.h"
#include "events.h"
#include "util/log.h"
#include "preflight.h"
#include "tasks.h"
#include "targets/target.h"

#define WORKERS_MAX 16

static pthread_t orch_thread;
static pthread_t workers[WORKERS_MAX];
static unsigned n_workers;
static int orch_started;

static void set_phase(sqlite3 *db, long long id, long long host,
                      const char *phase, const char *fmt, const char *arg)
{
  char now[32];

  db_run(db, "UPDATE migrations SET phase = ?2, updated = ?3 WHERE id = ?1",
         "itt", id, phase, db_now(now));
  event_add(db, id, host, "phase", phase, fmt, arg ? arg : "");
}

static void fail(sqlite3 *db, long long id, long long host,
                 const char *phase, const char *cause)
{
  char now[32];

  db_run(db, "UPDATE migrations SET state = 'failed', failed_phase = ?2, "
         "error = ?3, updated = ?4 WHERE id = ?1", "ittt", id, phase, cause,
         db_now(now));
  event_add(db, id, host, "error", phase, "migration failed in phase %s: %s",
            phase, cause);
}

/* Create one task per disk of kind for round (once: a restart finds
 * them).  final marks the cutover sync, which quiesces the source. */
static int create_disk_tasks(sqlite3 *db, long long id, long long host,
                             json_t *plan, const char *kind,
                             const char *runner, long long round, int final)
{
  json_t *disks = json_object_get(plan, "disks"), *d;
  char now[32];
  size_t i;

  if (db_int(db, 0, "SELECT count(*) FROM tasks WHERE migration_id = ?1 "
             "AND kind = ?2 AND round = ?3", "iti", id, kind, round) > 0)
    return 0;
  db_now(now);
  json_array_foreach(disks, i, d) {
    CLEANUP_FREE char *spec_text = NULL;
    json_t *spec;

    if (strcmp(kind, "clone") == 0 || strcmp(kind, "sync") == 0)
      spec = json_pack("{s:O, s:O, s:O, s:b, s:b}", "disk",
                       json_object_get(d, "name"), "image",
                       json_object_get(d, "image"), "options",
                       json_object_get(plan, "options"), "final", final,
                       "quiesce", final && !json_is_false(
                         json_object_get(plan, "quiesce")));
    else
      spec = json_pack("{s:O, s:O, s:O, s:O}", "disk",
                       json_object_get(d, "name"), "image",
                       json_object_get(d, "image"), "format",
                       json_object_get(plan, "format"), "output",
                       json_object_get(d, "output"));
    spec_text = json_dumps(spec, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(spec);
    if (db_insert(db, "INSERT INTO tasks (migration_id, host_id, kind, "
                  "runner, state, spec, round, created, updated) VALUES "
                  "(?1, ?2, ?3, ?4, 'queued', ?5, ?6, ?7, ?7)", "iitttit",
                  id, host, kind, runner, spec_text, round, now) == -1)
      return -1;
  }
  return 0;
}

/* Are all tasks of kind in round done?  1 all succeeded, 0 still going,
 * -1 one failed (*error set to its message, caller frees). */
static int tasks_done(sqlite3 *db, long long id, const char *kind,
                      long long round, char **error)
{
  json_t *failed;

  failed = db_query_one(db, "SELECT id, error FROM tasks WHERE migration_id "
                        "= ?1 AND kind = ?2 AND round = ?3 AND state = "
                        "'failed' LIMIT 1", "iti", id, kind, round);
  if (failed && !json_is_null(failed)) {
    const char *e = json_string_value(json_object_get(failed, "error"));

    if (asprintf(error, "%s task %lld: %s", kind,
                 (long long)json_integer_value(json_object_get(failed, "id")),
                 e ? e : "failed") == -1)
      *error = NULL;
    json_decref(failed);
    return -1;
  }
  json_decref(failed);
  return db_int(db, 1, "SELECT count(*) = 0 FROM tasks WHERE migration_id = "
                "?1 AND kind = ?2 AND round = ?3 AND state <> 'succeeded'",
                "iti", id, kind, round) ? 1 : 0;
}

/* A sync round finished: record its delta and schedule the next. */
static void record_sync(sqlite3 *db, long long id, long long host,
                        long long round, long long interval)
{
  char now[32];
  long long delta = db_int(db, 0, "SELECT coalesce(sum(json_extract(result, "
                           "'$.changed_bytes')), 0) + coalesce(sum(CASE WHEN "
                           "json_extract(result, '$.incremental') THEN 0 "
                           "ELSE json_extract(result, '$.data_bytes') END), "
                           "0) FROM tasks WHERE migration_id = ?1 AND kind = "
                           "'sync' AND round = ?2", "ii", id, round);
  long long secs = db_int(db, 0, "SELECT coalesce(max(json_extract(result, "
                          "'$.seconds')) * 1000, 0) FROM tasks WHERE "
                          "migration_id = ?1 AND kind = 'sync' AND round = "
                          "?2", "ii", id, round);
  char msg[160];

  db_run(db, "UPDATE migrations SET last_sync = ?2, last_delta_bytes = ?3, "
         "last_sync_seconds = ?4, next_sync = ?5, updated = ?2 WHERE id = ?1",
         "itidd", id, db_now(now), delta, (double)secs / 1000.0,
         task_now() + (double)interval);
  snprintf(msg, sizeof msg, "sync %lld done: %lld bytes changed, %.1f s",
           round, delta, (double)secs / 1000.0);
  event_add(db, id, host, "sync", NULL, "%s", msg);
}

int orchestrator_step(struct server *srv, long long id)
{
  sqlite3 *db = srv->db;
  CLEANUP_FREE char *error = NULL;
  json_t *m, *plan;
  const char *phase;
  long long host, syncs, interval;
  int r, changed, warm;

  db_lock();
  m = db_query_one(db, "SELECT m.phase, m.state, m.host_id, m.warm, "
                   "m.syncs, m.sync_interval, m.cutover, "
                   "coalesce(m.next_sync, 0.0) AS next_sync, m.plan AS "
                   "plan_json, (SELECT body FROM inventories i WHERE "
                   "i.host_id = m.host_id ORDER BY i.id DESC LIMIT 1) AS "
                   "inv_json FROM migrations m WHERE m.id = ?1", "i", id);
  if (m == NULL || json_is_null(m) ||
      strcmp(json_string_value(json_object_get(m, "state")), "active")) {
    db_unlock();
    json_decref(m);
    return 0;
  }
  phase = json_string_value(json_object_get(m, "phase"));
  host = json_integer_value(json_object_get(m, "host_id"));
  plan = json_object_get(m, "plan");
  warm = json_integer_value(json_object_get(m, "warm")) != 0;
  syncs = json_integer_value(json_object_get(m, "syncs"));
  interval = json_integer_value(json_object_get(m, "sync_interval"));
  db_exec(db, "BEGIN IMMEDIATE");

  if (strcmp(phase, "discovered") == 0) {
    set_phase(db, id, host, "preflight", "checking the host against the "
              "target%s", NULL);
  } else if (strcmp(phase, "preflight") == 0) {
    json_t *findings = json_array();
    int errors = preflight_run(plan, json_object_get(m, "inv"), findings);
    CLEANUP_FREE char *ftext = json_dumps(findings, JSON_COMPACT);
    size_t i;
    json_t *f;

    json_array_foreach(findings, i, f)
      event_add(db, id, host, "preflight", "preflight", "%s: %s",
                json_string_value(json_object_get(f, "severity")),
                json_string_value(json_object_get(f, "message")));
    json_object_set(plan, "preflight", findings);
    {
      CLEANUP_FREE char *ptext = json_dumps(plan, JSON_COMPACT |
                                            JSON_PRESERVE_ORDER);

      db_run(db, "UPDATE migrations SET plan = ?2 WHERE id = ?1", "it", id,
             ptext);
    }
    if (errors) {
      const char *first = NULL;

      json_array_foreach(findings, i, f)
        if (first == NULL && strcmp(json_string_value(json_object_get(f,
            "severity")), "error") == 0)
          first = json_string_value(json_object_get(f, "message"));
      if (asprintf(&error, "%d preflight error(s); first: %s", errors,
                   first ? first : "?") == -1)
        error = NULL;
      fail(db, id, host, "preflight", error ? error : "preflight failed");
    } else {
      set_phase(db, id, host, "prepared", "preflight passed%s; disks "
                "planned", json_array_size(findings) ? " with warnings" : "");
    }
    (void)ftext;
    json_decref(findings);
  } else if (strcmp(phase, "prepared") == 0) {
    /* a warm migration's first sync is its full clone (round 1) */
    if (warm ? create_disk_tasks(db, id, host, plan, "sync", "agent", 1, 0)
                 == 0 &&
               db_run(db, "UPDATE migrations SET syncs = 1 WHERE id = ?1",
                      "i", id) >= 0
             : create_disk_tasks(db, id, host, plan, "clone", "agent", 0, 0)
                 == 0)
      set_phase(db, id, host, "cloning", "%s queued for the agent",
                warm ? "the first full sync" : "clone tasks");
  } else if (strcmp(phase, "cloning") == 0 || strcmp(phase, "syncing") == 0
             || strcmp(phase, "cutover") == 0) {
    const char *kind = warm ? "sync" : "clone";

    r = tasks_done(db, id, kind, warm ? syncs : 0, &error);
    if (r < 0) {
      fail(db, id, host, phase, error ? error : "a clone failed");
    } else if (r > 0 && !warm) {
      set_phase(db, id, host, "cloned", "every disk is in the store%s",
                NULL);
    } else if (r > 0) {
      record_sync(db, id, host, syncs, interval);
      if (strcmp(phase, "cutover") == 0)
        set_phase(db, id, host, "cloned", "final sync done with the source "
                  "quiesced: every disk is in the store%s", NULL);
      else
        set_phase(db, id, host, "ready", "ready for cutover%s", NULL);
    }
  } else if (strcmp(phase, "ready") == 0) {
    int cut = json_integer_value(json_object_get(m, "cutover")) != 0;

    if (cut || task_now() >= json_number_value(json_object_get(m,
                                                             "next_sync"))) {
      if (create_disk_tasks(db, id, host, plan, "sync", "agent", syncs + 1,
                            cut) == 0 &&
          db_run(db, "UPDATE migrations SET syncs = ?2 WHERE id = ?1", "ii",
                 id, syncs + 1) >= 0)
        set_phase(db, id, host, cut ? "cutover" : "syncing",
                  cut ? "cutover: the final sync, with the source quiesced%s"
                      : "incremental sync queued%s", NULL);
    }
  } else if (strcmp(phase, "cloned") == 0) {
    if (create_disk_tasks(db, id, host, plan, "convert", "server", 0, 0)
        == 0)
      set_phase(db, id, host, "converting", "conversions to %s queued",
                json_string_value(json_object_get(plan, "format")));
  } else if (strcmp(phase, "converting") == 0) {
    r = tasks_done(db, id, "convert", 0, &error);
    if (r < 0)
      fail(db, id, host, "converting", error ? error : "a convert failed");
    else if (r > 0)
      set_phase(db, id, host, "converted", "every disk is converted%s",
                NULL);
  } else if (strcmp(phase, "converted") == 0) {
    if (db_int(db, 0, "SELECT count(*) FROM tasks WHERE migration_id = ?1 "
               "AND kind = 'create'", "i", id) == 0) {
      CLEANUP_FREE char *spec = json_dumps(plan, JSON_COMPACT |
                                           JSON_PRESERVE_ORDER);
      char now[32];

      db_insert(db, "INSERT INTO tasks (migration_id, host_id, kind, runner, "
                "state, spec, created, updated) VALUES (?1, ?2, 'create', "
                "'server', 'queued', ?3, ?4, ?4)", "iitt", id, host, spec,
                db_now(now));
    }
    set_phase(db, id, host, "creating", "creating the instance on %s",
              json_string_value(json_object_get(plan, "provider")));
  } else if (strcmp(phase, "creating") == 0) {
    r = tasks_done(db, id, "create", 0, &error);
    if (r < 0) {
      fail(db, id, host, "creating", error ? error : "create failed");
    } else if (r > 0) {
      char now[32];

      db_run(db, "UPDATE migrations SET phase = 'done', state = 'done', "
             "updated = ?2 WHERE id = ?1", "it", id, db_now(now));
      event_add(db, id, host, "phase", "done", "migration done");
    }
  }
  changed = db_int(db, 0, "SELECT phase <> ?2 OR state <> 'active' FROM "
                   "migrations WHERE id = ?1", "it", id, phase) != 0;
  db_exec(db, "COMMIT");
  db_unlock();
  json_decref(m);
  return changed;
}

static void *orchestrator_main(void *arg)
{
  struct server *srv = arg;

  for (;;) {
    struct timespec ts;
    json_t *ids, *v;
    size_t i;

    pthread_mutex_lock(&srv->lock);
    if (srv->stopping) {
      pthread_mutex_unlock(&srv->lock);
      break;
    }
    pthread_mutex_unlock(&srv->lock);

    db_lock();
    ids = db_query(srv->db, "SELECT id FROM migrations WHERE state = "
                   "'active' ORDER BY id", NULL);
    db_unlock();
    json_array_foreach(ids, i, v) {
      long long id = json_integer_value(json_object_get(v, "id"));
      int steps = 0;

      /* go on while phases change (bounded: there are nine) */
      while (steps++ < 16 && orchestrator_step(srv, id))
        server_wake(srv);        /* a new phase may have queued tasks */
    }
    json_decref(ids);

    pthread_mutex_lock(&srv->lock);
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 1;
    if (!srv->stopping)
      pthread_cond_timedwait(&srv->wake, &srv->lock, &ts);
    pthread_mutex_unlock(&srv->lock);
  }
  return NULL;
}

/* ---- server tasks ------------------------------------------------------ */

static int task_canceled(struct server *srv, long long task_id)
{
  int c;

  db_lock();
  c = db_int(srv->db, 0, "SELECT state = 'canceled' FROM tasks WHERE id = "
             "?1", "i", task_id) != 0;
  db_unlock();
  return c;
}

/* Run ferry-convert for spec; result JSON or NULL with the error.  The
 * child dies with the server (PR_SET_PDEATHSIG); store credentials reach
 * it through the environment, never its command line. */
static json_t *run_convert(struct server *srv, long long task_id,
                           json_t *spec)
{
  const char *argv[] = {
    srv->convert_bin, "--from",
    json_string_value(json_object_get(spec, "image")), "--format",
    json_string_value(json_object_get(spec, "format")), "--to",
    json_string_value(json_object_get(spec, "output")), "--overwrite",
    "--json", "--quiet", NULL,
  };
  char out[65536], err[4096];
  size_t out_len = 0, err_len = 0;
  int outp[2], errp[2], status = 0, r;
  pid_t pid;

  if (argv[2] == NULL || argv[4] == NULL || argv[6] == NULL) {
    ferry_error("convert task %lld has an incomplete spec", task_id);
    return NULL;
  }
  if (pipe2(outp, O_CLOEXEC) == -1 || pipe2(errp, O_CLOEXEC) == -1) {
    ferry_error("cannot create pipes: %m");
    return NULL;
  }
  pid = fork();
  if (pid == -1) {
    ferry_error("cannot start ferry-convert: %m");
    close(outp[0]); close(outp[1]); close(errp[0]); close(errp[1]);
    return NULL;
  }
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    dup2(outp[1], STDOUT_FILENO);
    dup2(errp[1], STDERR_FILENO);
    execv(argv[0], (char *const *)argv);
    _exit(127);
  }
  close(outp[1]);
  close(errp[1]);
  for (int open_fds = 2; open_fds > 0;) {
    struct pollfd pfd[2] = { { outp[0], POLLIN, 0 }, { errp[0], POLLIN, 0 } };

    r = poll(pfd, 2, 1000);
    if (r == -1 && errno != EINTR)
      break;
    for (int k = 0; k < 2; k++) {
      char buf[4096];
      ssize_t n;

      if (pfd[k].fd < 0 || !(pfd[k].revents & (POLLIN | POLLHUP)))
        continue;
      n = read(pfd[k].fd, buf, sizeof buf);
      if (n <= 0) {
        close(k == 0 ? outp[0] : errp[0]);
        if (k == 0)
          outp[0] = -1;
        else
          errp[0] = -1;
        open_fds--;
        continue;
      }
      if (k == 0) {
        size_t c = (size_t)n < sizeof out - 1 - out_len
                     ? (size_t)n : sizeof out - 1 - out_len;

        memcpy(out + out_len, buf, c);
        out_len += c;
      } else {
        /* keep the tail: the last line is the error */
        if ((size_t)n >= sizeof err) {
          memcpy(err, buf + n - (sizeof err - 1), sizeof err - 1);
          err_len = sizeof err - 1;
        } else {
          if (err_len + (size_t)n >= sizeof err) {
            size_t drop = err_len + (size_t)n - (sizeof err - 1);

            memmove(err, err + drop, err_len - drop);
            err_len -= drop;
          }
          memcpy(err + err_len, buf, (size_t)n);
          err_len += (size_t)n;
        }
      }
    }
    if (r == 0) {
      /* a second passed: keep the lease, honour a cancel */
      db_lock();
      db_run(srv->db, "UPDATE tasks SET lease_until = ?2 WHERE id = ?1",
             "id", task_id, task_now() + srv->lease_seconds);
      db_unlock();
      if (task_canceled(srv, task_id))
        kill(pid, SIGTERM);
    }
  }
  if (outp[0] >= 0)
    close(outp[0]);
  if (errp[0] >= 0)
    close(errp[0]);
  while (waitpid(pid, &status, 0) == -1 && errno == EINTR)
    ;
  out[out_len] = '\0';
  err[err_len] = '\0';
  while (err_len > 0 && (err[err_len - 1] == '\n' || err[err_len - 1] == ' '))
    err[--err_len] = '\0';
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    const char *last = strrchr(err, '\n');

    ferry_error("%s", err_len ? (last ? last + 1 : err)
                : WIFSIGNALED(status) ? "ferry-convert was killed"
                : "ferry-convert failed without a message");
    return NULL;
  }
  {
    json_t *res = json_loads(out, 0, NULL);

    if (res == NULL)
      ferry_error("ferry-convert printed no JSON result");
    return res;
  }
}

static void *worker_main(void *arg)
{
  struct server *srv = arg;

  for (;;) {
    json_t *task, *result = NULL;
    const char *kind, *state;
    long long id;

    pthread_mutex_lock(&srv->lock);
    if (srv->stopping) {
      pthread_mutex_unlock(&srv->lock);
      break;
    }
    pthread_mutex_unlock(&srv->lock);

    db_lock();
    task = task_claim(srv->db, "server", 0, 0, srv->lease_seconds);
    db_unlock();
    if (task == NULL || json_is_null(task)) {
      struct timespec ts;

      json_decref(task);
      pthread_mutex_lock(&srv->lock);
      clock_gettime(CLOCK_REALTIME, &ts);
      ts.tv_sec += 1;
      if (!srv->stopping)
        pthread_cond_timedwait(&srv->wake, &srv->lock, &ts);
      pthread_mutex_unlock(&srv->lock);
      continue;
    }
    id = json_integer_value(json_object_get(task, "id"));
    kind = json_string_value(json_object_get(task, "kind"));
    db_lock();
    event_add(srv->db, json_integer_value(json_object_get(task,
              "migration_id")), json_integer_value(json_object_get(task,
              "host_id")), "task", NULL, "%s task %lld started", kind, id);
    db_unlock();
    if (strcmp(kind, "convert") == 0)
      result = run_convert(srv, id, json_object_get(task, "spec"));
    else if (strcmp(kind, "create") == 0)
      result = target_create(NULL, json_object_get(task, "spec"));
    else
      ferry_error("unknown task kind '%s'", kind);
    db_lock();
    if (db_int(srv->db, 0, "SELECT state = 'running' FROM tasks WHERE "
               "id = ?1", "i", id)) {
      /* a boot check that timed out would only time out again */
      state = task_finish(srv->db, id, result != NULL, ferry_errmsg(),
                          result, strcmp(kind, "create") == 0
                                    ? 1 : srv->max_attempts);
      (void)state;
    }
    db_unlock();
    json_decref(result);
    json_decref(task);
    server_wake(srv);
  }
  return NULL;
}

int orchestrator_start(struct server *srv)
{
  unsigned i;

  /* we are the only server: nothing of ours is still running */
  db_lock();
  db_run(srv->db, "UPDATE tasks SET state = 'queued', lease_until = NULL "
         "WHERE runner = 'server' AND state = 'running'", NULL);
  db_unlock();
  if ((errno = pthread_create(&orch_thread, NULL, orchestrator_main, srv))) {
    ferry_error("cannot start the orchestrator: %m");
    return -1;
  }
  orch_started = 1;
  n_workers = srv->convert_workers < WORKERS_MAX ? srv->convert_workers
                                                 : WORKERS_MAX;
  for (i = 0; i < n_workers; i++)
    if ((errno = pthread_create(&workers[i], NULL, worker_main, srv))) {
      ferry_error("cannot start a worker: %m");
      n_workers = i;
      return -1;
    }
  return 0;
}

void orchestrator_stop(void)
{
  unsigned i;

  if (orch_started)
    pthread_join(orch_thread, NULL);
  for (i = 0; i < n_workers; i++)
    pthread_join(workers[i], NULL);
  orch_started = 0;
  n_workers = 0;
}
