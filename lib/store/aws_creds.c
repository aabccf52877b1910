/* store/aws_creds.c - AWS credentials by the SDKs' convention (moved out
 * of s3.c so the aws target driver finds them the same way). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/cleanup.h"
#include "util/error.h"
#include "store/aws_creds.h"

static char *env_dup(const char *name)
{
  const char *v = getenv(name);

  return v && *v ? strdup(v) : NULL;
}

char *aws_ini_get(const char *path, const char *section, const char *name)
{
  CLEANUP_FCLOSE FILE *fp = fopen(path, "r");
  char line[1024];
  int in = 0;

  if (fp == NULL)
    return NULL;
  while (fgets(line, sizeof line, fp)) {
    char *p = line, *e, *eq;

    while (*p == ' ' || *p == '\t')
      p++;
    e = p + strlen(p);
    while (e > p && (e[-1] == '\n' || e[-1] == '\r' || e[-1] == ' ' ||
                     e[-1] == '\t'))
      *--e = '\0';
    if (*p == '[') {
      in = e > p && e[-1] == ']' && (size_t)(e - p - 2) == strlen(section) &&
           strncmp(p + 1, section, strlen(section)) == 0;
      continue;
    }
    if (!in || *p == '#' || *p == ';' || (eq = strchr(p, '=')) == NULL)
      continue;
    e = eq;
    while (e > p && (e[-1] == ' ' || e[-1] == '\t'))
      e--;
    if ((size_t)(e - p) != strlen(name) || strncmp(p, name, strlen(name)))
      continue;
    eq++;
    while (*eq == ' ' || *eq == '\t')
      eq++;
    return *eq ? strdup(eq) : NULL;
  }
  return NULL;
}

char *aws_file(const char *env, const char *file)
{
  const char *home = getenv("HOME");
  char *p;

  if (getenv(env) && *getenv(env))
    return strdup(getenv(env));
  if (home == NULL || asprintf(&p, "%s/.aws/%s", home, file) == -1)
    return NULL;
  return p;
}

int aws_creds_load(struct aws_creds *c)
{
  const char *profile = getenv("AWS_PROFILE");

  *c = (struct aws_creds){ .access_key = NULL };
  if (profile == NULL || *profile == '\0')
    profile = "default";
  c->profile = strdup(profile);
  if (c->profile == NULL)
    goto oom;
  c->access_key = env_dup("AWS_ACCESS_KEY_ID");
  c->secret_key = env_dup("AWS_SECRET_ACCESS_KEY");
  c->session_token = env_dup("AWS_SESSION_TOKEN");
  if (c->access_key == NULL && c->secret_key == NULL) {
    c->file = aws_file("AWS_SHARED_CREDENTIALS_FILE", "credentials");
    if (c->file) {
      c->access_key = aws_ini_get(c->file, profile, "aws_access_key_id");
      c->secret_key = aws_ini_get(c->file, profile, "aws_secret_access_key");
      c->session_token = aws_ini_get(c->file, profile, "aws_session_token");
    }
  }
  return 0;
oom:
  ferry_error("out of memory");
  return -1;
}

const char *aws_creds_where(const struct aws_creds *c, char *buf,
                            size_t size)
{
  if (c->file)
    snprintf(buf, size, "aws_access_key_id and aws_secret_access_key in "
             "profile [%s] of %s (AWS_SHARED_CREDENTIALS_FILE, AWS_PROFILE)",
             c->profile ? c->profile : "default", c->file);
  else
    snprintf(buf, size, "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY%s "
             "(environment)", c->session_token ? " and AWS_SESSION_TOKEN"
                                               : "");
  return buf;
}

static void wipe(char *s)
{
  if (s)
    explicit_bzero(s, strlen(s));
  free(s);
}

void aws_creds_free(struct aws_creds *c)
{
  if (c == NULL)
    return;
  wipe(c->secret_key);
  wipe(c->session_token);
  free(c->access_key);
  free(c->profile);
  free(c->file);
  *c = (struct aws_creds){ .access_key = NULL };
}
