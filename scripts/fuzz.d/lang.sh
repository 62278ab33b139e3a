#!/usr/bin/env bash
# Fuzz targets of the language and graph packages for FUZZTIME each
# (default 5m). Minimizing is capped: with the default 60 s per new input the
# fuzzer would spend most of its time minimizing multi-hundred-byte runbooks.
# Usage: scripts/fuzz.d/lang.sh [DURATION]
set -euo pipefail
cd "$(dirname "$0")/../.."
t="${1:-${FUZZTIME:-5m}}"
run() {
  echo "== fuzz $1 $2 for $t"
  go test -run='^$' -fuzz="^$2\$" -fuzztime="$t" -fuzzminimizetime=200x "$1"
}
run ./engine/lang FuzzParse
run ./engine/lang FuzzParseJSON
run ./engine/lang FuzzVarValue
run ./engine/graph FuzzGraph
