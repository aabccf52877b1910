/* ferry-agent - runs on a source server: discovers it and streams its
 * disks into object storage. */
#include <stdio.h>
#include <string.h>

#include "agent.h"
#include "util/log.h"

static const struct command {
  const char *name;
  int (*run)(int argc, char **argv);
  const char *help;
} commands[] = {
  { "clone", cmd_clone, "stream a disk into a store as a chunked image" },
  { "sync", cmd_sync, "send what changed since the last generation" },
  { "discover", cmd_discover, "print or post this server's inventory" },
  { "run", cmd_run, "run as the agent daemon (enroll, poll for tasks)" },
};

static void usage(FILE *fp)
{
  size_t i;

  fprintf(fp, "usage: ferry-agent COMMAND [options]\n\ncommands:\n");
  for (i = 0; i < sizeof commands / sizeof commands[0]; i++)
    fprintf(fp, "  %-10s %s\n", commands[i].name, commands[i].help);
  fprintf(fp, "\nferry-agent COMMAND --help shows a command's options.\n");
}

int main(int argc, char **argv)
{
  size_t i;

  log_init("ferry-agent", 0);
  if (argc < 2) {
    usage(stderr);
    return EXIT_USAGE;
  }
  if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
    usage(stdout);
    return 0;
  }
  if (strcmp(argv[1], "--version") == 0) {
    printf("ferry-agent %s\n", FERRY_VERSION);
    return 0;
  }
  for (i = 0; i < sizeof commands / sizeof commands[0]; i++)
    if (strcmp(argv[1], commands[i].name) == 0)
      return commands[i].run(argc - 1, argv + 1);
  fprintf(stderr, "ferry-agent: unknown command '%s' (see ferry-agent "
          "--help)\n", argv[1]);
  return EXIT_USAGE;
}
