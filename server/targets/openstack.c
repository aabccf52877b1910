/* openstack.c - OpenStack (Nova, Glance, Neutron).  Rules: raw or qcow2
 * images over virtio, BIOS or UEFI.
 *
 * Driver (issue 14), each step found before it is made, so that a re-run
 * after a crash goes on where the last one stopped:
 * 1. Neutron, under cloud_network_lock(): the blueprint network holding
 *    the host's subnet, its subnets, a security group with exactly the
 *    blueprint's allow rules as ingress (Neutron's default egress rules
 *    kept), all described and tagged ferry-blueprint=NAME (ledger scope
 *    CLOUD_BLUEPRINT); a port with the host's fixed IP on its subnet
 *    (CLOUD_MIGRATION).
 * 2. Glance: an image per disk, named INSTANCE-DISK, tagged and with
 *    properties from plan.tags; "upload" streams the converted object
 *    from the store into PUT /v2/images/{id}/file (nothing staged
 *    locally), "object" asks Glance to web-download it from a presigned
 *    URL of the store.  A re-run finds the image by name and tag, and
 *    uploads only into an image that is not active.
 * 3. Nova: the flavor named by machine_type, POST /servers booting the
 *    boot disk's image on the port, data disks as Cinder volumes made from
 *    their images (block_device_mapping_v2); wait until ACTIVE.
 * API references: docs.openstack.org/api-ref/{identity,image,network,
 * compute}. */
#include "target.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "openstack.h"
#include "util/cleanup.h"
#include "util/error.h"
#include "util/log.h"
#include "store/store.h"
#include "../tasks.h"

#define UPLOAD_STEP (4u << 20)
#define IMAGE_WAIT_SECONDS 3600
#define SERVER_WAIT_SECONDS 1800
#define DELETE_WAIT_SECONDS 600

/* One create or cleanup. */
struct os_run {
  struct os_session s;
  struct task_ctx *t;
  json_t *plan;
  const char *inst;          /* plan.instance_name */
  json_t *tags;              /* ["ferry-migration=12", ...] */
  char mig_tag[64];          /* "ferry-migration=12" */
  char bp_tag[300];          /* "ferry-blueprint=NAME" */
};

static char *esc(const char *s)
{
  return http_escape(s ? s : "", 0);
}

static int oom(void)
{
  ferry_error("out of memory");
  return -1;
}

/* ---- Neutron ---- */

/* 1 when item carries tag in its tags or as its description. */
static int has_tag(json_t *item, const char *tag)
{
  const char *d = json_string_value(json_object_get(item, "description"));
  json_t *v;
  size_t i;

  if (d && strcmp(d, tag) == 0)
    return 1;
  json_array_foreach(json_object_get(item, "tags"), i, v)
    if (json_is_string(v) && strcmp(json_string_value(v), tag) == 0)
      return 1;
  return 0;
}

/* Neutron's tags of a resource (PUT /v2.0/{plural}/{id}/tags, the
 * standard-attr-tag extension), every plan tag; without the extension
 * the description alone carries ferry's tag. */
static int neutron_tag(struct os_run *r, const char *plural, const char *id,
                       json_t *tags)
{
  CLEANUP_JSON json_t *body = json_pack("{s:O}", "tags", tags), *ans = NULL;
  char path[300], what[120];
  int st;

  snprintf(path, sizeof path, "/v2.0/%s/%s/tags", plural, id);
  snprintf(what, sizeof what, "Neutron tag %s %s", plural, id);
  st = os_call(&r->s, OS_NETWORK, what, "PUT", path, body, &ans);
  if (st == -1)
    return -1;
  if (st == 404 && json_is_string(ans))    /* no tag extension */
    return 0;
  if (st >= 300) {
    os_error(what, st, ans, NULL);
    return -1;
  }
  return 0;
}

/* Find (ledger, then GET ?name=&filter with tag) or create a Neutron
 * resource.  singular "network", plural "networks"; kind/name for the
 * ledger; create: the body's inner object (consumed).  *id: caller
 * frees. */
static int neutron_ensure(struct os_run *r, const char *singular,
                          const char *plural, const char *kind,
                          const char *name, const char *filter,
                          const char *tag, json_t *tags,
                          enum cloud_scope scope, json_t *create, char **id)
{
  CLEANUP_JSON json_t *body = NULL, *ans = NULL;
  CLEANUP_FREE char *ename = esc(name), *known = NULL;
  char path[1024], what[160];
  json_t *item;
  size_t i;
  int st;

  *id = NULL;
  if (ename == NULL) {
    json_decref(create);
    return oom();
  }
  st = cloud_ledger_get(r->t, kind, name, &known);
  if (st == -1)
    goto fail;
  if (st == 1) {
    snprintf(path, sizeof path, "/v2.0/%s/%s", plural, known);
    snprintf(what, sizeof what, "Neutron show %s %s", singular, name);
    st = os_call(&r->s, OS_NETWORK, what, "GET", path, NULL, &ans);
    if (st == -1)
      goto fail;
    if (st == 200) {
      *id = known;
      known = NULL;
      json_decref(create);
      return 0;
    }
    if (st != 404) {
      os_error(what, st, ans, NULL);
      goto fail;
    }
    json_decref(ans);
    ans = NULL;
  }
  snprintf(path, sizeof path, "/v2.0/%s?name=%s%s%s", plural, ename,
           filter ? "&" : "", filter ? filter : "");
  snprintf(what, sizeof what, "Neutron list %s named %s", plural, name);
  st = os_call(&r->s, OS_NETWORK, what, "GET", path, NULL, &ans);
  if (st == -1)
    goto fail;
  if (st != 200) {
    os_error(what, st, ans, NULL);
    goto fail;
  }
  /* the answer's key is the collection: security_groups for
   * security-groups */
  snprintf(what, sizeof what, "%s", plural);
  for (i = 0; what[i]; i++)
    if (what[i] == '-')
      what[i] = '_';
  json_array_foreach(json_object_get(ans, what), i, item) {
    const char *iid = json_string_value(json_object_get(item, "id"));

    if (iid && has_tag(item, tag)) {
      *id = strdup(iid);
      break;
    }
  }
  if (*id == NULL) {
    json_decref(ans);
    ans = NULL;
    json_object_set_new(create, "name", json_string(name));
    json_object_set_new(create, "description", json_string(tag));
    body = json_pack("{s:O}", singular, create);
    snprintf(what, sizeof what, "Neutron create %s %s", singular, name);
    task_ctx_event(r->t, "OpenStack: creating %s %s", singular, name);
    snprintf(path, sizeof path, "/v2.0/%s", plural);
    st = os_call(&r->s, OS_NETWORK, what, "POST", path, body, &ans);
    if (st == -1)
      goto fail;
    if (st != 201 && st != 200) {
      os_error(what, st, ans, NULL);
      goto fail;
    }
    item = json_object_get(json_object_get(ans, singular), "id");
    if (!json_is_string(item)) {
      ferry_error("%s: the answer has no %s.id", what, singular);
      goto fail;
    }
    *id = strdup(json_string_value(item));
  } else {
    log_info("openstack: found %s %s (%s)", singular, name, *id);
  }
  json_decref(create);
  create = NULL;
  if (*id == NULL)
    return oom();
  if (cloud_ledger_put(r->t, kind, name, *id, scope) == -1 ||
      neutron_tag(r, plural, *id, tags) == -1) {
    free(*id);
    *id = NULL;
    return -1;
  }
  return 0;
fail:
  json_decref(create);
  return -1;
}

