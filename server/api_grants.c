/* api_grants.c - store grants: no cloud credentials on source servers.
 *
 * An agent cloning a disk writes its image straight to object storage,
 * but holds no key to it: for each object it is about to write or read
 * it asks here, and the server signs a grant with its own credentials
 * (store.h's grant op: a presigned URL, or a SAS for the one blob) that
 * lasts --grant-ttl seconds.  A grant is given only
 *
 *   - for a clone or sync task of the agent's own host that runs on this
 *     agent now, and whose spec says store_access "grant";
 *   - for a key of that task's image (image_key_check: manifest.json,
 *     generations/N.json, tables/<sha256>.tsv, chunks/<sha256>[.gz|.zst]),
 *     relative to the image's prefix, so never another host's or disk's;
 *   - for GET, HEAD or PUT: never DELETE, never a listing of the bucket.
 *     A PUT names its payload's SHA-256 and size, which S3 and GCS check
 *     (signed headers); a raw chunk's or a table's SHA-256 must be the one
 *     its key names.
 *
 * Listings for resume come from the server, limited to the image's
 * prefix, a page at a time (GET .../objects). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api.h"
#include "db.h"
#include "image/image.h"
#include "image/names.h"
#include "store/store.h"
#include "util/cleanup.h"
#include "util/error.h"
#include "util/log.h"

/* the chunk table is one PUT: 5 GiB is S3's limit for one, and 4 GiB of
 * table (80 bytes a chunk) is a 200 TB disk */
#define GRANT_TABLE_MAX (4ull << 30)
#define GRANT_TOKEN_MAX 4096

/* The spec of the task {id} when this agent may have grants for it now;
 * NULL after replying otherwise. */
static json_t *granted_spec(struct request *r, enum MHD_Result *ret)
{
  long long id = request_id(r, 0);
  const char *state, *kind, *access;
  json_t *t, *spec;

  if (id <= 0) {
    *ret = reply_error(r, 400, "id", "task id '%s' is not a positive "
                       "integer", r->params[0]);
    return NULL;
  }
  db_lock();
  t = db_query_one(r->srv->db, "SELECT state, agent_id, kind, spec AS "
                   "spec_json FROM tasks WHERE id = ?1 AND host_id = ?2",
                   "ii", id, r->agent_host_id);
  db_unlock();
  if (t == NULL) {
    *ret = reply_error(r, 500, NULL, "%s", ferry_errmsg());
    return NULL;
  }
  if (json_is_null(t)) {
    *ret = reply_error(r, 404, "id", "no task %lld for this agent's host",
                       id);
    return NULL;
  }
  state = json_string_value(json_object_get(t, "state"));
  kind = json_string_value(json_object_get(t, "kind"));
  spec = json_object_get(t, "spec");
  access = json_string_value(json_object_get(spec, "store_access"));
  if (kind == NULL || (strcmp(kind, "clone") && strcmp(kind, "sync"))) {
    *ret = reply_error(r, 403, "id", "task %lld is not a clone or sync "
                       "task: only those get store grants", id);
  } else if (state == NULL || strcmp(state, "running") ||
             json_integer_value(json_object_get(t, "agent_id")) !=
               r->agent_id) {
    *ret = reply_error(r, 409, "id", "task %lld is not running on this "
                       "agent: grants are given only while it runs", id);
  } else if (access == NULL || strcmp(access, "grant") ||
             !json_is_string(json_object_get(spec, "image"))) {
    *ret = reply_error(r, 403, "id", "task %lld uses the store directly "
                       "(store_access is not \"grant\"): no grants", id);
  } else {
    spec = json_incref(spec);
    json_decref(t);
    return spec;
  }
  json_decref(t);
  return NULL;
}

/* The largest payload a PUT grant may carry for a key of kind. */
static uint64_t size_cap(int kind)
{
  switch (kind) {
  case IMAGE_KEY_CHUNK:
  case IMAGE_KEY_CHUNK_ENCODED:
    return IMAGE_CHUNK_MAX;
  case IMAGE_KEY_TABLE:
    return GRANT_TABLE_MAX;
  default:
    return IMAGE_MANIFEST_MAX;
  }
}

static int is_hex64(const char *s)
{
  size_t i;

  for (i = 0; s && i < 64; i++)
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
      return 0;
  return s && s[64] == '\0';
}

/* POST /v1/agent/tasks/{id}/grants {"grants": [{"method", "key",
 * "sha256", "size"}, ...]} -> {"expires_in", "expires", "grants": [{"key",
 * "method", "url", "headers": [...]}, ...]} in the same order. */
enum MHD_Result api_agent_grants(struct request *r)
{
  CLEANUP_JSON json_t *body = NULL, *spec = NULL, *out = NULL;
  struct store *s = NULL;
  enum MHD_Result ret;
  json_t *items, *it;
  unsigned ttl = r->srv->grant_ttl;
  char field[48], expires[32];
  time_t until;
  struct tm tm;
  size_t i;

