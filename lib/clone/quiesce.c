#include "clone/quiesce.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/error.h"
#include "util/log.h"
#include "util/vector.h"

DEFINE_VECTOR_TYPE(string_vector, char *);

#define QUIESCE_MAX 64

struct quiesce {
  int fds[QUIESCE_MAX];
  char *names[QUIESCE_MAX];
  size_t n, frozen;
  int pipe_w;                    /* closing it tells the watchdog to go */
  pid_t watchdog;
};

/* The watchdog: waits until the parent closes the pipe (on purpose or by
 * dying), thaws everything, exits.  Only async-signal-safe calls: it runs
 * after fork() in a threaded process. */
static void watchdog(int pipe_r, const int *fds, size_t n)
{
  char c;
  size_t i;

  signal(SIGINT, SIG_IGN);
  signal(SIGTERM, SIG_IGN);
  signal(SIGHUP, SIG_IGN);
  while (read(pipe_r, &c, 1) == -1 && errno == EINTR)
    ;
  for (i = n; i-- > 0;)
    ioctl(fds[i], FITHAW, 0);   /* EINVAL: not frozen, fine */
  _exit(0);
}

static void thaw_frozen(struct quiesce *q)
{
  while (q->frozen > 0) {
    q->frozen--;
    if (ioctl(q->fds[q->frozen], FITHAW, 0) == -1 && errno != EINVAL)
      log_warn("thaw %s: %m", q->names[q->frozen]);
  }
}

static void free_q(struct quiesce *q)
{
  size_t i;

  for (i = 0; i < q->n; i++) {
    close(q->fds[i]);
    free(q->names[i]);
  }
  if (q->pipe_w >= 0)
    close(q->pipe_w);
  if (q->watchdog > 0)
    while (waitpid(q->watchdog, NULL, 0) == -1 && errno == EINTR)
      ;
  free(q);
}

struct quiesce *quiesce_freeze(char *const *mounts, size_t n)
{
  struct quiesce *q;
  int p[2];
  size_t i;

