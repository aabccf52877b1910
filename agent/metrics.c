/* metrics.c - see metrics.h.  Per disk: the sums of finished tasks plus
 * the running task's latest figures, so counters only grow while a task
 * runs and when it ends.  libmicrohttpd's one internal thread answers
 * GET /metrics; everything else is 404. */
#include "metrics.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/http_stats.h"
#include "util/error.h"

#define MAX_DISKS 32

struct figures {
  unsigned long long read, sent, zero, sent_chunks, reused, carried;
};

struct disk {
  char name[64];
  struct figures done, now;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct disk disks[MAX_DISKS];
static size_t ndisks;
static struct MHD_Daemon *daemon_;

static void add(struct figures *to, const struct figures *f)
{
  to->read += f->read;
  to->sent += f->sent;
  to->zero += f->zero;
  to->sent_chunks += f->sent_chunks;
  to->reused += f->reused;
  to->carried += f->carried;
}

/* The disk's entry (made on first use), NULL when the table is full;
 * caller holds the lock. */
static struct disk *disk_entry(const char *disk)
{
  size_t i;

  for (i = 0; i < ndisks; i++)
    if (strcmp(disks[i].name, disk) == 0)
      return &disks[i];
  if (ndisks == MAX_DISKS)
    return NULL;
  memset(&disks[ndisks], 0, sizeof disks[ndisks]);
  snprintf(disks[ndisks].name, sizeof disks[ndisks].name, "%s", disk);
  return &disks[ndisks++];
}

static struct figures figures_of(const struct clone_stats *st)
{
  struct figures f = {
    .read = st->read_bytes, .sent = st->sent_bytes, .zero = st->zero_chunks,
    .sent_chunks = st->sent_chunks, .reused = st->reused_chunks,
    .carried = st->carried_chunks,
  };

