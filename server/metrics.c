/* metrics.c - GET /metrics in Prometheus' text format (version 0.0.4).
 *
 * Two sources: what this process counts as it answers (API requests by
 * route, method and status, and their latencies), kept in memory behind a
 * mutex and reset when the server restarts, as Prometheus expects of a
 * counter; and what the state store knows, read at each scrape and scoped
 * to the caller's project (migrations by state and phase, agents'
 * heartbeat age, bytes and chunks per host and disk from the agents' clone
 * and sync results, running tasks' progress, conversions and their
 * durations).  Names follow Prometheus' conventions: ferry_ prefix, base
 * units (_bytes, _seconds), _total for counters. */
#include "metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "net/http_stats.h"
#include "util/error.h"

/* Latency buckets, seconds: API calls are milliseconds, an agent's long
 * poll up to its timeout (about 25 s). */
static const double api_buckets[] = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                      0.5, 1, 2.5, 5, 10, 30 };

/* Conversion durations, seconds. */
static const double conv_buckets[] = { 1, 5, 15, 60, 300, 900, 3600, 14400 };
#define NCB (sizeof conv_buckets / sizeof conv_buckets[0])

/* the API requests this server answered, by route pattern and method */
static struct req_stats api = REQ_STATS_INIT(
  "ferry_api", "route", "API requests answered (route: the route table's "
  "pattern, unmatched for a path no route knows)", api_buckets);

void metrics_api(const char *method, const char *route, unsigned status,
                 double seconds)
{
  req_stats_record(&api, route ? route : "unmatched", method, status,
                   seconds);
}

/* ---- text output ---- */

struct out {
  FILE *f;
  char *text;
  size_t len;
};

static void put(struct out *o, const char *fmt, ...)
  __attribute__((format(printf, 2, 3)));

static void put(struct out *o, const char *fmt, ...)
{
  va_list ap;

  va_start(ap, fmt);
  vfprintf(o->f, fmt, ap);
  va_end(ap);
}

static void help(struct out *o, const char *name, const char *type,
                 const char *text)
{
  put(o, "# HELP %s %s\n# TYPE %s %s\n", name, text, name, type);
}

/* "k1=\"v1\",k2=\"v2\"" with the values escaped, into a string the
 * caller frees; names[i] pairs with values[i], names NULL-terminated. */
static char *labels_text(const char *const *names, const char *const *values)
{
  struct out l = { 0 };
  size_t i;

  if ((l.f = open_memstream(&l.text, &l.len)) == NULL)
    return NULL;
  for (i = 0; names[i]; i++) {
    fprintf(l.f, "%s%s=\"", i ? "," : "", names[i]);
    prom_put_label(l.f, values[i]);
    fputc('"', l.f);
  }
  if (fclose(l.f) != 0) {
    free(l.text);
    return NULL;
  }
  return l.text;
}

/* One histogram series: cumulative counts cum[0..nb) for bounds, then
 * +Inf (count), _sum and _count, each with labels (already escaped). */
static void put_histogram(struct out *o, const char *name, const char *labels,
                          const double *bounds, size_t nb,
                          const unsigned long long *cum,
                          unsigned long long count, double sum)
{
  size_t b;

  for (b = 0; b < nb; b++)
    put(o, "%s_bucket{%s,le=\"%g\"} %llu\n", name, labels, bounds[b],
        cum[b]);
  put(o, "%s_bucket{%s,le=\"+Inf\"} %llu\n", name, labels, count);
  put(o, "%s_sum{%s} %.6f\n", name, labels, sum);
  put(o, "%s_count{%s} %llu\n", name, labels, count);
}

static const char *s(json_t *row, const char *k)
{
  const char *v = json_string_value(json_object_get(row, k));

  return v ? v : "";
}

static double num(json_t *row, const char *k)
{
  json_t *v = json_object_get(row, k);

  return json_is_number(v) ? json_number_value(v) : 0;
}

/* One series per row: NAME{l1="..",l2=".."} value, labels from columns. */
static void rows_series(struct out *o, json_t *rows, const char *name,
                        const char *const *labels, const char *column)
{
  json_t *row;
  size_t i, l;

  json_array_foreach(rows, i, row) {
    put(o, "%s{", name);
    for (l = 0; labels[l]; l++) {
      put(o, "%s%s=\"", l ? "," : "", labels[l]);
      prom_put_label(o->f, s(row, labels[l]));
      put(o, "\"");
    }
    put(o, "} %.17g\n", num(row, column));
  }
}

