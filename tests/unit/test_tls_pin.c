/* The CA fingerprint agents pin: parsing "sha256:<hex>" (with or without
 * openssl's colons), formatting, the constant-time comparison, and the
 * digest of a PEM CA certificate, checked against openssl's own
 * (`openssl x509 -outform DER | sha256sum` gave the digest below). */
#include <stdlib.h>

#include "net/tls_pin.h"
#include "util/error.h"
#include "test.h"

/* openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -subj
 * /CN=unit-ca -addext basicConstraints=critical,CA:TRUE */
static const char ca_pem[] =
  "-----BEGIN CERTIFICATE-----\n"
  "MIIBejCCAR+gAwIBAgIUXScNfQwcZDAscUJNVlwJAeJtX4UwCgYIKoZIzj0EAwIw\n"
  "EjEQMA4GA1UEAwwHdW5pdC1jYTAeFw0yNjEyMDQxNTE5NDZaFw0zNjEyMDExNTE5\n"
  "NDZaMBIxEDAOBgNVBAMMB3VuaXQtY2EwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNC\n"
  "AASEPgwpkIjab6Z8u65EI8no2FbcD/+VNqO/1OolxoD+d+GrVia3JB87dVbzrMom\n"
  "5yy3E6VWq+Za5ocGD38H3i8/o1MwUTAdBgNVHQ4EFgQUwCqsdk6rqNt/eqfqmN+H\n"
  "Z3thDEEwHwYDVR0jBBgwFoAUwCqsdk6rqNt/eqfqmN+HZ3thDEEwDwYDVR0TAQH/\n"
  "BAUwAwEB/zAKBggqhkjOPQQDAgNJADBGAiEA+1HRh4R+49e4VwXbIW77HIxFzSv/\n"
  "XHPpcCZbQbllUAgCIQCpL6vmsQTNBKyclzpgzWiVRjKXxpdHpkt7rfD6uQGonw==\n"
  "-----END CERTIFICATE-----\n";
#define CA_PIN \
  "sha256:a136035f02b90adea09464b4f50979a88acc81716723463fd0ac0c55b33d819c"

/* the same, with CA:FALSE */
static const char leaf_pem[] =
  "-----BEGIN CERTIFICATE-----\n"
  "MIIBcDCCARagAwIBAgIUQzBY+7iuGWkqKIqd2ha7yFyhcKgwCgYIKoZIzj0EAwIw\n"
  "DzENMAsGA1UEAwwEbGVhZjAeFw0yNjEyMDQxNTE5NDZaFw0zNjEyMDExNTE5NDZa\n"
  "MA8xDTALBgNVBAMMBGxlYWYwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAAQVY6yb\n"
  "0eIwRILlgPTKLilz2APiqiK2kIbx2cVZ3P9SPO+Wqzef/1GD9i3SisBXL08EXs3c\n"
  "3vm/Ybqu/bgCaO4po1AwTjAdBgNVHQ4EFgQUQcL1FgCeV1hgTxXX8qjZExnANjow\n"
  "HwYDVR0jBBgwFoAUQcL1FgCeV1hgTxXX8qjZExnANjowDAYDVR0TAQH/BAIwADAK\n"
  "BggqhkjOPQQDAgNIADBFAiB5T0wnuSPQggTr1TPqGjd6eswC6zefhqL4xf73JlAW\n"
  "1wIhAIWRcWDLhq4it0WcceWQgJaMI7QHUick9/xtZLQ1yghW\n"
  "-----END CERTIFICATE-----\n";

int main(void)
{
  uint8_t a[TLS_PIN_LEN], b[TLS_PIN_LEN];
  char text[TLS_PIN_TEXT], both[4096];
  char *norm = NULL;

  CHECK(tls_pin_parse(CA_PIN, a) == 0);
  tls_pin_format(a, text);
  CHECK_STR(text, CA_PIN);
  /* openssl's form: upper case, colon-separated */
  CHECK(tls_pin_parse("SHA256:A1:36:03:5F:02:B9:0A:DE:A0:94:64:B4:F5:09:79:"
                      "A8:8A:CC:81:71:67:23:46:3F:D0:AC:0C:55:B3:3D:81:9C",
                      b) == 0);
  CHECK(tls_pin_equal(a, b));
  b[31] ^= 1;
  CHECK(!tls_pin_equal(a, b));
  b[31] ^= 1;
  b[0] ^= 0x80;
  CHECK(!tls_pin_equal(a, b));

  /* refused: no prefix, short, long, not hex, another digest */
  CHECK(tls_pin_parse("a136035f02b90adea09464b4f50979a88acc81716723463fd0ac"
                      "0c55b33d819c", a) == -1);
  CHECK_CONTAINS(ferry_errmsg(), "'sha256:' and 64 hex digits");
  CHECK(tls_pin_parse("sha256:a136", a) == -1);
  CHECK(tls_pin_parse(CA_PIN "00", a) == -1);
  CHECK(tls_pin_parse("sha256:g136035f02b90adea09464b4f50979a88acc81716723"
                      "463fd0ac0c55b33d819c", a) == -1);
  CHECK(tls_pin_parse("sha1:a136035f02b90adea09464b4f50979a88acc8171", a) ==
        -1);
  CHECK(tls_pin_parse("", a) == -1);

  /* the digest of the DER, as openssl computes it */
  CHECK(tls_pin_of_pem(ca_pem, sizeof ca_pem - 1, "unit", a, &norm) == 0);
  tls_pin_format(a, text);
  CHECK_STR(text, CA_PIN);
  CHECK_STR(norm, ca_pem);
  free(norm);

  /* not a CA; two certificates; nothing */
  CHECK(tls_pin_of_pem(leaf_pem, sizeof leaf_pem - 1, "leaf", a, NULL) ==
        -1);
  CHECK_CONTAINS(ferry_errmsg(), "leaf is not a CA certificate");
  snprintf(both, sizeof both, "%s%s", ca_pem, leaf_pem);
  CHECK(tls_pin_of_pem(both, strlen(both), "both", a, NULL) == -1);
  CHECK_CONTAINS(ferry_errmsg(), "more than one certificate");
  CHECK(tls_pin_of_pem("hello", 5, "junk", a, NULL) == -1);
  CHECK_CONTAINS(ferry_errmsg(), "junk holds no PEM certificate");
  CHECK(tls_pin_of_pem("", 0, "empty", a, NULL) == -1);
  TEST_MAIN_END();
}
