/* clone_cmd.c - ferry-agent clone --source PATH --to URL */
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include <sys/stat.h>

#include "agent.h"
#include "clone/clone.h"
#include "util/error.h"
#include "util/log.h"
#include "util/parse.h"
#include "util/progress.h"
#include "clone/quiesce.h"
#include "source/source.h"
#include "store/store.h"

static atomic_int cancel_flag;   /* lock-free: safe in a handler */

static void on_signal(int sig)
{
  (void)sig;
  cancel_flag = 1;
}

static void usage(FILE *fp, int sync)
{
  fprintf(fp,
    "usage: ferry-agent %s --source SOURCE --to URL [options]\n"
    "\n", sync ? "sync" : "clone");
  if (sync)
    fprintf(fp,
      "Bring the chunked image at URL up to date with SOURCE: compare the\n"
      "disk with the image's latest generation and send only the chunks\n"
      "that changed, as a new generation.  Where the source tracks changes\n"
      "(an NBD export with --bitmap), only the changed blocks are read;\n"
      "elsewhere every chunk is read and its digest compared.  The first\n"
      "sync sends everything.\n\n");
  else
    fprintf(fp,
      "Stream the disk at SOURCE into the store at URL (e.g.\n"
      "file:///var/lib/ferry/store/web01/sda) as a chunked image.  All-zero\n"
      "chunks are skipped, each chunk is named by its SHA-256, and the\n"
      "manifest is written last.  Run the same command again after an\n"
      "interruption: only what is missing is sent.\n\n");
  fprintf(fp,
    "SOURCE is a block device, an image file, or an NBD URI\n"
    "(nbd://HOST[:PORT]/EXPORT, nbd+unix:///EXPORT?socket=PATH).\n"
    "\n"
    "options:\n"
    "  --chunk-size SIZE  1M to 64M, a power of two (default 4M)\n"
    "  --compress ALG     zstd (default), gzip or none\n"
    "  --level N          compression level (default: the fastest)\n"
    "  --jobs N           chunks in flight (default %d)\n"
    "  --max-rate RATE    cap upload bandwidth, bytes/s (e.g. 50M)\n"
    "  --bitmap NAME      NBD dirty bitmap to read only changed blocks\n"
    "  --connections N    NBD connections (default 4)\n"
    "  --freeze MOUNT     freeze this filesystem while reading (repeatable)\n"
    "  --quiesce          freeze every filesystem on the source device\n"
    "  --json             print the result as JSON on stdout\n"
    "  --quiet            no progress on stderr\n",
    CLONE_JOBS_DEFAULT);
}

static void on_progress(void *opaque, const struct clone_stats *st)
{
  progress_set(opaque, st->read_bytes, st->alloc_bytes);
}

int agent_clone(struct clone_opts *o, const char *source, int quiesce,
                char **freeze, size_t nfreeze, struct clone_stats *st)
{
  char **found = NULL;
  size_t nfound = 0, i;
  struct quiesce *q = NULL;
  int r;

  if (quiesce && nfreeze == 0) {
    if (quiesce_find_mounts(source, &found, &nfound) == -1)
      return -1;
    freeze = found;
    nfreeze = nfound;
    if (nfound == 0)
      log_info("no mounted filesystem on %s: nothing to freeze", source);
  }
  if (nfreeze > 0) {
    const char *url = store_url(o->store);
    struct stat sst, mst;

    /* a file:// store on a frozen filesystem would block the clone: find
     * the filesystem of its nearest existing directory */
    char dir[4096];
    int have_store = 0;

    if (strncmp(url, "file://", 7) == 0) {
      snprintf(dir, sizeof dir, "%s", url + 7);
      while (!(have_store = stat(dir, &sst) == 0)) {
        char *slash = strrchr(dir, '/');

        if (slash == NULL || slash == dir)
          break;
        *slash = '\0';
      }
    }
    for (i = 0; have_store && i < nfreeze; i++)
      if (stat(freeze[i], &mst) == 0 && sst.st_dev == mst.st_dev) {
        ferry_error("the store %s is on %s, which would be frozen: use a "
                    "store elsewhere", url, freeze[i]);
        r = -1;
        goto out;
      }
    q = quiesce_freeze(freeze, nfreeze);
    if (q == NULL) {
      r = -1;
      goto out;
    }
  }
  r = clone_run(o, st);
  if (q && quiesce_thaw(q) == -1)
    r = -1;               /* even a good read is not good news then */
out:
  for (i = 0; i < nfound; i++)
    free(found[i]);
  free(found);
  return r;
}

