/* gcp_auth.c - service-account key, JWT and access token (gcp_auth.h). */
#include "gcp_auth.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "net/http_client.h"
#include "util/cleanup.h"
#include "util/error.h"
#include "util/file.h"
#include "cloud.h"

#define KEY_FILE_MAX (64u << 10)
#define JWT_LIFETIME 3600          /* Google: exp at most 1 h after iat */
#define TOKEN_EARLY 300            /* renew 5 min before expiry */
#define ENV "GOOGLE_APPLICATION_CREDENTIALS"

struct gcp_key {
  char *path, *email, *project, *token_uri, *key_id;
  EVP_PKEY *pkey;
};

/* One cached token per (client_email, token_uri): every create and
 * cleanup task of the server shares it. */
static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static char cache_who[1024];
static char cache_token[4096];
static long long cache_until;

void gcp_key_free(struct gcp_key *k)
{
  if (k == NULL)
    return;
  free(k->path);
  free(k->email);
  free(k->project);
  free(k->token_uri);
  free(k->key_id);
  EVP_PKEY_free(k->pkey);
  free(k);
}

const char *gcp_key_project(const struct gcp_key *k) { return k->project; }
const char *gcp_key_email(const struct gcp_key *k) { return k->email; }
const char *gcp_key_path(const struct gcp_key *k) { return k->path; }

static char *dup_field(json_t *o, const char *name)
{
  const char *s = json_string_value(json_object_get(o, name));

  return s && *s ? strdup(s) : NULL;
}

struct gcp_key *gcp_key_load(const char *token_uri)
{
  const char *path = getenv(ENV), *type, *pem;
  struct gcp_key *k = NULL;
  json_t *j = NULL;
  json_error_t jerr;
  char *text = NULL;
  size_t len = 0;
  BIO *bio = NULL;

  if (path == NULL || *path == '\0') {
    ferry_error(ENV " is not set for ferry-server: point it at the JSON "
                "key file of the service account ferry should use in GCP "
                "(docs/TARGETS.md, gcp)");
    return NULL;
  }
  text = file_read_small(path, KEY_FILE_MAX, 1, &len);
  if (text == NULL) {
    ferry_error_prefix(ENV ": ");
    return NULL;
  }
  j = json_loadb(text, len, 0, &jerr);
  OPENSSL_cleanse(text, len);
  free(text);
  if (!json_is_object(j)) {
    ferry_error(ENV ": %s is not a JSON key file (line %d: %s): download "
                "a service-account key as JSON", path, jerr.line, jerr.text);
    goto fail;
  }
  type = json_string_value(json_object_get(j, "type"));
  if (type && strcmp(type, "service_account") != 0) {
    ferry_error(ENV ": %s holds a key of type '%s', not service_account: "
                "ferry signs in as a service account", path, type);
    goto fail;
  }
  k = calloc(1, sizeof *k);
  if (k == NULL) {
    ferry_error("out of memory");
    goto fail;
  }
  k->path = strdup(path);
  k->email = dup_field(j, "client_email");
  k->project = dup_field(j, "project_id");
  k->key_id = dup_field(j, "private_key_id");
  k->token_uri = token_uri ? strdup(token_uri) : dup_field(j, "token_uri");
  pem = json_string_value(json_object_get(j, "private_key"));
  if (k->email == NULL || pem == NULL || k->token_uri == NULL) {
    ferry_error(ENV ": %s lacks %s: it is not a service-account key file",
                path, k->email == NULL ? "client_email"
                : pem == NULL ? "private_key" : "token_uri");
    goto fail;
  }
  bio = BIO_new_mem_buf(pem, -1);
  if (bio)
    k->pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
  BIO_free(bio);
  if (k->pkey == NULL || EVP_PKEY_base_id(k->pkey) != EVP_PKEY_RSA) {
    ferry_error(ENV ": the private_key of %s is not an RSA private key in "
                "PEM: download the service account's key again", path);
    goto fail;
  }
  /* the key text goes with j; jansson does not wipe it, so we do */
  OPENSSL_cleanse((char *)pem, strlen(pem));
  json_decref(j);
  return k;
fail:
  if (json_is_string(json_object_get(j, "private_key"))) {
    pem = json_string_value(json_object_get(j, "private_key"));
    OPENSSL_cleanse((char *)pem, strlen(pem));
  }
  json_decref(j);
  gcp_key_free(k);
  return NULL;
}

/* base64url without padding (RFC 7515 section 2) of len bytes. */
static char *b64url(const void *data, size_t len)
{
  char *out = malloc(4 * ((len + 2) / 3) + 1);
  size_t i, n;

  if (out == NULL)
    return NULL;
  n = (size_t)EVP_EncodeBlock((unsigned char *)out, data, (int)len);
  while (n > 0 && out[n - 1] == '=')
    n--;
  out[n] = '\0';
  for (i = 0; i < n; i++)
    out[i] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
  return out;
}

