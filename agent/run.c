/* run.c - ferry-agent run: the daemon.  Enrolls once, posts its
 * discovery, then long-polls the server for tasks (each poll is a
 * heartbeat), runs them and reports progress and results.  Server
 * restarts and network failures are waited out with backoff; a result is
 * never dropped: it is re-sent until the server has it. */
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "agent.h"
#include "util/cleanup.h"
#include "client.h"
#include "clone/clone.h"
#include "config.h"
#include "discover.h"
#include "metrics.h"
#include "util/error.h"
#include "image/names.h"
#include "net/http_client.h"
#include "util/log.h"
#include "util/parse.h"
#include "source/source.h"
#include "store/grant.h"
#include "store/store.h"

/* Set by the signal handler and read by the main loop, the heartbeat and
 * the clone workers: lock-free atomics, safe in a handler. */
static atomic_int stopping;
static atomic_int *_Atomic current_cancel;

static void on_signal(int sig)
{
  atomic_int *c = current_cancel;

  (void)sig;
  stopping = 1;
  if (c)
    *c = 1;
}

struct task_run {
  struct client *c;
  long long id;
  const char *disk;              /* of a clone or sync */
  atomic_int cancel;
  struct timespec last;
};

static double since(const struct timespec *t)
{
  struct timespec now;

  clock_gettime(CLOCK_MONOTONIC, &now);
  return (double)(now.tv_sec - t->tv_sec) +
         (double)(now.tv_nsec - t->tv_nsec) / 1e9;
}

/* About once a second from the clone; posts every 2 s (a heartbeat too)
 * and stops the clone if the server canceled the task. */
static void on_progress(void *opaque, const struct clone_stats *st)
{
  struct task_run *t = opaque;
  char path[96];
  json_t *body, *resp = NULL;
  double rate = st->seconds > 0 ? (double)st->read_bytes / st->seconds : 0;
  long status;
  const char *state;

  agent_metrics_task(t->disk, st);
  if (since(&t->last) < 2.0 && st->read_bytes < st->alloc_bytes)
    return;
  clock_gettime(CLOCK_MONOTONIC, &t->last);
  snprintf(path, sizeof path, "/v1/agent/tasks/%lld/progress", t->id);
  body = json_pack("{s:I, s:I, s:f, s:f, s:I, s:I, s:I, s:I, s:I}",
                   "done_bytes", (json_int_t)st->read_bytes, "total_bytes",
                   (json_int_t)st->alloc_bytes, "rate", rate, "eta",
                   rate > 0 ? (double)(st->alloc_bytes - st->read_bytes) /
                              rate : 0.0,
                   "sent_bytes", (json_int_t)st->sent_bytes,
                   "zero_chunks", (json_int_t)st->zero_chunks,
                   "sent_chunks", (json_int_t)st->sent_chunks,
                   "reused_chunks", (json_int_t)st->reused_chunks,
                   "carried_chunks", (json_int_t)st->carried_chunks);
  status = client_call(t->c, "POST", path, body, &resp, 1, 20);
  json_decref(body);
  if (t->c->revoked) {
    log_error("task %lld: this agent's token was revoked: stopping the "
              "task", t->id);
    t->cancel = 1;
  }
  state = json_string_value(json_object_get(resp, "state"));
  if (status == 200 && state && strcmp(state, "running") != 0) {
    log_info("task %lld is %s on the server: stopping it", t->id, state);
    t->cancel = 1;
  }
  json_decref(resp);
}

/* The grant store's way to the server: path is relative to the task. */
static long grant_call(void *opaque, const char *method, const char *path,
                       json_t *body, json_t **resp)
{
  struct task_run *t = opaque;
  char full[4200];

  if ((size_t)snprintf(full, sizeof full, "/v1/agent/tasks/%lld/%s", t->id,
                       path) >= sizeof full) {
    ferry_error("grant request path too long");
    return -1;
  }
  return client_call(t->c, method, full, body, resp, 3, 60);
}

/* The task's store: through grants from the server (no credentials on
 * this machine) when the spec says store_access "grant", else opened
 * directly with this machine's own credentials. */
static struct store *task_store(struct task_run *t, json_t *spec,
                                const char *image)
{
  const char *access = json_string_value(json_object_get(spec,
                                                         "store_access"));

  if (access == NULL || strcmp(access, "direct") == 0)
    return store_open(image);
  if (strcmp(access, "grant") == 0)
    return store_grant_open(image, grant_call, t);
  ferry_error("the task's store_access '%.16s' is neither grant nor direct",
              access);
  return NULL;
}

static int spec_options(json_t *opts, const struct agent_config *cfg,
                        struct clone_opts *o)
{
  json_t *v;
  const char *comp = cfg->compress, *rate = cfg->max_rate;
  uint64_t n;

