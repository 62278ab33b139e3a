#!/usr/bin/env bash
# Runs every fuzz target of the project for FUZZTIME each (default 5m).
# Minimizing is capped: with the default 60 s per new input the fuzzer would
# spend most of its time minimizing multi-hundred-byte runbooks.
# Usage: scripts/fuzz.sh [DURATION]
set -euo pipefail
cd "$(dirname "$0")/.."
t="${1:-5m}"
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //'); do
    echo "== fuzz $pkg $target for $t"
    go test -run='^$' -fuzz="^${target}\$" -fuzztime="$t" -fuzzminimizetime=200x "$pkg"
  done
done
# The race tests (func TestRace*, e.g. a plugin binary swapped while it is
# pinned, and func Test*Race, e.g. core.file against a symlink-swapping
# attacker) run about 2 s each in `make test`; here each runs for FUZZTIME
# (RUNBOOK_RACE_TIME, RUNBOOK_RACE_DURATION: each reads one of them).
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  if grep -Eq '^func Test(Race[A-Za-z0-9_]*|[A-Za-z0-9_]*Race)\(' "$dir"/*_test.go 2>/dev/null; then
    echo "== race tests $pkg for $t"
    RUNBOOK_RACE_TIME="$t" RUNBOOK_RACE_DURATION="$t" go test -count=1 -timeout=0 -run='^Test(Race[A-Za-z0-9_]*|[A-Za-z0-9_]*Race)$' "$pkg"
  fi
done
