/* azure_arm.h - Azure Resource Manager for the azure driver: the service
 * principal's token (Microsoft identity platform, OAuth2 client
 * credentials), ARM requests with Azure's error bodies turned into one
 * line, and the long-running-operation protocol (Azure-AsyncOperation or
 * Location polled, Retry-After honoured). */
#ifndef FERRY_AZURE_ARM_H
#define FERRY_AZURE_ARM_H

#include <jansson.h>

struct task_ctx;

/* API versions, each one whose models the contract server checks against
 * (tests/azure_contract.py, python3-azure's azure.mgmt.* packages) */
#define ARM_API_RESOURCES "2022-09-01"
#define ARM_API_NETWORK "2022-07-01"
#define ARM_API_COMPUTE "2022-08-01"
#define ARM_API_DISKS "2022-07-02"

#define ARM_DEFAULT "https://management.azure.com"
#define ARM_LOGIN_DEFAULT "https://login.microsoftonline.com"
#define ARM_SCOPE "https://management.azure.com/.default"

struct arm {
  struct task_ctx *t;
  char *arm;              /* ARM endpoint, no trailing '/' */
  char *login;            /* the identity platform's authority */
  const char *tenant, *client, *secret;   /* the environment's */
  const char *sub;        /* AZURE_SUBSCRIPTION_ID */
};

/* Read the service principal from the environment and endpoints from
 * plan (endpoints.arm / endpoints.login, else AZURE_AUTHORITY_HOST), and
 * get a token now, so that a wrong credential fails before anything is
 * made, naming the variable to check.  0, or -1 with an error. */
int arm_open(struct arm *a, struct task_ctx *t, json_t *plan);
void arm_close(struct arm *a);

/* method on path ("/subscriptions/..." with its ?api-version=), body
 * NULL or JSON.  Returns the HTTP status (2xx, or 404 when ok404) with
 * *out the answer's JSON (NULL when it had none; caller decrefs); any
 * other answer is -1 with an error naming what, Azure's error code and
 * message.  Long-running operations are waited for: a PUT, POST or
 * DELETE answered 201/202 with Azure-AsyncOperation or Location is
 * polled until it ends (Retry-After honoured, bounded by max_seconds);
 * then a PUT's resource and a POST's result (its Location) are read and
 * returned in *out. */
long arm_call(struct arm *a, const char *what, const char *method,
              const char *path, json_t *body, int ok404,
              unsigned max_seconds, json_t **out);

/* "/subscriptions/SUB/resourceGroups/RG/providers/PROVIDER/NAME"
 * (caller frees) */
char *arm_id(struct arm *a, const char *rg, const char *provider,
             const char *name);

#endif
