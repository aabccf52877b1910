/* gcp.c - Google Compute Engine.  Rules (checked 2026): image import
 * takes disk.raw in a gzip'd GNU tar; BIOS and UEFI; persistent disks up
 * to 64 TiB; the guest needs virtio-scsi or NVMe and virtio-net or gVNIC.
 *
 * Driver (Compute Engine API v1, REST): the blueprint's network as a VPC
 * network in custom subnet mode with its subnetworks in the plan's region
 * and one firewall rule per allow rule; each disk an image inserted from
 * the gce tar.gz ferry-convert wrote to gs:// (rawDisk.source), data disks
 * made from theirs; the instance booting the first.  Every insert is
 * preceded by a GET of the name ferry derives for the resource, so a
 * re-run (after a crash, or a retry) finds what an earlier run made, even
 * while its operation is still running, and goes on from there.  Names
 * (GCE: [a-z]([-a-z0-9]{0,61}[a-z0-9])?) are documented in docs/TARGETS.md.
 * Credentials: gcp_auth.c. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "hash/digest.h"
#include "util/cleanup.h"
#include "util/error.h"
#include "util/log.h"
#include "cloud.h"
#include "gcp_auth.h"
#include "target.h"
#include "../tasks.h"

#define COMPUTE_DEFAULT "https://compute.googleapis.com/compute/v1"
#define STORAGE_URL "https://storage.googleapis.com"
#define NAME_MAX_GCE 63
#define IMAGE_SECONDS 7200     /* an image import of a large disk */
#define OTHER_SECONDS 900
#define DISK_TYPE "pd-balanced"

struct gcp {
  struct task_ctx *t;
  json_t *plan;
  struct gcp_key *key;
  char *compute;               /* ".../compute/v1", no trailing '/' */
  const char *project, *region, *blueprint;
  char zone[64];
  char token[4096];
  json_t *labels;              /* plan.tags as GCE labels */
  char migration[32];          /* labels["ferry-migration"] */
};

/* ---- names ---- */

/* A GCE name from in: lower case, anything but [a-z0-9-] becomes '-', a
 * leading non-letter gets "f-" in front, no trailing '-'; longer than 63,
 * the first 54 characters and 8 hex digits of in's SHA-256, so two long
 * names stay apart. */
static void gce_name(const char *in, char out[NAME_MAX_GCE + 1])
{
  char buf[512];
  size_t n = 0, i;

  if (!(in[0] >= 'a' && in[0] <= 'z') && !(in[0] >= 'A' && in[0] <= 'Z')) {
    buf[n++] = 'f';
    buf[n++] = '-';
  }
  for (i = 0; in[i] && n < sizeof buf - 1; i++) {
    char c = in[i];

    if (c >= 'A' && c <= 'Z')
      c = (char)(c - 'A' + 'a');
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')))
      c = '-';
    buf[n++] = c;
  }
  while (n > 0 && buf[n - 1] == '-')
    n--;
  buf[n] = '\0';
  if (n > NAME_MAX_GCE) {
    uint8_t d[DIGEST_LEN];
    char hex[2 * DIGEST_LEN + 1];

    digest_buf(in, strlen(in), d);
    hex_encode(d, 4, hex);
    n = 54;
    while (n > 0 && buf[n - 1] == '-')
      n--;
    memcpy(out, buf, n);
    out[n] = '-';
    memcpy(out + n + 1, hex, 9);
    return;
  }
  memcpy(out, buf, n + 1);
}

/* A GCE label key or value (lower case letters, digits, '_' and '-', at
 * most 63 characters; keys start with a letter). */
static void gce_label(const char *in, char out[NAME_MAX_GCE + 1])
{
  size_t i;

  for (i = 0; in[i] && i < NAME_MAX_GCE; i++) {
    char c = in[i];

    if (c >= 'A' && c <= 'Z')
      c = (char)(c - 'A' + 'a');
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
      c = '_';
    out[i] = c;
  }
  out[i] = '\0';
}

static char *strf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *strf(const char *fmt, ...)
{
  va_list ap;
  char *s;
  int n;

  va_start(ap, fmt);
  n = vasprintf(&s, fmt, ap);
  va_end(ap);
  if (n == -1) {
    ferry_error("out of memory");
    return NULL;
  }
  return s;
}

/* The last segment of a resource URL ("https://.../zones/europe-west1-b"
 * -> "europe-west1-b"). */
static const char *last_segment(const char *url)
{
  const char *s = url ? strrchr(url, '/') : NULL;

  return s ? s + 1 : url;
}

/* ---- requests ---- */

static int sign_bearer(void *opaque, struct curl_slist **headers,
                       const char *method, const char *url,
                       const void *body, size_t body_len)
{
  struct gcp *g = opaque;

  (void)method; (void)url; (void)body; (void)body_len;
  return http_header_add(headers, "Authorization: Bearer %s", g->token);
}

/* method url with body (NULL: none): the HTTP status (2xx or 4xx, or a
 * 429/5xx that outlasted the retries) with *out its JSON answer, or -1
 * with an error.  A 401 gets one new token and one more try. */
