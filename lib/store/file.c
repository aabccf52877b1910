/* store/file.c - file:// stores: a directory, the embedded default.
 *
 * file://PATH roots the store at PATH (file:///abs/path, or a relative
 * path).  Objects are files; a put writes a temporary ".tmp-" file in the
 * same directory, syncs its data, then renames it into place, so an object
 * that exists is whole even after a crash.  flush() syncs the filesystem so
 * a manifest is never durable before the chunks it names. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/error.h"
#include "store/store.h"

#define TMP_PREFIX ".tmp-"

extern const struct store_ops store_file_ops;

struct store_file {
  struct store store;
  char *root;
};

struct store_file_writer {
  struct store_writer w;
  int fd;
  char *tmp;
  char *final;
  uint64_t off;
};

static atomic_uint tmp_counter;

static struct store_file *file_of(struct store *s)
{
  return (struct store_file *)s;
}

/* What to tell a user for the errno of a failed call on path. */
static const char *file_hint(int err)
{
  switch (err) {
  case EACCES:
  case EPERM:
  case EROFS:
    return ": check that this user may write the store directory";
  case ENOSPC:
  case EDQUOT:
    return ": the store's filesystem is full; free space or use another "
           "store";
  case ENOTDIR:
    return ": part of the store path is a file, not a directory";
  default:
    return "";
  }
}

/* store.c checks every key, but a path is built here: refuse once more
 * anything that would resolve outside the root ("..", "/abs"). */
static int key_escapes(const char *key)
{
  const char *seg;

  if (key[0] == '/')
    return 1;
  for (seg = key; seg; seg = strchr(seg, '/')) {
    if (*seg == '/')
      seg++;
    if (seg[0] == '.' && seg[1] == '.' && (seg[2] == '/' || seg[2] == '\0'))
      return 1;
  }
  return 0;
}

static char *file_path(struct store_file *fs, const char *key)
{
  char *p;

  if (key_escapes(key)) {
    ferry_error("key '%.64s' would leave the store %s", key, fs->store.url);
    errno = EINVAL;
    return NULL;
  }
  if (asprintf(&p, "%s/%s", fs->root, key) == -1) {
    ferry_error("out of memory");
    return NULL;
  }
  return p;
}

/* mkdir -p of path's parent directories. */
static int make_parents(const char *path)
{
  char buf[PATH_MAX];
  char *p;

  if (strlen(path) >= sizeof buf) {
    ferry_error("store path too long: %.64s...", path);
    return -1;
  }
  memcpy(buf, path, strlen(path) + 1);
  for (p = buf + 1; (p = strchr(p, '/')) != NULL; p++) {
    *p = '\0';
    if (mkdir(buf, 0755) == -1 && errno != EEXIST) {
      int err = errno;

      ferry_error("cannot create store directory %s: %s%s", buf,
                  strerror(err), file_hint(err));
      errno = err;
      return -1;
    }
    *p = '/';
  }
  return 0;
}

static struct store *file_open(const char *url)
{
  const char *path = url + strlen("file://");
  struct store_file *fs;
  size_t n;

  if (*path == '\0') {
    ferry_error("store URL '%s' has no path: use file:///DIR", url);
    return NULL;
  }
  fs = calloc(1, sizeof *fs);
  if (fs == NULL)
    goto oom;
  fs->store.ops = &store_file_ops;
  fs->store.url = strdup(url);
  fs->root = strdup(path);
  if (fs->store.url == NULL || fs->root == NULL)
    goto oom;
  n = strlen(fs->root);
  while (n > 1 && fs->root[n - 1] == '/')
    fs->root[--n] = '\0';
  n = strlen(fs->store.url);
  while (n > 8 && fs->store.url[n - 1] == '/')
    fs->store.url[--n] = '\0';
  return &fs->store;
oom:
  ferry_error("out of memory");
  store_file_ops.close(fs ? &fs->store : NULL);
  return NULL;
}

static void file_close(struct store *s)
{
  struct store_file *fs = file_of(s);

  if (fs == NULL)
    return;
  free(fs->root);
  free(fs->store.url);
  free(fs);
}

/* Open a new temporary file beside final. */
static int tmp_create(const char *final, char **tmpp)
{
  const char *slash = strrchr(final, '/');
  char *tmp;
  int fd, err;

  if (make_parents(final) == -1)
    return -1;
  if (asprintf(&tmp, "%.*s/" TMP_PREFIX "%ld-%u-%s",
               (int)(slash - final), final, (long)getpid(),
               atomic_fetch_add(&tmp_counter, 1), slash + 1) == -1) {
    ferry_error("out of memory");
    return -1;
  }
  fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd == -1) {
    err = errno;
    ferry_error("cannot create %s: %s%s", tmp, strerror(err), file_hint(err));
    free(tmp);
    errno = err;
    return -1;
  }
  *tmpp = tmp;
  return fd;
}

