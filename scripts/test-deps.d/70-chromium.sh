#!/usr/bin/env bash
# Chromium (headless) for the run viewer's browser tests (engine/viewer,
# driven with chromedp), and its driver. Idempotent: installs only what is
# missing.
set -euo pipefail
SUDO=${SUDO:-}
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
if [ ${#missing[@]} -gt 0 ]; then
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
fi
chromium --version 2>/dev/null | head -n1 || true
