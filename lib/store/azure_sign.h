/* store/azure_sign.h - Azure Storage Shared Key and SAS signatures, pure.
 *
 * "Authorize with Shared Key" (Azure Storage REST reference): the string
 * to sign of a Blob service request (version 2015-02-21 and later) and its
 * HMAC-SHA256 under the account key; and "Create a service SAS" (version
 * 2020-12-06 and later) for one blob.  Unit-tested in
 * tests/unit/test_azure_sign.c. */
#ifndef FERRY_AZURE_SIGN_H
#define FERRY_AZURE_SIGN_H

#include <stddef.h>

struct azure_param {
  const char *name;
  const char *value;
};

/* The string to sign.  path is the request's URI path as sent (e.g.
 * "/container/blob", or "/devstoreaccount1/container/blob" on the
 * emulator); query holds the decoded query parameters; headers every
 * header the request sends (standard ones by name, any case, and x-ms-*).
 * Caller frees. */
char *azure_string_to_sign(const char *method, const char *account,
                           const char *path, const struct azure_param *query,
                           size_t n_query, const struct azure_param *headers,
                           size_t n_headers);

/* "SharedKey ACCOUNT:SIGNATURE" for a string to sign; key is the base64
 * account key.  NULL with an error when the key is not base64.  Caller
 * frees. */
char *azure_shared_key(const char *account, const char *key,
                       const char *string_to_sign);

/* A service SAS query string for one blob ("sv=...&sr=b&sp=...&se=...&
 * sig=..."): permissions such as "r" or "cw", expiry as
 * "YYYY-MM-DDTHH:MM:SSZ", protocol "https" (spr: the SAS is refused over
 * plain HTTP) or NULL (any).  Caller frees. */
char *azure_blob_sas(const char *account, const char *key,
                     const char *container, const char *blob,
                     const char *permissions, const char *expiry,
                     const char *protocol, const char *version);

#endif
