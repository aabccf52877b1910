/* openstack_auth.c - OpenStack credentials, Keystone v3 token and
 * catalog, and JSON requests to the services (openstack.h).
 *
 * Credentials, as the openstack CLI and openstacksdk find them:
 * - OS_CLOUD names a cloud of clouds.yaml, looked for in
 *   $OS_CLIENT_CONFIG_FILE, ./clouds.yaml, ~/.config/openstack/clouds.yaml
 *   and /etc/openstack/clouds.yaml (the first file that exists);
 * - else the OS_* variables (OS_AUTH_URL, OS_USERNAME, OS_PASSWORD,
 *   OS_PROJECT_NAME or OS_PROJECT_ID, OS_USER_DOMAIN_NAME/_ID,
 *   OS_PROJECT_DOMAIN_NAME/_ID, OS_REGION_NAME; or
 *   OS_APPLICATION_CREDENTIAL_ID and OS_APPLICATION_CREDENTIAL_SECRET).
 * Keystone v3 (api-ref identity v3, "Password authentication with scoped
 * authorization" and "Authenticating with an Application Credential"):
 * POST /v3/auth/tokens answers 201 with the token in X-Subject-Token and
 * the catalog in the body. */
#include "openstack.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util/cleanup.h"
#include "util/error.h"
#include "util/log.h"
#include "../yaml.h"

#define CLOUDS_YAML_CAP (1u << 20)
#define OS_BODY_CAP (8u << 20)

static const char *const service_type[OS_N_SERVICES] = {
  [OS_IDENTITY] = "identity", [OS_IMAGE] = "image",
  [OS_NETWORK] = "network", [OS_COMPUTE] = "compute",
  [OS_VOLUME] = "volumev3",
};

/* OS_<SERVICE>_ENDPOINT_OVERRIDE, as openstacksdk reads
 * <service>_endpoint_override */
static const char *const override_env[OS_N_SERVICES] = {
  [OS_IDENTITY] = NULL, [OS_IMAGE] = "OS_IMAGE_ENDPOINT_OVERRIDE",
  [OS_NETWORK] = "OS_NETWORK_ENDPOINT_OVERRIDE",
  [OS_COMPUTE] = "OS_COMPUTE_ENDPOINT_OVERRIDE",
  [OS_VOLUME] = "OS_VOLUME_ENDPOINT_OVERRIDE",
};

/* the blueprint's endpoints: keys, in target_rules.endpoint_keys */
static const char *const endpoint_key[OS_N_SERVICES] = {
  [OS_IDENTITY] = "identity", [OS_IMAGE] = "image",
  [OS_NETWORK] = "network", [OS_COMPUTE] = "compute",
  [OS_VOLUME] = "volume",
};

static const char *cred(struct os_session *s, const char *key)
{
  const char *v = json_string_value(json_object_get(s->cred, key));

  return v && *v ? v : NULL;
}

static void set_str(json_t *o, const char *key, const char *v)
{
  if (v && *v)
    json_object_set_new(o, key, json_string(v));
}

/* The OS_* variables into s->cred. */
static int cred_from_env(struct os_session *s)
{
  static const char *const vars[][2] = {
    { "auth_url", "OS_AUTH_URL" }, { "username", "OS_USERNAME" },
    { "password", "OS_PASSWORD" }, { "project_name", "OS_PROJECT_NAME" },
    { "project_id", "OS_PROJECT_ID" },
    { "user_domain_name", "OS_USER_DOMAIN_NAME" },
    { "user_domain_id", "OS_USER_DOMAIN_ID" },
    { "project_domain_name", "OS_PROJECT_DOMAIN_NAME" },
    { "project_domain_id", "OS_PROJECT_DOMAIN_ID" },
    { "region_name", "OS_REGION_NAME" },
    { "application_credential_id", "OS_APPLICATION_CREDENTIAL_ID" },
    { "application_credential_secret",
      "OS_APPLICATION_CREDENTIAL_SECRET" },
    { "interface", "OS_INTERFACE" },
  };
  size_t i;

  s->cred = json_object();
  for (i = 0; i < sizeof vars / sizeof vars[0]; i++)
    set_str(s->cred, vars[i][0], getenv(vars[i][1]));
  /* the older name of the project, which openstackclient still reads */
  if (!cred(s, "project_name"))
    set_str(s->cred, "project_name", getenv("OS_TENANT_NAME"));
  snprintf(s->where, sizeof s->where, "the OS_* variables of ferry-server "
           "(OS_AUTH_URL, OS_USERNAME, OS_PASSWORD, OS_PROJECT_NAME, "
           "OS_USER_DOMAIN_NAME, OS_PROJECT_DOMAIN_NAME; or "
           "OS_APPLICATION_CREDENTIAL_ID and "
           "OS_APPLICATION_CREDENTIAL_SECRET)");
  return 0;
}

