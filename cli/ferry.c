/* ferry - the operator's command line over ferry-server's REST API.
 *
 * The operator token comes from $FERRY_TOKEN_FILE (a file of mode 0600,
 * default ./operator.token) or $FERRY_TOKEN; never from the command line,
 * where ps would show it.  The server from --server or $FERRY_SERVER.
 *
 * An https:// server is trusted through the CA in --ca-file or
 * $FERRY_CA_FILE, else the ca.pem ferry-server made beside the token file
 * when there is one (the CLI on the server's machine), else the system's
 * CAs. */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "util/cleanup.h"
#include "util/error.h"
#include "net/http_client.h"
#include "net/tls_pin.h"
#include "util/parse.h"
#include "util/progress.h"
#include "util/token_file.h"

#define EXIT_USAGE 2

static const char *server_url;
static const char *project;          /* --project or $FERRY_PROJECT */
static const char *ca_file;
static char *ca_beside_token;
static char token[256];
static int json_out;

static int load_token(void)
{
  const char *env = getenv("FERRY_TOKEN"), *path;

  path = getenv("FERRY_TOKEN_FILE");
  if (path == NULL)
    path = "operator.token";
  if (ca_file == NULL && strncmp(server_url, "https://", 8) == 0) {
    const char *slash = strrchr(path, '/');

    if (asprintf(&ca_beside_token, "%.*sca.pem",
                 slash ? (int)(slash - path + 1) : 0, path) == -1)
      ca_beside_token = NULL;
    else if (access(ca_beside_token, R_OK) == 0)
      ca_file = ca_beside_token;
  }
  if (env && *env) {
    snprintf(token, sizeof token, "%s", env);
    return 0;
  }
  if (token_file_read(path, token, sizeof token) == -1) {
    if (errno == ENOENT || errno == EACCES)
      ferry_error("cannot read the operator token %s: %m (set "
                  "FERRY_TOKEN_FILE to ferry-server's operator.token)", path);
    return -1;
  }
  return 0;
}

/* One API call; the status (and parsed body: on an error status only a
 * 422's) or -1 with an error. */
/* The headers of every API request: the token, the body's type, the
 * project; -1 on OOM. */
static int api_headers(struct curl_slist **hdrs, const char *content_type)
{
  return (token[0] &&
          http_header_add(hdrs, "Authorization: Bearer %s", token) == -1) ||
         (content_type &&
          http_header_add(hdrs, "Content-Type: %s", content_type) == -1) ||
         (project &&
          http_header_add(hdrs, "X-Ferry-Project: %s", project) == -1)
         ? -1 : 0;
}

static long call(const char *method, const char *path, const char *body,
                 const char *content_type, json_t **out)
{
  CLEANUP_FREE char *url = NULL;
  struct curl_slist *hdrs = NULL;
  struct http_response r;
  struct http_request req = {
    .method = method, .body = body, .body_len = body ? strlen(body) : 0,
    .timeout = 60, .body_cap = 16u << 20,
  };
  long status;

  *out = NULL;
  req.ca_file = ca_file;
  if (asprintf(&url, "%s%s", server_url, path) == -1 ||
      api_headers(&hdrs, content_type) == -1) {
    curl_slist_free_all(hdrs);
    ferry_error("out of memory");
    return -1;
  }
  req.url = url;
  req.headers = hdrs;
  if (http_do(&req, &r) == -1) {
    http_response_free(&r);
    curl_slist_free_all(hdrs);
    if (strncmp(server_url, "https://", 8) == 0 && ca_file == NULL)
      ferry_error_prefix("cannot reach ferry-server (check --server or "
                         "FERRY_SERVER; its private CA goes in --ca-file "
                         "or FERRY_CA_FILE): ");
    else
      ferry_error_prefix("cannot reach ferry-server (check --server or "
                         "FERRY_SERVER): ");
    return -1;
  }
  curl_slist_free_all(hdrs);
  status = r.status;
  if (r.body && r.body_len)
    *out = json_loads(r.body, 0, NULL);
  http_response_free(&r);
  if (status >= 400) {
    const char *m = json_string_value(json_object_get(
      json_object_get(*out, "error"), "message"));

    ferry_error("%s %s: HTTP %ld: %s", method, path, status,
                m ? m : "no message");
    /* the error is in the message; only a blueprint's 422 has more */
    if (status != 422) {
      json_decref(*out);
      *out = NULL;
    }
  }
  return status;
}

static void print_json(json_t *j)
{
  char *t = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

  if (t) {
    puts(t);
    free(t);
  }
}

static const char *s(json_t *o, const char *k)
{
  const char *v = json_string_value(json_object_get(o, k));

  return v ? v : "-";
}

static long long n(json_t *o, const char *k)
{
  return json_integer_value(json_object_get(o, k));
}

static int cmd_hosts(int argc, char **argv)
{
  json_t *r, *h;
  size_t i;

  (void)argc;
  (void)argv;
  if (call("GET", "/v1/hosts", NULL, NULL, &r) != 200)
    return 1;
  if (json_out) {
    print_json(r);
  } else {
    printf("%-4s %-24s %-34s %-6s %s\n", "ID", "HOSTNAME", "OS", "DISKS",
           "LAST SEEN");
    json_array_foreach(json_object_get(r, "hosts"), i, h)
      printf("%-4lld %-24s %-34.34s %-6zu %s\n", n(h, "id"), s(h, "hostname"),
             s(h, "os"), json_array_size(json_object_get(h, "disks")),
             s(h, "last_seen"));
  }
  json_decref(r);
  return 0;
}