static long gcp_call(struct gcp *g, const char *what, const char *method,
                     const char *url, json_t *body, json_t **out)
{
  CLEANUP_FREE char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
  struct http_response resp = { 0 };
  long status;
  int attempt;

  *out = NULL;
  if (body && text == NULL) {
    ferry_error("out of memory");
    return -1;
  }
  for (attempt = 0; ; attempt++) {
    struct cloud_req req = {
      .what = what, .method = method, .url = url,
      .content_type = text ? "application/json" : NULL,
      .body = text, .body_len = text ? strlen(text) : 0,
      .sign = sign_bearer, .sign_opaque = g, .body_cap = 4u << 20,
    };

    if (gcp_token(g->t, g->key, attempt > 0, g->token,
                  sizeof g->token) == -1)
      return -1;
    if (cloud_request(g->t, &req, &resp) == -1)
      return -1;
    if (resp.status != 401 || attempt == 1)
      break;
    http_response_free(&resp);
  }
  status = resp.status;
  *out = resp.body_len == 0 ? json_object() : cloud_json(&resp, what);
  http_response_free(&resp);
  return *out ? status : -1;
}

/* The error of a GCE answer (error.code, errors[0].reason, message), one
 * line, with what to do for the usual ones. */
static void gcp_fail(struct gcp *g, const char *what, long status, json_t *j)
{
  json_t *e = json_object_get(j, "error");
  const char *msg = json_string_value(json_object_get(e, "message"));
  const char *reason = json_string_value(
    json_object_get(json_array_get(json_object_get(e, "errors"), 0),
                    "reason"));
  const char *hint = "";

  if (reason == NULL)
    reason = json_string_value(json_object_get(e, "status"));
  if (status == 403)
    hint = ": the service account lacks a permission (docs/TARGETS.md, "
           "gcp, lists the roles ferry needs)";
  else if (status == 401)
    hint = ": check the key file GOOGLE_APPLICATION_CREDENTIALS names";
  else if (status == 429 || status >= 500)
    hint = ": GCE kept refusing (quota or an outage): retry the migration "
           "later";
  ferry_error("GCE %s in project %s: HTTP %ld %s: %.300s%s", what,
              g->project, status, reason ? reason : "",
              msg ? msg : "(no message)", hint);
}

/* GET url: 1 with *out, 0 when it is not there (404), -1 with an
 * error. */
static int gcp_get(struct gcp *g, const char *what, const char *url,
                   json_t **out)
{
  long status = gcp_call(g, what, "GET", url, NULL, out);

  if (status == 200)
    return 1;
  if (status == 404) {
    json_decref(*out);
    *out = NULL;
    return 0;
  }
  if (status != -1)
    gcp_fail(g, what, status, *out);
  json_decref(*out);
  *out = NULL;
  return -1;
}

/* ---- operations ---- */

struct op_wait {
  struct gcp *g;
  const char *what;
  json_t *op;
};

/* 1 when op is DONE without error; -1 with the operation's own error
 * (errors[0].code and message) when it is DONE with one; 0 not yet. */
static int op_done(struct op_wait *w)
{
  const char *st = json_string_value(json_object_get(w->op, "status"));
  json_t *errs = json_object_get(json_object_get(w->op, "error"), "errors");
  json_t *e0 = json_array_get(errs, 0);

  if (st == NULL || strcmp(st, "DONE") != 0)
    return 0;
  if (e0 == NULL)
    return 1;
  ferry_error("GCE %s failed in project %s: operation %s: %s: %.300s",
              w->what, w->g->project,
              json_string_value(json_object_get(w->op, "name")),
              json_string_value(json_object_get(e0, "code")),
              json_string_value(json_object_get(e0, "message")));
  return -1;
}

/* operations/wait in the operation's own scope: zonal, regional or
 * global (GCE REST reference, "Handling API responses"). */
static int op_check(void *opaque, unsigned *next_ms)
{
  struct op_wait *w = opaque;
  struct gcp *g = w->g;
  const char *name = json_string_value(json_object_get(w->op, "name"));
  const char *zone = json_string_value(json_object_get(w->op, "zone"));
  const char *region = json_string_value(json_object_get(w->op, "region"));
  CLEANUP_FREE char *url = NULL;
  json_t *ans = NULL;
  long status;
  int r;

  (void)next_ms;
  if ((r = op_done(w)) != 0)
    return r;
  if (name == NULL) {
    ferry_error("GCE %s: the answer is not an operation", w->what);
    return -1;
  }
  if (zone)
    url = strf("%s/projects/%s/zones/%s/operations/%s/wait", g->compute,
               g->project, last_segment(zone), name);
  else if (region)
    url = strf("%s/projects/%s/regions/%s/operations/%s/wait", g->compute,
               g->project, last_segment(region), name);
  else
    url = strf("%s/projects/%s/global/operations/%s/wait", g->compute,
               g->project, name);
  if (url == NULL)
    return -1;
  status = gcp_call(g, w->what, "POST", url, NULL, &ans);
  if (status != 200) {
    if (status != -1)
      gcp_fail(g, w->what, status, ans);
    json_decref(ans);
    return -1;
  }
  json_decref(w->op);
  w->op = ans;
  return op_done(w);
}

/* Wait for op (consumed) until DONE: 0, or -1 with its error. */
static int op_wait(struct gcp *g, const char *what, json_t *op,
                   unsigned max_seconds)
{
  struct op_wait w = { .g = g, .what = what, .op = op };
  int r = cloud_wait(g->t, what, max_seconds, 1000, op_check, &w);

  json_decref(w.op);
  return r;
}

/* ---- resources: found by name, or inserted ---- */

