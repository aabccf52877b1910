/* net/http_stats.h - request counters and latency histograms for the
 * Prometheus metrics of ferry-server and ferry-agent (docs/METRICS.md):
 * one table of series by two labels (the second is the HTTP method) and a
 * status, with a latency histogram by the two labels.  The server counts
 * the API requests it answers in one (route, method); every process
 * counts the HTTP requests it makes in another (kind, method): "store",
 * "api", "cloud". */
#ifndef FERRY_HTTP_STATS_H
#define FERRY_HTTP_STATS_H

#include <pthread.h>
#include <stdio.h>

#define REQ_STATS_SERIES 512
#define REQ_STATS_BUCKETS 16

struct req_series {
  const char *label;             /* the caller's static string */
  const char *method;            /* one of the known methods, or "other" */
  long status;
  unsigned long long count;
};

struct req_latency {
  const char *label, *method;
  unsigned long long in[REQ_STATS_BUCKETS];  /* per bucket, not cumulative */
  unsigned long long count;
  double sum;
};

/* A table: name is the metric prefix ("ferry_api": ferry_api_requests_total,
 * ferry_api_requests_dropped_total, ferry_api_request_duration_seconds),
 * label the first label's name, buckets the histogram's bounds (seconds). */
struct req_stats {
  const char *name, *label, *what;
  const double *buckets;
  size_t nb;
  pthread_mutex_t lock;
  struct req_series series[REQ_STATS_SERIES];
  struct req_latency latency[REQ_STATS_SERIES];
  size_t nseries, nlatency;
  unsigned long long dropped;
};

#define REQ_STATS_INIT(name_, label_, what_, buckets_) \
  { .name = (name_), .label = (label_), .what = (what_), \
    .buckets = (buckets_), \
    .nb = sizeof (buckets_) / sizeof (buckets_)[0], \
    .lock = PTHREAD_MUTEX_INITIALIZER }

/* Count one request: label a static string (NULL: not counted), status 0
 * when no answer came.  Thread-safe. */
void req_stats_record(struct req_stats *s, const char *label,
                      const char *method, long status, double seconds);

/* The table's three metrics in Prometheus' text format, HELP and TYPE
 * included. */
void req_stats_render(struct req_stats *s, FILE *f);

/* Write a label value as Prometheus' text format wants it (\\, \", \n
 * escaped); NULL writes nothing. */
void prom_put_label(FILE *f, const char *v);

/* This process's outgoing HTTP requests (counted by http_do for every
 * request that names its kind): ferry_http_*{kind, method}. */
void http_stats_record(const char *kind, const char *method, long status,
                       double seconds);
void http_stats_render(FILE *f);

#endif
