/* metrics.h - ferry-agent's own Prometheus metrics (docs/METRICS.md):
 * bytes and chunks per disk over the tasks it ran, the running task's
 * progress included, and its HTTP requests to the store and the server.
 * Served only when the config sets metrics_listen, on a loopback address
 * (they carry no secret, but nothing else should reach an agent). */
#ifndef FERRY_AGENT_METRICS_H
#define FERRY_AGENT_METRICS_H

#include "clone/clone.h"

/* Start the listener on addr ("127.0.0.1:9464"); -1 with an error for an
 * address that is not loopback or cannot be bound. */
int agent_metrics_start(const char *addr);
void agent_metrics_stop(void);

/* The running task's figures for disk, as its progress reports them. */
void agent_metrics_task(const char *disk, const struct clone_stats *st);
/* The task on disk ended: its final figures (st), or for a task that
 * failed (st NULL) its last ones, join the totals. */
void agent_metrics_task_end(const char *disk, const struct clone_stats *st);

#endif
