#!/usr/bin/env bash
# RabbitMQ for the nextcloud migration contract tests and `runbook consume`
# (internal/testenv/rabbitmq.go). The tests start a private node on
# loopback; the Debian service is never started. Idempotent.
set -euo pipefail
SUDO=${SUDO:-}
if ! command -v rabbitmq-server >/dev/null 2>&1; then
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends rabbitmq-server
fi
dpkg-query -W -f='rabbitmq-server ${Version}\n' rabbitmq-server 2>/dev/null || true
