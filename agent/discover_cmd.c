/* discover_cmd.c - ferry-agent discover [--root DIR] [--server URL] */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "agent.h"
#include "cleanup.h"
#include "discover.h"
#include "error.h"
#include "http.h"

static void usage(FILE *fp)
{
  fprintf(fp,
    "usage: ferry-agent discover [--root DIR] [--server URL]\n"
    "\n"
    "Collect this server's inventory (OS, kernel, boot, platform, CPU,\n"
    "memory, disks, LVM, mounts, network, drivers, guest agents) and\n"
    "print it as JSON, or post it to the ferry-server at URL\n"
    "(e.g. http://10.0.0.5:8700).  --root DIR reads another system's\n"
    "files (a mounted disk image, a test fixture) instead of / : proc, sys,\n"
    "etc, boot, lib/modules and run/udev below DIR.  Fields that cannot be\n"
    "read are null (docs/INVENTORY.md).\n");
}

/* POST the inventory to URL/v1/discovery; prints the server's answer. */
static int post_inventory(const char *server, const char *body)
{
  CLEANUP_FREE char *url = NULL;
  struct curl_slist *hdrs = NULL;
  struct http_response resp;
  struct http_request req = {
    .method = "POST", .body = body, .body_len = strlen(body),
    .timeout = 30,
  };
  char host[256];
  int r = -1;
  size_t n = strlen(server);

  while (n > 0 && server[n - 1] == '/')
    n--;
  if (asprintf(&url, "%.*s/v1/discovery", (int)n, server) == -1 ||
      http_header_add(&hdrs, "Content-Type: application/json") == -1) {
    ferry_error("out of memory");
    return -1;
  }
  req.url = url;
  req.headers = hdrs;
  /* the server may be restarting: a few tries with backoff */
  for (unsigned attempt = 0; attempt < 5; attempt++) {
    if (attempt)
      http_backoff(attempt, 500, 8000);
    r = http_do(&req, &resp);
    if (r == 0 && !resp.retryable)
      break;
    if (r == 0)
      ferry_error("server %s answered %ld", http_host(url, host, sizeof host),
                  resp.status);
    http_response_free(&resp);
    r = -1;
  }
  curl_slist_free_all(hdrs);
  if (r == -1) {
    ferry_error_prefix("post discovery: ");
    return -1;
  }
  if (resp.status != 200 && resp.status != 201) {
    ferry_error("server %s refused the inventory (HTTP %ld): %.300s",
                http_host(url, host, sizeof host), resp.status,
                resp.body ? resp.body : "");
    http_response_free(&resp);
    return -1;
  }
  printf("%s\n", resp.body ? resp.body : "{}");
  http_response_free(&resp);
  return 0;
}

int cmd_discover(int argc, char **argv)
{
  static const struct option longopts[] = {
    { "root", required_argument, NULL, 'r' },
    { "server", required_argument, NULL, 's' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
  };
  const char *root = "/", *server = NULL;
  CLEANUP_JSON json_t *inv = NULL;
  CLEANUP_FREE char *text = NULL;
  int c;

  opterr = 0;
  while ((c = getopt_long(argc, argv, "r:s:h", longopts, NULL)) != -1) {
    switch (c) {
    case 'r': root = optarg; break;
    case 's': server = optarg; break;
    case 'h': usage(stdout); return 0;
    default:
      fprintf(stderr, "ferry-agent discover: unknown or incomplete option %s "
              "(see --help)\n", argv[optind - 1]);
      return EXIT_USAGE;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "ferry-agent discover: unexpected argument '%s'\n",
            argv[optind]);
    return EXIT_USAGE;
  }
  inv = discover_inventory(root);
  if (inv == NULL)
    goto fail;
  text = json_dumps(inv, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
  if (text == NULL) {
    ferry_error("out of memory");
    goto fail;
  }
  if (server == NULL) {
    printf("%s\n", text);
    return 0;
  }
  if (post_inventory(server, text) == -1)
    goto fail;
  return 0;
fail:
  fprintf(stderr, "ferry-agent: %s\n", ferry_errmsg());
  return 1;
}
