#!/usr/bin/env bash
# pouchdb-server 4.2.0 (a CouchDB 1.x-compatible server) for the couchdb plugin tests
# and benchmark. Idempotent: skips the install when the pinned version is already there.
# internal/testenv/couchdb.go looks for it in $RUNBOOK_POUCHDB_DIR (default below).
set -euo pipefail
SUDO=${SUDO:-}
DIR=${RUNBOOK_POUCHDB_DIR:-/opt/runbook-testdeps/pouchdb}
VERSION=4.2.0
BIN="$DIR/node_modules/pouchdb-server/bin/pouchdb-server"
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends nodejs npm
fi
installed=""
if [ -f "$DIR/node_modules/pouchdb-server/package.json" ]; then
  installed=$(node -p "require('$DIR/node_modules/pouchdb-server/package.json').version" 2>/dev/null || true)
fi
if [ -x "$BIN" ] || [ -f "$BIN" ]; then
  if [ "$installed" = "$VERSION" ]; then
    echo "pouchdb-server $VERSION already in $DIR"
    exit 0
  fi
fi
$SUDO mkdir -p "$DIR"
cd "$DIR"
[ -f package.json ] || npm init -y >/dev/null
# npm's "install scripts not approved" warning is harmless: leveldown uses its prebuilt binary.
npm install --no-audit --no-fund "pouchdb-server@$VERSION"
echo "pouchdb-server $(node -p "require('$DIR/node_modules/pouchdb-server/package.json').version") installed in $DIR"
