#!/bin/bash
# checksrc.sh - reject C calls ferry does not use (curl's checksrc idea):
# unbounded string writes, unchecked conversions, the shell.
set -euo pipefail
cd "$(dirname "$0")/.."
banned='\b(sprintf|vsprintf|strcpy|strcat|atoi|atol|atoll|strtok|gets|system)[[:space:]]*\('
if out=$(grep -nE "$banned" $(git ls-files '*.c' '*.h' 2>/dev/null || find lib agent server converters tests -name '*.[ch]') | grep -v 'checksrc: allow'); then
  echo "checksrc: banned calls (use snprintf, memcpy with a checked length, strtol, strtok_r, posix_spawn):" >&2
  echo "$out" >&2
  exit 1
fi
echo "checksrc: ok"