struct res {
  const char *kind;            /* ledger kind, messages: "image" */
  const char *name;            /* the GCE name, also the ledger's */
  char *url;                   /* the resource */
  char *collection;            /* where it is inserted */
  json_t *body;                /* the insert's body */
  enum cloud_scope scope;
  unsigned max_seconds;
  const char *ready;           /* status that means usable (NULL: any) */
  const char *failed;          /* status that means it never will be */
  /* blueprint resources carry "ferry-blueprint=NAME" as description,
   * migration resources the ferry-migration label */
  int by_blueprint;
};

static int owned(struct gcp *g, struct res *r, json_t *found)
{
  char want[256];
  const char *have;

  if (r->by_blueprint) {
    snprintf(want, sizeof want, "ferry-blueprint=%s", g->blueprint);
    have = json_string_value(json_object_get(found, "description"));
    if (have && strcmp(have, want) == 0)
      return 1;
    ferry_error("GCE %s %s exists in project %s but is not blueprint %s's "
                "(its description is '%s', not '%s'): rename the "
                "blueprint's network, or delete that %s", r->kind, r->name,
                g->project, g->blueprint, have ? have : "", want, r->kind);
    return 0;
  }
  have = json_string_value(json_object_get(
    json_object_get(found, "labels"), "ferry-migration"));
  if (have && strcmp(have, g->migration) == 0)
    return 1;
  if (have)
    ferry_error("GCE %s %s exists in project %s and belongs to ferry "
                "migration %s, not %s: 'ferry target cleanup %s' removes it "
                "if that was a test or failed run", r->kind, r->name,
                g->project, have, g->migration, have);
  else
    ferry_error("GCE %s %s exists in project %s and was not made by ferry "
                "(no ferry-migration label): delete or rename it",
                r->kind, r->name, g->project);
  return 0;
}

struct ready_wait {
  struct gcp *g;
  struct res *r;
  json_t *found;
};

static int ready_check(void *opaque, unsigned *next_ms)
{
  struct ready_wait *w = opaque;
  const char *st;
  char what[160];
  int got;

  (void)next_ms;
  snprintf(what, sizeof what, "get %s %s", w->r->kind, w->r->name);
  json_decref(w->found);
  w->found = NULL;
  got = gcp_get(w->g, what, w->r->url, &w->found);
  if (got == -1)
    return -1;
  if (got == 0) {
    ferry_error("GCE %s %s vanished from project %s while ferry waited "
                "for it: run the migration again", w->r->kind, w->r->name,
                w->g->project);
    return -1;
  }
  st = json_string_value(json_object_get(w->found, "status"));
  if (w->r->ready == NULL || (st && strcmp(st, w->r->ready) == 0))
    return 1;
  if (st && w->r->failed && strcmp(st, w->r->failed) == 0) {
    ferry_error("GCE %s %s in project %s is %s: see its operation in the "
                "console; ferry target cleanup deletes it", w->r->kind,
                w->r->name, w->g->project, st);
    return -1;
  }
  return 0;
}

/* A random UUID for requestId: GCE runs a retried insert that carries the
 * same requestId once (cloud_request retries the same URL). */
static int request_id(char out[37])
{
  unsigned char b[16];
  char hex[33];

  if (RAND_bytes(b, sizeof b) != 1) {
    ferry_error("cannot draw random bytes (OpenSSL)");
    return -1;
  }
  b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);     /* RFC 4122 v4 */
  b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
  hex_encode(b, sizeof b, hex);
  snprintf(out, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12,
           hex + 16, hex + 20);
  return 0;
}

/* Find r by name or insert it, wait until it is usable; its JSON, or
 * NULL with an error. */
static json_t *ensure(struct gcp *g, struct res *r)
{
  char what[160], rid[37];
  CLEANUP_FREE char *url = NULL;
  json_t *found = NULL, *ans = NULL, *id;
  long status;
  int got;

  snprintf(what, sizeof what, "get %s %s", r->kind, r->name);
  got = gcp_get(g, what, r->url, &found);
  if (got == -1)
    return NULL;
  if (got == 0) {
    task_ctx_event(g->t, "creating GCE %s %s", r->kind, r->name);
    if (request_id(rid) == -1 ||
        (url = strf("%s?requestId=%s", r->collection, rid)) == NULL)
      return NULL;
    snprintf(what, sizeof what, "insert %s %s", r->kind, r->name);
    status = gcp_call(g, what, "POST", url, r->body, &ans);
    if (status == 200) {
      id = json_object_get(ans, "targetId");
      if (cloud_ledger_put(g->t, r->kind, r->name,
                           json_is_string(id) ? json_string_value(id) : "",
                           r->scope) == -1 ||
          op_wait(g, what, ans, r->max_seconds) == -1)
        return NULL;
    } else if (status == 409) {
      /* alreadyExists: another run made it between our GET and insert */
      json_decref(ans);
    } else {
      if (status != -1)
        gcp_fail(g, what, status, ans);
      json_decref(ans);
      return NULL;
    }
  } else {
    const char *st = json_string_value(json_object_get(found, "status"));

    if (!owned(g, r, found)) {
      json_decref(found);
      return NULL;
    }
    if (r->ready && st && strcmp(st, r->ready) != 0)
      task_ctx_event(g->t, "found GCE %s %s (%s): waiting for it", r->kind,
                     r->name, st);
    json_decref(found);
  }
  {
    struct ready_wait w = { .g = g, .r = r };

    snprintf(what, sizeof what, "GCE %s %s", r->kind, r->name);
    if (cloud_wait(g->t, what, r->max_seconds, 2000, ready_check, &w) ==
        -1) {
      json_decref(w.found);
      return NULL;
    }
    if (!owned(g, r, w.found)) {
      json_decref(w.found);
      return NULL;
    }
    id = json_object_get(w.found, "id");
    if (cloud_ledger_put(g->t, r->kind, r->name,
                         json_is_string(id) ? json_string_value(id) : "",
                         r->scope) == -1) {
      json_decref(w.found);
      return NULL;
    }
    return w.found;
  }
}

