#!/usr/bin/env bash
# Set everything up and run every check. Sets up: a .venv with the project and its test tools at
# the versions constraints.txt pins (scripts/lock.sh refreshes it); the npm packages of clientjs/
# (tsc, esbuild, the pinned Salesforce Voice SDK, bundled into clientjs/connector.js), of the browser tests' driver and of the Salesforce kit's Apex check (each from its
# lockfile); Debian's Chromium. Runs: clientjs's unit tests (node --test) and tsc checking
# softphone.js against softphone.d.ts, the Apex syntax check, ruff (lint + format), mypy --strict,
# then the whole test suite against real servers and a real browser.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test]'
# scripts/up.sh need not install again for the same dependencies.
cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1 > .venv/.softphone-relay-setup
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
(cd clientjs && npm ci --no-audit --no-fund --silent)
echo "== the Salesforce Voice connector: clientjs/connector.js from the pinned scv-connector-base"
(cd clientjs && npm run build --silent)
(cd tests/clientjs && npm ci --no-audit --no-fund --silent)
(cd tests/salesforce_kit && npm ci --no-audit --no-fund --silent)
echo "== node --test (clientjs), and tsc: softphone.js against softphone.d.ts"
(cd clientjs && npm test --silent && npm run typecheck --silent)
echo "== node --test (the Salesforce kit's Apex, parsed)"
(cd tests/salesforce_kit && node --test apex.test.mjs)
echo "== ruff"
.venv/bin/ruff check relay projections clientjs softphone_relay tests bench
.venv/bin/ruff format --check relay projections clientjs softphone_relay tests bench
echo "== mypy --strict"
.venv/bin/mypy
echo "== pytest"
.venv/bin/pytest "$@"
