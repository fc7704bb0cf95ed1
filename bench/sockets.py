"""Sockets benchmark: a contact center's load is agents, not events.

    .venv/bin/python bench/sockets.py [--sessions 10000] [--concurrency 200]
                                      [--idle-seconds 30] [--soak-minutes 0]

Starts its own Redis-compatible server (the embedded binary) and ``softphone-relay serve`` as a
separate process, then opens ``--sessions`` agent sessions at once (a reconnect storm: each
connects, says hello and waits for its welcome, ``--concurrency`` handshakes in flight), keeps
them all open and idle, and measures the relay. The same client then does the same against a
bare ``websockets`` server (hello in, a welcome out, pings at the same interval), the baseline
of what any Python websocket server costs, in the same run.

Prints, for both: sessions refused, admission rate (sessions/s), memory per open socket (RSS
growth over the storm / sessions), CPU while every socket is idle (share of one core); and the
relay/bare ratios. ``--soak-minutes M`` then keeps the relay's sessions open M minutes and
prints its RSS every minute (it should not grow).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import msgspec
from measure import cpu_seconds, rss_bytes, wait_for_port
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import InvalidHandshake

from relay.wire.auth import mint_token
from softphone_relay.embedded import EmbeddedServer, free_port

SECRET = "bench-secret-0123456789abcdef-0123456789"
PARTNER = "215fd887-39be-4935-981f-2670d6afeaa7"
HEARTBEAT = 20.0


class Frame(msgspec.Struct):
    type: str
    code: str | None = None


frame_decoder = msgspec.json.Decoder(Frame)


@dataclass
class Storm:
    """What one reconnect storm gave."""

    opened: list[ClientConnection]
    refused: dict[str, int]
    seconds: float

    @property
    def rate(self) -> float:
        return len(self.opened) / self.seconds if self.seconds else 0.0


async def open_session(url: str, agent: str, storm: Storm, gate: asyncio.Semaphore) -> None:
    """Connect, hello, wait for the welcome; a refusal is counted by its reason."""
    async with gate:
        hello = msgspec.json.encode(
            {"type": "hello", "token": mint_token(SECRET, agent, PARTNER, 3600), "client": "b/1"}
        )
        try:
            ws = await connect(
                url,
                subprotocols=["softphone.v1"],  # type: ignore[list-item]
                open_timeout=60,
                ping_interval=None,
                compression=None,
            )
        except (OSError, TimeoutError, InvalidHandshake) as error:
            storm.refused[type(error).__name__] = storm.refused.get(type(error).__name__, 0) + 1
            return
        try:
            await ws.send(hello.decode())
            frame = frame_decoder.decode(await asyncio.wait_for(ws.recv(), 60))
        except Exception as error:  # any way a session fails to open counts, by name
            storm.refused[type(error).__name__] = storm.refused.get(type(error).__name__, 0) + 1
            await ws.close()
            return
        if frame.type != "welcome":
            reason = frame.code or frame.type
            storm.refused[reason] = storm.refused.get(reason, 0) + 1
            await ws.close()
            return
        storm.opened.append(ws)


async def storm(url: str, sessions: int, concurrency: int) -> Storm:
    """Open every session at once (at most ``concurrency`` handshakes in flight)."""
    result = Storm([], {}, 0.0)
    gate = asyncio.Semaphore(concurrency)
    started = time.perf_counter()
    await asyncio.gather(
        *(open_session(url, f"agent-{n:05}", result, gate) for n in range(sessions))
    )
    result.seconds = time.perf_counter() - started
    return result


@dataclass
class Figures:
    refused: dict[str, int]
    opened: int
    rate: float
    bytes_per_socket: float
    idle_cpu: float


async def measure(
    url: str, pid: int, sessions: int, concurrency: int, idle_seconds: float, soak_minutes: int
) -> Figures:
    """One storm against the server at ``url`` (process ``pid``), then idle; close all."""
    await asyncio.sleep(1.0)
    before = rss_bytes(pid)
    result = await storm(url, sessions, concurrency)
    await asyncio.sleep(2.0)  # let admissions settle
    grown = rss_bytes(pid) - before
    cpu, wall = cpu_seconds(pid), time.perf_counter()
    await asyncio.sleep(idle_seconds)
    idle = (cpu_seconds(pid) - cpu) / (time.perf_counter() - wall)
    for minute in range(1, soak_minutes + 1):
        await asyncio.sleep(60)
        alive = sum(ws.close_code is None for ws in result.opened)
        print(f"soak: minute {minute}: relay RSS {rss_bytes(pid) / 2**20:.1f} MiB, open {alive}")
    await asyncio.gather(*(ws.close() for ws in result.opened), return_exceptions=True)
    return Figures(
        result.refused,
        len(result.opened),
        result.rate,
        grown / max(1, len(result.opened)),
        idle,
    )


async def bare_server(port: int) -> None:
    """The baseline: hello in, a welcome out, then read until closed; pings as the relay's."""

    async def handle(ws: ServerConnection) -> None:
        await ws.recv()
        await ws.send('{"type":"welcome"}')
        with contextlib.suppress(Exception):
            async for _ in ws:
                pass

    async with serve(
        handle,
        "127.0.0.1",
        port,
        subprotocols=["softphone.v1"],  # type: ignore[list-item]
        ping_interval=HEARTBEAT,
        ping_timeout=HEARTBEAT,
        compression=None,
    ):
        await asyncio.Future()


