/* local.c - the local QEMU/KVM target.  The converted disks stay in the
 * store; creating the instance means checking that every output is there
 * and, when the blueprint asks for it (hosts[].boot), booting them in
 * qemu-system-x86_64 and reporting success only when the guest's console
 * shows its boot marker.  The boot runs on a snapshot: the disks are never
 * modified. */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/error.h"
#include "util/log.h"
#include "util/zero.h"
#include "store/store.h"
#include "target.h"
#include "../tasks.h"

#define BOOT_TIMEOUT_DEFAULT 600
#define BOOT_MARKER_DEFAULT "login:"
#define COPY_STEP (8u << 20)

/* Copy an object to a local file, leaving holes for zero blocks. */
static int download(const char *url, const char *path)
{
  CLEANUP_FREE char *buf = malloc(COPY_STEP);
  const char *key;
  struct store *s = target_store_object(url, &key);
  uint64_t off = 0;
  int fd = -1, r = -1;

  if (s == NULL || buf == NULL)
    goto out;
  fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd == -1) {
    ferry_error("cannot create %s: %m", path);
    goto out;
  }
  for (;;) {
    size_t got;

    if (store_get(s, key, off, buf, COPY_STEP, &got) == -1)
      goto out;
    if (got == 0)
      break;
    if (!buf_is_zero(buf, got) &&
        pwrite(fd, buf, got, (off_t)off) != (ssize_t)got) {
      ferry_error("write %s: %m", path);
      goto out;
    }
    off += got;
    if (got < COPY_STEP)
      break;
  }
  if (ftruncate(fd, (off_t)off) == -1) {
    ferry_error("resize %s: %m", path);
    goto out;
  }
  r = 0;
out:
  if (fd >= 0)
    close(fd);
  store_close(s);
  return r;
}

/* The GCE archive's disk.raw, extracted sparsely to path. */
static int extract_gce(const char *tarball, const char *path)
{
  struct archive *a = archive_read_new();
  struct archive_entry *e;
  int fd = -1, r = -1, found = 0;

  archive_read_support_filter_gzip(a);
  archive_read_support_format_tar(a);
  if (archive_read_open_filename(a, tarball, 1 << 20) != ARCHIVE_OK) {
    ferry_error("cannot read %s: %s", tarball, archive_error_string(a));
    goto out;
  }
  while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
    const void *blk;
    size_t len;
    la_int64_t off;
    int rc;

    if (strcmp(archive_entry_pathname(e), "disk.raw") != 0)
      continue;
    found = 1;
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd == -1) {
      ferry_error("cannot create %s: %m", path);
      goto out;
    }
    while ((rc = archive_read_data_block(a, &blk, &len, &off)) ==
           ARCHIVE_OK)
      if (len && pwrite(fd, blk, len, (off_t)off) != (ssize_t)len) {
        ferry_error("write %s: %m", path);
        goto out;
      }
    if (rc != ARCHIVE_EOF) {
      ferry_error("%s: %s", tarball, archive_error_string(a));
      goto out;
    }
    if (ftruncate(fd, (off_t)archive_entry_size(e)) == -1) {
      ferry_error("resize %s: %m", path);
      goto out;
    }
    break;
  }
  if (!found) {
    ferry_error("%s holds no disk.raw: not a GCE image", tarball);
    goto out;
  }
  r = 0;
out:
  if (fd >= 0)
    close(fd);
  archive_read_free(a);
  return r;
}

static const char *qemu_format(const char *format)
{
  if (strcmp(format, "vhd") == 0 || strcmp(format, "vhd-dynamic") == 0)
    return "vpc";      /* a fixed VHD has no header: qemu would see raw */
  if (strcmp(format, "gce") == 0)
    return "raw";      /* booted from the extracted disk.raw */
  return format;
}

static int rm_one(const char *p, const struct stat *st, int f,
                  struct FTW *ftw)
{
  (void)st;
  (void)f;
  (void)ftw;
  return remove(p);
}

/* The last lines of the console log, for the error message. */
static void console_tail(const char *log, char *out, size_t size)
{
  char buf[8192];
  ssize_t n;
  int fd = open(log, O_RDONLY | O_CLOEXEC);
  off_t end;
  char *p;

  out[0] = '\0';
  if (fd == -1)
    return;
  end = lseek(fd, 0, SEEK_END);
  n = pread(fd, buf, sizeof buf - 1, end > 600 ? end - 600 : 0);
  close(fd);
  if (n <= 0)
    return;
  buf[n] = '\0';
  for (p = buf; *p; p++)
    if (*p == '\r' || *p == '\n' || (unsigned char)*p < 0x20)
      *p = ' ';
  {
    size_t len = strlen(buf), keep = len < size - 1 ? len : size - 1;

    memcpy(out, buf + len - keep, keep);   /* the end is what matters */
    out[keep] = '\0';
  }
}

/* Watches a growing console log for the boot marker.  Each look reads
 * only what was appended since the last one, keeping the marker's length
 * less one byte of the previous read so a marker split across two reads is
 * still found; the log may grow without bound before the marker. */
