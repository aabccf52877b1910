/* api.h - the REST API: requests, routes and JSON replies. */
#ifndef FERRY_API_H
#define FERRY_API_H

#include <stddef.h>

#include <jansson.h>
#include <microhttpd.h>
#include <sqlite3.h>

#define API_BODY_MAX (4u << 20)        /* larger bodies get 413 */
#define API_MAX_PARAMS 4

struct server {
  sqlite3 *db;
};

struct request {
  struct server *srv;
  struct MHD_Connection *conn;
  const char *method;
  const char *path;
  const char *params[API_MAX_PARAMS];  /* {id} segments of the route */
  char *body;                          /* NUL-terminated */
  size_t body_len;
};

struct route {
  const char *method;
  const char *pattern;                 /* "/v1/hosts/{id}" */
  enum MHD_Result (*handler)(struct request *r);
};

/* Reply with body as JSON (reference stolen). */
enum MHD_Result reply_json(struct request *r, unsigned status, json_t *body);
/* {"error": {"status": N, "message": "...", "field": "..."}} */
enum MHD_Result reply_error(struct request *r, unsigned status,
                            const char *field, const char *fmt, ...)
  __attribute__((format(printf, 4, 5)));

/* Parse the body as a JSON object; NULL after replying 400. */
json_t *request_json(struct request *r, enum MHD_Result *result);

/* {id} parameter i as a positive integer; 0 if it is not one. */
long long request_id(struct request *r, int i);

/* MHD's access handler with the route table. */
enum MHD_Result api_handle(void *cls, struct MHD_Connection *conn,
                           const char *url, const char *method,
                           const char *version, const char *upload_data,
                           size_t *upload_data_size, void **con_cls);
void api_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                   enum MHD_RequestTerminationCode toe);

/* Handlers, by file. */
enum MHD_Result api_discovery_post(struct request *r);
enum MHD_Result api_hosts_list(struct request *r);
enum MHD_Result api_host_get(struct request *r);

#endif