static void res_free(struct res *r)
{
  free(r->url);
  free(r->collection);
  json_decref(r->body);
}

/* ---- setup ---- */

static void gcp_close(struct gcp *g)
{
  gcp_key_free(g->key);
  free(g->compute);
  json_decref(g->labels);
  memset(g->token, 0, sizeof g->token);
}

/* The zone: the host entry's zone, else the first of the region's zones
 * in name order (regions.get), so every run picks the same one. */
static int pick_zone(struct gcp *g)
{
  json_t *host = json_object_get(g->plan, "host"), *reg = NULL, *z;
  const char *zone = json_string_value(json_object_get(host, "zone"));
  const char *best = NULL;
  CLEANUP_FREE char *url = NULL;
  size_t i;
  int got;

  if (zone) {
    snprintf(g->zone, sizeof g->zone, "%s", zone);
    return 0;
  }
  url = strf("%s/projects/%s/regions/%s", g->compute, g->project,
             g->region);
  if (url == NULL)
    return -1;
  got = gcp_get(g, "get region", url, &reg);
  if (got == 0)
    ferry_error("GCE region %s does not exist for project %s: check the "
                "blueprint's region", g->region, g->project);
  if (got != 1)
    return -1;
  json_array_foreach(json_object_get(reg, "zones"), i, z) {
    const char *s = last_segment(json_string_value(z));

    if (s && (best == NULL || strcmp(s, best) < 0))
      best = s;
  }
  if (best == NULL) {
    ferry_error("GCE region %s of project %s lists no zone: set the host's "
                "zone in the blueprint", g->region, g->project);
    json_decref(reg);
    return -1;
  }
  snprintf(g->zone, sizeof g->zone, "%s", best);
  json_decref(reg);
  return 0;
}

static int gcp_open(struct gcp *g, struct task_ctx *t, json_t *plan)
{
  CLEANUP_FREE char *oauth = cloud_endpoint(plan, "oauth2", NULL, NULL);
  json_t *tags = json_object_get(plan, "tags"), *v;
  const char *k, *env_project = getenv("GOOGLE_CLOUD_PROJECT");

  memset(g, 0, sizeof *g);
  g->t = t;
  g->plan = plan;
  g->region = cloud_plan_str(plan, "region");
  g->blueprint = cloud_plan_str(plan, "blueprint");
  if (g->region == NULL || g->blueprint == NULL) {
    ferry_error("the gcp plan has no region or blueprint");
    return -1;
  }
  g->key = gcp_key_load(oauth);
  if (g->key == NULL)
    return -1;
  /* GOOGLE_CLOUD_PROJECT first, as Google's client libraries do: the
   * service account may belong to another project than the target */
  g->project = env_project && *env_project ? env_project
                                           : gcp_key_project(g->key);
  if (g->project == NULL) {
    ferry_error("no GCP project: the key file GOOGLE_APPLICATION_CREDENTIALS "
                "names has no project_id; set GOOGLE_CLOUD_PROJECT for "
                "ferry-server");
    return -1;
  }
  g->compute = cloud_endpoint(plan, "compute", NULL, COMPUTE_DEFAULT);
  g->labels = json_object();
  if (g->compute == NULL || g->labels == NULL) {
    ferry_error("out of memory");
    return -1;
  }
  json_object_foreach(tags, k, v) {
    char lk[NAME_MAX_GCE + 1], lv[NAME_MAX_GCE + 1];

    if (!json_is_string(v))
      continue;
    gce_label(k, lk);
    gce_label(json_string_value(v), lv);
    json_object_set_new(g->labels, lk, json_string(lv));
  }
  snprintf(g->migration, sizeof g->migration, "%lld", cloud_migration(t));
  json_object_set_new(g->labels, "ferry-migration",
                      json_string(g->migration));
  return pick_zone(g);
}

/* ---- networks ---- */

static char *proj_url(struct gcp *g, const char *fmt, ...)
  __attribute__((format(printf, 2, 3)));
static char *proj_url(struct gcp *g, const char *fmt, ...)
{
  CLEANUP_FREE char *rest = NULL;
  va_list ap;
  int n;

  va_start(ap, fmt);
  n = vasprintf(&rest, fmt, ap);
  va_end(ap);
  if (n == -1) {
    rest = NULL;
    ferry_error("out of memory");
    return NULL;
  }
  return strf("%s/projects/%s/%s", g->compute, g->project, rest);
}

static json_t *ensure_one(struct gcp *g, struct res *r)
{
  json_t *j = NULL;

  if (r->url && r->collection && r->body)
    j = ensure(g, r);
  else
    ferry_error("out of memory");
  res_free(r);
  return j;
}

