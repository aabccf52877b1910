/* tls.c - the server's private CA and certificate (see tls.h). */
#include "tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "image/names.h"
#include "util/cleanup.h"
#include "util/error.h"
#include "util/file.h"
#include "util/log.h"

#define CA_DAYS 3650                  /* agents pin it: long-lived */
#define SERVER_DAYS 825               /* re-issued at start before expiry */
#define RENEW_DAYS 30
#define CHAIN_MAX (1u << 20)          /* an operator's certificate chain */

int tls_san_check(const char *name)
{
  unsigned char a[16];

  if (inet_pton(AF_INET, name, a) == 1 || inet_pton(AF_INET6, name, a) == 1)
    return 0;
  if (hostname_check(name, strlen(name)) == 0)
    return 0;
  ferry_error("--tls-san '%s' is neither an IP address nor a DNS name "
              "(RFC 1123 labels)", name);
  return -1;
}

static int is_ip(const char *name)
{
  unsigned char a[16];

  return inet_pton(AF_INET, name, a) == 1 ||
         inet_pton(AF_INET6, name, a) == 1;
}

/* The names the server certificate holds. */
struct names {
  const char *v[TLS_SANS_MAX + 5];
  size_t n;
  char host[256];
};

static void names_add(struct names *nm, const char *name)
{
  size_t i;

  for (i = 0; i < nm->n; i++)
    if (strcasecmp(nm->v[i], name) == 0)
      return;
  if (nm->n < sizeof nm->v / sizeof nm->v[0])
    nm->v[nm->n++] = name;
}

static void names_init(struct names *nm, const struct tls_opts *o)
{
  size_t i;

  nm->n = 0;
  names_add(nm, "localhost");
  names_add(nm, "127.0.0.1");
  names_add(nm, "::1");
  if (gethostname(nm->host, sizeof nm->host) == 0 &&
      hostname_check(nm->host, strlen(nm->host)) == 0)
    names_add(nm, nm->host);
  if (o->listen_host && strcmp(o->listen_host, "0.0.0.0") != 0 &&
      strncmp(o->listen_host, "127.", 4) != 0)
    names_add(nm, o->listen_host);
  for (i = 0; i < o->n_sans; i++)
    names_add(nm, o->sans[i]);
}

static int openssl_fail(const char *what)
{
  char buf[256];
  unsigned long e = ERR_get_error();

  ERR_error_string_n(e, buf, sizeof buf);
  ERR_clear_error();
  ferry_error("%s: %s", what, e ? buf : "failed");
  return -1;
}

static int add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
  X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
  int r;

  if (e == NULL)
    return openssl_fail("certificate extension");
  r = X509_add_ext(x, e, -1);
  X509_EXTENSION_free(e);
  return r == 1 ? 0 : openssl_fail("certificate extension");
}

/* A certificate for key, signed by issuer_key (issuer NULL: self-signed,
 * a CA); san is the subjectAltName value of a server certificate. */
static X509 *make_cert(EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key,
                       const char *cn, long days, const char *san)
{
  X509 *x = X509_new();
  X509_NAME *name = X509_NAME_new();
  unsigned char serial[16];
  BIGNUM *bn = NULL;
  X509V3_CTX ctx;

  if (x == NULL || name == NULL)
    goto fail;
  /* RFC 5280 4.1.2.2: a positive serial of at most 20 octets */
  if (RAND_bytes(serial, sizeof serial) != 1)
    goto fail;
  serial[0] &= 0x7f;
  serial[0] |= 0x01;
  bn = BN_bin2bn(serial, sizeof serial, NULL);
  if (bn == NULL || BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) == NULL)
    goto fail;
  if (X509_set_version(x, X509_VERSION_3) != 1 ||
      X509_gmtime_adj(X509_getm_notBefore(x), -3600) == NULL ||
      X509_gmtime_adj(X509_getm_notAfter(x), days * 86400L) == NULL ||
      X509_set_pubkey(x, key) != 1 ||
      X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                                 (const unsigned char *)"ferry", -1, -1,
                                 0) != 1 ||
      X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                 (const unsigned char *)cn, -1, -1, 0) != 1 ||
      X509_set_subject_name(x, name) != 1 ||
      X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer)
                                     : name) != 1)
    goto fail;
  X509V3_set_ctx(&ctx, issuer ? issuer : x, x, NULL, NULL, 0);
  if (issuer == NULL) {
    if (add_ext(x, &ctx, NID_basic_constraints, "critical,CA:TRUE,"
                "pathlen:0") == -1 ||
        add_ext(x, &ctx, NID_key_usage, "critical,keyCertSign,cRLSign") ==
          -1 ||
        add_ext(x, &ctx, NID_subject_key_identifier, "hash") == -1)
      goto out;
  } else {
    if (add_ext(x, &ctx, NID_basic_constraints, "critical,CA:FALSE") == -1 ||
        add_ext(x, &ctx, NID_key_usage, "critical,digitalSignature") == -1 ||
        add_ext(x, &ctx, NID_ext_key_usage, "serverAuth") == -1 ||
        add_ext(x, &ctx, NID_subject_key_identifier, "hash") == -1 ||
        add_ext(x, &ctx, NID_authority_key_identifier, "keyid:always") ==
          -1 ||
        add_ext(x, &ctx, NID_subject_alt_name, san) == -1)
      goto out;
  }
  if (X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256()) == 0)
    goto fail;
  BN_free(bn);
  X509_NAME_free(name);
  return x;