/* The tags of blueprint-wide resources: ferry-blueprint only (a network
 * outlives the migration that made it). */
static json_t *blueprint_tags(struct os_run *r)
{
  return json_pack("[s]", r->bp_tag);
}

/* allow[].ports: 22 or "8000-8099" (or absent: every port) */
static int port_range(json_t *ports, long *lo, long *hi)
{
  const char *s = json_string_value(ports);
  char *end;

  *lo = *hi = -1;
  if (ports == NULL || json_is_null(ports))
    return 0;
  if (json_is_integer(ports)) {
    *lo = *hi = (long)json_integer_value(ports);
    return 0;
  }
  if (s == NULL)
    return -1;
  *lo = strtol(s, &end, 10);
  *hi = *end == '-' ? strtol(end + 1, &end, 10) : *lo;
  return *end == '\0' && *lo >= 0 && *hi >= *lo && *hi <= 65535 ? 0 : -1;
}

static long rule_int(json_t *rule, const char *key)
{
  json_t *v = json_object_get(rule, key);

  return json_is_integer(v) ? (long)json_integer_value(v) : -1;
}

static const char *rule_str(json_t *rule, const char *key)
{
  const char *v = json_string_value(json_object_get(rule, key));

  return v ? v : "";
}

/* The ingress rules of sg made exactly the blueprint's allow list: the
 * missing ones created, any other ingress rule deleted; egress kept. */
static int sync_rules(struct os_run *r, const char *sg, json_t *allow)
{
  CLEANUP_JSON json_t *ans = NULL, *want = json_array();
  char path[300];
  json_t *a, *rule;
  size_t i, j;
  int st;

  json_array_foreach(allow, i, a) {
    const char *proto = json_string_value(json_object_get(a, "proto"));
    const char *from = json_string_value(json_object_get(a, "from"));
    long lo, hi;

    if (proto == NULL ||
        port_range(json_object_get(a, "ports"), &lo, &hi) == -1) {
      ferry_error("network %s: allow[%zu] is not {proto, ports, from}",
                  json_string_value(json_object_get(
                    json_object_get(r->plan, "network"), "name")), i);
      return -1;
    }
    rule = json_pack("{s:s, s:s, s:s, s:s, s:s}", "security_group_id", sg,
                     "direction", "ingress", "ethertype", "IPv4",
                     "protocol", proto, "remote_ip_prefix",
                     from ? from : "0.0.0.0/0");
    if (lo >= 0 && strcmp(proto, "icmp") != 0) {
      json_object_set_new(rule, "port_range_min", json_integer(lo));
      json_object_set_new(rule, "port_range_max", json_integer(hi));
    }
    json_array_append_new(want, rule);
  }
  snprintf(path, sizeof path,
           "/v2.0/security-group-rules?security_group_id=%s", sg);
  st = os_call(&r->s, OS_NETWORK, "Neutron list security group rules",
               "GET", path, NULL, &ans);
  if (st == -1)
    return -1;
  if (st != 200) {
    os_error("Neutron list security group rules", st, ans, NULL);
    return -1;
  }
  json_array_foreach(json_object_get(ans, "security_group_rules"), i,
                     rule) {
    int keep = 0;

    if (strcmp(rule_str(rule, "direction"), "ingress") != 0)
      continue;
    json_array_foreach(want, j, a) {
      if (json_is_true(json_object_get(a, "_have")) ||
          strcmp(rule_str(rule, "protocol"), rule_str(a, "protocol")) ||
          strcmp(rule_str(rule, "remote_ip_prefix"),
                 rule_str(a, "remote_ip_prefix")) ||
          strcmp(rule_str(rule, "ethertype"), "IPv4") ||
          rule_int(rule, "port_range_min") !=
            rule_int(a, "port_range_min") ||
          rule_int(rule, "port_range_max") != rule_int(a, "port_range_max"))
        continue;
      json_object_set_new(a, "_have", json_true());
      keep = 1;
      break;
    }
    if (!keep) {
      CLEANUP_JSON json_t *del = NULL;

      snprintf(path, sizeof path, "/v2.0/security-group-rules/%s",
               rule_str(rule, "id"));
      task_ctx_event(r->t, "OpenStack: removing an ingress rule the "
                     "blueprint does not allow (%s %s from %s)",
                     rule_str(rule, "protocol"), rule_str(rule, "id"),
                     rule_str(rule, "remote_ip_prefix"));
      st = os_call(&r->s, OS_NETWORK, "Neutron delete security group rule",
                   "DELETE", path, NULL, &del);
      if (st == -1)
        return -1;
      if (st >= 300 && st != 404) {
        os_error("Neutron delete security group rule", st, del, NULL);
        return -1;
      }
    }
  }
  json_array_foreach(want, i, a) {
    CLEANUP_JSON json_t *body = NULL, *made = NULL;

    if (json_is_true(json_object_get(a, "_have")))
      continue;
    body = json_pack("{s:O}", "security_group_rule", a);
    st = os_call(&r->s, OS_NETWORK, "Neutron create security group rule",
                 "POST", "/v2.0/security-group-rules", body, &made);
    if (st == -1)
      return -1;
    if (st != 201 && st != 409) {    /* 409: SecurityGroupRuleExists */
      os_error("Neutron create security group rule", st, made, NULL);
      return -1;
    }
  }
  return 0;
}