/* "tcp", 22 / "8000-8099" -> {IPProtocol, ports}. */
static json_t *firewall_allowed(json_t *rule, char *ports, size_t size)
{
  const char *proto = json_string_value(json_object_get(rule, "proto"));
  json_t *p = json_object_get(rule, "ports");
  json_t *a = json_pack("{s:s}", "IPProtocol", proto ? proto : "tcp");

  ports[0] = '\0';
  if (json_is_integer(p))
    snprintf(ports, size, "%lld", (long long)json_integer_value(p));
  else if (json_is_string(p))
    snprintf(ports, size, "%s", json_string_value(p));
  if (a && ports[0])
    json_object_set_new(a, "ports", json_pack("[s]", ports));
  return a;
}

/* The blueprint's rules are exactly the network's: delete the firewall
 * rules ferry made for this blueprint on network nname (its description)
 * whose name is not in want (a rule taken out of the blueprint, or
 * changed: a changed rule has a new name).  Rules ferry did not make are
 * never touched. */
#define LIST_PAGES 50

static int prune_firewalls(struct gcp *g, const char *nname, json_t *want,
                           const char *desc)
{
  CLEANUP_FREE char *token = NULL;
  int page;

  for (page = 0; page < LIST_PAGES; page++) {
    CLEANUP_FREE char *url = NULL;
    json_t *ans = NULL, *fw;
    const char *next;
    long status;
    size_t i;

    url = token ? proj_url(g, "global/firewalls?maxResults=500&pageToken=%s",
                           token)
                : proj_url(g, "global/firewalls?maxResults=500");
    if (url == NULL)
      return -1;
    status = gcp_call(g, "list firewalls", "GET", url, NULL, &ans);
    if (status != 200) {
      if (status != -1)
        gcp_fail(g, "list firewalls", status, ans);
      json_decref(ans);
      return -1;
    }
    json_array_foreach(json_object_get(ans, "items"), i, fw) {
      const char *name = json_string_value(json_object_get(fw, "name"));
      const char *d = json_string_value(json_object_get(fw, "description"));
      const char *net = last_segment(json_string_value(
        json_object_get(fw, "network")));
      CLEANUP_FREE char *del = NULL;
      json_t *op = NULL;
      char what[160];

      if (name == NULL || d == NULL || net == NULL ||
          strcmp(d, desc) != 0 || strcmp(net, nname) != 0 ||
          json_object_get(want, name) != NULL)
        continue;
      snprintf(what, sizeof what, "delete firewall %s", name);
      task_ctx_event(g->t, "deleting GCE firewall rule %s: the blueprint "
                     "no longer has it", name);
      if ((del = proj_url(g, "global/firewalls/%s", name)) == NULL) {
        json_decref(ans);
        return -1;
      }
      status = gcp_call(g, what, "DELETE", del, NULL, &op);
      if (status == 200) {
        if (op_wait(g, what, op, OTHER_SECONDS) == -1) {
          json_decref(ans);
          return -1;
        }
      } else if (status != 404) {
        if (status != -1)
          gcp_fail(g, what, status, op);
        json_decref(op);
        json_decref(ans);
        return -1;
      } else {
        json_decref(op);
      }
      cloud_ledger_gone(g->t, "firewall", name);
    }
    next = json_string_value(json_object_get(ans, "nextPageToken"));
    free(token);
    token = next && *next ? http_escape(next, 0) : NULL;
    json_decref(ans);
    if (token == NULL)
      return 0;
  }
  ferry_error("GCE list firewalls in project %s: more than %d pages",
              g->project, LIST_PAGES);
  return -1;
}

/* The host's network, its subnetworks and firewall rules.  On success
 * *subnet is the partial URL of the host's subnetwork (caller frees). */