static int clone_or_sync(int argc, char **argv, int sync)
{
  static const struct option longopts[] = {
    { "source", required_argument, NULL, 's' },
    { "to", required_argument, NULL, 't' },
    { "chunk-size", required_argument, NULL, 'c' },
    { "compress", required_argument, NULL, 'z' },
    { "level", required_argument, NULL, 'l' },
    { "jobs", required_argument, NULL, 'j' },
    { "max-rate", required_argument, NULL, 'r' },
    { "json", no_argument, NULL, 'J' },
    { "quiet", no_argument, NULL, 'q' },
    { "bitmap", required_argument, NULL, 'b' },
    { "connections", required_argument, NULL, 'n' },
    { "freeze", required_argument, NULL, 'f' },
    { "quiesce", no_argument, NULL, 'Q' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
  };
  struct clone_opts o = { .enc = ENC_ZSTD, .cancel = &cancel_flag,
                          .use_changes = sync };
  struct source_opts so = { 0 };
  char *freeze[64];
  size_t nfreeze = 0;
  int quiesce = 0;
  const char *source = NULL, *to = NULL;
  struct progress prog;
  struct clone_stats st;
  int c, json = 0, quiet = 0, r;
  struct source *src = NULL;
  struct store *store = NULL;
  char hex[DIGEST_HEX_LEN + 1];
  unsigned level;
  uint64_t v;

  opterr = 0;
  while ((c = getopt_long(argc, argv, "s:t:j:qh", longopts, NULL)) != -1) {
    switch (c) {
    case 's': source = optarg; break;
    case 't': to = optarg; break;
    case 'c':
      if (parse_size(optarg, &v) == -1 || v < IMAGE_CHUNK_MIN ||
          v > IMAGE_CHUNK_MAX || (v & (v - 1)) != 0) {
        ferry_error("--chunk-size must be a power of two from 1M to 64M");
        goto usage_error;
      }
      o.chunk_size = (uint32_t)v;
      break;
    case 'z':
      if (codec_parse(optarg, &o.enc) == -1)
        goto usage_error;
      break;
    case 'l':
      if (parse_uint("--level", optarg, 1, 19, &level) == -1)
        goto usage_error;
      o.level = (int)level;
      break;
    case 'j':
      if (parse_uint("--jobs", optarg, 1, CLONE_JOBS_MAX, &o.jobs) == -1)
        goto usage_error;
      break;
    case 'r':
      if (parse_size(optarg, &o.max_rate) == -1) {
        ferry_error_prefix("--max-rate: ");
        goto usage_error;
      }
      if (o.max_rate == 0) {
        ferry_error("--max-rate: must be more than 0");
        goto usage_error;
      }
      break;
    case 'J': json = 1; break;
    case 'q': quiet = 1; break;
    case 'b': so.bitmap = optarg; o.use_changes = 1; break;
    case 'n':
      if (parse_uint("--connections", optarg, 1, 8, &so.connections) == -1)
        goto usage_error;
      break;
    case 'f':
      if (nfreeze == sizeof freeze / sizeof freeze[0]) {
        ferry_error("too many --freeze (at most %zu)",
                    sizeof freeze / sizeof freeze[0]);
        goto usage_error;
      }
      freeze[nfreeze++] = optarg;
      break;
    case 'Q': quiesce = 1; break;
    case 'h': usage(stdout, sync); return 0;
    default:
      fprintf(stderr, "ferry-agent %s: unknown or incomplete option %s "
              "(see --help)\n", sync ? "sync" : "clone", argv[optind - 1]);
      return EXIT_USAGE;
    }
  }
  if (optind < argc || source == NULL || to == NULL) {
    fprintf(stderr, "ferry-agent %s: %s (see --help)\n",
            sync ? "sync" : "clone",
            optind < argc ? "unexpected argument"
                          : "--source and --to are required");
    return EXIT_USAGE;
  }
  if (o.enc == ENC_GZIP && o.level > 9) {
    ferry_error("gzip levels are 1 to 9");
    goto usage_error;
  }

  store = store_open(to);
  if (store == NULL)
    goto fail;
  src = source_open_opts(source, &so);
  if (src == NULL)
    goto fail;
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  o.src = src;
  o.store = store;
  progress_init(&prog, sync ? "syncing" : "cloning", 0, quiet);
  o.progress = on_progress;
  o.opaque = &prog;
  r = agent_clone(&o, source, quiesce, freeze, nfreeze, &st);
  progress_done(&prog);
  if (r == -1) {
    if (cancel_flag)
      ferry_error("interrupted: run the same command again to resume; "
                  "chunks already sent are kept");
    ferry_error_prefix("%s %s to %s: ", sync ? "sync" : "clone", source, to);
    goto fail;
  }
  digest_to_hex(st.manifest.image_digest, hex);
  if (json) {
    json_t *j = json_pack(
      "{s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I,"
      " s:I, s:I, s:b, s:s, s:f, s:b, s:I, s:I, s:I}",
      "source", source, "to", store_url(store),
      "disk_size", (json_int_t)st.disk_size,
      "chunk_size", (json_int_t)st.manifest.chunk_size,
      "chunks", (json_int_t)st.chunks,
      "data_chunks", (json_int_t)st.manifest.data_chunks,
      "zero_chunks", (json_int_t)st.zero_chunks,
      "data_bytes", (json_int_t)st.manifest.data_bytes,
      "read_bytes", (json_int_t)st.read_bytes,
      "hole_bytes", (json_int_t)st.hole_bytes,
      "sent_chunks", (json_int_t)st.sent_chunks,
      "sent_bytes", (json_int_t)st.sent_bytes,
      "reused_chunks", (json_int_t)st.reused_chunks,
      "stored_bytes", (json_int_t)st.manifest.stored_bytes,
      "generation", (json_int_t)st.manifest.generation,
      "unchanged", st.unchanged, "image_digest", hex,
      "seconds", st.seconds, "incremental", st.incremental,
      "changed_chunks", (json_int_t)st.changed_chunks,
      "changed_bytes", (json_int_t)st.changed_bytes,
      "carried_chunks", (json_int_t)st.carried_chunks);

    if (j == NULL || json_dumpf(j, stdout, JSON_COMPACT) == -1) {
      json_decref(j);
      ferry_error("cannot print the result");
      goto fail;
    }
    putchar('\n');
    json_decref(j);
  }
  else if (sync && st.incremental)
    printf("synced %s to %s: %" PRIu64 " chunks (%" PRIu64 " bytes) changed "
           "since the last generation, %" PRIu64 " bytes read (%" PRIu64
           " chunks unchanged per the source, not read), %" PRIu64 " bytes "
           "sent, generation %" PRIu64 ", %.2f s\n", source,
           store_url(store), st.changed_chunks, st.changed_bytes,
           st.read_bytes, st.carried_chunks, st.sent_bytes,
           st.manifest.generation, st.seconds);
  else
    printf("cloned %s (%" PRIu64 " bytes) to %s: %" PRIu64 " data chunks, %"
           PRIu64 " zero, %" PRIu64 " bytes read, %" PRIu64 " bytes sent in %"
           PRIu64 " chunks, %" PRIu64 " already there, generation %" PRIu64
           ", image digest %s, %.2f s\n",
           source, st.disk_size, store_url(store), st.data_chunks,
           st.zero_chunks, st.read_bytes, st.sent_bytes, st.sent_chunks,
           st.reused_chunks, st.manifest.generation, hex, st.seconds);
  source_close(src);
  store_close(store);
  return 0;
usage_error:
  fprintf(stderr, "ferry-agent: %s\n", ferry_errmsg());
  return EXIT_USAGE;
fail:
  fprintf(stderr, "ferry-agent: %s\n", ferry_errmsg());
  source_close(src);
  store_close(store);
  return 1;
}

int cmd_clone(int argc, char **argv)
{
  return clone_or_sync(argc, argv, 0);
}

int cmd_sync(int argc, char **argv)
{
  return clone_or_sync(argc, argv, 1);
}
