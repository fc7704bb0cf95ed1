"""Redis stopped and restarted while clients keep sending: no acked event is lost, nothing is
appended twice, and the sockets stay open throughout.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from relay.log import keys
from relay.server.server import Relay
from softphone_relay.embedded import EmbeddedServer
from tests.helpers import Agent, AgentFactory, RelayFactory, call_data, token


async def send_until_acked(agent: Agent, event_id: str, conversation: str) -> tuple[str, int]:
    """Send one event, resending the same id while the relay answers ``unavailable``."""
    nacks = 0
    while True:
        await agent.event("callEnded", call_data(conversation), event_id=event_id)
        frame = await agent.recv(within=10)
        if frame["type"] == "ack":
            return frame["seq"], nacks
        assert frame["code"] == "unavailable", frame
        nacks += 1
        await asyncio.sleep(0.05)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[EmbeddedServer]:
    """A private server this test may kill and restart (AOF in the test's directory)."""
    with EmbeddedServer(tmp_path / "redis") as private:
        yield private


async def test_events_survive_a_redis_crash_and_restart(
    server: EmbeddedServer, start_relay: RelayFactory, open_agent: AgentFactory
) -> None:
    """SIGKILL the server mid-stream, restart it from its AOF: every acked event is there once."""
    relay = await start_relay(url=server.url)
    agents = [await open_agent(relay, agent=f"agent-{i}") for i in range(3)]
    acked: dict[str, str] = {}
    unavailable = 0
    outage_due, outage_done = asyncio.Event(), asyncio.Event()

    async def client(index: int, agent: Agent) -> None:
        nonlocal unavailable
        for n in range(40):
            event_id = f"a{index}-e{n}"
            seq, nacks = await send_until_acked(agent, event_id, f"conv-{index}")
            acked[event_id] = seq
            if len(acked) >= 30:
                outage_due.set()
            unavailable += nacks
            if n == 10:
                await outage_done.wait()

    async def outage() -> None:
        await outage_due.wait()
        await asyncio.to_thread(server.kill)
        await asyncio.sleep(1.0)
        await asyncio.to_thread(server.start)
        outage_done.set()

    await asyncio.gather(outage(), *(client(i, a) for i, a in enumerate(agents)))
    assert unavailable > 0, "the outage was not noticed"
    assert all(a.ws.close_code is None for a in agents), "a socket was closed"

    check = aioredis.Redis.from_url(server.url)
    entries = await check.xrange(keys.event_stream(0))
    await check.aclose()
    stored = [(entry_id.decode(), json.loads(fields[b"e"])["id"]) for entry_id, fields in entries]
    ids = [event_id for _, event_id in stored]
    assert len(ids) == len(set(ids)) == 120, "an event was lost or appended twice"
    assert {event_id: seq for seq, event_id in stored} == acked


async def readyz(relay: Relay) -> int:
    """The status of the relay's ``GET /readyz``."""

    def get() -> int:
        url = f"http://127.0.0.1:{relay.port}/readyz"
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return int(response.status)
        except urllib.error.HTTPError as error:
            return error.code

    return await asyncio.to_thread(get)


async def test_relay_is_not_ready_while_redis_is_down(
    server: EmbeddedServer, start_relay: RelayFactory, open_agent: AgentFactory
) -> None:
    """``/readyz`` follows Redis; sessions opened during the outage get 1013."""
    relay = await start_relay(url=server.url)
    await asyncio.to_thread(server.stop)
    assert await readyz(relay) == 503
    agent = await open_agent(relay, hello=False)
    await agent.send({"type": "hello", "token": token()})
    assert (await agent.recv())["code"] == "unavailable"
    assert (await agent.closed())[0] == 1013
    await asyncio.to_thread(server.start)
    assert await readyz(relay) == 200
    fresh = await open_agent(relay)
    await fresh.event("callEnded", call_data())
    assert (await fresh.recv(within=10))["type"] == "ack"


async def test_events_are_acked_again_within_a_second_of_redis_coming_back(
    server: EmbeddedServer, start_relay: RelayFactory, open_agent: AgentFactory
) -> None:
    """The appender probes the log while it is down: acceptance follows /readyz at once."""
    relay = await start_relay(url=server.url)
    agent = await open_agent(relay)
    await asyncio.to_thread(server.stop)
    for n in range(30):  # three seconds of a client resending through the outage
        await agent.event("callEnded", call_data("during"), event_id=f"during-{n}")
        assert (await agent.recv(within=10))["code"] == "unavailable"
        await asyncio.sleep(0.1)
    await asyncio.to_thread(server.start)
    assert await readyz(relay) == 200
    back = asyncio.get_running_loop().time()
    while True:
        await agent.event("callEnded", call_data("after"), event_id="after-1")
        frame = await agent.recv(within=10)
        if frame["type"] == "ack":
            break
        assert frame["code"] == "unavailable"
        await asyncio.sleep(0.05)
    waited = asyncio.get_running_loop().time() - back
    assert waited < 1.0, f"acked {waited:.2f}s after Redis answered again"


async def test_sessions_opened_as_redis_comes_back_are_welcomed_or_refused_never_broken(
    server: EmbeddedServer, start_relay: RelayFactory, open_agent: AgentFactory
) -> None:
    """Hellos every few milliseconds while Redis stops and returns: each one is welcomed or
    refused with 1013, never closed with 1011 (two coroutines reconnecting one pub/sub)."""
    relay = await start_relay(url=server.url)
    await open_agent(relay, agent="agent-held")  # the hub holds a subscription to restore
    answers: dict[str, int] = {}

    async def hello(name: str, after: float) -> None:
        await asyncio.sleep(after)
        agent = await open_agent(relay, hello=False)
        await agent.send({"type": "hello", "token": token(name)})
        frame = await agent.recv(within=10)
        if frame["type"] != "welcome":
            assert frame["code"] == "unavailable", frame
            assert (await agent.closed())[0] == 1013
        answers[frame["type"]] = answers.get(frame["type"], 0) + 1

    for outage in range(2):
        await asyncio.to_thread(server.stop)
        await asyncio.to_thread(server.start)
        await asyncio.gather(*(hello(f"agent-{outage}-{n}", 0.003 * n) for n in range(100)))
    assert answers.get("welcome"), answers
