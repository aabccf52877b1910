/* profiles.c - what each target needs of a guest (docs/PREPARATION.md has
 * the reasons).  Driver names as the kernel spells them (modules.dep),
 * '-' and '_' alike. */
#include <string.h>

#include "prepare.h"

#define LIST(...) (const char *const[]){ __VA_ARGS__, NULL }

/* Every platform's own tools: disabled wherever the guest does not run on
 * that platform any more (they wait for a hypervisor that is not there). */
#define VMWARE "open-vm-tools.service", "vmtoolsd.service", \
  "vmware-tools.service", "vgauth.service"
#define XEN "xe-linux-distribution.service", "xe-daemon.service", \
  "xenstored.service"
#define HYPERV "hv-kvp-daemon.service", "hv-vss-daemon.service", \
  "hv-fcopy-daemon.service", "hyperv-daemons.service", \
  "hypervkvpd.service", "hypervvssd.service", "hypervfcopyd.service"
#define VBOX "vboxadd.service", "vboxadd-service.service"

static const struct prep_profile profiles[] = {
  {
    .name = "aws", .hardware = "AWS Nitro (NVMe disks, ENA network)",
    .storage = LIST("nvme"),
    /* Xen-based instance types still boot from xen-blkfront */
    .extra = LIST("xen_blkfront", "xen_netfront"),
    .nic = LIST("ena", "ixgbevf", "xen_netfront"),
    .console = "console=ttyS0,115200n8",
    /* AWS: an NVMe I/O timeout must never fail the root device */
    .cmdline_extra = "nvme_core.io_timeout=4294967295",
    .agents = LIST("amazon-ssm-agent.service",
                   "snap.amazon-ssm-agent.amazon-ssm-agent.service"),
    .foreign = LIST(VMWARE, XEN, HYPERV, VBOX),
  },
  {
    .name = "azure", .hardware = "Azure Hyper-V (VMBus, storvsc, netvsc)",
    .storage = LIST("hv_vmbus", "hv_storvsc"),
    /* storvsc's disks are SCSI disks */
    .extra = LIST("sd_mod", "hv_netvsc", "hv_utils"),
    .nic = LIST("hv_netvsc"),
    /* qemu cannot emulate VMBus: its model of Azure boots from IDE */
    .emulated = LIST("ata_piix", "ata_generic"),
    /* Azure: serial console and boot diagnostics read ttyS0.  No
     * rootdelay=300 (Azure's old advice for disks that appear late on
     * VMBus): Debian 12's initramfs-tools sleeps the whole delay on every
     * boot (its init: sleep "$ROOTDELAY"; measured: a 350 s boot instead
     * of 41 s), and its scripts/local and dracut wait for the root device
     * by themselves */
    .console = "console=ttyS0,115200n8 earlyprintk=ttyS0",
    .agents = LIST("walinuxagent.service", "waagent.service"),
    .foreign = LIST(VMWARE, XEN, VBOX),
  },
  {
    .name = "gcp", .hardware = "GCE (virtio-scsi or NVMe disks, "
                               "virtio-net or gVNIC)",
    .storage = LIST("virtio_scsi", "virtio_pci"),
    .extra = LIST("nvme", "sd_mod"),
    .nic = LIST("virtio_net", "gve"),
    /* GCE's serial port 1 runs at 38400 */
    .console = "console=ttyS0,38400n8",
    .agents = LIST("google-guest-agent.service",
                   "google-osconfig-agent.service"),
    .foreign = LIST(VMWARE, XEN, HYPERV, VBOX),
  },
  {
    .name = "openstack", .hardware = "OpenStack KVM (virtio-blk, "
                                     "virtio-net)",
    .storage = LIST("virtio_blk", "virtio_pci"),
    .extra = LIST("virtio_scsi", "sd_mod"),
    .nic = LIST("virtio_net"),
    .console = "console=tty0 console=ttyS0,115200n8",
    .agents = LIST("qemu-guest-agent.service"),
    .foreign = LIST(VMWARE, XEN, HYPERV, VBOX),
  },
  {
    .name = "local", .hardware = "KVM/QEMU (virtio-blk, virtio-net)",
    .storage = LIST("virtio_blk", "virtio_pci"),
    .extra = LIST("virtio_scsi", "sd_mod"),
    .nic = LIST("virtio_net"),
    .console = "console=tty0 console=ttyS0,115200n8",
    .agents = LIST("qemu-guest-agent.service"),
    .foreign = LIST(VMWARE, XEN, HYPERV, VBOX),
  },
};

const struct prep_profile *prep_profile(const char *name)
{
  size_t i;

  for (i = 0; name && i < sizeof profiles / sizeof profiles[0]; i++)
    if (strcmp(profiles[i].name, name) == 0)
      return &profiles[i];
  return NULL;
}
