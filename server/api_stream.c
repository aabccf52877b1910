/* api_stream.c - GET /v1/events/stream: the project's job events as
 * Server-Sent Events, pushed as they happen (docs/API.md, "Events").
 *
 * Each event is "id: N / event: event / data: {the /v1/events row}"; the
 * progress of running tasks comes as "event: progress" (no id) when it
 * changed since the last one sent.  A client resumes with Last-Event-ID
 * (EventSource sends it when it reconnects) or ?after=N.  Work per client
 * is bounded: at most 100 events and 200 tasks per read, one pass a
 * second at most (sooner when the server is woken), a keep-alive comment
 * every 15 s (which also finds a client that went away), a stream closes
 * after 30 minutes (the client reconnects), and at most 64 streams at
 * once (then 503), so agents always find a connection. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api.h"
#include "db.h"
#include "util/error.h"
#include "util/log.h"

#define STREAMS_MAX 64
#define STREAM_SECONDS (30 * 60)
#define KEEPALIVE_SECONDS 15
#define EVENTS_PER_PASS 100
#define TASKS_PER_PASS 200

static atomic_int streams;

struct stream {
  struct server *srv;
  long long project, migration, after;
  time_t started, last_write;
  json_t *sent_progress;        /* task id -> "done/total" last sent */
  char *buf;                    /* what is ready to go out */
  size_t len, off;
};

static void stream_free(void *cls)
{
  struct stream *s = cls;

  json_decref(s->sent_progress);
  free(s->buf);
  free(s);
  atomic_fetch_sub(&streams, 1);
}

/* One pass over the store: new events and changed progress into s->buf.
 * -1 on a database error (the stream ends). */
static int fill(struct stream *s)
{
  json_t *events, *tasks, *row, *now_running;
  FILE *f;
  size_t i;

  db_lock();
  events = db_query(s->srv->db, "SELECT id, time, migration_id, host_id, "
                    "kind, phase, message FROM events WHERE id > ?1 AND "
                    "(?2 = 0 OR migration_id = ?2) AND project_id = ?3 "
                    "ORDER BY id LIMIT ?4", "iiii", s->after, s->migration,
                    s->project, (long long)EVENTS_PER_PASS);
  tasks = events ? db_query(s->srv->db, "SELECT t.id, t.migration_id, "
                            "t.kind, json_extract(t.spec, '$.disk') AS "
                            "disk, t.done_bytes, t.total_bytes, t.rate "
                            "FROM tasks t JOIN migrations m ON m.id = "
                            "t.migration_id WHERE t.state = 'running' AND "
                            "m.project_id = ?1 AND (?2 = 0 OR m.id = ?2) "
                            "ORDER BY t.id LIMIT ?3", "iii", s->project,
                            s->migration, (long long)TASKS_PER_PASS)
                  : NULL;
  db_unlock();
  if (tasks == NULL) {
    json_decref(events);
    log_warn("event stream: %s", ferry_errmsg());
    return -1;
  }
  free(s->buf);
  s->buf = NULL;
  s->len = s->off = 0;
  if ((f = open_memstream(&s->buf, &s->len)) == NULL) {
    json_decref(events);
    json_decref(tasks);
    return -1;
  }
  json_array_foreach(events, i, row) {
    char *data = json_dumps(row, JSON_COMPACT | JSON_PRESERVE_ORDER);

    s->after = json_integer_value(json_object_get(row, "id"));
    if (data)
      fprintf(f, "id: %lld\nevent: event\ndata: %s\n\n", s->after, data);
    free(data);
  }
  /* the running tasks' progress, each when it changed; the map holds
   * exactly the tasks running now */
  now_running = json_object();
  json_array_foreach(tasks, i, row) {
    char key[32], val[64], *data;
    const char *was;

    snprintf(key, sizeof key, "%lld",
             (long long)json_integer_value(json_object_get(row, "id")));
    snprintf(val, sizeof val, "%lld/%lld",
             (long long)json_integer_value(json_object_get(row,
                                                           "done_bytes")),
             (long long)json_integer_value(json_object_get(row,
                                                           "total_bytes")));
    if (now_running)
      json_object_set_new(now_running, key, json_string(val));
    was = json_string_value(json_object_get(s->sent_progress, key));
    if (was && strcmp(was, val) == 0)
      continue;
    if ((data = json_dumps(row, JSON_COMPACT | JSON_PRESERVE_ORDER))) {
      fprintf(f, "event: progress\ndata: %s\n\n", data);
      free(data);
    }
  }
  if (now_running) {
    json_decref(s->sent_progress);
    s->sent_progress = now_running;
  }
  json_decref(events);
  json_decref(tasks);
  return fclose(f) == 0 ? 0 : -1;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *out, size_t max)
{
  struct stream *s = cls;
  size_t n;

  (void)pos;
  for (;;) {
    time_t now = time(NULL);

    if (s->off < s->len) {
      n = s->len - s->off < max ? s->len - s->off : max;
      memcpy(out, s->buf + s->off, n);
      s->off += n;
      s->last_write = now;
      return (ssize_t)n;
    }
    if (server_stopping(s->srv) || now - s->started >= STREAM_SECONDS)
      return MHD_CONTENT_READER_END_OF_STREAM;
    if (fill(s) == -1)
      return MHD_CONTENT_READER_END_WITH_ERROR;
    if (s->len > 0)
      continue;
    if (now - s->last_write >= KEEPALIVE_SECONDS) {
      static const char ka[] = ": keep-alive\n\n";

      n = sizeof ka - 1 < max ? sizeof ka - 1 : max;
      memcpy(out, ka, n);
      s->last_write = now;
      return (ssize_t)n;
    }
    server_nap(s->srv);
  }
}

