/* instream.h - an output read back from a store (--verify): ranged reads
 * with a read-ahead window, so that parsing small structures one after
 * another does not cost one request each. */
#ifndef FERRY_INSTREAM_H
#define FERRY_INSTREAM_H

#include <stddef.h>
#include <stdint.h>

struct store;
struct instream;

/* Open key in s; an object that does not exist is an error (ENOENT). */
struct instream *instream_open(struct store *s, const char *key);

/* The object's size when it was opened. */
uint64_t instream_size(const struct instream *in);

/* "file:///dir/out.vmdk", for messages. */
const char *instream_name(const struct instream *in);

/* Exactly len bytes at off; reading past the end is an error that says
 * the output is truncated. */
int instream_pread(struct instream *in, uint64_t off, void *buf,
                   size_t len);

/* Up to len bytes at off into buf; *got is short only at the end. */
int instream_read_some(struct instream *in, uint64_t off, void *buf,
                       size_t len, size_t *got);

void instream_close(struct instream *in);      /* NULL ok */

#endif
