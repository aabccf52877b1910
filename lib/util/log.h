/* util/log.h - messages for people: stderr, one line each.
 *
 * Programs call log_init() once.  Library code logs only progress and
 * retries (never secrets); failures travel as ferry_error() instead. */
#ifndef FERRY_LOG_H
#define FERRY_LOG_H

enum log_level { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };

/* prog prefixes every line; timestamps adds an ISO-8601 UTC time (daemons).
 * FERRY_LOG=debug|info|warn|error in the environment sets the level. */
void log_init(const char *prog, int timestamps);
void log_set_level(enum log_level level);
int log_enabled(enum log_level level);

void log_msg(enum log_level level, const char *fmt, ...)
  __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) \
  do { if (log_enabled(LOG_DEBUG)) log_msg(LOG_DEBUG, __VA_ARGS__); } while (0)

#endif
