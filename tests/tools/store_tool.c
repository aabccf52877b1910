/* store-tool - drive one store through lib/store/store.h from the shell tests.
 *
 *   store-tool put URL KEY FILE           store FILE ('-': stdin) as KEY
 *   store-tool get URL KEY [OFF LEN]      KEY (or a range of it) to stdout
 *   store-tool head URL KEY               print the size; exit 3 if absent
 *   store-tool ls URL [PREFIX]            "KEY SIZE" lines
 *   store-tool rm URL KEY
 *   store-tool presign URL KEY METHOD SECONDS
 *   store-tool grant URL KEY METHOD SECONDS [SHA256 SIZE]
 *       the URL, then each header to send, one a line
 *   store-tool write URL KEY FILE [--size N] [--page-blob] [--block N]
 *                    [--die-after N] [--abort-after N]
 *       stream FILE through a store writer in blocks (all-zero blocks as
 *       writer_zero); --die-after exits without commit or abort 2 s
 *       after N bytes are written (a crash once some parts landed),
 *       --abort-after aborts there.
 *
 * Failures print the store's one-line error and exit 1. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/error.h"
#include "util/log.h"
#include "util/zero.h"
#include "store/store.h"

static int die(const char *what)
{
  fprintf(stderr, "store-tool: %s%s%s\n", what ? what : "",
          what ? ": " : "", ferry_errmsg());
  return 1;
}

static char *slurp(const char *path, size_t *len)
{
  FILE *fp = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
  char *buf = NULL;
  size_t cap = 0, n = 0, r;

  if (fp == NULL) {
    ferry_error("open %s: %m", path);
    return NULL;
  }
  for (;;) {
    if (n == cap) {
      char *p = realloc(buf, cap = cap ? cap * 2 : 1 << 20);

      if (p == NULL) {
        ferry_error("out of memory");
        free(buf);
        return NULL;
      }
      buf = p;
    }
    r = fread(buf + n, 1, cap - n, fp);
    if (r == 0)
      break;
    n += r;
  }
  if (fp != stdin)
    fclose(fp);
  *len = n;
  return buf;
}

static int print_key(void *opaque, const char *key, uint64_t size)
{
  (void)opaque;
  printf("%s %" PRIu64 "\n", key, size);
  return 0;
}

static int cmd_write(struct store *s, int argc, char **argv)
{
  struct store_writer_opts o = { 0 };
  unsigned long long die_after = 0, abort_after = 0;
  size_t block = 1 << 20, n;
  struct store_writer *w;
  uint64_t done = 0;
  FILE *fp = NULL;
  char *buf = NULL;
  int i, r = 0;

  for (i = 3; i < argc; i++) {
    if (strcmp(argv[i], "--size") == 0 && i + 1 < argc)
      o.size = strtoull(argv[++i], NULL, 10);
    else if (strcmp(argv[i], "--page-blob") == 0)
      o.page_blob = 1;
    else if (strcmp(argv[i], "--block") == 0 && i + 1 < argc)
      block = strtoull(argv[++i], NULL, 10);
    else if (strcmp(argv[i], "--die-after") == 0 && i + 1 < argc)
      die_after = strtoull(argv[++i], NULL, 10);
    else if (strcmp(argv[i], "--abort-after") == 0 && i + 1 < argc)
      abort_after = strtoull(argv[++i], NULL, 10);
    else {
      fprintf(stderr, "store-tool write: unknown option %s\n", argv[i]);
      return 2;
    }
  }
  fp = strcmp(argv[2], "-") == 0 ? stdin : fopen(argv[2], "rb");
  buf = malloc(block ? block : 1);
  if (fp == NULL || buf == NULL || block == 0) {
    fprintf(stderr, "store-tool write: cannot open %s\n", argv[2]);
    r = 1;
    goto out;
  }
  w = store_writer_open(s, argv[1], &o);
  if (w == NULL) {
    r = die("open writer");
    goto out;
  }
  while ((n = fread(buf, 1, block, fp)) > 0) {
    if ((buf_is_zero(buf, n) ? store_writer_zero(w, n)
                         : store_writer_write(w, buf, n)) == -1) {
      store_writer_abort(w);
      r = die("write");
      goto out;
    }
    done += n;
    if (die_after && done >= die_after) {
      sleep(2);                       /* let uploads in flight land */
      _exit(9);                       /* a crash: no commit, no abort */
    }
    if (abort_after && done >= abort_after) {
      store_writer_abort(w);
      goto out;
    }
  }
  if (store_writer_commit(w) == -1)
    r = die("commit");