static int ensure_network(struct gcp *g, char **subnet)
{
  json_t *net = json_object_get(g->plan, "network"), *s, *rule, *j;
  json_t *want = json_object();
  json_t *host = json_object_get(g->plan, "host");
  const char *hs = json_string_value(json_object_get(host, "subnet"));
  char nname[NAME_MAX_GCE + 1], tmp[512], desc[256];
  CLEANUP_FREE char *net_path = NULL;
  size_t i;
  int r = -1;

  *subnet = NULL;
  if (want == NULL) {
    ferry_error("out of memory");
    return -1;
  }
  if (!json_is_object(net) || hs == NULL) {
    json_decref(want);
    ferry_error("host %s has no subnet in a network of blueprint %s: the "
                "gcp target puts every instance on a blueprint network "
                "(networks:, hosts[].subnet)",
                json_string_value(json_object_get(host, "name")),
                g->blueprint);
    return -1;
  }
  snprintf(tmp, sizeof tmp, "%s-%s", g->blueprint,
           json_string_value(json_object_get(net, "name")));
  gce_name(tmp, nname);
  snprintf(desc, sizeof desc, "ferry-blueprint=%s", g->blueprint);
  net_path = strf("projects/%s/global/networks/%s", g->project, nname);
  if (net_path == NULL)
    return -1;

  cloud_network_lock();
  {
    struct res n = {
      .kind = "network", .name = nname, .scope = CLOUD_BLUEPRINT,
      .max_seconds = OTHER_SECONDS, .by_blueprint = 1,
      .url = proj_url(g, "global/networks/%s", nname),
      .collection = proj_url(g, "global/networks"),
      .body = json_pack("{s:s, s:s, s:b, s:{s:s}}", "name", nname,
                        "description", desc, "autoCreateSubnetworks", 0,
                        "routingConfig", "routingMode", "REGIONAL"),
    };

    if ((j = ensure_one(g, &n)) == NULL)
      goto out;
    json_decref(j);
  }
  json_array_foreach(json_object_get(net, "subnets"), i, s) {
    const char *sn = json_string_value(json_object_get(s, "name"));
    char name[NAME_MAX_GCE + 1];
    struct res sr = { .kind = "subnetwork", .name = name,
                      .scope = CLOUD_BLUEPRINT, .by_blueprint = 1,
                      .max_seconds = OTHER_SECONDS };

    snprintf(tmp, sizeof tmp, "%s-%s", g->blueprint, sn);
    gce_name(tmp, name);
    sr.url = proj_url(g, "regions/%s/subnetworks/%s", g->region, name);
    sr.collection = proj_url(g, "regions/%s/subnetworks", g->region);
    sr.body = json_pack("{s:s, s:s, s:s, s:s}", "name", name,
                        "description", desc, "network", net_path,
                        "ipCidrRange",
                        json_string_value(json_object_get(s, "cidr")));
    if ((j = ensure_one(g, &sr)) == NULL)
      goto out;
    json_decref(j);
    if (sn && strcmp(sn, hs) == 0)
      *subnet = strf("projects/%s/regions/%s/subnetworks/%s", g->project,
                     g->region, name);
  }
  /* one firewall rule per allow rule, named by what it allows, so a
   * changed rule is a new name; GCE's implied rules deny every other
   * ingress to a custom network */
  json_array_foreach(json_object_get(net, "allow"), i, rule) {
    const char *proto = json_string_value(json_object_get(rule, "proto"));
    const char *from = json_string_value(json_object_get(rule, "from"));
    char name[NAME_MAX_GCE + 1], ports[64], hex[9];
    uint8_t d[DIGEST_LEN];
    struct res fr = { .kind = "firewall", .name = name,
                      .scope = CLOUD_BLUEPRINT, .by_blueprint = 1,
                      .max_seconds = OTHER_SECONDS };
    json_t *allowed = firewall_allowed(rule, ports, sizeof ports);

    if (from == NULL)
      from = "0.0.0.0/0";
    snprintf(tmp, sizeof tmp, "%s|%s|%s", proto ? proto : "", ports, from);
    digest_buf(tmp, strlen(tmp), d);
    hex_encode(d, 4, hex);
    snprintf(tmp, sizeof tmp, "%s-%s%s%s-%s", nname, proto ? proto : "",
             ports[0] ? "-" : "", ports, hex);
    gce_name(tmp, name);
    fr.url = proj_url(g, "global/firewalls/%s", name);
    fr.collection = proj_url(g, "global/firewalls");
    fr.body = json_pack("{s:s, s:s, s:s, s:s, s:i, s:[s], s:[o]}", "name",
                        name, "description", desc, "network", net_path,
                        "direction", "INGRESS", "priority", 1000,
                        "sourceRanges", from, "allowed", allowed);
    if ((j = ensure_one(g, &fr)) == NULL)
      goto out;
    json_decref(j);
    json_object_set_new(want, name, json_true());
  }
  if (prune_firewalls(g, nname, want, desc) == -1)
    goto out;
  if (*subnet == NULL) {
    ferry_error("subnet %s of host %s is not in network %s", hs,
                json_string_value(json_object_get(host, "name")),
                json_string_value(json_object_get(net, "name")));
    goto out;
  }
  r = 0;
out:
  cloud_network_unlock();
  json_decref(want);
  if (r == -1) {
    free(*subnet);
    *subnet = NULL;
  }
  return r;
}

/* ---- disks and the instance ---- */

/* gs://BUCKET/OBJECT -> https://storage.googleapis.com/BUCKET/OBJECT, the
 * form rawDisk.source takes. */
static char *storage_url(const char *out)
{
  CLEANUP_FREE char *esc = NULL;

  if (out == NULL || strncmp(out, "gs://", 5) != 0) {
    ferry_error("the converted disk %s is not in Cloud Storage: GCE "
                "imports images from gs:// only; set the blueprint's store "
                "to gs://BUCKET/PREFIX", out ? out : "(none)");
    return NULL;
  }
  esc = http_escape(out + 5, 1);
  return esc ? strf("%s/%s", STORAGE_URL, esc) : NULL;
}

static void res_name(struct gcp *g, const char *disk, char *out)
{
  char tmp[512];

  snprintf(tmp, sizeof tmp, "ferry-m%s-%s-%s", g->migration,
           json_string_value(json_object_get(json_object_get(g->plan,
                                                             "host"),
                                             "name")), disk);
  gce_name(tmp, out);
}

