#!/bin/bash
# sha256.sh - SHA-256 throughput on one core: OpenSSL one buffer at a time
# against the multi-buffer paths of lib/hash/sha256mb.c (AVX2, AVX-512VL,
# AVX-512) on 4 MiB buffers (ferry's default chunk), for several batch
# sizes, pinned with taskset.  Writes the "SHA-256" section of
# docs/PERFORMANCE.md (between its markers) and prints it.
#
#   bash bench/sha256.sh                      (make bench runs it)
#   SECS=1 BATCHES="8 16" bash bench/sha256.sh
set -euo pipefail
TOP=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-$TOP/docs/PERFORMANCE.md}
SECS=${SECS:-2}                 # per path and batch size
BATCHES=${BATCHES:-"1 2 4 8 16 32"}
CPU=${CPU:-0}
for c in taskset openssl python3; do
  command -v "$c" >/dev/null || { echo "sha256.sh: $c is missing (scripts/setup.sh test)" >&2; exit 1; }
done
make -C "$TOP" --no-print-directory -s build/bench/sha256-bench
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
taskset -c "$CPU" "$TOP/build/bench/sha256-bench" 4 "$SECS" $BATCHES >"$W/raw"
ossl=$(taskset -c "$CPU" openssl speed -evp sha256 -bytes 4194304 -seconds "$SECS" 2>/dev/null |
  awk '/^sha256/ { printf "%.0f", $2 / 1000 }')
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# raw lines: path lanes batch fastest median wall
{
  echo "<!-- sha256:begin (bench/sha256.sh writes this section) -->"
  echo "## SHA-256 on one core: multi-buffer against OpenSSL"
  echo
  echo "Measured $(date -u '+%Y-%m-%d %H:%M UTC') by \`bench/sha256.sh\` on"
  echo "$(lscpu | sed -n 's/^Model name: *//p') ($(grep -q -w sha_ni /proc/cpuinfo && echo 'with' || echo 'no') SHA extensions; $(grep -o -w -E 'avx2|avx512f|avx512bw|avx512vl' /proc/cpuinfo | sort -u | tr '\n' ' ' | sed 's/ $//')),"
  echo "pinned to CPU $CPU (\`taskset -c $CPU\`), $(openssl version | cut -d' ' -f1-2), gcc $(gcc -dumpfullversion)."
  echo "Load average $load_before before, $load_after after (the machine is shared)."
  echo
  echo "MB/s of CPU time, 4 MiB buffers, \`sha256_many_path()\` on batches of"
  echo "n buffers: the fastest call (and the median call), each path for"
  echo "${SECS} s per batch size.  \`openssl speed -evp sha256 -bytes 4194304\` on"
  echo "the same CPU: $ossl MB/s."
  echo
  printf '| path | lanes |'
  for b in $BATCHES; do printf ' n=%s |' "$b"; done
  echo
  printf '|---|---|'
  for b in $BATCHES; do printf -- '---|'; done
  echo
  awk -v batches="$BATCHES" '
    /^#/ { next }
    $3 == "-" || $4 == "-" { absent[++na] = $1; next }
    {
      if (!($1 in seen)) { seen[$1] = 1; order[++np] = $1; lanes[$1] = $2 }
      cell[$1, $3] = $4 " (" $5 ")"
      if ($1 == "openssl" && $4 > base) base = $4
      fast[$1, $3] = $4
    }
    END {
      nb = split(batches, b, " ")
      for (i = 1; i <= np; i++) {
        p = order[i]
        printf "| %s | %s |", p, lanes[p]
        for (j = 1; j <= nb; j++) printf " %s |", cell[p, b[j]]
        printf "\n"
      }
      if (na) {
        printf "\nNot on this CPU:"
        for (i = 1; i <= na; i++) printf " %s", absent[i]
        printf ".\n"
      }
      # speed-up of the best path at the largest batch over OpenSSL
      last = b[nb]
      best = ""; for (i = 1; i <= np; i++) if (order[i] != "auto" && (best == "" || fast[order[i], last] > fast[best, last])) best = order[i]
      if (base > 0)
        printf "\nFastest path at n=%s: %s, %.1fx OpenSSL one buffer at a time (its fastest call of any n).\n", last, best, fast[best, last] / base
    }' "$W/raw"
  echo "<!-- sha256:end -->"
} >"$W/section"

python3 "$TOP/bench/section.py" sha256 "$OUT" "$W/section"
cat "$W/section"
