/* gcp.c - Google Compute Engine.  Rules (checked 2026): image import
 * takes disk.raw in a gzip'd GNU tar; BIOS and UEFI; persistent disks up
 * to 64 TiB; the guest needs virtio-scsi or NVMe and virtio-net or gVNIC.
 * Driver: none yet (issue 14: images.insert, VPC network, instance). */
#include "target.h"

static const char *const formats[] = { "gce", NULL };
static const char *const storage[] = { "virtio_scsi|nvme", NULL };
static const char *const net[] = { "virtio_net|gve", NULL };

const struct target_ops target_gcp = {
  .name = "gcp",
  .rules = {
    .needs_region = 1, .needs_machine_type = 1, .formats = formats,
    .bios_ok = 1, .uefi_ok = 1, .gpt_bios_ok = 1, .max_disk = 64 * TiB,
    .storage_drivers = storage, .net_drivers = net,
    .driver_hint = "install virtio-scsi and virtio-net (or gve) and "
                   "rebuild the initramfs",
    .guest_agent = "google-guest-agent",
    .guest_agent_hint = "install google-guest-agent for SSH keys, "
                        "metadata and the network",
  },
};
