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
#define MAX_BOOT_DISKS 8
#define OVMF_CODE "/usr/share/OVMF/OVMF_CODE_4M.fd"
#define OVMF_VARS "/usr/share/OVMF/OVMF_VARS_4M.fd"

/* The device model a boot check boots on (hosts[].boot_model): what the
 * named cloud's instance presents to the guest, as near as qemu 7.2 gets.
 * qemu has no ENA (AWS), no gVNIC (GCP) and no VMBus (Azure: storvsc,
 * netvsc): there the NIC is one the guest needs its own driver for all
 * the same (virtio-net, e1000), and Azure's disks are IDE, what a Gen1
 * VM's boot disk looks like to a guest without Hyper-V drivers. */
enum boot_bus { BUS_VIRTIO_BLK, BUS_NVME, BUS_SCSI, BUS_IDE };

struct boot_model {
  const char *name;
  const char *machine;          /* qemu -machine */
  enum boot_bus bus;            /* the disks' */
  const char *nic;
  int uefi;                     /* boots OVMF when plan.boot_mode is uefi */
};

static const struct boot_model boot_models[] = {
  /* KVM and OpenStack boot OVMF for a UEFI guest (libvirt's loader,
   * Glance's hw_firmware_type=uefi) */
  { .name = "local", .machine = "pc", .bus = BUS_VIRTIO_BLK,
    .nic = "virtio-net-pci", .uefi = 1 },
  { .name = "openstack", .machine = "pc", .bus = BUS_VIRTIO_BLK,
    .nic = "virtio-net-pci", .uefi = 1 },
  { .name = "aws", .machine = "q35", .bus = BUS_NVME,
    .nic = "virtio-net-pci", .uefi = 1 },
  { .name = "gcp", .machine = "pc", .bus = BUS_SCSI,
    .nic = "virtio-net-pci", .uefi = 1 },
  /* a UEFI host becomes a Gen2 VM, whose disks are on VMBus SCSI: qemu
   * has neither, so its model stays BIOS with IDE (Gen1) */
  { .name = "azure", .machine = "pc", .bus = BUS_IDE, .nic = "e1000" },
};

const char *const target_local_boot_models[] = { "local", "openstack", "aws",
                                                 "gcp", "azure", NULL };

/* The -device of disk i (0 boots) on bus, into buf. */
static void boot_disk_device(enum boot_bus bus, size_t i, char *buf,
                             size_t size)
{
  const char *boot = i == 0 ? ",bootindex=0" : "";

  switch (bus) {
  case BUS_VIRTIO_BLK:
    snprintf(buf, size, "virtio-blk-pci,drive=d%zu%s", i, boot);
    break;
  case BUS_NVME:                /* one controller per disk, as on Nitro */
    snprintf(buf, size, "nvme,serial=ferry%zu,drive=d%zu%s", i, i, boot);
    break;
  case BUS_SCSI:
    snprintf(buf, size, "scsi-hd,bus=scsi0.0,drive=d%zu%s", i, boot);
    break;
  case BUS_IDE:                 /* i440fx: ide.0 and ide.1, two units each */
    snprintf(buf, size, "ide-hd,bus=ide.%zu,unit=%zu,drive=d%zu%s", i / 2,
             i % 2, i, boot);
    break;
  }
}

static const char *const bus_names[] = {
  [BUS_VIRTIO_BLK] = "virtio-blk-pci", [BUS_NVME] = "nvme",
  [BUS_SCSI] = "virtio-scsi-pci", [BUS_IDE] = "ide-hd",
};

static const struct boot_model *boot_model_lookup(const char *name)
{
  size_t i;

  for (i = 0; i < sizeof boot_models / sizeof boot_models[0]; i++)
    if (strcmp(boot_models[i].name, name) == 0)
      return &boot_models[i];
  return NULL;
}

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
  off_t hit;                    /* where the marker starts, once seen */
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
    const char *hit;
    size_t have;

    if (n <= 0)
      break;
    w->off += n;
    have = w->keep + (size_t)n;
    /* consoles print NULs and escapes: search bytes, not strings */
    hit = memmem(w->buf, have, w->marker, w->mlen);
    if (hit != NULL) {
      w->hit = w->off - (off_t)have + (hit - w->buf);
      found = 1;
      break;
    }
    w->keep = have < w->mlen - 1 ? have : w->mlen - 1;
    memmove(w->buf, w->buf + have - w->keep, w->keep);
  }
  close(fd);
  return found;
}

