/* api_ui.c - the dashboard (docs/DASHBOARD.md): its three files, built
 * into the server so that there is no second server to run and nothing to
 * install beside the binary, and GET /v1/whoami, which tells the page what
 * the token it holds may do.
 *
 * The files are public (they hold no data and no secret: everything the
 * page shows it fetches from the API with the operator's token), and are
 * served with a Content-Security-Policy that allows only their own script
 * and style, so that text from a host's inventory can never run as code. */
#include <string.h>

#include "api.h"
#include "db.h"
#include "util/error.h"

/* The files themselves, embedded by the assembler (.incbin reads them at
 * build time; the Makefile makes this object depend on server/ui/).  Each
 * is followed by a NUL so the end symbol is inside the section. */
#define UI_EMBED(sym, file)                                          \
  __asm__(".section .rodata\n"                                      \
          ".global " #sym "\n"                                       \
          ".balign 16\n"                                             \
          #sym ":\n"                                                 \
          ".incbin \"" file "\"\n"                                   \
          ".global " #sym "_end\n"                                   \
          #sym "_end:\n"                                             \
          ".byte 0\n"                                                \
          ".previous\n");                                            \
  extern const char sym[], sym##_end[]

UI_EMBED(ui_index_html, "server/ui/index.html");
UI_EMBED(ui_app_js, "server/ui/app.js");
UI_EMBED(ui_app_css, "server/ui/app.css");

struct ui_file {
  const char *name;
  const char *type;
  const char *data, *end;
};

static const struct ui_file ui_files[] = {
  { "index.html", "text/html; charset=utf-8", ui_index_html,
    ui_index_html_end },
  { "app.js", "text/javascript; charset=utf-8", ui_app_js, ui_app_js_end },
  { "app.css", "text/css; charset=utf-8", ui_app_css, ui_app_css_end },
};

/* Only the page's own files; no inline script or style, no frames, no
 * other origin: an inventory string rendered by mistake as HTML would
 * still not run. */
#define UI_CSP "default-src 'none'; script-src 'self'; style-src 'self'; " \
  "connect-src 'self'; img-src 'self' data:; base-uri 'none'; "              \
  "form-action 'self'; frame-ancestors 'none'"

static enum MHD_Result reply_file(struct request *r, const struct ui_file *f)
{
  struct MHD_Response *resp;

  resp = MHD_create_response_from_buffer((size_t)(f->end - f->data),
                                         (void *)f->data,
                                         MHD_RESPMEM_PERSISTENT);
  if (resp == NULL)
    return MHD_NO;
  MHD_add_response_header(resp, "Content-Type", f->type);
  /* small files: revalidate each time rather than serve a stale page
   * after an upgrade */
  MHD_add_response_header(resp, "Cache-Control", "no-cache");
  MHD_add_response_header(resp, "Content-Security-Policy", UI_CSP);
  MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
  MHD_add_response_header(resp, "X-Frame-Options", "DENY");
  MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
  return reply_response(r, 200, resp);
}

enum MHD_Result api_ui_root(struct request *r)
{
  struct MHD_Response *resp;

  resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
  if (resp == NULL)
    return MHD_NO;
  MHD_add_response_header(resp, "Location", "/ui/");
  return reply_response(r, 302, resp);
}

enum MHD_Result api_ui_index(struct request *r)
{
  return reply_file(r, &ui_files[0]);
}

enum MHD_Result api_ui_file(struct request *r)
{
  size_t i;

  for (i = 0; i < sizeof ui_files / sizeof ui_files[0]; i++)
    if (strcmp(r->params[0], ui_files[i].name) == 0)
      return reply_file(r, &ui_files[i]);
  return reply_error(r, 404, NULL, "no such file in the dashboard: %s",
                     r->params[0]);
}

enum MHD_Result api_whoami(struct request *r)
{
  json_t *row;

  db_lock();
  row = db_query_one(r->srv->db, "SELECT p.name AS project, (SELECT name "
                     "FROM tokens WHERE id = ?2) AS token FROM projects p "
                     "WHERE p.id = ?1", "ii", r->project_id, r->token_id);
  db_unlock();
  if (row == NULL)
    return reply_error(r, 500, NULL, "%s", ferry_errmsg());
  if (json_is_null(row)) {
    json_decref(row);
    return reply_error(r, 404, "project", "no project %lld", r->project_id);
  }
  json_object_set_new(row, "role", json_string(scope_role_name(r->scope)));
  json_object_set_new(row, "server_admin", json_boolean(r->server_admin));
  return reply_json(r, 200, row);
}
