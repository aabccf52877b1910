/* auth.h - bearer tokens: the bootstrap enrollment and operator (server
 * admin) tokens from their files, per-agent tokens, and the operator and
 * enrollment tokens made through the API (server/api_tokens.c).  Only
 * SHA-256 hashes are kept in memory and in the database; a presented
 * token is compared in constant time or looked up by its digest. */
#ifndef FERRY_AUTH_H
#define FERRY_AUTH_H

#include <stdint.h>

#include "hash/digest.h"

#define TOKEN_HEX_LEN 64           /* 32 random bytes */

/* A new random token (hex, NUL-terminated) from OpenSSL's CSPRNG. */
int auth_new_token(char token[TOKEN_HEX_LEN + 1]);

/* Hex SHA-256 of a token, as stored. */
void auth_hash_hex(const char *token, char hex[DIGEST_HEX_LEN + 1]);

/* Load the token in path into hash; if the file does not exist, create it
 * (mode 0600) with a new random token.  The file is checked as
 * token_file_read does (a file others may read is refused, like ssh
 * refuses a private key with loose permissions); a token shorter than 16
 * characters is refused too. */
int auth_token_file(const char *path, uint8_t hash[DIGEST_LEN], int *created);

/* 1 if token hashes to hash (constant time). */
int auth_matches(const char *token, const uint8_t hash[DIGEST_LEN]);

#endif
