/* Azure Shared Key and SAS signing against known-good values.
 *
 * The expected strings to sign and signatures were produced by azurite
 * 3.37.0's own verifier (BlobSharedKeyAuthenticator's canonicalization
 * and computeHMACSHA256; generateBlobSASSignature for the SAS) on the same
 * requests, with the emulator's published account devstoreaccount1 and its
 * well-known key: the checks below tie ferry's signer to what Azure's
 * emulator accepts, independently of ferry's own code. */
#include "store/azure_sign.h"
#include "util/error.h"
#include "test.h"

#define ACCOUNT "devstoreaccount1"
#define KEY "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6" \
            "tq/K1SZFPTOtr/KBHBeksoGMGw=="
#define DATE "Sun, 22 Nov 2026 00:00:00 GMT"

static void put_blob(void)
{
  const struct azure_param h[] = {
    { "x-ms-version", "2021-08-06" }, { "Content-Length", "11" },
    { "x-ms-date", DATE }, { "Content-MD5", "XrY7u+Ae7tCTyyK7j1rNww==" },
    { "x-ms-blob-type", "BlockBlob" },
  };
  char *sts = azure_string_to_sign("PUT", ACCOUNT,
                                   "/" ACCOUNT "/ferry/h1/sda/chunks/ab.zst",
                                   NULL, 0, h, 5);
  char *auth = azure_shared_key(ACCOUNT, KEY, sts);

  CHECK_STR(sts, "PUT\n\n\n11\nXrY7u+Ae7tCTyyK7j1rNww==\n\n\n\n\n\n\n\n"
            "x-ms-blob-type:BlockBlob\nx-ms-date:" DATE "\n"
            "x-ms-version:2021-08-06\n"
            "/" ACCOUNT "/" ACCOUNT "/ferry/h1/sda/chunks/ab.zst");
  CHECK_STR(auth, "SharedKey " ACCOUNT ":"
            "2zb2TOvwlq6ExI49fly4Fw9wsvkrp4HdN8Nkuah41c8=");
  free(sts);
  free(auth);
}

static void list_blobs(void)
{
  const struct azure_param q[] = {
    { "restype", "container" }, { "comp", "list" },
    { "prefix", "h1/sda/chunks/" }, { "maxresults", "5000" },
  };
  const struct azure_param h[] = {
    { "x-ms-date", DATE }, { "x-ms-version", "2021-08-06" },
  };
  char *sts = azure_string_to_sign("GET", ACCOUNT, "/" ACCOUNT "/ferry",
                                   q, 4, h, 2);
  char *auth = azure_shared_key(ACCOUNT, KEY, sts);

  CHECK_STR(sts, "GET\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:" DATE "\n"
            "x-ms-version:2021-08-06\n/" ACCOUNT "/" ACCOUNT "/ferry\n"
            "comp:list\nmaxresults:5000\nprefix:h1/sda/chunks/\n"
            "restype:container");
  CHECK_STR(auth, "SharedKey " ACCOUNT ":"
            "1KywP+MucHaU6fVtVlvL84CasdgrllRTx8jHocDGAAk=");
  free(sts);
  free(auth);
}

static void delete_blob(void)
{
  /* a zero Content-Length signs as an empty line */
  const struct azure_param h[] = {
    { "Content-Length", "0" }, { "x-ms-date", DATE },
    { "x-ms-version", "2021-08-06" },
  };
  char *sts = azure_string_to_sign("DELETE", ACCOUNT, "/" ACCOUNT "/ferry/x",
                                   NULL, 0, h, 3);
  char *auth = azure_shared_key(ACCOUNT, KEY, sts);

  CHECK_STR(auth, "SharedKey " ACCOUNT ":"
            "y8WYlUuHSzU93JwwL3V6igH3+XbqH4sVZpRQiDPUHi0=");
  free(sts);
  free(auth);
}

static void blob_sas(void)
{
  char *sas = azure_blob_sas(ACCOUNT, KEY, "ferry", "out/disk.vhd", "r",
                             "2026-11-23T00:00:00Z", NULL, "2021-08-06");

  /* sig pN+PSvu2SiyTFD8LTnVLTTm77uqQnAIr675nkItcjvo= URL-encoded */
  CHECK_STR(sas, "sv=2021-08-06&sr=b&sp=r&se=2026-11-23T00%3A00%3A00Z&sig="
            "pN%2BPSvu2SiyTFD8LTnVLTTm77uqQnAIr675nkItcjvo%3D");
  free(sas);
  /* a grant's write-only SAS, HTTPS only: the protocol is signed (the
   * signature computed independently with Python's hmac) */
  sas = azure_blob_sas(ACCOUNT, KEY, "ferry", "out/disk.vhd", "cw",
                       "2026-11-23T00:00:00Z", "https", "2021-08-06");
  CHECK_STR(sas, "sv=2021-08-06&sr=b&sp=cw&se=2026-11-23T00%3A00%3A00Z"
            "&spr=https&sig=bT8AExak1WtwLT7AdKdlB9xP9RkpGRaDMr4HhRLilok%3D");
  free(sas);
}

static void bad_key(void)
{
  CHECK(azure_shared_key(ACCOUNT, "not base64!", "x") == NULL);
  CHECK_CONTAINS(ferry_errmsg(), "AZURE_STORAGE_KEY");
}

int main(void)
{
  put_blob();
  list_blobs();
  delete_blob();
  blob_sas();
  bad_key();
  TEST_MAIN_END();
}
