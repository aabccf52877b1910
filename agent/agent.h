/* agent.h - ferry-agent's commands. */
#ifndef FERRY_AGENT_H
#define FERRY_AGENT_H

#include <stddef.h>

#define EXIT_USAGE 2

#ifndef FERRY_VERSION
#define FERRY_VERSION "0.1.0"
#endif

int cmd_clone(int argc, char **argv);
int cmd_discover(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_sync(int argc, char **argv);

struct clone_opts;
struct clone_stats;
/* clone_run with the filesystems in freeze (or, with quiesce and none
 * named, every one mounted from source) frozen while it reads. */
int agent_clone(struct clone_opts *o, const char *source, int quiesce,
                char **freeze, size_t nfreeze, struct clone_stats *st);

#endif