/* A clouds.yaml value as a string: YAML reads a plain 12345 as a
 * number. */
static void copy_scalar(json_t *to, const char *key, json_t *v)
{
  char num[32];

  if (json_is_string(v))
    set_str(to, key, json_string_value(v));
  else if (json_is_integer(v)) {
    snprintf(num, sizeof num, "%lld", (long long)json_integer_value(v));
    set_str(to, key, num);
  }
}

/* clouds[name] of the first clouds.yaml found into s->cred. */
static int cred_from_clouds_yaml(struct os_session *s, const char *name)
{
  char paths[4][512];
  const char *home = getenv("HOME"), *env = getenv("OS_CLIENT_CONFIG_FILE");
  const char *path = NULL;
  CLEANUP_FREE char *text = NULL;
  CLEANUP_JSON json_t *doc = NULL, *lines = NULL;
  json_t *cloud, *auth, *v;
  const char *key;
  size_t n = 0, i, len;
  FILE *f;

  if (env && *env)
    snprintf(paths[n++], sizeof paths[0], "%s", env);
  snprintf(paths[n++], sizeof paths[0], "./clouds.yaml");
  if (home && *home)
    snprintf(paths[n++], sizeof paths[0], "%s/.config/openstack/clouds.yaml",
             home);
  snprintf(paths[n++], sizeof paths[0], "/etc/openstack/clouds.yaml");
  for (i = 0; i < n && path == NULL; i++)
    if (access(paths[i], F_OK) == 0)
      path = paths[i];
  if (path == NULL) {
    ferry_error("OS_CLOUD is '%s' but no clouds.yaml was found (looked in "
                "%s%s./clouds.yaml, ~/.config/openstack/clouds.yaml and "
                "/etc/openstack/clouds.yaml): write the cloud's entry "
                "there, or unset OS_CLOUD and set the OS_* variables", name,
                env && *env ? env : "", env && *env ? ", " : "");
    return -1;
  }
  f = fopen(path, "re");
  if (f == NULL) {
    ferry_error("cannot read %s: %m", path);
    return -1;
  }
  text = malloc(CLOUDS_YAML_CAP + 1);
  len = text ? fread(text, 1, CLOUDS_YAML_CAP + 1, f) : 0;
  fclose(f);
  if (text == NULL || len > CLOUDS_YAML_CAP) {
    ferry_error("%s: %s", path, text ? "larger than 1 MiB" : "out of memory");
    return -1;
  }
  doc = yaml_to_json(text, len, &lines);
  if (doc == NULL) {
    ferry_error_prefix("%s: ", path);
    return -1;
  }
  cloud = json_object_get(json_object_get(doc, "clouds"), name);
  if (!json_is_object(cloud)) {
    ferry_error("%s has no cloud '%s' under clouds: (OS_CLOUD names it): "
                "add it, or set OS_CLOUD to one of its clouds", path, name);
    return -1;
  }
  s->cred = json_object();
  auth = json_object_get(cloud, "auth");
  json_object_foreach(auth, key, v)
    copy_scalar(s->cred, key, v);
  copy_scalar(s->cred, "region_name", json_object_get(cloud, "region_name"));
  copy_scalar(s->cred, "interface", json_object_get(cloud, "interface"));
  copy_scalar(s->cred, "auth_type", json_object_get(cloud, "auth_type"));
  snprintf(s->where, sizeof s->where, "the auth: of cloud '%.200s' in %.500s "
           "(auth_url, username, password, project_name, "
           "user_domain_name, project_domain_name; or "
           "application_credential_id and application_credential_secret)",
           name, path);
  return 0;
}

/* {"name": N, "domain": {"name"|"id": D}} or {"id": ID} */
static json_t *scoped(struct os_session *s, const char *id_key,
                      const char *name_key, const char *dname_key,
                      const char *did_key)
{
  json_t *o = json_object(), *dom = json_object();

  if (cred(s, id_key)) {
    json_decref(dom);
    json_object_set_new(o, "id", json_string(cred(s, id_key)));
    return o;
  }
  json_object_set_new(o, "name", json_string(cred(s, name_key)));
  if (cred(s, dname_key))
    json_object_set_new(dom, "name", json_string(cred(s, dname_key)));
  else   /* Keystone's default domain, as openstackclient assumes */
    json_object_set_new(dom, "id", json_string(cred(s, did_key)
                                               ? cred(s, did_key)
                                               : "default"));
  json_object_set_new(o, "domain", dom);
  return o;
}