static int cmd_host_show(int argc, char **argv)
{
  char path[128];
  json_t *r;

  if (argc != 2) {
    fprintf(stderr, "ferry: usage: ferry host show ID\n");
    return EXIT_USAGE;
  }
  snprintf(path, sizeof path, "/v1/hosts/%s", argv[1]);
  if (call("GET", path, NULL, NULL, &r) != 200)
    return 1;
  print_json(r);
  json_decref(r);
  return 0;
}

static char *read_file(const char *path)
{
  FILE *fp = fopen(path, "re");
  char *buf;
  size_t len;

  if (fp == NULL) {
    ferry_error("cannot read %s: %m", path);
    return NULL;
  }
  buf = malloc(4u << 20);
  if (buf == NULL) {
    fclose(fp);
    ferry_error("out of memory");
    return NULL;
  }
  len = fread(buf, 1, (4u << 20) - 1, fp);
  fclose(fp);
  buf[len] = '\0';
  return buf;
}

/* Findings as FILE:LINE: path: message, errors first. */
static int print_findings(const char *file, json_t *findings)
{
  json_t *f;
  size_t i;
  int errors = 0;

  json_array_foreach(findings, i, f) {
    json_t *line = json_object_get(f, "line");

    if (strcmp(s(f, "severity"), "error") == 0)
      errors++;
    if (json_is_integer(line))
      fprintf(stderr, "%s:%lld: %s%s%s: %s\n", file,
              (long long)json_integer_value(line), s(f, "severity"),
              *s(f, "path") ? ": " : "", s(f, "path"), s(f, "message"));
    else
      fprintf(stderr, "%s: %s: %s: %s\n", file, s(f, "severity"),
              s(f, "path"), s(f, "message"));
  }
  return errors;
}

static int cmd_blueprint(int argc, char **argv)
{
  CLEANUP_FREE char *text = NULL;
  const char *sub = argc > 1 ? argv[1] : "";
  json_t *r;
  long st;
  int errors;

  if (argc == 2 && strcmp(sub, "list") == 0) {
    json_t *b;
    size_t i;

    if (call("GET", "/v1/blueprints", NULL, NULL, &r) != 200)
      return 1;
    json_array_foreach(json_object_get(r, "blueprints"), i, b)
      printf("%-4lld %-24s %-10s %s\n", n(b, "id"), s(b, "name"),
             s(b, "provider"), s(b, "updated"));
    json_decref(r);
    return 0;
  }
  if (argc != 3 || (strcmp(sub, "validate") && strcmp(sub, "apply"))) {
    fprintf(stderr, "ferry: usage: ferry blueprint validate|apply FILE, "
            "or ferry blueprint list\n");
    return EXIT_USAGE;
  }
  text = read_file(argv[2]);
  if (text == NULL)
    return 1;
  st = call("POST", strcmp(sub, "validate") == 0 ? "/v1/blueprints/validate"
                                                 : "/v1/blueprints",
            text, "application/yaml", &r);
  if (st < 0 || (st >= 400 && st != 422)) {
    json_decref(r);
    return 1;
  }
  errors = print_findings(argv[2], json_object_get(r, "findings"));
  if (json_out)
    print_json(r);
  if (errors == 0 && st < 400) {
    if (strcmp(sub, "apply") == 0)
      printf("blueprint %s applied (id %lld)\n", s(r, "name"), n(r, "id"));
    else
      printf("%s: valid\n", argv[2]);
  } else {
    fprintf(stderr, "%s: %d error(s)\n", argv[2], errors);
  }
  json_decref(r);
  return errors || st >= 400 ? 1 : 0;
}

static int cmd_migrate(int argc, char **argv)
{
  const char *bp = NULL, *host = NULL;
  CLEANUP_FREE char *body = NULL;
  json_t *req, *r;
  int i, test = 0;

  for (i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--blueprint") == 0 && i + 1 < argc)
      bp = argv[++i];
    else if (strcmp(argv[i], "--test") == 0)
      test = 1;
    else if (host == NULL && argv[i][0] != '-')
      host = argv[i];
    else
      host = NULL, bp = NULL, i = argc;
  }
  if (host == NULL || bp == NULL) {
    fprintf(stderr, "ferry: usage: ferry migrate HOST --blueprint NAME "
            "[--test]\n");
    return EXIT_USAGE;
  }
  req = json_pack("{s:s, s:s, s:b}", "host", host, "blueprint", bp, "test",
                  test);
  body = json_dumps(req, JSON_COMPACT);
  json_decref(req);
  if (call("POST", "/v1/migrations", body, "application/json", &r) != 201) {
    json_decref(r);
    return 1;
  }
  printf("%smigration %lld of %s started (watch it: ferry job watch "
         "%lld)\n", test ? "test " : "", n(r, "id"), host, n(r, "id"));
  if (test)
    printf("its instance is %s-test; remove it with ferry target cleanup "
           "%lld before the real migration\n", host, n(r, "id"));
  json_decref(r);
  return 0;
}

