#!/usr/bin/env bash
# Makes sure `prometheus` and `promtool` are installed (Debian's `prometheus` package): the
# alerting rules are checked and unit-tested with promtool, and an api test runs a real
# Prometheus against a real server. Installs only; starts nothing (the Debian package's own
# service is stopped if the package manager started one, so that it holds no port).
set -euo pipefail

if command -v prometheus >/dev/null && command -v promtool >/dev/null; then
  echo "prometheus: $(prometheus --version 2>&1 | head -n 1)"
  exit 0
fi

echo "prometheus: installing Debian's prometheus package"
. "$(dirname "$0")/lib/apt.sh"
apt_install prometheus
if command -v systemctl >/dev/null && systemctl is-active --quiet prometheus 2>/dev/null; then
  systemctl stop prometheus || true
fi
echo "prometheus: $(prometheus --version 2>&1 | head -n 1)"
