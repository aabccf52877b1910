/* providers.h - what each target accepts: formats, boot modes, limits,
 * drivers.  One table (providers.c) used by blueprint validation and
 * preflight; docs/BLUEPRINTS.md explains each rule. */
#ifndef FERRY_PROVIDERS_H
#define FERRY_PROVIDERS_H

#include <stddef.h>
#include <stdint.h>

struct provider {
  const char *name;
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
};

const struct provider *provider_lookup(const char *name);
/* "local, aws, azure, gcp, openstack" */
const char *provider_names(void);
int provider_has_format(const struct provider *p, const char *format);
/* "raw, vmdk" for messages */
void provider_formats(const struct provider *p, char *buf, size_t size);

#endif
