/* tls.h - the server's TLS identity: its own private CA and a server
 * certificate signed by it, made on first start in the state directory
 * (or the operator's own certificate), and the CA's fingerprint that
 * agents pin (docs/SECURITY.md, "TLS and pinning"). */
#ifndef FERRY_SERVER_TLS_H
#define FERRY_SERVER_TLS_H

#include <stddef.h>

#include "net/tls_pin.h"

#define TLS_SANS_MAX 32

struct tls_opts {
  const char *dir;               /* state directory: ca.pem, ca.key,
                                    server.pem, server.key */
  const char *cert_file;         /* the operator's own (with key_file), */
  const char *key_file;          /* or NULL: made in dir */
  const char *ca_file;           /* the operator's CA, or NULL */
  const char *sans[TLS_SANS_MAX];  /* --tls-san: names and addresses */
  size_t n_sans;
  const char *listen_host;       /* named in the certificate when it is a
                                    specific, non-loopback address */
};

struct tls_identity {
  char *cert_pem;                /* the server's certificate and chain */
  char *key_pem;                 /* its key: wiped by tls_identity_free */
  char *ca_pem;                  /* the CA agents fetch; NULL if unknown */
  char fingerprint[TLS_PIN_TEXT];  /* of ca_pem; "" if unknown */
};

/* 0 if name is a DNS name or an IP address a certificate can hold; else
 * -1 with an error. */
int tls_san_check(const char *name);

/* Load or make the identity.  Made files are created atomically under a
 * lock on dir, so a crash or two servers starting at once leave either
 * nothing or a whole CA and certificate: keys mode 0600, certificates
 * 0644.  An existing CA is kept for ever (agents pin it); the server
 * certificate is issued again when it lacks a name asked for, expires
 * within 30 days, or does not match the CA or its key.  -1 with an error
 * naming the file and the fix. */
int tls_identity_load(const struct tls_opts *o, struct tls_identity *id);
void tls_identity_free(struct tls_identity *id);

#endif
