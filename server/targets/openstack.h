/* openstack.h - the OpenStack driver's session: credentials found by
 * OpenStack's own convention (clouds.yaml with OS_CLOUD, or the OS_*
 * variables), a Keystone v3 token, and the endpoints of the services the
 * driver calls (from the token's catalog, or the blueprint's endpoints:
 * map), and requests to them.  The token never leaves this module's
 * headers: it is not logged, not in a message, not in a result. */
#ifndef FERRY_OPENSTACK_H
#define FERRY_OPENSTACK_H

#include <jansson.h>

#include "cloud.h"

struct task_ctx;

enum os_service { OS_IDENTITY, OS_IMAGE, OS_NETWORK, OS_COMPUTE,
                  OS_VOLUME, OS_N_SERVICES };

struct os_session {
  struct task_ctx *t;
  json_t *plan;
  json_t *cred;               /* auth fields (owns the password) */
  char where[1200];           /* "the OS_* variables" or "cloud 'x' of F" */
  char *region;               /* NULL: any */
  char *token;                /* X-Subject-Token */
  char *url[OS_N_SERVICES];   /* NULL when the catalog has none */
};

/* Find the credentials, authenticate with Keystone and read the catalog.
 * 0, or -1 with an error (401: naming the variables or the clouds.yaml
 * entry to check). */
int os_session_open(struct os_session *s, struct task_ctx *t, json_t *plan);
void os_session_close(struct os_session *s);

/* A JSON request to service svc at path ("/v2/images"), with body (NULL:
 * none; not consumed).  Returns the answer's status (2xx or 4xx, once a
 * 401 was retried with a fresh token) with *out the JSON body or NULL
 * when there is none, or -1 with an error.  what names the call for
 * messages ("Glance image create"). */
int os_call(struct os_session *s, enum os_service svc, const char *what,
            const char *method, const char *path, json_t *body,
            json_t **out);

/* The URL for svc + path (caller frees), or NULL with an error naming the
 * service missing from the catalog. */
char *os_url(struct os_session *s, enum os_service svc, const char *path);

/* "X-Auth-Token: ..." into *headers (for a request made outside os_call,
 * the streamed image upload).  0 or -1. */
int os_auth_header(struct os_session *s, struct curl_slist **headers);

/* ferry_error() for an answer with status >= 400: what, the service's
 * own error code and message (Keystone's error.message, Neutron's
 * NeutronError, Nova's {itemNotFound: {message}}, Glance's text), and
 * hint (may be NULL). */
void os_error(const char *what, long status, json_t *body,
              const char *hint);

#endif
