"""The layout's rules, checked on the source: the packages depend in one direction, and a
pure module never imports an I/O module, even for a type or a helper (DESIGN.md section 7)."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

import softphone_relay

SOURCE = Path(softphone_relay.__file__).parent

ALLOWED: dict[str, set[str]] = {
    "relay": set(),
    "control": {"relay"},
    "projections": {"relay"},
    "salesforce": {"relay", "projections"},
    "archive": {"relay", "projections"},
    "ops": {"relay", "projections", "salesforce", "archive"},
    "cli": {"relay", "control", "projections", "salesforce", "archive", "ops"},
}
"""Which of our packages each package may import (nothing imports ``cli``)."""

PURE = (
    "relay.contract",
    "relay.frames",
    "relay.protocol",
    "relay.envelope",
    "relay.resume",
    "relay.backoff",
    "relay.errors",
    "relay.keys",
    "relay.streams",
    "relay.phone",
    "relay.delivery_rules",
    "relay.request_rules",
    "relay.agent_records",
    "projections.outcomes",
    "projections.settle",
    "projections.registry",
    "projections.calls.fold",
    "projections.dispatch.fold",
    "projections.presence.fold",
    "salesforce.limits",
    "salesforce.task_mapping",
    "salesforce.callers",
    "salesforce.failures",
    "salesforce.chunks",
    "salesforce.standin.org",
    "salesforce.standin.schema",
    "salesforce.standin.search",
    "salesforce.standin.soql",
    "archive.segments",
    "ops.log_range",
    "ops.replay_plan",
)
"""Modules of pure logic: messages and time in, decisions out."""

IO_LIBRARIES = frozenset(
    {"redis", "websockets", "aiohttp", "requests", "simple_salesforce", "socket", "subprocess"}
    | {"obstore"}
)


def module_path(name: str) -> Path:
    """The file of ``softphone_relay.NAME``."""
    base = SOURCE.joinpath(*name.split("."))
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


@cache
def imports(name: str) -> frozenset[str]:
    """What ``softphone_relay.NAME`` imports at run time (``TYPE_CHECKING`` blocks aside)."""
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
    """Our modules among ``imported`` (without the ``softphone_relay.`` prefix)."""
    names = set()
    for full in imported:
        if full.startswith("softphone_relay."):
            name = full.removeprefix("softphone_relay.")
            while name and not module_path(name).exists():
                name = name.rpartition(".")[0]
            if name:
                names.add(name)
    return names


def all_modules() -> list[str]:
    """Every module of the package, by dotted name below ``softphone_relay``."""
    found = []
    for path in SOURCE.rglob("*.py"):
        parts = path.relative_to(SOURCE).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if parts and parts[0] in ALLOWED:
            found.append(".".join(parts))
    return sorted(found)


@pytest.mark.parametrize("name", all_modules())
def test_packages_import_only_the_packages_below_them(name: str) -> None:
    """relay ← control, projections ← salesforce ← ops ← cli; nothing imports cli."""
    package = name.split(".")[0]
    for imported in ours(imports(name)):
        other = imported.split(".")[0]
        assert other == package or other in ALLOWED[package], f"{name} imports {imported}"


@pytest.mark.parametrize("name", PURE)
def test_a_pure_module_imports_no_io_even_indirectly(name: str) -> None:
    """No socket, Redis, HTTP or process library, and no module of ours that uses one."""
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


def test_no_module_is_over_about_450_lines() -> None:
    """Small modules with one owner each."""
    long = {
        name: count
        for name in all_modules()
        if (count := len(module_path(name).read_text().splitlines())) > 460
    }
    assert long == {}
