/* agent.h - ferry-agent's commands. */
#ifndef FERRY_AGENT_H
#define FERRY_AGENT_H

#define EXIT_USAGE 2

#ifndef FERRY_VERSION
#define FERRY_VERSION "0.1.0"
#endif

int cmd_clone(int argc, char **argv);
int cmd_discover(int argc, char **argv);
int cmd_run(int argc, char **argv);

#endif
