/* clone/quiesce.h - freeze filesystems (FIFREEZE) for the final read of a warm
 * migration, so the disk is consistent, and always thaw them.
 *
 * A watchdog process holds the same filesystems and thaws them when this
 * process ends for any reason, SIGKILL included: a source server is never
 * left frozen by ferry. */
#ifndef FERRY_QUIESCE_H
#define FERRY_QUIESCE_H

#include <stddef.h>

struct quiesce;

/* Freeze every mountpoint, in order; on a failure the ones frozen are
 * thawed again and NULL is returned with an error. */
struct quiesce *quiesce_freeze(char *const *mounts, size_t n);

/* Thaw all (reverse order) and stop the watchdog; frees q.  -1 if a thaw
 * failed (the watchdog tries again, and the error names the mount). */
int quiesce_thaw(struct quiesce *q);

/* Mountpoints of filesystems on block device dev: the device itself, its
 * partitions, and device-mapper devices (LVM) built on them, from
 * /proc/self/mountinfo and /sys; one per filesystem (the first of its
 * mounts).  Caller frees each and the array. */
int quiesce_find_mounts(const char *dev, char ***mounts, size_t *n);

#endif
