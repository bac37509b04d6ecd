#!/usr/bin/env bash
# Makes sure .venv/schemathesis (at the repo root, gitignored) holds the pinned Schemathesis
# from PyPI, in a venv of its own (its dependencies must not touch the worker's). No-op when the
# pinned version already imports.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.venv/schemathesis
pin=4.32.5

if "$venv/bin/python" -c "import schemathesis, sys; sys.exit(schemathesis.__version__ != '$pin')" 2>/dev/null; then
  echo "schemathesis venv: $venv has schemathesis $pin"
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
if ! command -v python3 >/dev/null; then
  apt-get update -qq
  apt-get install -y -qq python3 python3-venv >/dev/null
fi

rm -rf "$venv"
mkdir -p .venv
if ! python3 -m venv "$venv" 2>/dev/null; then
  # Debian splits ensurepip into python3-venv
  rm -rf "$venv"
  apt-get update -qq
  apt-get install -y -qq python3-venv >/dev/null
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "schemathesis==$pin"
"$venv/bin/python" -c "import schemathesis, sys; sys.exit(schemathesis.__version__ != '$pin')"
echo "schemathesis venv: installed schemathesis $pin into $venv"
