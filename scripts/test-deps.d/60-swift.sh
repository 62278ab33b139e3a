#!/usr/bin/env bash
# OpenStack Swift (proxy, account, container and object servers with
# tempauth) and memcached for the Swift tests (plugins/swift, plugins/hubic),
# plus the swift CLI. internal/testenv/swift.go starts an all-in-one from
# these in a temporary directory. Idempotent: installs only what is missing.
set -euo pipefail
SUDO=${SUDO:-}
missing=()
for p in swift swift-proxy swift-account swift-container swift-object python3-swiftclient memcached; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
fi
# Swift reads /etc/swift/swift.conf whatever swift_dir says. The package's
# file (hash prefix/suffix "changeme") is fine for tests; write one if an
# earlier install left only the .dpkg-new copy.
if [ ! -f /etc/swift/swift.conf ]; then
  $SUDO mkdir -p /etc/swift
  if [ -f /etc/swift/swift.conf.dpkg-new ]; then
    $SUDO cp /etc/swift/swift.conf.dpkg-new /etc/swift/swift.conf
  else
    printf '[swift-hash]\nswift_hash_path_suffix = changeme\nswift_hash_path_prefix = changeme\n\n[storage-policy:0]\nname = Policy-0\ndefault = yes\n' | $SUDO tee /etc/swift/swift.conf >/dev/null
  fi
fi
swift-proxy-server --version 2>/dev/null | head -n1 || dpkg-query -W -f='swift ${Version}\n' swift
