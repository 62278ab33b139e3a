#!/usr/bin/env bash
# OpenSSH server and client for the ssh/sftp transport tests (plugins/whawty),
# plus rsync for the sync benchmark. Idempotent: installs only what is missing.
set -euo pipefail
SUDO=${SUDO:-}
missing=()
[ -x /usr/sbin/sshd ] || missing+=(openssh-server)
command -v ssh >/dev/null 2>&1 || missing+=(openssh-client)
command -v ssh-keygen >/dev/null 2>&1 || missing+=(openssh-client)
command -v rsync >/dev/null 2>&1 || missing+=(rsync)
if [ ${#missing[@]} -gt 0 ]; then
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
fi
# sshd refuses to start without its privilege-separation directory.
[ -d /run/sshd ] || $SUDO mkdir -p /run/sshd
/usr/sbin/sshd -V 2>&1 | head -n1 || true
