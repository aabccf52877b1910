/* services.c - the old platform's tools disabled, the target's guest agent
 * and cloud-init enabled where the guest has them, SELinux relabelled on
 * first boot where it enforces (the files preparation wrote have no
 * labels). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "prepare.h"
#include "util/cleanup.h"
#include "util/error.h"

/* The unit file of name, or NULL. */
static const char *unit_path(struct prep *x, const char *name, char *buf,
                             size_t cap)
{
  static const char *const forms[] = { "/etc/systemd/system/%s",
                                       "/usr/lib/systemd/system/%s",
                                       "/lib/systemd/system/%s", NULL };

  return gf_first_file(x, forms, name, buf, cap);
}

static int systemctl(struct prep *x, const char *verb, const char *unit)
{
  CLEANUP_FREE char *out = NULL;
  char cmd[300];

  snprintf(cmd, sizeof cmd, "systemctl %s '%s' 2>&1", verb, unit);
  return (out = gf_sh(x, cmd)) ? 0 : -1;
}

static const char *const cloud_init[] = {
  "cloud-init-local.service", "cloud-init.service", "cloud-config.service",
  "cloud-final.service", NULL };

int prep_services(struct prep *x)
{
  char path[300];
  size_t i;

  if (guestfs_is_dir(x->g, "/etc/systemd/system") != 1) {
    prep_note(x, "the guest does not run systemd: its services are left as "
              "they are");
    return 0;
  }
  for (i = 0; x->p->foreign[i]; i++) {
    if (unit_path(x, x->p->foreign[i], path, sizeof path) == NULL)
      continue;
    if (systemctl(x, "disable", x->p->foreign[i]) == -1 ||
        systemctl(x, "mask", x->p->foreign[i]) == -1)
      return -1;
    prep_change(x, path, "a tool of the source's platform, which the "
                "target is not: it would wait for a hypervisor that is not "
                "there", "%s disabled and masked", x->p->foreign[i]);
  }
  for (i = 0; x->p->agents[i]; i++) {
    if (unit_path(x, x->p->agents[i], path, sizeof path) == NULL)
      continue;
    if (systemctl(x, "enable", x->p->agents[i]) == -1)
      return -1;
    prep_change(x, path, "the target's guest agent", "%s enabled",
                x->p->agents[i]);
  }
  if (strcmp(x->p->name, "local") != 0)
    for (i = 0; cloud_init[i]; i++) {
      if (unit_path(x, cloud_init[i], path, sizeof path) == NULL)
        continue;
      if (systemctl(x, "enable", cloud_init[i]) == -1)
        return -1;
      prep_change(x, path, "cloud-init applies the cloud's metadata "
                  "(keys, host name) on first boot", "%s enabled",
                  cloud_init[i]);
    }
  return 0;
}

int prep_selinux(struct prep *x)
{
  CLEANUP_FREE char *text = NULL;

  if (!gf_is_file(x, "/etc/selinux/config"))
    return 0;
  if ((text = gf_read(x, "/etc/selinux/config", NULL)) == NULL)
    return -1;
  if (strstr(text, "\nSELINUX=enforcing") == NULL &&
      strncmp(text, "SELINUX=enforcing", 17) != 0 &&
      strstr(text, "\nSELINUX=permissive") == NULL &&
      strncmp(text, "SELINUX=permissive", 18) != 0)
    return 0;
  if (guestfs_touch(x->g, "/.autorelabel") == -1) {
    ferry_error("cannot create /.autorelabel in the guest: %s",
                guestfs_last_error(x->g));
    return -1;
  }
  prep_change(x, "/.autorelabel", "SELinux is on and the files preparation "
              "wrote carry no labels: the first boot relabels the "
              "filesystem", "created");
  return 0;
}
