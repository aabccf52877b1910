/* child.c - a server task's child process (child.h). */
#include "child.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tasks.h"
#include "util/error.h"

/* How often the parent looks whether the child exited, when its pipes
 * are quiet or held open by a grandchild. */
#define CHILD_POLL_MS 200

struct sink {
  char *buf;
  size_t size, len;
  int tail;                     /* keep the last bytes, not the first */
};

static void sink_add(struct sink *s, const char *p, size_t n)
{
  size_t room = s->size - 1;

  if (!s->tail) {
    if (n > room - s->len)
      n = room - s->len;
    memcpy(s->buf + s->len, p, n);
    s->len += n;
    return;
  }
  if (n >= room) {
    memcpy(s->buf, p + n - room, room);
    s->len = room;
    return;
  }
  if (s->len + n > room) {
    size_t drop = s->len + n - room;

    memmove(s->buf, s->buf + drop, s->len - drop);
    s->len -= drop;
  }
  memcpy(s->buf + s->len, p, n);
  s->len += n;
}

/* Read what fd has: 1 data, 0 end of file (fd closed and set -1), -1
 * nothing now. */
static int drain(int *fd, struct sink *s)
{
  char buf[4096];
  ssize_t n = read(*fd, buf, sizeof buf);

  if (n > 0) {
    sink_add(s, buf, (size_t)n);
    return 1;
  }
  if (n == -1 && (errno == EINTR || errno == EAGAIN))
    return -1;
  close(*fd);
  *fd = -1;
  return 0;
}

static void exec_child(char *const argv[], pid_t parent, int out, int err)
{
  sigset_t none;
  int null = open("/dev/null", O_RDONLY | O_CLOEXEC);

  /* the server blocks SIGTERM and ignores SIGPIPE; a child must not */
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  signal(SIGPIPE, SIG_DFL);
  setpgid(0, 0);
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (getppid() != parent)
    _exit(127);                 /* the server died before prctl */
  if (null >= 0)
    dup2(null, STDIN_FILENO);
  dup2(out, STDOUT_FILENO);
  dup2(err, STDERR_FILENO);
  execvp(argv[0], argv);
  _exit(127);
}

int child_run(struct task_ctx *t, char *const argv[], char *out,
              size_t out_size, char *err, size_t err_size)
{
  struct sink so = { out, out_size, 0, 0 }, se = { err, err_size, 0, 1 };
  int outp[2], errp[2], fds[2], status = 0;
  pid_t parent = getpid(), pid;

  if (pipe2(outp, O_CLOEXEC) == -1) {
    ferry_error("cannot create a pipe: %m");
    return -1;
  }
  if (pipe2(errp, O_CLOEXEC) == -1) {
    ferry_error("cannot create a pipe: %m");
    close(outp[0]);
    close(outp[1]);
    return -1;
  }
  pid = fork();
  if (pid == 0)
    exec_child(argv, parent, outp[1], errp[1]);
  close(outp[1]);
  close(errp[1]);
  if (pid == -1) {
    ferry_error("cannot start %s: %m", argv[0]);
    close(outp[0]);
    close(errp[0]);
    return -1;
  }
  setpgid(pid, pid);            /* as the child does: no race either way */
  task_ctx_set_child(t, pid);
  fds[0] = outp[0];
  fds[1] = errp[0];
  while (fds[0] >= 0 || fds[1] >= 0) {
    struct pollfd pfd[2] = { { fds[0], POLLIN, 0 }, { fds[1], POLLIN, 0 } };
    siginfo_t si = { .si_pid = 0 };
    int k;

    if (poll(pfd, 2, CHILD_POLL_MS) == -1 && errno != EINTR) {
      ferry_error("poll: %m");
      break;
    }
    for (k = 0; k < 2; k++)
      if (fds[k] >= 0 && (pfd[k].revents & (POLLIN | POLLHUP | POLLERR)))
        drain(&fds[k], k == 0 ? &so : &se);
    /* exited (not yet reaped): take what it wrote and stop reading, for a
     * grandchild may hold the pipes open */
    if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
        si.si_pid == pid) {
      for (k = 0; k < 2; k++) {
        if (fds[k] >= 0)
          fcntl(fds[k], F_SETFL, O_NONBLOCK);
        while (fds[k] >= 0 && drain(&fds[k], k == 0 ? &so : &se) == 1)
          ;
      }
      break;
    }
  }
  for (int k = 0; k < 2; k++)
    if (fds[k] >= 0)
      close(fds[k]);
  task_ctx_set_child(t, -1);    /* before the reap frees its pid */
  while (waitpid(pid, &status, 0) == -1 && errno == EINTR)
    ;
  out[so.len] = '\0';
  while (se.len > 0 && (err[se.len - 1] == '\n' || err[se.len - 1] == ' '))
    se.len--;
  err[se.len] = '\0';
  return status;
}