struct net_ids {
  char *network, *subnet, *sg, *port;
};

static void net_ids_free(struct net_ids *n)
{
  free(n->network);
  free(n->subnet);
  free(n->sg);
  free(n->port);
}

/* Network, subnets, security group of plan.network, and the host's port;
 * nothing when the blueprint has no network. */
static int ensure_network(struct os_run *r, struct net_ids *ids)
{
  json_t *net = json_object_get(r->plan, "network");
  json_t *host = json_object_get(r->plan, "host"), *sub;
  const char *want_sub = json_string_value(json_object_get(host, "subnet"));
  const char *ip = json_string_value(json_object_get(host, "ip"));
  const char *nname = json_string_value(json_object_get(net, "name"));
  CLEANUP_JSON json_t *bt = blueprint_tags(r);
  CLEANUP_FREE char *filter = NULL;
  json_t *fixed;
  size_t i;
  int rc = -1;

  if (!json_is_object(net) || nname == NULL)
    return 0;
  cloud_network_lock();
  if (neutron_ensure(r, "network", "networks", "network", nname, NULL,
                     r->bp_tag, bt, CLOUD_BLUEPRINT, json_object(),
                     &ids->network) == -1)
    goto out;
  if (asprintf(&filter, "network_id=%s", ids->network) == -1) {
    filter = NULL;
    oom();
    goto out;
  }
  json_array_foreach(json_object_get(net, "subnets"), i, sub) {
    const char *sname = json_string_value(json_object_get(sub, "name"));
    const char *cidr = json_string_value(json_object_get(sub, "cidr"));
    char *sid = NULL;

    if (sname == NULL || cidr == NULL)
      continue;
    if (neutron_ensure(r, "subnet", "subnets", "subnet", sname, filter,
                       r->bp_tag, bt, CLOUD_BLUEPRINT,
                       json_pack("{s:s, s:s, s:i}", "network_id",
                                 ids->network, "cidr", cidr, "ip_version",
                                 4), &sid) == -1)
      goto out;
    if (want_sub && strcmp(want_sub, sname) == 0 && ids->subnet == NULL)
      ids->subnet = sid;
    else
      free(sid);
  }
  if (neutron_ensure(r, "security_group", "security-groups",
                     "security-group", nname, NULL, r->bp_tag, bt,
                     CLOUD_BLUEPRINT, json_object(), &ids->sg) == -1 ||
      sync_rules(r, ids->sg, json_object_get(net, "allow")) == -1)
    goto out;
  cloud_network_unlock();

  fixed = json_object();
  if (ids->subnet)
    json_object_set_new(fixed, "subnet_id", json_string(ids->subnet));
  /* a test launch takes an address Neutron picks on the subnet: the
   * host's stays free for the cutover, which may run beside it */
  if (ip && !json_is_true(json_object_get(r->plan, "test")))
    json_object_set_new(fixed, "ip_address", json_string(ip));
  rc = neutron_ensure(r, "port", "ports", "port", r->inst, filter,
                      r->mig_tag, r->tags, CLOUD_MIGRATION,
                      json_pack("{s:s, s:[o], s:[s]}", "network_id",
                                ids->network, "fixed_ips", fixed,
                                "security_groups", ids->sg), &ids->port);
  return rc;
out:
  cloud_network_unlock();
  return -1;
}

/* ---- Glance ---- */

/* The streamed upload: curl pulls the object from the store, a step at a
 * time, hashing it as Glance will (os_hash_algo sha512). */
struct upload {
  struct os_run *r;
  struct store *st;
  const char *key, *disk;
  uint64_t size, off, next_event;
  char *buf;
  size_t have, pos;
  EVP_MD_CTX *md;
  int failed;
  char err[512];
  char *resp;
  size_t resp_len;
};

static size_t upload_read(char *dst, size_t size, size_t n, void *opaque)
{
  struct upload *u = opaque;
  size_t want = size * n, give;

  if (u->pos == u->have) {
    size_t got = 0, step = UPLOAD_STEP;

    if (u->off >= u->size)
      return 0;
    if (u->size - u->off < step)
      step = (size_t)(u->size - u->off);
    if (store_get(u->st, u->key, u->off, u->buf, step, &got) == -1 ||
        got == 0) {
      snprintf(u->err, sizeof u->err, "%s", got == 0 && !ferry_error_pending()
               ? "the converted object ended early" : ferry_errmsg());
      u->failed = 1;
      return CURL_READFUNC_ABORT;
    }
    EVP_DigestUpdate(u->md, u->buf, got);
    u->off += got;
    u->have = got;
    u->pos = 0;
    if (u->off >= u->next_event) {
      task_ctx_event(u->r->t, "OpenStack: uploaded %llu of %llu MiB of "
                     "disk %s to Glance",
                     (unsigned long long)(u->off >> 20),
                     (unsigned long long)(u->size >> 20), u->disk);
      u->next_event += u->size / 4 + 1;
    }
  }
  give = u->have - u->pos < want ? u->have - u->pos : want;
  memcpy(dst, u->buf + u->pos, give);
  u->pos += give;
  return give;
}

static size_t upload_write(char *p, size_t size, size_t n, void *opaque)
{
  struct upload *u = opaque;
  size_t len = size * n, keep = len;

  if (u->resp_len + keep > 4096)
    keep = 4096 - u->resp_len;
  if (keep) {
    char *nb = realloc(u->resp, u->resp_len + keep + 1);

    if (nb == NULL)
      return 0;
    u->resp = nb;
    memcpy(u->resp + u->resp_len, p, keep);
    u->resp_len += keep;
    u->resp[u->resp_len] = '\0';
  }
  return len;
}

