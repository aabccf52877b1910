/* util/log.h - messages for people: stderr, one line each.
 *
 * Programs call log_init() once.  Library code logs only progress and
 * retries (never secrets); failures travel as ferry_error() instead. */
#ifndef FERRY_LOG_H
#define FERRY_LOG_H

enum log_level { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };
enum log_format { LOG_TEXT, LOG_JSON };

/* prog prefixes every line; timestamps adds an ISO-8601 UTC time (daemons).
 * FERRY_LOG=debug|info|warn|error in the environment sets the level. */
void log_init(const char *prog, int timestamps);
void log_set_level(enum log_level level);
/* LOG_JSON: one JSON object per line ({"time", "level", "prog", "msg"},
 * plus "job", "host", "phase", "kind" for log_event).  Under systemd with
 * stderr on the journal (JOURNAL_STREAM names stderr), every line starts
 * with its syslog priority ("<6>") for journald and carries no time of
 * its own (the journal stamps it). */
void log_set_format(enum log_format format);
int log_enabled(enum log_level level);

void log_msg(enum log_level level, const char *fmt, ...)
  __attribute__((format(printf, 2, 3)));

/* What a job event is about, for log_event: 0/NULL fields are left out. */
struct log_fields {
  long long job;
  const char *host, *phase, *kind;
};

/* One line for a job's event: "job 7 web01 cloning: msg" as text, the
 * fields as their own keys in JSON. */
void log_event(enum log_level level, const struct log_fields *f,
               const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) \
  do { if (log_enabled(LOG_DEBUG)) log_msg(LOG_DEBUG, __VA_ARGS__); } while (0)

#endif
