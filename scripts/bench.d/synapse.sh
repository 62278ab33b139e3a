#!/usr/bin/env bash
# synapse.migrate against the reference tool's load method and the
# physical limit, on generated data of the size in the synapse issue
# (100k users, 60k emails, 10k external ids, 200k devices, 300k access
# tokens, 20k refresh pairs). Prints wall-clock and CPU time and rows/s of
# each, per phase, and the ratios; every figure is the best of
# RUNBOOK_BENCH_REPEAT interleaved runs (default 3), all runs shown, with
# the ratios to the reference of each round (ours and the reference run
# back to back, with the load average) and their median: on a shared
# machine those are the figures to quote. It also prints, per round, the
# memory synapse.migrate used (Go heap and runtime peaks, sampled every
# 5 ms, and the test process's RSS). On a 2-core machine the reads, the
# mapping and the MAS backend share the cores: quote the per-phase and
# CPU figures next to the load they were taken at.
# RUNBOOK_BENCH_SCALE=0.1 runs a tenth of it; RUNBOOK_BENCH_VERBOSE=1
# shows the migration's own log (per-step and per-rebuild timings).
set -euo pipefail
cd "$(dirname "$0")/../.."
echo "synapse bench: start: $(uptime)"
RUNBOOK_BENCH_REPEAT="${RUNBOOK_BENCH_REPEAT:-3}" \
go test -v -count=1 -run '^$' -bench 'BenchmarkMigrateVsReference' -benchtime 1x -timeout 30m ./plugins/synapse/ \
  | grep -E 'bench_test|Benchmark|^ok|FAIL' | grep -v 'debug: '
echo "synapse bench: end: $(uptime)"
