/* azure_arm.c - tokens, ARM requests and long-running operations for the
 * azure driver (azure_arm.h). */
#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/cleanup.h"
#include "util/error.h"
#include "util/log.h"
#include "net/http_client.h"
#include "azure_arm.h"
#include "cloud.h"

/* a token is renewed this long before it expires (azure-identity's
 * refresh margin is 5 minutes too) */
#define TOKEN_MARGIN 300
#define POLL_DEFAULT_MS 10000
#define POLL_URL_MAX 4096

/* ---- the service principal's token ----
 *
 * One cached token for the server (one service principal: its
 * environment), renewed near its expiry.  The secret and the token are
 * never logged or put in a message. */
static pthread_mutex_t token_lock = PTHREAD_MUTEX_INITIALIZER;
static char *token_key;           /* authority|tenant|client */
static char *token_value;
static time_t token_expires;

static void token_drop(void)
{
  if (token_value)
    explicit_bzero(token_value, strlen(token_value));
  free(token_value);
  free(token_key);
  token_value = token_key = NULL;
  token_expires = 0;
}

/* The variable an AADSTS error points at (Microsoft identity platform,
 * "AADSTS error codes"). */
static const char *aadsts_variable(const char *desc, json_t *codes)
{
  static const struct { long code; const char *var; } map[] = {
    { 7000215, "AZURE_CLIENT_SECRET" },   /* invalid client secret */
    { 7000222, "AZURE_CLIENT_SECRET" },   /* the secret expired */
    { 700016, "AZURE_CLIENT_ID" },        /* application not found */
    { 90002, "AZURE_TENANT_ID" },         /* tenant not found */
    { 900023, "AZURE_TENANT_ID" },        /* not a valid tenant id */
    { 900021, "AZURE_TENANT_ID" },
  };
  size_t i, j;

  for (i = 0; i < sizeof map / sizeof map[0]; i++) {
    char tag[24];

    snprintf(tag, sizeof tag, "AADSTS%ld:", map[i].code);
    if (desc && strstr(desc, tag))
      return map[i].var;
    for (j = 0; j < json_array_size(codes); j++)
      if (json_integer_value(json_array_get(codes, j)) == map[i].code)
        return map[i].var;
  }
  return "AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET";
}

/* The first line of s (AAD descriptions go on with trace ids), at most
 * size - 1 bytes, into buf. */
static const char *first_line(const char *s, char *buf, size_t size)
{
  size_t n = s ? strcspn(s, "\r\n") : 0;

  if (n >= size)
    n = size - 1;
  memcpy(buf, s ? s : "", n);
  buf[n] = '\0';
  return buf;
}