out:
  free(buf);
  if (fp && fp != stdin)
    fclose(fp);
  return r;
}

int main(int argc, char **argv)
{
  const char *cmd = argc > 1 ? argv[1] : "";
  struct store *s;
  int r = 0;

  log_init("store-tool", 0);
  if (argc < 3) {
    fprintf(stderr, "usage: store-tool put|get|head|ls|rm|presign|grant|write "
            "URL ...\n");
    return 2;
  }
  s = store_open(argv[2]);
  if (s == NULL)
    return die(NULL);
  argc -= 2;
  argv += 2;
  if (strcmp(cmd, "put") == 0 && argc == 3) {
    size_t len;
    char *buf = slurp(argv[2], &len);

    r = buf == NULL || store_put(s, argv[1], buf, len) == -1 ? die("put") : 0;
    free(buf);
  } else if (strcmp(cmd, "get") == 0 && (argc == 2 || argc == 4)) {
    uint64_t off = argc == 4 ? strtoull(argv[2], NULL, 10) : 0, size;
    size_t len, got;
    char *buf;

    if (argc == 4) {
      len = strtoull(argv[3], NULL, 10);
    } else {
      int h = store_head(s, argv[1], &size);

      if (h != 1) {
        if (h == 0)
          ferry_error("%s not found", argv[1]);
        store_close(s);
        return die("get");
      }
      len = (size_t)size;
    }
    buf = malloc(len + 1);
    if (buf == NULL || store_get(s, argv[1], off, buf, len, &got) == -1)
      r = die("get");
    else if (fwrite(buf, 1, got, stdout) != got)
      r = 1;
    free(buf);
  } else if (strcmp(cmd, "head") == 0 && argc == 2) {
    uint64_t size;
    int h = store_head(s, argv[1], &size);

    if (h == 1)
      printf("%" PRIu64 "\n", size);
    r = h == 1 ? 0 : h == 0 ? 3 : die("head");
  } else if (strcmp(cmd, "ls") == 0 && (argc == 1 || argc == 2)) {
    r = store_list(s, argc == 2 ? argv[1] : "", print_key, NULL) == -1
        ? die("ls") : 0;
  } else if (strcmp(cmd, "rm") == 0 && argc == 2) {
    r = store_del(s, argv[1]) == -1 ? die("rm") : 0;
  } else if (strcmp(cmd, "presign") == 0 && argc == 4) {
    char *u = store_presign(s, argv[1], argv[2],
                            (unsigned)strtoul(argv[3], NULL, 10));

    if (u == NULL)
      r = die("presign");
    else
      puts(u);
    free(u);
  } else if (strcmp(cmd, "grant") == 0 && (argc == 4 || argc == 6)) {
    struct store_grant g;
    size_t i;

    if (store_grant(s, argv[1], argv[2],
                    (unsigned)strtoul(argv[3], NULL, 10),
                    argc == 6 ? argv[4] : NULL,
                    argc == 6 ? strtoull(argv[5], NULL, 10) : 0, &g) == -1) {
      r = die("grant");
    } else {
      puts(g.url);
      for (i = 0; i < STORE_GRANT_HEADERS && g.headers[i]; i++)
        puts(g.headers[i]);
      store_grant_free(&g);
    }
  } else if (strcmp(cmd, "write") == 0 && argc >= 3) {
    r = cmd_write(s, argc, argv);
  } else {
    fprintf(stderr, "store-tool: bad command or arguments (see the "
            "comment at the top of tests/tools/store_tool.c)\n");
    r = 2;
  }
  store_close(s);
  return r;
}
