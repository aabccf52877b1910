/* fuzz_discovery.c - an agent's discovery JSON as the server takes it
 * (POST /v1/agent/discovery): the body parsed as the request layer does
 * (request_json), the inventory's identifying fields checked
 * (hosts_check_inventory), then, as for a migration, the store URL of each
 * reported disk (image_url) and the preflight checks of every target
 * against the inventory (preflight_run). */
#include "fuzz.h"

#include <jansson.h>

#include "api.h"
#include "image/names.h"
#include "preflight.h"

static const char *const providers[] = {
  "local", "aws", "azure", "gcp", "openstack",
};

/* The plan api_migrations.c would make for every reported disk. */
static json_t *plan_for(json_t *inv, const char *provider)
{
  const char *host = json_string_value(json_object_get(inv, "hostname"));
  json_t *disks = json_array(), *d;
  size_t i;

  json_array_foreach(json_object_get(inv, "disks"), i, d) {
    const char *name = json_string_value(json_object_get(d, "name"));
    char *url = name ? image_url("file:///srv/ferry", host, name, NULL)
                     : NULL;

    if (url == NULL)
      continue;
    json_array_append_new(disks, json_pack("{s:s, s:O, s:s}", "name", name,
                          "size", json_object_get(d, "size")
                            ? json_object_get(d, "size") : json_null(),
                          "image", url));
    free(url);
  }
  return json_pack("{s:s, s:s, s:o}", "hostname", host, "provider",
                   provider, "disks", disks);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  char *body = fuzz_string(data, size);
  struct request r = {
    .method = "POST", .path = "/v1/agent/discovery", .body = body,
    .body_len = size, .scope = SCOPE_AGENT, .agent_id = 1,
  };
  enum MHD_Result ret;
  const char *msg;
  json_t *inv;
  size_t i;

  if (body == NULL)
    return 0;
  inv = request_json(&r, &ret);
  if (inv && hosts_check_inventory(inv, &msg) == NULL)
    for (i = 0; i < sizeof providers / sizeof providers[0]; i++) {
      json_t *plan = plan_for(inv, providers[i]);
      json_t *findings = json_array();

      if (plan && findings)
        (void)preflight_run(plan, inv, findings);
      json_decref(plan);
      json_decref(findings);
    }
  json_decref(inv);
  free(body);
  return 0;
}