static int token_fetch(struct arm *a, char **out)
{
  CLEANUP_FREE char *url = NULL, *id = NULL, *sec = NULL, *scope = NULL;
  CLEANUP_FREE char *form = NULL;
  CLEANUP_JSON json_t *j = NULL;
  struct http_response resp = { 0 };
  struct cloud_req r = { 0 };
  char host[256], line[512];
  const char *tok;
  json_int_t ttl = 0;
  json_t *v;
  int rc = -1;

  if (asprintf(&url, "%s/%s/oauth2/v2.0/token", a->login, a->tenant) == -1)
    url = NULL;
  id = http_escape(a->client, 0);
  sec = http_escape(a->secret, 0);
  scope = http_escape(ARM_SCOPE, 0);
  if (url == NULL || id == NULL || sec == NULL || scope == NULL ||
      asprintf(&form, "grant_type=client_credentials&client_id=%s"
               "&client_secret=%s&scope=%s", id, sec, scope) == -1) {
    form = NULL;
    ferry_error("out of memory");
    goto out;
  }
  http_host(url, host, sizeof host);
  r = (struct cloud_req){
    .what = "Azure sign-in (OAuth2 client credentials)", .method = "POST",
    .url = url, .content_type = "application/x-www-form-urlencoded",
    .body = form, .body_len = strlen(form), .max_seconds = 120,
  };
  if (cloud_request(a->t, &r, &resp) == -1)
    goto out;
  j = json_loadb(resp.body ? resp.body : "", resp.body_len, 0, NULL);
  if (resp.status != 200) {
    const char *err = json_string_value(json_object_get(j, "error"));
    const char *desc = json_string_value(json_object_get(j,
                                                "error_description"));

    if (resp.status == 400 || resp.status == 401)
      ferry_error("Azure sign-in at %s refused the service principal: "
                  "%s: %s: check %s", host, err ? err : "HTTP error",
                  first_line(desc, line, sizeof line),
                  aadsts_variable(desc, json_object_get(j, "error_codes")));
    else
      ferry_error("Azure sign-in at %s answered HTTP %ld%s%s: check "
                  "AZURE_AUTHORITY_HOST (or the blueprint's "
                  "endpoints.login) and AZURE_TENANT_ID", host, resp.status,
                  err ? ": " : "", err ? err : "");
    goto out;
  }
  tok = json_string_value(json_object_get(j, "access_token"));
  v = json_object_get(j, "expires_in");
  ttl = json_is_integer(v) ? json_integer_value(v)
        : json_is_string(v) ? strtoll(json_string_value(v), NULL, 10) : 0;
  if (tok == NULL || *tok == '\0' || ttl <= 0) {
    ferry_error("Azure sign-in at %s answered without an access_token "
                "and its expires_in", host);
    goto out;
  }
  *out = strdup(tok);
  if (*out == NULL) {
    ferry_error("out of memory");
    goto out;
  }
  token_expires = time(NULL) + (time_t)ttl;
  rc = 0;
out:
  if (form)
    explicit_bzero(form, strlen(form));
  if (sec)
    explicit_bzero(sec, strlen(sec));
  if (resp.body)
    explicit_bzero(resp.body, resp.body_len);
  http_response_free(&resp);
  return rc;
}

/* A copy of a valid token (caller bzeroes and frees), fetched when the
 * cached one is near its end.  0 or -1. */
static int token_get(struct arm *a, char **out)
{
  CLEANUP_FREE char *key = NULL;
  int rc = 0;

  if (asprintf(&key, "%s|%s|%s", a->login, a->tenant, a->client) == -1) {
    ferry_error("out of memory");
    return -1;
  }
  pthread_mutex_lock(&token_lock);
  if (token_value == NULL || strcmp(token_key, key) != 0 ||
      time(NULL) + TOKEN_MARGIN >= token_expires) {
    char *fresh = NULL;

    token_drop();
    if (token_fetch(a, &fresh) == -1) {
      rc = -1;
    } else {
      time_t exp = token_expires;

      token_drop();
      token_value = fresh;
      token_key = key;
      key = NULL;
      token_expires = exp;
    }
  }
  if (rc == 0 && (*out = strdup(token_value)) == NULL) {
    ferry_error("out of memory");
    rc = -1;
  }
  pthread_mutex_unlock(&token_lock);
  return rc;
}

static int arm_sign(void *opaque, struct curl_slist **headers,
                    const char *method, const char *url, const void *body,
                    size_t body_len)
{
  struct arm *a = opaque;
  char *tok = NULL;
  int rc;

  (void)method;
  (void)url;
  (void)body;
  (void)body_len;
  if (token_get(a, &tok) == -1)
    return -1;
  rc = http_header_add(headers, "Authorization: Bearer %s", tok);
  explicit_bzero(tok, strlen(tok));
  free(tok);
  return rc;
}

/* ---- configuration ---- */

static const char *env_required(const char *name, int *missing)
{
  const char *v = getenv(name);

  if (v == NULL || *v == '\0') {
    if (*missing == 0)
      ferry_error("the azure target needs the service principal in "
                  "ferry-server's environment: set %s (docs/TARGETS.md, "
                  "\"azure\")", name);
    *missing = 1;
    return NULL;
  }
  return v;
}

/* A tenant or subscription goes into URL paths: GUIDs and domain names
 * only. */
static int path_safe(const char *s)
{
  for (; *s; s++)
    if (!isalnum((unsigned char)*s) && *s != '-' && *s != '.' && *s != '_')
      return 0;
  return 1;
}

