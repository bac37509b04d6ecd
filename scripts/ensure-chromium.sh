#!/usr/bin/env bash
# Makes sure headless Chromium and its WebDriver are installed (the dashboard's browser tests
# drive them). No-op when both are there; otherwise installs Debian's `chromium` and
# `chromium-driver`.
set -euo pipefail

if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
  echo "chromium: already installed ($(chromium --version 2>/dev/null || echo unknown version))"
  exit 0
fi

echo "chromium: installing chromium and chromium-driver"
. "$(dirname "$0")/lib/apt.sh"
apt_install chromium chromium-driver fonts-dejavu-core
command -v chromium >/dev/null && command -v chromedriver >/dev/null
echo "chromium: installed ($(chromium --version 2>/dev/null || echo unknown version))"
