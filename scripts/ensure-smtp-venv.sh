#!/usr/bin/env bash
# Makes sure .venv/smtp (at the repo root, gitignored) holds the pinned aiosmtpd the alert
# e-mail tests run as their SMTP server (scripts/smtp-requirements.txt). No-op when it was
# installed from the same requirements file and still imports; otherwise (re)creates it.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/venv.sh

venv_from_requirements "smtp venv" .venv/smtp scripts/smtp-requirements.txt "import aiosmtpd"
