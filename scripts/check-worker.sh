#!/usr/bin/env bash
# The reference worker's own unit tests (apps/worker/test_*.py: partial files, cleanup and the
# orphan sweep, without a broker), with the worker's venv (scripts/ensure-celery-venv.sh), then
# the claim package's tests against real workers of Celery 5.7 and of the oldest Celery it
# supports (packages/ensinalab-claim/check.sh, which builds that venv once).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-celery-venv.sh >/dev/null
.venv/worker/bin/python -m unittest discover -s apps/worker -p 'test_*.py'
bash packages/ensinalab-claim/check.sh
