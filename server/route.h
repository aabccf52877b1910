/* route.h - the route table and its matcher, for httpd.c and for the
 * fuzzer that feeds them paths (tests/fuzz/fuzz_http.c). */
#ifndef FERRY_ROUTE_H
#define FERRY_ROUTE_H

#include <stddef.h>

#include "api.h"

/* Match path against pattern ("/v1/hosts/{id}"), capturing {x} segments
 * into r->params as NUL-terminated copies in buf[0..size).  1 if it
 * matches, 0 if not (or the captures do not fit). */
int route_match(const char *pattern, const char *path, struct request *r,
                char *buf, size_t size);

/* The route table, in match order; *n gets its length. */
const struct route *api_routes(size_t *n);

#endif