static json_t *auth_body(struct os_session *s)
{
  json_t *id;

  if (cred(s, "application_credential_id")) {
    id = json_pack("{s:[s], s:{s:s, s:s}}", "methods",
                   "application_credential", "application_credential",
                   "id", cred(s, "application_credential_id"), "secret",
                   cred(s, "application_credential_secret")
                     ? cred(s, "application_credential_secret") : "");
    return json_pack("{s:{s:o}}", "auth", "identity", id);
  }
  id = json_pack("{s:[s], s:{s:o}}", "methods", "password", "password",
                 "user", scoped(s, "user_id", "username",
                                "user_domain_name", "user_domain_id"));
  json_object_set_new(json_object_get(json_object_get(id, "password"),
                                      "user"),
                      "password", json_string(cred(s, "password")));
  return json_pack("{s:{s:o, s:{s:o}}}", "auth", "identity", id, "scope",
                   "project", scoped(s, "project_id", "project_name",
                                     "project_domain_name",
                                     "project_domain_id"));
}

/* What is missing from the credentials, or NULL. */
static const char *missing(struct os_session *s)
{
  if (!cred(s, "auth_url"))
    return "auth_url (OS_AUTH_URL)";
  if (cred(s, "application_credential_id"))
    return cred(s, "application_credential_secret")
      ? NULL : "application_credential_secret "
               "(OS_APPLICATION_CREDENTIAL_SECRET)";
  if (!cred(s, "username") && !cred(s, "user_id"))
    return "username (OS_USERNAME)";
  if (!cred(s, "password"))
    return "password (OS_PASSWORD)";
  if (!cred(s, "project_name") && !cred(s, "project_id"))
    return "project_name (OS_PROJECT_NAME)";
  return NULL;
}

static int sign_token(void *opaque, struct curl_slist **headers,
                      const char *method, const char *url, const void *body,
                      size_t body_len)
{
  struct os_session *s = opaque;

  (void)method;
  (void)url;
  (void)body;
  (void)body_len;
  return os_auth_header(s, headers);
}

int os_auth_header(struct os_session *s, struct curl_slist **headers)
{
  if (s->token == NULL) {
    ferry_error("no OpenStack token");
    return -1;
  }
  return http_header_add(headers, "X-Auth-Token: %s", s->token);
}

/* The catalog's URL of type for the region and interface. */
static char *catalog_url(struct os_session *s, json_t *catalog,
                         const char *type)
{
  const char *iface = cred(s, "interface") ? cred(s, "interface")
                                           : "public";
  json_t *svc, *ep;
  size_t i, j;

  if (strncmp(iface, "public", 6) == 0)   /* "publicURL", v2 style */
    iface = "public";
  json_array_foreach(catalog, i, svc) {
    const char *ty = json_string_value(json_object_get(svc, "type"));

    if (ty == NULL || strcmp(ty, type) != 0)
      continue;
    json_array_foreach(json_object_get(svc, "endpoints"), j, ep) {
      const char *in = json_string_value(json_object_get(ep, "interface"));
      const char *rg = json_string_value(json_object_get(ep, "region_id"));
      const char *url = json_string_value(json_object_get(ep, "url"));

      if (rg == NULL)
        rg = json_string_value(json_object_get(ep, "region"));
      if (in && url && strcmp(in, iface) == 0 &&
          (s->region == NULL || (rg && strcmp(rg, s->region) == 0)))
        return strdup(url);
    }
  }
  return NULL;
}

static void strip_slash(char *u)
{
  size_t n = u ? strlen(u) : 0;

  while (n > 0 && u[n - 1] == '/')
    u[--n] = '\0';
}

