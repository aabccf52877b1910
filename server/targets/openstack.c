/* openstack.c - OpenStack (Nova, Glance, Neutron).  Rules: raw or qcow2
 * images over virtio, BIOS or UEFI.
 * Driver: none yet (issue 14: Glance image, network, port, server). */
#include "target.h"

static const char *const formats[] = { "qcow2", "raw", NULL };
static const char *const storage[] = { "virtio_blk|virtio_scsi", NULL };
static const char *const net[] = { "virtio_net", NULL };

const struct target_ops target_openstack = {
  .name = "openstack",
  .rules = {
    .needs_machine_type = 1, .formats = formats, .bios_ok = 1,
    .uefi_ok = 1, .gpt_bios_ok = 1, .storage_drivers = storage,
    .net_drivers = net,
    .driver_hint = "install the virtio drivers and rebuild the initramfs",
    .guest_agent = "cloud-init",
    .guest_agent_hint = "install cloud-init so the instance takes its "
                        "keys and network from the metadata service",
  },
};
