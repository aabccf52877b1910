/* worker.c - the server's task workers (worker.h). */
#include "worker.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include "child.h"
#include "db.h"
#include "events.h"
#include "targets/target.h"
#include "tasks.h"
#include "util/error.h"
#include "util/log.h"

#define WORKERS_MAX 16

static pthread_t workers[WORKERS_MAX];
static unsigned n_workers;

/* Run one of ferry's programs (name, for messages) as the task's child
 * and parse the JSON it prints; NULL with the error: its stderr's last
 * line, or why it stopped. */
static json_t *child_json(struct task_ctx *t, const char *name,
                          const char *const *argv, char *out,
                          size_t out_size)
{
  char err[4096];
  const char *last;
  json_t *res;
  int status;

  status = child_run(t, (char *const *)argv, out, out_size, err,
                     sizeof err);
  if (status == -1)
    return NULL;
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    last = strrchr(err, '\n');
    if (task_ctx_stopping(t))
      ferry_error("%s was stopped: the task was canceled or the server is "
                  "stopping", name);
    else if (err[0])
      ferry_error("%s", last ? last + 1 : err);
    else if (WIFSIGNALED(status))
      ferry_error("%s was killed", name);
    else
      ferry_error("%s failed without a message", name);
    return NULL;
  }
  res = json_loads(out, 0, NULL);
  if (res == NULL)
    ferry_error("%s printed no JSON result", name);
  return res;
}

/* Run ferry-convert for spec; its JSON result or NULL with the error.
 * Store credentials reach it through the environment, never its command
 * line. */
static json_t *run_convert(struct server *srv, struct task_ctx *t,
                           json_t *spec)
{
  const char *argv[] = {
    srv->convert_bin, "--from",
    json_string_value(json_object_get(spec, "image")), "--format",
    json_string_value(json_object_get(spec, "format")), "--to",
    json_string_value(json_object_get(spec, "output")), "--overwrite",
    "--json", "--quiet", NULL,
  };
  char out[65536];

  if (argv[2] == NULL || argv[4] == NULL || argv[6] == NULL) {
    ferry_error("the convert task's spec lacks its image, format or "
                "output");
    return NULL;
  }
  return child_json(t, "ferry-convert", argv, out, sizeof out);
}

/* Run ferry-prepare for spec (docs/PREPARATION.md): one job event per
 * change it made, its JSON result, or NULL with the error naming the file
 * it could not change. */
static json_t *run_prepare(struct server *srv, struct task_ctx *t,
                           json_t *spec)
{
  const char *argv[48];
  char disk_args[16][600], out[262144];
  const char *target = json_string_value(json_object_get(spec, "target"));
  const char *nic = json_string_value(json_object_get(spec, "nic"));
  json_t *disks = json_object_get(spec, "disks"), *d, *res, *c;
  int argc = 0;
  size_t i;

  if (target == NULL || json_array_size(disks) == 0 ||
      json_array_size(disks) > 16) {
    ferry_error("the prepare task's spec lacks its target or disks");
    return NULL;
  }
  argv[argc++] = srv->prepare_bin;
  argv[argc++] = "--target";
  argv[argc++] = target;
  if (json_is_true(json_object_get(spec, "emulated")))
    argv[argc++] = "--emulated";
  if (nic) {
    argv[argc++] = "--nic";
    argv[argc++] = nic;
  }
  if (json_is_string(json_object_get(spec, "ip"))) {
    argv[argc++] = "--ip";
    argv[argc++] = json_string_value(json_object_get(spec, "ip"));
    if (json_is_string(json_object_get(spec, "gateway"))) {
      argv[argc++] = "--gateway";
      argv[argc++] = json_string_value(json_object_get(spec, "gateway"));
    }
  }
  json_array_foreach(disks, i, d) {
    snprintf(disk_args[i], sizeof disk_args[i], "%s=%s",
             json_string_value(json_object_get(d, "name")),
             json_string_value(json_object_get(d, "image")));
    argv[argc++] = "--disk";
    argv[argc++] = disk_args[i];
  }
  argv[argc++] = "--json";
  argv[argc++] = "--quiet";
  argv[argc] = NULL;
  task_ctx_event(t, "preparing the guest for %s (libguestfs)", target);
  if ((res = child_json(t, "ferry-prepare", argv, out, sizeof out)) == NULL)
    return NULL;
  json_array_foreach(json_object_get(res, "changes"), i, c)
    task_ctx_event(t, "prepared %s: %s (%s)",
                   json_string_value(json_object_get(c, "file")),
                   json_string_value(json_object_get(c, "change")),
                   json_string_value(json_object_get(c, "why")));
  json_array_foreach(json_object_get(res, "notes"), i, c)
    task_ctx_event(t, "prepare: %s", json_string_value(c));
  json_array_foreach(json_object_get(res, "warnings"), i, c)
    task_ctx_event(t, "prepare warning: %s", json_string_value(c));
  return res;
}

static json_t *run_create(struct server *srv, struct task_ctx *t,
                          json_t *spec)
{
  (void)srv;
  return target_create(t, spec);
}

static json_t *run_cleanup(struct server *srv, struct task_ctx *t,
                           json_t *spec)
{
  (void)srv;
  return target_cleanup(t, spec);
}

