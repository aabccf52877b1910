/* main.c - ferry-prepare: prepare the migrated copy of a Linux server for
 * its target (docs/PREPARATION.md).
 *
 *   ferry-prepare --target aws --disk sda=s3://bucket/web01/sda [--disk ...]
 *
 * Each disk's chunked image (its source generation) is served over NBD on
 * a private Unix socket with writes captured; libguestfs' appliance opens
 * them read-write, ferry inspects the guest and changes what the target
 * needs; then the captured writes become each image's next generation.
 * Killed at any moment, nothing is committed: manifest.json still names
 * the generation it named. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "image/access.h"
#include "image/image.h"
#include "nbd/export.h"
#include "prepare.h"
#include "store/store.h"
#include "util/cleanup.h"
#include "util/error.h"
#include "util/log.h"

#define EXIT_USAGE 2
#define DISKS_MAX 16

/* Drivers of the NICs qemu gives an emulated target (a local boot of a
 * cloud's device model: qemu has no ENA, netvsc or gVNIC). */
static const char *const emulated_nics[] = { "virtio_net", "e1000",
                                             "e1000e", NULL };

struct disk {
  const char *name, *url;
  struct store *store;
  struct image_manifest base;
  int was_prepared;              /* manifest.json was a prepared one */
  struct image_access *access;
  struct nbd_export *nbd;
  char sock[256];
};

static void usage(FILE *fp)
{
  fprintf(fp,
    "usage: ferry-prepare --target TARGET --disk NAME=IMAGE-URL "
    "[--disk NAME=IMAGE-URL...]\n"
    "Prepare the migrated copy of a Linux server to boot on TARGET's\n"
    "hardware; the changes become each image's next generation.\n"
    "  --target T       aws, azure, gcp, openstack or local\n"
    "  --emulated       the target's device model under qemu (its NICs are\n"
    "                   qemu's: virtio-net, e1000)\n"
    "  --disk NAME=URL  a disk by its source name (sda, vda, nvme0n1) and\n"
    "                   its image; the boot disk first\n"
    "  --nic NAME       the source's primary NIC (default: from the guest's\n"
    "                   network configuration)\n"
    "  --ip CIDR        a static address for it (default: DHCP)\n"
    "  --gateway IP     with --ip\n"
    "  --compress C     how new chunks are stored: zstd (default), gzip, raw\n"
    "  --dry-run        inspect only; change nothing\n"
    "  --json           print the result as JSON on stdout\n"
    "  --quiet          no progress on stderr\n"
    "Store credentials come from the environment, as for ferry-convert.\n");
}

