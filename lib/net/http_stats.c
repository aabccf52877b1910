/* http_stats.c - see http_stats.h.  A fixed table behind one mutex:
 * labels are the program's own strings and methods one of a short list
 * ("other" for any other), so it cannot grow without bound; past its size
 * requests are counted as dropped. */
#include "net/http_stats.h"

#include <string.h>

static const char *const methods[] = { "GET", "PUT", "POST", "HEAD",
                                       "DELETE", "PATCH", "OPTIONS" };

void req_stats_record(struct req_stats *s, const char *label,
                      const char *method, long status, double seconds)
{
  const char *m = "other";
  size_t i, b;

  if (label == NULL)
    return;
  for (i = 0; method && i < sizeof methods / sizeof methods[0]; i++)
    if (strcmp(method, methods[i]) == 0)
      m = methods[i];
  if (seconds < 0)
    seconds = 0;
  pthread_mutex_lock(&s->lock);
  for (i = 0; i < s->nseries; i++)
    if (strcmp(s->series[i].label, label) == 0 && s->series[i].method == m
        && s->series[i].status == status)
      break;
  if (i == s->nseries && s->nseries < REQ_STATS_SERIES)
    s->series[s->nseries++] = (struct req_series){ label, m, status, 0 };
  if (i < s->nseries)
    s->series[i].count++;
  else
    s->dropped++;
  for (i = 0; i < s->nlatency; i++)
    if (strcmp(s->latency[i].label, label) == 0 &&
        s->latency[i].method == m)
      break;
  if (i == s->nlatency && s->nlatency < REQ_STATS_SERIES) {
    memset(&s->latency[i], 0, sizeof s->latency[i]);
    s->latency[i].label = label;
    s->latency[i].method = m;
    s->nlatency++;
  }
  if (i < s->nlatency) {
    for (b = 0; b < s->nb && seconds > s->buckets[b]; b++)
      ;
    if (b < s->nb)
      s->latency[i].in[b]++;
    s->latency[i].count++;
    s->latency[i].sum += seconds;
  }
  pthread_mutex_unlock(&s->lock);
}

void prom_put_label(FILE *f, const char *v)
{
  for (v = v ? v : ""; *v; v++)
    if (*v == '\\' || *v == '"')
      fprintf(f, "\\%c", *v);
    else if (*v == '\n')
      fputs("\\n", f);
    else
      fputc(*v, f);
}

/* NAME{label="..",method=".."  (the caller closes the braces) */
static void open_series(FILE *f, struct req_stats *s, const char *metric,
                        const char *label, const char *method)
{
  fprintf(f, "%s%s{%s=\"", s->name, metric, s->label);
  prom_put_label(f, label);
  fprintf(f, "\",method=\"%s\"", method);
}

void req_stats_render(struct req_stats *s, FILE *f)
{
  size_t i, b;

  pthread_mutex_lock(&s->lock);
  fprintf(f, "# HELP %s_requests_total %s, by %s, method and status.\n"
          "# TYPE %s_requests_total counter\n", s->name, s->what, s->label,
          s->name);
  for (i = 0; i < s->nseries; i++) {
    open_series(f, s, "_requests_total", s->series[i].label,
                s->series[i].method);
    fprintf(f, ",code=\"%ld\"} %llu\n", s->series[i].status,
            s->series[i].count);
  }
  fprintf(f, "# HELP %s_requests_dropped_total %s not counted by series: "
          "more distinct series than kept.\n"
          "# TYPE %s_requests_dropped_total counter\n"
          "%s_requests_dropped_total %llu\n", s->name, s->what, s->name,
          s->name, s->dropped);
  fprintf(f, "# HELP %s_request_duration_seconds How long each took, by %s "
          "and method.\n# TYPE %s_request_duration_seconds histogram\n",
          s->name, s->label, s->name);
  for (i = 0; i < s->nlatency; i++) {
    struct req_latency *l = &s->latency[i];
    unsigned long long cum = 0;

    for (b = 0; b < s->nb; b++) {
      cum += l->in[b];
      open_series(f, s, "_request_duration_seconds_bucket", l->label,
                  l->method);
      fprintf(f, ",le=\"%g\"} %llu\n", s->buckets[b], cum);
    }
    open_series(f, s, "_request_duration_seconds_bucket", l->label,
                l->method);
    fprintf(f, ",le=\"+Inf\"} %llu\n", l->count);
    open_series(f, s, "_request_duration_seconds_sum", l->label, l->method);
    fprintf(f, "} %.6f\n", l->sum);
    open_series(f, s, "_request_duration_seconds_count", l->label,
                l->method);
    fprintf(f, "} %llu\n", l->count);
  }
  pthread_mutex_unlock(&s->lock);
}

static const double http_buckets[] = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                       0.5, 1, 2.5, 5, 10, 30, 60 };
static struct req_stats http = REQ_STATS_INIT(
  "ferry_http", "kind", "HTTP requests this process made (kind: store, "
  "api, cloud; code 0: no answer)", http_buckets);

void http_stats_record(const char *kind, const char *method, long status,
                       double seconds)
{
  req_stats_record(&http, kind, method, status, seconds);
}

void http_stats_render(FILE *f)
{
  req_stats_render(&http, f);
}