static int cmd_jobs(int argc, char **argv)
{
  char a[24], b[24];
  json_t *r, *m;
  size_t i;

  (void)argc;
  (void)argv;
  if (call("GET", "/v1/migrations", NULL, NULL, &r) != 200)
    return 1;
  if (json_out) {
    print_json(r);
  } else {
    printf("%-4s %-20s %-14s %-11s %-10s %-21s %s\n", "ID", "HOST",
           "BLUEPRINT", "PHASE", "STATE", "PROGRESS", "ERROR");
    json_array_foreach(json_object_get(r, "migrations"), i, m)
      printf("%-4lld %-20s %-14s %-11s %-10s %9s/%-11s %s\n", n(m, "id"),
             s(m, "hostname"), s(m, "blueprint"), s(m, "phase"),
             s(m, "state"), human_bytes((uint64_t)n(m, "done_bytes"), a,
                                        sizeof a),
             human_bytes((uint64_t)n(m, "total_bytes"), b, sizeof b),
             json_is_string(json_object_get(m, "error")) ? s(m, "error")
                                                        : "");
  }
  json_decref(r);
  return 0;
}

static int cmd_job_show(const char *id)
{
  char path[128];
  json_t *r, *e;
  size_t i;

  snprintf(path, sizeof path, "/v1/migrations/%s", id);
  if (call("GET", path, NULL, NULL, &r) != 200)
    return 1;
  if (json_out) {
    print_json(r);
  } else {
    printf("migration %lld: %s -> %s, phase %s, %s\n", n(r, "id"),
           s(r, "hostname"), s(r, "blueprint"), s(r, "phase"),
           s(r, "state"));
    if (json_is_string(json_object_get(r, "error")))
      printf("error: %s\n", s(r, "error"));
    if (n(r, "warm")) {
      char d[24];

      printf("warm: %lld sync(s), last at %s: %s changed in %.1f s "
             "(estimated final sync %.0f s)%s%s\n", n(r, "syncs"),
             s(r, "last_sync"),
             human_bytes((uint64_t)n(r, "last_delta_bytes"), d, sizeof d),
             json_number_value(json_object_get(r, "last_sync_seconds")),
             json_number_value(json_object_get(r, "last_sync_seconds")),
             json_is_string(json_object_get(r, "next_sync")) &&
               !n(r, "cutover") ? ", next sync " : "",
             json_is_string(json_object_get(r, "next_sync")) &&
               !n(r, "cutover") ? s(r, "next_sync") : "");
    }
    json_array_foreach(json_object_get(r, "tasks"), i, e) {
      json_t *res = json_object_get(e, "result");
      const char *key;
      json_t *v;

      if (strcmp(s(e, "kind"), "create") != 0 || !json_is_object(res))
        continue;
      printf("instance:");
      json_object_foreach(res, key, v)
        if (json_is_string(v))
          printf(" %s=%s", key, json_string_value(v));
      printf("\n");
    }
    json_array_foreach(json_object_get(r, "resources"), i, e)
      printf("resource: %s %s %s (%s, %s)\n", s(e, "kind"), s(e, "name"),
             s(e, "id"), s(e, "scope"), s(e, "state"));
    json_array_foreach(json_object_get(r, "events"), i, e)
      printf("  %s  %-11s %s\n", s(e, "time"), s(e, "phase"),
             s(e, "message"));
  }
  json_decref(r);
  return 0;
}

/* An event stream's bytes: ends the request at the first event (a
 * message whose "event:" field is "event"), or at progress when the
 * caller draws a bar and the wait is old enough (the stream sends running
 * tasks' progress at once: without that floor a bar would poll), never
 * at the "retry:" line or a keep-alive comment. */
struct stream_wait {
  char line[24];                       /* the current line's start */
  size_t len;
  int kind;                            /* of the message: 1 event, 2 progress */
  int progress_wakes;
  time_t progress_after;
};

static int stream_bytes(void *cls, const char *data, size_t n)
{
  struct stream_wait *w = cls;
  size_t i;

  for (i = 0; i < n; i++) {
    if (data[i] == '\n') {
      if (w->len == 0) {
        if (w->kind == 1 || (w->kind == 2 && w->progress_wakes &&
                             time(NULL) >= w->progress_after))
          return -1;
        w->kind = 0;
      }
      if (w->len == 12 && memcmp(w->line, "event: event", 12) == 0)
        w->kind = 1;
      else if (w->len == 15 && memcmp(w->line, "event: progress", 15) == 0)
        w->kind = 2;
      w->len = 0;
    } else if (w->len < sizeof w->line) {
      w->line[w->len++] = data[i];
    }
  }
  return 0;
}

/* Wait until migration id has news after event `after` (an event, or with
 * progress its running tasks' progress, every 2 s at most), at most
 * seconds: GET /v1/events/stream instead of polling.  0 when woken or
 * the wait ran out, -1 when the stream cannot be had (then the caller
 * polls). */
static int wait_for_news(const char *id, long long after, unsigned seconds,
                         int progress)
{
  CLEANUP_FREE char *url = NULL;
  struct curl_slist *hdrs = NULL;
  struct stream_wait w = { 0 };
  struct http_response r;
  struct http_request req = {
    .method = "GET", .timeout = (long)seconds, .ca_file = ca_file,
    .on_data = stream_bytes, .on_data_cls = &w,
  };
  int rc;

  if (asprintf(&url, "%s/v1/events/stream?migration=%s&after=%lld",
               server_url, id, after) == -1 ||
      api_headers(&hdrs, NULL) == -1) {
    curl_slist_free_all(hdrs);
    return -1;
  }
  req.url = url;
  req.headers = hdrs;
  w.progress_wakes = progress;
  w.progress_after = time(NULL) + 2;
  (void)http_do(&req, &r);
  /* ended by us (news), by the clock or by the server: all a wake-up */
  rc = r.status == 200 ? 0 : -1;
  http_response_free(&r);
  curl_slist_free_all(hdrs);
  return rc;
}

