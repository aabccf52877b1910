/* clone_cmd.c - ferry-agent clone --source PATH --to URL */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "agent.h"
#include "clone.h"
#include "error.h"
#include "progress.h"
#include "ratelimit.h"
#include "source.h"
#include "store.h"

static volatile sig_atomic_t cancel_flag;

static void on_signal(int sig)
{
  (void)sig;
  cancel_flag = 1;
}

static void usage(FILE *fp)
{
  fprintf(fp,
    "usage: ferry-agent clone --source PATH --to URL [options]\n"
    "\n"
    "Stream the disk at PATH (a block device or an image file) into the\n"
    "store at URL (e.g. file:///var/lib/ferry/store/web01/sda) as a chunked\n"
    "image.  All-zero chunks are skipped, each chunk is named by its\n"
    "SHA-256, and the manifest is written last.  Run the same command again\n"
    "after an interruption: only what is missing is sent.\n"
    "\n"
    "options:\n"
    "  --chunk-size SIZE  1M to 64M, a power of two (default 4M)\n"
    "  --compress ALG     zstd (default), gzip or none\n"
    "  --level N          compression level (default: the fastest)\n"
    "  --jobs N           chunks in flight (default %d)\n"
    "  --max-rate RATE    cap upload bandwidth, bytes/s (e.g. 50M)\n"
    "  --json             print the result as JSON on stdout\n"
    "  --quiet            no progress on stderr\n",
    CLONE_JOBS_DEFAULT);
}

static void on_progress(void *opaque, const struct clone_stats *st)
{
  progress_set(opaque, st->read_bytes, st->alloc_bytes);
}

int cmd_clone(int argc, char **argv)
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
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
  };
  struct clone_opts o = { .enc = ENC_ZSTD, .cancel = &cancel_flag };
  const char *source = NULL, *to = NULL;
  struct progress prog;
  struct clone_stats st;
  int c, json = 0, quiet = 0, r;
  struct source *src = NULL;
  struct store *store = NULL;
  char hex[DIGEST_HEX_LEN + 1];
  uint64_t v;
  char *end;

  opterr = 0;
  while ((c = getopt_long(argc, argv, "s:t:j:qh", longopts, NULL)) != -1) {
    switch (c) {
    case 's': source = optarg; break;
    case 't': to = optarg; break;
    case 'c':
      if (parse_size(optarg, &v) == -1 || v < IMAGE_CHUNK_MIN ||
          v > IMAGE_CHUNK_MAX || (v & (v - 1)) != 0) {
        fprintf(stderr, "ferry-agent: --chunk-size must be a power of two "
                "from 1M to 64M\n");
        return EXIT_USAGE;
      }
      o.chunk_size = (uint32_t)v;
      break;
    case 'z':
      if (codec_parse(optarg, &o.enc) == -1) {
        fprintf(stderr, "ferry-agent: %s\n", ferry_errmsg());
        return EXIT_USAGE;
      }
      break;
    case 'l':
      errno = 0;
      v = strtoull(optarg, &end, 10);
      if (errno || *end || v < 1 || v > 19) {
        fprintf(stderr, "ferry-agent: --level must be 1 to 19\n");
        return EXIT_USAGE;
      }
      o.level = (int)v;
      break;
    case 'j':
      errno = 0;
      v = strtoull(optarg, &end, 10);
      if (errno || *end || v < 1 || v > CLONE_JOBS_MAX) {
        fprintf(stderr, "ferry-agent: --jobs must be 1 to %d\n",
                CLONE_JOBS_MAX);
        return EXIT_USAGE;
      }
      o.jobs = (unsigned)v;
      break;
    case 'r':
      if (parse_size(optarg, &o.max_rate) == -1 || o.max_rate == 0) {
        fprintf(stderr, "ferry-agent: --max-rate: %s\n",
                o.max_rate == 0 ? "must be more than 0" : ferry_errmsg());
        return EXIT_USAGE;
      }
      break;
    case 'J': json = 1; break;
    case 'q': quiet = 1; break;
    case 'h': usage(stdout); return 0;
    default:
      fprintf(stderr, "ferry-agent clone: unknown or incomplete option %s "
              "(see --help)\n", argv[optind - 1]);
      return EXIT_USAGE;
    }
  }
  if (optind < argc || source == NULL || to == NULL) {
    fprintf(stderr, "ferry-agent clone: %s (see --help)\n",
            optind < argc ? "unexpected argument"
                          : "--source and --to are required");
    return EXIT_USAGE;
  }
  if (o.enc == ENC_GZIP && o.level > 9) {
    fprintf(stderr, "ferry-agent: gzip levels are 1 to 9\n");
    return EXIT_USAGE;
  }

  store = store_open(to);
  if (store == NULL)
    goto fail;
  src = source_open(source);
  if (src == NULL)
    goto fail;
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  o.src = src;
  o.store = store;
  progress_init(&prog, "cloning", 0, quiet);
  o.progress = on_progress;
  o.opaque = &prog;
  r = clone_run(&o, &st);
  progress_done(&prog);
  if (r == -1) {
    if (cancel_flag)
      ferry_error("interrupted: run the same command again to resume; "
                  "chunks already sent are kept");
    ferry_error_prefix("clone %s to %s: ", source, to);
    goto fail;
  }
  digest_to_hex(st.manifest.image_digest, hex);
  if (json) {
    json_t *j = json_pack(
      "{s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I,"
      " s:I, s:I, s:b, s:s, s:f}",
      "source", source, "to", store_url(store),
      "disk_size", (json_int_t)st.disk_size,
      "chunk_size", (json_int_t)st.manifest.chunk_size,
      "chunks", (json_int_t)st.chunks,
      "data_chunks", (json_int_t)st.data_chunks,
      "zero_chunks", (json_int_t)st.zero_chunks,
      "data_bytes", (json_int_t)st.data_bytes,
      "read_bytes", (json_int_t)st.read_bytes,
      "hole_bytes", (json_int_t)st.hole_bytes,
      "sent_chunks", (json_int_t)st.sent_chunks,
      "sent_bytes", (json_int_t)st.sent_bytes,
      "reused_chunks", (json_int_t)st.reused_chunks,
      "stored_bytes", (json_int_t)st.manifest.stored_bytes,
      "generation", (json_int_t)st.manifest.generation,
      "unchanged", st.unchanged, "image_digest", hex,
      "seconds", st.seconds);

    if (j == NULL || json_dumpf(j, stdout, JSON_COMPACT) == -1) {
      json_decref(j);
      ferry_error("cannot print the result");
      goto fail;
    }
    putchar('\n');
    json_decref(j);
  }
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
fail:
  fprintf(stderr, "ferry-agent: %s\n", ferry_errmsg());
  source_close(src);
  store_close(store);
  return 1;
}
