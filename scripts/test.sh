#!/usr/bin/env bash
# Set everything up (a .venv with the project and its test tools) and run every check:
# ruff (lint + format), mypy --strict, then the whole test suite against real servers.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
echo "== ruff"
.venv/bin/ruff check relay projections softphone_relay tests bench
.venv/bin/ruff format --check relay projections softphone_relay tests bench
echo "== mypy --strict"
.venv/bin/mypy
echo "== pytest"
.venv/bin/pytest "$@"