/* The kinds of task the server runs itself. */
static const struct task_kind {
  const char *name;
  /* The task's result, or NULL with an error. */
  json_t *(*run)(struct server *srv, struct task_ctx *t, json_t *spec);
  int once;             /* a failure is final (a boot check that timed out
                           would only time out again) */
} kinds[] = {
  { "convert", run_convert, 0 },
  /* a guest that cannot be prepared fails the same way again */
  { "prepare", run_prepare, 1 },
  { "create", run_create, 1 },
  { "cleanup", run_cleanup, 1 },
};

static const struct task_kind *kind_lookup(const char *name)
{
  size_t i;

  for (i = 0; name && i < sizeof kinds / sizeof kinds[0]; i++)
    if (strcmp(kinds[i].name, name) == 0)
      return &kinds[i];
  return NULL;
}

/* Record the result of the run that held attempt, if the task is still
 * that run's; one transaction. */
static void record(struct server *srv, long long id, long long attempt,
                   const struct task_kind *k, json_t *result,
                   const char *error)
{
  long long mine = 0;

  db_lock();
  if (db_exec(srv->db, "BEGIN IMMEDIATE") == -1)
    goto fail;
  if (db_get_int(srv->db, &mine, "SELECT state = 'running' AND attempts = "
                 "?2 FROM tasks WHERE id = ?1", "ii", id, attempt) == -1)
    goto rollback;
  if (!mine)
    log_info("task %lld finished, but it was canceled or offered again "
             "meanwhile: this run's result is dropped", id);
  else if (task_finish(srv->db, id, result != NULL, error, result,
                       k == NULL || k->once ? 1 : srv->max_attempts) == NULL)
    goto rollback;
  if (db_exec(srv->db, "COMMIT") == 0) {
    db_unlock();
    return;
  }
rollback:
  ferry_error_prefix("cannot record the result of task %lld (it runs "
                     "again when its lease runs out): ", id);
  log_warn("%s", ferry_errmsg());
  if (sqlite3_get_autocommit(srv->db) == 0)
    db_exec(srv->db, "ROLLBACK");
  db_unlock();
  return;
fail:
  log_warn("cannot record the result of task %lld (it runs again when its "
           "lease runs out): %s", id, ferry_errmsg());
  db_unlock();
}

static void run_task(struct server *srv, json_t *task)
{
  long long id = json_integer_value(json_object_get(task, "id"));
  long long mig = json_integer_value(json_object_get(task, "migration_id"));
  long long host = json_integer_value(json_object_get(task, "host_id"));
  long long attempt = json_integer_value(json_object_get(task, "attempts"));
  const char *kind = json_string_value(json_object_get(task, "kind"));
  const struct task_kind *k = kind_lookup(kind);
  enum task_stop why = TASK_RUNS;
  json_t *result = NULL;
  struct task_ctx *t;
  char error[1024];

  db_lock();
  event_add(srv->db, mig, host, "task", NULL, "%s task %lld started", kind,
            id);
  db_unlock();
  t = task_ctx_start(srv, task);
  if (t != NULL) {
    if (k == NULL)
      ferry_error("unknown task kind '%s'", kind ? kind : "(none)");
    else
      result = k->run(srv, t, json_object_get(task, "spec"));
  }
  snprintf(error, sizeof error, "%s", ferry_errmsg());
  if (t != NULL)
    why = task_ctx_end(t);
  if (result == NULL && why == TASK_SHUTDOWN) {
    db_lock();
    event_add(srv->db, mig, host, "task", NULL, "%s task %lld stopped by "
              "the server's shutdown: it runs again, from the start, when "
              "the server starts", kind, id);
    db_unlock();
    return;
  }
  if (result == NULL && why != TASK_RUNS) {
    log_info("%s task %lld stopped: %s", kind, id,
             why == TASK_CANCELED ? "canceled" : "it lost its lease");
    return;
  }
  record(srv, id, attempt, k, result, error);
  json_decref(result);
}

static void *worker_main(void *arg)
{
  struct server *srv = arg;

  while (!server_stopping(srv)) {
    json_t *task;

    db_lock();
    task = task_claim(srv->db, "server", 0, 0, srv->lease_seconds);
    db_unlock();
    if (task != NULL && !json_is_null(task)) {
      run_task(srv, task);
      json_decref(task);
      server_wake(srv);
      continue;
    }
    if (task == NULL)
      log_warn("cannot claim a task (trying again in a second): %s",
               ferry_errmsg());
    json_decref(task);
    server_nap(srv);
  }
  return NULL;
}

int workers_start(struct server *srv)
{
  unsigned i, n;
  int r;

  /* we are the only server: nothing of ours is still running */
  db_lock();
  r = db_run(srv->db, "UPDATE tasks SET state = 'queued', lease_until = "
             "NULL WHERE runner = 'server' AND state = 'running'", NULL);
  db_unlock();
  if (r == -1) {
    ferry_error_prefix("cannot queue again the tasks the server was "
                       "running: ");
    return -1;
  }
  if (r > 0)
    log_info("%d task(s) interrupted by the last stop queued again", r);
  n = srv->convert_workers < WORKERS_MAX ? srv->convert_workers
                                         : WORKERS_MAX;
  for (i = 0; i < n; i++) {
    if ((errno = pthread_create(&workers[i], NULL, worker_main, srv))) {
      ferry_error("cannot start a worker: %m");
      return -1;
    }
    n_workers = i + 1;
  }
  return 0;
}

void workers_stop(void)
{
  unsigned i;

  for (i = 0; i < n_workers; i++)
    pthread_join(workers[i], NULL);
  n_workers = 0;
}
