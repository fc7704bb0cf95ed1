#!/usr/bin/env bash
# Start the whole system on embedded defaults (`softphone-relay up`), setting up what it needs
# first when it is missing: a .venv with the project and its runtime dependencies only (no test
# tools, no browser). Arguments are passed to `up`, e.g. ./scripts/up.sh --port 9000.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "scripts/up.sh: softphone-relay needs Python 3.11 or newer (set PYTHON=...)" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
# Install (again) only when the project's dependencies changed since the last install.
stamp=.venv/.softphone-relay-setup
wanted="$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)"
if [ ! -x .venv/bin/softphone-relay ] || [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
  echo "== setting up .venv for softphone-relay (once)" >&2
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e .
  echo "$wanted" > "$stamp"
fi
exec .venv/bin/softphone-relay up "$@"
