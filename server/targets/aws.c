/* aws.c - Amazon EC2.  Rules (checked 2026): VM Import/Export takes VMDK
 * (streamOptimized), VHD (dynamic) and raw; boot modes legacy-bios and
 * uefi (ImportImage BootMode); MBR boot volumes up to 2 TiB, larger boot
 * disks need GPT with UEFI; EBS volumes up to 64 TiB; Nitro instances
 * present the disk as NVMe and the NIC as ENA.
 *
 * Driver (docs/TARGETS.md, "aws"): the blueprint's networks (VPC, subnets,
 * a security group with exactly its allow rules), each disk as an EBS
 * snapshot written straight from the chunked image with the EBS direct
 * APIs as AWS's coldsnap does (StartSnapshot, PutSnapshotBlock of 512 KiB
 * blocks with their SHA-256, zero blocks never sent, CompleteSnapshot with
 * the linear checksum) or imported from the converted object
 * (ImportSnapshot), RegisterImage, RunInstances.  Every create looks for
 * what exists first (the ledger, then tags, names or client tokens), so a
 * re-run after a crash goes on without making anything twice.
 * Requests: EC2 Query API (form POST, XML answers, version 2016-11-15) and
 * the EBS direct REST/JSON API, both signed with SigV4 (store/sigv4.h). */
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hash/digest.h"
#include "image/image.h"
#include "image/reader.h"
#include "net/http_client.h"
#include "store/aws_creds.h"
#include "store/http.h"
#include "store/sigv4.h"
#include "store/store.h"
#include "store/xml.h"
#include "util/cleanup.h"
#include "util/error.h"
#include "util/log.h"
#include "util/zero.h"
#include "cloud.h"
#include "target.h"
#include "../tasks.h"

#define EC2_VERSION "2016-11-15"
/* EBS direct APIs: every snapshot block is 512 KiB (StartSnapshot's
 * BlockSize; "Using EBS direct APIs", EBS user guide) */
#define EBS_BLOCK (512u << 10)
#define UPLOAD_THREADS 4
#define UPLOAD_SLOTS 12
#define EC2_BODY_CAP (4u << 20)
#define SNAPSHOT_WAIT_S 3600
#define INSTANCE_WAIT_S 900
#define TERMINATE_WAIT_S 900

struct aws {
  struct task_ctx *t;
  json_t *plan;
  struct aws_creds creds;
  char where[320];           /* where the credentials came from */
  const char *region;
  char *ec2, *ebs;           /* endpoint URLs */
};

struct signer {
  struct aws *a;
  const char *service;       /* "ec2" or "ebs" */
};

/* ---- SigV4 for cloud_request ---- */

