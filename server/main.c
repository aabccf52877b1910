/* ferry-server - the control plane: callback API and state store. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "db.h"
#include "error.h"
#include "log.h"

#define EXIT_USAGE 2
#define DEFAULT_LISTEN "127.0.0.1:8700"

static void usage(FILE *fp)
{
  fprintf(fp,
    "usage: ferry-server [--listen ADDR:PORT] [--db PATH]\n"
    "\n"
    "Serve the ferry REST API (/v1) and keep state in an SQLite database.\n"
    "\n"
    "options:\n"
    "  --listen ADDR:PORT  address to bind (default " DEFAULT_LISTEN "; port "
    "0 picks a free one)\n"
    "  --db PATH           state database (default ./ferry.db)\n");
}

static int parse_listen(const char *text, struct sockaddr_in *sa)
{
  const char *colon = strrchr(text, ':');
  char host[64];
  unsigned long port;
  char *end;

  memset(sa, 0, sizeof *sa);
  sa->sin_family = AF_INET;
  if (colon == NULL || (size_t)(colon - text) >= sizeof host)
    goto bad;
  memcpy(host, text, (size_t)(colon - text));
  host[colon - text] = '\0';
  errno = 0;
  port = strtoul(colon + 1, &end, 10);
  if (errno || *end || colon[1] == '\0' || port > 65535)
    goto bad;
  if (inet_pton(AF_INET, host, &sa->sin_addr) != 1)
    goto bad;
  sa->sin_port = htons((uint16_t)port);
  return 0;
bad:
  ferry_error("--listen '%s' is not IPV4:PORT (e.g. 127.0.0.1:8700)", text);
  return -1;
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
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
  };
  const char *listen = DEFAULT_LISTEN, *dbpath = "ferry.db";
  struct server srv = { 0 };
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
  if (parse_listen(listen, &sa) == -1) {
    fprintf(stderr, "ferry-server: %s\n", ferry_errmsg());
    return EXIT_USAGE;
  }
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
                       MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                       MHD_OPTION_NOTIFY_COMPLETED, api_completed, NULL,
                       MHD_OPTION_CONNECTION_LIMIT, (unsigned)256,
                       MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120,
                       MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)65536,
                       MHD_OPTION_EXTERNAL_LOGGER, log_mhd, NULL,
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

  if (sigwait(&set, &sig) == 0)
    log_info("%s: stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
  MHD_stop_daemon(d);
  db_close(srv.db);
  return 0;
}
