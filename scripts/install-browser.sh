#!/usr/bin/env bash
# Install headless Chromium (Debian's `chromium` package) and the fonts the HTML study report uses,
# for the browser tests of `llem results report` (tests/integration/test_report_browser.py).
# Idempotent: does nothing where chromium is already installed. Needs root or sudo.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
  echo "install-browser: $(chromium --version 2>/dev/null || chromium-browser --version) already installed"
  exit 0
fi
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "install-browser: installing chromium and fonts-dejavu-core with apt-get (about 1-2 minutes)" >&2
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core
chromium --version
