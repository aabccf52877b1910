/* nbd/export.c - a minimal NBD server over one image_access (export.h).
 *
 * The protocol: https://github.com/NetworkBlockDevice/nbd/blob/master/doc/
 * proto.md ("fixed newstyle negotiation", "transmission phase"); every
 * number on the wire is big-endian. */
#include "nbd/export.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "image/access.h"
#include "util/error.h"
#include "util/log.h"

/* proto.md, "Values" */
#define NBDMAGIC UINT64_C(0x4e42444d41474943)          /* "NBDMAGIC" */
#define IHAVEOPT UINT64_C(0x49484156454F5054)          /* "IHAVEOPT" */
#define OPT_REPLY_MAGIC UINT64_C(0x3e889045565a9)
#define REQUEST_MAGIC 0x25609513u
#define SIMPLE_REPLY_MAGIC 0x67446698u

#define FLAG_FIXED_NEWSTYLE (1u << 0)                  /* handshake flags */
#define FLAG_NO_ZEROES (1u << 1)
#define FLAG_C_FIXED_NEWSTYLE (1u << 0)                /* client flags */
#define FLAG_C_NO_ZEROES (1u << 1)

#define FLAG_HAS_FLAGS (1u << 0)                       /* transmission */
#define FLAG_SEND_FLUSH (1u << 2)
#define FLAG_SEND_FUA (1u << 3)
#define FLAG_SEND_TRIM (1u << 5)
#define FLAG_SEND_WRITE_ZEROES (1u << 6)
#define FLAG_CAN_MULTI_CONN (1u << 8)

enum {
  OPT_EXPORT_NAME = 1, OPT_ABORT = 2, OPT_LIST = 3, OPT_INFO = 6, OPT_GO = 7,
};
#define REP_ACK 1u
#define REP_SERVER 2u
#define REP_INFO 3u
#define REP_ERR_UNSUP (0x80000000u + 1)
#define REP_ERR_INVALID (0x80000000u + 3)
#define INFO_EXPORT 0
#define INFO_BLOCK_SIZE 3

enum {
  CMD_READ = 0, CMD_WRITE = 1, CMD_DISC = 2, CMD_FLUSH = 3, CMD_TRIM = 4,
  CMD_WRITE_ZEROES = 6,
};
#define CMD_FLAG_FUA (1u << 0)

/* proto.md, "Error values" */
#define NBD_EIO 5
#define NBD_ENOMEM 12
#define NBD_EINVAL 22
#define NBD_ENOSPC 28

#define EXPORT_CONN_MAX 8
#define EXPORT_REQUEST_MAX (32u << 20)     /* also NBD_INFO_BLOCK_SIZE max */
#define EXPORT_PREFERRED_BLOCK 4096
#define EXPORT_OPTION_MAX 65536            /* longer option data: malformed */
#define EXPORT_OPTIONS_MAX 64              /* options in one handshake */
#define EXPORT_HANDSHAKE_SECONDS 30

struct request {                   /* proto.md, "Request message" */
  uint32_t magic;
  uint16_t flags;
  uint16_t type;
  uint64_t handle;
  uint64_t offset;
  uint32_t length;
} __attribute__((packed));
_Static_assert(sizeof(struct request) == 28, "NBD request is 28 bytes");

struct simple_reply {
  uint32_t magic;
  uint32_t error;
  uint64_t handle;
} __attribute__((packed));
_Static_assert(sizeof(struct simple_reply) == 16, "NBD reply is 16 bytes");

struct conn {
  struct nbd_export *e;
  pthread_t thread;
  int fd;                          /* -1: slot free */
  int done;                        /* the thread has ended: join it */
};

struct nbd_export {
  struct image_access *a;
  char *path;
  int lfd;                         /* listening socket */
  int stop_pipe[2];                /* written by stop: wakes the acceptor */
  pthread_t acceptor;

  pthread_mutex_t lock;
  struct conn conns[EXPORT_CONN_MAX];
  int stopping;
  int failed;                      /* an I/O error met a request */
  char errmsg[1024];
};

/* ---- socket I/O ---------------------------------------------------------- */

