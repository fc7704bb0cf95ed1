#!/usr/bin/env bash
# Refresh constraints.txt: resolve the project's dependencies and test tools afresh (the newest
# releases that pyproject.toml allows) in a throwaway venv, and pin every one of them. Run it on
# purpose, then run scripts/test.sh; CI and both scripts install only these versions, so an
# upstream release changes nothing until someone runs this and commits the result.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
venv="$(mktemp -d)"
trap 'rm -rf "$venv" build' EXIT
"$PYTHON" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check '.[test]'
{
  echo "# Every dependency's version, for CI, scripts/test.sh, scripts/up.sh and the image."
  echo "# Made by scripts/lock.sh with $("$venv/bin/python" --version); refresh it with that command."
  "$venv/bin/python" -m pip freeze --exclude softphone-relay | grep -v '^pip=='
} > constraints.txt
echo "constraints.txt: $(grep -vc '^#' constraints.txt) pinned packages"
