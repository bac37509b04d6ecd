#!/usr/bin/env bash
# Makes sure .venv/schemathesis (at the repo root, gitignored) holds the pinned Schemathesis
# from PyPI, in a venv of its own (its dependencies must not touch the worker's). No-op when the
# pinned version already imports.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/venv.sh

venv=.venv/schemathesis
pin=4.32.5

if "$venv/bin/python" -c "import schemathesis, sys; sys.exit(schemathesis.__version__ != '$pin')" 2>/dev/null; then
  echo "schemathesis venv: $venv has schemathesis $pin"
  exit 0
fi

fresh_venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "schemathesis==$pin"
"$venv/bin/python" -c "import schemathesis, sys; sys.exit(schemathesis.__version__ != '$pin')"
echo "schemathesis venv: installed schemathesis $pin into $venv"