/* Exactly len bytes; -1 on EOF, error or the handshake timeout. */
static int recv_all(int fd, void *buf, size_t len)
{
  char *p = buf;

  while (len > 0) {
    ssize_t n = recv(fd, p, len, 0);

    if (n == -1 && errno == EINTR)
      continue;
    if (n <= 0)
      return -1;
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

static int send_all(int fd, const void *buf, size_t len)
{
  const char *p = buf;

  while (len > 0) {
    /* MSG_NOSIGNAL: a client gone away is an error, not SIGPIPE */
    ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

    if (n == -1 && errno == EINTR)
      continue;
    if (n <= 0)
      return -1;
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

static int discard(int fd, uint64_t len)
{
  char buf[4096];

  while (len > 0) {
    size_t n = len < sizeof buf ? (size_t)len : sizeof buf;

    if (recv_all(fd, buf, n) == -1)
      return -1;
    len -= n;
  }
  return 0;
}

static void record_failure(struct nbd_export *e, const char *what)
{
  pthread_mutex_lock(&e->lock);
  if (!e->failed) {
    e->failed = 1;
    snprintf(e->errmsg, sizeof e->errmsg, "%s: %s", what, ferry_errmsg());
  }
  pthread_mutex_unlock(&e->lock);
  log_error("NBD export %s: %s: %s", e->path, what, ferry_errmsg());
}

/* ---- handshake ----------------------------------------------------------- */

static int opt_reply(int fd, uint32_t opt, uint32_t type, const void *data,
                     uint32_t len)
{
  struct {
    uint64_t magic;
    uint32_t opt, type, len;
  } __attribute__((packed)) h = {
    htobe64(OPT_REPLY_MAGIC), htobe32(opt), htobe32(type), htobe32(len),
  };

  if (send_all(fd, &h, sizeof h) == -1)
    return -1;
  return len ? send_all(fd, data, len) : 0;
}

static uint16_t transmission_flags(void)
{
  return FLAG_HAS_FLAGS | FLAG_SEND_FLUSH | FLAG_SEND_FUA | FLAG_SEND_TRIM |
         FLAG_SEND_WRITE_ZEROES | FLAG_CAN_MULTI_CONN;
}

/* An error reply to an option: 1 (the client may go on), -1 when it
 * cannot be sent. */
static int opt_refuse(int fd, uint32_t opt, uint32_t type)
{
  return opt_reply(fd, opt, type, NULL, 0) == -1 ? -1 : 1;
}

/* NBD_OPT_INFO / NBD_OPT_GO (data already read): 1 to go on negotiating,
 * 2 to enter transmission (GO acknowledged), -1 to drop the client.
 * Any export name is this export: there is only one. */
static int opt_info(struct nbd_export *e, int fd, uint32_t opt,
                    const uint8_t *data, uint32_t len)
{
  uint32_t name_len;
  uint16_t nreq, i;
  int want_block = 0;
  uint8_t info[14];
  uint64_t size = image_access_size(e->a);

  if (len < 6)
    return opt_refuse(fd, opt, REP_ERR_INVALID);
  memcpy(&name_len, data, 4);
  name_len = be32toh(name_len);
  if (name_len > len - 6)
    return opt_refuse(fd, opt, REP_ERR_INVALID);
  memcpy(&nreq, data + 4 + name_len, 2);
  nreq = be16toh(nreq);
  if ((uint64_t)len != 6 + (uint64_t)name_len + 2 * (uint64_t)nreq)
    return opt_refuse(fd, opt, REP_ERR_INVALID);
  for (i = 0; i < nreq; i++) {
    uint16_t t;

    memcpy(&t, data + 6 + name_len + 2 * i, 2);
    if (be16toh(t) == INFO_BLOCK_SIZE)
      want_block = 1;
  }
  {
    uint16_t t = htobe16(INFO_EXPORT), f = htobe16(transmission_flags());
    uint64_t sz = htobe64(size);

    memcpy(info, &t, 2);
    memcpy(info + 2, &sz, 8);
    memcpy(info + 10, &f, 2);
    if (opt_reply(fd, opt, REP_INFO, info, 12) == -1)
      return -1;
  }
  if (want_block) {
    uint16_t t = htobe16(INFO_BLOCK_SIZE);
    uint32_t min = htobe32(1), pref = htobe32(EXPORT_PREFERRED_BLOCK),
             max = htobe32(EXPORT_REQUEST_MAX);

    memcpy(info, &t, 2);
    memcpy(info + 2, &min, 4);
    memcpy(info + 6, &pref, 4);
    memcpy(info + 10, &max, 4);
    if (opt_reply(fd, opt, REP_INFO, info, 14) == -1)
      return -1;
  }
  if (opt_reply(fd, opt, REP_ACK, NULL, 0) == -1)
    return -1;
  return opt == OPT_GO ? 2 : 1;
}

/* Fixed newstyle negotiation: 0 in transmission, -1 to close. */
static int handshake(struct nbd_export *e, int fd)
{
  struct {
    uint64_t magic, opt_magic;
    uint16_t flags;
  } __attribute__((packed)) hello = {
    htobe64(NBDMAGIC), htobe64(IHAVEOPT),
    htobe16(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES),
  };
  uint32_t cflags;
  int no_zeroes, n;

  if (send_all(fd, &hello, sizeof hello) == -1 ||
      recv_all(fd, &cflags, 4) == -1)
    return -1;
  cflags = be32toh(cflags);
  /* a client without fixed newstyle, or with flags we never offered */
  if (!(cflags & FLAG_C_FIXED_NEWSTYLE) ||
      (cflags & ~(FLAG_C_FIXED_NEWSTYLE | FLAG_C_NO_ZEROES)))
    return -1;
  no_zeroes = (cflags & FLAG_C_NO_ZEROES) != 0;

  for (n = 0; n < EXPORT_OPTIONS_MAX; n++) {
    struct {
      uint64_t magic;
      uint32_t opt, len;
    } __attribute__((packed)) h;
    uint8_t *data = NULL;
    uint32_t opt, len;
    int r = 1;

    if (recv_all(fd, &h, sizeof h) == -1 || be64toh(h.magic) != IHAVEOPT)
      return -1;
    opt = be32toh(h.opt);
    len = be32toh(h.len);
    if (len > EXPORT_OPTION_MAX)
      return -1;
    if (len && ((data = malloc(len)) == NULL || recv_all(fd, data, len)
                                                  == -1)) {
      free(data);
      return -1;
    }
    switch (opt) {
    case OPT_EXPORT_NAME: {
      /* no option reply: size, flags, maybe 124 zero bytes */
      uint8_t rep[10 + 124] = { 0 };
      uint64_t sz = htobe64(image_access_size(e->a));
      uint16_t f = htobe16(transmission_flags());

      memcpy(rep, &sz, 8);
      memcpy(rep + 8, &f, 2);
      r = send_all(fd, rep, no_zeroes ? 10 : sizeof rep) == -1 ? -1 : 2;
      break;
    }
    case OPT_ABORT:
      opt_reply(fd, opt, REP_ACK, NULL, 0);
      r = -1;
      break;
    case OPT_LIST: {
      uint32_t empty = 0;       /* one export, named "" */

      if (len != 0)
        r = opt_refuse(fd, opt, REP_ERR_INVALID);
      else if (opt_reply(fd, opt, REP_SERVER, &empty, 4) == -1 ||
               opt_reply(fd, opt, REP_ACK, NULL, 0) == -1)
        r = -1;
      break;
    }
    case OPT_INFO:
    case OPT_GO:
      r = opt_info(e, fd, opt, data, len);
      break;
    default:
      /* STRUCTURED_REPLY, SET_META_CONTEXT, STARTTLS, ...: qemu then
       * uses simple replies and no block status */
      r = opt_refuse(fd, opt, REP_ERR_UNSUP);
      break;
    }
    free(data);
    if (r != 1)
      return r == 2 ? 0 : -1;
  }
  return -1;                    /* options without end: not a client */
}

/* ---- transmission -------------------------------------------------------- */

static int reply(int fd, uint64_t handle, uint32_t error, const void *data,
                 size_t len)
{
  struct simple_reply r = {
    htobe32(SIMPLE_REPLY_MAGIC), htobe32(error), handle,   /* handle: as is */
  };

  if (send_all(fd, &r, sizeof r) == -1)
    return -1;
  return error == 0 && len ? send_all(fd, data, len) : 0;
}

static const char *cmd_name(uint16_t type)
{
  switch (type) {
  case CMD_READ: return "read";
  case CMD_WRITE: return "write";
  case CMD_FLUSH: return "flush";
  case CMD_TRIM: return "trim";
  case CMD_WRITE_ZEROES: return "write-zeroes";
  }
  return "request";
}

/* Serve requests until DISC, EOF or a protocol error; replies in order. */
static void transmission(struct nbd_export *e, int fd)
{
  struct image_access *a = e->a;
  uint64_t size = image_access_size(a);
  void *buf = NULL;
  size_t cap = 0;

  for (;;) {
    struct request rq;
    uint64_t off;
    uint32_t len, err = 0;
    uint16_t type, flags;
    int has_payload, r = 0;
    char what[128];

    if (recv_all(fd, &rq, sizeof rq) == -1 ||
        be32toh(rq.magic) != REQUEST_MAGIC)
      break;
    type = be16toh(rq.type);
    flags = be16toh(rq.flags);
    off = be64toh(rq.offset);
    len = be32toh(rq.length);
    has_payload = type == CMD_WRITE;
    if (type == CMD_DISC)
      break;
    snprintf(what, sizeof what, "NBD %s of %" PRIu32 " bytes at offset %"
             PRIu64, cmd_name(type), len, off);

    if (type != CMD_READ && type != CMD_WRITE && type != CMD_FLUSH &&
        type != CMD_TRIM && type != CMD_WRITE_ZEROES) {
      err = NBD_EINVAL;
    } else if ((type == CMD_READ || type == CMD_WRITE) &&
               len > EXPORT_REQUEST_MAX) {
      err = NBD_EINVAL;
    } else if (type != CMD_FLUSH && (off > size || len > size - off)) {
      err = type == CMD_READ ? NBD_EINVAL : NBD_ENOSPC;
    }
    if (err) {
      /* the payload is read all the same: the stream stays in step */
      if (has_payload && discard(fd, len) == -1)
        break;
      if (reply(fd, rq.handle, err, NULL, 0) == -1)
        break;
      continue;
    }
    if ((type == CMD_READ || type == CMD_WRITE) && len > cap) {
      void *p = realloc(buf, len);

      if (p == NULL) {
        if (has_payload && discard(fd, len) == -1)
          break;
        if (reply(fd, rq.handle, NBD_ENOMEM, NULL, 0) == -1)
          break;
        continue;
      }
      buf = p;
      cap = len;
    }
    if (has_payload && recv_all(fd, buf, len) == -1)
      break;
    switch (type) {
    case CMD_READ:
      r = image_access_pread(a, buf, len, off);
      break;
    case CMD_WRITE:
      r = image_access_pwrite(a, buf, len, off);
      break;
    case CMD_FLUSH:
      r = image_access_flush(a);
      break;
    case CMD_TRIM:
    case CMD_WRITE_ZEROES:
      r = image_access_zero(a, len, off);
      break;
    }
    if (r == 0 && (flags & CMD_FLAG_FUA) && type != CMD_READ &&
        type != CMD_FLUSH)
      r = image_access_flush(a);
    if (r == -1) {
      record_failure(e, what);
      err = NBD_EIO;
    }
    if (reply(fd, rq.handle, err, buf, type == CMD_READ ? len : 0) == -1)
      break;
  }
  free(buf);
}

static void *conn_main(void *arg)
{
  struct conn *c = arg;
  struct nbd_export *e = c->e;
  struct timeval none = { 0, 0 };

  if (handshake(e, c->fd) == 0) {
    /* transmission may idle for long (qemu waits on the guest) */
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &none, sizeof none);
    transmission(e, c->fd);
  } else {
    log_debug("NBD export %s: a client's handshake failed: closed",
              e->path);
  }
  pthread_mutex_lock(&e->lock);
  close(c->fd);
  c->fd = -1;
  c->done = 1;
  pthread_mutex_unlock(&e->lock);
  return NULL;
}

/* Join connection threads that have ended (lock held). */
static void reap_locked(struct nbd_export *e)
{
  unsigned i;

  for (i = 0; i < EXPORT_CONN_MAX; i++)
    if (e->conns[i].done) {
      pthread_join(e->conns[i].thread, NULL);
      e->conns[i].done = 0;
    }
}

static void *accept_main(void *arg)
{
  struct nbd_export *e = arg;
  struct pollfd p[2] = {
    { .fd = e->lfd, .events = POLLIN },
    { .fd = e->stop_pipe[0], .events = POLLIN },
  };

  for (;;) {
    struct timeval hs = { EXPORT_HANDSHAKE_SECONDS, 0 };
    struct conn *c = NULL;
    unsigned i;
    int fd;

    if (poll(p, 2, -1) == -1) {
      if (errno == EINTR)
        continue;
      log_error("NBD export %s: poll: %m", e->path);
      break;
    }
    if (p[1].revents)
      break;
    fd = accept4(e->lfd, NULL, NULL, SOCK_CLOEXEC);
    if (fd == -1)
      continue;                 /* the client left already, EMFILE, ... */
    /* a client that never finishes its handshake is dropped */
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &hs, sizeof hs);
    pthread_mutex_lock(&e->lock);
    reap_locked(e);
    for (i = 0; i < EXPORT_CONN_MAX && c == NULL; i++)
      if (e->conns[i].fd == -1 && !e->conns[i].done)
        c = &e->conns[i];
    if (c == NULL || e->stopping) {
      pthread_mutex_unlock(&e->lock);
      log_warn("NBD export %s: %d clients already: one more refused",
               e->path, EXPORT_CONN_MAX);
      close(fd);
      continue;
    }
    c->e = e;
    c->fd = fd;
    if ((errno = pthread_create(&c->thread, NULL, conn_main, c)) != 0) {
      log_error("NBD export %s: cannot start a connection thread: %m",
                e->path);
      close(fd);
      c->fd = -1;
    }
    pthread_mutex_unlock(&e->lock);
  }
  return NULL;
}

struct nbd_export *nbd_export_start(const char *socket_path,
                                    struct image_access *a)
{
  struct nbd_export *e = calloc(1, sizeof *e);
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  unsigned i;

  if (e == NULL) {
    ferry_error("out of memory");
    return NULL;
  }
  e->a = a;
  e->lfd = -1;
  e->stop_pipe[0] = e->stop_pipe[1] = -1;
  pthread_mutex_init(&e->lock, NULL);
  for (i = 0; i < EXPORT_CONN_MAX; i++)
    e->conns[i].fd = -1;
  if (strlen(socket_path) >= sizeof sa.sun_path) {
    ferry_error("NBD socket path %s is longer than %zu bytes: use a "
                "shorter directory", socket_path, sizeof sa.sun_path - 1);
    goto fail;
  }
  memcpy(sa.sun_path, socket_path, strlen(socket_path) + 1);
  if ((e->path = strdup(socket_path)) == NULL) {
    ferry_error("out of memory");
    goto fail;
  }
  /* close-on-exec everywhere: a qemu the caller forks holds none of it */
  e->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (e->lfd == -1 || pipe2(e->stop_pipe, O_CLOEXEC) == -1) {
    ferry_error("NBD export: cannot create a socket: %m");
    goto fail;
  }
  /* Linux gives the bound socket file the socket's own mode (less the
   * umask): 0600 from the start, not after a window */
  if (fchmod(e->lfd, 0600) == -1 ||
      bind(e->lfd, (struct sockaddr *)&sa, sizeof sa) == -1) {
    ferry_error("NBD export: cannot bind %s: %m%s", socket_path,
                errno == EADDRINUSE ? " (remove the stale socket, or choose "
                                      "another path)" : "");
    goto fail;
  }
  if (chmod(socket_path, 0600) == -1 || listen(e->lfd, 16) == -1) {
    ferry_error("NBD export: cannot listen on %s: %m", socket_path);
    unlink(socket_path);
    goto fail;
  }
  if ((errno = pthread_create(&e->acceptor, NULL, accept_main, e)) != 0) {
    ferry_error("NBD export: cannot start a thread: %m");
    unlink(socket_path);
    goto fail;
  }
  return e;
fail:
  if (e->lfd != -1)
    close(e->lfd);
  if (e->stop_pipe[0] != -1) {
    close(e->stop_pipe[0]);
    close(e->stop_pipe[1]);
  }
  pthread_mutex_destroy(&e->lock);
  free(e->path);
  free(e);
  return NULL;
}

int nbd_export_stop(struct nbd_export *e)
{
  unsigned i;
  int r;

  if (e == NULL)
    return 0;
  /* the acceptor first: no connection starts after this */
  if (write(e->stop_pipe[1], "x", 1) != 1)
    log_warn("NBD export %s: cannot signal the acceptor: %m", e->path);
  pthread_join(e->acceptor, NULL);
  close(e->lfd);
  unlink(e->path);
  /* then every connection: shutdown wakes a thread blocked on the socket;
   * one inside an image call finishes that request first */
  pthread_mutex_lock(&e->lock);
  e->stopping = 1;
  for (i = 0; i < EXPORT_CONN_MAX; i++)
    if (e->conns[i].fd != -1)
      shutdown(e->conns[i].fd, SHUT_RDWR);
  pthread_mutex_unlock(&e->lock);
  for (i = 0; i < EXPORT_CONN_MAX; i++) {
    pthread_mutex_lock(&e->lock);
    if (e->conns[i].fd == -1 && !e->conns[i].done) {
      pthread_mutex_unlock(&e->lock);
      continue;
    }
    pthread_mutex_unlock(&e->lock);
    pthread_join(e->conns[i].thread, NULL);
  }
  close(e->stop_pipe[0]);
  close(e->stop_pipe[1]);
  r = e->failed ? -1 : 0;
  if (r == -1)
    ferry_error("%s", e->errmsg);
  pthread_mutex_destroy(&e->lock);
  free(e->path);
  free(e);
  return r;
}
