#!/usr/bin/env bash
# swift.copy (the hubic/swift plugins' copier) side by side with rclone
# copy (swift backend, default and --transfers 8) and the swift CLI
# (python3-swiftclient), on the same all-in-one Swift with one proxy
# worker: 2,000 objects of 10 KB, then one of 200 MB; Swift → local
# directory, and Swift → Swift (rclone only). Prints each round, then the
# best time of each tool and the ratios (other tool's time / swift.copy's).
# Needs scripts/test-deps.d/60-swift.sh; rclone from Debian (installed here
# if missing).
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v rclone >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive ${SUDO:-} apt-get install -y --no-install-recommends rclone >/dev/null || true
rclone version 2>/dev/null | head -n1 || true
go test -run '^$' -bench 'BenchmarkCopyVsTools' -benchtime 1x -timeout 30m ./plugins/swift/ \
  | grep --line-buffered -E '^(round|best)|^ok|FAIL'