static int upload_progress(void *opaque, curl_off_t a, curl_off_t b,
                           curl_off_t c, curl_off_t d)
{
  struct upload *u = opaque;

  (void)a;
  (void)b;
  (void)c;
  (void)d;
  return task_ctx_stopping(u->r->t);
}

/* PUT /v2/images/{id}/file from the store object at url: 0 with hex (the
 * sha512 of what was sent), -1 with an error. */
static int glance_upload(struct os_run *r, const char *id, const char *url,
                         const char *disk, char hex[129])
{
  struct upload u = { .r = r, .disk = disk };
  struct curl_slist *hdrs = NULL;
  CLEANUP_FREE char *path = NULL, *full = NULL;
  const char *rate = getenv("FERRY_OPENSTACK_MAX_RATE");
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned mdlen = 0, i;
  CURL *c = NULL;
  CURLcode cc;
  long status = 0;
  int rc = -1, h;

  u.st = target_store_object(url, &u.key);
  if (u.st == NULL)
    return -1;
  h = store_head(u.st, u.key, &u.size);
  if (h != 1) {
    if (h == 0)
      ferry_error("the converted disk %s is missing from the store", url);
    goto out;
  }
  if (asprintf(&path, "/v2/images/%s/file", id) == -1) {
    path = NULL;
    oom();
    goto out;
  }
  if ((full = os_url(&r->s, OS_IMAGE, path)) == NULL)
    goto out;
  u.buf = malloc(UPLOAD_STEP);
  u.md = EVP_MD_CTX_new();
  c = curl_easy_init();
  if (u.buf == NULL || u.md == NULL || c == NULL ||
      EVP_DigestInit_ex(u.md, EVP_sha512(), NULL) != 1) {
    oom();
    goto out;
  }
  if (os_auth_header(&r->s, &hdrs) == -1 ||
      http_header_add(&hdrs, "Content-Type: application/octet-stream") ==
        -1 ||
      http_header_add(&hdrs, "Expect:") == -1)
    goto out;
  task_ctx_event(r->t, "OpenStack: uploading disk %s (%llu MiB) into "
                 "Glance image %s", disk,
                 (unsigned long long)(u.size >> 20), id);
  curl_easy_setopt(c, CURLOPT_URL, full);
  curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
  curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)u.size);
  curl_easy_setopt(c, CURLOPT_READFUNCTION, upload_read);
  curl_easy_setopt(c, CURLOPT_READDATA, &u);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, upload_write);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &u);
  curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, upload_progress);
  curl_easy_setopt(c, CURLOPT_XFERINFODATA, &u);
  curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 30L);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1024L);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 300L);
  if (rate && *rate)      /* a shared link: at most this many bytes/s */
    curl_easy_setopt(c, CURLOPT_MAX_SEND_SPEED_LARGE,
                     (curl_off_t)strtoull(rate, NULL, 10));
  u.next_event = u.size / 4 + 1;
  cc = curl_easy_perform(c);
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  if (u.failed) {
    ferry_error("Glance upload of disk %s: reading %s: %s", disk, url,
                u.err);
    goto out;
  }
  if (cc == CURLE_ABORTED_BY_CALLBACK) {
    ferry_error("Glance upload of disk %s stopped: the migration was "
                "canceled or the server is stopping", disk);
    goto out;
  }
  if (cc != CURLE_OK) {
    char hb[300];

    ferry_error("Glance upload of disk %s to %s failed: %s", disk,
                http_host(full, hb, sizeof hb), curl_easy_strerror(cc));
    goto out;
  }
  if (status != 204 && status != 200) {
    CLEANUP_JSON json_t *b = u.resp ? json_loads(u.resp, 0, NULL) : NULL;

    if (b == NULL && u.resp)
      b = json_string(u.resp);
    os_error("Glance upload (PUT /v2/images/ID/file)", status, b, NULL);
    goto out;
  }
  EVP_DigestFinal_ex(u.md, md, &mdlen);
  for (i = 0; i < mdlen; i++)
    snprintf(hex + 2 * i, 3, "%02x", md[i]);
  rc = 0;
out:
  curl_slist_free_all(hdrs);
  if (c)
    curl_easy_cleanup(c);
  EVP_MD_CTX_free(u.md);
  free(u.buf);
  free(u.resp);
  store_close(u.st);
  return rc;
}

/* "object": Glance's interoperable image import, web-download of a
 * presigned URL of the store's object (api-ref image v2, "Import an
 * image"). Glance fetches the object itself; nothing passes through
 * ferry-server. */
static int glance_web_download(struct os_run *r, const char *id,
                               const char *url, const char *disk)
{
  CLEANUP_JSON json_t *info = NULL, *body = NULL, *ans = NULL;
  CLEANUP_FREE char *signed_url = NULL;
  const char *key;
  struct store *st;
  json_t *methods, *m;
  char path[200];
  size_t i;
  int st_code, found = 0;

  st_code = os_call(&r->s, OS_IMAGE, "Glance import methods", "GET",
                    "/v2/info/import", NULL, &info);
  if (st_code == -1)
    return -1;
  methods = json_object_get(json_object_get(info, "import-methods"),
                            "value");
  json_array_foreach(methods, i, m)
    if (json_is_string(m) && strcmp(json_string_value(m), "web-download")
        == 0)
      found = 1;
  if (st_code != 200 || !found) {
    ferry_error("Glance does not offer the web-download import (its "
                "import methods: %s): use import: upload in the blueprint",
                st_code == 200 ? "see GET /v2/info/import" : "none");
    return -1;
  }
  if ((st = target_store_object(url, &key)) == NULL)
    return -1;
  /* a day: Glance may queue the task */
  signed_url = store_presign(st, key, "GET", 86400);
  store_close(st);
  if (signed_url == NULL) {
    ferry_error_prefix("import: object needs a URL Glance can fetch: ");
    return -1;
  }
  body = json_pack("{s:{s:s, s:s}}", "method", "name", "web-download", "uri",
                   signed_url);
  snprintf(path, sizeof path, "/v2/images/%s/import", id);
  task_ctx_event(r->t, "OpenStack: Glance imports disk %s from the store "
                 "(web-download)", disk);
  st_code = os_call(&r->s, OS_IMAGE, "Glance image import", "POST", path,
                    body, &ans);
  if (st_code == -1)
    return -1;
  if (st_code != 202) {
    os_error("Glance image import (web-download)", st_code, ans, NULL);
    return -1;
  }
  return 0;
}

