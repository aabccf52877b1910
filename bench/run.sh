#!/bin/bash
# run.sh - every benchmark in bench/ (each writes its section of
# docs/PERFORMANCE.md).
set -euo pipefail
cd "$(dirname "$0")"
rc=0
for b in *.sh; do
  [ "$b" = run.sh ] && continue
  echo "== bench/$b" >&2
  bash "$b" || rc=1
done
exit $rc