  o->enc = ENC_ZSTD;
  o->jobs = cfg->jobs;
  if ((v = json_object_get(opts, "compress")) && json_is_string(v))
    comp = json_string_value(v);
  if (comp && codec_parse(comp, &o->enc) == -1)
    return -1;
  if ((v = json_object_get(opts, "jobs")) && json_is_integer(v)) {
    json_int_t j = json_integer_value(v);

    if (j < 1 || j > CLONE_JOBS_MAX) {
      ferry_error("jobs must be 1 to %d (not %" JSON_INTEGER_FORMAT ")",
                  CLONE_JOBS_MAX, j);
      return -1;
    }
    o->jobs = (unsigned)j;
  }
  if ((v = json_object_get(opts, "chunk_size"))) {
    if (json_is_integer(v)) {
      json_int_t c = json_integer_value(v);

      if (c < IMAGE_CHUNK_MIN || c > IMAGE_CHUNK_MAX) {
        ferry_error("chunk_size %" JSON_INTEGER_FORMAT " is not a power of "
                    "two from 1M to 64M", c);
        return -1;
      }
      o->chunk_size = (uint32_t)c;
    } else if (json_is_string(v)) {
      if (parse_size(json_string_value(v), &n) == -1) {
        ferry_error_prefix("chunk_size: ");
        return -1;
      }
      o->chunk_size = n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
    }
  }
  if ((v = json_object_get(opts, "max_rate")) && json_is_string(v))
    rate = json_string_value(v);
  if (rate && parse_size(rate, &o->max_rate) == -1) {
    ferry_error_prefix("max_rate: ");
    return -1;
  }
  if (o->chunk_size && (o->chunk_size < IMAGE_CHUNK_MIN ||
                        o->chunk_size > IMAGE_CHUNK_MAX ||
                        (o->chunk_size & (o->chunk_size - 1)))) {
    ferry_error("chunk_size %u is not a power of two from 1M to 64M",
                o->chunk_size);
    return -1;
  }
  return 0;
}

/* The server names the disk to read, and the agent runs as root: it reads
 * only a disk it discovered or one its configuration maps (disk.NAME), and
 * never a path ("/etc/shadow", "../x").  0 if disk may be read. */
static int disk_allowed(const struct agent_config *cfg, json_t *inv,
                        const char *disk)
{
  json_t *d;
  size_t i;
  int k;

  if (diskname_check(disk, strlen(disk)) == -1) {
    ferry_error_prefix("the task's disk name ");
    return -1;
  }
  for (k = 0; k < cfg->n_disks; k++)
    if (strcmp(cfg->disks[k][0], disk) == 0)
      return 0;
  json_array_foreach(json_object_get(inv, "disks"), i, d)
    if (json_is_string(json_object_get(d, "name")) &&
        strcmp(json_string_value(json_object_get(d, "name")), disk) == 0)
      return 0;
  ferry_error("the task's disk '%s' is not one this agent discovered or "
              "has in its configuration (disk.%s): not reading it", disk,
              disk);
  return -1;
}

/* Run a clone or sync task; result JSON or NULL with an error.  A sync
 * compares with (and, with a dirty bitmap, carries from) the previous
 * generation; the final sync of a cutover quiesces a local block device
 * source for its read. */