def run(coroutine: object) -> object:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)  # type: ignore[arg-type]
    return uvloop.run(coroutine)  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    parser.add_argument("--soak-minutes", type=int, default=0)
    parser.add_argument("--bare-server", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_server:
        run(bare_server(args.bare_server))
        return
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    with tempfile.TemporaryDirectory() as tmp, EmbeddedServer(Path(tmp) / "redis") as server:
        port, api_port = free_port(), free_port()
        env = {
            **os.environ,
            "SOFTPHONE_RELAY_REDIS_URL": server.url,
            "SOFTPHONE_RELAY_SECRET": SECRET,
            "SOFTPHONE_RELAY_PORT": str(port),
            "SOFTPHONE_RELAY_API_PORT": str(api_port),
            "SOFTPHONE_RELAY_HEARTBEAT": f"{HEARTBEAT:g}s",
        }
        relay = subprocess.Popen(
            [sys.executable, "-m", "softphone_relay", "--log-level", "warning", "serve"], env=env
        )
        try:
            wait_for_port(port, relay)
            url = f"ws://127.0.0.1:{port}/v1/socket"
            ours = run(
                measure(
                    url,
                    relay.pid,
                    args.sessions,
                    args.concurrency,
                    args.idle_seconds,
                    args.soak_minutes,
                )
            )
        finally:
            relay.terminate()
            relay.wait(60)
    bare_port = free_port()
    bare = subprocess.Popen([sys.executable, __file__, "--bare-server", str(bare_port)])
    try:
        wait_for_port(bare_port, bare)
        baseline = run(
            measure(
                f"ws://127.0.0.1:{bare_port}/v1/socket",
                bare.pid,
                args.sessions,
                args.concurrency,
                args.idle_seconds,
                0,
            )
        )
    finally:
        bare.terminate()
        bare.wait(60)
    assert isinstance(ours, Figures) and isinstance(baseline, Figures)
    print(
        f"sessions={args.sessions} concurrency={args.concurrency} heartbeat={HEARTBEAT:g}s "
        f"idle={args.idle_seconds:g}s cores={os.cpu_count()}"
    )
    for name, figures in (("relay", ours), ("bare websockets", baseline)):
        refused = sum(figures.refused.values())
        why = f" {figures.refused}" if figures.refused else ""
        print(
            f"{name:>16}: refused {refused}{why}, opened {figures.opened}, admission "
            f"{figures.rate:,.0f} sessions/s, {figures.bytes_per_socket / 1024:.1f} KiB per "
            f"socket, idle CPU {figures.idle_cpu:.1%} of a core"
        )
    print(
        f"relay/bare: admission {ours.rate / baseline.rate:.0%}, memory per socket "
        f"{ours.bytes_per_socket / max(1.0, baseline.bytes_per_socket):.1f}x"
    )


if __name__ == "__main__":
    main()
