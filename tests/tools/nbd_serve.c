/* nbd-serve - serve one generation of a chunked image over NBD
 * (lib/nbd/export.h) until SIGTERM or SIGINT, then commit what was written
 * (lib/image/access.h) and print the resulting manifest as JSON.
 *
 *   nbd-serve STORE-URL SOCKET [--generation N] [--overlay DIR]
 *             [--for NAME] [--compress none|gzip|zstd]
 *
 * Without --generation it serves manifest.json.  Prints "ready" on stderr
 * once the socket listens.  Exit 1 with one line on stderr if anything
 * failed, a request's I/O error included (then nothing is committed). */
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/error.h"
#include "util/log.h"
#include "image/access.h"
#include "nbd/export.h"
#include "store/store.h"

static int die(const char *what)
{
  fprintf(stderr, "nbd-serve: %s%s%s\n", what ? what : "", what ? ": " : "",
          ferry_errmsg());
  return 1;
}

int main(int argc, char **argv)
{
  struct image_access_opts ao = { 0 };
  struct image_commit_opts co = { .enc = ENC_ZSTD, .prepared_for = "test" };
  struct image_manifest m, out;
  struct image_access *a;
  struct nbd_export *e;
  struct store *s;
  uint64_t generation = 0;
  sigset_t set;
  char *text;
  int i, sig, rc;

  log_init("nbd-serve", 0);
  if (argc < 3) {
    fprintf(stderr, "usage: nbd-serve STORE-URL SOCKET [--generation N] "
            "[--overlay DIR] [--for NAME] [--compress ENC]\n");
    return 2;
  }
  for (i = 3; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--generation") == 0)
      generation = strtoull(argv[i + 1], NULL, 10);
    else if (strcmp(argv[i], "--overlay") == 0)
      ao.overlay_dir = argv[i + 1];
    else if (strcmp(argv[i], "--for") == 0)
      co.prepared_for = argv[i + 1];
    else if (strcmp(argv[i], "--compress") == 0) {
      if (codec_parse(argv[i + 1], &co.enc) == -1)
        return die(NULL);
    } else {
      fprintf(stderr, "nbd-serve: unknown option %s\n", argv[i]);
      return 2;
    }
  }
  if (i != argc) {
    fprintf(stderr, "nbd-serve: %s needs a value\n", argv[i]);
    return 2;
  }
  /* the signals are taken by sigwait below, in every thread */
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, NULL);

  /* every failure after the store is opened closes what is open, so the
   * sanitizer build's leak check sees a clean exit on every path */
  if ((s = store_open(argv[1])) == NULL)
    return die(NULL);
  a = NULL;
  rc = 1;
  if ((generation ? image_manifest_load_generation(s, generation, &m)
                  : image_manifest_load(s, &m)) == -1) {
    die(NULL);
    goto out;
  }
  if ((a = image_access_open(s, &m, &ao)) == NULL) {
    die("open");
    goto out;
  }
  if ((e = nbd_export_start(argv[2], a)) == NULL) {
    die(NULL);
    goto out;
  }
  fprintf(stderr, "ready\n");
  if (sigwait(&set, &sig) != 0) {
    die("sigwait");
    nbd_export_stop(e);
    goto out;
  }
  if (nbd_export_stop(e) == -1) {
    die("not committed");
    goto out;
  }
  fprintf(stderr, "dirty chunks: %" PRIu64 "\n", image_access_dirty(a));
  if (image_access_commit(a, &co, &out) == -1) {
    die("commit");
    goto out;
  }
  if ((text = image_manifest_format(&out)) == NULL) {
    die(NULL);
    goto out;
  }
  printf("%s\n", text);
  free(text);
  rc = 0;
out:
  image_access_close(a);
  store_close(s);
  return rc;
}
