/* util/cleanup.h - scope-based cleanup (nbdkit common/utils/cleanup.h). */
#ifndef FERRY_CLEANUP_H
#define FERRY_CLEANUP_H

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static inline void cleanup_free(void *ptr)
{
  free(*(void **)ptr);
}
#define CLEANUP_FREE __attribute__((cleanup(cleanup_free)))

static inline void cleanup_fclose(FILE **fp)
{
  if (*fp)
    fclose(*fp);
}
#define CLEANUP_FCLOSE __attribute__((cleanup(cleanup_fclose)))

static inline void cleanup_close(int *fd)
{
  if (*fd >= 0)
    close(*fd);
}
#define CLEANUP_CLOSE __attribute__((cleanup(cleanup_close)))

/* jansson: json_decref accepts NULL */
#define CLEANUP_JSON __attribute__((cleanup(cleanup_json)))
struct json_t;
void cleanup_json(void *ptr);

#endif
