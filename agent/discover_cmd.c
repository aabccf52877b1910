/* discover_cmd.c - ferry-agent discover [--root DIR] [--server URL] */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "agent.h"
#include "util/cleanup.h"
#include "discover.h"
#include "util/error.h"
#include "client.h"
#include "config.h"

static void usage(FILE *fp)
{
  fprintf(fp,
    "usage: ferry-agent discover [--root DIR] [--server URL | --post]\n"
    "                            [--config PATH]\n"
    "\n"
    "Collect this server's inventory (OS, kernel, boot, platform, CPU,\n"
    "memory, disks, LVM, mounts, network, drivers, guest agents) and\n"
    "print it as JSON, or post it to the ferry-server at URL\n"
    "(e.g. https://10.0.0.5:8700) or, with --post, to the server of the\n"
    "agent config.  Posting enrolls the agent first if needed\n"
    "(enroll_token_file and token_file from the config).  --root DIR reads\n"
    "another system's files (a mounted disk image, a test fixture) instead\n"
    "of / : proc, sys, etc, boot, lib/modules and run/udev below DIR.\n"
    "Fields that cannot be read are null (docs/INVENTORY.md).\n");
}

/* Enroll if needed and post the inventory; prints the server's answer. */
static int post_inventory(const char *config, const char *server,
                          json_t *inv)
{
  const char *hn = json_string_value(json_object_get(inv, "hostname"));
  struct agent_config cfg;
  struct client cl;
  json_t *resp = NULL;
  long status;
  int r = -1;

  if (config_load(&cfg, config) == -1)
    return -1;
  if (client_init(&cl, &cfg, server) == -1)
    goto out;
  if (hn == NULL) {
    ferry_error("the inventory has no hostname: cannot enroll");
    goto out;
  }
  if (client_ensure_token(&cl, hn) == -1)
    goto out;
  status = client_call(&cl, "POST", "/v1/agent/discovery", inv, &resp, 5,
                       60);
  if (status == 401) {       /* the server no longer knows our token */
    if (client_reenroll(&cl, hn) == -1)
      goto out;
    status = client_call(&cl, "POST", "/v1/agent/discovery", inv, &resp, 5,
                         60);
  }
  if (status != 201) {
    if (status < 0)
      ferry_error_prefix("post discovery: ");
    goto out;
  }
  {
    CLEANUP_FREE char *text = json_dumps(resp, JSON_COMPACT);

    printf("%s\n", text ? text : "{}");
  }
  r = 0;
out:
  json_decref(resp);
  client_free(&cl);
  config_free(&cfg);
  return r;
}

int cmd_discover(int argc, char **argv)
{
  static const struct option longopts[] = {
    { "root", required_argument, NULL, 'r' },
    { "server", required_argument, NULL, 's' },
    { "config", required_argument, NULL, 'c' },
    { "post", no_argument, NULL, 'p' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
  };
  const char *root = "/", *server = NULL, *config = NULL;
  int post = 0;
  CLEANUP_JSON json_t *inv = NULL;
  CLEANUP_FREE char *text = NULL;
  int c;

  opterr = 0;
  while ((c = getopt_long(argc, argv, "r:s:c:ph", longopts, NULL)) != -1) {
    switch (c) {
    case 'r': root = optarg; break;
    case 's': server = optarg; post = 1; break;
    case 'c': config = optarg; break;
    case 'p': post = 1; break;
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
  if (!post) {
    printf("%s\n", text);
    return 0;
  }
  if (post_inventory(config, server, inv) == -1)
    goto fail;
  return 0;
fail:
  fprintf(stderr, "ferry-agent: %s\n", ferry_errmsg());
  return 1;
}
