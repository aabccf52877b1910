/* ferry-server - the control plane: callback API and state store. */
#include <arpa/inet.h>
#include <getopt.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <unistd.h>

#include "api.h"
#include "auth.h"
#include "db.h"
#include "orchestrator.h"
#include "tls.h"
#include "util/error.h"
#include "util/log.h"
#include "util/parse.h"

#define EXIT_USAGE 2
#define DEFAULT_LISTEN "127.0.0.1:8700"
#define MAX_CONNECTIONS_DEFAULT 4096
#define FDS_OWN 128                    /* database, logs, children's pipes */

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
    "It serves HTTPS: on first start it makes a private CA (ca.pem, ca.key)\n"
    "and a certificate signed by it (server.pem, server.key) beside the\n"
    "database, and logs the CA's fingerprint, which agents pin\n"
    "(server_ca_sha256 in agent.conf).\n"
    "\n"
    "options:\n"
    "  --listen ADDR:PORT         address to bind (default " DEFAULT_LISTEN
    ")\n"
    "  --tls-san NAME|IP          another name or address the certificate\n"
    "                             holds (repeatable; localhost, 127.0.0.1,\n"
    "                             ::1, the host name and the listen address\n"
    "                             are always in it)\n"
    "  --tls-cert FILE --tls-key FILE [--tls-ca FILE]\n"
    "                             serve your own certificate (and chain)\n"
    "                             instead; --tls-ca names the CA agents pin\n"
    "  --http                     plain HTTP, on a loopback address only\n"
    "  --insecure-http            plain HTTP on any address: tokens cross\n"
    "                             the network in clear text (for a TLS front\n"
    "                             of your own)\n"
    "  --db PATH                  state database (default ./ferry.db)\n"
    "  --enroll-token-file PATH   shared enrollment token\n"
    "  --operator-token-file PATH operator token\n"
    "  --convert-workers N        conversions at once (default 2)\n"
    "  --lease SECONDS            re-offer a task whose runner is silent this\n"
    "                             long (default 60)\n"
    "  --max-attempts N           tries per task before the job fails "
    "(default 3)\n"
    "  --max-connections N        connections served at once (default 4096):\n"
    "                             every agent holds one while it long-polls\n"
    "  --grant-ttl SECONDS        life of the store grants agents get "
    "(default 900)\n"
    "  --convert-bin PATH         ferry-convert (default: beside this "
    "program)\n"
    "  --log-format text|json     one line per message; json: an object per "
    "line with\n"
    "                             time, level, job, host, phase, msg "
    "(default text)\n");
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

/* Every agent of a fleet holds a connection while it long-polls, each a
 * descriptor (and a thread): raise the soft limit of open files to fit
 * want connections and the server's own files, as far as the hard limit
 * allows.  The connections that fit. */
