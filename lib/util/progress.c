#include "util/progress.h"

#include <stdio.h>
#include <unistd.h>

static double elapsed(const struct timespec *a, const struct timespec *b)
{
  return (double)(b->tv_sec - a->tv_sec) +
         (double)(b->tv_nsec - a->tv_nsec) / 1e9;
}

const char *human_bytes(uint64_t n, char *buf, size_t size)
{
  static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB",
                                       "PiB" };
  double v = (double)n;
  int u = 0;

  while (v >= 1024 && u < 5) {
    v /= 1024;
    u++;
  }
  snprintf(buf, size, u ? "%.1f %s" : "%.0f %s", v, units[u]);
  return buf;
}

void progress_init(struct progress *p, const char *label, uint64_t total,
                   int quiet)
{
  p->label = label;
  p->total = total;
  p->done = 0;
  p->active = !quiet && isatty(STDERR_FILENO);
  clock_gettime(CLOCK_MONOTONIC, &p->start);
  p->last = p->start;
}

static void draw(struct progress *p, int final)
{
  char a[24], b[24], r[24];
  struct timespec now;
  double secs, rate;

  clock_gettime(CLOCK_MONOTONIC, &now);
  if (!final && elapsed(&p->last, &now) < 0.25)
    return;
  p->last = now;
  secs = elapsed(&p->start, &now);
  rate = secs > 0 ? (double)p->done / secs : 0;
  fprintf(stderr, "\r%s %5.1f%% %s / %s  %s/s", p->label,
          p->total ? 100.0 * (double)p->done / (double)p->total : 100.0,
          human_bytes(p->done, a, sizeof a), human_bytes(p->total, b, sizeof b),
          human_bytes((uint64_t)rate, r, sizeof r));
  if (!final && rate > 0 && p->total > p->done)
    fprintf(stderr, "  ETA %.0f s ", (double)(p->total - p->done) / rate);
  else
    fprintf(stderr, "            ");
  if (final)
    fputc('\n', stderr);
  fflush(stderr);
}

void progress_add(struct progress *p, uint64_t n)
{
  p->done += n;
  if (p->active)
    draw(p, 0);
}

void progress_set(struct progress *p, uint64_t done, uint64_t total)
{
  p->done = done;
  p->total = total;
  if (p->active)
    draw(p, 0);
}

void progress_done(struct progress *p)
{
  if (p->active)
    draw(p, 1);
  p->active = 0;
}
