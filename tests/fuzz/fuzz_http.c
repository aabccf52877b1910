/* fuzz_http.c - the HTTP API's request layer behind libmicrohttpd: route
 * matching with its {id} captures (route_match over the route table, as
 * dispatch() walks it), the {id} parameters (request_id), and the route's
 * handler with the body: JSON parsing (request_json), field and name
 * checks (names.c), and what the handler then does with the state store
 * (an in-memory SQLite database, put back to the same rows after every
 * input so that each input runs alone).
 *
 * Input: "METHOD PATH", a newline, then the body.  The caller is taken to
 * hold the token the route needs (authentication is not fuzzed here: it
 * compares digests of the Authorization header); replies go to a NULL
 * connection, which libmicrohttpd refuses without touching. */
#include "fuzz.h"

#include <pthread.h>

#include "api.h"
#include "db.h"
#include "route.h"

static struct server srv;

static const char reset_sql[] =
  "DELETE FROM events; DELETE FROM tasks; DELETE FROM migrations;"
  "DELETE FROM blueprints; DELETE FROM inventories; DELETE FROM agents;"
  "DELETE FROM hosts;";

/* One enrolled agent (id 1) for one discovered host (id 1, web01, disk
 * sda) and one valid blueprint (id 1, "bp") that places it. */
static const char seed_sql[] =
  "INSERT INTO hosts (id, hostname, first_seen, last_seen) VALUES "
  "(1, 'web01', 'now', 'now');"
  "INSERT INTO inventories (id, host_id, received, body) VALUES (1, 1, 'now',"
  " '{\"schema\": 1, \"hostname\": \"web01\", \"disks\": [{\"name\": "
  "\"sda\", \"size\": 1073741824}]}');"
  "INSERT INTO agents (id, host_id, hostname, token_hash, enrolled) VALUES "
  "(1, 1, 'web01', 'x', 'now');"
  "INSERT INTO blueprints (id, name, provider, body, source, created, "
  "updated) VALUES (1, 'bp', 'local', '{\"name\": \"bp\", \"provider\": "
  "\"local\", \"store\": \"file:///srv/ferry\", \"hosts\": [{\"name\": "
  "\"web01\"}]}', '', 'now', 'now');";

static void setup(void)
{
  pthread_mutex_init(&srv.lock, NULL);
  pthread_cond_init(&srv.wake, NULL);
  srv.lease_seconds = 60;
  srv.max_attempts = 3;
  srv.convert_workers = 1;
  srv.db = db_open(":memory:");
  if (srv.db == NULL || db_exec(srv.db, seed_sql) == -1)
    abort();
}

static void reset(void)
{
  if (db_exec(srv.db, reset_sql) == -1 || db_exec(srv.db, seed_sql) == -1)
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  const uint8_t *nl = memchr(data, '\n', size);
  size_t head = nl ? (size_t)(nl - data) : size, n, i;
  char *line = fuzz_string(data, head), *body, *path, buf[512];
  const struct route *routes = api_routes(&n);
  struct request r = { .srv = &srv };

  if (srv.db == NULL)
    setup();
  if (line == NULL)
    return 0;
  path = strchr(line, ' ');
  if (path == NULL) {
    free(line);
    return 0;
  }
  *path++ = '\0';
  body = nl ? fuzz_string(nl + 1, size - head - 1) : NULL;
  r.method = line;
  r.path = path;
  r.body = body;
  r.body_len = nl ? size - head - 1 : 0;
  for (i = 0; i < n; i++) {
    memset(r.params, 0, sizeof r.params);
    if (!route_match(routes[i].pattern, path, &r, buf, sizeof buf) ||
        strcmp(routes[i].method, r.method) != 0)
      continue;
    (void)request_id(&r, 0);
    /* the long poll waits for a task: it reads no body */
    if (routes[i].handler == api_agent_task_poll)
      break;
    r.scope = routes[i].scope;
    r.agent_id = 1;
    r.agent_host_id = 1;
    r.project_id = 1;              /* the default project */
    (void)routes[i].handler(&r);
    reset();
    break;
  }
  free(body);
  free(line);
  return 0;
}
