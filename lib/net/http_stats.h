/* net/http_stats.h - what this process's HTTP requests took: counts by
 * kind (what the request was for: "store", "api", "cloud"), method and
 * status, and latency histograms by kind and method, for the Prometheus
 * metrics of ferry-server and ferry-agent (docs/METRICS.md). */
#ifndef FERRY_HTTP_STATS_H
#define FERRY_HTTP_STATS_H

#include <stdio.h>

/* Count one request: status 0 when no answer came (a transport error).
 * kind NULL is not counted.  Thread-safe. */
void http_stats_record(const char *kind, const char *method, long status,
                       double seconds);

/* Write ferry_http_requests_total and ferry_http_request_duration_seconds
 * in Prometheus' text format (HELP and TYPE included) to f. */
void http_stats_render(FILE *f);

#endif