int arm_open(struct arm *a, struct task_ctx *t, json_t *plan)
{
  char *tok = NULL;
  int missing = 0;

  *a = (struct arm){ .t = t };
  a->tenant = env_required("AZURE_TENANT_ID", &missing);
  a->client = env_required("AZURE_CLIENT_ID", &missing);
  a->secret = env_required("AZURE_CLIENT_SECRET", &missing);
  a->sub = env_required("AZURE_SUBSCRIPTION_ID", &missing);
  if (missing)
    return -1;
  if (!path_safe(a->tenant)) {
    ferry_error("AZURE_TENANT_ID is not a tenant id or domain: check it");
    return -1;
  }
  if (!path_safe(a->sub)) {
    ferry_error("AZURE_SUBSCRIPTION_ID is not a subscription id: check it");
    return -1;
  }
  a->arm = cloud_endpoint(plan, "arm", NULL, ARM_DEFAULT);
  a->login = cloud_endpoint(plan, "login", "AZURE_AUTHORITY_HOST",
                            ARM_LOGIN_DEFAULT);
  if (a->arm == NULL || a->login == NULL) {
    ferry_error("out of memory");
    arm_close(a);
    return -1;
  }
  if (token_get(a, &tok) == -1) {
    arm_close(a);
    return -1;
  }
  explicit_bzero(tok, strlen(tok));
  free(tok);
  return 0;
}

void arm_close(struct arm *a)
{
  free(a->arm);
  free(a->login);
  a->arm = a->login = NULL;
}

char *arm_id(struct arm *a, const char *rg, const char *provider,
             const char *name)
{
  char *id;

  if (asprintf(&id, "/subscriptions/%s/resourceGroups/%s/providers/%s/%s",
               a->sub, rg, provider, name) == -1) {
    ferry_error("out of memory");
    return NULL;
  }
  return id;
}

/* ---- requests ---- */

/* "Azure WHAT at HOST: HTTP N CODE: MESSAGE" with what to check. */
static void arm_fail(struct arm *a, const char *what, const char *url,
                     const struct http_response *resp)
{
  CLEANUP_JSON json_t *j = NULL;
  json_t *e;
  const char *code = NULL, *msg = NULL, *hint = "";
  char host[256], line[600];

  j = json_loadb(resp->body ? resp->body : "", resp->body_len, 0, NULL);
  e = json_object_get(j, "error");
  code = json_string_value(json_object_get(e, "code"));
  msg = json_string_value(json_object_get(e, "message"));
  http_host(url, host, sizeof host);
  if (resp->status == 401)
    hint = ": check the service principal (AZURE_TENANT_ID, "
           "AZURE_CLIENT_ID, AZURE_CLIENT_SECRET)";
  else if (resp->status == 403)
    hint = ": give the service principal the ferry role of "
           "docs/TARGETS.md (\"azure\") on the subscription";
  else if (code && strcmp(code, "SubscriptionNotFound") == 0)
    hint = ": check AZURE_SUBSCRIPTION_ID";
  else if (resp->status == 429 || resp->status >= 500)
    hint = ": Azure kept refusing after the retries; run the migration "
           "again later";
  ferry_error("Azure %s at %s: HTTP %ld %s: %s%s", what, host, resp->status,
              code ? code : "(no error code)",
              first_line(msg ? msg : "(no message)", line, sizeof line),
              hint);
  (void)a;
}

/* One request, no LRO: 0 with *resp (caller frees), or -1. */
static int arm_send(struct arm *a, const char *what, const char *method,
                    const char *url, const char *body,
                    struct http_response *resp)
{
  static const char *const hdrs[] = { "Accept: application/json", NULL };
  struct cloud_req r = {
    .what = what, .method = method, .url = url,
    .content_type = body ? "application/json" : NULL,
    .body = body, .body_len = body ? strlen(body) : 0, .headers = hdrs,
    .sign = arm_sign, .sign_opaque = a, .max_seconds = 300,
    .body_cap = 4u << 20,
  };

  *resp = (struct http_response){ 0 };
  return cloud_request(a->t, &r, resp);
}