  body = request_json(r, &ret);
  if (body == NULL)
    return ret;
  items = json_object_get(body, "grants");
  if (!json_is_array(items) || json_array_size(items) == 0 ||
      json_array_size(items) > 64)
    return reply_error(r, 400, "grants", "field 'grants' must be an array "
                       "of 1 to 64 {\"method\", \"key\", \"sha256\", "
                       "\"size\"} objects");
  /* every item is checked before anything is signed */
  json_array_foreach(items, i, it) {
    const char *method = json_string_value(json_object_get(it, "method"));
    json_t *key = json_object_get(it, "key");
    const char *sha = json_string_value(json_object_get(it, "sha256"));
    json_t *size = json_object_get(it, "size");
    char hex[65];
    int kind;

    snprintf(field, sizeof field, "grants[%zu]", i);
    if (method == NULL || (strcmp(method, "GET") && strcmp(method, "HEAD") &&
                           strcmp(method, "PUT")))
      return reply_error(r, 400, field, "%s.method must be GET, HEAD or "
                         "PUT: an agent is never granted anything else (no "
                         "DELETE)", field);
    kind = json_is_string(key)
           ? image_key_check(json_string_value(key), json_string_length(key),
                             hex) : -1;
    if (kind == -1)
      return reply_error(r, 400, field, "%s.key %s", field,
                         json_is_string(key) ? ferry_errmsg()
                                             : "must be a string");
    if (strcmp(method, "PUT") != 0)
      continue;
    if (!is_hex64(sha) || !json_is_integer(size) ||
        json_integer_value(size) < 0 ||
        (uint64_t)json_integer_value(size) > size_cap(kind))
      return reply_error(r, 400, field, "a PUT grant needs %s.sha256 (64 "
                         "lower-case hex digits of the exact payload) and "
                         "%s.size (0 to %llu bytes for this key)", field,
                         field, (unsigned long long)size_cap(kind));
    if ((kind == IMAGE_KEY_CHUNK || kind == IMAGE_KEY_TABLE) &&
        strcmp(sha, hex) != 0)
      return reply_error(r, 400, field, "%s.sha256 is not the digest the "
                         "key names: a plain chunk or a table is stored "
                         "under its own SHA-256", field);
  }
  spec = granted_spec(r, &ret);
  if (spec == NULL)
    return ret;
  s = store_open(json_string_value(json_object_get(spec, "image")));
  if (s == NULL)
    return reply_error(r, 500, NULL, "the server cannot open the task's "
                       "store: %s", ferry_errmsg());
  out = json_array();
  json_array_foreach(items, i, it) {
    const char *method = json_string_value(json_object_get(it, "method"));
    const char *key = json_string_value(json_object_get(it, "key"));
    json_t *sha = json_object_get(it, "sha256");
    struct store_grant g;
    json_t *hdrs = json_array(), *one;
    size_t k;

    if (store_grant(s, key, method, ttl, json_string_value(sha),
                    (uint64_t)json_integer_value(json_object_get(it, "size")),
                    &g) == -1) {
      json_decref(hdrs);
      store_close(s);
      return reply_error(r, 500, NULL, "the server cannot sign a grant "
                         "for the task's store: %s", ferry_errmsg());
    }
    for (k = 0; k < STORE_GRANT_HEADERS && g.headers[k]; k++)
      json_array_append_new(hdrs, json_string(g.headers[k]));
    one = json_pack("{s:s, s:s, s:s, s:o}", "key", key, "method", method,
                    "url", g.url, "headers", hdrs);
    store_grant_free(&g);
    if (one == NULL || json_array_append_new(out, one) == -1) {
      store_close(s);
      return reply_error(r, 500, NULL, "out of memory");
    }
  }
  store_close(s);
  log_debug("task %s: %zu grants for agent %lld", r->params[0],
            json_array_size(out), r->agent_id);
  until = time(NULL) + ttl;
  gmtime_r(&until, &tm);
  strftime(expires, sizeof expires, "%Y-%m-%dT%H:%M:%SZ", &tm);
  ret = reply_json(r, 200, json_pack("{s:i, s:s, s:O}", "expires_in",
                                     (int)ttl, "expires", expires, "grants",
                                     out));
  return ret;
}

static int list_one(void *opaque, const char *key, uint64_t size)
{
  json_t *o;

  /* only the image's own keys: nothing else under its prefix is shown */
  if (image_key_check(key, strlen(key), NULL) == -1)
    return 0;
  o = json_pack("{s:s, s:I}", "key", key, "size", (json_int_t)size);
  if (o == NULL || json_array_append_new(opaque, o) == -1) {
    ferry_error("out of memory");
    return -1;
  }
  return 0;
}

/* GET /v1/agent/tasks/{id}/objects?prefix=chunks/&token=T -> {"objects":
 * [{"key", "size"}, ...], "next": T or null}: one page of the task's
 * image, under one of its folders. */
enum MHD_Result api_agent_objects(struct request *r)
{
  static const char *const folders[] = { "chunks/", "tables/",
                                         "generations/" };
  CLEANUP_JSON json_t *spec = NULL, *objs = NULL;
  const char *prefix = request_arg(r, "prefix");
  const char *token = request_arg(r, "token");
  CLEANUP_FREE char *next = NULL;
  enum MHD_Result ret;
  struct store *s;
  size_t i;
  int ok = 0;

  for (i = 0; prefix && i < sizeof folders / sizeof folders[0]; i++)
    ok |= strcmp(prefix, folders[i]) == 0;
  if (!ok)
    return reply_error(r, 400, "prefix", "query 'prefix' must be chunks/, "
                       "tables/ or generations/: an agent lists only its "
                       "image's own folders");
  if (token && (*token == '\0' || strlen(token) > GRANT_TOKEN_MAX))
    return reply_error(r, 400, "token", "query 'token' must be the 'next' "
                       "of the previous page");
  spec = granted_spec(r, &ret);
  if (spec == NULL)
    return ret;
  s = store_open(json_string_value(json_object_get(spec, "image")));
  if (s == NULL)
    return reply_error(r, 500, NULL, "the server cannot open the task's "
                       "store: %s", ferry_errmsg());
  objs = json_array();
  if (objs == NULL ||
      store_list_page(s, prefix, token, list_one, objs, &next) == -1) {
    store_close(s);
    return reply_error(r, 502, NULL, "the server cannot list the task's "
                       "image: %s", ferry_errmsg());
  }
  store_close(s);
  return reply_json(r, 200, json_pack("{s:O, s:s?}", "objects", objs,
                                      "next", next));
}