struct console_watch {
  const char *log, *marker;
  size_t mlen;
  off_t off;                    /* bytes of the log already searched */
  size_t keep;                  /* bytes carried over at the front of buf */
  char *buf;                    /* mlen - 1 + CONSOLE_STEP */
};

#define CONSOLE_STEP (64u << 10)

static int console_watch_init(struct console_watch *w, const char *log,
                              const char *marker)
{
  *w = (struct console_watch){ .log = log, .marker = marker,
                               .mlen = strlen(marker) };
  if (w->mlen == 0) {
    ferry_error("the boot marker is empty");
    return -1;
  }
  w->buf = malloc(w->mlen + CONSOLE_STEP);
  if (w->buf == NULL) {
    ferry_error("out of memory");
    return -1;
  }
  return 0;
}

/* 1 once the marker was seen, 0 not yet (or the log is not there yet). */
static int console_watch_seen(struct console_watch *w)
{
  int fd = open(w->log, O_RDONLY | O_CLOEXEC), found = 0;

  if (fd == -1)
    return 0;
  for (;;) {
    ssize_t n = pread(fd, w->buf + w->keep, CONSOLE_STEP, w->off);
    size_t have;

    if (n <= 0)
      break;
    w->off += n;
    have = w->keep + (size_t)n;
    /* consoles print NULs and escapes: search bytes, not strings */
    if (memmem(w->buf, have, w->marker, w->mlen) != NULL) {
      found = 1;
      break;
    }
    w->keep = have < w->mlen - 1 ? have : w->mlen - 1;
    memmove(w->buf, w->buf + have - w->keep, w->keep);
  }
  close(fd);
  return found;
}

static json_t *boot_check(struct task_ctx *t, json_t *plan, json_t *host)
{
  const char *marker = json_string_value(json_object_get(host,
                                                         "boot_marker"));
  const char *format = json_string_value(json_object_get(plan, "format"));
  const char *accel = getenv("FERRY_QEMU_ACCEL");
  json_t *disks = json_object_get(plan, "disks"), *d, *res = NULL;
  long timeout = BOOT_TIMEOUT_DEFAULT;
  char dir[] = "/var/tmp/ferry-boot-XXXXXX", log[64], tail[700];
  char *argv[64], drives[8][512], devs[8][96], mach[64], serial[96];
  struct console_watch watch = { .buf = NULL };
  struct timespec t0, t1;
  int argc = 0, status = 0, booted = 0, stopped = 0;
  size_t i;
  pid_t pid;

  if (json_is_integer(json_object_get(host, "boot_timeout")))
    timeout = (long)json_integer_value(json_object_get(host,
                                                       "boot_timeout"));
  if (marker == NULL)
    marker = BOOT_MARKER_DEFAULT;
  if (accel == NULL)
    accel = "tcg";
  if (mkdtemp(dir) == NULL) {
    ferry_error("cannot create a work directory in /var/tmp: %m");
    return NULL;
  }
  snprintf(log, sizeof log, "%s/console.log", dir);
  if (console_watch_init(&watch, log, marker) == -1)
    goto out;
  snprintf(mach, sizeof mach, "pc,accel=%s", accel);
  argv[argc++] = "qemu-system-x86_64";
  argv[argc++] = "-machine";
  argv[argc++] = mach;
  argv[argc++] = "-m";
  argv[argc++] = "1024";
  argv[argc++] = "-smp";
  argv[argc++] = "1";
  argv[argc++] = "-display";
  argv[argc++] = "none";
  argv[argc++] = "-vga";
  argv[argc++] = "none";
  argv[argc++] = "-monitor";
  argv[argc++] = "none";
  argv[argc++] = "-nic";
  argv[argc++] = "none";
  argv[argc++] = "-no-reboot";
  argv[argc++] = "-serial";
  snprintf(serial, sizeof serial, "file:%s", log);
  argv[argc++] = serial;
  json_array_foreach(disks, i, d) {
    const char *out = json_string_value(json_object_get(d, "output"));
    char path[300], local[300];

    if (i >= 8 || out == NULL)
      break;
    if (strncmp(out, "file://", 7) == 0) {
      snprintf(path, sizeof path, "%s", out + 7);
    } else {
      snprintf(path, sizeof path, "%s/disk%zu.img", dir, i);
      log_info("boot check: fetching %s", out);
      if (download(out, path) == -1)
        goto out;
    }
    if (strcmp(format, "gce") == 0) {
      snprintf(local, sizeof local, "%s/disk%zu.raw", dir, i);
      if (extract_gce(path, local) == -1)
        goto out;
      snprintf(path, sizeof path, "%s", local);
    }
    /* a VHD's size is its footer's current size, as Azure reads it; qemu
     * 7 would otherwise derive it from the CHS geometry, a few KiB short,
     * and a GPT's backup header would fall off the end */
    snprintf(drives[i], sizeof drives[i], "file=%s,format=%s%s,if=none,"
             "id=d%zu,snapshot=on,cache=unsafe", path, qemu_format(format),
             strcmp(qemu_format(format), "vpc") == 0
               ? ",force_size_calc=current_size" : "", i);
    snprintf(devs[i], sizeof devs[i], "virtio-blk-pci,drive=d%zu%s", i,
             i == 0 ? ",bootindex=0" : "");
    argv[argc++] = "-drive";
    argv[argc++] = drives[i];
    argv[argc++] = "-device";
    argv[argc++] = devs[i];
  }
  argv[argc] = NULL;

  clock_gettime(CLOCK_MONOTONIC, &t0);
  pid = fork();
  if (pid == -1) {
    ferry_error("cannot start qemu: %m");
    goto out;
  }
  if (pid == 0) {
    int null = open("/dev/null", O_RDWR);
    sigset_t none;

    /* the server blocks SIGTERM and ignores SIGPIPE; qemu must not */
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    dup2(null, STDIN_FILENO);
    dup2(null, STDOUT_FILENO);
    execvp(argv[0], argv);
    _exit(127);
  }
  task_ctx_set_child(t, pid);
  for (;;) {
    siginfo_t si = { .si_pid = 0 };
    double secs;

    if (console_watch_seen(&watch)) {
      booted = 1;
      break;
    }
    if (task_ctx_stopping(t)) {
      stopped = 1;
      break;
    }
    /* exited: reaped below, once the keeper no longer knows its pid */
    if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
        si.si_pid == pid)
      break;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    secs = (double)(t1.tv_sec - t0.tv_sec);
    if (secs > (double)timeout)
      break;
    poll(NULL, 0, 500);
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  task_ctx_set_child(t, -1);
  if (waitpid(pid, &status, WNOHANG) == pid) {
    pid = -1;                   /* it exited by itself */
  } else {
    /* the guest may power itself off; otherwise stop it */
    for (int k = 0; !stopped && k < 20 &&
         waitpid(pid, &status, WNOHANG) == 0; k++)
      poll(NULL, 0, 250);
    if (waitpid(pid, &status, WNOHANG) == 0) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
    }
  }
  if (stopped) {
    ferry_error("the boot check was stopped: the migration was canceled or "
                "the server is stopping");
    goto out;
  }
  if (!booted) {
    console_tail(log, tail, sizeof tail);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
      ferry_error("qemu-system-x86_64 is not installed on the server: "
                  "install qemu-system-x86 to boot-check local migrations");
    else
      ferry_error("the migrated disk did not show '%s' on its console "
                  "within %ld s (qemu %s); last console output: %s", marker,
                  timeout, pid == -1 ? "exited" : "was stopped",
                  tail[0] ? tail : "(nothing)");
    goto out;
  }
  res = json_pack("{s:s, s:f, s:s}", "marker", marker, "seconds",
                  (double)(t1.tv_sec - t0.tv_sec) +
                  (double)(t1.tv_nsec - t0.tv_nsec) / 1e9, "accel", accel);
  log_info("boot check: '%s' seen after %.1f s", marker,
           json_real_value(json_object_get(res, "seconds")));