/* Follow a job: new events as they happen and a progress bar; exit 0
 * when it is done, 1 when it failed or was canceled.  Between reads it
 * waits on the event stream, so an idle job costs the server nothing. */
static int cmd_job_watch(const char *id, unsigned timeout)
{
  char path[128];
  long long last_event = 0;
  time_t start = time(NULL);
  int tty = isatty(STDOUT_FILENO), drawn = 0;
  unsigned wait;

  snprintf(path, sizeof path, "/v1/migrations/%s", id);
  for (;;) {
    const char *state;
    json_t *r, *e;
    size_t i;
    int rc = -1;

    if (call("GET", path, NULL, NULL, &r) != 200)
      return 1;
    json_array_foreach(json_object_get(r, "events"), i, e)
      if (n(e, "id") > last_event) {
        if (drawn)
          printf("\r%-79s\r", "");
        printf("%s  %-11s %s\n", s(e, "time"), s(e, "phase"),
               s(e, "message"));
        last_event = n(e, "id");
        drawn = 0;
      }
    state = s(r, "state");
    if (strcmp(state, "done") == 0)
      rc = 0;
    else if (strcmp(state, "failed") == 0 || strcmp(state, "canceled") == 0)
      rc = 1;
    if (tty && rc < 0) {
      long long done = n(r, "done_bytes"), total = n(r, "total_bytes");
      double frac = total > 0 ? (double)done / (double)total : 0;
      double rate = 0;
      char a[24], b[24], c[24], bar[31];
      json_t *t;

      json_array_foreach(json_object_get(r, "tasks"), i, t)
        if (strcmp(s(t, "state"), "running") == 0)
          rate += json_number_value(json_object_get(t, "rate"));
      for (i = 0; i < 30; i++)
        bar[i] = (double)i < frac * 30 ? '#' : '.';
      bar[30] = '\0';
      printf("\r[%s] %5.1f%% %s/%s %s/s %s", bar, 100 * frac,
             human_bytes((uint64_t)done, a, sizeof a),
             human_bytes((uint64_t)total, b, sizeof b),
             human_bytes((uint64_t)rate, c, sizeof c), s(r, "phase"));
      if (rate > 0 && total > done)
        printf(" ETA %.0fs", (double)(total - done) / rate);
      printf("   ");
      fflush(stdout);
      drawn = 1;
    }
    if (rc >= 0) {
      if (drawn)
        printf("\n");
      if (rc)
        fprintf(stderr, "ferry: migration %s %s%s%s\n", id, state,
                json_is_string(json_object_get(r, "error")) ? ": " : "",
                json_is_string(json_object_get(r, "error"))
                  ? s(r, "error") : "");
      else
        printf("migration %s done\n", id);
      json_decref(r);
      return rc;
    }
    json_decref(r);
    if (timeout && time(NULL) - start > (time_t)timeout) {
      fprintf(stderr, "ferry: still running after %u s (ferry job watch %s "
              "to keep following)\n", timeout, id);
      return 1;
    }
    wait = 600;
    if (timeout && (unsigned)(time(NULL) - start) + wait > timeout)
      wait = timeout - (unsigned)(time(NULL) - start) + 1;
    if (wait_for_news(id, last_event, wait, tty) == -1)
      sleep(1);
  }
}

static int cmd_job(int argc, char **argv)
{
  unsigned timeout = 0;

  if (argc >= 3 && strcmp(argv[1], "show") == 0)
    return cmd_job_show(argv[2]);
  if (argc == 3 && strcmp(argv[1], "watch") == 0)
    return cmd_job_watch(argv[2], 0);
  if (argc == 5 && strcmp(argv[1], "watch") == 0 &&
      strcmp(argv[3], "--timeout") == 0) {
    if (parse_uint("--timeout", argv[4], 0, 30 * 86400, &timeout) == -1) {
      fprintf(stderr, "ferry: %s\n", ferry_errmsg());
      return EXIT_USAGE;
    }
    return cmd_job_watch(argv[2], timeout);
  }
  fprintf(stderr, "ferry: usage: ferry job show ID | ferry job watch ID "
          "[--timeout SECONDS]\n");
  return EXIT_USAGE;
}

static int cmd_action(int argc, char **argv)
{
  char path[128];
  json_t *r;

  if (argc != 2) {
    fprintf(stderr, "ferry: usage: ferry %s ID\n", argv[0]);
    return EXIT_USAGE;
  }
  snprintf(path, sizeof path, "/v1/migrations/%s/%s", argv[1], argv[0]);
  if (call("POST", path, "{}", "application/json", &r) != 200) {
    json_decref(r);
    return 1;
  }
  printf("migration %s: %s%s%s\n", argv[1], s(r, "state"),
         json_is_string(json_object_get(r, "phase")) ? ", phase " : "",
         json_is_string(json_object_get(r, "phase")) ? s(r, "phase") : "");
  json_decref(r);
  return 0;
}

