/* gcp_auth.h - Google service-account credentials for the gcp driver:
 * the JSON key file GOOGLE_APPLICATION_CREDENTIALS names, the RS256 JWT
 * signed with its private key (RFC 7523, as Google's "OAuth 2.0 for
 * server to server applications" describes it), and the access token the
 * token endpoint trades for it, cached until near its expiry.  Neither
 * the key nor a token is ever logged or put in an error message. */
#ifndef FERRY_GCP_AUTH_H
#define FERRY_GCP_AUTH_H

#include <stddef.h>

struct task_ctx;

/* The scopes ferry asks for: the Compute Engine API, and reading the
 * Cloud Storage objects images.insert imports. */
#define GCP_SCOPES "https://www.googleapis.com/auth/compute " \
                   "https://www.googleapis.com/auth/devstorage.read_only"

struct gcp_key;

/* Load the key file GOOGLE_APPLICATION_CREDENTIALS names: a regular
 * file only its owner may read, with type service_account, client_email,
 * private_key (PEM, RSA), token_uri and project_id.  token_uri, when not
 * NULL, replaces the file's (the blueprint's endpoints.oauth2).  NULL
 * with an error naming the variable and the file.  gcp_key_free frees. */
struct gcp_key *gcp_key_load(const char *token_uri);
void gcp_key_free(struct gcp_key *k);

/* The key file's project_id (may be NULL), client_email, path. */
const char *gcp_key_project(const struct gcp_key *k);
const char *gcp_key_email(const struct gcp_key *k);
const char *gcp_key_path(const struct gcp_key *k);

/* A JWT assertion for k (iss client_email, scope GCP_SCOPES, aud
 * token_uri, iat now, exp now + 1 h), into a new string (caller frees).
 * NULL with an error.  Exposed for the unit test. */
char *gcp_jwt(const struct gcp_key *k, long long now);

/* The access token for k into buf (NUL-terminated): the cached one while
 * it has more than 5 minutes left, else a new one from the token
 * endpoint (force: a new one in any case, after a 401).  0, or -1 with
 * an error: a refused key names GOOGLE_APPLICATION_CREDENTIALS and the
 * endpoint's own error code and description. */
int gcp_token(struct task_ctx *t, const struct gcp_key *k, int force,
              char *buf, size_t size);

#endif
