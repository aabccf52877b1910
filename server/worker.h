/* worker.h - the server's pool of task workers: each claims a convert or
 * create task, runs it under a task_ctx (tasks.h) that keeps its lease,
 * and records its result. */
#ifndef FERRY_WORKER_H
#define FERRY_WORKER_H

#include "api.h"

/* Queue again the tasks the server was running when it last stopped (a
 * stopped or crashed task runs again from the start), then start
 * srv->convert_workers workers.  -1 with an error. */
int workers_start(struct server *srv);

/* Join them (srv->stopping must be set and woken); their running tasks
 * stop within the keeper's tick plus the child's grace period. */
void workers_stop(void);

#endif