/* The poll URL the answer names, when it is on the ARM endpoint's own
 * origin (the token goes to ARM and nowhere else).  1 found, 0 none, -1
 * refused. */
static int poll_url(struct arm *a, const struct http_response *resp,
                    const char *header, char *buf, size_t size)
{
  const char *p = strstr(a->arm, "://");
  size_t olen = p ? (size_t)(strchrnul(p + 3, '/') - a->arm) : 0;

  if (http_header(resp, header, buf, size) == NULL || buf[0] == '\0')
    return 0;
  if (olen == 0 || strncmp(buf, a->arm, olen) != 0 ||
      (buf[olen] != '/' && buf[olen] != '\0')) {
    char host[256];

    ferry_error("Azure answered with a %s on another host (%s): refused, "
                "ferry sends its token to the ARM endpoint only", header,
                http_host(buf, host, sizeof host));
    return -1;
  }
  return 1;
}

static unsigned retry_after_ms(const struct http_response *resp)
{
  char v[32];
  long s;

  if (http_header(resp, "Retry-After", v, sizeof v) == NULL)
    return 0;
  s = strtol(v, NULL, 10);
  return s > 0 && s <= 60 ? (unsigned)s * 1000 : s > 60 ? 60000 : 0;
}

struct poll {
  struct arm *a;
  const char *what;
  const char *url;
  int location;            /* Location: 202 = going on, else done */
  json_t *result;          /* Location's final answer */
};

static int poll_check(void *opaque, unsigned *next_ms)
{
  struct poll *p = opaque;
  struct http_response resp;
  CLEANUP_JSON json_t *j = NULL;
  const char *status;
  int rc = -1;

  if (arm_send(p->a, p->what, "GET", p->url, NULL, &resp) == -1)
    goto out;
  *next_ms = retry_after_ms(&resp);
  if (p->location) {
    if (resp.status == 202) {
      rc = 0;
    } else if (resp.status / 100 == 2) {
      json_decref(p->result);
      p->result = resp.body_len ? json_loadb(resp.body, resp.body_len, 0,
                                             NULL) : NULL;
      rc = 1;
    } else {
      arm_fail(p->a, p->what, p->url, &resp);
    }
    goto out;
  }
  if (resp.status / 100 != 2) {
    arm_fail(p->a, p->what, p->url, &resp);
    goto out;
  }
  j = cloud_json(&resp, p->what);
  status = json_string_value(json_object_get(j, "status"));
  if (status == NULL) {
    ferry_error("Azure %s: the operation's status has no \"status\"",
                p->what);
  } else if (strcmp(status, "Succeeded") == 0) {
    rc = 1;
  } else if (strcmp(status, "Failed") == 0 ||
             strcmp(status, "Canceled") == 0) {
    json_t *e = json_object_get(j, "error");
    const char *code = json_string_value(json_object_get(e, "code"));
    const char *msg = json_string_value(json_object_get(e, "message"));
    char line[600];

    ferry_error("Azure %s: the operation %s: %s: %s", p->what,
                strcmp(status, "Failed") == 0 ? "failed" : "was canceled",
                code ? code : "(no error code)",
                first_line(msg ? msg : "(no message)", line, sizeof line));
  } else {
    rc = 0;                         /* InProgress, or a service's own */
  }
out:
  http_response_free(&resp);
  return rc;
}

static int arm_wait(struct arm *a, const char *what, const char *url,
                    int location, unsigned max_seconds, json_t **result)
{
  struct poll p = { .a = a, .what = what, .url = url, .location = location };
  int rc;

  rc = cloud_wait(a->t, what, max_seconds ? max_seconds : 1800,
                  POLL_DEFAULT_MS, poll_check, &p);
  if (rc == 0 && result) {
    *result = p.result;
    p.result = NULL;
  }
  json_decref(p.result);
  return rc;
}

/* A resource whose provisioningState is not final yet: GET it until it
 * is.  (ARM's PUT may answer 201 without a poll URL.) */
struct state_poll {
  struct arm *a;
  const char *what, *url;
};

