/* discover.h - what a source server is: its inventory as JSON.
 *
 * Everything is read below a root directory (/ on a live server, a fixture
 * tree in tests): /proc, /sys, /etc.  A field that cannot be read is null
 * ("unknown"), never guessed. */
#ifndef FERRY_DISCOVER_H
#define FERRY_DISCOVER_H

#include <jansson.h>

#define INVENTORY_SCHEMA 1

/* The inventory of the system at root; NULL with an error on OOM. */
json_t *discover_inventory(const char *root);

#endif