fail:
  openssl_fail("cannot make a certificate");
out:
  BN_free(bn);
  X509_NAME_free(name);
  X509_free(x);
  return NULL;
}

static char *pem_of(int (*write)(BIO *, void *), void *obj)
{
  BIO *b = BIO_new(BIO_s_mem());
  BUF_MEM *bm;
  char *s = NULL;

  if (b && write(b, obj) == 1) {
    BIO_get_mem_ptr(b, &bm);
    s = strndup(bm->data, bm->length);
    OPENSSL_cleanse(bm->data, bm->length);
  }
  BIO_free(b);
  if (s == NULL)
    ferry_error("out of memory");
  return s;
}

static int write_cert(BIO *b, void *x)
{
  return PEM_write_bio_X509(b, x);
}

static int write_key(BIO *b, void *k)
{
  return PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL);
}

static void free_secret(char *s)
{
  if (s) {
    explicit_bzero(s, strlen(s));
    free(s);
  }
}

/* Read a certificate (the first in the file) or a key. */
static X509 *load_cert(const char *path)
{
  CLEANUP_FREE char *pem = NULL;
  size_t len;
  BIO *b;
  X509 *x;

  pem = file_read_small(path, CHAIN_MAX, 0, &len);
  if (pem == NULL)
    return NULL;
  b = BIO_new_mem_buf(pem, (int)len);
  x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
  BIO_free(b);
  if (x == NULL) {
    ERR_clear_error();
    ferry_error("%s holds no PEM certificate", path);
  }
  return x;
}

static EVP_PKEY *load_key(const char *path, char **pem_out)
{
  char *pem;
  size_t len;
  BIO *b;
  EVP_PKEY *k;

  pem = file_read_small(path, TLS_PEM_MAX, 1, &len);
  if (pem == NULL)
    return NULL;
  b = BIO_new_mem_buf(pem, (int)len);
  k = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
  BIO_free(b);
  if (k == NULL) {
    ERR_clear_error();
    ferry_error("%s holds no PEM private key (an encrypted key needs its "
                "passphrase removed)", path);
  }
  if (k && pem_out)
    *pem_out = pem;
  else
    free_secret(pem);
  return k;
}

static int write_pem(const char *path, int (*write)(BIO *, void *),
                     void *obj, mode_t mode, int replace)
{
  char *pem = pem_of(write, obj);
  int r;

  if (pem == NULL)
    return -1;
  r = file_write_atomic(path, pem, strlen(pem), mode, replace);
  free_secret(pem);
  return r;
}

/* Why the server certificate x cannot be kept, or NULL if it can. */
static const char *stale_reason(X509 *x, EVP_PKEY *key, X509 *ca,
                                EVP_PKEY *ca_key, const struct names *nm)
{
  time_t soon = time(NULL) + RENEW_DAYS * 86400L;
  size_t i;

  if (X509_check_private_key(x, key) != 1)
    return "it does not match server.key";
  if (X509_check_issued(ca, x) != X509_V_OK || X509_verify(x, ca_key) != 1)
    return "it was not issued by ca.pem";
  if (X509_cmp_time(X509_get0_notAfter(x), &soon) <= 0)
    return "it expires within 30 days";
  for (i = 0; i < nm->n; i++)
    if (is_ip(nm->v[i]) ? X509_check_ip_asc(x, nm->v[i], 0) != 1
                        : X509_check_host(x, nm->v[i], 0, 0, NULL) != 1)
      return "it lacks a name asked for";
  return NULL;
}

static int path_in(char **p, const char *dir, const char *name)
{
  if (asprintf(p, "%s/%s", dir, name) == -1) {
    *p = NULL;
    ferry_error("out of memory");
    return -1;
  }
  return 0;
}

