/* discover.h - what a source server is: its inventory as JSON.
 *
 * Everything is read below a root directory (/ on a live server, a fixture
 * tree in tests): /proc, /sys, /etc, /boot, /lib/modules, /run/udev.  No
 * tool is run and no device is probed, so the agent works the same on a
 * minimal server and in a test.  A field that cannot be read is null
 * ("unknown"), never guessed.  docs/INVENTORY.md documents every field and
 * the file it comes from. */
#ifndef FERRY_DISCOVER_H
#define FERRY_DISCOVER_H

#include <jansson.h>

/* 2: every part of issue 5 (network, LVM, mounts, drivers, platform...);
 * 1 had only hostname, os, kernel, cpu count, memory and disks. */
#define INVENTORY_SCHEMA 2

/* The inventory of the system at root; NULL with an error if root is no
 * readable directory, or on OOM. */
json_t *discover_inventory(const char *root);

#endif
