/* net/tls_pin.h - a CA certificate's fingerprint, the pin agents carry.
 *
 * ferry-server makes its own CA (server/tls.c); an agent is given the CA's
 * fingerprint with its enrollment token, as kubeadm's discovery hash, and
 * trusts no other CA for the server (agent/server_ca.c).  The fingerprint
 * is "sha256:" and the lower-case hex SHA-256 of the certificate's DER,
 * the same digest `openssl x509 -noout -fingerprint -sha256` prints. */
#ifndef FERRY_TLS_PIN_H
#define FERRY_TLS_PIN_H

#include <stddef.h>
#include <stdint.h>

#define TLS_PIN_LEN 32                 /* bytes of SHA-256 */
#define TLS_PIN_TEXT (7 + 64 + 1)      /* "sha256:" hex NUL */
#define TLS_PEM_MAX (64u << 10)        /* a certificate file's size cap */

/* Parse "sha256:<64 hex>" (hex in either case, bytes optionally separated
 * by ':' as openssl prints them) into pin.  -1 with an error that says
 * what a fingerprint looks like. */
int tls_pin_parse(const char *text, uint8_t pin[TLS_PIN_LEN]);

/* "sha256:<hex>" of pin into out. */
void tls_pin_format(const uint8_t pin[TLS_PIN_LEN], char out[TLS_PIN_TEXT]);

/* 1 when a and b are equal, compared in constant time. */
int tls_pin_equal(const uint8_t a[TLS_PIN_LEN], const uint8_t b[TLS_PIN_LEN]);

/* The fingerprint of the one certificate in the PEM text pem[len], which
 * must be a CA certificate (basicConstraints CA:TRUE).  When pem_out is
 * not NULL, the certificate re-encoded as PEM alone (caller frees): what
 * was checked is exactly what gets stored.  -1 with an error naming what,
 * which describes the text. */
int tls_pin_of_pem(const char *pem, size_t len, const char *what,
                   uint8_t pin[TLS_PIN_LEN], char **pem_out);

/* tls_pin_of_pem of the file at path.  -1 with an error (errno ENOENT
 * when it is absent). */
int tls_pin_of_file(const char *path, uint8_t pin[TLS_PIN_LEN]);

#endif
