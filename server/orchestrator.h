/* orchestrator.h - drives every active migration through its phases, and
 * starts the server's pool of task workers (worker.h) that runs its own
 * tasks (conversions, target creation). */
#ifndef FERRY_ORCHESTRATOR_H
#define FERRY_ORCHESTRATOR_H

#include "api.h"

/* Start the orchestrator thread and srv->convert_workers workers.  Tasks
 * the server was running when it last stopped are queued again first. */
int orchestrator_start(struct server *srv);

/* Stop and join them (srv->stopping must be set and woken). */
void orchestrator_stop(void);

/* Advance one migration by at most one phase, in one transaction: 1 if its
 * phase or state changed, 0 if not, -1 (logged) if the step failed and
 * was rolled back whole; the next tick runs it again. */
int orchestrator_step(struct server *srv, long long migration_id);

#endif
