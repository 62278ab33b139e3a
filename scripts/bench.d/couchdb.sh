#!/usr/bin/env bash
# couchdb.replicate against the server's own /_replicate, between two
# pouchdb-server processes, in the same run: 20,000 small documents, then
# 500 documents with 100 KB attachments, each side twice in alternating
# order (RUNBOOK_COUCHDB_BENCH_ROUNDS). Prints each round, then docs/s, MB/s
# and the ratio of the mean times (speedup = server time / plugin time).
# Then the end-to-end proof with the real binary: `runbook apply` copying
# 20,000 documents is killed mid-way and `runbook resume` must read far
# fewer changes than the total.
# Needs scripts/test-deps.d/20-pouchdb.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
go test -run '^$' -bench 'BenchmarkReplicate' -benchtime 1x -timeout 30m ./plugins/couchdb/ \
  | grep -E 'Benchmark|plugin .* server|^ok|FAIL'
RUNBOOK_COUCHDB_E2E=1 go test -count=1 -run 'TestKillAndResumeCLI' -v -timeout 10m ./plugins/couchdb/ \
  | grep -E 'killed with|resumed run|^(--- |ok|FAIL)'
