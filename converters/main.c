/* ferry-convert - turn a chunked image into a format a cloud imports, or
 * read such an output back and check it against the image (--verify). */
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "util/cleanup.h"
#include "convert.h"
#include "util/error.h"
#include "format.h"
#include "image/reader.h"
#include "util/log.h"
#include "util/parse.h"
#include "pool.h"
#include "util/progress.h"
#include "store/store.h"

#define EXIT_USAGE 2

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
  (void)sig;
  interrupted = 1;
}

static void usage(FILE *fp)
{
  fprintf(fp,
    "usage: ferry-convert --from IMAGE-URL --format FORMAT --to DEST "
    "[options]\n"
    "       ferry-convert --verify --from IMAGE-URL --format FORMAT "
    "--to DEST\n"
    "       ferry-convert --list-formats\n"
    "\n"
    "Rebuild a disk from the chunked image at IMAGE-URL (e.g.\n"
    "file:///var/lib/ferry/store/web01/sda) in FORMAT, writing DEST (a local\n"
    "path or a store URL).  Every chunk is verified against its digest and\n"
    "the whole image against its image digest; DEST appears only when the\n"
    "output is complete.  With --verify, read DEST back instead and check\n"
    "every byte of the disk it holds against the image.\n"
    "\n"
    "options:\n"
    "  --overwrite      replace DEST if it exists\n"
    "  --generation N   build generation N of the image (default: the\n"
    "                   latest)\n"
    "  --jobs N         chunks fetched in parallel (default 4)\n"
    "  --threads N      compression threads (default: the CPUs online)\n"
    "  --level N        deflate level for vmdk and gce, 1-9 (default 6)\n"
    "  --json           print the result as JSON on stdout\n"
    "  --quiet          no progress on stderr\n");
}

/* Split DEST into a store URL and a key: "/a/b.raw" -> file:///a + b.raw,
 * "s3://bkt/dir/b.vhd" -> s3://bkt/dir + b.vhd. */
static int split_dest(const char *dest, char **store_url, char **key)
{
  const char *sep = strstr(dest, "://");
  const char *slash = strrchr(dest, '/');

  if (sep == NULL) {
    CLEANUP_FREE char *abs = NULL;

    if (dest[0] != '/') {
      char cwd[4096];

      if (getcwd(cwd, sizeof cwd) == NULL) {
        ferry_error("cannot find the current directory: %m");
        return -1;
      }
      if (asprintf(&abs, "%s/%s", cwd, dest) == -1)
        goto oom;
      dest = abs;
    }
    slash = strrchr(dest, '/');
    if (slash[1] == '\0') {
      ferry_error("destination %s is a directory: name the output file",
                  dest);
      return -1;
    }
    if (asprintf(store_url, "file://%.*s", (int)(slash - dest),
                 slash == dest ? "/" : dest) == -1 ||
        (*key = strdup(slash + 1)) == NULL)
      goto oom;
    if (slash == dest) {
      free(*store_url);
      if ((*store_url = strdup("file:///")) == NULL)
        goto oom;
    }
    return 0;
  }
  if (slash == NULL || slash <= sep + 2 || slash[1] == '\0') {
    ferry_error("destination %s does not name an object: use URL/NAME "
                "(e.g. s3://bucket/web01.vhd)", dest);
    return -1;
  }
  if ((*store_url = strndup(dest, (size_t)(slash - dest))) == NULL ||
      (*key = strdup(slash + 1)) == NULL)
    goto oom;
  return 0;
oom:
  ferry_error("out of memory");
  return -1;
}