static int unhex(int c)
{
  return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
       : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* Percent-decode s[0..n) into a new string. */
static char *pct_decode(const char *s, size_t n)
{
  char *o = malloc(n + 1), *p = o;
  size_t i;

  if (o == NULL)
    return NULL;
  for (i = 0; i < n; i++) {
    if (s[i] == '%' && i + 2 < n && unhex(s[i + 1]) >= 0 &&
        unhex(s[i + 2]) >= 0) {
      *p++ = (char)(unhex(s[i + 1]) << 4 | unhex(s[i + 2]));
      i += 2;
    } else {
      *p++ = s[i] == '+' ? ' ' : s[i];
    }
  }
  *p = '\0';
  return o;
}

static int aws_sign(void *opaque, struct curl_slist **headers,
                    const char *method, const char *url, const void *body,
                    size_t body_len)
{
  struct signer *sg = opaque;
  struct aws *a = sg->a;
  struct sigv4_key k = {
    .access_key = a->creds.access_key, .secret_key = a->creds.secret_key,
    .session_token = a->creds.session_token, .region = a->region,
    .service = sg->service,
  };
  const char *h = strstr(url, "://"), *path, *q;
  struct sigv4_param params[16], hdr[1];
  char host[256], date[SIGV4_DATE_LEN], hash[DIGEST_HEX_LEN + 1];
  CLEANUP_FREE char *p = NULL, *auth = NULL;
  uint8_t d[DIGEST_LEN];
  size_t n = 0, hl, i;
  int r = -1;

  if (h == NULL) {
    ferry_error("endpoint %s is not a URL", url);
    return -1;
  }
  h += 3;
  hl = strcspn(h, "/?");
  path = h + hl;
  /* curl leaves a default port out of the Host header: so must SigV4 */
  if (strncmp(url, "https", 5) == 0 && hl > 4 && !memcmp(h + hl - 4, ":443", 4))
    hl -= 4;
  else if (strncmp(url, "http:", 5) == 0 && hl > 3 &&
           !memcmp(h + hl - 3, ":80", 3))
    hl -= 3;
  snprintf(host, sizeof host, "%.*s", (int)hl, h);
  q = strchr(path, '?');
  p = *path == '/' ? strndup(path, q ? (size_t)(q - path) : strlen(path))
                   : strdup("/");
  if (p == NULL)
    goto oom;
  if (q) {
    const char *s = q + 1;

    while (*s && n < 16) {
      size_t len = strcspn(s, "&"), nl = strcspn(s, "=");

      if (nl > len)
        nl = len;
      params[n].name = pct_decode(s, nl);
      params[n].value = pct_decode(s + nl + (nl < len), len - nl -
                                   (nl < len));
      n++;
      s += len + (s[len] == '&');
    }
  }
  digest_buf(body ? body : "", body_len, d);
  digest_to_hex(d, hash);
  hdr[0] = (struct sigv4_param){ "x-amz-content-sha256", hash };
  sigv4_date(time(NULL), date);
  {
    struct sigv4_request req = {
      .method = method, .host = host, .path = p, .query = params,
      .n_query = n, .headers = hdr, .n_headers = 1, .payload_hash = hash,
    };

    auth = sigv4_authorization(&req, &k, date);
  }
  if (auth == NULL ||
      http_header_add(headers, "Authorization: %s", auth) == -1 ||
      http_header_add(headers, "x-amz-date: %s", date) == -1 ||
      http_header_add(headers, "x-amz-content-sha256: %s", hash) == -1 ||
      (k.session_token &&
       http_header_add(headers, "x-amz-security-token: %s",
                       k.session_token) == -1))
    goto out;
  r = 0;
  goto out;
oom:
  ferry_error("out of memory");
out:
  for (i = 0; i < n; i++) {
    free((char *)params[i].name);
    free((char *)params[i].value);
  }
  if (auth)
    explicit_bzero(auth, strlen(auth));
  return r;
}

/* ---- errors ---- */

static int auth_code(const char *code)
{
  static const char *const codes[] = {
    "AuthFailure", "UnrecognizedClientException", "InvalidClientTokenId",
    "SignatureDoesNotMatch", "IncompleteSignature", "InvalidSignatureException",
    "MissingAuthenticationToken", "ExpiredToken", "RequestExpired", NULL,
  };

  for (size_t i = 0; codes[i]; i++)
    if (strcmp(code, codes[i]) == 0)
      return 1;
  return 0;
}

/* One message for a refused request: the cloud's code and message, and
 * for a refused credential the variables or file to check. */
static void aws_fail(struct aws *a, const char *what, const char *url,
                     long status, const char *code, const char *msg)
{
  char host[128];

  http_host(url, host, sizeof host);
  if (auth_code(code))
    ferry_error("AWS refused the credentials at %s (%s %s: %.300s): check "
                "%s", host, what, code, msg, a->where);
  else if (strcmp(code, "UnauthorizedOperation") == 0 ||
           strcmp(code, "AccessDeniedException") == 0 ||
           strcmp(code, "AccessDenied") == 0)
    ferry_error("%s at %s: %s: %.300s: the credentials (%s) lack a "
                "permission docs/TARGETS.md lists for aws", what, host, code,
                msg, a->where);
  else
    ferry_error("%s at %s: HTTP %ld %s: %.400s", what, host, status,
                *code ? code : "(no error code)", msg);
}

/* ---- EC2: form-encoded Query API ---- */

struct form {
  char *buf;
  size_t len, cap;
  int oom;
};

static void form_add(struct form *f, const char *name, const char *fmt, ...)
  __attribute__((format(printf, 3, 4)));

static void form_add(struct form *f, const char *name, const char *fmt, ...)
{
  char val[1024];
  CLEANUP_FREE char *en = NULL, *ev = NULL;
  va_list ap;
  size_t need;

  va_start(ap, fmt);
  vsnprintf(val, sizeof val, fmt, ap);
  va_end(ap);
  en = http_escape(name, 0);
  ev = http_escape(val, 0);
  if (en == NULL || ev == NULL) {
    f->oom = 1;
    return;
  }
  need = f->len + strlen(en) + strlen(ev) + 3;
  if (need > f->cap) {
    size_t cap = need * 2 + 256;
    char *nb = realloc(f->buf, cap);

    if (nb == NULL) {
      f->oom = 1;
      return;
    }
    f->buf = nb;
    f->cap = cap;
  }
  f->len += (size_t)snprintf(f->buf + f->len, f->cap - f->len, "%s%s=%s",
                             f->len ? "&" : "", en, ev);
}

/* TagSpecification.N for type: plan.tags, then extra (may be NULL), then
 * Name. */
static void form_tags(struct form *f, int n, const char *type, json_t *tags,
                      json_t *extra, const char *name)
{
  const char *k;
  json_t *v;
  char key[96];
  int i = 1;

  snprintf(key, sizeof key, "TagSpecification.%d.ResourceType", n);
  form_add(f, key, "%s", type);
  json_object_foreach(tags, k, v) {
    if (!json_is_string(v) || strcmp(k, "Name") == 0)
      continue;
    snprintf(key, sizeof key, "TagSpecification.%d.Tag.%d.Key", n, i);
    form_add(f, key, "%s", k);
    snprintf(key, sizeof key, "TagSpecification.%d.Tag.%d.Value", n, i++);
    form_add(f, key, "%s", json_string_value(v));
  }
  json_object_foreach(extra, k, v) {
    if (!json_is_string(v) || strcmp(k, "Name") == 0)
      continue;
    snprintf(key, sizeof key, "TagSpecification.%d.Tag.%d.Key", n, i);
    form_add(f, key, "%s", k);
    snprintf(key, sizeof key, "TagSpecification.%d.Tag.%d.Value", n, i++);
    form_add(f, key, "%s", json_string_value(v));
  }
  snprintf(key, sizeof key, "TagSpecification.%d.Tag.%d.Key", n, i);
  form_add(f, key, "Name");
  snprintf(key, sizeof key, "TagSpecification.%d.Tag.%d.Value", n, i);
  form_add(f, key, "%s", name);
}

static void form_filter(struct form *f, int n, const char *name,
                        const char *value)
{
  char key[64];

  snprintf(key, sizeof key, "Filter.%d.Name", n);
  form_add(f, key, "%s", name);
  snprintf(key, sizeof key, "Filter.%d.Value.1", n);
  form_add(f, key, "%s", value);
}

/* Perform EC2 action with the form f (Action and Version are added).
 * 0 with *xml (caller frees) on success; 1 when EC2 refused it, with the
 * error code in code[] and the error recorded; -1 with an error when no
 * answer came.  f is freed. */
static int ec2_call(struct aws *a, const char *action, struct form *f,
                    char **xml, char *code, size_t code_size)
{
  struct signer sg = { a, "ec2" };
  struct http_response resp = { 0 };
  char what[96];
  struct form all = { 0 };
  int r = -1;

  *xml = NULL;
  code[0] = '\0';
  form_add(&all, "Action", "%s", action);
  form_add(&all, "Version", EC2_VERSION);
  if (f->len && !all.oom) {
    size_t need = all.len + f->len + 2;
    char *nb = realloc(all.buf, need);

    if (nb == NULL)
      all.oom = 1;
    else {
      all.buf = nb;
      all.len += (size_t)snprintf(all.buf + all.len, need - all.len, "&%s",
                                  f->buf);
    }
  }
  if (f->oom || all.oom) {
    ferry_error("out of memory");
    goto out;
  }
  snprintf(what, sizeof what, "EC2 %s", action);
  {
    struct cloud_req req = {
      .what = what, .method = "POST", .url = a->ec2,
      .content_type = "application/x-www-form-urlencoded; charset=utf-8",
      .body = all.buf, .body_len = all.len, .sign = aws_sign,
      .sign_opaque = &sg, .body_cap = EC2_BODY_CAP,
    };

    if (cloud_request(a->t, &req, &resp) == -1)
      goto out;
  }
  if (resp.status >= 200 && resp.status < 300) {
    *xml = resp.body;
    resp.body = NULL;
    r = 0;
  } else {
    struct xml_span b = { resp.body ? resp.body : "", resp.body_len };
    CLEANUP_FREE char *c = xml_get(b, "Code"), *m = xml_get(b, "Message");

    snprintf(code, code_size, "%s", c ? c : "");
    aws_fail(a, what, a->ec2, resp.status, code, m ? m : "");
    r = 1;
  }
out:
  http_response_free(&resp);
  free(f->buf);
  *f = (struct form){ 0 };
  free(all.buf);
  return r;
}

/* The first element tag of xml as a string (caller frees), or NULL. */
static char *xget(const char *xml, const char *tag)
{
  struct xml_span b = { xml, strlen(xml) };

  return xml_get(b, tag);
}

/* ---- EBS direct APIs: REST, JSON ---- */

/* method url (under the EBS endpoint): 0 with *resp (2xx), -1 with an
 * error (refused or no answer). */
static int ebs_call(struct aws *a, const char *what, const char *method,
                    const char *path, const char *const *headers,
                    const void *body, size_t len, const char *ctype,
                    struct http_response *resp)
{
  struct signer sg = { a, "ebs" };
  CLEANUP_FREE char *url = NULL;
  struct cloud_req req = {
    .what = what, .method = method, .content_type = ctype, .body = body,
    .body_len = len, .headers = headers, .sign = aws_sign,
    .sign_opaque = &sg,
  };

  if (asprintf(&url, "%s%s", a->ebs, path) == -1) {
    url = NULL;
    ferry_error("out of memory");
    return -1;
  }
  req.url = url;
  if (cloud_request(a->t, &req, resp) == -1)
    return -1;
  if (resp->status < 200 || resp->status >= 300) {
    char type[160] = "", *colon;
    CLEANUP_JSON json_t *j = resp->body
      ? json_loadb(resp->body, resp->body_len, 0, NULL) : NULL;
    const char *msg = json_string_value(json_object_get(j, "Message"));

    if (msg == NULL)
      msg = json_string_value(json_object_get(j, "message"));
    if (http_header(resp, "x-amzn-ErrorType", type, sizeof type) == NULL &&
        json_is_string(json_object_get(j, "__type")))
      snprintf(type, sizeof type, "%s",
               json_string_value(json_object_get(j, "__type")));
    if ((colon = strchr(type, ':')) != NULL)
      *colon = '\0';
    if ((colon = strrchr(type, '#')) != NULL)
      memmove(type, colon + 1, strlen(colon));
    aws_fail(a, what, url, resp->status, type, msg ? msg : "");
    http_response_free(resp);
    return -1;
  }
  return 0;
}

/* ---- setup ---- */

static void aws_free(struct aws *a)
{
  aws_creds_free(&a->creds);
  free(a->ec2);
  free(a->ebs);
}

static int aws_init(struct aws *a, struct task_ctx *t, json_t *plan)
{
  CLEANUP_FREE char *ec2d = NULL, *ebsd = NULL;

  *a = (struct aws){ .t = t, .plan = plan };
  a->region = cloud_plan_str(plan, "region");
  if (a->region == NULL) {
    ferry_error("the blueprint names no region: add region: (aws needs it)");
    return -1;
  }
  if (aws_creds_load(&a->creds) == -1)
    return -1;
  aws_creds_where(&a->creds, a->where, sizeof a->where);
  if (a->creds.access_key == NULL || a->creds.secret_key == NULL) {
    ferry_error("no AWS credentials on the server: set AWS_ACCESS_KEY_ID "
                "and AWS_SECRET_ACCESS_KEY in ferry-server's environment, "
                "or a profile in ~/.aws/credentials "
                "(AWS_SHARED_CREDENTIALS_FILE, AWS_PROFILE)%s%s",
                a->creds.file ? "; none in " : "",
                a->creds.file ? a->creds.file : "");
    return -1;
  }
  if (asprintf(&ec2d, "https://ec2.%s.amazonaws.com", a->region) == -1 ||
      asprintf(&ebsd, "https://ebs.%s.amazonaws.com", a->region) == -1) {
    ferry_error("out of memory");
    return -1;
  }
  a->ec2 = cloud_endpoint(plan, "ec2", "AWS_ENDPOINT_URL_EC2", ec2d);
  a->ebs = cloud_endpoint(plan, "ebs", "AWS_ENDPOINT_URL_EBS", ebsd);
  if (a->ec2 == NULL || a->ebs == NULL) {
    ferry_error("out of memory");
    return -1;
  }
  return 0;
}

/* ---- networks ---- */

/* Find (ledger, then tags) or make one blueprint resource.  find: the
 * Describe call and its filters; create: the Create call.  tag: the id's
 * element in both answers. */
static int net_resource(struct aws *a, const char *kind, const char *name,
                        const char *describe, struct form *filters,
                        const char *create, struct form *params,
                        const char *tag, char **id)
{
  CLEANUP_FREE char *xml = NULL;
  char code[96];
  int r;

  if ((r = cloud_ledger_get(a->t, kind, name, id)) != 0) {
    free(params->buf);
    free(filters->buf);
    *params = *filters = (struct form){ 0 };
    return r == 1 ? 0 : -1;
  }
  if (ec2_call(a, describe, filters, &xml, code, sizeof code) != 0) {
    free(params->buf);
    *params = (struct form){ 0 };
    return -1;
  }
  *id = xget(xml, tag);
  free(xml);
  xml = NULL;
  if (*id) {
    free(params->buf);
    *params = (struct form){ 0 };
    task_ctx_event(a->t, "found %s %s (%s), made earlier for the "
                   "blueprint", kind, name, *id);
  } else {
    if (ec2_call(a, create, params, &xml, code, sizeof code) != 0)
      return -1;
    *id = xget(xml, tag);
    if (*id == NULL) {
      ferry_error("EC2 %s answered without %s", create, tag);
      return -1;
    }
    task_ctx_event(a->t, "created %s %s (%s)", kind, name, *id);
  }
  return cloud_ledger_put(a->t, kind, name, *id, CLOUD_BLUEPRINT) == -1
         ? -1 : 0;
}

/* ports: 22, "22", "8000-8099" or absent (every port). */
static int port_range(json_t *ports, long *from, long *to)
{
  if (ports == NULL || json_is_null(ports)) {
    *from = 0;
    *to = 65535;
    return 0;
  }
  if (json_is_integer(ports)) {
    *from = *to = (long)json_integer_value(ports);
    return 0;
  }
  if (json_is_string(ports)) {
    const char *s = json_string_value(ports);
    char *end;

    *from = strtol(s, &end, 10);
    *to = *from;
    if (*end == '-')
      *to = strtol(end + 1, &end, 10);
    if (*end == '\0' && *from >= 0 && *to <= 65535 && *from <= *to)
      return 0;
  }
  ferry_error("allow rule ports %s: use a port or a range \"A-B\"",
              json_is_string(ports) ? json_string_value(ports) : "(?)");
  return -1;
}

/* The next <item> of in at the top level (items nest in EC2 answers:
 * a permission's item holds the items of its ranges). */
static int next_item(struct xml_span in, size_t *pos, struct xml_span *out)
{
  const char *end = in.p + in.len, *p = in.p + *pos, *start = NULL;
  int depth = 0;

  while ((p = memmem(p, (size_t)(end - p), "<", 1)) != NULL) {
    if ((size_t)(end - p) >= 6 && memcmp(p, "<item>", 6) == 0) {
      if (depth++ == 0)
        start = p + 6;
      p += 6;
    } else if ((size_t)(end - p) >= 7 && memcmp(p, "</item>", 7) == 0) {
      if (depth > 0 && --depth == 0) {
        out->p = start;
        out->len = (size_t)(p - start);
        *pos = (size_t)(p + 7 - in.p);
        return 1;
      }
      p += 7;
    } else {
      p++;
    }
  }
  return 0;
}

/* A rule as "proto from to cidr", the form both sides are compared in. */
static void rule_key(char *buf, size_t size, const char *proto, long lo,
                     long hi, const char *cidr)
{
  snprintf(buf, size, "%s %ld %ld %s", proto, lo, hi, cidr);
}

/* The group's inbound rules, as rule_key strings. */
static json_t *sg_current(struct aws *a, const char *sg)
{
  CLEANUP_FREE char *xml = NULL;
  struct form f = { 0 };
  struct xml_span b, perms, item;
  json_t *keys;
  char code[96];
  size_t pos = 0, ipos = 0;

  form_add(&f, "GroupId.1", "%s", sg);
  if (ec2_call(a, "DescribeSecurityGroups", &f, &xml, code, sizeof code))
    return NULL;
  keys = json_array();
  b = (struct xml_span){ xml, strlen(xml) };
  if (!xml_next(b, &pos, "ipPermissions", &perms))
    return keys;
  while (next_item(perms, &ipos, &item)) {
    CLEANUP_FREE char *proto = xml_get(item, "ipProtocol");
    CLEANUP_FREE char *lo = xml_get(item, "fromPort");
    CLEANUP_FREE char *hi = xml_get(item, "toPort");
    struct xml_span ranges, r;
    size_t rpos = 0, p2 = 0;

    if (!xml_next(item, &p2, "ipRanges", &ranges))
      continue;
    while (next_item(ranges, &rpos, &r)) {
      CLEANUP_FREE char *cidr = xml_get(r, "cidrIp");
      char key[160];

      if (proto == NULL || cidr == NULL)
        continue;
      rule_key(key, sizeof key, proto, lo ? strtol(lo, NULL, 10) : -1,
               hi ? strtol(hi, NULL, 10) : -1, cidr);
      json_array_append_new(keys, json_string(key));
    }
  }
  return keys;
}

static int has_key(json_t *keys, const char *key)
{
  json_t *k;
  size_t i;

  json_array_foreach(keys, i, k)
    if (strcmp(json_string_value(k), key) == 0)
      return 1;
  return 0;
}

/* One rule in or out of the group. */
static int sg_change(struct aws *a, const char *action, const char *sg,
                     const char *proto, long lo, long hi, const char *cidr)
{
  CLEANUP_FREE char *xml = NULL;
  struct form f = { 0 };
  char code[96];
  int r;

  form_add(&f, "GroupId", "%s", sg);
  form_add(&f, "IpPermissions.1.IpProtocol", "%s", proto);
  form_add(&f, "IpPermissions.1.FromPort", "%ld", lo);
  form_add(&f, "IpPermissions.1.ToPort", "%ld", hi);
  form_add(&f, "IpPermissions.1.IpRanges.1.CidrIp", "%s", cidr);
  r = ec2_call(a, action, &f, &xml, code, sizeof code);
  if (r == 1 && (strcmp(code, "InvalidPermission.Duplicate") == 0 ||
                 strcmp(code, "InvalidPermission.NotFound") == 0))
    return 0;                       /* already so */
  return r == 0 ? 0 : -1;
}

/* Make the group's inbound rules exactly the blueprint's allow rules:
 * add the missing ones, revoke any other (someone's hand edit, or a rule
 * the blueprint no longer has). */
static int sg_rules(struct aws *a, const char *sg, json_t *allow)
{
  CLEANUP_JSON json_t *have = sg_current(a, sg), *want = json_array();
  json_t *rule, *k;
  size_t i;

  if (have == NULL)
    return -1;
  json_array_foreach(allow, i, rule) {
    const char *proto = json_string_value(json_object_get(rule, "proto"));
    const char *from = json_string_value(json_object_get(rule, "from"));
    char key[160];
    long lo, hi;

    if (proto == NULL || from == NULL) {
      ferry_error("allow rule %zu has no proto or from", i + 1);
      return -1;
    }
    if (strcmp(proto, "icmp") == 0)
      lo = hi = -1;                 /* EC2: -1 = every ICMP type and code */
    else if (port_range(json_object_get(rule, "ports"), &lo, &hi) == -1)
      return -1;
    rule_key(key, sizeof key, proto, lo, hi, from);
    json_array_append_new(want, json_string(key));
    if (!has_key(have, key) &&
        sg_change(a, "AuthorizeSecurityGroupIngress", sg, proto, lo, hi,
                  from) == -1)
      return -1;
  }
  json_array_foreach(have, i, k) {
    char proto[16], cidr[64];
    long lo, hi;

    if (has_key(want, json_string_value(k)) ||
        sscanf(json_string_value(k), "%15s %ld %ld %63s", proto, &lo, &hi,
               cidr) != 4)
      continue;
    task_ctx_event(a->t, "security group %s: revoking %s, which the "
                   "blueprint does not allow", sg, json_string_value(k));
    if (sg_change(a, "RevokeSecurityGroupIngress", sg, proto, lo, hi,
                  cidr) == -1)
      return -1;
  }
  return 0;
}

struct net_ids {
  char *vpc, *subnet, *sg;
};

/* Every network of the blueprint, found or made; ids of the host's. */
static int networks(struct aws *a, struct net_ids *ids)
{
  json_t *nets = json_object_get(a->plan, "networks"), *net;
  json_t *mine = json_object_get(a->plan, "network");
  const char *bp = cloud_plan_str(a->plan, "blueprint");
  const char *host_subnet = json_string_value(
    json_object_get(json_object_get(a->plan, "host"), "subnet"));
  size_t i, j;
  int r = -1;

  if (json_array_size(nets) == 0)
    return 0;
  cloud_network_lock();
  json_array_foreach(nets, i, net) {
    const char *nn = json_string_value(json_object_get(net, "name"));
    const char *cidr = json_string_value(json_object_get(net, "cidr"));
    json_t *sub, *nametag = json_pack("{s:s}", "ferry-blueprint", bp);
    CLEANUP_FREE char *vpc = NULL, *sg = NULL, *sgname = NULL;
    struct form fl = { 0 }, p = { 0 };
    int is_mine = mine && json_equal(json_object_get(mine, "name"),
                                     json_object_get(net, "name"));

    if (nn == NULL || cidr == NULL || nametag == NULL) {
      json_decref(nametag);
      ferry_error("blueprint network %zu has no name or cidr", i + 1);
      goto out;
    }
    form_filter(&fl, 1, "tag:ferry-blueprint", bp);
    form_filter(&fl, 2, "tag:Name", nn);
    form_add(&p, "CidrBlock", "%s", cidr);
    form_tags(&p, 1, "vpc", nametag, NULL, nn);
    if (net_resource(a, "vpc", nn, "DescribeVpcs", &fl, "CreateVpc", &p,
                     "vpcId", &vpc) == -1) {
      json_decref(nametag);
      goto out;
    }
    json_array_foreach(json_object_get(net, "subnets"), j, sub) {
      const char *sn = json_string_value(json_object_get(sub, "name"));
      const char *sc = json_string_value(json_object_get(sub, "cidr"));
      char *sid = NULL;

      form_filter(&fl, 1, "vpc-id", vpc);
      form_filter(&fl, 2, "tag:Name", sn ? sn : "");
      form_add(&p, "VpcId", "%s", vpc);
      form_add(&p, "CidrBlock", "%s", sc ? sc : "");
      form_tags(&p, 1, "subnet", nametag, NULL, sn ? sn : "");
      if (sn == NULL || sc == NULL ||
          net_resource(a, "subnet", sn, "DescribeSubnets", &fl,
                       "CreateSubnet", &p, "subnetId", &sid) == -1) {
        if (sn == NULL || sc == NULL)
          ferry_error("a subnet of network %s has no name or cidr", nn);
        json_decref(nametag);
        goto out;
      }
      if (is_mine && host_subnet && strcmp(host_subnet, sn) == 0) {
        free(ids->subnet);
        ids->subnet = sid;
      } else {
        free(sid);
      }
    }
    if (asprintf(&sgname, "ferry-%s-%s", bp, nn) == -1) {
      sgname = NULL;
      json_decref(nametag);
      ferry_error("out of memory");
      goto out;
    }
    form_filter(&fl, 1, "vpc-id", vpc);
    form_filter(&fl, 2, "group-name", sgname);
    form_add(&p, "GroupName", "%s", sgname);
    form_add(&p, "GroupDescription", "ferry: blueprint %s, network %s "
             "(inbound: the blueprint's allow rules only)", bp, nn);
    form_add(&p, "VpcId", "%s", vpc);
    form_tags(&p, 1, "security-group", nametag, NULL, sgname);
    json_decref(nametag);
    if (net_resource(a, "security-group", nn, "DescribeSecurityGroups", &fl,
                     "CreateSecurityGroup", &p, "groupId", &sg) == -1 ||
        sg_rules(a, sg, json_object_get(net, "allow")) == -1)
      goto out;
    if (is_mine) {
      ids->vpc = vpc;
      ids->sg = sg;
      vpc = sg = NULL;
    }
  }
  r = 0;
out:
  cloud_network_unlock();
  return r;
}

/* ---- disks: EBS direct upload ---- */

enum { SLOT_FREE, SLOT_QUEUED, SLOT_BUSY };

struct upload {
  struct aws *a;
  const char *snap;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  struct {
    uint8_t *buf;
    uint64_t index;
    char sum[48];             /* base64 SHA-256 */
    int state;
  } slot[UPLOAD_SLOTS];
  int closing, failed;
  char err[1024];
  uint64_t sent;
};

static int put_block(struct upload *u, uint8_t *buf, uint64_t index,
                     const char *sum)
{
  char path[160], h1[96], h2[96], h3[64], what[64];
  const char *hdrs[] = { h1, h2, h3, NULL };
  struct http_response resp = { 0 };

  snprintf(path, sizeof path, "/snapshots/%s/blocks/%" PRIu64, u->snap,
           index);
  snprintf(h1, sizeof h1, "x-amz-Data-Length: %u", EBS_BLOCK);
  snprintf(h2, sizeof h2, "x-amz-Checksum: %s", sum);
  snprintf(h3, sizeof h3, "x-amz-Checksum-Algorithm: SHA256");
  snprintf(what, sizeof what, "EBS PutSnapshotBlock %" PRIu64, index);
  if (ebs_call(u->a, what, "PUT", path, hdrs, buf, EBS_BLOCK,
               "application/octet-stream", &resp) == -1)
    return -1;
  http_response_free(&resp);
  return 0;
}

static void *upload_worker(void *arg)
{
  struct upload *u = arg;

  pthread_mutex_lock(&u->mu);
  for (;;) {
    int i, k = -1;

    for (i = 0; i < UPLOAD_SLOTS; i++)
      if (u->slot[i].state == SLOT_QUEUED) {
        k = i;
        break;
      }
    if (k == -1) {
      if (u->closing)
        break;
      pthread_cond_wait(&u->cv, &u->mu);
      continue;
    }
    u->slot[k].state = SLOT_BUSY;
    pthread_mutex_unlock(&u->mu);
    i = u->failed ? 0 : put_block(u, u->slot[k].buf, u->slot[k].index,
                                  u->slot[k].sum);
    pthread_mutex_lock(&u->mu);
    if (i == -1 && !u->failed) {
      u->failed = 1;
      snprintf(u->err, sizeof u->err, "%s", ferry_errmsg());
    } else if (i == 0) {
      u->sent++;
    }
    u->slot[k].state = SLOT_FREE;
    pthread_cond_broadcast(&u->cv);
  }
  pthread_mutex_unlock(&u->mu);
  return NULL;
}

/* Hand one block to the workers (waits for a free slot).  -1 once a
 * worker failed. */
static int upload_block(struct upload *u, const void *data, size_t len,
                        uint64_t index, const uint8_t d[DIGEST_LEN])
{
  int k = -1, i;

  pthread_mutex_lock(&u->mu);
  while (!u->failed) {
    for (i = 0; i < UPLOAD_SLOTS; i++)
      if (u->slot[i].state == SLOT_FREE) {
        k = i;
        break;
      }
    if (k != -1)
      break;
    pthread_cond_wait(&u->cv, &u->mu);
  }
  if (u->failed) {
    pthread_mutex_unlock(&u->mu);
    return -1;
  }
  u->slot[k].state = SLOT_BUSY;       /* ours while we fill it */
  pthread_mutex_unlock(&u->mu);
  memcpy(u->slot[k].buf, data, len);
  memset(u->slot[k].buf + len, 0, EBS_BLOCK - len);
  u->slot[k].index = index;
  base64_encode(d, DIGEST_LEN, u->slot[k].sum);
  pthread_mutex_lock(&u->mu);
  u->slot[k].state = SLOT_QUEUED;
  pthread_cond_broadcast(&u->cv);
  pthread_mutex_unlock(&u->mu);
  return 0;
}

/* Write the chunked image at url into snapshot snap: every non-zero 512
 * KiB block, in parallel; then CompleteSnapshot with the count and the
 * linear checksum (SHA-256 over the blocks' SHA-256s in index order). */
static int upload_image(struct aws *a, const char *url, const char *snap,
                        const char *disk)
{
  struct store *s = store_open(url);
  struct image_manifest m;
  struct image_reader *rd = NULL;
  struct upload u = { .a = a, .snap = snap };
  struct digest_ctx *lin = digest_create();
  pthread_t th[UPLOAD_THREADS];
  int nth = 0, r = -1, i;
  uint64_t blocks = 0, zero = 0;
  uint8_t total[DIGEST_LEN];
  CLEANUP_FREE uint8_t *tail = NULL;

  pthread_mutex_init(&u.mu, NULL);
  pthread_cond_init(&u.cv, NULL);
  if (s == NULL || lin == NULL)
    goto out;
  if (image_manifest_load(s, &m) == -1)
    goto out;
  if (m.chunk_size % EBS_BLOCK != 0) {
    ferry_error("image %s: chunk size %u is not a multiple of EBS's 512 KiB "
                "block", url, m.chunk_size);
    goto out;
  }
  for (i = 0; i < UPLOAD_SLOTS; i++)
    if ((u.slot[i].buf = malloc(EBS_BLOCK)) == NULL) {
      ferry_error("out of memory");
      goto out;
    }
  for (nth = 0; nth < UPLOAD_THREADS; nth++)
    if (pthread_create(&th[nth], NULL, upload_worker, &u) != 0) {
      ferry_error("cannot start an upload thread");
      goto stop;
    }
  rd = image_reader_open(s, &m, 4);
  if (rd == NULL)
    goto stop;
  for (;;) {
    struct image_extent e;
    int got = image_reader_next(rd, &e);
    uint64_t off;

    if (got == -1)
      goto stop;
    if (got == 0)
      break;
    if (task_ctx_stopping(a->t)) {
      ferry_error("stopped while uploading disk %s: the migration was "
                  "canceled or the server is stopping", disk);
      goto stop;
    }
    if (e.data == NULL)
      continue;
    for (off = 0; off < e.length; off += EBS_BLOCK) {
      size_t len = e.length - off < EBS_BLOCK ? (size_t)(e.length - off)
                                              : EBS_BLOCK;
      const uint8_t *p = (const uint8_t *)e.data + off;
      uint8_t d[DIGEST_LEN];

      if (buf_is_zero(p, len)) {
        zero++;
        continue;                   /* never sent: EBS reads it as zeros */
      }
      if (len < EBS_BLOCK) {        /* the disk's last block, padded */
        if (tail == NULL && (tail = calloc(1, EBS_BLOCK)) == NULL) {
          ferry_error("out of memory");
          goto stop;
        }
        memset(tail, 0, EBS_BLOCK);
        memcpy(tail, p, len);
        digest_buf(tail, EBS_BLOCK, d);
      } else {
        digest_buf(p, EBS_BLOCK, d);
      }
      digest_update(lin, d, DIGEST_LEN);
      if (upload_block(&u, p, len, (e.offset + off) / EBS_BLOCK, d) == -1)
        goto stop;
      blocks++;
    }
  }
  r = 0;
stop:
  pthread_mutex_lock(&u.mu);
  u.closing = 1;
  pthread_cond_broadcast(&u.cv);
  pthread_mutex_unlock(&u.mu);
  while (nth > 0)
    pthread_join(th[--nth], NULL);
  if (u.failed) {               /* a worker's error is the cause */
    ferry_error_set(u.err);
    r = -1;
  }
  if (r == 0) {
    char path[128], h1[64], h2[96], h3[64], h4[80], sum[48];
    const char *hdrs[] = { h1, h2, h3, h4, NULL };
    struct http_response resp = { 0 };

    digest_final(lin, total);
    base64_encode(total, DIGEST_LEN, sum);
    snprintf(path, sizeof path, "/snapshots/completion/%s", snap);
    snprintf(h1, sizeof h1, "x-amz-ChangedBlocksCount: %" PRIu64, blocks);
    snprintf(h2, sizeof h2, "x-amz-Checksum: %s", sum);
    snprintf(h3, sizeof h3, "x-amz-Checksum-Algorithm: SHA256");
    snprintf(h4, sizeof h4, "x-amz-Checksum-Aggregation-Method: LINEAR");
    if (ebs_call(a, "EBS CompleteSnapshot", "POST", path, hdrs, NULL, 0,
                 NULL, &resp) == -1)
      r = -1;
    else
      http_response_free(&resp);
    if (r == 0)
      task_ctx_event(a->t, "disk %s: %" PRIu64 " blocks of 512 KiB written "
                     "to snapshot %s (%" PRIu64 " zero blocks not sent)",
                     disk, blocks, snap, zero);
  }
out:
  image_reader_close(rd);
  store_close(s);
  digest_close(lin);
  for (i = 0; i < UPLOAD_SLOTS; i++)
    free(u.slot[i].buf);
  pthread_mutex_destroy(&u.mu);
  pthread_cond_destroy(&u.cv);
  return r;
}

/* The disk's size in GiB for StartSnapshot (at least 1). */
static json_int_t disk_gib(json_t *d)
{
  json_int_t size = json_integer_value(json_object_get(d, "size"));

  return size <= 0 ? 1 : (json_int_t)(((uint64_t)size + GiB - 1) / GiB);
}

static json_t *tag_array(json_t *tags, const char *name, const char *disk)
{
  json_t *arr = json_array();
  const char *k;
  json_t *v;

  json_object_foreach(tags, k, v)
    if (json_is_string(v) && strcmp(k, "Name") != 0)
      json_array_append_new(arr, json_pack("{s:s, s:O}", "Key", k, "Value",
                                           v));
  json_array_append_new(arr, json_pack("{s:s, s:s}", "Key", "ferry-disk",
                                       "Value", disk));
  json_array_append_new(arr, json_pack("{s:s, s:s}", "Key", "Name", "Value",
                                       name));
  return arr;
}

/* StartSnapshot (ClientToken: a re-run gets the same snapshot back). */
static char *start_snapshot(struct aws *a, json_t *d, const char *disk)
{
  const char *inst = cloud_plan_str(a->plan, "instance_name");
  char token[80], what[80], name[160];
  CLEANUP_FREE char *body = NULL;
  CLEANUP_JSON json_t *req = NULL, *ans = NULL;
  struct http_response resp = { 0 };
  const char *id;
  char *r = NULL;

  snprintf(name, sizeof name, "%s-%s", inst ? inst : "ferry", disk);
  snprintf(what, sizeof what, "snap-%s", disk);
  cloud_token(a->t, what, token, sizeof token);
  req = json_pack("{s:I, s:s, s:o, s:s, s:i}", "VolumeSize", disk_gib(d),
                  "ClientToken", token, "Tags",
                  tag_array(json_object_get(a->plan, "tags"), name, disk),
                  "Description", name, "Timeout", 4320);
  body = req ? json_dumps(req, JSON_COMPACT) : NULL;
  if (body == NULL) {
    ferry_error("out of memory");
    return NULL;
  }
  if (ebs_call(a, "EBS StartSnapshot", "POST", "/snapshots", NULL, body,
               strlen(body), "application/json", &resp) == -1)
    return NULL;
  ans = cloud_json(&resp, "EBS StartSnapshot");
  id = json_string_value(json_object_get(ans, "SnapshotId"));
  if (ans && id == NULL)
    ferry_error("EBS StartSnapshot answered without a SnapshotId");
  else if (ans && json_integer_value(json_object_get(ans, "BlockSize")) !=
                  EBS_BLOCK)
    ferry_error("EBS StartSnapshot answered BlockSize %" JSON_INTEGER_FORMAT
                ", not 524288", json_integer_value(json_object_get(ans,
                                                             "BlockSize")));
  else if (id && (r = strdup(id)) == NULL)
    ferry_error("out of memory");
  http_response_free(&resp);
  return r;
}

struct snap_wait {
  struct aws *a;
  const char *id;
};

static int snapshot_done(void *opaque, unsigned *next_ms)
{
  struct snap_wait *w = opaque;
  struct form f = { 0 };
  CLEANUP_FREE char *xml = NULL, *st = NULL;
  char code[96];

  (void)next_ms;
  form_add(&f, "SnapshotId.1", "%s", w->id);
  if (ec2_call(w->a, "DescribeSnapshots", &f, &xml, code, sizeof code))
    return -1;
  st = xget(xml, "status");
  if (st && strcmp(st, "completed") == 0)
    return 1;
  if (st && strcmp(st, "error") == 0) {
    CLEANUP_FREE char *msg = xget(xml, "statusMessage");

    ferry_error("snapshot %s failed in EC2: %s", w->id,
                msg ? msg : "(no message)");
    return -1;
  }
  return 0;
}

static int s3_split(const char *url, char *bucket, size_t bsize,
                    const char **key)
{
  const char *b, *slash;

  if (strncmp(url, "s3://", 5) != 0) {
    ferry_error("import: object needs an s3:// store; the converted disk is "
                "%s (use import: upload)", url);
    return -1;
  }
  b = url + 5;
  slash = strchr(b, '/');
  if (slash == NULL || (size_t)(slash - b) >= bsize) {
    ferry_error("%s does not name an object in a bucket", url);
    return -1;
  }
  snprintf(bucket, bsize, "%.*s", (int)(slash - b), b);
  *key = slash + 1;
  return 0;
}

struct import_wait {
  struct aws *a;
  const char *task;
  char *snap;
};

static int import_done(void *opaque, unsigned *next_ms)
{
  struct import_wait *w = opaque;
  struct form f = { 0 };
  CLEANUP_FREE char *xml = NULL, *st = NULL;
  char code[96];

  (void)next_ms;
  form_add(&f, "ImportTaskId.1", "%s", w->task);
  if (ec2_call(w->a, "DescribeImportSnapshotTasks", &f, &xml, code,
               sizeof code))
    return -1;
  st = xget(xml, "status");
  if (st && strcmp(st, "completed") == 0) {
    w->snap = xget(xml, "snapshotId");
    if (w->snap == NULL) {
      ferry_error("import task %s completed without a snapshot", w->task);
      return -1;
    }
    return 1;
  }
  if (st && (strcmp(st, "deleted") == 0 || strcmp(st, "deleting") == 0)) {
    CLEANUP_FREE char *msg = xget(xml, "statusMessage");

    ferry_error("EC2 import task %s failed: %s", w->task,
                msg ? msg : "(no message)");
    return -1;
  }
  return 0;
}

/* ImportSnapshot from the converted object: the snapshot id. */
static char *import_snapshot(struct aws *a, json_t *d, const char *disk)
{
  const char *out = json_string_value(json_object_get(d, "output"));
  const char *fmt = cloud_plan_str(a->plan, "format"), *key;
  const char *inst = cloud_plan_str(a->plan, "instance_name");
  CLEANUP_FREE char *task = NULL, *xml = NULL;
  struct import_wait w = { .a = a };
  char bucket[256], token[80], name[160], code[96], kname[80];
  struct form f = { 0 };
  json_t *extra;

  if (out == NULL || s3_split(out, bucket, sizeof bucket, &key) == -1)
    return NULL;
  snprintf(kname, sizeof kname, "import-%s", disk);
  if (cloud_ledger_get(a->t, "import-task", disk, &task) == -1)
    return NULL;
  if (task == NULL) {
    snprintf(name, sizeof name, "%s-%s", inst ? inst : "ferry", disk);
    cloud_token(a->t, kname, token, sizeof token);
    form_add(&f, "ClientToken", "%s", token);
    form_add(&f, "Description", "%s", name);
    form_add(&f, "DiskContainer.Format", "%s",
             strcmp(fmt, "vmdk") == 0 ? "VMDK"
             : strncmp(fmt, "vhd", 3) == 0 ? "VHD" : "RAW");
    form_add(&f, "DiskContainer.UserBucket.S3Bucket", "%s", bucket);
    form_add(&f, "DiskContainer.UserBucket.S3Key", "%s", key);
    extra = json_pack("{s:s}", "ferry-disk", disk);
    form_tags(&f, 1, "import-snapshot-task",
              json_object_get(a->plan, "tags"), extra, name);
    json_decref(extra);
    if (ec2_call(a, "ImportSnapshot", &f, &xml, code, sizeof code) != 0)
      return NULL;
    task = xget(xml, "importTaskId");
    if (task == NULL) {
      ferry_error("EC2 ImportSnapshot answered without an importTaskId");
      return NULL;
    }
    /* cleanup deletes nothing for it (a finished task is a record) */
    if (cloud_ledger_put(a->t, "import-task", disk, task, CLOUD_MIGRATION)
        == -1)
      return NULL;
    task_ctx_event(a->t, "disk %s: EC2 import task %s from %s", disk, task,
                   out);
  }
  w.task = task;
  if (cloud_wait(a->t, "the EC2 snapshot import", SNAPSHOT_WAIT_S, 5000,
                 import_done, &w) == -1)
    return NULL;
  return w.snap;
}

/* The disk's snapshot, found or made, written and completed. */
static char *disk_snapshot(struct aws *a, json_t *d, int object)
{
  const char *disk = json_string_value(json_object_get(d, "name"));
  const char *image = json_string_value(json_object_get(d, "image"));
  CLEANUP_FREE char *done = NULL;
  char *snap = NULL;
  struct snap_wait w = { .a = a };
  int r;

  if (disk == NULL || image == NULL) {
    ferry_error("the plan's disk has no name or image");
    return NULL;
  }
  if ((r = cloud_ledger_get(a->t, "snapshot", disk, &snap)) == -1)
    return NULL;
  if (r == 0 && object) {
    if ((snap = import_snapshot(a, d, disk)) == NULL ||
        cloud_ledger_put(a->t, "snapshot", disk, snap, CLOUD_MIGRATION)
          == -1) {
      free(snap);
      return NULL;
    }
  } else if (!object) {
    if (r == 0) {
      if ((snap = start_snapshot(a, d, disk)) == NULL ||
          cloud_ledger_put(a->t, "snapshot", disk, snap, CLOUD_MIGRATION)
          == -1) {
        free(snap);
        return NULL;
      }
      task_ctx_event(a->t, "disk %s: EBS snapshot %s started (%"
                     JSON_INTEGER_FORMAT " GiB)", disk, snap, disk_gib(d));
    }
    /* completed: a bookkeeping row of the ledger (its cleanup deletes
     * nothing); without it an earlier run may have sent some blocks, and
     * sending every block again is what a pending snapshot takes */
    if (cloud_ledger_get(a->t, "snapshot-completed", disk, &done) == -1)
      goto fail;
    if (done == NULL) {
      if (r == 1)
        task_ctx_event(a->t, "disk %s: snapshot %s was started by an "
                       "earlier run; writing its blocks", disk, snap);
      if (upload_image(a, image, snap, disk) == -1 ||
          cloud_ledger_put(a->t, "snapshot-completed", disk, snap,
                           CLOUD_MIGRATION) == -1)
        goto fail;
    }
  }
  w.id = snap;
  if (cloud_wait(a->t, "the EBS snapshot to complete", SNAPSHOT_WAIT_S, 2000,
                 snapshot_done, &w) == -1)
    goto fail;
  return snap;
fail:
  free(snap);
  return NULL;
}

/* ---- image and instance ---- */

static char *register_image(struct aws *a, json_t *snaps)
{
  const char *boot = cloud_plan_str(a->plan, "boot_mode");
  const char *inst = cloud_plan_str(a->plan, "instance_name");
  char name[160], code[96], key[64];
  CLEANUP_FREE char *xml = NULL;
  struct form f = { 0 };
  char *id = NULL;
  json_t *s;
  size_t i;

  if (cloud_ledger_get(a->t, "image", "image", &id) != 0)
    return id;
  /* image names are unique in an account and region: the re-run's key */
  snprintf(name, sizeof name, "ferry-m%lld-%s", cloud_migration(a->t),
           inst ? inst : "host");
  form_add(&f, "Owner.1", "self");
  form_filter(&f, 1, "name", name);
  if (ec2_call(a, "DescribeImages", &f, &xml, code, sizeof code) != 0)
    return NULL;
  id = xget(xml, "imageId");
  free(xml);
  xml = NULL;
  if (id == NULL) {
    form_add(&f, "Name", "%s", name);
    form_add(&f, "Description", "ferry migration %lld of %s",
             cloud_migration(a->t), inst ? inst : "host");
    form_add(&f, "Architecture", "x86_64");
    form_add(&f, "VirtualizationType", "hvm");
    form_add(&f, "EnaSupport", "true");
    form_add(&f, "BootMode", "%s", boot && strcmp(boot, "uefi") == 0
                                   ? "uefi" : "legacy-bios");
    form_add(&f, "RootDeviceName", "/dev/xvda");
    json_array_foreach(snaps, i, s) {
      char dev[16];

      if (i == 0)
        snprintf(dev, sizeof dev, "/dev/xvda");
      else
        snprintf(dev, sizeof dev, "/dev/sd%c", (char)('a' + i));
      snprintf(key, sizeof key, "BlockDeviceMapping.%zu.DeviceName", i + 1);
      form_add(&f, key, "%s", dev);
      snprintf(key, sizeof key, "BlockDeviceMapping.%zu.Ebs.SnapshotId",
               i + 1);
      form_add(&f, key, "%s", json_string_value(s));
      snprintf(key, sizeof key, "BlockDeviceMapping.%zu.Ebs.VolumeType",
               i + 1);
      form_add(&f, key, "gp3");
      snprintf(key, sizeof key,
               "BlockDeviceMapping.%zu.Ebs.DeleteOnTermination", i + 1);
      form_add(&f, key, "true");
    }
    form_tags(&f, 1, "image", json_object_get(a->plan, "tags"), NULL,
              inst ? inst : name);
    if (ec2_call(a, "RegisterImage", &f, &xml, code, sizeof code) != 0)
      return NULL;
    id = xget(xml, "imageId");
    if (id == NULL) {
      ferry_error("EC2 RegisterImage answered without an imageId");
      return NULL;
    }
    task_ctx_event(a->t, "registered image %s (%s)", id, name);
  } else {
    task_ctx_event(a->t, "found image %s (%s), registered by an earlier run",
                   id, name);
  }
  if (cloud_ledger_put(a->t, "image", "image", id, CLOUD_MIGRATION) == -1) {
    free(id);
    return NULL;
  }
  return id;
}

/* The instance of this migration made by an earlier run (by its tags), or
 * NULL. */
static char *find_instance(struct aws *a, int *err)
{
  const char *inst = cloud_plan_str(a->plan, "instance_name");
  char mig[32], code[96];
  CLEANUP_FREE char *xml = NULL;
  struct form f = { 0 };

  *err = 0;
  snprintf(mig, sizeof mig, "%lld", cloud_migration(a->t));
  form_filter(&f, 1, "tag:ferry-migration", mig);
  form_filter(&f, 2, "tag:Name", inst ? inst : "");
  form_add(&f, "Filter.3.Name", "instance-state-name");
  form_add(&f, "Filter.3.Value.1", "pending");
  form_add(&f, "Filter.3.Value.2", "running");
  form_add(&f, "Filter.3.Value.3", "stopping");
  form_add(&f, "Filter.3.Value.4", "stopped");
  if (ec2_call(a, "DescribeInstances", &f, &xml, code, sizeof code) != 0) {
    *err = 1;
    return NULL;
  }
  return xget(xml, "instanceId");
}

static char *run_instance(struct aws *a, const char *ami,
                          const struct net_ids *ids)
{
  json_t *host = json_object_get(a->plan, "host");
  const char *type = json_string_value(json_object_get(host, "machine_type"));
  const char *ip = json_string_value(json_object_get(host, "ip"));
  const char *inst = cloud_plan_str(a->plan, "instance_name");
  char token[80], code[96];
  CLEANUP_FREE char *xml = NULL;
  struct form f = { 0 };
  char *id = NULL;
  int err;

  if (cloud_ledger_get(a->t, "instance", inst ? inst : "instance", &id))
    return id;
  id = find_instance(a, &err);
  if (err)
    return NULL;
  if (id) {
    task_ctx_event(a->t, "found instance %s, launched by an earlier run",
                   id);
  } else {
    cloud_token(a->t, "instance", token, sizeof token);
    form_add(&f, "ClientToken", "%s", token);
    form_add(&f, "ImageId", "%s", ami);
    form_add(&f, "InstanceType", "%s", type ? type : "");
    form_add(&f, "MinCount", "1");
    form_add(&f, "MaxCount", "1");
    if (ids->subnet)
      form_add(&f, "SubnetId", "%s", ids->subnet);
    /* a test launch takes an address of the subnet's pool: the host's
     * own stays free for the cutover instance */
    if (ids->subnet && ip && !json_is_true(json_object_get(a->plan, "test")))
      form_add(&f, "PrivateIpAddress", "%s", ip);
    if (ids->sg)
      form_add(&f, "SecurityGroupId.1", "%s", ids->sg);
    form_tags(&f, 1, "instance", json_object_get(a->plan, "tags"), NULL,
              inst ? inst : "ferry");
    form_tags(&f, 2, "volume", json_object_get(a->plan, "tags"), NULL,
              inst ? inst : "ferry");
    if (ec2_call(a, "RunInstances", &f, &xml, code, sizeof code) != 0)
      return NULL;
    id = xget(xml, "instanceId");
    if (id == NULL) {
      ferry_error("EC2 RunInstances answered without an instanceId");
      return NULL;
    }
    task_ctx_event(a->t, "launched instance %s (%s, %s%s%s)", id,
                   type ? type : "?", ids->subnet ? ids->subnet : "default "
                   "subnet", ip ? ", " : "", ip ? ip : "");
  }
  if (cloud_ledger_put(a->t, "instance", inst ? inst : "instance", id,
                       CLOUD_MIGRATION) == -1) {
    free(id);
    return NULL;
  }
  return id;
}

struct inst_wait {
  struct aws *a;
  const char *id;
  const char *want;         /* "running" or "terminated" */
  char *xml;                /* the last answer */
};

static int instance_state(void *opaque, unsigned *next_ms)
{
  struct inst_wait *w = opaque;
  struct form f = { 0 };
  struct xml_span b, st;
  CLEANUP_FREE char *name = NULL;
  char code[96];
  size_t pos = 0;
  int r;

  (void)next_ms;
  free(w->xml);
  w->xml = NULL;
  form_add(&f, "InstanceId.1", "%s", w->id);
  r = ec2_call(w->a, "DescribeInstances", &f, &w->xml, code, sizeof code);
  if (r == 1 && strcmp(w->want, "terminated") == 0 &&
      strcmp(code, "InvalidInstanceID.NotFound") == 0)
    return 1;
  if (r != 0)
    return -1;
  b = (struct xml_span){ w->xml, strlen(w->xml) };
  if (xml_next(b, &pos, "instanceState", &st))
    name = xml_get(st, "name");
  if (name == NULL) {
    if (strcmp(w->want, "terminated") == 0)
      return 1;                     /* gone from the answers */
    ferry_error("EC2 DescribeInstances does not list instance %s", w->id);
    return -1;
  }
  if (strcmp(name, w->want) == 0)
    return 1;
  if (strcmp(w->want, "running") == 0 &&
      (strcmp(name, "terminated") == 0 || strcmp(name, "shutting-down") == 0
       || strcmp(name, "stopped") == 0)) {
    struct xml_span sr;
    CLEANUP_FREE char *why = NULL;

    pos = 0;
    if (xml_next(b, &pos, "stateReason", &sr))
      why = xml_get(sr, "message");

    ferry_error("instance %s is %s instead of running: %s", w->id, name,
                why ? why : "(EC2 gives no reason; aws ec2 "
                "get-console-output shows the boot)");
    return -1;
  }
  return 0;
}

static json_t *aws_create(struct task_ctx *t, json_t *plan)
{
  struct aws a;
  struct net_ids ids = { NULL, NULL, NULL };
  json_t *disks = json_object_get(plan, "disks"), *d, *res = NULL;
  json_t *snaps = json_array();
  const char *import = cloud_plan_str(plan, "import");
  CLEANUP_FREE char *ami = NULL, *inst = NULL;
  CLEANUP_FREE char *priv = NULL, *pub = NULL, *subnet = NULL, *vpc = NULL;
  struct inst_wait w = { .a = &a, .want = "running" };
  char console[256];
  size_t i;

  if (aws_init(&a, t, plan) == -1)
    goto out;
  if (json_array_size(disks) == 0) {
    ferry_error("the plan has no disks");
    goto out;
  }
  task_ctx_event(t, "aws %s: networks of blueprint %s",
                 a.region, cloud_plan_str(plan, "blueprint"));
  if (networks(&a, &ids) == -1)
    goto out;
  json_array_foreach(disks, i, d) {
    char *snap;

    task_ctx_event(t, "disk %zu of %zu (%s): %s", i + 1,
                   json_array_size(disks),
                   json_string_value(json_object_get(d, "name")),
                   import && strcmp(import, "object") == 0
                     ? "EC2 ImportSnapshot from the converted object"
                     : "EBS snapshot from the chunked image");
    snap = disk_snapshot(&a, d, import && strcmp(import, "object") == 0);
    if (snap == NULL)
      goto out;
    json_array_append_new(snaps, json_string(snap));
    free(snap);
  }
  if ((ami = register_image(&a, snaps)) == NULL ||
      (inst = run_instance(&a, ami, &ids)) == NULL)
    goto out;
  w.id = inst;
  if (cloud_wait(t, "the instance to run", INSTANCE_WAIT_S, 2000,
                 instance_state, &w) == -1)
    goto out;
  priv = xget(w.xml, "privateIpAddress");
  pub = xget(w.xml, "ipAddress");
  subnet = xget(w.xml, "subnetId");
  vpc = xget(w.xml, "vpcId");
  snprintf(console, sizeof console, "aws ec2 get-console-output "
           "--region %s --instance-id %s", a.region, inst);
  res = json_pack("{s:s, s:s, s:O, s:s?, s:s?, s:s?, s:s?, s:s, s:s}",
                  "instance_id", inst, "image_id", ami, "snapshot_ids",
                  snaps, "private_ip", priv, "public_ip", pub, "subnet_id",
                  subnet, "vpc_id", vpc, "region", a.region,
                  "console_output", console);
  if (res == NULL)
    ferry_error("out of memory");
  else
    task_ctx_event(t, "instance %s is running (%s)", inst,
                   priv ? priv : "no private address");
out:
  free(w.xml);
  free(ids.vpc);
  free(ids.subnet);
  free(ids.sg);
  json_decref(snaps);
  aws_free(&a);
  return res;
}

/* ---- cleanup ---- */

static int delete_one(struct aws *a, const char *kind, const char *id)
{
  CLEANUP_FREE char *xml = NULL;
  struct form f = { 0 };
  char code[96];
  int r;

  if (strcmp(kind, "instance") == 0) {
    struct inst_wait w = { .a = a, .id = id, .want = "terminated" };

    form_add(&f, "InstanceId.1", "%s", id);
    r = ec2_call(a, "TerminateInstances", &f, &xml, code, sizeof code);
    if (r == 1 && strcmp(code, "InvalidInstanceID.NotFound") == 0)
      return 0;
    if (r != 0)
      return -1;
    r = cloud_wait(a->t, "the instance to terminate", TERMINATE_WAIT_S,
                   2000, instance_state, &w);
    free(w.xml);
    return r;
  }
  if (strcmp(kind, "image") == 0) {
    form_add(&f, "ImageId", "%s", id);
    r = ec2_call(a, "DeregisterImage", &f, &xml, code, sizeof code);
    return r == 0 || (r == 1 && (strcmp(code, "InvalidAMIID.NotFound") == 0
                                 || strcmp(code, "InvalidAMIID.Unavailable")
                                    == 0)) ? 0 : -1;
  }
  if (strcmp(kind, "snapshot") == 0) {
    form_add(&f, "SnapshotId", "%s", id);
    r = ec2_call(a, "DeleteSnapshot", &f, &xml, code, sizeof code);
    return r == 0 || (r == 1 && strcmp(code, "InvalidSnapshot.NotFound")
                                == 0) ? 0 : -1;
  }
  return 0;   /* bookkeeping rows (snapshot-completed, import-task) */
}

static json_t *aws_cleanup(struct task_ctx *t, json_t *plan,
                           json_t *resources)
{
  struct aws a;
  json_t *deleted = json_array(), *r, *res = NULL;
  size_t i;

  if (aws_init(&a, t, plan) == -1)
    goto out;
  json_array_foreach(resources, i, r) {
    const char *kind = json_string_value(json_object_get(r, "kind"));
    const char *name = json_string_value(json_object_get(r, "name"));
    const char *id = json_string_value(json_object_get(r, "id"));

    if (kind == NULL || name == NULL || id == NULL)
      continue;
    if (task_ctx_stopping(t)) {
      ferry_error("cleanup stopped: the server is stopping");
      goto out;
    }
    if (delete_one(&a, kind, id) == -1 ||
        cloud_ledger_gone(t, kind, name) == -1)
      goto out;
    if (strcmp(kind, "snapshot-completed") != 0 &&
        strcmp(kind, "import-task") != 0) {
      task_ctx_event(t, "deleted %s %s (%s)", kind, name, id);
      json_array_append_new(deleted, json_pack("{s:s, s:s, s:s}", "kind",
                                               kind, "name", name, "id",
                                               id));
    }
  }
  res = json_pack("{s:O}", "deleted", deleted);
out:
  json_decref(deleted);
  aws_free(&a);
  return res;
}

static const char *const formats[] = { "vmdk", "vhd-dynamic", "raw", NULL };
static const char *const storage[] = { "nvme|xen_blkfront", NULL };
static const char *const net[] = { "ena|xen_netfront", NULL };
static const char *const endpoint_keys[] = { "ec2", "ebs", NULL };
static const char *const imports[] = { "upload", "object", NULL };

const struct target_ops target_aws = {
  .name = "aws",
  .rules = {
    .needs_region = 1, .needs_machine_type = 1, .formats = formats,
    .bios_ok = 1, .uefi_ok = 1, .max_boot_disk = 2 * TiB,
    .max_disk = 64 * TiB, .storage_drivers = storage, .net_drivers = net,
    .driver_hint = "install the NVMe and ENA drivers (in the kernel since "
                   "4.x; RHEL/CentOS 7 ship them) and rebuild the "
                   "initramfs (dracut -f --add-drivers nvme)",
    .guest_agent = "cloud-init",
    .guest_agent_hint = "install cloud-init so the instance takes its "
                        "hostname, keys and network from EC2",
    .endpoint_keys = endpoint_keys, .imports = imports,
  },
  .create = aws_create,
  .cleanup = aws_cleanup,
};
