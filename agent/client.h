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
  int revoked;                   /* the server said: token_revoked */
  char *ca_file;                 /* trusted CA for https, NULL: system */
  int trusted;                   /* client_trust has succeeded */
  int trust_fatal;               /* it failed in a way retrying cannot
                                    mend: a wrong CA, a bad setting */
};

int client_init(struct client *c, const struct agent_config *cfg,
                const char *server);
void client_free(struct client *c);

/* Decide how to trust the server (server_ca.c): plain http://, or
 * https:// with the pinned CA (fetched, checked and kept on first use),
 * the configured CA file, or the system's CAs when configured so.  0 when
 * calls may go ahead; -1 with an error, trust_fatal set when retrying
 * cannot help (the server's CA is not the pinned one, nothing says how to
 * trust it). */
int client_trust(struct client *c);

/* Read the agent token, or enroll (enrollment token from its file) and
 * save the new token in cfg->token_file with mode 0600. */
int client_ensure_token(struct client *c, const char *hostname);

/* Drop the token file and enroll again (after the server forgot us).
 * Refused (-1) once the server said this agent's token was revoked: an
 * admin shut it out, and it does not let itself back in. */
int client_reenroll(struct client *c, const char *hostname);

/* Trade the agent token for a new one (POST /v1/agent/token/rotate): the
 * new one is saved in cfg->token_file (written aside, mode 0600, renamed
 * over) before it is used; the old one stops working on the server at
 * once.  -1 with an error. */
int client_rotate(struct client *c);

/* method path with an optional JSON body.  Returns the HTTP status (the
 * parsed body in *resp when not NULL and there is one), or -1 when the
 * server could not be reached after `tries` attempts with backoff (an
 * error names the server). 5xx answers are retried too. */
long client_call(struct client *c, const char *method, const char *path,
                 json_t *body, json_t **resp, unsigned tries,
                 long timeout);

#endif
