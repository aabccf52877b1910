/* api_ca.c - GET /v1/ca.pem: the CA certificate agents pin.
 *
 * No token: a certificate is public, and an agent fetches it before it
 * has one.  What makes this safe is the agent, which takes the answer
 * only when its SHA-256 is the fingerprint it was given with its
 * enrollment token (agent/server_ca.c). */
#include <string.h>

#include "api.h"

enum MHD_Result api_ca_get(struct request *r)
{
  struct MHD_Response *resp;

  if (r->srv->ca_pem == NULL)
    return reply_error(r, 404, NULL, "this server has no CA to offer: it "
                       "serves plain HTTP, or was given its certificate "
                       "without --tls-ca (agents then need server_ca_file)");
  resp = MHD_create_response_from_buffer(strlen(r->srv->ca_pem),
                                         (void *)r->srv->ca_pem,
                                         MHD_RESPMEM_PERSISTENT);
  if (resp == NULL)
    return MHD_NO;
  MHD_add_response_header(resp, "Content-Type", "application/x-pem-file");
  return reply_response(r, 200, resp);
}
