/* The SigV4 signer against the examples AWS publishes:
 * - the Amazon S3 API reference, "Signature Calculations for the
 *   Authorization Header: Transferring Payload in a Single Chunk" (GET
 *   Object with a range, PUT Object, GET Bucket lifecycle, GET Bucket list)
 *   and "Query String Authentication" (the presigned GET of test.txt),
 *   credentials AKIAIOSFODNN7EXAMPLE, 2013-05-24, examplebucket;
 * - the Signature Version 4 test suite (get-vanilla,
 *   get-vanilla-query-order-key-case), AKIDEXAMPLE, 2015-08-30. */
#include "net/http_client.h"
#include "store/sigv4.h"
#include "test.h"

#define S3_HOST "examplebucket.s3.amazonaws.com"
#define S3_DATE "20130524T000000Z"

static const struct sigv4_key s3_key = {
  .access_key = "AKIAIOSFODNN7EXAMPLE",
  .secret_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
  .region = "us-east-1",
  .service = "s3",
};

static const struct sigv4_key suite_key = {
  .access_key = "AKIDEXAMPLE",
  .secret_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
  .region = "us-east-1",
  .service = "service",
};

/* The hex signature at the end of an Authorization value. */
static const char *sig_of(const char *auth)
{
  const char *p = auth ? strstr(auth, "Signature=") : NULL;

  return p ? p + 10 : "(none)";
}

