#!/usr/bin/env bash
# swift.copy (the hubic/swift plugins' copier) side by side with rclone
# copy (swift backend, --transfers 8: Debian's 1.60 and, if
# RUNBOOK_RCLONE_LATEST names a binary, the newest, built with
# `GOBIN=/some/dir go install github.com/rclone/rclone@latest`), the swift
# CLI (python3-swiftclient) and 8 and 12 curl processes with keep-alive
# (the better is the practical limit), on the same all-in-one Swift with
# one proxy worker: 2,000 objects of 10 KB, then one of 200 MB; Swift →
# local directory (in /dev/shm, so that the cost of creating files on this
# disk, which varies with what else deleted files lately, stays out of the
# figures; RUNBOOK_SWIFT_BENCH_OUT=disk, or a directory, to change it) and
# Swift → Swift. Every tool is a process under /usr/bin/time (wall time,
# peak RSS); RUNBOOK_SWIFT_BENCH_ROUNDS rounds (default 3) interleave the
# tools, each round prints its load average and its ratios (other tool's
# time / swift.copy's), the end the medians; beside each time the tool's
# CPU time and the Swift proxy's and back ends' during its run (the
# proxy's tells how much work a tool asked of Swift, but also grows with
# what else runs: the same 2,000 GETs, byte for byte, cost it 4.2-6.8 s). RUNBOOK_SWIFT_BENCH_SETS picks the sets
# ("small,large"), RUNBOOK_SWIFT_BENCH_TOOLS tools by name (default: all
# but "rclone" with Debian's default --transfers 4, never the better one,
# and "swift.copy 1 stream", "swift.copy → Swift 1 stream": ranged reads
# of large objects turned off). The bench's Swift runs its container
# updater every hour instead of every 5 s.
# Needs scripts/test-deps.d/60-swift.sh; rclone from Debian (installed here
# if missing).
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v rclone >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive ${SUDO:-} apt-get install -y --no-install-recommends rclone >/dev/null || true
rclone version 2>/dev/null | head -n1 || true
if [ -n "${RUNBOOK_RCLONE_LATEST:-}" ]; then "$RUNBOOK_RCLONE_LATEST" version 2>/dev/null | head -n1 || true; fi
uptime
go test -run '^$' -bench 'BenchmarkCopyVsTools' -benchtime 1x -timeout 60m ./plugins/swift/ \
  | grep --line-buffered -E '^(round|median)|^ok|FAIL|^    [a-z_]+_test.go'
uptime
