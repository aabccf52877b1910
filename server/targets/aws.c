/* aws.c - Amazon EC2.  Rules (checked 2026): VM Import/Export takes VMDK
 * (streamOptimized), VHD (dynamic) and raw; boot modes legacy-bios and
 * uefi (ImportImage BootMode); MBR boot volumes up to 2 TiB, larger boot
 * disks need GPT with UEFI; EBS volumes up to 64 TiB; Nitro instances
 * present the disk as NVMe and the NIC as ENA.
 * Driver: none yet (issue 14: EBS direct snapshot, RegisterImage, VPC,
 * RunInstances). */
#include "target.h"

static const char *const formats[] = { "vmdk", "vhd-dynamic", "raw", NULL };
static const char *const storage[] = { "nvme|xen_blkfront", NULL };
static const char *const net[] = { "ena|xen_netfront", NULL };

const struct target_ops target_aws = {
  .name = "aws",
  .rules = {
    .needs_region = 1, .needs_machine_type = 1, .formats = formats,
    .bios_ok = 1, .uefi_ok = 1, .max_boot_disk = 2 * TiB,
    .max_disk = 64 * TiB, .storage_drivers = storage, .net_drivers = net,
    .driver_hint = "install the NVMe and ENA drivers (in the kernel since "
                   "4.x; RHEL/CentOS 7 ship them) and rebuild the "
                   "initramfs (dracut -f --add-drivers nvme)",
    .guest_agent = "cloud-init",
    .guest_agent_hint = "install cloud-init so the instance takes its "
                        "hostname, keys and network from EC2",
  },
};
