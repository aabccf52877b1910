#include "config.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "net/tls_pin.h"
#include "util/error.h"
#include "util/parse.h"

static char *trim(char *s)
{
  char *e;

  while (isspace((unsigned char)*s))
    s++;
  e = s + strlen(s);
  while (e > s && isspace((unsigned char)e[-1]))
    *--e = '\0';
  return s;
}

static int set_str(char **dst, const char *v)
{
  free(*dst);
  *dst = strdup(v);
  return *dst ? 0 : -1;
}

int config_load(struct agent_config *c, const char *path)
{
  FILE *fp;
  char line[1024];
  int lineno = 0;

  memset(c, 0, sizeof *c);
  c->poll_wait = 25;
  if (set_str(&c->enroll_token_file, "/etc/ferry/enroll.token") == -1 ||
      set_str(&c->token_file, "/var/lib/ferry/agent.token") == -1 ||
      set_str(&c->root, "/") == -1) {
    ferry_error("out of memory");
    return -1;
  }
  if (path == NULL) {
    path = getenv("FERRY_AGENT_CONF");
    if (path == NULL && access(AGENT_CONF_DEFAULT, F_OK) == 0)
      path = AGENT_CONF_DEFAULT;
    if (path == NULL)
      return 0;
  }
  fp = fopen(path, "re");
  if (fp == NULL) {
    ferry_error("cannot read agent config %s: %m", path);
    return -1;
  }
  c->path = strdup(path);
  while (fgets(line, sizeof line, fp)) {
    char *k, *v, *eq;
    int bad = 0;

    lineno++;
    k = trim(line);
    if (*k == '#' || *k == '\0')
      continue;
    eq = strchr(k, '=');
    if (eq == NULL) {
      ferry_error("%s:%d: expected 'key = value'", path, lineno);
      fclose(fp);
      return -1;
    }
    *eq = '\0';
    v = trim(eq + 1);
    k = trim(k);
    if (strcmp(k, "server") == 0)
      bad = set_str(&c->server, v);
    else if (strcmp(k, "server_ca_sha256") == 0) {
      uint8_t pin[TLS_PIN_LEN];

      if (tls_pin_parse(v, pin) == -1)
        goto bad_value;
      bad = set_str(&c->server_ca_sha256, v);
    } else if (strcmp(k, "server_ca_file") == 0)
      bad = set_str(&c->server_ca_file, v);
    else if (strcmp(k, "server_ca_system") == 0) {
      if (strcmp(v, "yes") == 0 || strcmp(v, "true") == 0)
        c->server_ca_system = 1;
      else if (strcmp(v, "no") == 0 || strcmp(v, "false") == 0)
        c->server_ca_system = 0;
      else {
        ferry_error("server_ca_system is yes or no (not '%s')", v);
        goto bad_value;
      }
    }
    else if (strcmp(k, "enroll_token_file") == 0)
      bad = set_str(&c->enroll_token_file, v);
    else if (strcmp(k, "token_file") == 0)
      bad = set_str(&c->token_file, v);
    else if (strcmp(k, "root") == 0)
      bad = set_str(&c->root, v);
    else if (strcmp(k, "compress") == 0)
      bad = set_str(&c->compress, v);
    else if (strcmp(k, "max_rate") == 0)
      bad = set_str(&c->max_rate, v);
    else if (strcmp(k, "metrics_listen") == 0)
      bad = set_str(&c->metrics_listen, v);
    else if (strcmp(k, "jobs") == 0) {
      if (parse_uint(k, v, 1, 64, &c->jobs) == -1)
        goto bad_value;
    } else if (strcmp(k, "poll_wait") == 0) {
      if (parse_uint(k, v, 1, 60, &c->poll_wait) == -1)
        goto bad_value;
    }
    else if (strncmp(k, "disk.", 5) == 0 && k[5] && v[0] == '/' &&
             c->n_disks < 32) {
      c->disks[c->n_disks][0] = strdup(k + 5);
      c->disks[c->n_disks][1] = strdup(v);
      c->n_disks++;
    } else if (strncmp(k, "bitmap.", 7) == 0 && k[7] && *v &&
               c->n_bitmaps < 32) {
      c->bitmaps[c->n_bitmaps][0] = strdup(k + 7);
      c->bitmaps[c->n_bitmaps][1] = strdup(v);
      c->n_bitmaps++;
    } else {
      ferry_error("%s:%d: unknown setting '%s'", path, lineno, k);
      fclose(fp);
      return -1;
    }
    if (bad) {
      ferry_error("%s:%d: bad value for '%s'", path, lineno, k);
      fclose(fp);
      return -1;
    }
  }
  fclose(fp);
  return 0;
bad_value:
  ferry_error_prefix("%s:%d: ", path, lineno);
  fclose(fp);
  return -1;
}

void config_free(struct agent_config *c)
{
  int i;

  free(c->path);
  free(c->server);
  free(c->server_ca_sha256);
  free(c->server_ca_file);
  free(c->enroll_token_file);
  free(c->token_file);
  free(c->root);
  free(c->compress);
  free(c->max_rate);
  free(c->metrics_listen);
  for (i = 0; i < c->n_disks; i++) {
    free(c->disks[i][0]);
    free(c->disks[i][1]);
  }
  for (i = 0; i < c->n_bitmaps; i++) {
    free(c->bitmaps[i][0]);
    free(c->bitmaps[i][1]);
  }
}

const char *config_disk_bitmap(const struct agent_config *c,
                               const char *name)
{
  int i;

  for (i = 0; i < c->n_bitmaps; i++)
    if (strcmp(c->bitmaps[i][0], name) == 0)
      return c->bitmaps[i][1];
  return NULL;
}

char *config_server_ca_path(const struct agent_config *c)
{
  const char *slash;
  char *p;

  if (c->server_ca_file)
    return strdup(c->server_ca_file);
  slash = strrchr(c->token_file, '/');
  if (asprintf(&p, "%.*sserver-ca.pem",
               slash ? (int)(slash - c->token_file + 1) : 0,
               c->token_file) == -1)
    return NULL;
  return p;
}

char *config_disk_source(const struct agent_config *c, const char *name)
{
  char *p;
  int i;

  for (i = 0; i < c->n_disks; i++)
    if (strcmp(c->disks[i][0], name) == 0)
      return strdup(c->disks[i][1]);
  if (asprintf(&p, "/dev/%s", name) == -1)
    return NULL;
  return p;
}