static int cmd_project(int argc, char **argv)
{
  CLEANUP_FREE char *body = NULL;
  json_t *r, *p;
  size_t i;

  if (argc == 2 && strcmp(argv[1], "list") == 0) {
    if (call("GET", "/v1/projects", NULL, NULL, &r) != 200)
      return 1;
    if (json_out) {
      print_json(r);
    } else {
      printf("%-4s %-24s %-6s %-10s %s\n", "ID", "NAME", "HOSTS",
             "MIGRATIONS", "CREATED");
      json_array_foreach(json_object_get(r, "projects"), i, p)
        printf("%-4lld %-24s %-6lld %-10lld %s\n", n(p, "id"), s(p, "name"),
               n(p, "hosts"), n(p, "migrations"), s(p, "created"));
    }
    json_decref(r);
    return 0;
  }
  if (argc == 3 && strcmp(argv[1], "create") == 0) {
    json_t *req = json_pack("{s:s}", "name", argv[2]);

    body = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    if (call("POST", "/v1/projects", body, "application/json", &r) != 201) {
      json_decref(r);
      return 1;
    }
    printf("project %s created (id %lld)\n", s(r, "name"), n(r, "id"));
    json_decref(r);
    return 0;
  }
  fprintf(stderr, "ferry: usage: ferry project list | ferry project create "
          "NAME\n");
  return EXIT_USAGE;
}

/* A duration: N, Ns, Nm, Nh or Nd, in seconds; -1 with an error. */
static long long parse_duration(const char *what, const char *text)
{
  static const struct { char unit; long long secs; } units[] = {
    { 's', 1 }, { 'm', 60 }, { 'h', 3600 }, { 'd', 86400 },
  };
  char *end;
  long long v;
  size_t i;

  errno = 0;
  v = strtoll(text, &end, 10);
  if (errno == 0 && end != text && v > 0 && v <= 366LL * 86400) {
    if (*end == '\0')
      return v;
    for (i = 0; i < sizeof units / sizeof units[0]; i++)
      if (end[0] == units[i].unit && end[1] == '\0' &&
          v <= 366LL * 86400 / units[i].secs)
        return v * units[i].secs;
  }
  ferry_error("%s '%s' is not a duration up to a year (such as 90s, 30m, "
              "1h or 7d)", what, text);
  return -1;
}

/* Hand a new token to the operator: into out (mode 0600, never over an
 * existing file) or on stdout, alone on its line. */
static int show_token(json_t *r, const char *out)
{
  const char *tok = json_string_value(json_object_get(r, "token"));

  if (tok == NULL) {
    ferry_error("the server's answer holds no token");
    return 1;
  }
  if (out && token_file_write(out, tok, 0) == -1)
    return 1;
  fprintf(stderr, "%s token %lld%s%s in project %s%s%s%s%s\n",
          s(r, "kind"), n(r, "id"), json_is_string(json_object_get(r, "role"))
          ? ", role " : "", json_is_string(json_object_get(r, "role"))
          ? s(r, "role") : "", s(r, "project"),
          json_is_string(json_object_get(r, "expires")) ? ", expires " : "",
          json_is_string(json_object_get(r, "expires")) ? s(r, "expires")
                                                        : "",
          out ? ": written to " : " (shown once; it is not stored):",
          out ? out : "");
  if (out == NULL)
    printf("%s\n", tok);
  return 0;
}

static int token_create(int argc, char **argv, const char *role_dflt,
                        const char *name_dflt, int enroll_dflt)
{
  const char *role = role_dflt, *name = name_dflt, *out = NULL;
  CLEANUP_FREE char *body = NULL;
  long long ttl = 0;
  unsigned uses = 0;
  int enroll = enroll_dflt, i, rc;
  json_t *req, *r;

  for (i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

    if (strcmp(a, "--enroll") == 0) {
      enroll = 1;
      continue;
    }
    if (v == NULL)
      goto usage;
    i++;
    if (strcmp(a, "--role") == 0) {
      role = v;
    } else if (strcmp(a, "--name") == 0) {
      name = v;
    } else if (strcmp(a, "--out") == 0) {
      out = v;
    } else if (strcmp(a, "--project") == 0) {
      project = v;
    } else if (strcmp(a, "--ttl") == 0) {
      if ((ttl = parse_duration("--ttl", v)) == -1)
        goto bad_value;
    } else if (strcmp(a, "--uses") == 0) {
      if (parse_uint("--uses", v, 1, 1000000, &uses) == -1)
        goto bad_value;
    } else {
      goto usage;
    }
  }
  if (enroll == (role != NULL) || (uses && !enroll))
    goto usage;
  req = json_pack("{s:s}", "kind", enroll ? "enroll" : "operator");
  if (role)
    json_object_set_new(req, "role", json_string(role));
  if (name)
    json_object_set_new(req, "name", json_string(name));
  if (ttl)
    json_object_set_new(req, "ttl", json_integer(ttl));
  if (uses)
    json_object_set_new(req, "uses", json_integer(uses));
  body = json_dumps(req, JSON_COMPACT);
  json_decref(req);
  if (call("POST", "/v1/tokens", body, "application/json", &r) != 201) {
    json_decref(r);
    return 1;
  }
  rc = show_token(r, out);
  json_decref(r);
  return rc;
bad_value:
  fprintf(stderr, "ferry: %s\n", ferry_errmsg());
  return EXIT_USAGE;
usage:
  fprintf(stderr, "ferry: usage: ferry token create --role "
          "viewer|operator|admin [--name N] [--ttl 8h] [--out FILE], or "
          "ferry token create --enroll [--uses N] [--ttl 1h] [--out FILE]\n");
  return EXIT_USAGE;
}

