#!/usr/bin/env bash
# Makes sure .venv/worker (at the repo root, gitignored) holds the reference worker's pinned
# Celery (apps/worker/requirements.txt) and the claim package (packages/ensinalab-claim). Each
# is a no-op when installed from the same files (the venv keeps their hashes) and the venv still
# imports Celery; otherwise the venv is (re)created or the package re-installed.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/venv.sh

req=apps/worker/requirements.txt
celery_pin="$(sed -n 's/^celery\[redis\]==\([^ ]*\).*/\1/p' "$req")"
venv_from_requirements "celery venv" .venv/worker "$req" \
  "import celery, sys; sys.exit(celery.__version__ != '$celery_pin')"
install_local_package "claim package" .venv/worker packages/ensinalab-claim
