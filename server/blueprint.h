/* blueprint.h - a migration plan: the target provider, its networks, and
 * how each discovered host lands there (docs/BLUEPRINTS.md).
 *
 * Validation collects every finding rather than stopping at the first, each
 * as {"severity": "error"|"warning", "path": "hosts[1].ip", "line": 12,
 * "message": "..."}. */
#ifndef FERRY_BLUEPRINT_H
#define FERRY_BLUEPRINT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <sqlite3.h>

/* YAML or JSON text (JSON when it starts with '{') to a document plus a
 * path -> line map.  NULL with an error "line N: ..." if unreadable. */
json_t *blueprint_parse(const char *text, size_t len, json_t **lines);

/* Host and disk names in a blueprint name store keys: one that could not
 * be one is a bad request, refused before anything else is looked at.
 * NULL if all are fine, else the bad field's path in field (size bytes)
 * with the error set. */
const char *blueprint_bad_name(json_t *bp, char *field, size_t size);

/* Check the document's shape and rules; append findings.  Returns the
 * number of errors. */
int blueprint_validate(json_t *bp, json_t *lines, json_t *findings);

/* Check that every host was discovered (db) in project_id; append
 * findings. */
int blueprint_check_hosts(json_t *bp, json_t *lines, sqlite3 *db,
                          long long project_id,
                          json_t *findings);

/* The blueprint's entry for hostname, or NULL. */
json_t *blueprint_host(json_t *bp, const char *hostname);

/* Output format for a host entry (its own or the provider's default). */
const char *blueprint_format(json_t *bp, json_t *host);

/* options.sync_interval in seconds (default 3600). */
long long blueprint_sync_interval(json_t *bp);

/* Append a finding (line looked up from lines by path). */
void finding_add(json_t *findings, json_t *lines, const char *severity,
                 const char *path, const char *fmt, ...)
  __attribute__((format(printf, 5, 6)));

/* Parse "a.b.c.d/n"; 0 or -1. */
int cidr_parse(const char *text, uint32_t *net, int *prefix);
int ipv4_parse(const char *text, uint32_t *ip);

#endif
