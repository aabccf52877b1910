/* nbd/export.h - a minimal NBD server (fixed newstyle handshake, the
 * protocol of https://github.com/NetworkBlockDevice/nbd/blob/master/doc/
 * proto.md) exporting one image_access on a Unix socket, for qemu's NBD
 * client (libguestfs' appliance) to read and write a chunked image without
 * staging the disk.
 *
 * Options: NBD_OPT_GO / NBD_OPT_INFO / NBD_OPT_EXPORT_NAME / NBD_OPT_ABORT /
 * NBD_OPT_LIST (anything else: NBD_REP_ERR_UNSUP); simple replies only;
 * commands READ, WRITE, FLUSH, TRIM, WRITE_ZEROES, DISC (FUA honoured by a
 * flush).  Transmission flags: HAS_FLAGS, SEND_FLUSH, SEND_FUA, SEND_TRIM,
 * SEND_WRITE_ZEROES, CAN_MULTI_CONN.  A request longer than 32 MiB, past the
 * end of the export, or with an unknown command gets EINVAL / ENOSPC and the
 * connection stays usable; a malformed handshake closes the connection.
 * An I/O error on the image is EIO to the client and is remembered: a later
 * nbd_export_stop() returns -1 with it (ferry never commits a generation
 * whose writes might have failed).
 *
 * One thread accepts; each connection is served by a thread of its own
 * (at most 8 at once); every wait is bounded by the stop. */
#ifndef FERRY_NBD_EXPORT_H
#define FERRY_NBD_EXPORT_H

struct image_access;
struct nbd_export;

/* Listen on socket_path (created 0600, removed by stop) and serve a. */
struct nbd_export *nbd_export_start(const char *socket_path,
                                    struct image_access *a);

/* Close the listener and every connection and join the threads: 0, or -1
 * with the first error any request met (message names the request). */
int nbd_export_stop(struct nbd_export *e);

#endif