static void s3_get_object(void)
{
  const struct sigv4_param h[] = {
    { "Range", "bytes=0-9" },
    { "x-amz-content-sha256", SIGV4_EMPTY_SHA256 },
  };
  struct sigv4_request r = {
    .method = "GET", .host = S3_HOST, .path = "/test.txt",
    .headers = h, .n_headers = 2, .payload_hash = SIGV4_EMPTY_SHA256,
  };
  char *canon = sigv4_canonical_request(&r, &s3_key, S3_DATE);
  char *sts = sigv4_string_to_sign(S3_DATE, &s3_key, canon);
  char *auth = sigv4_authorization(&r, &s3_key, S3_DATE);

  CHECK_STR(canon, "GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\n"
            "range:bytes=0-9\n"
            "x-amz-content-sha256:" SIGV4_EMPTY_SHA256 "\n"
            "x-amz-date:20130524T000000Z\n\n"
            "host;range;x-amz-content-sha256;x-amz-date\n"
            SIGV4_EMPTY_SHA256);
  CHECK_STR(sts, "AWS4-HMAC-SHA256\n20130524T000000Z\n"
            "20130524/us-east-1/s3/aws4_request\n"
            "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972");
  CHECK_STR(auth, "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524"
            "/us-east-1/s3/aws4_request, SignedHeaders=host;range;"
            "x-amz-content-sha256;x-amz-date, Signature="
            "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
  free(canon);
  free(sts);
  free(auth);
}

static void s3_put_object(void)
{
  const char *hash =
    "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072";
  const struct sigv4_param h[] = {
    { "Date", "Fri, 24 May 2013 00:00:00 GMT" },
    { "x-amz-storage-class", "REDUCED_REDUNDANCY" },
    { "x-amz-content-sha256", hash },
  };
  char *path = http_escape("/test$file.text", 1);
  struct sigv4_request r = {
    .method = "PUT", .host = S3_HOST, .path = path,
    .headers = h, .n_headers = 3, .payload_hash = hash,
  };
  char *auth = sigv4_authorization(&r, &s3_key, S3_DATE);

  CHECK_STR(path, "/test%24file.text");
  CHECK_CONTAINS(auth, "SignedHeaders=date;host;x-amz-content-sha256;"
                 "x-amz-date;x-amz-storage-class,");
  CHECK_STR(sig_of(auth),
            "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd");
  free(auth);
  free(path);
}

static void s3_bucket_requests(void)
{
  const struct sigv4_param h[] = {
    { "x-amz-content-sha256", SIGV4_EMPTY_SHA256 },
  };
  const struct sigv4_param lifecycle[] = { { "lifecycle", "" } };
  /* deliberately out of order: the signer sorts */
  const struct sigv4_param list[] = { { "prefix", "J" }, { "max-keys", "2" } };
  struct sigv4_request r = {
    .method = "GET", .host = S3_HOST, .path = "/",
    .headers = h, .n_headers = 1, .payload_hash = SIGV4_EMPTY_SHA256,
  };
  char *auth, *q;

  r.query = lifecycle;
  r.n_query = 1;
  auth = sigv4_authorization(&r, &s3_key, S3_DATE);
  CHECK_STR(sig_of(auth),
            "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543");
  free(auth);
  r.query = list;
  r.n_query = 2;
  auth = sigv4_authorization(&r, &s3_key, S3_DATE);
  CHECK_STR(sig_of(auth),
            "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");
  free(auth);
  q = sigv4_canonical_query(list, 2);
  CHECK_STR(q, "max-keys=2&prefix=J");
  free(q);
}

static void s3_presigned_get(void)
{
  struct sigv4_request r = {
    .method = "GET", .host = S3_HOST, .path = "/test.txt",
    .payload_hash = SIGV4_UNSIGNED,
  };
  char *q = sigv4_presign_query(&r, &s3_key, S3_DATE, 86400);

  CHECK_STR(q, "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential="
            "AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request"
            "&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400"
            "&X-Amz-SignedHeaders=host&X-Amz-Signature="
            "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404");
  free(q);
  CHECK(sigv4_presign_query(&r, &s3_key, S3_DATE, 604801) == NULL);
  CHECK(sigv4_presign_query(&r, &s3_key, S3_DATE, 0) == NULL);
}

static void suite_get_vanilla(void)
{
  struct sigv4_request r = {
    .method = "GET", .host = "example.amazonaws.com", .path = "/",
    .payload_hash = SIGV4_EMPTY_SHA256,
  };
  const struct sigv4_param q[] = {
    { "Param2", "value2" }, { "Param1", "value1" },
  };
  char *canon = sigv4_canonical_request(&r, &suite_key, "20150830T123600Z");
  char *sts = sigv4_string_to_sign("20150830T123600Z", &suite_key, canon);
  char *auth = sigv4_authorization(&r, &suite_key, "20150830T123600Z");

  CHECK_STR(canon, "GET\n/\n\nhost:example.amazonaws.com\n"
            "x-amz-date:20150830T123600Z\n\nhost;x-amz-date\n"
            SIGV4_EMPTY_SHA256);
  CHECK_STR(sts, "AWS4-HMAC-SHA256\n20150830T123600Z\n"
            "20150830/us-east-1/service/aws4_request\n"
            "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63");
  CHECK_STR(auth, "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/"
            "us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, "
            "Signature="
            "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
  free(canon);
  free(sts);
  free(auth);

  /* get-vanilla-query-order-key-case */
  r.query = q;
  r.n_query = 2;
  auth = sigv4_authorization(&r, &suite_key, "20150830T123600Z");
  CHECK_STR(sig_of(auth),
            "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500");
  free(auth);
}

static void encoding_and_tokens(void)
{
  char *e = http_escape("a b/c~d+e=f%", 1), date[SIGV4_DATE_LEN];
  struct sigv4_key k = s3_key;
  struct sigv4_request r = {
    .method = "GET", .host = S3_HOST, .path = "/test.txt",
    .payload_hash = SIGV4_UNSIGNED,
  };
  char *auth, *q;

  CHECK_STR(e, "a%20b/c~d%2Be%3Df%25");
  free(e);
  e = http_escape("a/b", 0);
  CHECK_STR(e, "a%2Fb");
  free(e);
  sigv4_date(1369353600, date);                 /* 2013-05-24T00:00:00Z */
  CHECK_STR(date, S3_DATE);

  /* a session token is signed in both forms */
  k.session_token = "TOKEN/+=";
  auth = sigv4_authorization(&r, &k, S3_DATE);
  CHECK_CONTAINS(auth, "SignedHeaders=host;x-amz-date;x-amz-security-token,");
  q = sigv4_presign_query(&r, &k, S3_DATE, 60);
  CHECK_CONTAINS(q, "&X-Amz-Security-Token=TOKEN%2F%2B%3D&");
  free(auth);
  free(q);
  /* the secret never appears in what is sent */
  k.session_token = NULL;
  auth = sigv4_authorization(&r, &k, S3_DATE);
  CHECK(auth && strstr(auth, k.secret_key) == NULL);
  free(auth);
}

int main(void)
{
  s3_get_object();
  s3_put_object();
  s3_bucket_requests();
  s3_presigned_get();
  suite_get_vanilla();
  encoding_and_tokens();
  TEST_MAIN_END();
}
