"""The layout's rules, checked on the source: the packages depend in one direction, and a
pure module never imports an I/O module, even for a type or a helper (DESIGN.md section 7)."""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import pytest

import relay

ROOT = Path(relay.__file__).parent.parent
"""The folder that holds our top-level packages (the checkout, or site-packages)."""

PACKAGES = ("relay", "projections", "softphone_relay")
"""Our Python packages, bottom to top (``clientjs`` holds no Python)."""

ALLOWED: dict[str, set[str]] = {
    "relay": set(),
    "projections": {"relay"},
    "softphone_relay": {"relay", "projections"},
}
"""Which of our packages each package may import (nothing imports ``softphone_relay``)."""

ROOMS_ABOVE: dict[str, set[str]] = {
    "relay.wire": {"relay.server", "relay.control"},
    "relay.log": {"relay.server", "relay.control"},
    "relay.privacy": {"relay.server", "relay.control"},
    "relay.server": {"relay.control"},
    "relay.control": {"relay.server"},
}
"""Inside ``relay``: the rooms a room never imports (the server shell and the control API sit
on the wire protocol and the log's model, and neither on the other)."""

PURE = (
    "relay.errors",
    "relay.backoff",
    "relay.settings",
    "relay.wire.contract",
    "relay.wire.frames",
    "relay.wire.protocol",
    "relay.wire.phone",
    "relay.wire.heads",
    "relay.wire.connector",
    "relay.log.envelope",
    "relay.log.keys",
    "relay.log.append_script",
    "relay.log.streams",
    "relay.log.resume",
    "relay.log.delivery_rules",
    "relay.log.request_rules",
    "relay.log.agent_records",
    "relay.privacy.sealing",
    "relay.privacy.keys",
    "relay.privacy.conversations",
    "projections.outcomes",
    "projections.settle",
    "projections.registry",
    "projections.calls.fold",
    "projections.dispatch.fold",
    "projections.presence.fold",
    "projections.voice.feed",
    "projections.salesforce.limits",
    "projections.salesforce.task_mapping",
    "projections.salesforce.callers",
    "projections.salesforce.failures",
    "projections.salesforce.chunks",
    "projections.salesforce.doubts",
    "projections.salesforce.standin.access",
    "projections.salesforce.standin.org",
    "projections.salesforce.standin.schema",
    "projections.salesforce.standin.search",
    "projections.salesforce.standin.soql",
    "projections.archive.segments",
    "softphone_relay.ops.log_range",
    "softphone_relay.ops.replay_plan",
)
"""Modules of pure logic: messages and time in, decisions out (no file, environment or
network)."""

IO_LIBRARIES = frozenset(
    {"redis", "websockets", "aiohttp", "requests", "simple_salesforce", "socket", "subprocess"}
    | {"obstore", "pathlib", "shutil", "tempfile", "io"}
)
"""Libraries that talk to the network, processes or files (``os`` is allowed for
``os.strerror``; reading through it is caught by :data:`READS`)."""

READS = re.compile(
    r"os\.environ|os\.getenv|(?<![\w.])(?<!def )open\(|\.read_text\(|\.read_bytes\(|os\.read"
)
"""How a module would read the environment or a file without a library above."""


def module_path(name: str) -> Path:
    """The file of module or package ``NAME`` (dotted, from the top level)."""
    base = ROOT.joinpath(*name.split("."))
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


@cache
def imports(name: str) -> frozenset[str]:
    """What ``NAME`` imports at run time (``TYPE_CHECKING`` blocks aside)."""
    tree = ast.parse(module_path(name).read_text())
    found: set[str] = set()

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                found.add(node.module)
                found.update(f"{node.module}.{alias.name}" for alias in node.names)
            for field in ("body", "orelse", "finalbody", "handlers"):
                visit(getattr(node, field, []))

    visit(tree.body)
    return frozenset(found)


def ours(imported: frozenset[str]) -> set[str]:
    """Our modules among ``imported``: the longest prefix of each that is a file of ours."""
    names = set()
    for full in imported:
        if full.split(".")[0] in PACKAGES:
            name = full
            while name and not module_path(name).exists():
                name = name.rpartition(".")[0]
            if name:
                names.add(name)
    return names


def all_modules() -> list[str]:
    """Every module of our Python packages, by dotted name."""
    found = []
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found.append(".".join(parts))
    return sorted(found)


def room(name: str) -> str:
    """``relay.wire`` for ``relay.wire.contract``: a module's package and first folder."""
    return ".".join(name.split(".")[:2])


@pytest.mark.parametrize("name", all_modules())
def test_packages_import_only_the_packages_below_them(name: str) -> None:
    """relay ← projections ← softphone_relay; nothing imports the command line's package."""
    package = name.split(".")[0]
    for imported in ours(imports(name)):
        other = imported.split(".")[0]
        assert other == package or other in ALLOWED[package], f"{name} imports {imported}"


@pytest.mark.parametrize("name", [n for n in all_modules() if room(n) in ROOMS_ABOVE])
def test_relay_rooms_never_import_the_shells_above_them(name: str) -> None:
    """The wire protocol and the log's model know nothing of the server or the control API."""
    for imported in ours(imports(name)):
        assert room(imported) not in ROOMS_ABOVE[room(name)], f"{name} imports {imported}"


def test_every_pure_module_exists() -> None:
    """The list above names real modules (a move must update it, not silently skip it)."""
    assert [name for name in PURE if not module_path(name).exists()] == []


@pytest.mark.parametrize("name", PURE)
def test_a_pure_module_imports_no_io_even_indirectly(name: str) -> None:
    """No socket, Redis, HTTP, process or file library, and no module of ours that uses one."""
    seen: set[str] = set()
    todo = [name]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        libraries = {i.split(".")[0] for i in imports(current)} & IO_LIBRARIES
        assert not libraries, f"{name} reaches {', '.join(sorted(libraries))} via {current}"
        todo.extend(ours(imports(current)))


@pytest.mark.parametrize("name", PURE)
def test_a_pure_module_reads_no_environment_and_no_file(name: str) -> None:
    """Settings and files are read by the command line, which hands pure modules values."""
    source = module_path(name).read_text()
    assert READS.findall(source) == []


def test_projection_groups_are_loaded_from_modules_the_layout_can_see() -> None:
    """The registry names each group's module by a string; each is a real module of ours in
    ``projections`` (so the layering above covers it too)."""
    from projections.registry import GROUPS

    for group in GROUPS:
        assert group.module.startswith("projections."), group
        assert module_path(group.module).exists(), group


def test_no_module_is_over_about_450_lines() -> None:
    """Small modules with one owner each."""
    long = {
        name: count
        for name in all_modules()
        if (count := len(module_path(name).read_text().splitlines())) > 460
    }
    assert long == {}
