/* util/error.h - per-thread error messages for code that never exits.
 *
 * A function in lib/ that fails records one message with ferry_error() and
 * returns -1 or NULL; only main() prints it and chooses the exit status
 * (libnbd set_error, nbdkit_error). */
#ifndef FERRY_ERROR_H
#define FERRY_ERROR_H

#include <stdarg.h>

/* Record the calling thread's error message (printf format; %m is errno). */
void ferry_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void ferry_verror(const char *fmt, va_list ap)
  __attribute__((format(printf, 1, 0)));

/* Put context in front of the current message: "what: " + old message. */
void ferry_error_prefix(const char *fmt, ...)
  __attribute__((format(printf, 1, 2)));

/* The calling thread's last message; never NULL ("unknown error" if none). */
const char *ferry_errmsg(void);

/* 1 if the calling thread has a message recorded. */
int ferry_error_pending(void);

/* Copy another thread's message into the calling thread (worker -> main). */
void ferry_error_set(const char *msg);

#endif
