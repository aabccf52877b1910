/* util/token_file.h - secrets kept in files: the server's enrollment and
 * operator tokens, the agent's own token and its enrollment token, the
 * CLI's operator token.
 *
 * A token file is a regular file that only its owner may read (like ssh's
 * private keys), holding the token on one line.  Tokens never go on a
 * command line, where ps would show them, nor into an error message. */
#ifndef FERRY_TOKEN_FILE_H
#define FERRY_TOKEN_FILE_H

#include <stddef.h>

/* Read the token in path into buf[size], NUL-terminated, without its
 * trailing newline.  Refused, -1 with an error naming the file and the fix
 * and errno set: a symbolic link (ELOOP: it is not followed), not a
 * regular file (EINVAL), a mode that lets the group or others read it
 * (EPERM), empty (ENODATA), size bytes or more (EFBIG), control characters
 * inside (EINVAL: they would end up in an HTTP header).  When it cannot be
 * opened, errno is open's (ENOENT: absent) and callers that have a better
 * hint may replace the message. */
int token_file_read(const char *path, char *buf, size_t size);

/* Write token and a newline to path with mode 0600: into path.tmp, synced,
 * then moved to path, so a crash never leaves a partial token.  replace:
 * renamed over an existing path; 0: linked, so a token someone else made
 * first is never replaced (-1 with errno EEXIST).  -1 with an error naming
 * path. */
int token_file_write(const char *path, const char *token, int replace);

#endif
