/* store/aws_creds.h - AWS credentials and settings by the SDKs'
 * convention, shared by the s3:// store and the aws target driver:
 * AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN from the
 * environment, else the profile (AWS_PROFILE, default "default") of the
 * shared credentials file (AWS_SHARED_CREDENTIALS_FILE, default
 * ~/.aws/credentials). */
#ifndef FERRY_AWS_CREDS_H
#define FERRY_AWS_CREDS_H

#include <stddef.h>

struct aws_creds {
  char *access_key, *secret_key, *session_token;   /* NULL when absent */
  char *profile;        /* the profile the file was read with */
  char *file;           /* the credentials file they came from, or NULL
                           when they came from the environment */
};

/* Fill c (zeroed first).  0 even when no credentials were found (then
 * access_key or secret_key is NULL), -1 with an error on OOM. */
int aws_creds_load(struct aws_creds *c);

/* Where c came from, for messages that tell the operator what to check:
 * "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (environment)" or
 * "profile [default] of /root/.aws/credentials (AWS_SHARED_CREDENTIALS_FILE,
 * AWS_PROFILE)".  Into buf. */
const char *aws_creds_where(const struct aws_creds *c, char *buf,
                            size_t size);

/* Wipe the secrets and free; c may hold NULLs. */
void aws_creds_free(struct aws_creds *c);

/* Value of name in [section] of an INI file (the shared credentials and
 * config files); NULL if absent.  Caller frees. */
char *aws_ini_get(const char *path, const char *section, const char *name);

/* The path in env when set, else ~/.aws/<file>.  Caller frees; NULL on
 * OOM or without HOME. */
char *aws_file(const char *env, const char *file);

#endif