static int render_db(struct out *o, sqlite3 *db, long long project)
{
  static const char *const state_phase[] = { "state", "phase", NULL };
  static const char *const host_agent[] = { "host", "agent", NULL };
  static const char *const host_disk[] = { "host", "disk", NULL };
  static const char *const host_disk_kind[] = { "host", "disk", "kind",
                                                NULL };
  static const char *const fmt_outcome[] = { "format", "outcome", NULL };
  static const struct { const char *col, *outcome; } chunks[] = {
    { "zero_chunks", "zero" }, { "sent_chunks", "sent" },
    { "reused_chunks", "reused" }, { "carried_chunks", "carried" },
  };
  json_t *mig = NULL, *agents = NULL, *bytes = NULL, *running = NULL;
  json_t *conv = NULL, *durations = NULL, *row;
  size_t i, c;
  int r = -1;

  db_lock();
  mig = db_query(db, "SELECT state, phase, count(*) AS n FROM migrations "
                 "WHERE project_id = ?1 GROUP BY state, phase ORDER BY "
                 "state, phase", "i", project);
  agents = mig ? db_query(db, "SELECT hostname AS host, CAST(id AS TEXT) "
                          "AS agent, (julianday('now') - julianday("
                          "last_seen)) * 86400.0 AS age FROM agents WHERE "
                          "project_id = ?1 AND revoked IS NULL AND "
                          "last_seen IS NOT NULL ORDER BY id", "i", project)
               : NULL;
  /* the agents' clone and sync results, summed per host and disk */
  bytes = agents ? db_query(db, "SELECT h.hostname AS host, "
    "json_extract(t.spec, '$.disk') AS disk, "
    "sum(coalesce(json_extract(t.result, '$.read_bytes'), 0)) AS read, "
    "sum(coalesce(json_extract(t.result, '$.sent_bytes'), 0)) AS sent, "
    "sum(coalesce(json_extract(t.result, '$.zero_chunks'), 0)) "
    "  AS zero_chunks, "
    "sum(coalesce(json_extract(t.result, '$.sent_chunks'), 0)) "
    "  AS sent_chunks, "
    "sum(coalesce(json_extract(t.result, '$.reused_chunks'), 0)) "
    "  AS reused_chunks, "
    "sum(coalesce(json_extract(t.result, '$.carried_chunks'), 0)) "
    "  AS carried_chunks, "
    "(SELECT json_extract(t2.result, '$.stored_bytes') FROM tasks t2 "
    "  WHERE t2.host_id = t.host_id AND t2.kind IN ('clone', 'sync') AND "
    "  t2.state = 'succeeded' AND json_extract(t2.spec, '$.disk') = "
    "  json_extract(t.spec, '$.disk') ORDER BY t2.id DESC LIMIT 1) "
    "  AS stored "
    "FROM tasks t JOIN hosts h ON h.id = t.host_id "
    "JOIN migrations m ON m.id = t.migration_id "
    "WHERE m.project_id = ?1 AND t.kind IN ('clone', 'sync') AND "
    "t.state = 'succeeded' AND json_valid(t.result) "
    "GROUP BY h.hostname, json_extract(t.spec, '$.disk') ORDER BY 1, 2",
    "i", project) : NULL;
  running = bytes ? db_query(db, "SELECT h.hostname AS host, "
    "coalesce(json_extract(t.spec, '$.disk'), '') AS disk, t.kind AS kind, "
    "t.done_bytes AS done, t.total_bytes AS total, t.rate AS rate "
    "FROM tasks t JOIN hosts h ON h.id = t.host_id "
    "JOIN migrations m ON m.id = t.migration_id "
    "WHERE m.project_id = ?1 AND t.state = 'running' ORDER BY t.id", "i",
    project) : NULL;
  conv = running ? db_query(db, "SELECT coalesce(json_extract(t.spec, "
    "'$.format'), '') AS format, CASE t.state WHEN 'succeeded' THEN "
    "'succeeded' ELSE 'failed' END AS outcome, count(*) AS n "
    "FROM tasks t JOIN migrations m ON m.id = t.migration_id "
    "WHERE m.project_id = ?1 AND t.kind = 'convert' AND t.state IN "
    "('succeeded', 'failed') GROUP BY 1, 2 ORDER BY 1, 2", "i", project)
    : NULL;
  durations = conv ? db_query(db, "SELECT coalesce(json_extract(t.spec, "
    "'$.format'), '') AS format, json_extract(t.result, '$.seconds') AS "
    "seconds FROM tasks t JOIN migrations m ON m.id = t.migration_id "
    "WHERE m.project_id = ?1 AND t.kind = 'convert' AND t.state = "
    "'succeeded' AND json_valid(t.result) AND json_extract(t.result, "
    "'$.seconds') IS NOT NULL ORDER BY 1", "i", project) : NULL;
  db_unlock();
  if (durations == NULL)
    goto out;

  {
    enum { MIG, AGENTS, BYTES, RUNNING, CONV };
    static const struct {
      const char *name, *type, *help;
      int set;
      const char *const *labels;
      const char *column;
    } plain[] = {
      { "ferry_migrations", "gauge", "Migrations of the project by state "
        "and phase.", MIG, state_phase, "n" },
      { "ferry_agent_heartbeat_age_seconds", "gauge", "Seconds since each "
        "agent last called the server (its long poll is its heartbeat).",
        AGENTS, host_agent, "age" },
      { "ferry_read_bytes_total", "counter", "Bytes the agents read from "
        "each disk in finished clones and syncs.", BYTES, host_disk,
        "read" },
      { "ferry_sent_bytes_total", "counter", "Bytes the agents sent to the "
        "store for each disk (after compression) in finished clones and "
        "syncs.", BYTES, host_disk, "sent" },
      { "ferry_stored_bytes", "gauge", "Bytes each disk's image holds in "
        "the store after its last finished clone or sync.", BYTES,
        host_disk, "stored" },
      { "ferry_task_done_bytes", "gauge", "Bytes done by each running task "
        "(clone, sync, convert), by host, disk and kind.", RUNNING,
        host_disk_kind, "done" },
      { "ferry_task_total_bytes", "gauge", "Bytes each running task has to "
        "do.", RUNNING, host_disk_kind, "total" },
      { "ferry_task_rate_bytes_per_second", "gauge", "Each running task's "
        "last reported rate.", RUNNING, host_disk_kind, "rate" },
      { "ferry_conversions_total", "counter", "Finished conversions by "
        "format and outcome.", CONV, fmt_outcome, "n" },
    };
    json_t *sets[] = { mig, agents, bytes, running, conv };

    for (i = 0; i < sizeof plain / sizeof plain[0]; i++) {
      help(o, plain[i].name, plain[i].type, plain[i].help);
      rows_series(o, sets[plain[i].set], plain[i].name, plain[i].labels,
                  plain[i].column);
    }
  }
  help(o, "ferry_chunks_total", "counter", "Chunks of finished clones and "
       "syncs by outcome: zero (skipped), sent, reused (already stored), "
       "carried (unchanged since the last sync).");
  json_array_foreach(bytes, i, row)
    for (c = 0; c < sizeof chunks / sizeof chunks[0]; c++) {
      put(o, "ferry_chunks_total{host=\"");
      prom_put_label(o->f, s(row, "host"));
      put(o, "\",disk=\"");
      prom_put_label(o->f, s(row, "disk"));
      put(o, "\",outcome=\"%s\"} %.17g\n", chunks[c].outcome,
          num(row, chunks[c].col));
    }
  help(o, "ferry_conversion_duration_seconds", "histogram", "Durations of "
       "successful conversions, by format.");
  for (i = 0; i < json_array_size(durations);) {
    const char *format = s(json_array_get(durations, i), "format");
    unsigned long long counts[NCB] = { 0 }, n = 0;
    double sum = 0;
    size_t b, j;

    for (j = i; j < json_array_size(durations) &&
                strcmp(s(json_array_get(durations, j), "format"), format)
                  == 0; j++) {
      double v = num(json_array_get(durations, j), "seconds");

      for (b = 0; b < NCB; b++)
        if (v <= conv_buckets[b])
          counts[b]++;
      n++;
      sum += v;
    }
    {
      static const char *const names[] = { "format", NULL };
      const char *values[] = { format };
      char *labels = labels_text(names, values);

      if (labels)
        put_histogram(o, "ferry_conversion_duration_seconds", labels,
                      conv_buckets, NCB, counts, n, sum);
      free(labels);
    }
    i = j;
  }
  r = 0;
out:
  json_decref(mig);
  json_decref(agents);
  json_decref(bytes);
  json_decref(running);
  json_decref(conv);
  json_decref(durations);
  return r;
}

char *metrics_render(sqlite3 *db, long long project)
{
  struct out o = { 0 };

  if ((o.f = open_memstream(&o.text, &o.len)) == NULL) {
    ferry_error("out of memory");
    return NULL;
  }
  req_stats_render(&api, o.f);
  http_stats_render(o.f);         /* the server's own: clouds, stores */
  if (render_db(&o, db, project) == -1) {
    fclose(o.f);
    free(o.text);
    return NULL;
  }
  if (fclose(o.f) != 0) {
    free(o.text);
    ferry_error("out of memory");
    return NULL;
  }
  return o.text;
}