struct image_wait {
  struct os_run *r;
  const char *id;
  json_t *image;       /* the last answer */
  int importing;       /* a failed import returns the image to queued */
};

static int image_check(void *opaque, unsigned *next_ms)
{
  struct image_wait *w = opaque;
  char path[200];
  const char *status, *failed;
  int st;

  (void)next_ms;
  snprintf(path, sizeof path, "/v2/images/%s", w->id);
  json_decref(w->image);
  w->image = NULL;
  st = os_call(&w->r->s, OS_IMAGE, "Glance show image", "GET", path, NULL,
               &w->image);
  if (st == -1)
    return -1;
  if (st != 200) {
    os_error("Glance show image", st, w->image, NULL);
    return -1;
  }
  status = json_string_value(json_object_get(w->image, "status"));
  if (status && strcmp(status, "active") == 0)
    return 1;
  /* a failed import returns the image to queued and names the store in
   * os_glance_failed_import (an empty string until then) */
  failed = json_string_value(json_object_get(w->image,
                                             "os_glance_failed_import"));
  if (failed && *failed == '\0')
    failed = NULL;
  if (status && (strcmp(status, "killed") == 0 ||
                 strcmp(status, "deleted") == 0 ||
                 (w->importing && strcmp(status, "queued") == 0 &&
                  failed))) {
    ferry_error("Glance image %s is %s%s", w->id, status,
                failed ? ": Glance's import failed (openstack image task "
                         "list says why)" : "");
    return -1;
  }
  return 0;
}

/* Body of POST /v2/images for a disk. */
static json_t *image_body(struct os_run *r, const char *name,
                          const char *disk)
{
  const char *fmt = cloud_plan_str(r->plan, "format");
  const char *boot = cloud_plan_str(r->plan, "boot_mode");
  const char *k;
  json_t *b, *v;

  b = json_pack("{s:s, s:s, s:s, s:s, s:O, s:s}", "name", name,
                "disk_format", fmt && strcmp(fmt, "raw") == 0 ? "raw"
                                                              : "qcow2",
                "container_format", "bare", "visibility", "private",
                "tags", r->tags, "ferry_disk", disk);
  /* plan.tags as properties too: Glance filters on them */
  json_object_foreach(json_object_get(r->plan, "tags"), k, v)
    if (json_is_string(v)) {
      char key[80];
      size_t i;

      snprintf(key, sizeof key, "%s", k);
      for (i = 0; key[i]; i++)
        if (key[i] == '-')
          key[i] = '_';
      json_object_set(b, key, v);
    }
  if (boot && strcmp(boot, "uefi") == 0)
    json_object_set_new(b, "hw_firmware_type", json_string("uefi"));
  return b;
}

/* The Glance image of one disk, found or made, holding the converted
 * object's bytes and active: *id (caller frees). */
