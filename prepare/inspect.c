/* inspect.c - what the guest is: its root, OS family, kernels, initramfs
 * tool, boot loader and network stack, found with libguestfs' inspection
 * and then mounted read-write for prepare_apply(). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "prepare.h"
#include "util/cleanup.h"
#include "util/error.h"

/* Mount the root's filesystems, shortest mount point first ("/" before
 * "/boot"); swap and what will not mount are left out. */
static int mount_all(struct prep *x)
{
  char **mp = guestfs_inspect_get_mountpoints(x->g, x->root);
  size_t n = 0, i, k;
  int r = -1;

  if (mp == NULL) {
    ferry_error("cannot list the guest's mount points: %s",
                guestfs_last_error(x->g));
    return -1;
  }
  while (mp[n])
    n += 2;
  /* pairs (mountpoint, device): sort by mount point length */
  for (i = 0; i < n; i += 2)
    for (k = i + 2; k < n; k += 2)
      if (strlen(mp[k]) < strlen(mp[i])) {
        char *a = mp[i], *b = mp[i + 1];

        mp[i] = mp[k];
        mp[i + 1] = mp[k + 1];
        mp[k] = a;
        mp[k + 1] = b;
      }
  for (i = 0; i < n; i += 2) {
    if (guestfs_mount(x->g, mp[i + 1], mp[i]) == -1) {
      if (strcmp(mp[i], "/") == 0) {
        ferry_error("cannot mount the guest's root %s: %s", mp[i + 1],
                    guestfs_last_error(x->g));
        goto out;
      }
      json_array_append_new(json_object_get(x->os, "unmounted"),
                            json_string(mp[i]));
    }
  }
  r = 0;
out:
  gf_free_strings(mp);
  return r;
}

/* "debian", "rhel", "suse" or the os-release ID. */
static char *os_family(struct prep *x)
{
  CLEANUP_FREE char *text = gf_is_file(x, "/etc/os-release")
                            ? gf_read(x, "/etc/os-release", NULL) : NULL;
  static const struct { const char *word, *family; } map[] = {
    { "debian", "debian" }, { "ubuntu", "debian" }, { "rhel", "rhel" },
    { "fedora", "rhel" }, { "centos", "rhel" }, { "suse", "suse" },
  };
  char id[256] = "", like[256] = "", *line, *save = NULL;
  size_t i;

  for (line = text ? strtok_r(text, "\n", &save) : NULL; line;
       line = strtok_r(NULL, "\n", &save)) {
    if (strncmp(line, "ID=", 3) == 0)
      snprintf(id, sizeof id, "%s", line + 3);
    else if (strncmp(line, "ID_LIKE=", 8) == 0)
      snprintf(like, sizeof like, "%s", line + 8);
  }
  for (i = 0; i < sizeof map / sizeof map[0]; i++)
    if (strstr(id, map[i].word) || strstr(like, map[i].word))
      return strdup(map[i].family);
  return strdup(id[0] ? id : "unknown");
}

int prep_inspect(struct prep *x)
{
  static const char *const update_initramfs[] = {
    "/usr/sbin/update-initramfs", "/sbin/update-initramfs", NULL };
  static const char *const dracut[] = {
    "/usr/bin/dracut", "/usr/sbin/dracut", "/sbin/dracut", NULL };
  char **roots = guestfs_inspect_os(x->g), **kernels;
  CLEANUP_FREE char *type = NULL, *distro = NULL;
  json_t *jk;
  size_t i;
  int r = -1;

  if (roots == NULL) {
    ferry_error("inspection of the guest failed: %s",
                guestfs_last_error(x->g));
    return -1;
  }
  if (roots[0] == NULL) {
    ferry_error("no operating system found on the migrated disks (libguestfs "
                "inspection): is the boot disk in the migration, and is it "
                "a Linux server? Set prepare: false in the blueprint to "
                "migrate data disks alone");
    goto out;
  }
  if (roots[1] != NULL) {
    ferry_error("the disks hold %s and another operating system: preparing "
                "a multi-boot guest is not supported", roots[0]);
    goto out;
  }
  x->root = strdup(roots[0]);
  type = guestfs_inspect_get_type(x->g, x->root);
  distro = guestfs_inspect_get_distro(x->g, x->root);
  if (type == NULL || strcmp(type, "linux") != 0) {
    ferry_error("the guest on %s is %s, not Linux: ferry prepares Linux "
                "guests", x->root, type ? type : "unknown");
    goto out;
  }
  json_object_set_new(x->os, "root", json_string(x->root));
  json_object_set_new(x->os, "distro", json_string(distro ? distro : "?"));
  json_object_set_new(x->os, "major", json_integer(
    guestfs_inspect_get_major_version(x->g, x->root)));
  json_object_set_new(x->os, "minor", json_integer(
    guestfs_inspect_get_minor_version(x->g, x->root)));
  json_object_set_new(x->os, "unmounted", json_array());
  if (mount_all(x) == -1)
    goto out;
  x->family = os_family(x);
  json_object_set_new(x->os, "family", json_string(x->family));
  if (gf_which(x, update_initramfs))
    x->initramfs_tool = strdup("initramfs-tools");
  else if (gf_which(x, dracut))
    x->initramfs_tool = strdup("dracut");
  json_object_set_new(x->os, "initramfs_tool", x->initramfs_tool
                      ? json_string(x->initramfs_tool) : json_null());
  kernels = guestfs_glob_expand(x->g, "/boot/vmlinuz-*");
  jk = json_array();
  for (i = 0; kernels && kernels[i]; i++)
    json_array_append_new(jk, json_string(kernels[i] + strlen(
      "/boot/vmlinuz-")));
  gf_free_strings(kernels);
  json_object_set_new(x->os, "kernels", jk);
  if (json_array_size(jk) == 0) {
    ferry_error("the guest has no kernel in /boot (/boot/vmlinuz-*): "
                "nothing to boot on the target");
    goto out;
  }
  r = 0;
out:
  gf_free_strings(roots);
  return r;
}