/* POST /v3/auth/tokens: s->token and s->url[]. */
static int authenticate(struct os_session *s)
{
  CLEANUP_FREE char *identity = NULL, *url = NULL, *text = NULL;
  CLEANUP_JSON json_t *body = NULL, *ans = NULL;
  struct http_response resp = { 0 };
  char tok[4096], hint[1300];
  struct cloud_req r = { 0 };
  json_t *catalog;
  size_t n;
  int i;

  identity = cloud_endpoint(s->plan, "identity", NULL, cred(s, "auth_url"));
  if (identity == NULL) {
    ferry_error("no OpenStack auth URL: set auth_url in %s", s->where);
    return -1;
  }
  n = strlen(identity);
  if (asprintf(&url, "%s%s/auth/tokens", identity,
               n >= 3 && strcmp(identity + n - 3, "/v3") == 0 ? "" : "/v3")
      == -1) {
    url = NULL;
    ferry_error("out of memory");
    return -1;
  }
  body = auth_body(s);
  text = json_dumps(body, JSON_COMPACT);
  if (text == NULL) {
    ferry_error("out of memory");
    return -1;
  }
  r.what = "Keystone token (POST /v3/auth/tokens)";
  r.method = "POST";
  r.url = url;
  r.content_type = "application/json";
  r.body = text;
  r.body_len = strlen(text);
  r.body_cap = OS_BODY_CAP;      /* the catalog of a big cloud */
  r.attempts = 3;
  r.max_seconds = 60;
  i = cloud_request(s->t, &r, &resp);
  explicit_bzero(text, strlen(text));    /* it held the password */
  if (i == -1)
    return -1;
  if (resp.body && resp.body_len)
    ans = json_loadb(resp.body, resp.body_len, 0, NULL);
  if (resp.status == 401 || resp.status == 403) {
    snprintf(hint, sizeof hint, "check %s", s->where);
    os_error("Keystone refused the credentials", resp.status, ans, hint);
    http_response_free(&resp);
    return -1;
  }
  if (resp.status != 201 && resp.status != 200) {
    os_error("Keystone token (POST /v3/auth/tokens)", resp.status, ans,
             "check the auth URL and that Keystone answers v3");
    http_response_free(&resp);
    return -1;
  }
  if (http_header(&resp, "X-Subject-Token", tok, sizeof tok) == NULL) {
    ferry_error("Keystone at %s answered without an X-Subject-Token", url);
    http_response_free(&resp);
    return -1;
  }
  http_response_free(&resp);
  free(s->token);
  s->token = strdup(tok);
  explicit_bzero(tok, sizeof tok);
  catalog = json_object_get(json_object_get(ans, "token"), "catalog");
  for (i = 0; i < OS_N_SERVICES; i++) {
    char *from_catalog = catalog_url(s, catalog, service_type[i]);

    if (i == OS_VOLUME && from_catalog == NULL)
      from_catalog = catalog_url(s, catalog, "block-storage");
    if (i == OS_IDENTITY && from_catalog == NULL)
      from_catalog = strdup(identity);
    free(s->url[i]);
    s->url[i] = cloud_endpoint(s->plan, endpoint_key[i], override_env[i],
                               from_catalog);
    free(from_catalog);
    strip_slash(s->url[i]);
  }
  return s->token ? 0 : -1;
}

int os_session_open(struct os_session *s, struct task_ctx *t, json_t *plan)
{
  const char *cloud = getenv("OS_CLOUD"), *m, *region;

  *s = (struct os_session){ .t = t, .plan = plan };
  if (cloud && *cloud) {
    if (cred_from_clouds_yaml(s, cloud) == -1)
      return -1;
  } else if (getenv("OS_AUTH_URL") == NULL &&
             cloud_endpoint(plan, "identity", NULL, NULL) == NULL) {
    ferry_error("no OpenStack credentials on ferry-server: set OS_CLOUD "
                "to a cloud of clouds.yaml, or the OS_* variables "
                "(OS_AUTH_URL, OS_USERNAME, OS_PASSWORD, OS_PROJECT_NAME, "
                "OS_USER_DOMAIN_NAME, OS_PROJECT_DOMAIN_NAME) in "
                "ferry-server's environment");
    return -1;
  } else {
    cred_from_env(s);
  }
  if ((m = missing(s)) != NULL &&
      !(strncmp(m, "auth_url", 8) == 0 &&
        cloud_endpoint(plan, "identity", NULL, NULL) != NULL)) {
    ferry_error("the OpenStack credentials lack %s: set it in %s", m,
                s->where);
    return -1;
  }
  /* the blueprint's region wins over the credentials' */
  region = cloud_plan_str(plan, "region");
  if (region == NULL)
    region = cred(s, "region_name");
  s->region = region ? strdup(region) : NULL;
  return authenticate(s);
}

void os_session_close(struct os_session *s)
{
  int i;

  if (s->token) {
    explicit_bzero(s->token, strlen(s->token));
    free(s->token);
  }
  for (i = 0; i < OS_N_SERVICES; i++)
    free(s->url[i]);
  json_decref(s->cred);   /* the password: jansson frees, not zeroes */
  free(s->region);
  *s = (struct os_session){ 0 };
}