/* Copy the small file from to a new file to (OVMF's variable store). */
static int copy_file(const char *from, const char *to)
{
  char buf[65536];
  int in = open(from, O_RDONLY | O_CLOEXEC), o = -1, r = -1;
  ssize_t n;

  if (in == -1)
    return -1;
  o = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (o == -1)
    goto out;
  while ((n = read(in, buf, sizeof buf)) > 0)
    if (write(o, buf, (size_t)n) != n)
      goto out;
  r = n == 0 ? 0 : -1;
out:
  close(in);
  if (o >= 0 && close(o) == -1)
    r = -1;
  return r;
}

#define CONSOLE_LINE_MAX 300

/* The console line holding the marker at offset hit of log, into out:
 * from the line's start (a marker printed after other text on the same
 * line keeps that text) to its end, without control characters and
 * terminal escapes, at most CONSOLE_LINE_MAX bytes. */
static void console_line(const char *log, off_t hit, char *out, size_t size)
{
  char buf[2 * CONSOLE_LINE_MAX + 1];
  off_t from = hit > CONSOLE_LINE_MAX ? hit - CONSOLE_LINE_MAX : 0;
  int fd = open(log, O_RDONLY | O_CLOEXEC);
  ssize_t n, start, end, k;
  size_t len = 0;

  out[0] = '\0';
  if (fd == -1)
    return;
  n = pread(fd, buf, sizeof buf - 1, from);
  close(fd);
  if (n <= 0 || hit - from >= n)
    return;
  for (start = hit - from; start > 0 && buf[start - 1] != '\n' &&
       buf[start - 1] != '\r'; start--)
    ;
  for (end = hit - from; end < n && buf[end] != '\n' && buf[end] != '\r';
       end++)
    ;
  for (k = start; k < end && len + 1 < size && len < CONSOLE_LINE_MAX; k++) {
    unsigned char c = (unsigned char)buf[k];

    if (c == 0x1b) {            /* ESC [ params letter: skip it whole */
      if (k + 1 < end && buf[k + 1] == '[')
        for (k += 2; k < end && !(buf[k] >= '@' && buf[k] <= '~'); k++)
          ;
      continue;
    }
    if (c < 0x20 || c == 0x7f)
      continue;
    out[len++] = (char)c;
  }
  while (len > 0 && out[len - 1] == ' ')
    len--;
  out[len] = '\0';
}

