#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian machine: every script
# in scripts/test-deps.d runs in order. Each is idempotent and quick when its
# server is already installed. Servers are started by the tests themselves
# (internal/testenv), on loopback, in throwaway directories.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
export SUDO
apt_updated=/tmp/.runbook-apt-updated
if [ ! -e "$apt_updated" ] || [ -n "$(find "$apt_updated" -mmin +600 2>/dev/null)" ]; then
  $SUDO apt-get update -qq && touch "$apt_updated"
fi
for f in scripts/test-deps.d/*.sh; do
  [ -e "$f" ] || continue
  echo "test-deps: $f"
  bash "$f"
done
