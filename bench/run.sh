#!/bin/bash
echo "bench: no benchmarks yet (see bench/README.md)" >&2
exit 1
