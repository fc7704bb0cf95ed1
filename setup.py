"""Builds the Salesforce Voice connector (``clientjs/connector.js``) into the wheel.

The connector bundles the pinned ``@salesforce/scv-connector-base`` from npm with our code
(``clientjs/connector/``); it is never committed. Building a wheel (``pip wheel .``, the
image's first stage) runs ``npm ci`` and ``npm run build`` in ``clientjs/`` unless the built
file is newer than everything it is made of, and fails, saying so, when Node is missing. An
editable install (``pip install -e .``, which ``scripts/up.sh`` does on machines without Node)
builds nothing: ``scripts/test.sh`` builds it, and the relay answers ``/connector.js`` with a
404 that says how until then. Everything else is in ``pyproject.toml``.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

CLIENTJS = Path(__file__).resolve().parent / "clientjs"
BUILT = CLIENTJS / "connector.js"
SOURCES = [
    *sorted((CLIENTJS / "connector").glob("*.mjs")),
    CLIENTJS / "package.json",
    CLIENTJS / "package-lock.json",
]


def connector_is_fresh() -> bool:
    """The built connector exists and is newer than every file it is made of."""
    if not BUILT.exists():
        return False
    built = BUILT.stat().st_mtime
    return all(source.stat().st_mtime <= built for source in SOURCES if source.exists())


def build_connector() -> None:
    """``npm ci`` (when ``node_modules`` is missing) and ``npm run build`` in ``clientjs/``."""
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        raise SystemExit(
            "building the wheel needs Node.js and npm: they bundle the Salesforce Voice "
            "connector (clientjs/connector.js) from the pinned @salesforce/scv-connector-base"
        )
    if not (CLIENTJS / "node_modules" / "@salesforce" / "scv-connector-base").is_dir():
        subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--silent"], cwd=CLIENTJS, check=True)
    subprocess.run([npm, "run", "build", "--silent"], cwd=CLIENTJS, check=True)


class BuildPyWithConnector(build_py):
    """``build_py`` that builds the connector first (not for editable installs)."""

    def run(self) -> None:
        if not getattr(self, "editable_mode", False) and not connector_is_fresh():
            build_connector()
        super().run()


setup(cmdclass={"build_py": BuildPyWithConnector})