/* An operator token is rotated by making its successor (same kind, role
 * and name) and then revoking it: the old one stops working at once. */
static int token_rotate(int argc, char **argv)
{
  char path[128], *id;
  const char *role = NULL, *name = NULL, *kind = NULL;
  json_t *r, *t, *found = NULL;
  char *args[5];
  int nargs = 1, rc;
  size_t i;

  if (argc != 2 && !(argc == 4 && strcmp(argv[2], "--out") == 0)) {
    fprintf(stderr, "ferry: usage: ferry token rotate ID [--out FILE]\n");
    return EXIT_USAGE;
  }
  id = argv[1];
  if (call("GET", "/v1/tokens", NULL, NULL, &r) != 200)
    return 1;
  json_array_foreach(json_object_get(r, "tokens"), i, t) {
    char buf[24];

    snprintf(buf, sizeof buf, "%lld", n(t, "id"));
    if (strcmp(buf, id) == 0)
      found = t;
  }
  if (found == NULL || strcmp(s(found, "state"), "valid") != 0) {
    ferry_error("no valid token %s in this project (ferry token list)", id);
    json_decref(r);
    return 1;
  }
  kind = s(found, "kind");
  role = json_string_value(json_object_get(found, "role"));
  name = json_string_value(json_object_get(found, "name"));
  args[0] = "create";
  if (argc == 4) {
    args[nargs++] = "--out";
    args[nargs++] = argv[3];
  }
  rc = token_create(nargs, args, role, name, strcmp(kind, "enroll") == 0);
  json_decref(r);
  if (rc != 0)
    return rc;
  snprintf(path, sizeof path, "/v1/tokens/%s/revoke", id);
  if (call("POST", path, "{}", "application/json", &r) != 200) {
    json_decref(r);
    ferry_error_prefix("the new token was made but the old one (%s) is not "
                       "revoked: ", id);
    return 1;
  }
  json_decref(r);
  fprintf(stderr, "token %s revoked\n", id);
  return 0;
}

static int cmd_token(int argc, char **argv)
{
  const char *sub = argc > 1 ? argv[1] : "";
  char path[128];
  json_t *r, *t;
  size_t i;

  if (strcmp(sub, "create") == 0)
    return token_create(argc - 1, argv + 1, NULL, NULL, 0);
  if (strcmp(sub, "rotate") == 0)
    return token_rotate(argc - 1, argv + 1);
  if (argc == 2 && strcmp(sub, "list") == 0) {
    if (call("GET", "/v1/tokens", NULL, NULL, &r) != 200)
      return 1;
    if (json_out) {
      print_json(r);
    } else {
      printf("%-4s %-8s %-9s %-16s %-8s %-20s %-5s %s\n", "ID", "KIND",
             "ROLE", "NAME", "STATE", "EXPIRES", "USES", "LAST USED");
      json_array_foreach(json_object_get(r, "tokens"), i, t) {
        char uses[24] = "-";

        if (json_is_integer(json_object_get(t, "uses_left")))
          snprintf(uses, sizeof uses, "%lld", n(t, "uses_left"));
        printf("%-4lld %-8s %-9s %-16.16s %-8s %-20s %-5s %s\n", n(t, "id"),
               s(t, "kind"), s(t, "role"), s(t, "name"), s(t, "state"),
               s(t, "expires"), uses, s(t, "last_used"));
      }
    }
    json_decref(r);
    return 0;
  }
  if (argc == 3 && strcmp(sub, "revoke") == 0) {
    snprintf(path, sizeof path, "/v1/tokens/%s/revoke", argv[2]);
    if (call("POST", path, "{}", "application/json", &r) != 200) {
      json_decref(r);
      return 1;
    }
    printf("token %s revoked\n", argv[2]);
    json_decref(r);
    return 0;
  }
  fprintf(stderr, "ferry: usage: ferry token create|list|revoke ID|rotate "
          "ID\n");
  return EXIT_USAGE;
}

static int cmd_agent(int argc, char **argv)
{
  const char *sub = argc > 1 ? argv[1] : "";
  CLEANUP_FREE char *esc = NULL;
  char path[600];
  json_t *r, *a;
  size_t i;

  if (argc == 2 && strcmp(sub, "list") == 0) {
    if (call("GET", "/v1/agents", NULL, NULL, &r) != 200)
      return 1;
    if (json_out) {
      print_json(r);
    } else {
      printf("%-4s %-24s %-5s %-24s %s\n", "ID", "HOSTNAME", "HOST",
             "LAST SEEN", "REVOKED");
      json_array_foreach(json_object_get(r, "agents"), i, a)
        printf("%-4lld %-24s %-5lld %-24s %s\n", n(a, "id"),
               s(a, "hostname"), n(a, "host_id"), s(a, "last_seen"),
               s(a, "revoked"));
    }
    json_decref(r);
    return 0;
  }
  if (argc == 3 && (strcmp(sub, "revoke") == 0 ||
                    strcmp(sub, "rotate") == 0)) {
    /* a host name or an id: letters, digits, '.', '-' reach the server
     * as they are; anything else is refused there */
    esc = curl_easy_escape(NULL, argv[2], 0);
    if (esc == NULL || strlen(esc) > 512) {
      ferry_error("agent '%s' is not an agent id or host name", argv[2]);
      return 1;
    }
    snprintf(path, sizeof path, "/v1/agents/%s/%s", esc, sub);
    if (call("POST", path, "{}", "application/json", &r) != 200) {
      json_decref(r);
      return 1;
    }
    printf("agent %s: %s (%lld agent(s))\n", argv[2], s(r, "state"),
           n(r, "agents"));
    json_decref(r);
    return 0;
  }
  fprintf(stderr, "ferry: usage: ferry agent list | ferry agent "
          "revoke|rotate HOST-OR-ID\n");
  return EXIT_USAGE;
}