static json_t *run_clone(struct task_run *t, json_t *spec,
                         const struct agent_config *cfg, json_t *inv,
                         int sync)
{
  const char *disk = json_string_value(json_object_get(spec, "disk"));
  const char *image = json_string_value(json_object_get(spec, "image"));
  CLEANUP_FREE char *source = NULL;
  struct clone_opts o = { .cancel = &t->cancel, .use_changes = sync };
  struct source_opts so = { 0 };
  struct clone_stats st;
  struct stat sst;
  int quiesce = json_is_true(json_object_get(spec, "quiesce"));
  struct source *src = NULL;
  struct store *store = NULL;
  char hex[DIGEST_HEX_LEN + 1];
  json_t *res = NULL;

  if (disk == NULL || image == NULL) {
    ferry_error("clone task without disk or image");
    return NULL;
  }
  if (disk_allowed(cfg, inv, disk) == -1 ||
      spec_options(json_object_get(spec, "options"), cfg, &o) == -1)
    return NULL;
  source = config_disk_source(cfg, disk);
  if (source == NULL)
    goto out;
  so.bitmap = sync ? config_disk_bitmap(cfg, disk) : NULL;
  if ((src = source_open_opts(source, &so)) == NULL ||
      (store = task_store(t, spec, image)) == NULL)
    goto out;
  if (quiesce && (stat(source, &sst) == -1 || !S_ISBLK(sst.st_mode))) {
    log_warn("task %lld: %s is not a local block device: not freezing "
             "anything for the final sync (stop the services writing to "
             "it, or let the hypervisor quiesce the guest)", t->id, source);
    quiesce = 0;
  }
  o.src = src;
  o.store = store;
  o.progress = on_progress;
  o.opaque = t;
  t->disk = disk;
  log_info("task %lld: %s %s (%s) to %s", t->id,
           sync ? "syncing" : "cloning", disk, source, image);
  if (agent_clone(&o, source, quiesce, NULL, 0, &st) == -1) {
    agent_metrics_task_end(disk, NULL);
    ferry_error_prefix("clone %s to %s: ", source, image);
    goto out;
  }
  agent_metrics_task_end(disk, &st);
  digest_to_hex(st.manifest.image_digest, hex);
  res = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:s, s:f,"
                  " s:b, s:I, s:I, s:I, s:b, s:I, s:I, s:I}",
                  "disk", disk, "image", image,
                  "disk_size", (json_int_t)st.disk_size,
                  "data_bytes", (json_int_t)st.manifest.data_bytes,
                  "read_bytes", (json_int_t)st.read_bytes,
                  "sent_bytes", (json_int_t)st.sent_bytes,
                  "reused_chunks", (json_int_t)st.reused_chunks,
                  "stored_bytes", (json_int_t)st.manifest.stored_bytes,
                  "generation", (json_int_t)st.manifest.generation,
                  "image_digest", hex, "seconds", st.seconds,
                  "incremental", st.incremental,
                  "changed_chunks", (json_int_t)st.changed_chunks,
                  "changed_bytes", (json_int_t)st.changed_bytes,
                  "carried_chunks", (json_int_t)st.carried_chunks,
                  "quiesced", quiesce,
                  "chunks", (json_int_t)st.chunks,
                  "zero_chunks", (json_int_t)st.zero_chunks,
                  "sent_chunks", (json_int_t)st.sent_chunks);
  log_info("task %lld: %s cloned, %" PRIu64 " bytes sent in %.1f s", t->id,
           disk, st.sent_bytes, st.seconds);
out:
  source_close(src);
  store_close(store);
  return res;
}

/* Deliver a task's result, retrying until the server has it. */
static void report(struct client *c, long long id, json_t *result,
                   const char *error)
{
  char path[96];
  json_t *body;
  long status;

  snprintf(path, sizeof path, "/v1/agent/tasks/%lld/result", id);
  body = result ? json_pack("{s:s, s:O}", "status", "succeeded", "result",
                            result)
                : json_pack("{s:s, s:s}", "status", "failed", "error",
                            error);
  for (;;) {
    status = client_call(c, "POST", path, body, NULL, 3, 30);
    if (status > 0 || stopping)
      break;
    log_warn("cannot report task %lld yet: %s; retrying", id,
             ferry_errmsg());
  }
  if (status == 409)
    log_info("task %lld was canceled or reassigned meanwhile", id);
  else if (status >= 400)
    log_warn("task %lld result refused: %s", id, ferry_errmsg());
  json_decref(body);
}

static int post_discovery(struct client *c, json_t *inv)
{
  const char *hn = json_string_value(json_object_get(inv, "hostname"));
  json_t *resp = NULL;
  long status;

  status = client_call(c, "POST", "/v1/agent/discovery", inv, &resp, 3, 60);
  if (status == 401 && client_reenroll(c, hn) == 0)
    status = client_call(c, "POST", "/v1/agent/discovery", inv, &resp, 3,
                         60);
  if (status != 201) {
    json_decref(resp);
    return -1;
  }
  log_info("discovery posted: host %lld",
           (long long)json_integer_value(json_object_get(resp, "host_id")));
  json_decref(resp);
  return 0;
}

static void usage(FILE *fp)
{
  fprintf(fp,
    "usage: ferry-agent run [--config PATH] [--server URL]\n"
    "\n"
    "Run as the agent daemon: enroll with the server (once), post this\n"
    "server's discovery, then wait for tasks and run them.  Settings come\n"
    "from " AGENT_CONF_DEFAULT " (or --config / $FERRY_AGENT_CONF).\n");
}

