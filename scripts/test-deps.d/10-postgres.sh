#!/usr/bin/env bash
# PostgreSQL server binaries for internal/testenv (initdb/pg_ctl under
# /usr/lib/postgresql/*/bin). The tests start their own throwaway cluster
# on loopback; nothing is started here. Idempotent.
set -euo pipefail
if compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
  echo "postgres: $(ls -d /usr/lib/postgresql/*/bin | tail -n1) present"
  exit 0
fi
${SUDO:-} apt-get install -y -qq postgresql postgresql-contrib >/dev/null
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || { echo "postgres: initdb still missing" >&2; exit 1; }
echo "postgres: installed $(ls -d /usr/lib/postgresql/*/bin | tail -n1)"
