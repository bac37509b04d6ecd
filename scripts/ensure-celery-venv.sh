#!/usr/bin/env bash
# Makes sure .venv/worker (at the repo root, gitignored) holds the reference worker's pinned
# Celery (apps/worker/requirements.txt). No-op when it was installed from the same
# requirements file and still imports; otherwise (re)creates the venv and pip-installs.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/venv.sh

venv=.venv/worker
req=apps/worker/requirements.txt
stamp="$venv/.requirements.sha256"
want="$(sha256sum "$req" | cut -d' ' -f1)"
celery_pin="$(sed -n 's/^celery\[redis\]==\([^ ]*\).*/\1/p' "$req")"

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] &&
  "$venv/bin/python" -c "import celery, sys; sys.exit(celery.__version__ != '$celery_pin')" 2>/dev/null; then
  echo "celery venv: $venv has celery $celery_pin"
  exit 0
fi

fresh_venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req"
"$venv/bin/python" -c "import celery, sys; sys.exit(celery.__version__ != '$celery_pin')"
echo "$want" >"$stamp"
echo "celery venv: installed celery $celery_pin into $venv"
