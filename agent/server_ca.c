/* server_ca.c - how the agent trusts ferry-server's certificate.
 *
 * With an https:// server and a pin (server_ca_sha256 in agent.conf, the
 * fingerprint of the server's CA that comes with the enrollment token, as
 * kubeadm's discovery hash), the agent fetches the CA once, takes it only
 * if its SHA-256 is the pin, keeps it (server-ca.pem beside the token
 * file), and from then on trusts that CA alone, verifying the server's
 * certificate and host name on every call.  The fetch is the one request
 * made without verification, and it carries nothing: no token, no body.
 * An impostor can send the real CA (it is public) but then cannot finish
 * a verified handshake; one that sends its own CA is refused here.  So an
 * agent never talks to an impostor, even on first contact. */
#include "client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "net/http_client.h"
#include "net/tls_pin.h"
#include "util/cleanup.h"
#include "util/error.h"
#include "util/file.h"
#include "util/log.h"

static const char *conf_name(const struct client *c)
{
  return c->cfg->path ? c->cfg->path : AGENT_CONF_DEFAULT;
}

/* GET /v1/ca.pem, unverified; keep it in path if it is the pinned CA. */
static int fetch_pinned(struct client *c, const uint8_t pin[TLS_PIN_LEN],
                        const char *path, int *fatal)
{
  CLEANUP_FREE char *url = NULL, *pem = NULL;
  struct http_request req = {
    .method = "GET", .body_cap = TLS_PEM_MAX, .timeout = 30,
    .tls_unverified = 1,
  };
  struct http_response r;
  char seen_text[TLS_PIN_TEXT], want_text[TLS_PIN_TEXT];
  uint8_t seen[TLS_PIN_LEN];

  if (asprintf(&url, "%s/v1/ca.pem", c->server) == -1) {
    ferry_error("out of memory");
    return -1;
  }
  req.url = url;
  if (http_do(&req, &r) == -1) {
    http_response_free(&r);
    ferry_error_prefix("cannot fetch the CA of %s: ", c->server);
    return -1;                              /* not there yet: retry */
  }
  if (r.status >= 500) {
    ferry_error("cannot fetch the CA of %s: HTTP %ld", c->server, r.status);
    http_response_free(&r);
    return -1;
  }
  *fatal = 1;
  if (r.status != 200) {
    ferry_error("%s answered HTTP %ld to GET /v1/ca.pem: it offers no CA "
                "to check against server_ca_sha256 (%s); give the agent "
                "the server's CA with server_ca_file instead", c->server,
                r.status, conf_name(c));
    http_response_free(&r);
    return -1;
  }
  if (tls_pin_of_pem(r.body ? r.body : "", r.body_len,
                     "the CA certificate the server sent", seen,
                     &pem) == -1) {
    ferry_error_prefix("refusing %s: ", c->server);
    http_response_free(&r);
    return -1;
  }
  http_response_free(&r);
  if (!tls_pin_equal(seen, pin)) {
    tls_pin_format(seen, seen_text);
    tls_pin_format(pin, want_text);
    ferry_error("refusing %s: its CA is %s but server_ca_sha256 in %s is "
                "%s: this is not the ferry-server the agent was given, or "
                "its CA was replaced; compare with the fingerprint "
                "ferry-server logs (or 'ferry ca' prints) and fix the pin",
                c->server, seen_text, conf_name(c), want_text);
    return -1;
  }
  if (file_write_atomic(path, pem, strlen(pem), 0644, 1) == -1) {
    ferry_error_prefix("cannot keep the server's CA: ");
    return -1;
  }
  *fatal = 0;
  tls_pin_format(seen, seen_text);
  log_info("the CA of %s is the pinned one (%s): kept in %s", c->server,
           seen_text, path);
  return 0;
}

int client_trust(struct client *c)
{
  const struct agent_config *cfg = c->cfg;
  CLEANUP_FREE char *path = NULL;
  uint8_t pin[TLS_PIN_LEN], have[TLS_PIN_LEN];
  int fatal = 0;

  if (c->trusted)
    return 0;
  c->trust_fatal = 1;
  if (strncmp(c->server, "http://", 7) == 0) {
    if (cfg->server_ca_sha256 || cfg->server_ca_file) {
      ferry_error("server %s is plain http:// but %s names its CA: use the "
                  "server's https:// URL", c->server, conf_name(c));
      return -1;
    }
    c->trusted = 1;
    c->trust_fatal = 0;
    return 0;
  }
  if (cfg->server_ca_sha256) {
    if (tls_pin_parse(cfg->server_ca_sha256, pin) == -1)
      return -1;
    path = config_server_ca_path(cfg);
    if (path == NULL) {
      ferry_error("out of memory");
      return -1;
    }
    /* the kept CA serves only while it is the pinned one: a new pin
     * (the server's CA replaced) fetches the new CA */
    if (tls_pin_of_file(path, have) == -1 || !tls_pin_equal(have, pin)) {
      if (access(path, F_OK) == 0)
        log_info("%s is not the pinned CA: fetching the server's", path);
      if (fetch_pinned(c, pin, path, &fatal) == -1) {
        c->trust_fatal = fatal;
        return -1;
      }
    }
  } else if (cfg->server_ca_file) {
    path = strdup(cfg->server_ca_file);
    if (path == NULL || access(path, R_OK) == -1) {
      ferry_error("cannot read server_ca_file %s: %m", cfg->server_ca_file);
      return -1;
    }
  } else if (!cfg->server_ca_system) {
    ferry_error("server %s is https:// but %s has no server_ca_sha256 (the "
                "CA fingerprint ferry-server logs), server_ca_file, or "
                "server_ca_system = yes: the agent trusts no server it "
                "cannot authenticate", c->server, conf_name(c));
    return -1;
  }
  free(c->ca_file);
  c->ca_file = path;
  path = NULL;
  c->trusted = 1;
  c->trust_fatal = 0;
  return 0;
}