static int ensure_image(struct os_run *r, json_t *disk, char **id)
{
  const char *dname = json_string_value(json_object_get(disk, "name"));
  const char *out = json_string_value(json_object_get(disk, "output"));
  const char *import = cloud_plan_str(r->plan, "import");
  CLEANUP_FREE char *known = NULL, *ename = NULL, *etag = NULL;
  CLEANUP_JSON json_t *ans = NULL;
  struct image_wait w = { .r = r };
  char name[300], path[1024], sent[129] = "";
  const char *status;
  json_t *img;
  size_t i;
  int st, attempt;

  *id = NULL;
  if (dname == NULL || out == NULL) {
    ferry_error("the plan's disk has no name or converted output");
    return -1;
  }
  snprintf(name, sizeof name, "%s-%s", r->inst, dname);
  ename = esc(name);
  etag = esc(r->mig_tag);
  if (ename == NULL || etag == NULL)
    return oom();
  for (attempt = 0; attempt < 2; attempt++) {
    free(known);
    known = NULL;
    st = cloud_ledger_get(r->t, "image", dname, &known);
    if (st == -1)
      return -1;
    if (st == 1) {
      snprintf(path, sizeof path, "/v2/images/%s", known);
      st = os_call(&r->s, OS_IMAGE, "Glance show image", "GET", path, NULL,
                   &ans);
      if (st == -1)
        return -1;
      if (st == 200) {
        *id = known;
        known = NULL;
      }
    }
    if (*id == NULL) {
      json_decref(ans);
      ans = NULL;
      snprintf(path, sizeof path, "/v2/images?name=%s&tag=%s", ename, etag);
      st = os_call(&r->s, OS_IMAGE, "Glance list images", "GET", path, NULL,
                   &ans);
      if (st == -1)
        return -1;
      if (st != 200) {
        os_error("Glance list images", st, ans, NULL);
        return -1;
      }
      json_array_foreach(json_object_get(ans, "images"), i, img) {
        const char *s = json_string_value(json_object_get(img, "status"));

        if (s && strcmp(s, "deleted") && strcmp(s, "killed") &&
            strcmp(s, "pending_delete")) {
          *id = strdup(json_string_value(json_object_get(img, "id")));
          break;
        }
      }
    }
    if (*id == NULL) {
      CLEANUP_JSON json_t *body = image_body(r, name, dname);

      json_decref(ans);
      ans = NULL;
      task_ctx_event(r->t, "OpenStack: creating Glance image %s", name);
      st = os_call(&r->s, OS_IMAGE, "Glance create image", "POST",
                   "/v2/images", body, &ans);
      if (st == -1)
        return -1;
      if (st != 201) {
        os_error("Glance create image", st, ans, NULL);
        return -1;
      }
      if (!json_is_string(json_object_get(ans, "id"))) {
        ferry_error("Glance create image: the answer has no id");
        return -1;
      }
      *id = strdup(json_string_value(json_object_get(ans, "id")));
    }
    if (*id == NULL)
      return oom();
    if (cloud_ledger_put(r->t, "image", dname, *id, CLOUD_MIGRATION) == -1)
      return -1;
    w.id = *id;
    /* an upload cut short (a killed server) leaves the image saving
     * until Glance notices and returns it to queued */
    for (i = 0; i < 60; i++) {
      st = image_check(&w, NULL);
      status = json_string_value(json_object_get(w.image, "status"));
      if (st != 0 || status == NULL ||
          (strcmp(status, "saving") && strcmp(status, "importing") &&
           strcmp(status, "uploading")))
        break;
      if (task_ctx_stopping(r->t))
        break;
      if (i == 0)
        task_ctx_event(r->t, "OpenStack: Glance image %s is %s from an "
                       "earlier run: waiting for it", *id, status);
      sleep(1);
    }
    if (st == 1)
      break;
    status = json_string_value(json_object_get(w.image, "status"));
    if (st == -1 || status == NULL || strcmp(status, "queued") != 0) {
      /* killed, or stuck saving: made again, once */
      if (attempt == 0 && st != -1) {
        CLEANUP_JSON json_t *del = NULL;

        snprintf(path, sizeof path, "/v2/images/%s", *id);
        task_ctx_event(r->t, "OpenStack: Glance image %s is %s: deleting "
                       "it and making it again", *id,
                       status ? status : "?");
        st = os_call(&r->s, OS_IMAGE, "Glance delete image", "DELETE",
                     path, NULL, &del);
        if (st == -1 || cloud_ledger_gone(r->t, "image", dname) == -1)
          goto fail;
        free(*id);
        *id = NULL;
        continue;
      }
      goto fail;
    }
    /* queued: the data */
    if (import && strcmp(import, "object") == 0) {
      if (glance_web_download(r, *id, out, dname) == -1)
        goto fail;
      w.importing = 1;
    } else if (glance_upload(r, *id, out, dname, sent) == -1) {
      goto fail;
    }
    if (cloud_wait(r->t, "the Glance image to become active",
                   IMAGE_WAIT_SECONDS, 1000, image_check, &w) == -1)
      goto fail;
    break;
  }
  if (*id == NULL)
    goto fail;
  /* the bytes Glance holds are the ones sent */
  if (sent[0]) {
    const char *algo = json_string_value(json_object_get(w.image,
                                                         "os_hash_algo"));
    const char *val = json_string_value(json_object_get(w.image,
                                                        "os_hash_value"));

    if (algo && val && strcmp(algo, "sha512") == 0 && strcmp(val, sent)) {
      ferry_error("Glance image %s holds other bytes than ferry sent for "
                  "disk %s (sha512 %.16s... vs %.16s...): delete it and "
                  "retry the migration", *id, dname, val, sent);
      goto fail;
    }
  }
  json_decref(w.image);
  return 0;
fail:
  json_decref(w.image);
  free(*id);
  *id = NULL;
  return -1;
}

/* ---- Nova ---- */

static int find_flavor(struct os_run *r, const char *want, char **id)
{
  CLEANUP_JSON json_t *ans = NULL;
  char names[400] = "";
  json_t *f;
  size_t i, n = 0;
  int st;

  *id = NULL;
  st = os_call(&r->s, OS_COMPUTE, "Nova list flavors", "GET",
               "/flavors?limit=1000", NULL, &ans);
  if (st == -1)
    return -1;
  if (st != 200) {
    os_error("Nova list flavors", st, ans, NULL);
    return -1;
  }
  json_array_foreach(json_object_get(ans, "flavors"), i, f) {
    const char *fid = json_string_value(json_object_get(f, "id"));
    const char *fname = json_string_value(json_object_get(f, "name"));

    if (fid && fname && (strcmp(fname, want) == 0 || strcmp(fid, want) ==
                         0)) {
      *id = strdup(fid);
      return *id ? 0 : oom();
    }
    if (fname && n < sizeof names - 80)
      n += (size_t)snprintf(names + n, sizeof names - n, "%s%s",
                            n ? ", " : "", fname);
  }
  ferry_error("the OpenStack cloud has no flavor '%s' (machine_type of "
              "host %s): its flavors are %s", want,
              json_string_value(json_object_get(json_object_get(r->plan,
                                                                "host"),
                                                "name")),
              n ? names : "(none)");
  return -1;
}

struct server_wait {
  struct os_run *r;
  const char *id;
  json_t *server;
  int gone;            /* wait for 404 */
};

static int server_check(void *opaque, unsigned *next_ms)
{
  struct server_wait *w = opaque;
  CLEANUP_JSON json_t *ans = NULL;
  const char *status;
  char path[200];
  json_t *fault;
  int st;

  (void)next_ms;
  snprintf(path, sizeof path, "/servers/%s", w->id);
  st = os_call(&w->r->s, OS_COMPUTE, "Nova show server", "GET", path, NULL,
               &ans);
  if (st == -1)
    return -1;
  if (w->gone)
    return st == 404 ? 1 : 0;
  if (st != 200) {
    os_error("Nova show server", st, ans, NULL);
    return -1;
  }
  json_decref(w->server);
  w->server = json_incref(json_object_get(ans, "server"));
  status = json_string_value(json_object_get(w->server, "status"));
  if (status && strcmp(status, "ACTIVE") == 0)
    return 1;
  if (status && (strcmp(status, "ERROR") == 0 ||
                 strcmp(status, "DELETED") == 0)) {
    fault = json_object_get(w->server, "fault");
    ferry_error("Nova server %s is %s: %s%s%s", w->id, status,
                json_is_object(fault) ? "fault " : "no fault recorded",
                json_is_object(fault) ? json_string_value(json_object_get(
                                          fault, "message")) : "",
                json_is_object(fault) ? " (openstack server show says "
                                        "more)" : "");
    return -1;
  }
  return 0;
}

