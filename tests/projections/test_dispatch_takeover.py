"""A ``dispatch`` worker that dies holding click-to-dial requests: a worker started after it
takes them over within a second or two, well inside the commands' time to live, and each
request dials exactly once. The dead worker is a real process, frozen while Redis hands it the
requests (so they are pending at it, unacked) and then SIGKILLed."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from relay.control.service import CallBody, Control
from relay.log import keys
from relay.server.server import Relay
from tests.helpers import (
    CLI,
    PARTNERS,
    SECRET,
    AgentFactory,
    clean_env,
    eventually,
    killed,
    make_settings,
)

REQUESTS = 40


def dispatch_worker(tmp_path: Path, redis_url: str) -> subprocess.Popen[bytes]:
    """``softphone-relay project --group dispatch`` with the default claim settings."""
    partners = tmp_path / "partners.toml"
    partners.write_text(
        "".join(
            f'[partners."{pid}"]\n'
            f'businessSegmentId = "{p.businessSegmentId}"\n'
            f'channelOriginId = "{p.channelOriginId}"\n'
            for pid, p in PARTNERS.items()
        )
    )
    env = clean_env(
        SOFTPHONE_RELAY_PARTNERS_FILE=str(partners),
        SOFTPHONE_RELAY_REDIS_URL=redis_url,
        SOFTPHONE_RELAY_SECRET=SECRET,
        SOFTPHONE_RELAY_WORKER_METRICS_PORT="0",
    )
    return subprocess.Popen(
        [*CLI, "project", "--group", "dispatch"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def consumers(redis: aioredis.Redis) -> list[dict[str, Any]]:
    """The dispatch group's consumers on shard 0 (none before the group exists)."""
    try:
        return await redis.xinfo_consumers(keys.event_stream(0), "dispatch")  # type: ignore[no-any-return]
    except aioredis.ResponseError:
        return []


async def test_requests_held_by_a_killed_dispatch_worker_each_dial_once_in_time(
    tmp_path: Path,
    redis_url: str,
    redis_client: aioredis.Redis,
    relay: Relay,
    open_agent: AgentFactory,
) -> None:
    """SIGKILL with requests pending at the worker; its successor dials each one, once."""
    agent = await open_agent(relay, agent="agent-takeover")
    first = dispatch_worker(tmp_path, redis_url)
    try:

        async def first_is_reading() -> bool:
            return len(await consumers(redis_client)) == 1

        await eventually(first_is_reading, within=20, step=0.05)
        await asyncio.sleep(0.2)  # into its blocking read
        first.send_signal(signal.SIGSTOP)
        control = Control(make_settings(partners=PARTNERS), redis_client)
        info = await control.agent("agent-takeover", None)
        # The first request answers the frozen worker's blocked read: it is pending there.
        requests = [
            (await control.start_call(info, CallBody(dialTo=f"+1888397{n:04}"), source="test"))
            for n in range(REQUESTS)
        ]
        held = await redis_client.xpending(keys.event_stream(0), "dispatch")
    finally:
        killed(first)
    assert int(held["pending"]) >= 1, "the killed worker held no request"

    second = dispatch_worker(tmp_path, redis_url)
    try:
        dialled: list[str] = []
        deadline = asyncio.get_running_loop().time() + 20
        while len(dialled) < REQUESTS and asyncio.get_running_loop().time() < deadline:
            try:
                frame = await agent.recv(within=0.5)
            except TimeoutError:
                continue
            assert frame["type"] == "command" and frame["name"] == "start_call", frame
            dialled.append(frame["data"]["dialTo"])
            await agent.send({"type": "ack", "id": frame["id"]})
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(15) == 0
    assert sorted(dialled) == sorted(f"+1888397{n:04}" for n in range(REQUESTS))
    states = [(await control.status(r.requestId, None)).state for r in requests]
    assert set(states) <= {"delivered", "acked"}, states
