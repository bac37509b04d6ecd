#!/usr/bin/env bash
# Makes sure .venv/smtp (at the repo root, gitignored) holds the pinned aiosmtpd the alert
# e-mail tests run as their SMTP server (scripts/smtp-requirements.txt). No-op when it was
# installed from the same requirements file and still imports; otherwise (re)creates it.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/venv.sh

venv=.venv/smtp
req=scripts/smtp-requirements.txt
stamp="$venv/.requirements.sha256"
want="$(sha256sum "$req" | cut -d' ' -f1)"

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] &&
  "$venv/bin/python" -c "import aiosmtpd" 2>/dev/null; then
  echo "smtp venv: $venv has aiosmtpd"
  exit 0
fi

fresh_venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req"
"$venv/bin/python" -c "import aiosmtpd"
echo "$want" >"$stamp"
echo "smtp venv: installed aiosmtpd into $venv"
