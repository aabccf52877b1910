/* fleet.c - a fleet of simulated agents from one process, for the control
 * plane's load test (bench/fleet.sh, tests/t-fleet.sh).
 *
 *   fleet --server URL --enroll-token-file F --agents N --seconds S
 *         [--prefix sim] [--ramp S] [--ca-file F] [--out F]
 *
 * Each agent does what ferry-agent does, over the same API: enroll (its
 * own hostname PREFIX-NNNN), post a discovery, long-poll for tasks, and
 * while it holds a task post its progress every 2 s (never finishing it,
 * so a task stays running for the whole test).  All on one libcurl multi
 * handle: one connection per agent, as a real fleet has.  Agents start
 * spread over --ramp seconds.
 *
 * It prints (and writes to --out) a JSON report: requests by kind with
 * their latencies (p50, p99, max; long polls are left out: their length
 * is the wait for a task, not the server's speed), failures by kind
 * and status with their first message, and for every task held the last
 * progress the server answered 200 to, so the caller can check that
 * nothing was lost. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>

#define BODY_MAX (64u << 10)
#define PROGRESS_EVERY 2.0
#define PROGRESS_STEP (16LL << 20)
#define TASK_TOTAL (64LL << 30)

enum kind { K_ENROLL, K_DISCOVERY, K_POLL, K_PROGRESS, K_N };
static const char *const kind_names[K_N] = {
  [K_ENROLL] = "enroll", [K_DISCOVERY] = "discovery", [K_POLL] = "poll",
  [K_PROGRESS] = "progress",
};

struct agent {
  int idx;
  char name[32];
  char token[96];
  CURL *h;
  struct curl_slist *hdrs;
  char *body;
  size_t len;
  char *req_body;
  enum kind doing;
  int busy, enrolled, discovered;
  double t0, due;                  /* request start; next request due */
  long long task, done;            /* held task, progress posted */
  long long acked_done;            /* last progress answered 200 */
  double acked_at;
};

struct lat {
  double *v;
  size_t n, cap;
};

static const char *server, *ca_file, *prefix = "sim";
static char enroll_token[256];
static struct lat lats[K_N];
static long long counts[K_N], failures[K_N];
static json_t *first_failure;      /* kind -> message */
static long long polls_waited, tasks_taken;