static int state_check(void *opaque, unsigned *next_ms)
{
  struct state_poll *p = opaque;
  struct http_response resp;
  CLEANUP_JSON json_t *j = NULL;
  const char *st;
  int rc = -1;

  if (arm_send(p->a, p->what, "GET", p->url, NULL, &resp) == -1)
    goto out;
  *next_ms = retry_after_ms(&resp);
  if (resp.status != 200) {
    arm_fail(p->a, p->what, p->url, &resp);
    goto out;
  }
  j = cloud_json(&resp, p->what);
  st = json_string_value(json_object_get(json_object_get(j, "properties"),
                                         "provisioningState"));
  if (st == NULL || strcmp(st, "Succeeded") == 0)
    rc = 1;
  else if (strcmp(st, "Failed") == 0 || strcmp(st, "Canceled") == 0)
    ferry_error("Azure %s: provisioningState %s", p->what, st);
  else
    rc = 0;
out:
  http_response_free(&resp);
  return rc;
}

long arm_call(struct arm *a, const char *what, const char *method,
              const char *path, json_t *body, int ok404,
              unsigned max_seconds, json_t **out)
{
  CLEANUP_FREE char *url = NULL, *text = NULL;
  struct http_response resp = { 0 };
  char async[POLL_URL_MAX], loc[POLL_URL_MAX];
  int has_async, has_loc;
  long status = -1;

  if (out)
    *out = NULL;
  if (asprintf(&url, "%s%s", a->arm, path) == -1) {
    url = NULL;
    ferry_error("out of memory");
    return -1;
  }
  if (body && (text = json_dumps(body, JSON_COMPACT)) == NULL) {
    ferry_error("out of memory");
    return -1;
  }
  if (arm_send(a, what, method, url, text, &resp) == -1)
    goto out;
  if (resp.status == 404 && ok404) {
    status = 404;
    goto out;
  }
  if (resp.status / 100 != 2) {
    arm_fail(a, what, url, &resp);
    goto out;
  }
  if ((has_async = poll_url(a, &resp, "Azure-AsyncOperation", async,
                            sizeof async)) == -1 ||
      (has_loc = poll_url(a, &resp, "Location", loc, sizeof loc)) == -1)
    goto out;
  status = resp.status;
  if (strcmp(method, "PUT") == 0) {
    CLEANUP_JSON json_t *j = NULL;
    const char *st = NULL;

    if (resp.body_len)
      j = cloud_json(&resp, what);
    st = json_string_value(json_object_get(json_object_get(j, "properties"),
                                           "provisioningState"));
    if (has_async) {
      if (arm_wait(a, what, async, 0, max_seconds, NULL) == -1)
        goto fail;
    } else if (st && strcmp(st, "Succeeded") != 0) {
      struct state_poll sp = { .a = a, .what = what, .url = url };

      if (cloud_wait(a->t, what, max_seconds ? max_seconds : 1800,
                     POLL_DEFAULT_MS, state_check, &sp) == -1)
        goto fail;
    } else if (j && out) {
      *out = j;
      j = NULL;
      goto out;
    }
    if (out) {
      http_response_free(&resp);
      if (arm_send(a, what, "GET", url, NULL, &resp) == -1)
        goto fail;
      if (resp.status != 200) {
        arm_fail(a, what, url, &resp);
        goto fail;
      }
      if ((*out = cloud_json(&resp, what)) == NULL)
        goto fail;
    }
    goto out;
  }
  if (resp.status == 202 && (has_async || has_loc)) {
    if (has_async && arm_wait(a, what, async, 0, max_seconds, NULL) == -1)
      goto fail;
    if (has_loc && strcmp(method, "POST") == 0) {
      if (arm_wait(a, what, loc, 1, max_seconds, out) == -1)
        goto fail;
    } else if (has_loc && !has_async) {
      if (arm_wait(a, what, loc, 1, max_seconds, NULL) == -1)
        goto fail;
    }
    goto out;
  }
  if (out && resp.body_len && (*out = cloud_json(&resp, what)) == NULL)
    goto fail;
  goto out;
fail:
  status = -1;
out:
  http_response_free(&resp);
  return status;
}
