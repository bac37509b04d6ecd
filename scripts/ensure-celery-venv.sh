#!/usr/bin/env bash
# Makes sure .venv/worker (at the repo root, gitignored) holds the reference worker's pinned
# Celery (apps/worker/requirements.txt). No-op when it was installed from the same
# requirements file and still imports; otherwise (re)creates the venv and pip-installs.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/venv.sh

req=apps/worker/requirements.txt
celery_pin="$(sed -n 's/^celery\[redis\]==\([^ ]*\).*/\1/p' "$req")"
venv_from_requirements "celery venv" .venv/worker "$req" \
  "import celery, sys; sys.exit(celery.__version__ != '$celery_pin')"