/* The CA and the server certificate in o->dir, made when absent.  Caller
 * holds the directory's lock. */
static int load_made(const struct tls_opts *o, struct tls_identity *id)
{
  CLEANUP_FREE char *ca_pem = NULL, *ca_key = NULL, *srv_pem = NULL,
                    *srv_key = NULL, *san = NULL;
  EVP_PKEY *cakey = NULL, *key = NULL;
  X509 *ca = NULL, *x = NULL;
  struct names nm;
  const char *why = NULL;
  size_t i, len;
  int r = -1;
  uint8_t pin[TLS_PIN_LEN];

  names_init(&nm, o);
  if (path_in(&ca_pem, o->dir, "ca.pem") == -1 ||
      path_in(&ca_key, o->dir, "ca.key") == -1 ||
      path_in(&srv_pem, o->dir, "server.pem") == -1 ||
      path_in(&srv_key, o->dir, "server.key") == -1)
    return -1;

  if (access(ca_pem, F_OK) == 0) {
    if ((ca = load_cert(ca_pem)) == NULL)
      goto out;
    if ((cakey = load_key(ca_key, NULL)) == NULL) {
      ferry_error_prefix("the CA %s needs its key: ", ca_pem);
      goto out;
    }
    if (X509_check_private_key(ca, cakey) != 1) {
      ferry_error("%s does not match %s: restore the pair from a backup "
                  "(agents pin this CA)", ca_key, ca_pem);
      goto out;
    }
  } else {
    char cn[300];

    /* a ca.key without ca.pem is from a crash before ca.pem was written:
     * its CA was never given out, so it is replaced */
    snprintf(cn, sizeof cn, "ferry-server CA (%s)",
             nm.host[0] ? nm.host : "localhost");
    if ((cakey = EVP_EC_gen("P-256")) == NULL) {
      openssl_fail("cannot make a key");
      goto out;
    }
    if ((ca = make_cert(cakey, NULL, NULL, cn, CA_DAYS, NULL)) == NULL ||
        write_pem(ca_key, write_key, cakey, 0600, 1) == -1 ||
        write_pem(ca_pem, write_cert, ca, 0644, 0) == -1)
      goto out;
    log_info("created a private CA %s (key %s, mode 0600)", ca_pem, ca_key);
  }

  if (access(srv_pem, F_OK) == 0 && access(srv_key, F_OK) == 0) {
    if ((x = load_cert(srv_pem)) == NULL ||
        (key = load_key(srv_key, NULL)) == NULL)
      goto out;
    why = stale_reason(x, key, ca, cakey, &nm);
    if (why) {
      log_info("issuing %s again: %s", srv_pem, why);
      X509_free(x);
      EVP_PKEY_free(key);
      x = NULL;
      key = NULL;
    }
  }
  if (x == NULL) {
    size_t cap = 64;

    for (i = 0; i < nm.n; i++)
      cap += strlen(nm.v[i]) + 5;
    if ((san = calloc(1, cap)) == NULL) {
      ferry_error("out of memory");
      goto out;
    }
    for (i = 0, len = 0; i < nm.n; i++)
      len += (size_t)snprintf(san + len, cap - len, "%s%s:%s",
                              i ? "," : "", is_ip(nm.v[i]) ? "IP" : "DNS",
                              nm.v[i]);
    if ((key = EVP_EC_gen("P-256")) == NULL) {
      openssl_fail("cannot make a key");
      goto out;
    }
    /* key first: a crash between the two leaves a pair that does not
     * match, which the next start issues again */
    if ((x = make_cert(key, ca, cakey, "ferry-server", SERVER_DAYS,
                       san)) == NULL ||
        write_pem(srv_key, write_key, key, 0600, 1) == -1 ||
        write_pem(srv_pem, write_cert, x, 0644, 1) == -1)
      goto out;
    log_info("issued %s for %s", srv_pem, san);
  }

  /* the chain MHD serves: the server certificate, then the CA */
  {
    CLEANUP_FREE char *leaf = pem_of(write_cert, x);

    id->ca_pem = pem_of(write_cert, ca);
    id->key_pem = pem_of(write_key, key);
    if (leaf == NULL || id->ca_pem == NULL || id->key_pem == NULL ||
        asprintf(&id->cert_pem, "%s%s", leaf, id->ca_pem) == -1) {
      id->cert_pem = NULL;
      ferry_error("out of memory");
      goto out;
    }
  }
  if (tls_pin_of_pem(id->ca_pem, strlen(id->ca_pem), ca_pem, pin, NULL) ==
      -1)
    goto out;
  tls_pin_format(pin, id->fingerprint);
  r = 0;
out:
  X509_free(ca);
  X509_free(x);
  EVP_PKEY_free(cakey);
  EVP_PKEY_free(key);
  return r;
}

