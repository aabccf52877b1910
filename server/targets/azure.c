/* azure.c - Microsoft Azure.  Rules (checked 2026): uploads are fixed
 * VHDs with a whole number of MiB; a Gen1 VM boots BIOS only, from an MBR
 * disk of at most 2040 GiB; managed data disks up to 32 TiB; the guest
 * needs the Hyper-V drivers (hv_vmbus, hv_storvsc, hv_netvsc) in its
 * initramfs.
 * Driver: none yet (issue 14: managed disk by upload, VNet, NSG, VM). */
#include "target.h"

static const char *const formats[] = { "vhd", NULL };
static const char *const storage[] = { "hv_vmbus", "hv_storvsc", NULL };
static const char *const net[] = { "hv_netvsc", NULL };

const struct target_ops target_azure = {
  .name = "azure",
  .rules = {
    .needs_region = 1, .needs_machine_type = 1, .formats = formats,
    .bios_ok = 1, .gpt_bios_ok = 1, .max_boot_disk = 2040 * GiB,
    .max_disk = 32 * TiB, .storage_drivers = storage, .net_drivers = net,
    .driver_hint = "add hv_vmbus hv_storvsc hv_netvsc to the initramfs "
                   "(dracut -f --add-drivers, or /etc/initramfs-tools/"
                   "modules and update-initramfs -u)",
    .guest_agent = "waagent",
    .guest_agent_hint = "install the Azure Linux Agent (WALinuxAgent) for "
                        "provisioning and extensions",
  },
};