  if (n > QUIESCE_MAX) {
    ferry_error("cannot freeze more than %d filesystems", QUIESCE_MAX);
    return NULL;
  }
  q = calloc(1, sizeof *q);
  if (q == NULL) {
    ferry_error("out of memory");
    return NULL;
  }
  q->pipe_w = -1;
  for (i = 0; i < n; i++) {
    q->fds[i] = open(mounts[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (q->fds[i] == -1) {
      ferry_error("cannot open %s to freeze it: %m", mounts[i]);
      free_q(q);
      return NULL;
    }
    q->names[i] = strdup(mounts[i]);
    q->n = i + 1;
  }
  if (pipe2(p, O_CLOEXEC) == -1) {
    ferry_error("cannot create a pipe: %m");
    free_q(q);
    return NULL;
  }
  q->watchdog = fork();
  if (q->watchdog == -1) {
    ferry_error("cannot start the thaw watchdog: %m");
    close(p[0]);
    close(p[1]);
    free_q(q);
    return NULL;
  }
  if (q->watchdog == 0) {
    close(p[1]);
    watchdog(p[0], q->fds, q->n);
  }
  close(p[0]);
  q->pipe_w = p[1];
  for (i = 0; i < n; i++) {
    if (ioctl(q->fds[i], FIFREEZE, 0) == -1) {
      int err = errno;

      ferry_error("cannot freeze %s: %s%s", mounts[i], strerror(err),
                  err == EOPNOTSUPP ? " (its filesystem cannot be frozen: "
                  "stop the services writing to it and sync without "
                  "freezing)" : err == EBUSY ? " (already frozen)" : "");
      thaw_frozen(q);
      free_q(q);
      return NULL;
    }
    q->frozen = i + 1;
    log_info("froze %s", mounts[i]);
  }
  return q;
}

int quiesce_thaw(struct quiesce *q)
{
  size_t i;
  int r = 0;

  if (q == NULL)
    return 0;
  for (i = q->frozen; i-- > 0;) {
    if (ioctl(q->fds[i], FITHAW, 0) == -1 && errno != EINVAL) {
      ferry_error("cannot thaw %s: %m", q->names[i]);
      r = -1;
    } else {
      log_info("thawed %s", q->names[i]);
    }
  }
  q->frozen = 0;
  free_q(q);                   /* closes the pipe: the watchdog thaws too */
  return r;
}

/* major:minor of /sys/class/block/NAME/dev */
static int sys_devno(const char *name, dev_t *d)
{
  char path[300];
  unsigned ma, mi;
  FILE *fp;
  int ok;

  snprintf(path, sizeof path, "/sys/class/block/%s/dev", name);
  fp = fopen(path, "re");
  if (fp == NULL)
    return -1;
  ok = fscanf(fp, "%u:%u", &ma, &mi) == 2;
  fclose(fp);
  if (!ok)
    return -1;
  *d = makedev(ma, mi);
  return 0;
}

/* Is block device d the disk, one of its partitions, or a dm device whose
 * slaves are among those? */
static int belongs(dev_t d, dev_t disk, const char *disk_name)
{
  char path[300], name[256];
  struct dirent *de;
  DIR *dir;
  dev_t x;
  int yes = 0;

  if (d == disk)
    return 1;
  snprintf(path, sizeof path, "/sys/dev/block/%u:%u", major(d), minor(d));
  {
    char link[512];
    ssize_t n = readlink(path, link, sizeof link - 1);
    const char *base;

    if (n <= 0)
      return 0;
    link[n] = '\0';
    /* a partition's sysfs path ends in .../DISK/PART */
    base = strrchr(link, '/');
    if (base && base > link) {
      const char *parent = base - 1;

      while (parent > link && *parent != '/')
        parent--;
      if (strncmp(parent + 1, disk_name, strlen(disk_name)) == 0 &&
          parent[1 + strlen(disk_name)] == '/')
        return 1;
    }
  }
  snprintf(path, sizeof path, "/sys/dev/block/%u:%u/slaves", major(d),
           minor(d));
  dir = opendir(path);
  if (dir == NULL)
    return 0;
  while (!yes && (de = readdir(dir)) != NULL) {
    if (de->d_name[0] == '.')
      continue;
    snprintf(name, sizeof name, "%s", de->d_name);
    if (sys_devno(name, &x) == 0 && x != d && belongs(x, disk, disk_name))
      yes = 1;
  }
  closedir(dir);
  return yes;
}

int quiesce_find_mounts(const char *dev, char ***mounts, size_t *n)
{
  char line[4096], disk_name[256];
  const char *base = strrchr(dev, '/');
  dev_t seen[QUIESCE_MAX];
  size_t nseen = 0, k;
  string_vector found = empty_vector;
  struct stat st;
  FILE *fp;

  *mounts = NULL;
  *n = 0;
  if (stat(dev, &st) == -1 || !S_ISBLK(st.st_mode)) {
    ferry_error("%s is not a block device: name the mountpoints to freeze "
                "with --freeze", dev);
    return -1;
  }
  snprintf(disk_name, sizeof disk_name, "%s", base ? base + 1 : dev);
  fp = fopen("/proc/self/mountinfo", "re");
  if (fp == NULL) {
    ferry_error("cannot read /proc/self/mountinfo: %m");
    return -1;
  }
  while (fgets(line, sizeof line, fp)) {
    unsigned ma, mi;
    char mp[2048], *dst, *src, *copy;

    /* id parent major:minor root mountpoint ... (proc(5)) */
    if (sscanf(line, "%*d %*d %u:%u %*s %2047s", &ma, &mi, mp) != 3)
      continue;
    if (!belongs(makedev(ma, mi), st.st_rdev, disk_name))
      continue;
    /* FIFREEZE acts on the filesystem, not the mount: a second mount of
     * it (a bind mount; the many a systemd sandbox such as
     * ferry-agent.service's ProtectSystem= makes) would fail with EBUSY */
    for (k = 0; k < nseen && seen[k] != makedev(ma, mi); k++)
      ;
    if (k < nseen)
      continue;
    if (nseen < QUIESCE_MAX)
      seen[nseen++] = makedev(ma, mi);
    /* mountinfo escapes spaces and such as \\ooo */
    for (src = dst = mp; *src; src++, dst++) {
      if (src[0] == '\\' && src[1] >= '0' && src[1] <= '3' && src[2] &&
          src[3]) {
        *dst = (char)((src[1] - '0') * 64 + (src[2] - '0') * 8 +
                      (src[3] - '0'));
        src += 3;
      } else {
        *dst = *src;
      }
    }
    *dst = '\0';
    copy = strdup(mp);
    if (copy == NULL || string_vector_append(&found, copy) == -1) {
      free(copy);
      for (k = 0; k < found.len; k++)
        free(found.ptr[k]);
      string_vector_reset(&found);
      fclose(fp);
      ferry_error("out of memory");
      return -1;
    }
  }
  fclose(fp);
  *mounts = found.ptr;
  *n = found.len;
  return 0;
}
