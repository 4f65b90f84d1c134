#!/usr/bin/env bash
# Create .venv and install cep-bus with every extra (services, audit, inbox, the embedded broker:
# `.[all]`, see docs/installing.md) and the test tools, editable. Idempotent: pip runs again only when
# pyproject.toml changed since the last install.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.cepbus-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[all,test]'
  touch "$stamp"
fi
