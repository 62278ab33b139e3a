#!/usr/bin/env bash
# whawty.sync against `rsync -rlpt --delete -c` on a 100,000-user store with
# 1% of the files changed, locally and over ssh (private sshd on loopback).
# RUNBOOK_BENCH_USERS overrides the store size.
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNBOOK_BENCH_WHAWTY=1 go test -count=1 -timeout 30m -run '^TestSyncBench100k$' ./plugins/whawty/ -v 2>&1 \
  | grep -E 'whawty sync bench|local:|ssh:|ours-|rsync-|FAIL|SKIP|ok ' || true
