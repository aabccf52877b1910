/* ferry-server - the control plane: callback API and state store. */
#include <arpa/inet.h>
#include <getopt.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

#include "api.h"
#include "auth.h"
#include "db.h"
#include "orchestrator.h"
#include "util/error.h"
#include "util/log.h"
#include "util/parse.h"

#define EXIT_USAGE 2
#define DEFAULT_LISTEN "127.0.0.1:8700"

static void usage(FILE *fp)
{
  fprintf(fp,
    "usage: ferry-server [--listen ADDR:PORT] [--db PATH] [options]\n"
    "\n"
    "Serve the ferry REST API (/v1), keep state in an SQLite database and\n"
    "drive migrations.  Tokens live in files of mode 0600 beside the\n"
    "database unless given: enroll.token (agents enroll with it) and\n"
    "operator.token (the ferry CLI uses it); missing ones are created.\n"
    "\n"
    "options:\n"
    "  --listen ADDR:PORT         address to bind (default " DEFAULT_LISTEN
    ")\n"
    "  --db PATH                  state database (default ./ferry.db)\n"
    "  --enroll-token-file PATH   shared enrollment token\n"
    "  --operator-token-file PATH operator token\n"
    "  --convert-workers N        conversions at once (default 2)\n"
    "  --lease SECONDS            re-offer a task whose runner is silent this\n"
    "                             long (default 60)\n"
    "  --max-attempts N           tries per task before the job fails "
    "(default 3)\n"
    "  --grant-ttl SECONDS        life of the store grants agents get "
    "(default 900)\n"
    "  --convert-bin PATH         ferry-convert (default: beside this "
    "program)\n");
}

static int parse_listen(const char *text, struct sockaddr_in *sa)
{
  const char *colon = strrchr(text, ':');
  char host[64];
  unsigned port;

  memset(sa, 0, sizeof *sa);
  sa->sin_family = AF_INET;
  if (colon == NULL || (size_t)(colon - text) >= sizeof host)
    goto bad;
  memcpy(host, text, (size_t)(colon - text));
  host[colon - text] = '\0';
  if (parse_uint("port", colon + 1, 0, 65535, &port) == -1)
    goto bad;
  if (inet_pton(AF_INET, host, &sa->sin_addr) != 1)
    goto bad;
  sa->sin_port = htons((uint16_t)port);
  return 0;
bad:
  ferry_error("--listen '%s' is not IPV4:PORT (e.g. 127.0.0.1:8700)", text);
  return -1;
}

/* dir(db)/name, or name when db has no directory part. */
static char *beside(const char *db, const char *name)
{
  const char *slash = strrchr(db, '/');
  char *p;

  if (asprintf(&p, "%.*s%s%s", slash ? (int)(slash - db) : 0, db,
               slash ? "/" : "", name) == -1)
    return NULL;
  return p;
}

static void log_mhd(void *cls, const char *fmt, va_list ap)
{
  char msg[512];

  (void)cls;
  vsnprintf(msg, sizeof msg, fmt, ap);
  msg[strcspn(msg, "\n")] = '\0';
  log_warn("http: %s", msg);
}

