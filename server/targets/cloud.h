/* cloud.h - what the cloud drivers (aws, azure, gcp, openstack) share:
 * the ledger of what a migration made in a cloud, requests to control
 * APIs with bounded retries, bounded waits, and the plan's fields.
 *
 * The plan a driver receives, made by server/api_migrations.c:
 *   migration     the migration's id (integer)
 *   blueprint     the blueprint's name
 *   provider, region, store, format
 *   import        "upload" (the driver writes the disk from the chunked
 *                 image: EBS direct APIs, Azure Upload, Glance upload) or
 *                 "object" (the cloud imports the converted object from
 *                 the store: ImportSnapshot, Azure Import, GCE
 *                 images.insert, Glance web-download)
 *   boot_mode     "bios" or "uefi" (from the inventory), or null
 *   boot_disk     the name of the disk that boots (first in disks[])
 *   disks[]       {name, size, image (chunked image URL), output (the
 *                 converted object's URL)}, the boot disk first, then the
 *                 data disks in the inventory's order
 *   host          the blueprint's host entry: name, machine_type, subnet,
 *                 ip, ...
 *   network       the blueprint network holding host.subnet, or null:
 *                 {name, cidr, allow: [{proto, ports, from}], subnets:
 *                 [{name, cidr}]}
 *   networks      every network of the blueprint
 *   endpoints     the blueprint's endpoints map (object) or null
 *   test          true for a test launch (ferry migrate --test)
 *   instance_name the name to give the instance: hostname, or
 *                 "hostname-test" for a test launch
 *   tags          {"ferry-migration": "12", "ferry-blueprint": NAME,
 *                  "ferry-host": HOST[, "ferry-test": "true"]}: put them
 *                 on everything made, so that a re-run and the operator
 *                 find it
 */
#ifndef FERRY_CLOUD_H
#define FERRY_CLOUD_H

#include <stddef.h>

#include <curl/curl.h>
#include <jansson.h>
#include <sqlite3.h>

#include "net/http_client.h"

struct task_ctx;

/* ---- the ledger ----
 *
 * A row per resource a driver made (or found and adopted) for a
 * migration, in the order they were made: kind ("vpc", "subnet",
 * "snapshot", "image", "instance", ...), name (the driver's own name for
 * it, unique per kind within the migration: "disk-sda", "prod-vpc"), the
 * cloud's id, and its scope.  Record a resource as soon as the cloud
 * answers its create, and make the create itself idempotent (a client
 * token, or a tag the driver looks for first), so that a crash between
 * the two is found again on the re-run.  ferry target cleanup deletes a
 * migration's CLOUD_MIGRATION rows, newest first, through the driver's
 * cleanup op; CLOUD_BLUEPRINT rows (networks, subnets, security groups
 * that every host of the blueprint shares) are kept. */
enum cloud_scope {
  CLOUD_MIGRATION = 0,
  CLOUD_BLUEPRINT = 1,
};

/* 1 with *id (caller frees) when kind/name is recorded and not deleted,
 * 0 when not, -1 with an error. */
int cloud_ledger_get(struct task_ctx *t, const char *kind, const char *name,
                     char **id);
/* Record kind/name = id (replacing an earlier id of it).  0 or -1. */
int cloud_ledger_put(struct task_ctx *t, const char *kind, const char *name,
                     const char *id, enum cloud_scope scope);
/* The resource kind/name is deleted in the cloud.  0 or -1. */
int cloud_ledger_gone(struct task_ctx *t, const char *kind,
                      const char *name);

/* A token unique to the migration and what ("snap-sda"), for the
 * clouds' idempotency (EC2 ClientToken, EBS StartSnapshot ClientToken):
 * "ferry-m12-snap-sda" (at most 64 bytes), into buf. */
const char *cloud_token(struct task_ctx *t, const char *what, char *buf,
                        size_t size);

/* ---- requests ---- */

/* Called before each attempt (dates move on): add the authorization
 * headers for this request to *headers.  0, or -1 with an error. */
typedef int (*cloud_sign_fn)(void *opaque, struct curl_slist **headers,
                             const char *method, const char *url,
                             const void *body, size_t body_len);

struct cloud_req {
  const char *what;           /* "EC2 RunInstances": for messages */
  const char *method;
  const char *url;
  const char *content_type;   /* NULL: none */
  const void *body;
  size_t body_len;
  const char *const *headers; /* extra "Name: value" lines, NULL-ended */
  cloud_sign_fn sign;         /* NULL: no authorization */
  void *sign_opaque;
  unsigned attempts;          /* 0: 6 */
  unsigned max_seconds;       /* whole request with its waits; 0: 300 */
  size_t body_cap;            /* 0: HTTP_BODY_CAP_DEFAULT */
  long timeout;               /* one attempt, seconds; 0: 120 */
};

/* Perform r: 0 with *resp holding the final answer (any 2xx or 4xx; a
 * 429 or 5xx only when the attempts or time ran out), or -1 with an
 * error naming r->what and the host when no answer came or the task is
 * stopping.  Retries connection failures, 408, 429, 500, 502, 503 and
 * 504, waiting as the answer's Retry-After says (seconds or an HTTP
 * date, at most 60 s), else exponential backoff with jitter; never
 * waits past the task's stop.  No header or body is logged.  Free *resp
 * after 0. */
int cloud_request(struct task_ctx *t, const struct cloud_req *r,
                  struct http_response *resp);

/* The body of resp as JSON (NULL with an error naming what when it is
 * not JSON). */
json_t *cloud_json(const struct http_response *resp, const char *what);

/* ---- waits ---- */

/* 1 done, 0 not yet (*next_ms may be set to the wait the cloud asks
 * for, e.g. from Retry-After), -1 with an error (give up). */
typedef int (*cloud_check_fn)(void *opaque, unsigned *next_ms);

/* Call check until it says done: 0; -1 with its error, or with "timed
 * out after N s waiting for what" after max_seconds, or when the task is
 * stopping.  Waits interval_ms between calls unless check sets *next_ms
 * (at most 60 s). */
int cloud_wait(struct task_ctx *t, const char *what, unsigned max_seconds,
               unsigned interval_ms, cloud_check_fn check, void *opaque);

/* One network setup at a time in this server: two migrations of one
 * blueprint would each create its VPC. */
void cloud_network_lock(void);
void cloud_network_unlock(void);

/* ---- plan and configuration ---- */

/* The URL of an API endpoint: the blueprint's endpoints[key], else the
 * environment variable env (when not NULL and set), else dflt (may be
 * NULL).  Trailing '/' removed.  Caller frees; NULL when none. */
char *cloud_endpoint(json_t *plan, const char *key, const char *env,
                     const char *dflt);

/* plan[key] as a string, or NULL. */
const char *cloud_plan_str(json_t *plan, const char *key);

/* The task's migration id. */
long long cloud_migration(struct task_ctx *t);

#endif