/* The server, found (ledger; by name with ferry's metadata) or made. */
static int ensure_server(struct os_run *r, const char *flavor,
                         json_t *images, const char *port, char **id)
{
  CLEANUP_FREE char *known = NULL, *ename = NULL;
  CLEANUP_JSON json_t *ans = NULL, *body = NULL;
  json_t *srv, *disks = json_object_get(r->plan, "disks"), *d;
  char path[1024], mig[32];
  size_t i;
  int st;

  *id = NULL;
  snprintf(mig, sizeof mig, "%lld", cloud_migration(r->t));
  st = cloud_ledger_get(r->t, "server", r->inst, &known);
  if (st == -1)
    return -1;
  if (st == 1) {
    snprintf(path, sizeof path, "/servers/%s", known);
    st = os_call(&r->s, OS_COMPUTE, "Nova show server", "GET", path, NULL,
                 &ans);
    if (st == -1)
      return -1;
    if (st == 200) {
      *id = known;
      known = NULL;
      return 0;
    }
    json_decref(ans);
    ans = NULL;
  }
  /* Nova's name filter is a regular expression */
  if (asprintf(&known, "^%s$", r->inst) == -1) {
    known = NULL;
    return oom();
  }
  if ((ename = esc(known)) == NULL)
    return oom();
  snprintf(path, sizeof path, "/servers/detail?name=%s", ename);
  st = os_call(&r->s, OS_COMPUTE, "Nova list servers", "GET", path, NULL,
               &ans);
  if (st == -1)
    return -1;
  if (st != 200) {
    os_error("Nova list servers", st, ans, NULL);
    return -1;
  }
  json_array_foreach(json_object_get(ans, "servers"), i, srv) {
    const char *m = json_string_value(json_object_get(
      json_object_get(srv, "metadata"), "ferry-migration"));

    if (m && strcmp(m, mig) == 0) {
      *id = strdup(json_string_value(json_object_get(srv, "id")));
      break;
    }
  }
  if (*id == NULL) {
    json_decref(ans);
    ans = NULL;
    body = json_pack("{s:{s:s, s:s, s:s, s:O}}", "server", "name", r->inst,
                     "imageRef", json_string_value(json_array_get(images,
                                                                  0)),
                     "flavorRef", flavor, "metadata",
                     json_object_get(r->plan, "tags"));
    srv = json_object_get(body, "server");
    if (port)
      json_object_set_new(srv, "networks",
                          json_pack("[{s:s}]", "port", port));
    if (json_array_size(images) > 1) {
      /* data disks: Cinder volumes made from their images, attached in
       * the inventory's order after the boot disk */
      json_t *bdm = json_pack("[{s:s, s:s, s:s, s:i, s:b}]", "uuid",
                              json_string_value(json_array_get(images, 0)),
                              "source_type", "image", "destination_type",
                              "local", "boot_index", 0,
                              "delete_on_termination", 1);

      for (i = 1; i < json_array_size(images); i++) {
        json_int_t size = json_integer_value(json_object_get(
          json_array_get(disks, i), "size"));
        json_int_t gib = (size + (json_int_t)GiB - 1) / (json_int_t)GiB;

        d = json_pack("{s:s, s:s, s:s, s:I, s:i, s:b}", "uuid",
                      json_string_value(json_array_get(images, i)),
                      "source_type", "image", "destination_type", "volume",
                      "volume_size", gib ? gib : 1, "boot_index", -1,
                      "delete_on_termination", 0);
        json_array_append_new(bdm, d);
      }
      json_object_set_new(srv, "block_device_mapping_v2", bdm);
    }
    task_ctx_event(r->t, "OpenStack: creating server %s", r->inst);
    st = os_call(&r->s, OS_COMPUTE, "Nova create server", "POST", "/servers",
                 body, &ans);
    if (st == -1)
      return -1;
    if (st != 202 && st != 200) {
      os_error("Nova create server", st, ans, NULL);
      return -1;
    }
    srv = json_object_get(ans, "server");
    if (!json_is_string(json_object_get(srv, "id"))) {
      ferry_error("Nova create server: the answer has no server.id");
      return -1;
    }
    *id = strdup(json_string_value(json_object_get(srv, "id")));
  }
  if (*id == NULL)
    return oom();
  return cloud_ledger_put(r->t, "server", r->inst, *id, CLOUD_MIGRATION);
}

/* ---- the ops ---- */

static int run_open(struct os_run *r, struct task_ctx *t, json_t *plan)
{
  const char *k, *bp = cloud_plan_str(plan, "blueprint");
  json_t *v;

  *r = (struct os_run){ .t = t, .plan = plan };
  r->inst = cloud_plan_str(plan, "instance_name");
  if (r->inst == NULL)
    r->inst = json_string_value(json_object_get(json_object_get(plan,
                                                                "host"),
                                                "name"));
  snprintf(r->mig_tag, sizeof r->mig_tag, "ferry-migration=%lld",
           cloud_migration(t));
  snprintf(r->bp_tag, sizeof r->bp_tag, "ferry-blueprint=%s",
           bp ? bp : "");
  r->tags = json_array();
  json_object_foreach(json_object_get(plan, "tags"), k, v)
    if (json_is_string(v)) {
      char tag[400];

      snprintf(tag, sizeof tag, "%s=%s", k, json_string_value(v));
      json_array_append_new(r->tags, json_string(tag));
    }
  if (r->inst == NULL) {
    ferry_error("the plan names no instance");
    return -1;
  }
  return os_session_open(&r->s, t, plan);
}

static void run_close(struct os_run *r)
{
  os_session_close(&r->s);
  json_decref(r->tags);
}

