/* client.h - the agent's side of the REST API: enrollment, then calls
 * carrying the agent's own token, with bounded retries. */
#ifndef FERRY_CLIENT_H
#define FERRY_CLIENT_H

#include <jansson.h>

#include "config.h"

struct client {
  const struct agent_config *cfg;
  char *server;                  /* base URL, no trailing slash */
  char token[256];               /* the agent token, once known */
};

int client_init(struct client *c, const struct agent_config *cfg,
                const char *server);
void client_free(struct client *c);

/* Read the agent token, or enroll (enrollment token from its file) and
 * save the new token in cfg->token_file with mode 0600. */
int client_ensure_token(struct client *c, const char *hostname);

/* Drop the token file and enroll again (after the server forgot us). */
int client_reenroll(struct client *c, const char *hostname);

/* method path with an optional JSON body.  Returns the HTTP status (the
 * parsed body in *resp when not NULL and there is one), or -1 when the
 * server could not be reached after `tries` attempts with backoff (an
 * error names the server). 5xx answers are retried too. */
long client_call(struct client *c, const char *method, const char *path,
                 json_t *body, json_t **resp, unsigned tries,
                 long timeout);

#endif
