#include "client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/error.h"
#include "net/http_client.h"
#include "util/log.h"
#include "util/token_file.h"

int client_init(struct client *c, const struct agent_config *cfg,
                const char *server)
{
  size_t n;

  memset(c, 0, sizeof *c);
  c->cfg = cfg;
  if (server == NULL)
    server = cfg->server;
  if (server == NULL) {
    ferry_error("no server: pass --server URL or set 'server' in %s",
                cfg->path ? cfg->path : AGENT_CONF_DEFAULT);
    return -1;
  }
  if (strncmp(server, "http://", 7) != 0 &&
      strncmp(server, "https://", 8) != 0) {
    ferry_error("server '%s' is not an http:// or https:// URL", server);
    return -1;
  }
  c->server = strdup(server);
  if (c->server == NULL) {
    ferry_error("out of memory");
    return -1;
  }
  n = strlen(c->server);
  while (n > 0 && c->server[n - 1] == '/')
    c->server[--n] = '\0';
  return 0;
}

void client_free(struct client *c)
{
  free(c->server);
  free(c->ca_file);
  memset(c->token, 0, sizeof c->token);
}

long client_call(struct client *c, const char *method, const char *path,
                 json_t *body, json_t **resp, unsigned tries, long timeout)
{
  CLEANUP_FREE char *url = NULL, *text = NULL;
  struct curl_slist *hdrs = NULL;
  struct http_response r;
  struct http_request req = { .method = method, .timeout = timeout,
                              .stats = "api" };
  char host[256];
  long status = -1;
  unsigned attempt;

  if (resp)
    *resp = NULL;
  if (asprintf(&url, "%s%s", c->server, path) == -1)
    goto oom;
  if (body && (text = json_dumps(body, JSON_COMPACT)) == NULL)
    goto oom;
  if (http_header_add(&hdrs, "Content-Type: application/json") == -1)
    goto oom;
  if (c->token[0] &&
      http_header_add(&hdrs, "Authorization: Bearer %s", c->token) == -1)
    goto oom;
  req.url = url;
  req.headers = hdrs;
  req.body = text;
  req.body_len = text ? strlen(text) : 0;
  for (attempt = 0; attempt < tries; attempt++) {
    if (attempt)
      http_backoff(attempt, 500, 30000);
    if (client_trust(c) == -1) {
      if (c->trust_fatal)
        break;
      continue;
    }
    req.ca_file = c->ca_file;
    if (http_do(&req, &r) == -1) {
      int refused = r.tls_refused;

      http_response_free(&r);
      log_debug("%s", ferry_errmsg());
      if (refused) {
        /* not the server the pinned CA vouches for: no retry mends it,
         * and nothing more goes to it */
        c->trust_fatal = 1;
        break;
      }
      continue;                               /* not reached: retry */
    }
    if (r.status >= 500) {
      ferry_error("%s %s: the server answered %ld", method,
                  http_host(url, host, sizeof host), r.status);
      http_response_free(&r);
      continue;
    }
    status = r.status;
    if (resp && r.body && r.body_len)
      *resp = json_loads(r.body, 0, NULL);
    if (status >= 400 && r.body) {
      json_t *e = json_loads(r.body, 0, NULL);
      const char *m = json_string_value(json_object_get(
        json_object_get(e, "error"), "message"));
      const char *code = json_string_value(json_object_get(
        json_object_get(e, "error"), "code"));

      if (status == 401 && code && strcmp(code, "token_revoked") == 0 &&
          c->token[0])
        c->revoked = 1;
      ferry_error("%s %s%s: HTTP %ld: %s", method,
                  http_host(url, host, sizeof host), path, status,
                  m ? m : "(no message)");
      json_decref(e);
    }
    http_response_free(&r);
    break;
  }
  curl_slist_free_all(hdrs);
  return status;
oom:
  curl_slist_free_all(hdrs);
  ferry_error("out of memory");
  return -1;
}

int client_ensure_token(struct client *c, const char *hostname)
{
  json_t *resp = NULL, *body;
  const char *tok;
  long status;

  /* the server is authenticated before any token goes to it */
  if (client_trust(c) == -1)
    return -1;
  /* absent or empty (never written): enroll; anything else is an error */
  if (token_file_read(c->cfg->token_file, c->token, sizeof c->token) == 0)
    return 0;
  if (errno != ENOENT && errno != ENODATA)
    return -1;
  /* the enrollment token goes out once, from c->token, then is wiped */
  if (token_file_read(c->cfg->enroll_token_file, c->token,
                      sizeof c->token) == -1) {
    if (errno == ENOENT || errno == EACCES)
      ferry_error("this agent is not enrolled and the enrollment token "
                  "file %s cannot be read: %m", c->cfg->enroll_token_file);
    return -1;
  }
  body = json_pack("{s:s}", "hostname", hostname);
  status = client_call(c, "POST", "/v1/agents/enroll", body, &resp, 5, 30);
  json_decref(body);
  memset(c->token, 0, sizeof c->token);
  if (status != 201) {
    json_decref(resp);
    if (status > 0)
      ferry_error_prefix("enrollment refused: ");
    else
      ferry_error_prefix("cannot enroll with %s: ", c->server);
    return -1;
  }
  tok = json_string_value(json_object_get(resp, "token"));
  if (tok == NULL || strlen(tok) >= sizeof c->token) {
    json_decref(resp);
    ferry_error("the server's enrollment answer has no token");
    return -1;
  }
  memcpy(c->token, tok, strlen(tok) + 1);
  json_decref(resp);
  if (token_file_write(c->cfg->token_file, c->token, 1) == -1) {
    ferry_error_prefix("cannot save the agent token: ");
    return -1;
  }
  log_info("enrolled with %s; token saved in %s", c->server,
           c->cfg->token_file);
  return 0;
}

int client_reenroll(struct client *c, const char *hostname)
{
  if (c->revoked) {
    ferry_error("the server revoked this agent's token (an admin ran ferry "
                "agent revoke): the agent stops and does not enroll again "
                "on its own; to bring it back, remove %s and start it "
                "again", c->cfg->token_file);
    return -1;
  }
  memset(c->token, 0, sizeof c->token);
  if (unlink(c->cfg->token_file) == -1 && errno != ENOENT) {
    ferry_error("cannot remove %s: %m", c->cfg->token_file);
    return -1;
  }
  return client_ensure_token(c, hostname);
}

int client_rotate(struct client *c)
{
  json_t *resp = NULL;
  const char *tok;
  long status;

  status = client_call(c, "POST", "/v1/agent/token/rotate", NULL, &resp, 3,
                       30);
  tok = json_string_value(json_object_get(resp, "token"));
  if (status != 200 || tok == NULL || strlen(tok) >= sizeof c->token) {
    if (status == 200)
      ferry_error("the server's rotation answer has no token");
    ferry_error_prefix("token rotation: ");
    json_decref(resp);
    return -1;
  }
  /* the old token is dead already: the new one is kept on disk first,
   * so a crash after this point restarts with a working token */
  if (token_file_write(c->cfg->token_file, tok, 1) == -1) {
    ferry_error_prefix("token rotation: cannot save the new token (this "
                       "run uses it; a restart enrolls again): ");
    memcpy(c->token, tok, strlen(tok) + 1);
    json_decref(resp);
    return -1;
  }
  memset(c->token, 0, sizeof c->token);
  memcpy(c->token, tok, strlen(tok) + 1);
  json_decref(resp);
  log_info("agent token rotated; the new one is saved in %s",
           c->cfg->token_file);
  return 0;
}
