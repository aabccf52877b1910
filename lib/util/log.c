#include "util/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <stdlib.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *log_prog = "ferry";
static int log_timestamps;
static enum log_level log_level = LOG_INFO;
static enum log_format log_format = LOG_TEXT;
static int log_journal;
static int stderr_is_journal(void);

void log_init(const char *prog, int timestamps)
{
  const char *env = getenv("FERRY_LOG");

  log_prog = prog;
  log_timestamps = timestamps;
  log_journal = stderr_is_journal();
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

void log_set_format(enum log_format format)
{
  log_format = format;
}

/* Is stderr the journal's stream (systemd sets JOURNAL_STREAM=dev:ino of
 * the socket it gave the service as stderr)?  Decided once, in
 * log_init(), before any thread logs. */
static int stderr_is_journal(void)
{
  const char *env = getenv("JOURNAL_STREAM");
  unsigned long long dev, ino;
  struct stat st;

  return env && sscanf(env, "%llu:%llu", &dev, &ino) == 2 &&
         fstat(STDERR_FILENO, &st) == 0 &&
         (unsigned long long)st.st_dev == dev &&
         (unsigned long long)st.st_ino == ino;
}

/* s as a JSON string's contents into o. */
static void json_text(FILE *o, const char *s)
{
  for (; *s; s++) {
    unsigned char ch = (unsigned char)*s;

    if (ch == '"' || ch == '\\')
      fprintf(o, "\\%c", ch);
    else if (ch == '\n')
      fputs("\\n", o);
    else if (ch == '\t')
      fputs("\\t", o);
    else if (ch < 0x20 || ch == 0x7f)
      fprintf(o, "\\u%04x", ch);
    else
      fputc(ch, o);
  }
}

static void vlog(enum log_level level, const struct log_fields *f,
                 const char *fmt, va_list ap)
{
  static const char *const names[] = {
    [LOG_ERROR] = "error: ", [LOG_WARN] = "warning: ",
    [LOG_INFO] = "", [LOG_DEBUG] = "debug: ",
  };
  static const char *const levels[] = {
    [LOG_ERROR] = "error", [LOG_WARN] = "warning", [LOG_INFO] = "info",
    [LOG_DEBUG] = "debug",
  };
  static const int priorities[] = {
    [LOG_ERROR] = 3, [LOG_WARN] = 4, [LOG_INFO] = 6, [LOG_DEBUG] = 7,
  };
  char line[4096], stamp[32] = "", *out = NULL;
  size_t outlen = 0;
  int journal = log_journal, n;
  FILE *o;

  if (!log_enabled(level))
    return;
  if (log_timestamps || log_format == LOG_JSON) {
    struct timespec ts;
    struct tm tm;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = (int)strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(stamp + n, sizeof stamp - (size_t)n, ".%03ldZ",
             ts.tv_nsec / 1000000);
  }
  vsnprintf(line, sizeof line, fmt, ap);
  if ((o = open_memstream(&out, &outlen)) == NULL)
    return;
  if (journal)
    fprintf(o, "<%d>", priorities[level]);
  if (log_format == LOG_JSON) {
    fprintf(o, "{\"time\":\"%s\",\"level\":\"%s\",\"prog\":\"", stamp,
            levels[level]);
    json_text(o, log_prog);
    fputc('"', o);
    if (f && f->job)
      fprintf(o, ",\"job\":%lld", f->job);
    if (f && f->host) {
      fputs(",\"host\":\"", o);
      json_text(o, f->host);
      fputc('"', o);
    }
    if (f && f->phase) {
      fputs(",\"phase\":\"", o);
      json_text(o, f->phase);
      fputc('"', o);
    }
    if (f && f->kind) {
      fputs(",\"kind\":\"", o);
      json_text(o, f->kind);
      fputc('"', o);
    }
    fputs(",\"msg\":\"", o);
    json_text(o, line);
    fputs("\"}", o);
  } else {
    if (log_timestamps && !journal)
      fprintf(o, "%s ", stamp);
    fprintf(o, "%s: %s", log_prog, names[level]);
    if (f && f->job)
      fprintf(o, "job %lld ", f->job);
    if (f && f->host)
      fprintf(o, "%s ", f->host);
    if (f && f->phase)
      fprintf(o, "%s", f->phase);
    if (f && (f->job || f->host || f->phase))
      fputs(": ", o);
    fputs(line, o);
  }
  fputc('\n', o);
  if (fclose(o) == 0)
    fwrite(out, 1, outlen, stderr);   /* one write per line: no interleaving */
  free(out);
}

void log_msg(enum log_level level, const char *fmt, ...)
{
  va_list ap;

  va_start(ap, fmt);
  vlog(level, NULL, fmt, ap);
  va_end(ap);
}

void log_event(enum log_level level, const struct log_fields *f,
               const char *fmt, ...)
{
  va_list ap;

  va_start(ap, fmt);
  vlog(level, f, fmt, ap);
  va_end(ap);
}