/* The CA the server offers agents, fetched over the CLI's own verified
 * connection: its fingerprint is the pin for agent.conf. */
static int cmd_ca(int argc, char **argv)
{
  CLEANUP_FREE char *url = NULL;
  struct http_request req = {
    .method = "GET", .timeout = 30, .body_cap = TLS_PEM_MAX,
    .ca_file = ca_file,
  };
  struct http_response r;
  char text[TLS_PIN_TEXT];
  uint8_t pin[TLS_PIN_LEN];
  int pem = argc == 2 && strcmp(argv[1], "--pem") == 0;

  if (argc > 2 || (argc == 2 && !pem)) {
    fprintf(stderr, "ferry: usage: ferry ca [--pem]\n");
    return EXIT_USAGE;
  }
  if (strncmp(server_url, "https://", 8) != 0) {
    ferry_error("%s is not https://: there is no CA to pin", server_url);
    return 1;
  }
  if (asprintf(&url, "%s/v1/ca.pem", server_url) == -1) {
    ferry_error("out of memory");
    return 1;
  }
  req.url = url;
  if (http_do(&req, &r) == -1) {
    http_response_free(&r);
    ferry_error_prefix("cannot reach ferry-server%s: ", ca_file ? "" :
                       " (its private CA goes in --ca-file or "
                       "FERRY_CA_FILE)");
    return 1;
  }
  if (r.status != 200 ||
      tls_pin_of_pem(r.body ? r.body : "", r.body_len, "the server's CA",
                     pin, NULL) == -1) {
    if (r.status != 200)
      ferry_error("GET /v1/ca.pem: HTTP %ld: the server offers no CA",
                  r.status);
    http_response_free(&r);
    return 1;
  }
  tls_pin_format(pin, text);
  if (pem)
    fputs(r.body, stdout);
  else
    printf("server_ca_sha256 = %s\n", text);
  http_response_free(&r);
  return 0;
}

/* ferry target cleanup ID: delete what a failed, canceled or test
 * migration made in the cloud, and wait for it. */
static int cmd_target(int argc, char **argv)
{
  char path[128];
  unsigned timeout = 1800;
  long long task;
  time_t start = time(NULL);
  json_t *r;

  if (argc == 5 && strcmp(argv[3], "--timeout") == 0 &&
      parse_uint("--timeout", argv[4], 1, 86400, &timeout) == -1) {
    fprintf(stderr, "ferry: %s\n", ferry_errmsg());
    return EXIT_USAGE;
  }
  if ((argc != 3 && argc != 5) || strcmp(argv[1], "cleanup") != 0) {
    fprintf(stderr, "ferry: usage: ferry target cleanup MIGRATION "
            "[--timeout SECONDS]\n");
    return EXIT_USAGE;
  }
  snprintf(path, sizeof path, "/v1/migrations/%s/cleanup", argv[2]);
  if (call("POST", path, "{}", "application/json", &r) != 202) {
    json_decref(r);
    return 1;
  }
  task = n(r, "task");
  printf("migration %s: cleanup of %lld resource(s) (task %lld)\n", argv[2],
         n(r, "resources"), task);
  json_decref(r);
  snprintf(path, sizeof path, "/v1/migrations/%s", argv[2]);
  for (;;) {
    json_t *t, *x;
    size_t i, k;

    if (call("GET", path, NULL, NULL, &r) != 200)
      return 1;
    json_array_foreach(json_object_get(r, "tasks"), i, t) {
      const char *state = s(t, "state");

      if (n(t, "id") != task || strcmp(state, "queued") == 0 ||
          strcmp(state, "running") == 0)
        continue;
      if (strcmp(state, "succeeded") != 0) {
        fprintf(stderr, "ferry: cleanup of migration %s %s: %s\n", argv[2],
                state, json_is_string(json_object_get(t, "error"))
                         ? s(t, "error") : "(no message)");
        json_decref(r);
        return 1;
      }
      json_array_foreach(json_object_get(json_object_get(t, "result"),
                                         "deleted"), k, x)
        printf("deleted %s %s (%s)\n", s(x, "kind"), s(x, "name"),
               s(x, "id"));
      json_array_foreach(json_object_get(json_object_get(t, "result"),
                                         "kept"), k, x)
        printf("kept %s %s (%s): the blueprint's, shared by its hosts\n",
               s(x, "kind"), s(x, "name"), s(x, "id"));
      json_decref(r);
      return 0;
    }
    json_decref(r);
    if (time(NULL) - start > (time_t)timeout) {
      fprintf(stderr, "ferry: cleanup of migration %s still running after "
              "%u s (ferry job show %s follows it)\n", argv[2], timeout,
              argv[2]);
      return 1;
    }
    sleep(1);
  }
}

