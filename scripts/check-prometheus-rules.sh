#!/usr/bin/env bash
# The Prometheus files of deploy/prometheus: the scrape configuration and the alerting rules
# are valid, and every alert fires and stays silent where its unit tests say
# (alerts.test.yml). The end-to-end proof against a running server is an api test
# (apps/ensinalab-api/tests/api/prometheus.rs).
set -euo pipefail
cd "$(dirname "$0")/../deploy/prometheus"
bash ../../scripts/ensure-prometheus.sh >/dev/null
promtool check config prometheus.yml
promtool check rules alerts.yml
promtool test rules alerts.test.yml
