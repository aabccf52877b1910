#include "util/error.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define ERRMSG_MAX 2048

static _Thread_local char errmsg[ERRMSG_MAX];

void ferry_verror(const char *fmt, va_list ap)
{
  vsnprintf(errmsg, sizeof errmsg, fmt, ap);
}

void ferry_error(const char *fmt, ...)
{
  va_list ap;

  va_start(ap, fmt);
  ferry_verror(fmt, ap);
  va_end(ap);
}

void ferry_error_prefix(const char *fmt, ...)
{
  char old[ERRMSG_MAX];
  va_list ap;
  int n;

  memcpy(old, errmsg, sizeof old);
  va_start(ap, fmt);
  n = vsnprintf(errmsg, sizeof errmsg, fmt, ap);
  va_end(ap);
  if (n >= 0 && (size_t)n < sizeof errmsg)
    snprintf(errmsg + n, sizeof errmsg - (size_t)n, "%s", old);
}

const char *ferry_errmsg(void)
{
  return errmsg[0] ? errmsg : "unknown error";
}

void ferry_error_set(const char *msg)
{
  snprintf(errmsg, sizeof errmsg, "%s", msg);
}

int ferry_error_pending(void)
{
  return errmsg[0] != '\0';
}
