/* target.h - where a migrated server lands: one file per provider
 * (server/targets/NAME.c) holding both the provider's rules, which
 * blueprint validation and preflight check before any data moves, and its
 * driver, which creates the instance from the converted disks.
 *
 * The driver contract (every op of every provider):
 * - Time: an op may run as long as the provider needs (a cloud import can
 *   take an hour).  It runs in one of the server's workers, which renews
 *   the task's lease on a timer for as long as the op runs, so no second
 *   worker claims it.
 * - Progress: the op reports each step with task_ctx_event() ("importing
 *   disk 2 of 3"), which becomes an event of the migration.
 * - Cancel and shutdown: the op checks task_ctx_stopping() between steps
 *   and in every wait, and returns NULL with an error once it says 1; a
 *   child process it runs is registered with task_ctx_set_child(), and is
 *   sent SIGTERM (then SIGKILL) on cancel or server shutdown.
 * - Resume: a task that was stopped, or whose server crashed, is run again
 *   from the start, so every op is idempotent: a re-run finds what an
 *   earlier run made (by the names and tags it gives everything, which
 *   name the migration) and goes on from there instead of making it twice.
 * - Errors: NULL with ferry_error() saying what failed, where, and what the
 *   operator can do; the task fails (a create is not retried blindly).
 */
#ifndef FERRY_TARGET_H
#define FERRY_TARGET_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct task_ctx;                      /* server/tasks.h */
struct store;                         /* lib/store/store.h */

/* What a provider accepts; docs/BLUEPRINTS.md explains each rule. */
struct target_rules {
  int needs_region;
  int needs_machine_type;
  const char *const *formats;      /* NULL-terminated; [0] is the default */
  int bios_ok, uefi_ok;            /* boot modes it can boot */
  int gpt_bios_ok;                 /* a GPT boot disk in BIOS mode */
  uint64_t max_boot_disk;          /* bytes, 0 = no limit */
  uint64_t max_disk;
  /* driver groups: each string lists alternatives ("nvme|xen_blkfront").
   * The boot disk's driver must be in the initramfs (it loads before the
   * root filesystem); the network driver in the kernel. */
  const char *const *storage_drivers;
  const char *const *net_drivers;
  const char *driver_hint;         /* what to install when one is missing */
  const char *guest_agent;         /* inventory key, or NULL */
  const char *guest_agent_hint;
  /* the keys the blueprint's endpoints: map may set (NULL-terminated;
   * NULL: none), and the disk imports the driver does (blueprint's
   * import:, "upload" or "object"; [0] is the default; NULL: none) */
  const char *const *endpoint_keys;
  const char *const *imports;
};

struct target_ops {
  const char *name;                   /* the blueprint's provider */
  struct target_rules rules;
  /* Create the instance described by plan (the migration's plan: disks
   * with their outputs, format, host entry): import the disks, create the
   * instance, wait until it runs.  Returns a result object (instance id,
   * addresses, what was done) or NULL with an error.  NULL op: this ferry
   * has no driver for the provider yet.
   * It may take any time (t's keeper holds the lease), reports each step
   * with task_ctx_event(t, ...), stops with NULL once
   * task_ctx_stopping(t) (its child, registered with
   * task_ctx_set_child(), is signaled for it), and is run again from the
   * start after a stop or a crash: it finds what an earlier run made.  A
   * failure is final (the task is not retried): the operator retries the
   * migration. */
  json_t *(*create)(struct task_ctx *t, json_t *plan);
  /* Delete what create made for the migration (ferry target cleanup):
   * resources are the ledger's CLOUD_MIGRATION rows not yet deleted,
   * newest first, [{kind, name, id}] (targets/cloud.h).  Delete each (one
   * already gone counts as deleted), wait where the next delete depends
   * on it, and mark it with cloud_ledger_gone().  Nothing else: never a
   * resource the ledger does not list.  Returns {deleted: [{kind, name,
   * id}]} or NULL with an error; idempotent like create. */
  json_t *(*cleanup)(struct task_ctx *t, json_t *plan, json_t *resources);
};

#define TiB (UINT64_C(1) << 40)
#define GiB (UINT64_C(1) << 30)

/* The provider named name, or NULL. */
const struct target_ops *target_lookup(const char *name);
/* "local, aws, azure, gcp, openstack" */
const char *target_names(void);
/* The local target's boot models (hosts[].boot_model): the cloud whose
 * instance's device model the boot check boots on; [0] is the default.
 * NULL-terminated. */
extern const char *const target_local_boot_models[];
int target_has_format(const struct target_ops *t, const char *format);
/* "raw, vmdk" for messages */
void target_formats(const struct target_ops *t, char *buf, size_t size);

/* Dispatch on plan.provider. */
json_t *target_create(struct task_ctx *t, json_t *plan);

/* The store holding the object url names ("s3://bucket/a/b/name"), opened,
 * and in *key the object's key in it ("name"); NULL with an error when url
 * does not name an object in a store. */
struct store *target_store_object(const char *url, const char **key);

/* ferry target cleanup: the driver's cleanup op on the migration's live
 * CLOUD_MIGRATION resources, newest first.  Its result, plus "kept" (the
 * blueprint's shared resources, left in place), or NULL with an error. */
json_t *target_cleanup(struct task_ctx *t, json_t *plan);

#endif
