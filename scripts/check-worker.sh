#!/usr/bin/env bash
# The reference worker's own unit tests (apps/worker/test_*.py: partial files, cleanup and the
# orphan sweep, without a broker), with the worker's venv (scripts/ensure-celery-venv.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-celery-venv.sh >/dev/null
.venv/worker/bin/python -m unittest discover -s apps/worker -p 'test_*.py'