static json_t *boot_check(struct task_ctx *t, json_t *plan, json_t *host)
{
  const char *marker = json_string_value(json_object_get(host,
                                                         "boot_marker"));
  const char *mname = json_string_value(json_object_get(host,
                                                        "boot_model"));
  const char *format = json_string_value(json_object_get(plan, "format"));
  const char *bmode = json_string_value(json_object_get(plan, "boot_mode"));
  const char *accel = getenv("FERRY_QEMU_ACCEL");
  const struct boot_model *model;
  json_t *disks = json_object_get(plan, "disks"), *d, *res = NULL;
  long timeout = BOOT_TIMEOUT_DEFAULT;
  char dir[] = "/var/tmp/ferry-boot-XXXXXX", log[64], tail[700];
  char *argv[80], drives[MAX_BOOT_DISKS][512], devs[MAX_BOOT_DISKS][96];
  char mach[64], serial[96], code[300], vars[300], nic[64], devices[128];
  char line[CONSOLE_LINE_MAX + 1];
  struct console_watch watch = { .buf = NULL };
  struct timespec t0, t1;
  int argc = 0, status = 0, booted = 0, stopped = 0, uefi;
  size_t i, max_disks;
  pid_t pid;

  if (mname == NULL)
    mname = target_local_boot_models[0];
  model = boot_model_lookup(mname);
  if (model == NULL) {          /* the blueprint's validation refuses it */
    ferry_error("unknown boot_model '%s'", mname);
    return NULL;
  }
  uefi = model->uefi && bmode && strcmp(bmode, "uefi") == 0;
  max_disks = model->bus == BUS_IDE ? 4 : MAX_BOOT_DISKS;
  if (json_array_size(disks) > max_disks) {
    ferry_error("the %s boot model boots at most %zu disks (%s); the host "
                "has %zu", model->name, max_disks, bus_names[model->bus],
                json_array_size(disks));
    return NULL;
  }
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
  snprintf(mach, sizeof mach, "%s,accel=%s", model->machine, accel);
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
  /* slirp: its own DHCP server (10.0.2.15/24); nothing leaves qemu but
   * what the guest itself connects to */
  argv[argc++] = "-netdev";
  argv[argc++] = "user,id=n0";
  argv[argc++] = "-device";
  snprintf(nic, sizeof nic, "%s,netdev=n0", model->nic);
  argv[argc++] = nic;
  argv[argc++] = "-no-reboot";
  argv[argc++] = "-serial";
  snprintf(serial, sizeof serial, "file:%s", log);
  argv[argc++] = serial;
  if (uefi) {
    /* OVMF's variable store is written at boot: a copy per boot */
    snprintf(vars, sizeof vars, "%s/vars.fd", dir);
    if (access(OVMF_CODE, R_OK) == -1 ||
        copy_file(OVMF_VARS, vars) == -1) {
      ferry_error("the %s boot model boots this UEFI host with OVMF, but "
                  "%s or %s is missing: install ovmf on the server",
                  model->name, OVMF_CODE, OVMF_VARS);
      goto out;
    }
    snprintf(code, sizeof code, "if=pflash,format=raw,unit=0,readonly=on,"
             "file=%s", OVMF_CODE);
    argv[argc++] = "-drive";
    argv[argc++] = code;
    snprintf(vars, sizeof vars, "if=pflash,format=raw,unit=1,file=%s/"
             "vars.fd", dir);
    argv[argc++] = "-drive";
    argv[argc++] = vars;
  }
  if (model->bus == BUS_SCSI) {
    argv[argc++] = "-device";
    argv[argc++] = "virtio-scsi-pci,id=scsi0";
  }
  json_array_foreach(disks, i, d) {
    const char *out = json_string_value(json_object_get(d, "output"));
    char path[300], local[300];

    if (out == NULL)
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
    boot_disk_device(model->bus, i, devs[i], sizeof devs[i]);
    argv[argc++] = "-drive";
    argv[argc++] = drives[i];
    argv[argc++] = "-device";
    argv[argc++] = devs[i];
  }
  argv[argc] = NULL;
  snprintf(devices, sizeof devices, "%s,%s%s", bus_names[model->bus],
           model->nic, uefi ? ",ovmf" : "");
  {
    char cmd[2048];
    size_t n = 0;

    for (int k = 0; k < argc && n < sizeof cmd; k++)
      n += (size_t)snprintf(cmd + n, sizeof cmd - n, "%s%s", k ? " " : "",
                            argv[k]);
    log_debug("boot check: %s", cmd);
  }

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
                  "within %ld s booting on the %s model (%s; qemu %s); last "
                  "console output: %s", marker, timeout, model->name,
                  devices, pid == -1 ? "exited" : "was stopped",
                  tail[0] ? tail : "(nothing)");
    goto out;
  }
  console_line(log, watch.hit, line, sizeof line);
  res = json_pack("{s:s, s:f, s:s, s:s, s:s, s:s, s:s}", "marker", marker,
                  "seconds", (double)(t1.tv_sec - t0.tv_sec) +
                  (double)(t1.tv_nsec - t0.tv_nsec) / 1e9, "accel", accel,
                  "model", model->name, "devices", devices, "firmware",
                  uefi ? "uefi" : "bios", "line", line);
  log_info("boot check: '%s' seen after %.1f s on the %s model (%s)",
           marker, json_real_value(json_object_get(res, "seconds")),
           model->name, devices);
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
