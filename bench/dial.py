"""Click-to-dial latency: from ``POST /v1/agents/{id}/calls`` to the ``start_call`` frame on the
agent's socket, the agent being connected to another relay instance than the API it called.

    .venv/bin/python bench/dial.py [--requests 1000] [--background-rate 500]

Starts its own Redis-compatible server, two ``softphone-relay serve`` processes (the agent on
relay A; the API of relay B is called) and a ``softphone-relay project --group dispatch``
worker, then sends ``--requests`` click-to-dials one after another (each with its own number,
each acked by the agent), twice: on an idle system, and while another agent sends
``--background-rate`` events/s to relay B. Prints p50/p99/max per phase.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp
from measure import percentile, wait_for_port
from websockets.asyncio.client import ClientConnection, connect

from relay.wire.auth import mint_token
from softphone_relay.embedded import EmbeddedServer, free_port

SECRET = "bench-secret-0123456789abcdef-0123456789"
PARTNER = "215fd887-39be-4935-981f-2670d6afeaa7"
API_KEY = "bench-api-key-0123456789"
PARTNERS = f"""
[partners."{PARTNER}"]
businessSegmentId = "d6afeaa7-39be-4935-981f-2670215fd887"
channelOriginId = "57053e21-0440-4689-a27a-513d7dceebde"
dialFrom = "+18449401117"
"""


async def open_agent(port: int, agent: str) -> ClientConnection:
    ws = await connect(f"ws://127.0.0.1:{port}/v1/socket", subprotocols=["softphone.v1"])  # type: ignore[list-item]
    await ws.send(json.dumps({"type": "hello", "token": mint_token(SECRET, agent, PARTNER, 3600)}))
    welcome = json.loads(await ws.recv())
    assert welcome["type"] == "welcome", welcome
    return ws


async def background(port: int, rate: float, stop: asyncio.Event) -> int:
    """Another agent sending ``rate`` events/s to relay B; returns how many were acked."""
    ws = await open_agent(port, "load-agent")
    acked = 0

    async def read() -> None:
        nonlocal acked
        async for message in ws:
            if json.loads(message).get("type") == "ack":
                acked += 1

    reader = asyncio.create_task(read())
    start, sent = time.perf_counter(), 0
    conversations = [str(uuid.uuid4()) for _ in range(5000)]
    while not stop.is_set():
        due = start + sent / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        frame = {
            "type": "event",
            "id": str(uuid.uuid4()),
            "name": "callAccepted",
            "at": "2026-11-25T10:00:00Z",
            "data": {
                "partnerId": PARTNER,
                "conversationId": conversations[sent % len(conversations)],
            },
        }
        await ws.send(json.dumps(frame))
        sent += 1
    await ws.close()
    reader.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await reader
    return acked


async def dial_phase(agent: ClientConnection, api: str, count: int, offset: int) -> list[float]:
    """``count`` click-to-dials one after another; the latency of each, in seconds."""
    latencies: list[float] = []
    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with aiohttp.ClientSession(api, headers=headers) as http:
        for n in range(count):
            number = f"+1800{offset + n:07d}"
            started = time.perf_counter()
            async with http.post("/v1/agents/bench-agent/calls", json={"dialTo": number}) as answer:
                assert answer.status == 202, await answer.text()
            while True:
                frame = json.loads(await asyncio.wait_for(agent.recv(), 10))
                if frame.get("type") == "command" and frame["data"]["dialTo"] == number:
                    break
            latencies.append(time.perf_counter() - started)
            await agent.send(json.dumps({"type": "ack", "id": frame["id"]}))
    return latencies


def report(name: str, latencies: list[float]) -> None:
    ms = [v * 1000 for v in latencies]
    print(
        f"{name}: {len(ms)} click-to-dials  p50 {percentile(ms, 0.5):.1f} ms  "
        f"p99 {percentile(ms, 0.99):.1f} ms  max {max(ms):.1f} ms"
    )


async def measure(args: argparse.Namespace, relay_a: int, relay_b: int, api: str) -> None:
    agent = await open_agent(relay_a, "bench-agent")
    await asyncio.sleep(0.5)  # the online mark is written just after the welcome
    await dial_phase(agent, api, 50, 9_000_000)  # warm-up
    report("idle", await dial_phase(agent, api, args.requests, 0))
    stop = asyncio.Event()
    load = asyncio.create_task(background(relay_b, args.background_rate, stop))
    await asyncio.sleep(1.0)
    started = time.perf_counter()
    loaded = await dial_phase(agent, api, args.requests, 1_000_000)
    elapsed = time.perf_counter() - started
    stop.set()
    acked = await load
    report(f"with {args.background_rate:.0f} events/s of ingest", loaded)
    print(f"  (background: {acked} events acked in {elapsed + 1:.1f} s)")
    await agent.close()


def start(command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "softphone_relay", "--log-level", "warning", *command],
        env=env,
        stdout=subprocess.DEVNULL,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--background-rate", type=float, default=500.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, EmbeddedServer(Path(tmp) / "redis") as server:
        partners = Path(tmp) / "partners.toml"
        partners.write_text(PARTNERS)
        base = {
            **{k: v for k, v in os.environ.items() if not k.startswith("SOFTPHONE_RELAY_")},
            "SOFTPHONE_RELAY_REDIS_URL": server.url,
            "SOFTPHONE_RELAY_SECRET": SECRET,
            "SOFTPHONE_RELAY_PARTNERS_FILE": str(partners),
            "SOFTPHONE_RELAY_API_KEYS": f"{API_KEY}:{PARTNER}",
            "SOFTPHONE_RELAY_RATE_LIMIT": "2000/4000",
            "SOFTPHONE_RELAY_WORKER_METRICS_PORT": "0",
        }
        ports = {name: free_port() for name in ("a", "a_api", "b", "b_api")}
        processes = [
            start(
                ["serve"],
                base
                | {
                    "SOFTPHONE_RELAY_PORT": str(ports[relay]),
                    "SOFTPHONE_RELAY_API_PORT": str(ports[f"{relay}_api"]),
                },
            )
            for relay in ("a", "b")
        ]
        processes.append(start(["project", "--group", "dispatch"], base))
        try:
            for name in ("a", "b", "b_api"):
                wait_for_port(ports[name])
            print(
                f"relay A (agent) :{ports['a']}, relay B (API, background load) :{ports['b']}, "
                "dispatch worker: separate processes on one Redis"
            )
            asyncio.run(measure(args, ports["a"], ports["b"], f"http://127.0.0.1:{ports['b_api']}"))
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                process.wait(10)


if __name__ == "__main__":
    main()