int cmd_run(int argc, char **argv)
{
  static const struct option longopts[] = {
    { "config", required_argument, NULL, 'c' },
    { "server", required_argument, NULL, 's' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
  };
  const char *config = NULL, *server = NULL;
  struct agent_config cfg;
  struct client cl;
  struct sigaction sa = { .sa_handler = on_signal };
  json_t *inv = NULL;
  const char *hn;
  unsigned failures = 0;
  int c, rc = 0;

  log_init("ferry-agent", 1);
  opterr = 0;
  while ((c = getopt_long(argc, argv, "c:s:h", longopts, NULL)) != -1) {
    switch (c) {
    case 'c': config = optarg; break;
    case 's': server = optarg; break;
    case 'h': usage(stdout); return 0;
    default:
      fprintf(stderr, "ferry-agent run: unknown or incomplete option %s "
              "(see --help)\n", argv[optind - 1]);
      return EXIT_USAGE;
    }
  }
  if (config_load(&cfg, config) == -1 ||
      client_init(&cl, &cfg, server) == -1) {
    fprintf(stderr, "ferry-agent: %s\n", ferry_errmsg());
    config_free(&cfg);
    return 1;
  }
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
  if (cfg.metrics_listen && agent_metrics_start(cfg.metrics_listen) == -1) {
    fprintf(stderr, "ferry-agent: %s: %s\n", cfg.path ? cfg.path : "config",
            ferry_errmsg());
    client_free(&cl);
    config_free(&cfg);
    return 1;
  }

  inv = discover_inventory(cfg.root);
  hn = inv ? json_string_value(json_object_get(inv, "hostname")) : NULL;
  if (hn == NULL) {
    fprintf(stderr, "ferry-agent: cannot tell this server's hostname from "
            "%s: check the root setting\n", cfg.root);
    rc = 1;
    goto out;
  }
  /* enroll and announce ourselves, waiting out an absent server */
  while (!stopping && (client_ensure_token(&cl, hn) == -1 ||
                       post_discovery(&cl, inv) == -1)) {
    if (cl.revoked)
      goto revoked;
    if (cl.trust_fatal) {
      fprintf(stderr, "ferry-agent: %s\n", ferry_errmsg());
      rc = 1;
      goto out;
    }
    log_warn("%s; retrying", ferry_errmsg());
    http_backoff(++failures, 1000, 30000);
  }
  failures = 0;
  while (!stopping) {
    char path[64];
    json_t *resp = NULL, *task;
    long status;

    snprintf(path, sizeof path, "/v1/agent/tasks?wait=%u", cfg.poll_wait);
    status = client_call(&cl, "GET", path, NULL, &resp, 1,
                         (long)cfg.poll_wait + 15);
    if (stopping) {
      json_decref(resp);
      break;
    }
    if (status < 0 || status >= 500) {
      log_warn("%s; retrying", ferry_errmsg());
      http_backoff(++failures, 1000, 30000);
      continue;
    }
    failures = 0;
    if (status == 401 || status == 409) {
      /* the server forgot us or our host: enroll/announce again */
      json_decref(resp);
      if ((status == 401 && client_reenroll(&cl, hn) == -1) ||
          post_discovery(&cl, inv) == -1) {
        if (cl.revoked)
          goto revoked;
        log_warn("%s; retrying", ferry_errmsg());
        http_backoff(++failures, 1000, 30000);
      }
      continue;
    }
    task = json_object_get(resp, "task");
    if (status == 200 && json_is_true(json_object_get(resp,
                                                      "rotate_token"))) {
      /* an admin asked for it (ferry agent rotate) */
      if (client_rotate(&cl) == -1)
        log_warn("%s", ferry_errmsg());
    } else if (status == 200 && json_is_object(task)) {
      struct task_run t = {
        .c = &cl, .id = json_integer_value(json_object_get(task, "id")),
      };
      const char *kind = json_string_value(json_object_get(task, "kind"));
      json_t *result = NULL;

      clock_gettime(CLOCK_MONOTONIC, &t.last);
      current_cancel = &t.cancel;
      if (kind && (strcmp(kind, "clone") == 0 || strcmp(kind, "sync") == 0))
        result = run_clone(&t, json_object_get(task, "spec"), &cfg, inv,
                           strcmp(kind, "sync") == 0);
      else
        ferry_error("this agent cannot run '%s' tasks",
                    kind ? kind : "unnamed");
      current_cancel = NULL;
      if (stopping) {
        /* the server re-offers it when our lease runs out */
        log_info("task %lld interrupted by shutdown", t.id);
        json_decref(result);
        json_decref(resp);
        break;
      }
      if (result == NULL)
        log_warn("task %lld failed: %s", t.id, ferry_errmsg());
      if (!(t.cancel && result == NULL))
        report(&cl, t.id, result, ferry_errmsg());
      json_decref(result);
    }
    json_decref(resp);
  }
  log_info("stopping");
out:
  agent_metrics_stop();
  json_decref(inv);
  client_free(&cl);
  config_free(&cfg);
  return rc;
revoked:
  log_error("%s", ferry_errmsg());
  rc = 1;
  goto out;
}
