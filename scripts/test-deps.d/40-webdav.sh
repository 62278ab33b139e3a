#!/usr/bin/env bash
# WebDAV servers for the nextcloud plugin tests (internal/testenv/webdav.go):
# Apache httpd with mod_dav, and rclone (`rclone serve webdav`, also the
# reference client of the benchmark). The tests start private instances on
# loopback; the Debian services are never started. Idempotent: installs only
# what is missing.
set -euo pipefail
SUDO=${SUDO:-}
missing=()
[ -x /usr/sbin/apache2 ] && [ -e /usr/lib/apache2/modules/mod_dav_fs.so ] || missing+=(apache2)
command -v rclone >/dev/null 2>&1 || missing+=(rclone)
command -v curl >/dev/null 2>&1 || missing+=(curl)
if [ ${#missing[@]} -gt 0 ]; then
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
fi
/usr/sbin/apache2 -v 2>&1 | head -n1 || true
rclone version 2>/dev/null | head -n1 || true