static double since(const struct timespec *t0)
{
  struct timespec t1;

  clock_gettime(CLOCK_MONOTONIC, &t1);
  return (double)(t1.tv_sec - t0->tv_sec) +
         (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

static int convert(struct store *src, const struct image_manifest *m,
                   const struct format_ops *fmt, struct store *dst,
                   const char *key, unsigned jobs,
                   const struct format_opts *fo, int quiet,
                   struct convert_result *res)
{
  struct store_writer_opts wo = { .page_blob = fmt->page_blob };
  CLEANUP_FREE uint8_t *map = NULL;
  struct store_writer *out = NULL;
  struct output *o = NULL;
  struct format_writer *fw = NULL;
  struct image_reader *rd = NULL;
  struct image_extent e;
  struct progress prog;
  struct timespec t0;
  int n, r = -1;

  clock_gettime(CLOCK_MONOTONIC, &t0);
  memset(res, 0, sizeof *res);
  map = image_alloc_map(src, m);
  if (map == NULL)
    return -1;
  wo.size = fmt->output_size(m, map);
  rd = image_reader_open(src, m, jobs);
  if (rd == NULL)
    return -1;
  out = store_writer_open(dst, key, &wo);
  if (out == NULL)
    goto out;
  o = output_create(out, m->chunk_size);
  if (o == NULL)
    goto out;
  fw = fmt->open(o, m, map, fo);
  if (fw == NULL)
    goto out;
  progress_init(&prog, "converting", m->data_bytes, quiet);
  while ((n = image_reader_next(rd, &e)) == 1) {
    if (interrupted) {
      ferry_error("interrupted: nothing was written at the destination");
      goto out;
    }
    if (e.data) {
      if (fmt->data(fw, e.offset, e.data, (size_t)e.length, e.digest) == -1)
        goto out;
      res->data_chunks++;
      progress_add(&prog, e.length);
    } else {
      if (fmt->zero(fw, e.offset, e.length) == -1)
        goto out;
      res->zero_bytes += e.length;
    }
  }
  if (n == -1)
    goto out;
  if (fmt->finish(fw) == -1 || output_digest(o, res->output_digest) == -1)
    goto out;
  res->output_bytes = output_pos(o);
  if (wo.size != 0 && res->output_bytes != wo.size) {
    ferry_error("internal error: the %s writer wrote %" PRIu64 " bytes, "
                "it announced %" PRIu64 "; please report this", fmt->name,
                res->output_bytes, wo.size);
    goto out;
  }
  progress_done(&prog);
  res->fetched = image_reader_fetched(rd);
  r = store_writer_commit(out);
  out = NULL;
  res->seconds = since(&t0);
out:
  if (fw)
    fmt->close(fw);
  output_close(o);
  image_reader_close(rd);
  store_writer_abort(out);
  return r;
}

static int print_json(json_t *j)
{
  if (j == NULL || json_dumpf(j, stdout, JSON_COMPACT) == -1) {
    json_decref(j);
    ferry_error("cannot print the result");
    return -1;
  }
  putchar('\n');
  json_decref(j);
  return 0;
}

static unsigned online_cpus(void)
{
  long n = sysconf(_SC_NPROCESSORS_ONLN);

  return n < 1 ? 1 : n > 64 ? 64 : (unsigned)n;
}

int main(int argc, char **argv)
{
  static const struct option longopts[] = {
    { "from", required_argument, NULL, 'f' },
    { "format", required_argument, NULL, 'F' },
    { "to", required_argument, NULL, 't' },
    { "overwrite", no_argument, NULL, 'o' },
    { "generation", required_argument, NULL, 'g' },
    { "jobs", required_argument, NULL, 'j' },
    { "threads", required_argument, NULL, 'T' },
    { "level", required_argument, NULL, 'l' },
    { "verify", no_argument, NULL, 'V' },
    { "json", no_argument, NULL, 'J' },
    { "quiet", no_argument, NULL, 'q' },
    { "list-formats", no_argument, NULL, 'L' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
  };
  const char *from = NULL, *format = NULL, *to = NULL;
  CLEANUP_FREE char *dst_url = NULL, *key = NULL;
  int overwrite = 0, json = 0, quiet = 0, verify = 0, c, r;
  unsigned jobs = 4, threads = online_cpus(), level = 6;
  uint64_t generation = 0;
  const struct format_ops *fmt;
  struct store *src = NULL, *dst = NULL;
  struct pool *pool = NULL;
  struct image_manifest m;
  char image_hex[DIGEST_HEX_LEN + 1], out_hex[DIGEST_HEX_LEN + 1];
  uint64_t size;

  log_init("ferry-convert", 0);
  opterr = 0;
  while ((c = getopt_long(argc, argv, "f:F:t:j:qh", longopts, NULL)) != -1) {
    switch (c) {
    case 'f': from = optarg; break;
    case 'F': format = optarg; break;
    case 't': to = optarg; break;
    case 'o': overwrite = 1; break;
    case 'g':
      if (parse_u64("--generation", optarg, 1, UINT64_MAX,
                    &generation) == -1)
        goto usage_error;
      break;
    case 'J': json = 1; break;
    case 'q': quiet = 1; break;
    case 'V': verify = 1; break;
    case 'j':
      if (parse_uint("--jobs", optarg, 1, 64, &jobs) == -1)
        goto usage_error;
      break;
    case 'T':
      if (parse_uint("--threads", optarg, 1, 64, &threads) == -1)
        goto usage_error;
      break;
    case 'l':
      if (parse_uint("--level", optarg, 1, 9, &level) == -1)
        goto usage_error;
      break;
    case 'L': format_list(); return 0;
    case 'h': usage(stdout); return 0;
    default:
      fprintf(stderr, "ferry-convert: unknown or incomplete option %s "
              "(see --help)\n", argv[optind - 1]);
      return EXIT_USAGE;
    }
  }
  if (optind < argc || from == NULL || format == NULL || to == NULL) {
    fprintf(stderr, "ferry-convert: %s (see --help)\n",
            optind < argc ? "unexpected argument"
            : "--from, --format and --to are required");
    return EXIT_USAGE;
  }
  fmt = format_lookup(format);
  if (fmt == NULL)
    goto usage_error;
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);

  src = store_open(from);
  /* every chunk and table is checked against its SHA-256 on read */
  if (src)
    src->verified_reads = 1;
  if (src == NULL ||
      (generation ? image_manifest_load_generation(src, generation, &m)
                  : image_manifest_load(src, &m)) == -1)
    goto fail;
  if (split_dest(to, &dst_url, &key) == -1 ||
      (dst = store_open(dst_url)) == NULL)
    goto fail;
  digest_to_hex(m.image_digest, image_hex);

  if (verify) {
    struct verify_result vr;

    if (verify_output(src, &m, fmt, dst, key, quiet, &vr) == -1) {
      ferry_error_prefix("verify %s against %s: ", to, from);
      goto fail;
    }
    if (json) {
      if (print_json(json_pack("{s:b, s:s, s:s, s:s, s:I, s:I, s:I, s:s, "
                               "s:f}",
                               "verified", 1, "from", from, "to", to,
                               "format", fmt->name,
                               "disk_size", (json_int_t)m.disk_size,
                               "virtual_size", (json_int_t)vr.virtual_size,
                               "output_bytes", (json_int_t)vr.output_bytes,
                               "image_digest", image_hex,
                               "seconds", vr.seconds)) == -1)
        goto fail;
    } else
      printf("verified %s (%s, %" PRIu64 " bytes): the %" PRIu64 "-byte "
             "disk it holds matches %s (image digest %s), %.2f s\n", to,
             fmt->name, vr.output_bytes, m.disk_size, from, image_hex,
             vr.seconds);
    goto done;
  }

  r = store_head(dst, key, &size);
  if (r == -1)
    goto fail;
  if (r == 1 && !overwrite) {
    ferry_error("destination %s already exists: pass --overwrite to "
                "replace it", to);
    goto fail;
  }
  pool = pool_create(threads);
  if (pool == NULL)
    goto fail;
  {
    struct format_opts fo = { .pool = pool, .level = (int)level,
                              .name = key };
    struct convert_result res;

    if (convert(src, &m, fmt, dst, key, jobs, &fo, quiet, &res)
        == -1) {
      ferry_error_prefix("convert %s to %s: ", from, to);
      goto fail;
    }
    digest_to_hex(res.output_digest, out_hex);
    if (json) {
      if (print_json(json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, "
                               "s:s, s:I, s:s, s:I, s:f}",
                               "from", from, "to", to, "format", fmt->name,
                               "disk_size", (json_int_t)m.disk_size,
                               "virtual_size",
                               (json_int_t)fmt->virtual_size(&m),
                               "generation", (json_int_t)m.generation,
                               "data_chunks", (json_int_t)res.data_chunks,
                               "fetched_bytes", (json_int_t)res.fetched,
                               "image_digest", image_hex,
                               "output_bytes", (json_int_t)res.output_bytes,
                               "output_digest", out_hex,
                               "output_digest_block",
                               (json_int_t)m.chunk_size,
                               "seconds", res.seconds)) == -1)
        goto fail;
    } else
      printf("converted %s (%" PRIu64 " bytes, generation %" PRIu64 ") to "
             "%s as %s: %" PRIu64 " data chunks verified, %" PRIu64 " bytes "
             "fetched, image digest %s, %" PRIu64 " bytes written, output "
             "digest %s, %.2f s\n", from, m.disk_size, m.generation, to,
             fmt->name, res.data_chunks, res.fetched, image_hex,
             res.output_bytes, out_hex, res.seconds);
  }
done:
  pool_close(pool);
  store_close(src);
  store_close(dst);
  return 0;
usage_error:
  fprintf(stderr, "ferry-convert: %s\n", ferry_errmsg());
  return EXIT_USAGE;
fail:
  fprintf(stderr, "ferry-convert: %s\n", ferry_errmsg());
  pool_close(pool);
  store_close(src);
  store_close(dst);
  return 1;
}
