/* child.h - run a program as a server task's child (conversions today,
 * cloud import tools later). */
#ifndef FERRY_CHILD_H
#define FERRY_CHILD_H

#include <stddef.h>

struct task_ctx;

/* Run argv[0] (looked up on PATH without a slash) with stdin on
 * /dev/null, capturing stdout into out (at most out_size - 1 bytes, the
 * rest dropped) and the tail of stderr into err (the last err_size - 1
 * bytes, trailing newlines trimmed), both NUL-terminated.  The child leads
 * its own process group, is registered with task_ctx_set_child() (the
 * lease keeper signals it on cancel and shutdown), starts with no signal
 * blocked or ignored, and dies with the server (PR_SET_PDEATHSIG).
 * Returns its wait status, or -1 with an error when it could not start. */
int child_run(struct task_ctx *t, char *const argv[], char *out,
              size_t out_size, char *err, size_t err_size);

#endif