static unsigned fd_room(unsigned want)
{
  struct rlimit rl;
  rlim_t need = (rlim_t)want + FDS_OWN;

  if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
    return want;
  if (rl.rlim_cur < need) {
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= need
                  ? need : rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
      getrlimit(RLIMIT_NOFILE, &rl);
  }
  if (rl.rlim_cur >= need)
    return want;
  want = rl.rlim_cur > FDS_OWN + 16 ? (unsigned)(rl.rlim_cur - FDS_OWN) : 16;
  log_warn("open files are limited to %llu: serving %u connections at "
           "once (raise the limit, e.g. LimitNOFILE= in the unit, for "
           "more agents)", (unsigned long long)rl.rlim_cur, want);
  return want;
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
    { "tls-cert", required_argument, NULL, 'T' },
    { "tls-key", required_argument, NULL, 'K' },
    { "tls-ca", required_argument, NULL, 'Q' },
    { "tls-san", required_argument, NULL, 'N' },
    { "http", no_argument, NULL, 'H' },
    { "insecure-http", no_argument, NULL, 'I' },
    { "log-format", required_argument, NULL, 'F' },
    { "max-connections", required_argument, NULL, 'M' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
  };
  const char *listen = DEFAULT_LISTEN, *dbpath = "ferry.db";
  char *enroll_file = NULL, *operator_file = NULL, *state_dir = NULL;
  struct tls_opts tls = { 0 };
  struct tls_identity id = { 0 };
  struct MHD_OptionItem mopts[16];
  unsigned flags, nopt = 0, max_conns = MAX_CONNECTIONS_DEFAULT;
  int plain = 0, insecure = 0, rc = 1;
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
    case 'T': tls.cert_file = optarg; break;
    case 'K': tls.key_file = optarg; break;
    case 'Q': tls.ca_file = optarg; break;
    case 'N':
      if (tls_san_check(optarg) == -1)
        goto usage_error;
      if (tls.n_sans == TLS_SANS_MAX) {
        ferry_error("at most %d --tls-san", TLS_SANS_MAX);
        goto usage_error;
      }
      tls.sans[tls.n_sans++] = optarg;
      break;
    case 'H': plain = 1; break;
    case 'I': plain = insecure = 1; break;
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
    case 'M':
      if (parse_uint("--max-connections", optarg, 16, 65536,
                     &max_conns) == -1)
        goto usage_error;
      break;
    case 'G':
      if (parse_uint("--grant-ttl", optarg, 1, GRANT_TTL_MAX,
                     &srv.grant_ttl) == -1)
        goto usage_error;
      break;
    case 'F':
      if (strcmp(optarg, "json") == 0) {
        log_set_format(LOG_JSON);
      } else if (strcmp(optarg, "text") != 0) {
        fprintf(stderr, "ferry-server: --log-format is text or json, not "
                "'%s'\n", optarg);
        return EXIT_USAGE;
      }
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
  /* 127.0.0.0/8: nobody else can listen in */
  if (plain && !insecure && (ntohl(sa.sin_addr.s_addr) >> 24) != 127) {
    fprintf(stderr, "ferry-server: plain HTTP on %s would send every token "
            "in clear text: drop --http to serve HTTPS, or add "
            "--insecure-http if a TLS front of your own protects it\n",
            listen);
    return EXIT_USAGE;
  }
  if (plain && (tls.cert_file || tls.key_file || tls.ca_file ||
                tls.n_sans)) {
    fprintf(stderr, "ferry-server: --tls-* options are for HTTPS: drop "
            "--http or --insecure-http\n");
    return EXIT_USAGE;
  }
  if (!plain && !MHD_is_feature_supported(MHD_FEATURE_TLS)) {
    fprintf(stderr, "ferry-server: this libmicrohttpd was built without "
            "TLS: install one with GnuTLS (Debian's libmicrohttpd12 has "
            "it), or serve --http on a loopback address\n");
    goto out;
  }
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
  if (srv.prepare_bin == NULL) {
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);

    if (n > 0) {
      self[n] = '\0';
      srv.prepare_bin = beside(self, "ferry-prepare");
    }
  }
  {
    const char *slash = strrchr(dbpath, '/');

    state_dir = slash == NULL ? strdup(".")
                : slash == dbpath ? strdup("/")
                : strndup(dbpath, (size_t)(slash - dbpath));
  }
  if (enroll_file == NULL || operator_file == NULL ||
      srv.convert_bin == NULL || srv.prepare_bin == NULL ||
      state_dir == NULL) {
    fprintf(stderr, "ferry-server: out of memory\n");
    goto out;
  }
  /* TLS first: a certificate refused at start leaves no token behind */
  if (!plain) {
    char host[INET_ADDRSTRLEN];

    inet_ntop(AF_INET, &sa.sin_addr, host, sizeof host);
    tls.dir = state_dir;
    tls.listen_host = host;
    if (tls_identity_load(&tls, &id) == -1) {
      fprintf(stderr, "ferry-server: %s\n", ferry_errmsg());
      goto out;
    }
    srv.ca_pem = id.ca_pem;
  }
  if (auth_token_file(enroll_file, srv.enroll_hash, &created) == -1) {
    fprintf(stderr, "ferry-server: %s\n", ferry_errmsg());
    goto out;
  }
  if (created)
    log_info("created enrollment token %s (give it to agents)",
             enroll_file);
  if (auth_token_file(operator_file, srv.operator_hash, &created) == -1) {
    fprintf(stderr, "ferry-server: %s\n", ferry_errmsg());
    goto out;
  }
  if (created)
    log_info("created operator token %s (the ferry CLI reads it)",
             operator_file);
  srv.db = db_open(dbpath);
  if (srv.db == NULL) {
    fprintf(stderr, "ferry-server: %s\n", ferry_errmsg());
    goto out;
  }

  /* signals are taken synchronously by the main thread below */
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  signal(SIGPIPE, SIG_IGN);

