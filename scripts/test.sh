#!/usr/bin/env bash
# Set everything up (a .venv with the project and its test tools, the npm packages of clientjs's
# tests and of the Salesforce kit's Apex check, Debian's Chromium) and run every check: clientjs's
# unit tests and the Apex syntax check (node --test), ruff (lint + format), mypy --strict, then
# the whole test suite against real servers and a real browser.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
# scripts/up.sh need not install again for the same dependencies.
sha256sum pyproject.toml | cut -d' ' -f1 > .venv/.softphone-relay-setup
# The browser tests drive Debian's Chromium with playwright-core (never a downloaded browser).
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "== installing chromium (Debian package) for the browser tests"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "scripts/test.sh: the browser tests need Chromium: sudo apt-get install chromium" >&2
    exit 1
  fi
fi
(cd tests/clientjs && npm ci --no-audit --no-fund --silent)
(cd tests/salesforce_kit && npm ci --no-audit --no-fund --silent)
echo "== node --test (clientjs)"
(cd tests/clientjs && node --test softphone.test.js)
echo "== node --test (the Salesforce kit's Apex, parsed)"
(cd tests/salesforce_kit && node --test apex.test.mjs)
echo "== ruff"
.venv/bin/ruff check softphone_relay tests bench
.venv/bin/ruff format --check softphone_relay tests bench
echo "== mypy --strict"
.venv/bin/mypy
echo "== pytest"
.venv/bin/pytest "$@"