static json_t *ensure_image(struct gcp *g, json_t *disk, int boot,
                            char *name)
{
  const char *dn = json_string_value(json_object_get(disk, "name"));
  const char *bm = cloud_plan_str(g->plan, "boot_mode");
  CLEANUP_FREE char *src = storage_url(json_string_value(
    json_object_get(disk, "output")));
  char desc[256];
  json_t *features;
  struct res r = { .kind = "image", .name = name, .scope = CLOUD_MIGRATION,
                   .max_seconds = IMAGE_SECONDS, .ready = "READY",
                   .failed = "FAILED" };

  if (src == NULL || dn == NULL)
    return NULL;
  res_name(g, dn, name);
  snprintf(desc, sizeof desc, "ferry migration %s: disk %s of host %s",
           g->migration, dn, json_string_value(json_object_get(
             json_object_get(g->plan, "host"), "name")));
  features = json_pack("[{s:s}, {s:s}]", "type", "VIRTIO_SCSI_MULTIQUEUE",
                       "type", "GVNIC");
  if (features && boot && bm && strcmp(bm, "uefi") == 0)
    json_array_append_new(features, json_pack("{s:s}", "type",
                                              "UEFI_COMPATIBLE"));
  r.url = proj_url(g, "global/images/%s", name);
  r.collection = proj_url(g, "global/images");
  r.body = json_pack("{s:s, s:s, s:O, s:{s:s}, s:o}", "name", name,
                     "description", desc, "labels", g->labels, "rawDisk",
                     "source", src, "guestOsFeatures", features);
  return ensure_one(g, &r);
}

static json_t *ensure_disk(struct gcp *g, const char *dn, const char *image,
                           char *name)
{
  char desc[256];
  struct res r = { .kind = "disk", .name = name, .scope = CLOUD_MIGRATION,
                   .max_seconds = OTHER_SECONDS, .ready = "READY",
                   .failed = "FAILED" };

  res_name(g, dn, name);
  snprintf(desc, sizeof desc, "ferry migration %s: data disk %s",
           g->migration, dn);
  r.url = proj_url(g, "zones/%s/disks/%s", g->zone, name);
  r.collection = proj_url(g, "zones/%s/disks", g->zone);
  r.body = json_pack("{s:s, s:s, s:O, s:s, s:s}", "name", name,
                     "description", desc, "labels", g->labels,
                     "sourceImage", image, "type", "");
  if (r.body) {
    char type[160];

    snprintf(type, sizeof type, "projects/%s/zones/%s/diskTypes/" DISK_TYPE,
             g->project, g->zone);
    json_object_set_new(r.body, "type", json_string(type));
  }
  return ensure_one(g, &r);
}

static json_t *gcp_create(struct task_ctx *t, json_t *plan)
{
  struct gcp g;
  json_t *disks = json_object_get(plan, "disks"), *d, *host, *inst = NULL;
  json_t *attach = NULL, *res = NULL, *nic;
  CLEANUP_FREE char *subnet = NULL;
  char iname[NAME_MAX_GCE + 1], boot_image[256] = "", desc[256], mt[200];
  const char *ip, *type;
  size_t i, n = json_array_size(disks);

  if (gcp_open(&g, t, plan) == -1)
    goto out;
  host = json_object_get(plan, "host");
  type = json_string_value(json_object_get(host, "machine_type"));
  ip = json_string_value(json_object_get(host, "ip"));
  if (n == 0 || type == NULL) {
    ferry_error("the plan has no disks or no machine_type");
    goto out;
  }
  task_ctx_event(t, "GCE project %s, zone %s", g.project, g.zone);
  if (ensure_network(&g, &subnet) == -1)
    goto out;

  attach = json_array();
  json_array_foreach(disks, i, d) {
    char iname_img[NAME_MAX_GCE + 1], dname[NAME_MAX_GCE + 1], src[256];
    json_t *img;

    task_ctx_event(t, "importing disk %zu of %zu (%s) as a GCE image",
                   i + 1, n, json_string_value(json_object_get(d, "name")));
    img = ensure_image(&g, d, i == 0, iname_img);
    if (img == NULL)
      goto out;
    json_decref(img);
    snprintf(src, sizeof src, "projects/%s/global/images/%s", g.project,
             iname_img);
    if (i == 0) {
      snprintf(boot_image, sizeof boot_image, "%s", src);
      json_array_append_new(attach, json_pack(
        "{s:b, s:b, s:s, s:s, s:{s:s, s:O}}", "boot", 1, "autoDelete", 1,
        "type", "PERSISTENT", "deviceName",
        json_string_value(json_object_get(d, "name")), "initializeParams",
        "sourceImage", src, "labels", g.labels));
    } else {
      const char *dn = json_string_value(json_object_get(d, "name"));
      json_t *dj = ensure_disk(&g, dn, src, dname);
      char dpath[200];

      if (dj == NULL)
        goto out;
      json_decref(dj);
      snprintf(dpath, sizeof dpath, "projects/%s/zones/%s/disks/%s",
               g.project, g.zone, dname);
      json_array_append_new(attach, json_pack(
        "{s:b, s:b, s:s, s:s, s:s}", "boot", 0, "autoDelete", 0, "type",
        "PERSISTENT", "deviceName", dn, "source", dpath));
    }
  }

  gce_name(cloud_plan_str(plan, "instance_name")
             ? cloud_plan_str(plan, "instance_name")
             : json_string_value(json_object_get(host, "name")), iname);
  snprintf(desc, sizeof desc, "ferry migration %s of host %s, blueprint %s",
           g.migration, json_string_value(json_object_get(host, "name")),
           g.blueprint);
  snprintf(mt, sizeof mt, "projects/%s/zones/%s/machineTypes/%s",
           g.project, g.zone, type);
  nic = json_pack("{s:s}", "subnetwork", subnet);
  /* a test launch takes an address of the subnetwork's range: the host's
   * stays free for the cutover instance */
  if (nic && ip && !json_is_true(json_object_get(plan, "test")))
    json_object_set_new(nic, "networkIP", json_string(ip));
  {
    struct res r = { .kind = "instance", .name = iname,
                     .scope = CLOUD_MIGRATION, .max_seconds = OTHER_SECONDS,
                     .ready = "RUNNING", .failed = "TERMINATED" };

    r.url = proj_url(&g, "zones/%s/instances/%s", g.zone, iname);
    r.collection = proj_url(&g, "zones/%s/instances", g.zone);
    r.body = json_pack("{s:s, s:s, s:s, s:O, s:O, s:[o], s:{s:[{s:s, s:s}]}}",
                       "name", iname, "description", desc, "machineType", mt,
                       "labels", g.labels, "disks", attach,
                       "networkInterfaces", nic, "metadata", "items", "key",
                       "serial-port-enable", "value", "true");
    task_ctx_event(t, "creating instance %s (%s) in %s", iname, type,
                   g.zone);
    if ((inst = ensure_one(&g, &r)) == NULL)
      goto out;
  }
  {
    json_t *ni = json_array_get(json_object_get(inst, "networkInterfaces"),
                                0);
    char console[512];

    snprintf(console, sizeof console, "gcloud compute instances "
             "get-serial-port-output %s --zone=%s --project=%s", iname,
             g.zone, g.project);
    res = json_pack("{s:s?, s:s, s:s?, s:s, s:s, s:s?, s:s?, s:s, s:s}",
                    "instance_id",
                    json_string_value(json_object_get(inst, "id")),
                    "name", iname,
                    "self_link",
                    json_string_value(json_object_get(inst, "selfLink")),
                    "zone", g.zone, "image", boot_image,
                    "network_ip",
                    json_string_value(json_object_get(ni, "networkIP")),
                    "machine_type", last_segment(json_string_value(
                      json_object_get(inst, "machineType"))),
                    "console", console, "project", g.project);
    task_ctx_event(t, "instance %s is RUNNING at %s", iname,
                   json_string_value(json_object_get(ni, "networkIP")));
  }
out:
  json_decref(inst);
  json_decref(attach);
  gcp_close(&g);
  return res;
}

