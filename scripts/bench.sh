#!/usr/bin/env bash
# Runs every benchmark script in scripts/bench.d and prints their figures.
# Each script compares runbook side by side with the tool a user would
# otherwise use, when that tool is installed, and prints the ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
status=0
for f in scripts/bench.d/*.sh; do
  [ -e "$f" ] || continue
  echo "== bench: $f"
  bash "$f" || { echo "bench $f failed" >&2; status=1; }
done
exit $status
