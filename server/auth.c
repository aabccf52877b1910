#include "auth.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "util/error.h"

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
  struct stat st;
  ssize_t n;
  int fd;

  *created = 0;
  fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd == -1 && errno == ENOENT) {
    char token[TOKEN_HEX_LEN + 1];

    if (auth_new_token(token) == -1)
      return -1;
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd == -1) {
      ferry_error("cannot create token file %s: %m", path);
      return -1;
    }
    if (write(fd, token, TOKEN_HEX_LEN) != TOKEN_HEX_LEN ||
        write(fd, "\n", 1) != 1 || fsync(fd) == -1) {
      ferry_error("cannot write token file %s: %m", path);
      close(fd);
      unlink(path);
      return -1;
    }
    close(fd);
    digest_buf(token, TOKEN_HEX_LEN, hash);
    OPENSSL_cleanse(token, sizeof token);
    *created = 1;
    return 0;
  }
  if (fd == -1) {
    ferry_error("cannot open token file %s: %m", path);
    return -1;
  }
  if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
    ferry_error("token file %s is not a regular file", path);
    close(fd);
    return -1;
  }
  if (st.st_mode & 077) {
    ferry_error("token file %s may be read by other users (mode %04o): "
                "run chmod 600 %s", path, st.st_mode & 07777, path);
    close(fd);
    return -1;
  }
  n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) {
    ferry_error("token file %s is empty or unreadable", path);
    return -1;
  }
  buf[n] = '\0';
  buf[strcspn(buf, "\r\n")] = '\0';
  if (strlen(buf) < 16) {
    ferry_error("token in %s is shorter than 16 characters: use a long "
                "random token", path);
    return -1;
  }
  digest_buf(buf, strlen(buf), hash);
  OPENSSL_cleanse(buf, sizeof buf);
  return 0;
}
