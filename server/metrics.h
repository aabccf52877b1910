/* metrics.h - the server's Prometheus metrics (GET /metrics,
 * docs/METRICS.md). */
#ifndef FERRY_METRICS_H
#define FERRY_METRICS_H

#include <sqlite3.h>

/* Count an answered API request: method, the route's pattern (NULL: no
 * route matched), the HTTP status and the seconds it took.  Thread-safe. */
void metrics_api(const char *method, const char *route, unsigned status,
                 double seconds);

/* The exposition text (caller frees) for the project's view: the API
 * counters and what the state store knows.  NULL with an error. */
char *metrics_render(sqlite3 *db, long long project);

#endif