  return f;
}

void agent_metrics_task(const char *disk, const struct clone_stats *st)
{
  struct disk *d;

  if (daemon_ == NULL || disk == NULL)
    return;
  pthread_mutex_lock(&lock);
  if ((d = disk_entry(disk)) != NULL)
    d->now = figures_of(st);
  pthread_mutex_unlock(&lock);
}

void agent_metrics_task_end(const char *disk, const struct clone_stats *st)
{
  struct disk *d;

  if (daemon_ == NULL || disk == NULL)
    return;
  pthread_mutex_lock(&lock);
  if ((d = disk_entry(disk)) != NULL) {
    if (st)
      d->now = figures_of(st);
    add(&d->done, &d->now);
    memset(&d->now, 0, sizeof d->now);
  }
  pthread_mutex_unlock(&lock);
}

static unsigned long long field(const struct figures *f, size_t k)
{
  switch (k) {
  case 0: return f->read;
  case 1: return f->sent;
  case 2: return f->zero;
  case 3: return f->sent_chunks;
  case 4: return f->reused;
  default: return f->carried;
  }
}

static void series(FILE *o, const char *name, const char *type,
                   const char *help, size_t k)
{
  size_t i;

  fprintf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
  for (i = 0; i < ndisks; i++) {
    struct figures t = disks[i].done;

    add(&t, &disks[i].now);
    fprintf(o, "%s{disk=\"", name);
    prom_put_label(o, disks[i].name);
    fprintf(o, "\"} %llu\n", field(&t, k));
  }
}

static char *render(void)
{
  static const char *const outcomes[] = { "zero", "sent", "reused",
                                          "carried" };
  char *text = NULL;
  size_t len = 0, i, k;
  FILE *o = open_memstream(&text, &len);

  if (o == NULL)
    return NULL;
  pthread_mutex_lock(&lock);
  series(o, "ferry_agent_read_bytes_total", "counter", "Bytes this agent "
         "read from each disk (clones and syncs, the running one "
         "included).", 0);
  series(o, "ferry_agent_sent_bytes_total", "counter", "Bytes this agent "
         "sent to the store for each disk (after compression).", 1);
  fprintf(o, "# HELP ferry_agent_chunks_total Chunks of each disk by "
          "outcome: zero (skipped), sent, reused (already stored), carried "
          "(unchanged since the last sync).\n"
          "# TYPE ferry_agent_chunks_total counter\n");
  for (i = 0; i < ndisks; i++) {
    struct figures t = disks[i].done;

    add(&t, &disks[i].now);
    for (k = 0; k < 4; k++) {
      fputs("ferry_agent_chunks_total{disk=\"", o);
      prom_put_label(o, disks[i].name);
      fprintf(o, "\",outcome=\"%s\"} %llu\n", outcomes[k],
              field(&t, 2 + k));
    }
  }
  pthread_mutex_unlock(&lock);
  http_stats_render(o);
  if (fclose(o) != 0) {
    free(text);
    return NULL;
  }
  return text;
}

static enum MHD_Result answer(void *cls, struct MHD_Connection *conn,
                              const char *url, const char *method,
                              const char *version, const char *upload,
                              size_t *upload_size, void **con_cls)
{
  struct MHD_Response *resp;
  enum MHD_Result ret;
  unsigned status = 200;
  char *text = NULL;

  (void)cls;
  (void)version;
  (void)upload;
  (void)upload_size;
  (void)con_cls;
  if (strcmp(method, "GET") != 0 || strcmp(url, "/metrics") != 0) {
    status = strcmp(url, "/metrics") == 0 ? 405 : 404;
    text = strdup(status == 405 ? "only GET\n" : "only /metrics\n");
  } else if ((text = render()) == NULL) {
    status = 500;
    text = strdup("out of memory\n");
  }
  if (text == NULL)
    return MHD_NO;
  resp = MHD_create_response_from_buffer(strlen(text), text,
                                         MHD_RESPMEM_MUST_FREE);
  if (resp == NULL) {
    free(text);
    return MHD_NO;
  }
  MHD_add_response_header(resp, "Content-Type", status == 200
                          ? "text/plain; version=0.0.4; charset=utf-8"
                          : "text/plain");
  ret = MHD_queue_response(conn, status, resp);
  MHD_destroy_response(resp);
  return ret;
}

int agent_metrics_start(const char *addr)
{
  struct sockaddr_in sa = { .sin_family = AF_INET };
  const char *colon = strrchr(addr, ':');
  char host[64];
  char *end;
  long port;

  if (colon == NULL || (size_t)(colon - addr) >= sizeof host) {
    ferry_error("metrics_listen '%s' is not ADDRESS:PORT (e.g. "
                "127.0.0.1:9464)", addr);
    return -1;
  }
  snprintf(host, sizeof host, "%.*s", (int)(colon - addr), addr);
  port = strtol(colon + 1, &end, 10);
  if (*end || port < 1 || port > 65535 ||
      inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
    ferry_error("metrics_listen '%s' is not an IPv4 ADDRESS:PORT (e.g. "
                "127.0.0.1:9464)", addr);
    return -1;
  }
  if ((ntohl(sa.sin_addr.s_addr) >> 24) != 127) {
    ferry_error("metrics_listen %s is not a loopback address: the agent's "
                "metrics listener has no authentication, so it listens on "
                "127.0.0.0/8 only (scrape it through a local collector)",
                host);
    return -1;
  }
  sa.sin_port = htons((uint16_t)port);
  daemon_ = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD |
                             MHD_USE_ERROR_LOG, 0, NULL, NULL, answer, NULL,
                             MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                             MHD_OPTION_CONNECTION_LIMIT, (unsigned)8,
                             MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10,
                             MHD_OPTION_END);
  if (daemon_ == NULL) {
    ferry_error("cannot listen on %s for metrics (in use?)", addr);
    return -1;
  }
  return 0;
}

void agent_metrics_stop(void)
{
  if (daemon_)
    MHD_stop_daemon(daemon_);
  daemon_ = NULL;
}
