#include "auth.h"

#include <errno.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "util/error.h"
#include "util/token_file.h"

int auth_new_token(char token[TOKEN_HEX_LEN + 1])
{
  uint8_t raw[TOKEN_HEX_LEN / 2];

  if (RAND_bytes(raw, sizeof raw) != 1) {
    ferry_error("cannot generate a random token (OpenSSL RAND_bytes)");
    return -1;
  }
  hex_encode(raw, sizeof raw, token);
  OPENSSL_cleanse(raw, sizeof raw);
  return 0;
}

void auth_hash_hex(const char *token, char hex[DIGEST_HEX_LEN + 1])
{
  uint8_t d[DIGEST_LEN];

  digest_buf(token, strlen(token), d);
  digest_to_hex(d, hex);
}

int auth_matches(const char *token, const uint8_t hash[DIGEST_LEN])
{
  uint8_t d[DIGEST_LEN];

  digest_buf(token, strlen(token), d);
  return CRYPTO_memcmp(d, hash, DIGEST_LEN) == 0;
}

int auth_token_file(const char *path, uint8_t hash[DIGEST_LEN], int *created)
{
  char buf[256];

  *created = 0;
  if (token_file_read(path, buf, sizeof buf) == -1) {
    if (errno != ENOENT)
      return -1;
    if (auth_new_token(buf) == -1) {
      OPENSSL_cleanse(buf, sizeof buf);
      return -1;
    }
    if (token_file_write(path, buf, 0) == 0) {
      *created = 1;
    } else if (errno != EEXIST || token_file_read(path, buf, sizeof buf)
               == -1) {
      /* EEXIST: another process made it first; that token stands */
      OPENSSL_cleanse(buf, sizeof buf);
      return -1;
    }
  }
  /* the server's own tokens guard every host: a short one is guessable */
  if (strlen(buf) < 16) {
    OPENSSL_cleanse(buf, sizeof buf);
    ferry_error("token in %s is shorter than 16 characters: use a long "
                "random token", path);
    return -1;
  }
  digest_buf(buf, strlen(buf), hash);
  OPENSSL_cleanse(buf, sizeof buf);
  return 0;
}
