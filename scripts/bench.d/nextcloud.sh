#!/usr/bin/env bash
# nextcloud.copy against `rclone copy` (webdav, vendor nextcloud) and curl
# (8 processes, keep-alive, many URLs each) on the same Apache mod_dav
# server, to a local directory: many 10 KB files, then one large file.
#
#   RUNBOOK_BENCH_SMALL   number of 10 KB files (2000)
#   RUNBOOK_BENCH_LARGE   size of the large file in MB (1024)
#   RUNBOOK_BENCH_INVENTORY  files of the inventory's tree (100000; built once, kept in
#                         $TMPDIR or RUNBOOK_BENCH_CACHE)
# Each action also runs in a process of its own, whose peak RSS is printed
# and must stay under 100 MB (the test fails otherwise).
#   RUNBOOK_BENCH_RCLONE  more rclone binaries to compare, ":"-separated
#                         (e.g. one built with `go install github.com/rclone/rclone@latest`)
#   RUNBOOK_BENCH_OURS_ONLY  skip rclone
#   RUNBOOK_BENCH_CPUPROFILE write nextcloud.copy's CPU profiles to PATH.small and PATH.large
# Load matters on a shared machine: the script prints `uptime` before and after.
set -euo pipefail
cd "$(dirname "$0")/../.."
uptime
RUNBOOK_BENCH_NEXTCLOUD=1 RUNBOOK_BENCH_INVENTORY=${RUNBOOK_BENCH_INVENTORY:-100000} go test -count=1 -timeout 30m -run '^(TestCopyBench|TestInventoryBench)$' ./plugins/nextcloud/ -v 2>&1 \
  | grep -E 'nextcloud bench|inventory|RSS|nextcloud.copy|rclone|curl|ERROR|_test.go|FAIL|SKIP|panic|^ok ' || true
uptime
