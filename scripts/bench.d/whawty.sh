#!/usr/bin/env bash
# whawty.sync against `rsync -rlpt --delete -c` on a 100,000-user store with
# 1% of the files changed, locally and over ssh (private sshd on loopback,
# the master behind it; whawty.sync also through SFTP alone, its fallback
# when the host runs no tar). Each round resets the slaves and times the tools
# on the same data; the summary gives medians, best and spread, and the ratio
# whawty.sync / rsync measured in the same round (< 1: whawty.sync is faster).
#
#   RUNBOOK_BENCH_USERS    store size (100000)
#   RUNBOOK_BENCH_ROUNDS   rounds (3)
#   RUNBOOK_BENCH_DIR      keep the generated stores there and reuse them
#   RUNBOOK_BENCH_PROFILE  write CPU profiles of whawty.sync to that directory
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNBOOK_BENCH_WHAWTY=1 go test -count=1 -timeout 60m -run '^TestSyncBench100k$' ./plugins/whawty/ -v 2>&1 \
  | grep -E 'whawty sync bench|round [0-9]|local:|ssh:|sftp:|FAIL|SKIP|panic|ok ' || true
