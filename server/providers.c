/* providers.c - the targets' rules.  Sources (checked 2026):
 * - AWS VM Import/Export: formats VMDK (streamOptimized), VHD (dynamic),
 *   raw; boot modes legacy-bios and uefi (ImportImage BootMode); MBR boot
 *   volumes up to 2 TiB, larger boot disks need GPT with UEFI; EBS volumes
 *   up to 64 TiB; Nitro instances need the ENA and NVMe drivers.
 * - Azure: uploads are fixed VHDs with a whole number of MiB; a Gen1 VM
 *   boots BIOS only from an MBR disk of at most 2040 GiB; managed data
 *   disks up to 32 TiB; the guest needs the Hyper-V drivers (hv_vmbus,
 *   hv_storvsc, hv_netvsc) in its initramfs.
 * - GCP: image import takes disk.raw in a gzip'd GNU tar; BIOS and UEFI;
 *   persistent disks up to 64 TiB; the guest needs virtio-scsi or NVMe
 *   and virtio-net or gVNIC.
 * - OpenStack and local KVM: raw or qcow2 over virtio. */
#include "providers.h"

#include <stdio.h>
#include <string.h>

#define TiB (UINT64_C(1) << 40)
#define GiB (UINT64_C(1) << 30)

static const char *const aws_formats[] = { "vmdk", "vhd-dynamic", "raw",
                                           NULL };
static const char *const azure_formats[] = { "vhd", NULL };
static const char *const gcp_formats[] = { "gce", NULL };
static const char *const openstack_formats[] = { "qcow2", "raw", NULL };
static const char *const local_formats[] = { "raw", "qcow2", "vhd",
                                             "vhd-dynamic", "vmdk", "gce",
                                             NULL };

static const char *const aws_storage[] = { "nvme|xen_blkfront", NULL };
static const char *const aws_net[] = { "ena|xen_netfront", NULL };
static const char *const azure_storage[] = { "hv_vmbus", "hv_storvsc",
                                             NULL };
static const char *const azure_net[] = { "hv_netvsc", NULL };
static const char *const gcp_storage[] = { "virtio_scsi|nvme", NULL };
static const char *const gcp_net[] = { "virtio_net|gve", NULL };
static const char *const virtio_storage[] = { "virtio_blk|virtio_scsi",
                                              NULL };
static const char *const virtio_net[] = { "virtio_net", NULL };

static const struct provider providers[] = {
  { .name = "local", .formats = local_formats, .bios_ok = 1, .uefi_ok = 1,
    .gpt_bios_ok = 1, .storage_drivers = virtio_storage,
    .net_drivers = virtio_net,
    .driver_hint = "install the virtio drivers and rebuild the initramfs "
                   "(dracut --add-drivers virtio_blk, or add virtio_blk to "
                   "/etc/initramfs-tools/modules and run update-initramfs "
                   "-u)" },
  { .name = "aws", .needs_region = 1, .needs_machine_type = 1,
    .formats = aws_formats, .bios_ok = 1, .uefi_ok = 1,
    .max_boot_disk = 2 * TiB, .max_disk = 64 * TiB,
    .storage_drivers = aws_storage, .net_drivers = aws_net,
    .driver_hint = "install the NVMe and ENA drivers (in the kernel since "
                   "4.x; RHEL/CentOS 7 ship them) and rebuild the "
                   "initramfs (dracut -f --add-drivers nvme)",
    .guest_agent = "cloud-init",
    .guest_agent_hint = "install cloud-init so the instance takes its "
                        "hostname, keys and network from EC2" },
  { .name = "azure", .needs_region = 1, .needs_machine_type = 1,
    .formats = azure_formats, .bios_ok = 1, .gpt_bios_ok = 1,
    .max_boot_disk = 2040 * GiB,
    .max_disk = 32 * TiB, .storage_drivers = azure_storage,
    .net_drivers = azure_net,
    .driver_hint = "add hv_vmbus hv_storvsc hv_netvsc to the initramfs "
                   "(dracut -f --add-drivers, or /etc/initramfs-tools/modules "
                   "and update-initramfs -u)",
    .guest_agent = "waagent",
    .guest_agent_hint = "install the Azure Linux Agent (WALinuxAgent) for "
                        "provisioning and extensions" },
  { .name = "gcp", .needs_region = 1, .needs_machine_type = 1,
    .formats = gcp_formats, .bios_ok = 1, .uefi_ok = 1, .gpt_bios_ok = 1,
    .max_disk = 64 * TiB, .storage_drivers = gcp_storage,
    .net_drivers = gcp_net,
    .driver_hint = "install virtio-scsi and virtio-net (or gve) and "
                   "rebuild the initramfs",
    .guest_agent = "google-guest-agent",
    .guest_agent_hint = "install google-guest-agent for SSH keys, "
                        "metadata and the network" },
  { .name = "openstack", .needs_machine_type = 1,
    .formats = openstack_formats, .bios_ok = 1, .uefi_ok = 1,
    .gpt_bios_ok = 1, .storage_drivers = virtio_storage,
    .net_drivers = virtio_net,
    .driver_hint = "install the virtio drivers and rebuild the initramfs",
    .guest_agent = "cloud-init",
    .guest_agent_hint = "install cloud-init so the instance takes its "
                        "keys and network from the metadata service" },
};

#define N_PROVIDERS (sizeof providers / sizeof providers[0])

const struct provider *provider_lookup(const char *name)
{
  size_t i;

  for (i = 0; name && i < N_PROVIDERS; i++)
    if (strcmp(providers[i].name, name) == 0)
      return &providers[i];
  return NULL;
}

const char *provider_names(void)
{
  return "local, aws, azure, gcp, openstack";
}

int provider_has_format(const struct provider *p, const char *format)
{
  size_t i;

  for (i = 0; format && p->formats[i]; i++)
    if (strcmp(p->formats[i], format) == 0)
      return 1;
  return 0;
}

void provider_formats(const struct provider *p, char *buf, size_t size)
{
  size_t i, n = 0;

  buf[0] = '\0';
  for (i = 0; p->formats[i] && n < size; i++)
    n += (size_t)snprintf(buf + n, size - n, "%s%s", i ? ", " : "",
                          p->formats[i]);
}
