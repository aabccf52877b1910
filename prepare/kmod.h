/* kmod.h - find a driver in module lists (kmod.c). */
#ifndef FERRY_PREPARE_KMOD_H
#define FERRY_PREPARE_KMOD_H

#define KMOD_FIELD_FIRST 0     /* modules.dep / modules.builtin lines */
#define KMOD_FIELD_LAST 1      /* lsinitramfs / lsinitrd lines */

/* 1 if text (one path per line, in field) lists module name. */
int kmod_listed(const char *text, const char *name, int field);

#endif