/* The operator's certificate, key and optional CA. */
static int load_given(const struct tls_opts *o, struct tls_identity *id)
{
  CLEANUP_FREE char *chain = NULL;
  EVP_PKEY *key = NULL;
  X509 *x = NULL, *ca = NULL;
  X509_STORE *store = NULL;
  X509_STORE_CTX *ctx = NULL;
  STACK_OF(X509) *untrusted = NULL;
  BIO *b = NULL;
  size_t len;
  int r = -1;
  uint8_t pin[TLS_PIN_LEN];

  if ((chain = file_read_small(o->cert_file, CHAIN_MAX, 0, &len)) == NULL ||
      (key = load_key(o->key_file, &id->key_pem)) == NULL ||
      (x = load_cert(o->cert_file)) == NULL)
    goto out;
  if (X509_check_private_key(x, key) != 1) {
    ERR_clear_error();
    ferry_error("the key in %s does not belong to the certificate in %s",
                o->key_file, o->cert_file);
    goto out;
  }
  if (o->ca_file) {
    CLEANUP_FREE char *ca_text = file_read_small(o->ca_file, TLS_PEM_MAX, 0,
                                                 &len);
    X509 *extra;
    int ok;

    if (ca_text == NULL ||
        tls_pin_of_pem(ca_text, len, o->ca_file, pin, &id->ca_pem) == -1 ||
        (ca = load_cert(o->ca_file)) == NULL)
      goto out;
    /* a CA that does not vouch for the certificate would be pinned by
     * every agent and then refused by all of them: say so now */
    store = X509_STORE_new();
    ctx = X509_STORE_CTX_new();
    untrusted = sk_X509_new_null();
    b = BIO_new_mem_buf(chain, (int)strlen(chain));
    if (store == NULL || ctx == NULL || untrusted == NULL || b == NULL ||
        X509_STORE_add_cert(store, ca) != 1) {
      openssl_fail("cannot check the certificate chain");
      goto out;
    }
    while ((extra = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL)
      if (!sk_X509_push(untrusted, extra)) {
        X509_free(extra);
        break;
      }
    ERR_clear_error();
    if (X509_STORE_CTX_init(ctx, store, x, untrusted) != 1) {
      openssl_fail("cannot check the certificate chain");
      goto out;
    }
    X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_SERVER);
    ok = X509_verify_cert(ctx);
    if (ok != 1) {
      ferry_error("the certificate in %s does not chain to the CA in %s: "
                  "%s", o->cert_file, o->ca_file,
                  X509_verify_cert_error_string(
                    X509_STORE_CTX_get_error(ctx)));
      goto out;
    }
    tls_pin_format(pin, id->fingerprint);
  }
  id->cert_pem = chain;
  chain = NULL;
  r = 0;
out:
  BIO_free(b);
  sk_X509_pop_free(untrusted, X509_free);
  X509_STORE_CTX_free(ctx);
  X509_STORE_free(store);
  X509_free(ca);
  X509_free(x);
  EVP_PKEY_free(key);
  return r;
}

int tls_identity_load(const struct tls_opts *o, struct tls_identity *id)
{
  CLEANUP_CLOSE int dfd = -1;
  int r;

  memset(id, 0, sizeof *id);
  if (o->cert_file || o->key_file) {
    if (o->cert_file == NULL || o->key_file == NULL) {
      ferry_error("--tls-cert and --tls-key go together");
      return -1;
    }
    r = load_given(o, id);
  } else {
    if (o->ca_file) {
      ferry_error("--tls-ca needs --tls-cert and --tls-key (without them "
                  "the server makes its own CA)");
      return -1;
    }
    /* one server at a time makes the files: the other waits, then uses
     * them */
    dfd = open(o->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd == -1) {
      ferry_error("cannot open the state directory %s: %m", o->dir);
      return -1;
    }
    while (flock(dfd, LOCK_EX) == -1)
      if (errno != EINTR) {
        ferry_error("cannot lock the state directory %s: %m", o->dir);
        return -1;
      }
    r = load_made(o, id);
    flock(dfd, LOCK_UN);
  }
  if (r == -1)
    tls_identity_free(id);
  return r;
}

void tls_identity_free(struct tls_identity *id)
{
  free(id->cert_pem);
  free_secret(id->key_pem);
  free(id->ca_pem);
  memset(id, 0, sizeof *id);
}