#define OPT(o, v, p) \
  (mopts[nopt++] = (struct MHD_OptionItem){ (o), (intptr_t)(v), (p) })
  /* poll(), not select(): a fleet's connections pass FD_SETSIZE */
  flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
          MHD_USE_POLL | MHD_USE_ERROR_LOG;
  max_conns = fd_room(max_conns);
  OPT(MHD_OPTION_EXTERNAL_LOGGER, log_mhd, NULL);
  OPT(MHD_OPTION_SOCK_ADDR, 0, &sa);
  OPT(MHD_OPTION_NOTIFY_COMPLETED, api_completed, NULL);
  OPT(MHD_OPTION_CONNECTION_LIMIT, max_conns, NULL);
  OPT(MHD_OPTION_CONNECTION_TIMEOUT, 120, NULL);
  OPT(MHD_OPTION_CONNECTION_MEMORY_LIMIT, 65536, NULL);
  if (!plain) {
    flags |= MHD_USE_TLS;
    OPT(MHD_OPTION_HTTPS_MEM_CERT, 0, id.cert_pem);
    OPT(MHD_OPTION_HTTPS_MEM_KEY, 0, id.key_pem);
    /* TLS 1.2 and 1.3 only (RFC 8996 retired 1.0 and 1.1) */
    OPT(MHD_OPTION_HTTPS_PRIORITIES, 0,
        "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2");
  }
  OPT(MHD_OPTION_END, 0, NULL);
#undef OPT
  d = MHD_start_daemon(flags, 0, NULL, NULL, api_handle, &srv,
                       MHD_OPTION_ARRAY, mopts, MHD_OPTION_END);
  if (d == NULL) {
    fprintf(stderr, "ferry-server: cannot listen on %s: the port may be in "
            "use or the address not on this host%s\n", listen,
            plain ? "" : " (or the TLS key and certificate were refused: "
            "see the log above)");
    goto out;
  }
  info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
  inet_ntop(AF_INET, &sa.sin_addr, addr, sizeof addr);
  log_info("listening on %s://%s:%u (database %s, schema %d)",
           plain ? "http" : "https", addr,
           info ? (unsigned)info->port : (unsigned)ntohs(sa.sin_port),
           dbpath, db_schema_version());
  if (insecure)
    log_warn("--insecure-http: plain HTTP, every token crosses the network "
             "in clear text; use it only behind a TLS front of your own");
  if (!plain && id.fingerprint[0])
    log_info("TLS: CA fingerprint %s (agents pin it: server_ca_sha256 in "
             "agent.conf; ferry ca prints it)", id.fingerprint);
  else if (!plain)
    log_info("TLS: certificate %s without --tls-ca: agents trust it "
             "through server_ca_file or server_ca_system", tls.cert_file);

  if (orchestrator_start(&srv) == -1) {
    fprintf(stderr, "ferry-server: %s\n", ferry_errmsg());
    MHD_stop_daemon(d);
    goto out;
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
  rc = 0;
out:
  db_close(srv.db);
  tls_identity_free(&id);
  free(enroll_file);
  free(operator_file);
  free(state_dir);
  free(srv.convert_bin);
  free(srv.prepare_bin);
  return rc;
usage_error:
  fprintf(stderr, "ferry-server: %s\n", ferry_errmsg());
  return EXIT_USAGE;
}