static int write_all(int fd, const void *buf, size_t len, const char *path)
{
  const char *p = buf;

  while (len > 0) {
    ssize_t r = write(fd, p, len);

    if (r == -1) {
      int err = errno;

      if (err == EINTR)
        continue;
      ferry_error("write %s: %s%s", path, strerror(err), file_hint(err));
      errno = err;
      return -1;
    }
    p += r;
    len -= (size_t)r;
  }
  return 0;
}

/* Sync tmp's data and rename it over final. */
static int tmp_commit(int fd, const char *tmp, const char *final)
{
  int err;

  if (fdatasync(fd) == -1) {
    err = errno;
    ferry_error("sync %s: %s%s", tmp, strerror(err), file_hint(err));
    goto fail;
  }
  if (close(fd) == -1) {
    err = errno;
    fd = -1;
    ferry_error("close %s: %s%s", tmp, strerror(err), file_hint(err));
    goto fail;
  }
  fd = -1;
  if (rename(tmp, final) == -1) {
    err = errno;
    ferry_error("rename %s to %s: %s%s", tmp, final, strerror(err),
                file_hint(err));
    goto fail;
  }
  return 0;
fail:
  if (fd >= 0)
    close(fd);
  unlink(tmp);
  errno = err;
  return -1;
}

static int file_put(struct store *s, const char *key, const void *buf,
                    size_t len)
{
  CLEANUP_FREE char *final = file_path(file_of(s), key);
  CLEANUP_FREE char *tmp = NULL;
  int fd;

  if (final == NULL)
    return -1;
  fd = tmp_create(final, &tmp);
  if (fd == -1)
    return -1;
  if (write_all(fd, buf, len, tmp) == -1) {
    close(fd);
    unlink(tmp);
    return -1;
  }
  return tmp_commit(fd, tmp, final);
}

static int file_get(struct store *s, const char *key, uint64_t off, void *buf,
                    size_t len, size_t *got)
{
  CLEANUP_FREE char *path = file_path(file_of(s), key);
  CLEANUP_CLOSE int fd = -1;
  size_t done = 0;
  int err;

  if (path == NULL)
    return -1;
  fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd == -1) {
    err = errno;
    if (err == ENOENT)
      ferry_error("%s not found in %s", key, s->url);
    else
      ferry_error("cannot open %s: %s", path, strerror(err));
    errno = err;
    return -1;
  }
  while (done < len) {
    ssize_t r = pread(fd, (char *)buf + done, len - done,
                      (off_t)(off + done));

    if (r == -1) {
      err = errno;
      if (err == EINTR)
        continue;
      ferry_error("read %s: %s", path, strerror(err));
      errno = err;
      return -1;
    }
    if (r == 0)
      break;
    done += (size_t)r;
  }
  *got = done;
  return 0;
}

static int file_head(struct store *s, const char *key, uint64_t *size)
{
  CLEANUP_FREE char *path = file_path(file_of(s), key);
  struct stat st;

  if (path == NULL)
    return -1;
  if (stat(path, &st) == -1) {
    int err = errno;

    if (err == ENOENT || err == ENOTDIR)
      return 0;
    ferry_error("cannot stat %s: %s%s", path, strerror(err), file_hint(err));
    errno = err;
    return -1;
  }
  if (!S_ISREG(st.st_mode)) {
    ferry_error("%s is not a regular file: the store holds something ferry "
                "did not write", path);
    return -1;
  }
  *size = (uint64_t)st.st_size;
  return 1;
}

/* Walk dir (the store-relative directory rel) calling cb for each regular
 * file whose key starts with prefix. */
static int list_dir(struct store_file *fs, const char *rel, const char *prefix,
                    store_list_cb cb, void *opaque)
{
  CLEANUP_FREE char *path = NULL;
  struct dirent *de;
  DIR *d;
  int r = 0;

  if (asprintf(&path, "%s%s%s", fs->root, *rel ? "/" : "", rel) == -1) {
    ferry_error("out of memory");
    return -1;
  }
  d = opendir(path);
  if (d == NULL) {
    int err = errno;

    if (err == ENOENT || err == ENOTDIR)
      return 0;
    ferry_error("cannot list %s: %s%s", path, strerror(err), file_hint(err));
    return -1;
  }
  while (r == 0 && (errno = 0, de = readdir(d)) != NULL) {
    CLEANUP_FREE char *key = NULL;
    struct stat st;
    size_t cmp;

    if (de->d_name[0] == '.')       /* ".", "..", temporaries */
      continue;
    if (asprintf(&key, "%s%s%s", rel, *rel ? "/" : "", de->d_name) == -1) {
      ferry_error("out of memory");
      r = -1;
      break;
    }
    /* prune subtrees that cannot match */
    cmp = strlen(key) < strlen(prefix) ? strlen(key) : strlen(prefix);
    if (strncmp(key, prefix, cmp) != 0)
      continue;
    if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == -1)
      continue;                     /* removed meanwhile */
    if (S_ISDIR(st.st_mode))
      r = list_dir(fs, key, prefix, cb, opaque);
    else if (S_ISREG(st.st_mode) && strncmp(key, prefix, strlen(prefix)) == 0)
      r = cb(opaque, key, (uint64_t)st.st_size);
  }
  if (r == 0 && errno != 0) {
    ferry_error("cannot list %s: %m", path);
    r = -1;
  }
  closedir(d);
  return r;
}