static double now(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The source generation of the image: manifest.json's, or the one a
 * prepared manifest was made from (a prepare run again starts over). */
static int load_base(struct disk *d)
{
  if (image_manifest_load(d->store, &d->base) == -1) {
    ferry_error_prefix("disk %s: ", d->name);
    return -1;
  }
  d->was_prepared = d->base.prepared_from != 0;
  if (d->base.prepared_from &&
      image_manifest_load_generation(d->store, d->base.prepared_from,
                                     &d->base) == -1) {
    ferry_error_prefix("disk %s, the source generation %" PRIu64 " of its "
                       "prepared image: ", d->name, d->base.prepared_from);
    return -1;
  }
  return 0;
}

static int launch(struct prep *x, struct disk *disks, size_t n, int ro)
{
  char **devs;
  size_t i;

  guestfs_set_error_handler(x->g, NULL, NULL);
  if (getenv("LIBGUESTFS_BACKEND") == NULL)
    guestfs_set_backend(x->g, "direct");
  /* KVM guests hang on some hosts (nested virtualisation): the operator
   * chooses TCG for qemu as for the local target's boot check */
  if (getenv("LIBGUESTFS_BACKEND_SETTINGS") == NULL &&
      getenv("FERRY_QEMU_ACCEL") &&
      strcmp(getenv("FERRY_QEMU_ACCEL"), "tcg") == 0) {
    char *settings[] = { (char *)"force_tcg", NULL };

    guestfs_set_backend_settings(x->g, settings);
  }
  /* the guest's initramfs rebuild runs inside the appliance */
  guestfs_set_smp(x->g, sysconf(_SC_NPROCESSORS_ONLN) > 1 ? 2 : 1);
  for (i = 0; i < n; i++) {
    char server[300];
    const char *servers[] = { server, NULL };

    snprintf(server, sizeof server, "unix:%s", disks[i].sock);
    if (guestfs_add_drive_opts(x->g, "", GUESTFS_ADD_DRIVE_OPTS_FORMAT, "raw",
                               GUESTFS_ADD_DRIVE_OPTS_PROTOCOL, "nbd",
                               GUESTFS_ADD_DRIVE_OPTS_SERVER, servers,
                               GUESTFS_ADD_DRIVE_OPTS_READONLY, ro, -1)
        == -1) {
      ferry_error("libguestfs cannot add disk %s: %s", disks[i].name,
                  guestfs_last_error(x->g));
      return -1;
    }
  }
  if (guestfs_launch(x->g) == -1) {
    ferry_error("the libguestfs appliance did not start: %s (run "
                "libguestfs-test-tool on the server)",
                guestfs_last_error(x->g));
    return -1;
  }
  devs = guestfs_list_devices(x->g);
  for (i = 0; i < n; i++) {
    if (devs == NULL || devs[i] == NULL) {
      ferry_error("the appliance shows fewer disks than were added");
      break;
    }
    snprintf(x->disks[i].dev, sizeof x->disks[i].dev, "%s", devs[i]);
  }
  for (size_t k = 0; devs && devs[k]; k++)
    free(devs[k]);
  free(devs);
  return i == n ? 0 : -1;
}

static int run_steps(struct prep *x)
{
  static int (*const steps[])(struct prep *) = {
    prep_services, prep_storage, prep_network, prep_initramfs,
    prep_bootloader, prep_selinux,
  };
  size_t i;

  for (i = 0; i < sizeof steps / sizeof steps[0]; i++)
    if (steps[i](x) == -1)
      return -1;
  return 0;
}

int main(int argc, char **argv)
{
  static const struct option longopts[] = {
    { "target", required_argument, NULL, 't' },
    { "emulated", no_argument, NULL, 'E' },
    { "disk", required_argument, NULL, 'd' },
    { "nic", required_argument, NULL, 'n' },
    { "ip", required_argument, NULL, 'i' },
    { "gateway", required_argument, NULL, 'g' },
    { "compress", required_argument, NULL, 'c' },
    { "dry-run", no_argument, NULL, 'D' },
    { "json", no_argument, NULL, 'J' },
    { "quiet", no_argument, NULL, 'q' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
  };
  struct disk disks[DISKS_MAX];
  struct prep_disk pdisks[DISKS_MAX];
  struct prep x = { .g = NULL };
  struct image_commit_opts co = { .enc = ENC_ZSTD };
  const char *nic_drivers[16];
  char dir[] = "/var/tmp/ferry-prepare-XXXXXX";
  const char *target = NULL;
  int json = 0, emulated = 0, c, rc = 1, made_dir = 0;
  size_t n = 0, i, k = 0;
  double t0 = now();
  json_t *res = NULL, *jd;

  log_init("ferry-prepare", 0);
  memset(disks, 0, sizeof disks);
  opterr = 0;
  while ((c = getopt_long(argc, argv, "t:d:qh", longopts, NULL)) != -1) {
    switch (c) {
    case 't': target = optarg; break;
    case 'E': emulated = x.emulated = 1; break;
    case 'd': {
      char *eq = strchr(optarg, '=');

      if (eq == NULL || eq == optarg || n == DISKS_MAX) {
        fprintf(stderr, "ferry-prepare: --disk takes NAME=IMAGE-URL (at "
                "most %d)\n", DISKS_MAX);
        return EXIT_USAGE;
      }
      *eq = 0;
      disks[n].name = optarg;
      disks[n++].url = eq + 1;
      break;
    }
    case 'n': x.net.nic = optarg; break;
    case 'i': x.net.ip = optarg; break;
    case 'g': x.net.gateway = optarg; break;
    case 'c':
      if (codec_parse(optarg, &co.enc) == -1) {
        fprintf(stderr, "ferry-prepare: %s\n", ferry_errmsg());
        return EXIT_USAGE;
      }
      break;
    case 'D': x.dry_run = 1; break;
    case 'J': json = 1; break;
    case 'q': x.quiet = 1; break;
    case 'h': usage(stdout); return 0;
    default:
      fprintf(stderr, "ferry-prepare: unknown or incomplete option %s (see "
              "--help)\n", argv[optind - 1]);
      return EXIT_USAGE;
    }
  }
  if (optind < argc || target == NULL || n == 0) {
    fprintf(stderr, "ferry-prepare: %s (see --help)\n", optind < argc
            ? "unexpected argument" : "--target and --disk are required");
    return EXIT_USAGE;
  }
  if ((x.p = prep_profile(target)) == NULL) {
    fprintf(stderr, "ferry-prepare: unknown target '%s' (aws, azure, gcp, "
            "openstack, local)\n", target);
    return EXIT_USAGE;
  }
  if (x.net.gateway && x.net.ip == NULL) {
    fprintf(stderr, "ferry-prepare: --gateway needs --ip\n");
    return EXIT_USAGE;
  }
  for (i = 0; x.p->nic[i] && k < 8; i++)
    nic_drivers[k++] = x.p->nic[i];
  for (i = 0; emulated && emulated_nics[i] && k < 14; i++)
    nic_drivers[k++] = emulated_nics[i];
  nic_drivers[k] = NULL;
  x.nic_drivers = nic_drivers;
  co.prepared_for = target;
  x.changes = json_array();
  x.notes = json_array();
  x.warnings = json_array();
  x.os = json_object();

  if (mkdtemp(dir) == NULL) {
    ferry_error("cannot create a work directory in /var/tmp: %m");
    goto fail;
  }
  made_dir = 1;
  for (i = 0; i < n; i++) {
    struct image_access_opts ao = { .overlay_dir = dir, .cache_chunks = 16 };
    struct disk *d = &disks[i];

    if ((d->store = store_open(d->url)) == NULL || load_base(d) == -1 ||
        (d->access = image_access_open(d->store, &d->base, &ao)) == NULL)
      goto fail;
    snprintf(d->sock, sizeof d->sock, "%s/disk%zu.sock", dir, i);
    if ((d->nbd = nbd_export_start(d->sock, d->access)) == NULL)
      goto fail;
    pdisks[i].name = d->name;
  }
  x.disks = pdisks;
  x.ndisks = n;
  if ((x.g = guestfs_create()) == NULL) {
    ferry_error("cannot create a libguestfs handle: %m");
    goto fail;
  }
  if (launch(&x, disks, n, x.dry_run) == -1 || prep_inspect(&x) == -1)
    goto fail;
  if (!x.quiet)
    fprintf(stderr, "ferry-prepare: %s %lld.%lld (%s) on %s, initramfs by "
            "%s: preparing for %s\n",
            json_string_value(json_object_get(x.os, "distro")),
            (long long)json_integer_value(json_object_get(x.os, "major")),
            (long long)json_integer_value(json_object_get(x.os, "minor")),
            x.family, x.root, x.initramfs_tool ? x.initramfs_tool : "none",
            x.p->hardware);
  if (!x.dry_run && run_steps(&x) == -1)
    goto fail;
  /* everything written reaches the NBD exports before they stop */
  if (guestfs_umount_all(x.g) == -1 || guestfs_shutdown(x.g) == -1) {
    ferry_error("the libguestfs appliance did not shut down cleanly: %s",
                guestfs_last_error(x.g));
    goto fail;
  }
  guestfs_close(x.g);
  x.g = NULL;
  jd = json_array();
  res = json_pack("{s:s, s:s, s:O, s:O, s:O, s:O, s:o}", "target", target,
                  "hardware", x.p->hardware, "os", x.os, "changes",
                  x.changes, "notes", x.notes, "warnings", x.warnings,
                  "disks", jd);
  for (i = 0; i < n; i++) {
    struct disk *d = &disks[i];
    struct image_manifest out;
    uint64_t dirty = image_access_dirty(d->access);
    int r = nbd_export_stop(d->nbd);

    d->nbd = NULL;
    if (r == -1) {
      ferry_error_prefix("disk %s: ", d->name);
      goto fail;
    }
    if (x.dry_run && dirty) {
      ferry_error("disk %s was written during a dry run", d->name);
      goto fail;
    }
    if (json_array_size(x.changes) == 0)
      dirty = 0;
    /* no change of ferry's: the base stays the image (mounting alone
     * writes a superblock and may replay a journal; the target's own
     * mount does that too) */
    if (json_array_size(x.changes) == 0 || x.dry_run)
      out = d->base;
    else if (image_access_commit(d->access, &co, &out) == -1) {
      ferry_error_prefix("disk %s: writing the prepared generation: ",
                         d->name);
      goto fail;
    }
    /* an earlier preparation (for another target, or one this run
     * supersedes) must not stay the image converters read */
    if (!x.dry_run && out.generation == d->base.generation &&
        d->was_prepared && image_manifest_commit(d->store, &d->base) == -1) {
      ferry_error_prefix("disk %s: restoring manifest.json to the source "
                         "generation: ", d->name);
      goto fail;
    }
    json_array_append_new(jd, json_pack(
      "{s:s, s:s, s:I, s:I, s:I}", "name", d->name, "image", d->url,
      "base_generation", (json_int_t)d->base.generation, "generation",
      (json_int_t)(x.dry_run ? d->base.generation : out.generation),
      "changed_chunks", (json_int_t)dirty));
  }
  json_object_set_new(res, "seconds", json_real(now() - t0));
  if (json)
    json_dumpf(res, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER);
  else
    printf("prepared for %s: %zu change(s) in %.1f s\n", target,
           json_array_size(x.changes), now() - t0);
  if (json)
    putchar('\n');
  rc = 0;
  goto out;
fail:
  fprintf(stderr, "ferry-prepare: %s\n", ferry_errmsg());
out:
  if (x.g)
    guestfs_close(x.g);
  for (i = 0; i < n; i++) {
    if (disks[i].nbd)
      nbd_export_stop(disks[i].nbd);
    image_access_close(disks[i].access);
    store_close(disks[i].store);
  }
  if (made_dir)
    rmdir(dir);
  json_decref(res);
  json_decref(x.changes);
  json_decref(x.notes);
  json_decref(x.warnings);
  json_decref(x.os);
  free(x.root);
  free(x.family);
  free(x.initramfs_tool);
  free(x.nic);
  return rc;
}