static double now(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void lat_add(struct lat *l, double v)
{
  if (l->n == l->cap) {
    size_t cap = l->cap ? 2 * l->cap : 1024;
    double *p = realloc(l->v, cap * sizeof *p);

    if (p == NULL)
      return;
    l->v = p;
    l->cap = cap;
  }
  l->v[l->n++] = v;
}

static int cmp_double(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;

  return x < y ? -1 : x > y;
}

static double pct(struct lat *l, double p)
{
  size_t i;

  if (l->n == 0)
    return 0;
  i = (size_t)ceil(p * (double)l->n) - 1;
  return l->v[i < l->n ? i : l->n - 1];
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *opaque)
{
  struct agent *a = opaque;
  size_t n = size * nmemb;
  char *p;

  if (a->len + n > BODY_MAX)
    return 0;
  p = realloc(a->body, a->len + n + 1);
  if (p == NULL)
    return 0;
  a->body = p;
  memcpy(a->body + a->len, data, n);
  a->len += n;
  a->body[a->len] = '\0';
  return n;
}

static void start(CURLM *m, struct agent *a, enum kind k)
{
  char url[512], auth[320];

  curl_easy_reset(a->h);
  curl_slist_free_all(a->hdrs);
  a->hdrs = NULL;
  free(a->req_body);
  a->req_body = NULL;
  free(a->body);
  a->body = NULL;
  a->len = 0;
  a->doing = k;
  snprintf(auth, sizeof auth, "Authorization: Bearer %s",
           k == K_ENROLL ? enroll_token : a->token);
  a->hdrs = curl_slist_append(a->hdrs, auth);
  a->hdrs = curl_slist_append(a->hdrs, "Content-Type: application/json");
  switch (k) {
  case K_ENROLL:
    snprintf(url, sizeof url, "%s/v1/agents/enroll", server);
    if (asprintf(&a->req_body, "{\"hostname\": \"%s\"}", a->name) == -1)
      a->req_body = NULL;
    break;
  case K_DISCOVERY:
    snprintf(url, sizeof url, "%s/v1/agent/discovery", server);
    if (asprintf(&a->req_body, "{\"schema\": 2, \"hostname\": \"%s\", "
                 "\"machine_id\": \"%032x\", \"os\": {\"id\": \"debian\", "
                 "\"version_id\": \"12\", \"pretty_name\": \"Debian "
                 "GNU/Linux 12 (bookworm)\"}, \"disks\": [{\"name\": "
                 "\"sda\", \"size\": %lld}]}", a->name, a->idx + 1,
                 TASK_TOTAL) == -1)
      a->req_body = NULL;
    break;
  case K_POLL:
    snprintf(url, sizeof url, "%s/v1/agent/tasks?wait=25", server);
    break;
  case K_PROGRESS:
    snprintf(url, sizeof url, "%s/v1/agent/tasks/%lld/progress", server,
             a->task);
    if (asprintf(&a->req_body, "{\"done_bytes\": %lld, \"total_bytes\": "
                 "%lld, \"rate\": %.0f, \"eta\": 60}", a->done, TASK_TOTAL,
                 PROGRESS_STEP / PROGRESS_EVERY) == -1)
      a->req_body = NULL;
    break;
  default:
    return;
  }
  curl_easy_setopt(a->h, CURLOPT_URL, url);
  curl_easy_setopt(a->h, CURLOPT_HTTPHEADER, a->hdrs);
  curl_easy_setopt(a->h, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(a->h, CURLOPT_WRITEDATA, a);
  curl_easy_setopt(a->h, CURLOPT_PRIVATE, a);
  curl_easy_setopt(a->h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(a->h, CURLOPT_CONNECTTIMEOUT, 30L);
  curl_easy_setopt(a->h, CURLOPT_TIMEOUT, 90L);
  if (ca_file)
    curl_easy_setopt(a->h, CURLOPT_CAINFO, ca_file);
  if (a->req_body) {
    curl_easy_setopt(a->h, CURLOPT_POSTFIELDS, a->req_body);
  }
  a->busy = 1;
  a->t0 = now();
  counts[k]++;
  curl_multi_add_handle(m, a->h);
}

static void failed(struct agent *a, long status, const char *why)
{
  char key[48], msg[300];
  json_t *e;

  failures[a->doing]++;
  snprintf(key, sizeof key, "%s %ld", kind_names[a->doing], status);
  snprintf(msg, sizeof msg, "%s: %.240s", a->name, why);
  e = json_object_get(first_failure, key);
  if (e == NULL)
    json_object_set_new(first_failure, key, json_pack("{s:i, s:s}", "count",
                                                      1, "first", msg));
  else
    json_object_set_new(e, "count", json_integer(json_integer_value(
                        json_object_get(e, "count")) + 1));
}

/* A request finished: record it and decide what the agent does next. */
static void finished(struct agent *a, CURLcode rc)
{
  double t = now(), took = t - a->t0;
  long status = 0;
  json_t *j = NULL, *task;

  a->busy = 0;
  curl_easy_getinfo(a->h, CURLINFO_RESPONSE_CODE, &status);
  if (rc != CURLE_OK) {
    failed(a, 0, curl_easy_strerror(rc));
    a->due = t + 1;                    /* an agent backs off, then retries */
    return;
  }
  if (a->body)
    j = json_loads(a->body, 0, NULL);
  if (status >= 400) {
    const char *m = json_string_value(json_object_get(json_object_get(j,
                                      "error"), "message"));

    failed(a, status, m ? m : a->body ? a->body : "no body");
    json_decref(j);
    a->due = t + 1;
    if (a->doing == K_PROGRESS && status == 404) {
      a->task = 0;                     /* gone: back to polling */
    }
    return;
  }
  switch (a->doing) {
  case K_ENROLL:
    lat_add(&lats[K_ENROLL], took);
    snprintf(a->token, sizeof a->token, "%s",
             json_string_value(json_object_get(j, "token"))
             ? json_string_value(json_object_get(j, "token")) : "");
    a->enrolled = 1;
    a->doing = K_DISCOVERY;
    a->due = t;
    break;
  case K_DISCOVERY:
    lat_add(&lats[K_DISCOVERY], took);
    a->discovered = 1;
    a->doing = K_POLL;
    a->due = t;
    break;
  case K_POLL:
    task = json_object_get(j, "task");
    if (status == 200 && json_is_object(task)) {
      a->task = json_integer_value(json_object_get(task, "id"));
      a->done = 0;
      tasks_taken++;
      a->doing = K_PROGRESS;
      a->due = t;
    } else {
      polls_waited++;
      a->doing = K_POLL;
      a->due = t;
    }
    break;
  case K_PROGRESS:
    lat_add(&lats[K_PROGRESS], took);
    if (strcmp(json_string_value(json_object_get(j, "state"))
               ? json_string_value(json_object_get(j, "state")) : "",
               "running") == 0) {
      a->acked_done = a->done;
      a->acked_at = t;
      if (a->done + PROGRESS_STEP < TASK_TOTAL)
        a->done += PROGRESS_STEP;
      a->doing = K_PROGRESS;
      a->due = t + PROGRESS_EVERY;
    } else {
      a->task = 0;                     /* canceled or reassigned */
      a->doing = K_POLL;
      a->due = t;
    }
    break;
  default:
    break;
  }
  json_decref(j);
}

static int read_token(const char *path)
{
  FILE *f = fopen(path, "r");
  size_t n;

  if (f == NULL) {
    fprintf(stderr, "fleet: %s: %s\n", path, strerror(errno));
    return -1;
  }
  n = fread(enroll_token, 1, sizeof enroll_token - 1, f);
  fclose(f);
  enroll_token[n] = '\0';
  enroll_token[strcspn(enroll_token, "\r\n")] = '\0';
  return 0;
}

int main(int argc, char **argv)
{
  const char *token_file = NULL, *out = NULL;
  int n = 0, i, running;
  double seconds = 60, ramp = 10, t_start, t_end;
  struct agent *agents;
  struct rlimit rl;
  json_t *report, *reqs, *held;
  CURLM *m;
  CURLMsg *msg;
  char *text;

  for (i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--server") == 0) server = argv[i + 1];
    else if (strcmp(argv[i], "--enroll-token-file") == 0) token_file = argv[i + 1];
    else if (strcmp(argv[i], "--agents") == 0) n = (int)strtol(argv[i + 1], NULL, 10);
    else if (strcmp(argv[i], "--seconds") == 0) seconds = strtod(argv[i + 1], NULL);
    else if (strcmp(argv[i], "--ramp") == 0) ramp = strtod(argv[i + 1], NULL);
    else if (strcmp(argv[i], "--prefix") == 0) prefix = argv[i + 1];
    else if (strcmp(argv[i], "--ca-file") == 0) ca_file = argv[i + 1];
    else if (strcmp(argv[i], "--out") == 0) out = argv[i + 1];
    else break;
  }
  if (i != argc || server == NULL || token_file == NULL || n <= 0 ||
      n > 20000) {
    fprintf(stderr, "usage: fleet --server URL --enroll-token-file F "
            "--agents N [--seconds S] [--ramp S] [--prefix P] "
            "[--ca-file F] [--out F]\n");
    return 2;
  }
  if (read_token(token_file) == -1)
    return 1;
  /* one socket per agent */
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  curl_global_init(CURL_GLOBAL_DEFAULT);
  m = curl_multi_init();
  curl_multi_setopt(m, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)n + 16);
  agents = calloc((size_t)n, sizeof *agents);
  first_failure = json_object();
  if (m == NULL || agents == NULL || first_failure == NULL)
    return 1;
  t_start = now();
  for (i = 0; i < n; i++) {
    agents[i].idx = i;
    snprintf(agents[i].name, sizeof agents[i].name, "%s-%04d", prefix, i);
    agents[i].h = curl_easy_init();
    if (agents[i].h == NULL)
      return 1;
    agents[i].doing = K_ENROLL;
    agents[i].due = t_start + ramp * i / n;
  }
  t_end = t_start + seconds;
  for (;;) {
    double t = now();

    if (t >= t_end)
      break;
    for (i = 0; i < n; i++)
      if (!agents[i].busy && agents[i].due <= t)
        start(m, &agents[i], agents[i].doing);
    curl_multi_perform(m, &running);
    while ((msg = curl_multi_info_read(m, &running)) != NULL) {
      struct agent *a;

      if (msg->msg != CURLMSG_DONE)
        continue;
      curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&a);
      curl_multi_remove_handle(m, msg->easy_handle);
      finished(a, msg->data.result);
    }
    curl_multi_poll(m, NULL, 0, 50, NULL);
  }

  report = json_object();
  reqs = json_object();
  held = json_array();
  for (i = 0; i < K_N; i++) {
    if (lats[i].n)
      qsort(lats[i].v, lats[i].n, sizeof *lats[i].v, cmp_double);
    json_object_set_new(reqs, kind_names[i], json_pack(
      "{s:I, s:I, s:I, s:f, s:f, s:f}", "sent", (json_int_t)counts[i],
      "timed", (json_int_t)lats[i].n, "failed", (json_int_t)failures[i],
      "p50_ms", 1000 * pct(&lats[i], 0.50), "p99_ms",
      1000 * pct(&lats[i], 0.99), "max_ms",
      1000 * pct(&lats[i], 1.0)));
  }
  {
    struct lat all = { 0 };
    int enrolled = 0, discovered = 0;

    for (i = 0; i < K_N; i++)
      for (size_t k = 0; k < lats[i].n; k++)
        lat_add(&all, lats[i].v[k]);
    if (all.n)
      qsort(all.v, all.n, sizeof *all.v, cmp_double);
    for (i = 0; i < n; i++) {
      enrolled += agents[i].enrolled;
      discovered += agents[i].discovered;
      if (agents[i].task && agents[i].acked_at > 0)
        json_array_append_new(held, json_pack("{s:s, s:I, s:I}", "agent",
                              agents[i].name, "task",
                              (json_int_t)agents[i].task, "done_bytes",
                              (json_int_t)agents[i].acked_done));
    }
    json_object_set_new(report, "agents", json_integer(n));
    json_object_set_new(report, "enrolled", json_integer(enrolled));
    json_object_set_new(report, "discovered", json_integer(discovered));
    json_object_set_new(report, "seconds", json_real(now() - t_start));
    json_object_set_new(report, "p50_ms", json_real(1000 * pct(&all, 0.5)));
    json_object_set_new(report, "p99_ms", json_real(1000 * pct(&all, 0.99)));
    json_object_set_new(report, "max_ms", json_real(1000 * pct(&all, 1.0)));
    json_object_set_new(report, "timed_requests", json_integer((json_int_t)all.n));
    free(all.v);
  }
  json_object_set_new(report, "polls_waited", json_integer(polls_waited));
  json_object_set_new(report, "tasks_taken", json_integer(tasks_taken));
  json_object_set_new(report, "requests", reqs);
  json_object_set_new(report, "failures", first_failure);
  json_object_set_new(report, "held", held);
  text = json_dumps(report, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
  if (out) {
    FILE *f = fopen(out, "w");

    if (f == NULL || fputs(text, f) == EOF || fclose(f) != 0) {
      fprintf(stderr, "fleet: cannot write %s\n", out);
      return 1;
    }
  } else {
    puts(text);
  }
  free(text);
  json_decref(report);
  for (i = 0; i < n; i++) {
    if (agents[i].busy)
      curl_multi_remove_handle(m, agents[i].h);
    curl_easy_cleanup(agents[i].h);
    curl_slist_free_all(agents[i].hdrs);
    free(agents[i].body);
    free(agents[i].req_body);
  }
  for (i = 0; i < K_N; i++)
    free(lats[i].v);
  free(agents);
  curl_multi_cleanup(m);
  curl_global_cleanup();
  return 0;
}