enum MHD_Result api_events_stream(struct request *r)
{
  const char *mig = request_arg(r, "migration");
  const char *after = request_arg(r, "after");
  const char *last = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
                                                 "Last-Event-ID");
  struct MHD_Response *resp;
  struct stream *s;
  char *end;
  long long m = 0, a = 0;

  if (mig && ((m = strtoll(mig, &end, 10)) <= 0 || *end))
    return reply_error(r, 400, "migration", "query 'migration' must be a "
                       "migration id, not '%s'", mig);
  if (last && *last)
    after = last;
  if (after && strcmp(after, "now") == 0) {
    /* only what happens from now on (the dashboard: it has just read
     * the state, and need not replay a project's whole history) */
    db_lock();
    a = db_int(r->srv->db, 0, "SELECT coalesce(max(id), 0) FROM events "
               "WHERE project_id = ?1", "i", r->project_id);
    db_unlock();
  } else if (after && ((a = strtoll(after, &end, 10)) < 0 || *end))
    return reply_error(r, 400, "after", "the event id to resume after "
                       "(Last-Event-ID or 'after') must be a number (or 'now'), "
                       "not "
                       "'%s'", after);
  if (atomic_fetch_add(&streams, 1) >= STREAMS_MAX) {
    atomic_fetch_sub(&streams, 1);
    return reply_error(r, 503, NULL, "%d event streams are open, the most "
                       "the server serves at once: close one, or poll GET "
                       "/v1/events", STREAMS_MAX);
  }
  s = calloc(1, sizeof *s);
  if (s == NULL || (s->sent_progress = json_object()) == NULL) {
    free(s);
    atomic_fetch_sub(&streams, 1);
    return reply_error(r, 500, NULL, "out of memory");
  }
  s->srv = r->srv;
  s->project = r->project_id;
  s->migration = m;
  s->after = a;
  s->started = s->last_write = time(NULL);
  /* tell EventSource how soon to reconnect */
  if ((s->buf = strdup("retry: 2000\n\n")) != NULL)
    s->len = strlen(s->buf);
  resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384,
                                           stream_read, s, stream_free);
  if (resp == NULL) {
    stream_free(s);
    return MHD_NO;
  }
  MHD_add_response_header(resp, "Content-Type", "text/event-stream");
  MHD_add_response_header(resp, "Cache-Control", "no-store");
  MHD_add_response_header(resp, "X-Accel-Buffering", "no");
  return reply_response(r, 200, resp);
}