/* ---- cleanup ---- */

static json_t *gcp_cleanup(struct task_ctx *t, json_t *plan,
                           json_t *resources)
{
  struct gcp g;
  json_t *deleted = json_array(), *r, *res = NULL;
  size_t i;

  if (gcp_open(&g, t, plan) == -1)
    goto out;
  json_array_foreach(resources, i, r) {
    const char *kind = json_string_value(json_object_get(r, "kind"));
    const char *name = json_string_value(json_object_get(r, "name"));
    CLEANUP_FREE char *url = NULL;
    char what[160];
    json_t *ans = NULL;
    long status;

    if (kind == NULL || name == NULL)
      continue;
    if (strcmp(kind, "instance") == 0)
      url = proj_url(&g, "zones/%s/instances/%s", g.zone, name);
    else if (strcmp(kind, "disk") == 0)
      url = proj_url(&g, "zones/%s/disks/%s", g.zone, name);
    else if (strcmp(kind, "image") == 0)
      url = proj_url(&g, "global/images/%s", name);
    else {
      ferry_error("the ledger lists a GCE %s (%s) that the gcp driver "
                  "does not make for a migration", kind, name);
      goto out;
    }
    if (url == NULL)
      goto out;
    snprintf(what, sizeof what, "delete %s %s", kind, name);
    task_ctx_event(t, "deleting GCE %s %s", kind, name);
    status = gcp_call(&g, what, "DELETE", url, NULL, &ans);
    if (status == 200) {
      /* the next delete may depend on it (a disk on its instance) */
      if (op_wait(&g, what, ans, OTHER_SECONDS) == -1)
        goto out;
    } else if (status == 404) {
      json_decref(ans);                /* already gone */
    } else {
      if (status != -1)
        gcp_fail(&g, what, status, ans);
      json_decref(ans);
      goto out;
    }
    if (cloud_ledger_gone(t, kind, name) == -1)
      goto out;
    json_array_append_new(deleted, json_pack(
      "{s:s, s:s, s:O}", "kind", kind, "name", name, "id",
      json_object_get(r, "id") ? json_object_get(r, "id") : json_null()));
  }
  res = json_pack("{s:O}", "deleted", deleted);
out:
  json_decref(deleted);
  gcp_close(&g);
  return res;
}

static const char *const formats[] = { "gce", NULL };
static const char *const storage[] = { "virtio_scsi|nvme", NULL };
static const char *const net[] = { "virtio_net|gve", NULL };
static const char *const endpoint_keys[] = { "compute", "oauth2", NULL };
static const char *const imports[] = { "object", NULL };

const struct target_ops target_gcp = {
  .name = "gcp",
  .rules = {
    .needs_region = 1, .needs_machine_type = 1, .formats = formats,
    .bios_ok = 1, .uefi_ok = 1, .gpt_bios_ok = 1, .max_disk = 64 * TiB,
    .storage_drivers = storage, .net_drivers = net,
    .driver_hint = "install virtio-scsi and virtio-net (or gve) and "
                   "rebuild the initramfs",
    .guest_agent = "google-guest-agent",
    .guest_agent_hint = "install google-guest-agent for SSH keys, "
                        "metadata and the network",
    .endpoint_keys = endpoint_keys, .imports = imports,
  },
  .create = gcp_create,
  .cleanup = gcp_cleanup,
};