static json_t *openstack_create(struct task_ctx *t, json_t *plan)
{
  json_t *disks = json_object_get(plan, "disks"), *d, *res = NULL;
  json_t *host = json_object_get(plan, "host");
  CLEANUP_JSON json_t *images = json_array();
  CLEANUP_FREE char *flavor = NULL, *server = NULL;
  struct net_ids net = { 0 };
  struct server_wait w = { 0 };
  const char *mt = json_string_value(json_object_get(host, "machine_type"));
  struct os_run r;
  size_t i;

  if (run_open(&r, t, plan) == -1)
    goto out;
  task_ctx_event(t, "OpenStack: authenticated with Keystone%s%s",
                 r.s.region ? ", region " : "",
                 r.s.region ? r.s.region : "");
  if (json_array_size(disks) == 0) {
    ferry_error("the plan has no disks");
    goto out;
  }
  if (json_array_size(disks) > 1 && r.s.url[OS_VOLUME] == NULL) {
    ferry_error("host %s has %zu disks: OpenStack attaches data disks as "
                "Cinder volumes, and this cloud's catalog has no "
                "block-storage (volumev3) endpoint: migrate the boot disk "
                "alone (hosts[].disks in the blueprint) or use a cloud "
                "with Cinder", r.inst, json_array_size(disks));
    goto out;
  }
  /* the flavor first: a wrong machine_type fails before any upload */
  if (mt == NULL) {
    ferry_error("host has no machine_type (the flavor)");
    goto out;
  }
  if (find_flavor(&r, mt, &flavor) == -1 || ensure_network(&r, &net) == -1)
    goto out;
  json_array_foreach(disks, i, d) {
    char *id;

    if (task_ctx_stopping(t)) {
      ferry_error("stopped: the migration was canceled or the server is "
                  "stopping");
      goto out;
    }
    if (ensure_image(&r, d, &id) == -1)
      goto out;
    json_array_append_new(images, json_string(id));
    free(id);
  }
  if (ensure_server(&r, flavor, images, net.port, &server) == -1)
    goto out;
  w.r = &r;
  w.id = server;
  if (cloud_wait(t, "the Nova server to become ACTIVE", SERVER_WAIT_SECONDS,
                 2000, server_check, &w) == -1)
    goto out;
  {
    char console[300];

    snprintf(console, sizeof console, "openstack console log show %s",
             server);
    res = json_pack("{s:s, s:O, s:s?, s:s?, s:s?, s:s?, s:O, s:s, s:s, "
                    "s:s}",
                    "instance_id", server, "image_ids", images, "port_id",
                    net.port, "network_id", net.network, "subnet_id",
                    net.subnet, "security_group_id", net.sg, "addresses",
                    json_object_get(w.server, "addresses")
                      ? json_object_get(w.server, "addresses")
                      : json_null(),
                    "flavor", mt, "console", console, "status", "ACTIVE");
  }
  task_ctx_event(t, "OpenStack: server %s is ACTIVE", server);
out:
  json_decref(w.server);
  net_ids_free(&net);
  run_close(&r);
  return res;
}

/* ---- cleanup ---- */

static json_t *openstack_cleanup(struct task_ctx *t, json_t *plan,
                                 json_t *resources)
{
  json_t *res, *deleted = json_array(), *item;
  struct os_run r;
  size_t i;
  int pass;

  if (run_open(&r, t, plan) == -1)
    goto fail;
  /* servers, then ports, then images, whatever the rows' order: a port
   * is its server's until Nova has deleted the server */
  for (pass = 0; pass < 3; pass++)
  json_array_foreach(resources, i, item) {
    const char *kind = json_string_value(json_object_get(item, "kind"));
    const char *name = json_string_value(json_object_get(item, "name"));
    const char *id = json_string_value(json_object_get(item, "id"));
    CLEANUP_JSON json_t *ans = NULL;
    enum os_service svc;
    char path[300], what[200];
    int st;

    if (kind == NULL || name == NULL || id == NULL ||
        pass != (strcmp(kind, "server") == 0 ? 0
                 : strcmp(kind, "port") == 0 ? 1 : 2))
      continue;
    if (strcmp(kind, "server") == 0) {
      svc = OS_COMPUTE;
      snprintf(path, sizeof path, "/servers/%s", id);
    } else if (strcmp(kind, "port") == 0) {
      svc = OS_NETWORK;
      snprintf(path, sizeof path, "/v2.0/ports/%s", id);
    } else if (strcmp(kind, "image") == 0) {
      svc = OS_IMAGE;
      snprintf(path, sizeof path, "/v2/images/%s", id);
    } else {
      ferry_error("cleanup: the ledger lists a %s (%s), which the "
                  "openstack driver does not make", kind, name);
      goto fail;
    }
    snprintf(what, sizeof what, "delete %s %s (%s)", kind, name, id);
    task_ctx_event(t, "OpenStack: deleting %s %s (%s)", kind, name, id);
    st = os_call(&r.s, svc, what, "DELETE", path, NULL, &ans);
    if (st == -1)
      goto fail;
    if (st >= 300 && st != 404) {
      os_error(what, st, ans, NULL);
      goto fail;
    }
    if (svc == OS_COMPUTE && st != 404) {
      /* the port is the server's until Nova has deleted it */
      struct server_wait w = { .r = &r, .id = id, .gone = 1 };

      if (cloud_wait(t, "the Nova server to be deleted",
                     DELETE_WAIT_SECONDS, 1000, server_check, &w) == -1)
        goto fail;
    }
    if (cloud_ledger_gone(t, kind, name) == -1)
      goto fail;
    json_array_append_new(deleted, json_pack("{s:s, s:s, s:s}", "kind",
                                             kind, "name", name, "id", id));
  }
  run_close(&r);
  res = json_pack("{s:o}", "deleted", deleted);
  return res;
fail:
  run_close(&r);
  json_decref(deleted);
  return NULL;
}

static const char *const formats[] = { "qcow2", "raw", NULL };
static const char *const storage[] = { "virtio_blk|virtio_scsi", NULL };
static const char *const net[] = { "virtio_net", NULL };
static const char *const endpoint_keys[] = { "identity", "image", "network",
                                             "compute", "volume", NULL };
static const char *const imports[] = { "upload", "object", NULL };

const struct target_ops target_openstack = {
  .name = "openstack",
  .rules = {
    .needs_machine_type = 1, .formats = formats, .bios_ok = 1,
    .uefi_ok = 1, .gpt_bios_ok = 1, .storage_drivers = storage,
    .net_drivers = net,
    .driver_hint = "install the virtio drivers and rebuild the initramfs",
    .guest_agent = "cloud-init",
    .guest_agent_hint = "install cloud-init so the instance takes its "
                        "keys and network from the metadata service",
    .endpoint_keys = endpoint_keys, .imports = imports,
  },
  .create = openstack_create,
  .cleanup = openstack_cleanup,
};
