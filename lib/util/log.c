#include "util/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <stdlib.h>
#include <time.h>

static const char *log_prog = "ferry";
static int log_timestamps;
static enum log_level log_level = LOG_INFO;

void log_init(const char *prog, int timestamps)
{
  const char *env = getenv("FERRY_LOG");

  log_prog = prog;
  log_timestamps = timestamps;
  if (env == NULL)
    return;
  if (strcasecmp(env, "debug") == 0)
    log_level = LOG_DEBUG;
  else if (strcasecmp(env, "info") == 0)
    log_level = LOG_INFO;
  else if (strcasecmp(env, "warn") == 0)
    log_level = LOG_WARN;
  else if (strcasecmp(env, "error") == 0)
    log_level = LOG_ERROR;
}

void log_set_level(enum log_level level)
{
  log_level = level;
}

int log_enabled(enum log_level level)
{
  return level <= log_level;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
  static const char *const names[] = {
    [LOG_ERROR] = "error: ", [LOG_WARN] = "warning: ",
    [LOG_INFO] = "", [LOG_DEBUG] = "debug: ",
  };
  char line[4096], stamp[32] = "";
  va_list ap;
  int n;

  if (!log_enabled(level))
    return;
  if (log_timestamps) {
    struct timespec ts;
    struct tm tm;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = (int)strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(stamp + n, sizeof stamp - (size_t)n, ".%03ldZ ",
             ts.tv_nsec / 1000000);
  }
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  /* one fprintf per line so threads do not interleave within a line */
  fprintf(stderr, "%s%s: %s%s\n", stamp, log_prog, names[level], line);
}