static int file_list(struct store *s, const char *prefix, store_list_cb cb,
                     void *opaque)
{
  return list_dir(file_of(s), "", prefix, cb, opaque);
}

static int file_del(struct store *s, const char *key)
{
  CLEANUP_FREE char *path = file_path(file_of(s), key);

  if (path == NULL)
    return -1;
  if (unlink(path) == -1 && errno != ENOENT) {
    int err = errno;

    ferry_error("cannot remove %s: %s%s", path, strerror(err),
                file_hint(err));
    errno = err;
    return -1;
  }
  return 0;
}

static int file_flush(struct store *s)
{
  struct store_file *fs = file_of(s);
  CLEANUP_CLOSE int fd = open(fs->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

  if (fd == -1 && errno == ENOENT)
    return 0;                       /* nothing written yet */
  if (fd == -1 || syncfs(fd) == -1) {
    ferry_error("cannot sync store %s: %m", fs->root);
    return -1;
  }
  return 0;
}

static struct store_writer *file_writer_open(struct store *s, const char *key,
                                             const struct store_writer_opts *o)
{
  struct store_file_writer *fw = calloc(1, sizeof *fw);

  (void)o;
  if (fw == NULL) {
    ferry_error("out of memory");
    return NULL;
  }
  fw->w.store = s;
  fw->fd = -1;
  fw->final = file_path(file_of(s), key);
  fw->w.key = strdup(key);
  if (fw->final == NULL || fw->w.key == NULL)
    goto fail;
  fw->fd = tmp_create(fw->final, &fw->tmp);
  if (fw->fd == -1)
    goto fail;
  return &fw->w;
fail:
  free(fw->final);
  free(fw->w.key);
  free(fw);
  return NULL;
}

static int file_writer_write(struct store_writer *w, const void *buf,
                             size_t len)
{
  struct store_file_writer *fw = (struct store_file_writer *)w;
  const char *p = buf;

  while (len > 0) {
    ssize_t r = pwrite(fw->fd, p, len, (off_t)fw->off);

    if (r == -1) {
      int err = errno;

      if (err == EINTR)
        continue;
      ferry_error("write %s: %s%s", fw->tmp, strerror(err), file_hint(err));
      errno = err;
      return -1;
    }
    p += r;
    len -= (size_t)r;
    fw->off += (uint64_t)r;
  }
  return 0;
}

static int file_writer_zero(struct store_writer *w, uint64_t len)
{
  struct store_file_writer *fw = (struct store_file_writer *)w;

  /* a hole: the size is fixed at commit by ftruncate */
  if (__builtin_add_overflow(fw->off, len, &fw->off)) {
    ferry_error("write %s: size overflow", fw->tmp);
    return -1;
  }
  return 0;
}

static void file_writer_free(struct store_file_writer *fw)
{
  free(fw->tmp);
  free(fw->final);
  free(fw->w.key);
  free(fw);
}

static int file_writer_commit(struct store_writer *w)
{
  struct store_file_writer *fw = (struct store_file_writer *)w;
  int r;

  if (ftruncate(fw->fd, (off_t)fw->off) == -1) {
    int err = errno;

    ferry_error("resize %s: %s%s", fw->tmp, strerror(err), file_hint(err));
    close(fw->fd);
    unlink(fw->tmp);
    file_writer_free(fw);
    errno = err;
    return -1;
  }
  r = tmp_commit(fw->fd, fw->tmp, fw->final);
  file_writer_free(fw);
  return r;
}

static void file_writer_abort(struct store_writer *w)
{
  struct store_file_writer *fw = (struct store_file_writer *)w;

  if (fw == NULL)
    return;
  close(fw->fd);
  unlink(fw->tmp);
  file_writer_free(fw);
}

const struct store_ops store_file_ops = {
  .scheme = "file",
  .usage = "file:///DIR",
  .open = file_open,
  .put = file_put,
  .get = file_get,
  .head = file_head,
  .list = file_list,
  .del = file_del,
  .flush = file_flush,
  .writer_open = file_writer_open,
  .writer_write = file_writer_write,
  .writer_zero = file_writer_zero,
  .writer_commit = file_writer_commit,
  .writer_abort = file_writer_abort,
  .presign = NULL,
  .close = file_close,
};