char *os_url(struct os_session *s, enum os_service svc, const char *path)
{
  char *u;

  if (s->url[svc] == NULL) {
    ferry_error("the OpenStack catalog has no %s endpoint (interface %s%s%s"
                "): check the region, or set endpoints.%s in the blueprint",
                service_type[svc],
                cred(s, "interface") ? cred(s, "interface") : "public",
                s->region ? ", region " : "", s->region ? s->region : "",
                endpoint_key[svc]);
    return NULL;
  }
  if (asprintf(&u, "%s%s", s->url[svc], path) == -1) {
    ferry_error("out of memory");
    return NULL;
  }
  return u;
}

/* Messages of the services' error bodies: Keystone {"error": {message,
 * code, title}}, Neutron {"NeutronError": {type, message}}, Nova
 * {"badRequest": {message, code}}, Glance text or {"message": ...}. */
void os_error(const char *what, long status, json_t *body, const char *hint)
{
  const char *code = NULL, *msg = NULL, *key;
  json_t *v;
  char buf[400];

  if (json_is_string(body)) {
    msg = json_string_value(body);
  } else if (json_is_object(body)) {
    json_object_foreach(body, key, v) {
      if (json_is_object(v) && json_object_get(v, "message")) {
        msg = json_string_value(json_object_get(v, "message"));
        code = json_string_value(json_object_get(v, "type"));
        if (code == NULL)
          code = json_string_value(json_object_get(v, "title"));
        if (code == NULL)
          code = key;
        break;
      }
      if (strcmp(key, "message") == 0 && json_is_string(v))
        msg = json_string_value(v);
    }
  }
  snprintf(buf, sizeof buf, "%s", msg ? msg : "(no message)");
  for (char *p = buf; *p; p++)
    if (*p == '\n' || *p == '\r')
      *p = ' ';
  /* Glance echoes the URL it was given: a presigned URL's query is a
   * credential, never to be logged */
  for (char *p = strstr(buf, "://"); p; p = strstr(p + 3, "://")) {
    char *q = p + strcspn(p, "? \"'<");
    size_t rest;

    if (*q != '?')
      continue;
    rest = strcspn(q, " \"'<");
    memmove(q + 1, q + rest, strlen(q + rest) + 1);
    *q = '?';
    if (strlen(buf) + 9 < sizeof buf) {
      memmove(q + 9, q + 1, strlen(q + 1) + 1);
      memcpy(q + 1, "REDACTED", 8);
    }
  }
  ferry_error("%s failed: HTTP %ld %s%s%s%s%s", what, status,
              code ? code : "", code ? ": " : "", buf, hint ? "; " : "",
              hint ? hint : "");
}

int os_call(struct os_session *s, enum os_service svc, const char *what,
            const char *method, const char *path, json_t *body,
            json_t **out)
{
  CLEANUP_FREE char *url = os_url(s, svc, path), *text = NULL;
  struct http_response resp = { 0 };
  struct cloud_req r = { 0 };
  int again, status = -1;

  *out = NULL;
  if (url == NULL)
    return -1;
  if (body && (text = json_dumps(body, JSON_COMPACT)) == NULL) {
    ferry_error("out of memory");
    return -1;
  }
  r.what = what;
  r.method = method;
  r.url = url;
  r.content_type = body ? "application/json" : NULL;
  r.body = text;
  r.body_len = text ? strlen(text) : 0;
  r.sign = sign_token;
  r.sign_opaque = s;
  r.body_cap = OS_BODY_CAP;
  for (again = 0; again < 2; again++) {
    if (cloud_request(s->t, &r, &resp) == -1)
      return -1;
    /* a token expires (an hour by default): one more with a new one */
    if (resp.status == 401 && again == 0) {
      http_response_free(&resp);
      if (authenticate(s) == -1)
        return -1;
      continue;
    }
    break;
  }
  status = (int)resp.status;
  if (resp.body && resp.body_len) {
    *out = json_loadb(resp.body, resp.body_len, 0, NULL);
    if (*out == NULL)   /* Glance's and the proxies' text errors */
      *out = json_stringn(resp.body, resp.body_len > 300
                                       ? 300 : resp.body_len);
  }
  http_response_free(&resp);
  if (status >= 500) {
    os_error(what, status, *out, NULL);
    json_decref(*out);
    *out = NULL;
    return -1;
  }
  return status;
}
