/* hash/digest.h - SHA-256, the one hash of ferry's image format. */
#ifndef FERRY_DIGEST_H
#define FERRY_DIGEST_H

#include <stddef.h>
#include <stdint.h>

#define DIGEST_LEN 32
#define DIGEST_HEX_LEN 64

struct digest_ctx;

/* out = SHA-256(buf[0..len)). */
void digest_buf(const void *buf, size_t len, uint8_t out[DIGEST_LEN]);

/* Streaming: create (NULL on OOM), update, final (resets for reuse). */
struct digest_ctx *digest_create(void);
void digest_update(struct digest_ctx *ctx, const void *buf, size_t len);
void digest_final(struct digest_ctx *ctx, uint8_t out[DIGEST_LEN]);
void digest_close(struct digest_ctx *ctx);

/* Lower-case hex, NUL-terminated (hex has DIGEST_HEX_LEN + 1 bytes). */
void digest_to_hex(const uint8_t d[DIGEST_LEN], char *hex);
/* Parse exactly 64 hex digits; -1 (no error recorded) if malformed. */
int digest_from_hex(const char *hex, uint8_t d[DIGEST_LEN]);

/* Generic hex for other lengths (HMAC output etc.). */
void hex_encode(const void *buf, size_t len, char *out);

#endif