char *gcp_jwt(const struct gcp_key *k, long long now)
{
  CLEANUP_JSON json_t *hdr = NULL, *claims = NULL;
  CLEANUP_FREE char *h = NULL, *c = NULL, *h64 = NULL, *c64 = NULL;
  CLEANUP_FREE char *input = NULL, *s64 = NULL;
  unsigned char sig[1024];
  size_t siglen = sizeof sig;
  EVP_MD_CTX *md = NULL;
  char *jwt = NULL;
  int ok;

  hdr = k->key_id ? json_pack("{s:s, s:s, s:s}", "alg", "RS256", "typ",
                              "JWT", "kid", k->key_id)
                  : json_pack("{s:s, s:s}", "alg", "RS256", "typ", "JWT");
  claims = json_pack("{s:s, s:s, s:s, s:I, s:I}", "iss", k->email,
                     "scope", GCP_SCOPES, "aud", k->token_uri,
                     "iat", (json_int_t)now,
                     "exp", (json_int_t)(now + JWT_LIFETIME));
  if (hdr && claims) {
    h = json_dumps(hdr, JSON_COMPACT);
    c = json_dumps(claims, JSON_COMPACT);
  }
  if (h && c) {
    h64 = b64url(h, strlen(h));
    c64 = b64url(c, strlen(c));
  }
  if (h64 == NULL || c64 == NULL ||
      asprintf(&input, "%s.%s", h64, c64) == -1) {
    input = NULL;
    ferry_error("out of memory");
    return NULL;
  }
  /* RFC 7518 section 3.3: RS256 is RSASSA-PKCS1-v1_5 with SHA-256 */
  md = EVP_MD_CTX_new();
  ok = md && EVP_PKEY_size(k->pkey) <= (int)sizeof sig &&
       EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, k->pkey) == 1 &&
       EVP_DigestSign(md, sig, &siglen, (const unsigned char *)input,
                      strlen(input)) == 1;
  EVP_MD_CTX_free(md);
  if (!ok) {
    ferry_error("cannot sign the GCP token request with the key of %s "
                "(OpenSSL)", k->path);
    return NULL;
  }
  s64 = b64url(sig, siglen);
  if (s64 == NULL || asprintf(&jwt, "%s.%s", input, s64) == -1) {
    ferry_error("out of memory");
    return NULL;
  }
  return jwt;
}

/* Why the endpoint refused: its OAuth error and description (RFC 6749
 * section 5.2), one line. */
static void token_refusal(const struct gcp_key *k, const char *host,
                          const struct http_response *resp)
{
  json_t *j = json_loadb(resp->body ? resp->body : "", resp->body_len, 0,
                         NULL);
  const char *err = json_string_value(json_object_get(j, "error"));
  const char *desc = json_string_value(json_object_get(j,
                                                       "error_description"));

  if (err == NULL && json_is_object(json_object_get(j, "error")))
    err = json_string_value(json_object_get(json_object_get(j, "error"),
                                            "status"));
  ferry_error("the GCP token endpoint %s refused the service-account key "
              "(HTTP %ld %s%s%.200s): check the key file " ENV " names (%s, "
              "%s): it may be deleted, disabled or of another account",
              host, resp->status, err ? err : "", desc ? ": " : "",
              desc ? desc : "", k->path, k->email);
  json_decref(j);
}

int gcp_token(struct task_ctx *t, const struct gcp_key *k, int force,
              char *buf, size_t size)
{
  char who[1024], host[256];
  CLEANUP_FREE char *jwt = NULL, *form = NULL;
  struct http_response resp = { 0 };
  json_t *j = NULL;
  const char *tok;
  long long now = (long long)time(NULL), ttl;
  int r = -1;

  snprintf(who, sizeof who, "%s\n%s", k->email, k->token_uri);
  pthread_mutex_lock(&cache_lock);
  if (!force && strcmp(who, cache_who) == 0 &&
      cache_until - TOKEN_EARLY > now && strlen(cache_token) < size) {
    memcpy(buf, cache_token, strlen(cache_token) + 1);
    pthread_mutex_unlock(&cache_lock);
    return 0;
  }
  pthread_mutex_unlock(&cache_lock);

  http_host(k->token_uri, host, sizeof host);
  jwt = gcp_jwt(k, now);
  if (jwt == NULL)
    return -1;
  if (asprintf(&form, "grant_type=urn%%3Aietf%%3Aparams%%3Aoauth%%3A"
               "grant-type%%3Ajwt-bearer&assertion=%s", jwt) == -1) {
    form = NULL;
    ferry_error("out of memory");
    return -1;
  }
  {
    struct cloud_req req = {
      .what = "GCP token", .method = "POST", .url = k->token_uri,
      .content_type = "application/x-www-form-urlencoded",
      .body = form, .body_len = strlen(form),
      .attempts = 4, .max_seconds = 120, .body_cap = 64u << 10,
      .timeout = 60,
    };

    if (cloud_request(t, &req, &resp) == -1)
      goto out;
  }
  if (resp.status != 200) {
    token_refusal(k, host, &resp);
    goto out;
  }
  j = json_loadb(resp.body ? resp.body : "", resp.body_len, 0, NULL);
  tok = json_string_value(json_object_get(j, "access_token"));
  ttl = json_integer_value(json_object_get(j, "expires_in"));
  if (tok == NULL || *tok == '\0' || strlen(tok) >= size ||
      strlen(tok) >= sizeof cache_token || strpbrk(tok, "\r\n") != NULL) {
    ferry_error("the GCP token endpoint %s answered without a usable "
                "access_token", host);
    goto out;
  }
  if (ttl <= 0 || ttl > 86400)
    ttl = 3600;
  memcpy(buf, tok, strlen(tok) + 1);
  pthread_mutex_lock(&cache_lock);
  snprintf(cache_who, sizeof cache_who, "%s", who);
  memcpy(cache_token, tok, strlen(tok) + 1);
  cache_until = now + ttl;
  pthread_mutex_unlock(&cache_lock);
  r = 0;
out:
  if (j) {
    tok = json_string_value(json_object_get(j, "access_token"));
    if (tok)
      OPENSSL_cleanse((char *)tok, strlen(tok));
  }
  json_decref(j);
  if (resp.body)
    OPENSSL_cleanse(resp.body, resp.body_len);
  http_response_free(&resp);
  OPENSSL_cleanse(jwt, strlen(jwt));
  return r;
}
