#!/usr/bin/env bash
# The package's tests, each against a real worker of each Celery version it is tested with:
# 5.7 from .venv/worker (scripts/ensure-celery-venv.sh: the reference worker's venv, which has
# the package) and the oldest, 5.3.0, from .venv/claim-celery-5.3 (built here from
# tests/requirements-celery-5.3.txt). Both are no-ops when the venvs are up to date. Needs
# redis-server and redis-cli (scripts/ensure-redis.sh) and the shared Redis at 127.0.0.1:6379.
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib/venv.sh

bash scripts/ensure-celery-venv.sh >/dev/null
oldest=.venv/claim-celery-5.3
venv_from_requirements "celery 5.3 venv" "$oldest" packages/ensinalab-claim/tests/requirements-celery-5.3.txt \
  "import celery, sys; sys.exit(celery.__version__ != '5.3.0')" >/dev/null
install_local_package "claim package" "$oldest" packages/ensinalab-claim >/dev/null

root=$PWD failed=0
for venv in .venv/worker "$oldest"; do
  (cd packages/ensinalab-claim/tests && "$root/$venv/bin/python" -m unittest test_claim) || failed=1
done
exit "$failed"