out:
  free(watch.buf);
  nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
  return res;
}

static json_t *local_create(struct task_ctx *t, json_t *plan)
{
  json_t *disks = json_object_get(plan, "disks"), *d, *outs = json_array();
  json_t *host = json_object_get(plan, "host"), *boot = NULL;
  size_t i;

  json_array_foreach(disks, i, d) {
    const char *out = json_string_value(json_object_get(d, "output"));
    const char *key;
    struct store *s;
    uint64_t size;
    int r;

    if (out == NULL || (s = target_store_object(out, &key)) == NULL)
      goto fail;
    r = store_head(s, key, &size);
    store_close(s);
    if (r != 1) {
      if (r == 0)
        ferry_error("converted disk %s is missing", out);
      goto fail;
    }
    json_array_append_new(outs, json_pack("{s:s, s:I}", "output", out,
                                          "size", (json_int_t)size));
  }
  if (json_is_true(json_object_get(host, "boot"))) {
    task_ctx_event(t, "boot-checking the migrated disks in qemu");
    if ((boot = boot_check(t, plan, host)) == NULL)
      goto fail;
  }
  return json_pack("{s:s, s:o, s:o}", "instance", "local", "disks", outs,
                   "boot", boot ? boot : json_null());
fail:
  json_decref(outs);
  return NULL;
}

static const char *const formats[] = { "raw", "qcow2", "vhd", "vhd-dynamic",
                                       "vmdk", "gce", NULL };
static const char *const storage[] = { "virtio_blk|virtio_scsi", NULL };
static const char *const net[] = { "virtio_net", NULL };

const struct target_ops target_local = {
  .name = "local",
  .rules = {
    .formats = formats, .bios_ok = 1, .uefi_ok = 1, .gpt_bios_ok = 1,
    .storage_drivers = storage, .net_drivers = net,
    .driver_hint = "install the virtio drivers and rebuild the initramfs "
                   "(dracut --add-drivers virtio_blk, or add virtio_blk to "
                   "/etc/initramfs-tools/modules and run update-initramfs "
                   "-u)",
  },
  .create = local_create,
};
