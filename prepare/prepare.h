/* prepare.h - guest preparation: make a migrated copy of a Linux server
 * boot on its target's hardware (docs/PREPARATION.md).
 *
 * ferry-prepare serves each disk's chunked image over NBD (nbd/export.h,
 * writes captured by image/access.h), opens them with libguestfs, inspects
 * the guest and changes what the target needs; the writes become the
 * image's next generation.  The source and the generation the agent wrote
 * are never changed. */
#ifndef FERRY_PREPARE_H
#define FERRY_PREPARE_H

#include <stddef.h>

#include <guestfs.h>
#include <jansson.h>

/* What one target needs of a guest. */
struct prep_profile {
  const char *name;              /* "aws", "azure", "gcp", "openstack", ... */
  const char *hardware;          /* for messages: "AWS Nitro (NVMe, ENA)" */
  const char *const *storage;    /* drivers the boot disk needs (initramfs) */
  const char *const *extra;      /* more drivers for the initramfs */
  const char *const *nic;        /* NIC drivers of the primary NIC */
  const char *console;           /* kernel console arguments */
  const char *cmdline_extra;     /* more kernel arguments, or NULL */
  const char *const *agents;     /* guest agents to enable where installed */
  const char *const *foreign;    /* other platforms' tools to disable */
  const char *const *emulated;   /* what qemu's model of the target needs
                                    in the initramfs too (--emulated) */
};

/* The profile of name ("aws", ...); model names the device model a local
 * boot emulates (NULL: the target's own).  NULL if unknown. */
const struct prep_profile *prep_profile(const char *name);

/* One disk of the guest: its name on the source ("sda", "vda", "nvme0n1")
 * and its device in the appliance ("/dev/sda"). */
struct prep_disk {
  const char *name;
  char dev[32];
};

/* The network the primary NIC gets. */
struct prep_net {
  const char *ip;                /* "10.0.0.5/24" (static), NULL: DHCP */
  const char *gateway;           /* with ip */
  const char *nic;               /* the source's primary NIC name, or NULL */
};

struct prep {
  guestfs_h *g;
  const struct prep_profile *p;
  struct prep_disk *disks;
  size_t ndisks;
  struct prep_net net;
  json_t *changes;               /* [{file, change, why}] */
  json_t *os;                    /* what inspection found */
  int dry_run;                   /* inspect only */
  int emulated;                  /* booted on qemu's model of the target */
  int quiet;                     /* no progress on stderr */
  /* found by inspection */
  char *root;                    /* the root filesystem's device */
  char *family;                  /* "debian", "rhel", ... (os-release) */
  char *initramfs_tool;          /* "initramfs-tools", "dracut" */
  char *nic;                     /* primary NIC name used */
  const char **nic_drivers;      /* drivers the primary NIC may have */
  json_t *notes;                 /* what was checked and left as it is */
  json_t *warnings;              /* what may not work (not fatal) */
  int rebuild_initramfs;         /* a change the initramfs must carry */
};

/* Record something checked and left as it is. */
void prep_note(struct prep *x, const char *fmt, ...)
  __attribute__((format(printf, 2, 3)));

/* The steps, in order (storage.c, network.c, bootloader.c, services.c). */
int prep_services(struct prep *x);
int prep_storage(struct prep *x);
int prep_network(struct prep *x);
int prep_initramfs(struct prep *x);
int prep_bootloader(struct prep *x);
int prep_selinux(struct prep *x);

/* Inspect the guest (mounted read-write under /); 0 or -1 with an error. */
int prep_inspect(struct prep *x);

/* Every change for x->p, in order; 0 or -1 with an error naming the file
 * and what to do. */
int prep_apply(struct prep *x);

/* Record a change (a job event): file, what was changed, why. */
void prep_change(struct prep *x, const char *file, const char *why,
                 const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* ---- guest file helpers (guestfs.c) ---- */

/* Where the guest's originals of the files preparation changes are kept. */
#define PREP_ORIG_DIR "/var/lib/ferry/prepare-orig"

/* 1 if path is a regular file (symlinks followed inside the guest), 0 not. */
int gf_is_file(struct prep *x, const char *path);
/* The first of forms (each with one %s, for arg) that is a file in the
 * guest, into buf; NULL when none is. */
const char *gf_first_file(struct prep *x, const char *const *forms,
                          const char *arg, char *buf, size_t cap);
/* Frees a NULL-terminated array of strings libguestfs returned. */
void gf_free_strings(char **v);
/* The file's contents (caller frees), NULL with an error. */
char *gf_read(struct prep *x, const char *path, size_t *len);
/* Replace the file's contents keeping its mode and owner; the first time
 * the original is kept under PREP_ORIG_DIR. */
int gf_write(struct prep *x, const char *path, const char *text);
/* Remove a file, keeping it under PREP_ORIG_DIR. */
int gf_remove(struct prep *x, const char *path);
/* Run a shell command in the guest (its root, /dev /proc /sys bound);
 * its output (caller frees) or NULL with an error holding its stderr. */
char *gf_sh(struct prep *x, const char *cmd);
/* Which of the guest's programs exists: the first of a NULL-terminated
 * list found, or NULL. */
const char *gf_which(struct prep *x, const char *const *paths);

#endif