int main(int argc, char **argv)
{
  static const struct option longopts[] = {
    { "listen", required_argument, NULL, 'l' },
    { "db", required_argument, NULL, 'd' },
    { "enroll-token-file", required_argument, NULL, 'E' },
    { "operator-token-file", required_argument, NULL, 'O' },
    { "convert-workers", required_argument, NULL, 'w' },
    { "lease", required_argument, NULL, 'L' },
    { "max-attempts", required_argument, NULL, 'A' },
    { "grant-ttl", required_argument, NULL, 'G' },
    { "convert-bin", required_argument, NULL, 'C' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
  };
  const char *listen = DEFAULT_LISTEN, *dbpath = "ferry.db";
  char *enroll_file = NULL, *operator_file = NULL;
  struct server srv = {
    .convert_workers = 2, .lease_seconds = 60, .max_attempts = 3,
    .grant_ttl = GRANT_TTL_DEFAULT,
    .lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER,
  };
  int created;
  struct MHD_Daemon *d;
  const union MHD_DaemonInfo *info;
  struct sockaddr_in sa;
  sigset_t set;
  int c, sig;
  char addr[INET_ADDRSTRLEN];

  log_init("ferry-server", 1);
  opterr = 0;
  while ((c = getopt_long(argc, argv, "l:d:h", longopts, NULL)) != -1) {
    switch (c) {
    case 'l': listen = optarg; break;
    case 'd': dbpath = optarg; break;
    case 'E': enroll_file = strdup(optarg); break;
    case 'O': operator_file = strdup(optarg); break;
    case 'C': srv.convert_bin = strdup(optarg); break;
    case 'w':
      if (parse_uint("--convert-workers", optarg, 1, 16,
                     &srv.convert_workers) == -1)
        goto usage_error;
      break;
    case 'L':
      if (parse_uint("--lease", optarg, 2, 86400, &srv.lease_seconds) == -1)
        goto usage_error;
      break;
    case 'A':
      if (parse_uint("--max-attempts", optarg, 1, 100,
                     &srv.max_attempts) == -1)
        goto usage_error;
      break;
    case 'G':
      if (parse_uint("--grant-ttl", optarg, 1, GRANT_TTL_MAX,
                     &srv.grant_ttl) == -1)
        goto usage_error;
      break;
    case 'h': usage(stdout); return 0;
    default:
      fprintf(stderr, "ferry-server: unknown or incomplete option %s "
              "(see --help)\n", argv[optind - 1]);
      return EXIT_USAGE;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "ferry-server: unexpected argument '%s'\n",
            argv[optind]);
    return EXIT_USAGE;
  }
  if (parse_listen(listen, &sa) == -1)
    goto usage_error;
  if (enroll_file == NULL)
    enroll_file = beside(dbpath, "enroll.token");
  if (operator_file == NULL)
    operator_file = beside(dbpath, "operator.token");
  if (srv.convert_bin == NULL) {
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);

    if (n > 0) {
      self[n] = '\0';
      srv.convert_bin = beside(self, "ferry-convert");
    }
  }
  if (enroll_file == NULL || operator_file == NULL ||
      srv.convert_bin == NULL) {
    fprintf(stderr, "ferry-server: out of memory\n");
    return 1;
  }
  if (auth_token_file(enroll_file, srv.enroll_hash, &created) == -1) {
    fprintf(stderr, "ferry-server: %s\n", ferry_errmsg());
    return 1;
  }
  if (created)
    log_info("created enrollment token %s (give it to agents)",
             enroll_file);
  if (auth_token_file(operator_file, srv.operator_hash, &created) == -1) {
    fprintf(stderr, "ferry-server: %s\n", ferry_errmsg());
    return 1;
  }
  if (created)
    log_info("created operator token %s (the ferry CLI reads it)",
             operator_file);
  srv.db = db_open(dbpath);
  if (srv.db == NULL) {
    fprintf(stderr, "ferry-server: %s\n", ferry_errmsg());
    return 1;
  }

  /* signals are taken synchronously by the main thread below */
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  signal(SIGPIPE, SIG_IGN);

  d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD |
                       MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ERROR_LOG,
                       0, NULL, NULL, api_handle, &srv,
                       MHD_OPTION_EXTERNAL_LOGGER, log_mhd, NULL,
                       MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                       MHD_OPTION_NOTIFY_COMPLETED, api_completed, NULL,
                       MHD_OPTION_CONNECTION_LIMIT, (unsigned)256,
                       MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120,
                       MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)65536,
                       MHD_OPTION_END);
  if (d == NULL) {
    fprintf(stderr, "ferry-server: cannot listen on %s: the port may be in "
            "use or the address not on this host\n", listen);
    db_close(srv.db);
    return 1;
  }
  info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
  inet_ntop(AF_INET, &sa.sin_addr, addr, sizeof addr);
  log_info("listening on http://%s:%u (database %s, schema %d)", addr,
           info ? (unsigned)info->port : (unsigned)ntohs(sa.sin_port),
           dbpath, db_schema_version());

  if (orchestrator_start(&srv) == -1) {
    fprintf(stderr, "ferry-server: %s\n", ferry_errmsg());
    MHD_stop_daemon(d);
    db_close(srv.db);
    return 1;
  }

  /* the keepers of running tasks see stopping within a tick and stop
   * their children (SIGTERM, then SIGKILL); the tasks stay running in
   * the database and run again from the start at the next start */
  if (sigwait(&set, &sig) == 0)
    log_info("%s: stopping (running tasks run again at the next start)",
             sig == SIGINT ? "SIGINT" : "SIGTERM");
  pthread_mutex_lock(&srv.lock);
  srv.stopping = 1;
  pthread_cond_broadcast(&srv.wake);
  pthread_mutex_unlock(&srv.lock);
  MHD_stop_daemon(d);
  orchestrator_stop();
  db_close(srv.db);
  free(enroll_file);
  free(operator_file);
  free(srv.convert_bin);
  return 0;
usage_error:
  fprintf(stderr, "ferry-server: %s\n", ferry_errmsg());
  return EXIT_USAGE;
}
