#!/usr/bin/env bash
# couchdb.replicate against the server's own /_replicate, between two
# pouchdb-server processes, in the same run: 20,000 small documents, then
# 500 documents with 100 KB attachments. Prints docs/s, MB/s and the ratio
# (speedup = server time / plugin time). Needs scripts/test-deps.d/20-pouchdb.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
go test -run '^$' -bench 'BenchmarkReplicate' -benchtime 1x -timeout 30m ./plugins/couchdb/ \
  | grep -E 'Benchmark|plugin .* server|^ok|FAIL'
