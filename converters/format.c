/* format.c - format name -> writer. */
#include "format.h"

#include <stdio.h>
#include <string.h>

#include "util/error.h"

extern const struct format_ops format_raw;
extern const struct format_ops format_vhd;
extern const struct format_ops format_vhd_dynamic;
extern const struct format_ops format_vmdk;
extern const struct format_ops format_qcow2;
extern const struct format_ops format_gce;

/* --format NAME -> writer and reader (curl's scheme table). */
static const struct format_ops *const formats[] = {
  &format_raw,
  &format_vhd,
  &format_vhd_dynamic,
  &format_vmdk,
  &format_qcow2,
  &format_gce,
};

#define N_FORMATS (sizeof formats / sizeof formats[0])

const struct format_ops *format_lookup(const char *name)
{
  char names[256];
  size_t i, n = 0;

  for (i = 0; i < N_FORMATS; i++)
    if (strcmp(formats[i]->name, name) == 0)
      return formats[i];
  for (i = 0; i < N_FORMATS && n < sizeof names; i++)
    n += (size_t)snprintf(names + n, sizeof names - n, "%s%s",
                          i ? ", " : "", formats[i]->name);
  ferry_error("unknown format '%s': use one of %s", name, names);
  return NULL;
}

void format_list(void)
{
  size_t i;

  for (i = 0; i < N_FORMATS; i++)
    printf("%-12s %s\n", formats[i]->name, formats[i]->description);
}