static int cmd_host(int argc, char **argv)
{
  if (argc >= 2 && strcmp(argv[1], "show") == 0)
    return cmd_host_show(argc - 1, argv + 1);
  fprintf(stderr, "ferry: usage: ferry host show ID\n");
  return EXIT_USAGE;
}

static const struct command {
  const char *name;
  int (*run)(int argc, char **argv);
  const char *help;
} commands[] = {
  { "hosts", cmd_hosts, "list discovered hosts" },
  { "host", cmd_host, "host show ID: one host's inventory" },
  { "blueprint", cmd_blueprint, "blueprint validate|apply FILE, list" },
  { "migrate", cmd_migrate, "migrate HOST --blueprint NAME [--test: a "
    "test instance, HOST-test]" },
  { "target", cmd_target, "target cleanup ID [--timeout S]: delete what a "
    "failed, canceled or test migration made in the cloud" },
  { "jobs", cmd_jobs, "list migrations" },
  { "job", cmd_job, "job show ID | job watch ID [--timeout S]" },
  { "cancel", cmd_action, "cancel ID: stop a migration" },
  { "retry", cmd_action, "retry ID: resume a failed or canceled one" },
  { "cutover", cmd_action, "cutover ID: final sync of a warm migration, "
    "then convert and create" },
  { "project", cmd_project, "project list | project create NAME" },
  { "token", cmd_token, "token create --role R | --enroll [--uses N] "
    "[--ttl T] [--out FILE], list, revoke ID, rotate ID" },
  { "agent", cmd_agent, "agent list | agent revoke|rotate HOST-OR-ID" },
  { "ca", cmd_ca, "the server's CA fingerprint, the pin for agent.conf "
    "(--pem: the CA)" },
};

static void usage(FILE *fp)
{
  size_t i;

  fprintf(fp, "usage: ferry [--server URL] [--ca-file FILE] [--project NAME] "
          "[--json] COMMAND ...\n\n"
          "The operator token is read from $FERRY_TOKEN_FILE (default\n"
          "./operator.token) or $FERRY_TOKEN.  A project's token acts in\n"
          "its project; the server admin's (operator.token) in the one\n"
          "--project or $FERRY_PROJECT names, else 'default'.  An https://\n"
          "server is trusted through --ca-file or $FERRY_CA_FILE, else the\n"
          "ca.pem beside the token file, else the system's CAs.\n\n"
          "commands:\n");
  for (i = 0; i < sizeof commands / sizeof commands[0]; i++)
    fprintf(fp, "  %-10s %s\n", commands[i].name, commands[i].help);
}

int main(int argc, char **argv)
{
  /* '+': options end at the command, whose own arguments follow */
  static const struct option longopts[] = {
    { "server", required_argument, NULL, 's' },
    { "ca-file", required_argument, NULL, 'c' },
    { "json", no_argument, NULL, 'J' },
    { "project", required_argument, NULL, 'p' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
  };
  size_t i;
  int a, c;

  server_url = getenv("FERRY_SERVER");
  project = getenv("FERRY_PROJECT");
  if (project && *project == '\0')
    project = NULL;
  ca_file = getenv("FERRY_CA_FILE");
  if (ca_file && *ca_file == '\0')
    ca_file = NULL;
  opterr = 0;
  while ((c = getopt_long(argc, argv, "+h", longopts, NULL)) != -1) {
    switch (c) {
    case 's': server_url = optarg; break;
    case 'c': ca_file = optarg; break;
    case 'J': json_out = 1; break;
    case 'p': project = optarg; break;
    case 'h': usage(stdout); return 0;
    default:
      fprintf(stderr, "ferry: unknown or incomplete option %s (see ferry "
              "--help)\n", argv[optind - 1]);
      return EXIT_USAGE;
    }
  }
  a = optind;
  if (a >= argc) {
    usage(stderr);
    return EXIT_USAGE;
  }
  if (server_url == NULL)
    server_url = "http://127.0.0.1:8700";
  /* it goes into a header: the server's rule for names, checked here */
  if (project && (strlen(project) > 63 || !isalnum((unsigned char)*project)
                  || project[strspn(project, "abcdefghijklmnopqrstuvwxyz"
                                    "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                    "0123456789_-")])) {
    fprintf(stderr, "ferry: project '%s' is not a project name (letters, "
            "digits, '_' and '-', starting with a letter or digit)\n",
            project);
    return EXIT_USAGE;
  }
  for (i = 0; i < sizeof commands / sizeof commands[0]; i++)
    if (strcmp(argv[a], commands[i].name) == 0) {
      int rc;

      /* ca needs no token, but takes the CA beside it */
      if (load_token() == -1 && commands[i].run != cmd_ca) {
        fprintf(stderr, "ferry: %s\n", ferry_errmsg());
        return 1;
      }
      rc = commands[i].run(argc - a, argv + a);
      if (rc == 1 && ferry_error_pending())
        fprintf(stderr, "ferry: %s\n", ferry_errmsg());
      return rc;
    }
  fprintf(stderr, "ferry: unknown command '%s' (see ferry --help)\n",
          argv[a]);
  return EXIT_USAGE;
}
