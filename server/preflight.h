/* preflight.h - will this host boot and run on its target?  Checks a
 * host's inventory against the target's rules (targets/NAME.c). */
#ifndef FERRY_PREFLIGHT_H
#define FERRY_PREFLIGHT_H

#include <jansson.h>

/* Append findings {severity, code, message} for plan (provider, disks,
 * host entry) against inventory inv; returns the number of errors. */
int preflight_run(json_t *plan, json_t *inv, json_t *findings);

/* The planned disk holding /boot/efi, /boot or / (in that order), else
 * the plan's first disk: the disk that boots. */
const char *preflight_boot_disk(json_t *plan, json_t *inv);

#endif
