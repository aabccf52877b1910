/* util/file.h - small files read and written whole: PEM certificates and
 * keys (server/tls.c, the agent's pinned CA).
 *
 * Writes are atomic (a temporary file, synced, then renamed or linked), so
 * a crash never leaves half a key or a truncated certificate behind. */
#ifndef FERRY_FILE_H
#define FERRY_FILE_H

#include <stddef.h>
#include <sys/types.h>

/* Read path whole, NUL-terminated, into a new buffer (caller frees; wipe
 * it first when secret).  Refused, NULL with an error naming the file: a
 * symbolic link, not a regular file, more than max bytes, and when secret,
 * a mode that lets the group or others read it (the fix is named).
 * errno is ENOENT when path is absent. */
char *file_read_small(const char *path, size_t max, int secret,
                      size_t *len);

/* fsync the directory holding path, so a rename into it is durable. */
int file_sync_dir(const char *path);

/* Write len bytes to path with mode: into path.tmp, synced, then moved to
 * path (replace) or linked (not replace: -1 with errno EEXIST when path
 * exists).  The directory is synced too.  -1 with an error naming path. */
int file_write_atomic(const char *path, const void *data, size_t len,
                      mode_t mode, int replace);

#endif
