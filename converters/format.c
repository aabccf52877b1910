/* format.c - format name -> writer. */
#include "format.h"

#include <stdio.h>
#include <string.h>

#include "error.h"

extern const struct format_ops format_raw;

static const struct format_ops *const formats[] = {
  &format_raw,
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
