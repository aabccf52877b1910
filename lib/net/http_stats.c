/* http_stats.c - see http_stats.h.  A fixed table of series behind one
 * mutex: kinds and methods are the program's own strings (a method not in
 * the list counts as "other"), statuses are numbers, so the table cannot
 * grow without bound; past its size requests are counted as dropped. */
#include "net/http_stats.h"

#include <pthread.h>
#include <string.h>

static const double buckets[] = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                  1, 2.5, 5, 10, 30, 60 };
#define NB (sizeof buckets / sizeof buckets[0])
#define MAX_SERIES 128

static const char *const methods[] = { "GET", "PUT", "POST", "HEAD",
                                       "DELETE", "PATCH" };

struct series {
  const char *kind, *method;
  long status;
  unsigned long long count;
};

struct latency {
  const char *kind, *method;
  unsigned long long in[NB];     /* per bucket, not cumulative */
  unsigned long long count;
  double sum;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct series series[MAX_SERIES];
static struct latency latency[MAX_SERIES];
static size_t nseries, nlatency;
static unsigned long long dropped;

void http_stats_record(const char *kind, const char *method, long status,
                       double seconds)
{
  const char *m = "other";
  size_t i, b;

  if (kind == NULL)
    return;
  for (i = 0; method && i < sizeof methods / sizeof methods[0]; i++)
    if (strcmp(method, methods[i]) == 0)
      m = methods[i];
  if (seconds < 0)
    seconds = 0;
  pthread_mutex_lock(&lock);
  for (i = 0; i < nseries; i++)
    if (strcmp(series[i].kind, kind) == 0 && series[i].method == m &&
        series[i].status == status)
      break;
  if (i == nseries && nseries < MAX_SERIES)
    series[nseries++] = (struct series){ kind, m, status, 0 };
  if (i < nseries)
    series[i].count++;
  else
    dropped++;
  for (i = 0; i < nlatency; i++)
    if (strcmp(latency[i].kind, kind) == 0 && latency[i].method == m)
      break;
  if (i == nlatency && nlatency < MAX_SERIES) {
    memset(&latency[i], 0, sizeof latency[i]);
    latency[i].kind = kind;
    latency[i].method = m;
    nlatency++;
  }
  if (i < nlatency) {
    for (b = 0; b < NB && seconds > buckets[b]; b++)
      ;
    if (b < NB)
      latency[i].in[b]++;
    latency[i].count++;
    latency[i].sum += seconds;
  }
  pthread_mutex_unlock(&lock);
}

void http_stats_render(FILE *f)
{
  size_t i, b;

  pthread_mutex_lock(&lock);
  fprintf(f, "# HELP ferry_http_requests_total HTTP requests this process "
          "made, by kind (store, api, cloud), method and status (0: no "
          "answer).\n# TYPE ferry_http_requests_total counter\n");
  for (i = 0; i < nseries; i++)
    fprintf(f, "ferry_http_requests_total{kind=\"%s\",method=\"%s\","
            "code=\"%ld\"} %llu\n", series[i].kind, series[i].method,
            series[i].status, series[i].count);
  fprintf(f, "# HELP ferry_http_requests_dropped_total HTTP requests not "
          "counted by series: more distinct series than kept.\n"
          "# TYPE ferry_http_requests_dropped_total counter\n"
          "ferry_http_requests_dropped_total %llu\n", dropped);
  fprintf(f, "# HELP ferry_http_request_duration_seconds Time each HTTP "
          "request of this process took, to its whole answer, by kind and "
          "method.\n# TYPE ferry_http_request_duration_seconds histogram\n");
  for (i = 0; i < nlatency; i++) {
    unsigned long long cum = 0;

    for (b = 0; b < NB; b++) {
      cum += latency[i].in[b];
      fprintf(f, "ferry_http_request_duration_seconds_bucket{kind=\"%s\","
              "method=\"%s\",le=\"%g\"} %llu\n", latency[i].kind,
              latency[i].method, buckets[b], cum);
    }
    fprintf(f, "ferry_http_request_duration_seconds_bucket{kind=\"%s\","
            "method=\"%s\",le=\"+Inf\"} %llu\n", latency[i].kind,
            latency[i].method, latency[i].count);
    fprintf(f, "ferry_http_request_duration_seconds_sum{kind=\"%s\","
            "method=\"%s\"} %.6f\n", latency[i].kind, latency[i].method,
            latency[i].sum);
    fprintf(f, "ferry_http_request_duration_seconds_count{kind=\"%s\","
            "method=\"%s\"} %llu\n", latency[i].kind, latency[i].method,
            latency[i].count);
  }
  pthread_mutex_unlock(&lock);
}
